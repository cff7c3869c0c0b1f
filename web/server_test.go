package web_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/settle-dev/settle/web"
)

// Every server settle runs bounds reading a request, writing its answer and
// an idle connection, not only reading the headers.
func TestNewServerHasTimeouts(t *testing.T) {
	t.Parallel()
	checkServerTimeouts(t, web.NewServer(http.NotFoundHandler()))
}

func checkServerTimeouts(t *testing.T, srv *http.Server) {
	t.Helper()
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 {
			t.Errorf("%s is not set", name)
		}
	}
}
