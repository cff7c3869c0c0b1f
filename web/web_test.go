package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/store"
	"github.com/settle-dev/settle/web"
)

var creds = web.Credentials{User: "ops", Password: "correct-horse-battery-staple", Token: "tok-0123456789abcdef0123"}

// request is one HTTP call of a table test.
type request struct {
	method, path string
	auth         func(*http.Request) // nil: no credentials
}

func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

func do(t *testing.T, srv *httptest.Server, rq request) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(rq.method, srv.URL+rq.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rq.auth != nil {
		rq.auth(req)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// newServer assembles the operator server as settle serve does: the real
// database, the real asynqmon over a Redis of the test's own (with its own
// ReadOnly off, to show that web.ReadOnly holds on its own), metrics.
func newServer(t *testing.T, mutate func(*web.Config)) *httptest.Server {
	t.Helper()
	db := newDB(t)
	redis := testenv.StartRedis(t)
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: asynq.RedisClientOpt{Addr: redis.Addr()}})
	t.Cleanup(func() { mon.Close() })
	m, err := web.NewMetrics(web.MetricsConfig{Gauges: db})
	if err != nil {
		t.Fatal(err)
	}
	cfg := web.Config{
		Credentials: creds, Status: db, Dashboard: mon, Metrics: m,
		Ready: []web.Check{{Name: "database", Fn: db.Ready}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestRoutesAndCredentials(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	good, token := basic(creds.User, creds.Password), bearer(creds.Token)
	for _, tc := range []struct {
		name string
		request
		want int
	}{
		{"status page without credentials", request{"GET", "/", nil}, 401},
		{"status page, wrong password", request{"GET", "/", basic(creds.User, "correct-horse-battery-stapl")}, 401},
		{"status page, wrong user", request{"GET", "/", basic("root", creds.Password)}, 401},
		{"status page, wrong token", request{"GET", "/", bearer("tok-0123456789abcdef0124")}, 401},
		{"status page, token as basic password", request{"GET", "/", basic(creds.User, creds.Token)}, 401},
		{"status page, basic auth", request{"GET", "/", good}, 200},
		{"status page, bearer token", request{"GET", "/", token}, 200},
		{"status page, HEAD", request{"HEAD", "/", good}, 200},
		{"status page refuses POST", request{"POST", "/", good}, 405},
		{"unknown path", request{"GET", "/nope", good}, 404},
		{"dashboard without credentials", request{"GET", "/monitoring/", nil}, 401},
		{"dashboard UI", request{"GET", "/monitoring/", good}, 200},
		{"dashboard API", request{"GET", "/monitoring/api/queues", good}, 200},
		{"dashboard without slash redirects", request{"GET", "/monitoring", good}, 307},
		{"dashboard refuses DELETE", request{"DELETE", "/monitoring/api/queues/steps", good}, 405},
		{"dashboard refuses POST", request{"POST", "/monitoring/api/queues/steps:pause", good}, 405},
		{"dashboard refuses PUT", request{"PUT", "/monitoring/api/queues/steps", good}, 405},
		{"dashboard refuses POST before credentials", request{"POST", "/monitoring/api/queues/steps:pause", nil}, 401},
		{"metrics without credentials", request{"GET", "/metrics", nil}, 401},
		{"metrics", request{"GET", "/metrics", token}, 200},
		{"healthz is open", request{"GET", "/healthz", nil}, 200},
		{"readyz is open", request{"GET", "/readyz", nil}, 200},
	} {
		resp, body := do(t, srv, tc.request)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %s = %d, want %d: %s", tc.name, tc.method, tc.path, resp.StatusCode, tc.want, body)
		}
		if tc.want == 401 && len(resp.Header.Values("WWW-Authenticate")) != 2 {
			t.Errorf("%s: WWW-Authenticate %q, want a Basic and a Bearer challenge", tc.name, resp.Header.Values("WWW-Authenticate"))
		}
		if tc.want == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", tc.name)
		}
	}
}

func TestMetricsCanBeOpen(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(c *web.Config) { c.MetricsOpen = true })
	if resp, body := do(t, srv, request{"GET", "/metrics", nil}); resp.StatusCode != 200 || !strings.Contains(body, "settle_open_settlements") {
		t.Fatalf("open metrics: %d %.200s", resp.StatusCode, body)
	}
	if resp, _ := do(t, srv, request{"GET", "/", nil}); resp.StatusCode != 401 {
		t.Fatalf("the status page stays behind auth: %d", resp.StatusCode)
	}
}

// /readyz is open: with Redis down it answers 503 naming "redis" and
// nothing else (no address, user or error text), and logs the error.
func TestReadyzNamesOnlyTheKindThatFailed(t *testing.T) {
	t.Parallel()
	const user, password = "settle-redis-user", "canary-redis-password-0001"
	opt, err := jobs.ParseRedisURL("redis://" + user + ":" + password + "@" + testenv.UnreachableRedis(t) + "/0")
	if err != nil {
		t.Fatal(err)
	}
	check, err := jobs.NewRedisCheck(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { check.Close() })
	var logs testenv.Buffer
	srv := newServer(t, func(c *web.Config) {
		c.Ready = append(c.Ready, web.Check{Name: "redis", Fn: func(ctx context.Context) error { return check.Check(ctx, false) }})
		c.Live = []web.Check{{Name: "process", Fn: func(context.Context) error { return nil }}}
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	resp, body := do(t, srv, request{"GET", "/readyz", nil})
	if resp.StatusCode != 503 || body != "not ready: redis\n" {
		t.Fatalf("readyz with Redis down: %d %q, want 503 \"not ready: redis\"", resp.StatusCode, body)
	}
	if got := logs.String(); !strings.Contains(got, "check=redis") || !strings.Contains(got, testenv.UnreachableRedisAddr) ||
		strings.Contains(got, password) {
		t.Fatalf("the log should hold the error, without the password:\n%s", got)
	}
	if resp, body := do(t, srv, request{"GET", "/healthz", nil}); resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

// A database whose schema is older than the binary makes /readyz answer
// "schema", not the versions.
func TestReadyzNamesAnOldSchema(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(c *web.Config) {
		if err := c.Status.(*store.DB).Migrate(context.Background(), "down", io.Discard); err != nil {
			t.Fatal(err)
		}
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	if resp, body := do(t, srv, request{"GET", "/readyz", nil}); resp.StatusCode != 503 || body != "not ready: schema\n" {
		t.Fatalf("readyz with an old schema: %d %q", resp.StatusCode, body)
	}
}

func TestNewRefusesMissingCredentials(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	for _, c := range []web.Credentials{
		{},
		{User: "ops"},
		{Password: "correct-horse-battery-staple"},
		{User: "ops", Password: "short"},
		{Token: "short"},
		{User: "o:ps", Password: "correct-horse-battery-staple"},
	} {
		if _, err := web.New(web.Config{Credentials: c, Status: db}); err == nil {
			t.Errorf("New accepted credentials %+v", c)
		}
	}
	if _, err := web.New(web.Config{Credentials: web.Credentials{Token: creds.Token}, Status: db}); err != nil {
		t.Errorf("a token alone is enough: %v", err)
	}
}
