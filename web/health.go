package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/settle-dev/settle/store"
)

// Check is one named health check. Fn returns nil when the dependency is
// usable. The open probes answer only the names of the checks that failed;
// the error itself goes to the log.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// checkTimeout bounds each health request.
const checkTimeout = 3 * time.Second

// checksHandler runs every check concurrently and answers 200 "ok" when all
// pass, 503 "not ready: " and the kinds that failed ("database", "redis",
// "schema") otherwise: no error text, host or user reaches an
// unauthenticated client. Each failure is logged with its error. An empty
// list always passes: the process is up.
func checksHandler(checks []Check, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		results := runChecks(ctx, checks)
		var failed []string
		for i, c := range checks {
			err := results[i]
			if err == nil {
				continue
			}
			kind := c.Name
			if errors.Is(err, store.ErrSchemaNotCurrent) {
				kind = "schema" // the database answers; its schema is older than the binary
			}
			failed = append(failed, kind)
			logger.Warn("health check failed", "path", r.URL.Path, "check", kind, "err", err)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", strings.Join(failed, ", "))
			return
		}
		fmt.Fprintln(w, "ok")
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
