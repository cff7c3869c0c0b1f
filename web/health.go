package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Check is one named health check. Fn returns nil when the dependency is
// usable; its error is shown on /readyz, so it must carry no secret.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// checkTimeout bounds each health request.
const checkTimeout = 3 * time.Second

// checksHandler runs every check concurrently and answers 200 with "ok"
// lines when all pass, 503 naming each failure otherwise. An empty list
// always passes: the process is up.
func checksHandler(checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		results := runChecks(ctx, checks)
		status, lines := http.StatusOK, make([]string, 0, len(checks)+1)
		for i, c := range checks {
			if results[i] != nil {
				status = http.StatusServiceUnavailable
				lines = append(lines, fmt.Sprintf("%s: %s", c.Name, oneLine(results[i].Error())))
				continue
			}
			lines = append(lines, c.Name+": ok")
		}
		if status == http.StatusOK {
			lines = append(lines, "ok")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
}

func runChecks(ctx context.Context, checks []Check) []error {
	results := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { results[i] = c.Fn(ctx) })
	}
	wg.Wait()
	return results
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
