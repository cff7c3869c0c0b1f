// Package web is settle's operator HTTP surface: a server-rendered status
// page at /, the Asynq dashboard mounted read-only, /metrics for
// Prometheus, and the open /healthz and /readyz probes. Everything but the
// probes (and, when configured, /metrics) sits behind Auth.
//
// The package reads the database through small interfaces that *store.DB
// implements and is handed everything else (queue latency, provider health,
// readiness checks) as functions, so it needs no Redis or bank wiring of its
// own.
package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Config is what New assembles. Zero fields take their defaults.
type Config struct {
	// Credentials protect the status page, the dashboard and, unless
	// MetricsOpen, /metrics. Required: there is no default password.
	Credentials Credentials

	// Status reads the status page's snapshot; *store.DB. Required.
	Status StatusReader
	// Page tunes the status page.
	Page PageConfig

	// Dashboard, when set, is served behind Auth and ReadOnly under
	// DashboardPath + "/" (asynqmon, built with that RootPath).
	Dashboard http.Handler
	// DashboardPath is where the dashboard is mounted; default "/monitoring".
	DashboardPath string

	// Metrics, when set, is served at /metrics.
	Metrics *Metrics
	// MetricsOpen serves /metrics without credentials, for a Prometheus
	// that cannot authenticate; default false (behind Auth).
	MetricsOpen bool

	// Live are the checks of /healthz; none means it answers "ok" while
	// the process serves HTTP.
	Live []Check
	// Ready are the checks of /readyz: database reachable with a current
	// schema, Redis reachable. /readyz names the kind of a failure only;
	// Logger gets its error.
	Ready []Check

	// Logger; default slog.Default().
	Logger *slog.Logger
}

// New returns the operator HTTP handler:
//
//	GET /             status page                       (auth)
//	/monitoring/...   dashboard, GET and HEAD only      (auth)
//	GET /metrics      Prometheus                        (auth unless MetricsOpen)
//	GET /healthz      liveness                          (open)
//	GET /readyz       readiness                         (open)
//
// It refuses a configuration without valid credentials.
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Credentials.Validate(); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if cfg.Status == nil {
		return nil, errors.New("web: no status reader (the database)")
	}
	cfg.Page.Logger = cmp(cfg.Page.Logger, cfg.Logger)
	dashboard := "/" + strings.Trim(cmp(cfg.DashboardPath, "/monitoring"), "/")
	link := ""
	if cfg.Dashboard != nil {
		link = dashboard + "/"
	}
	page, err := newPage(cfg.Status, cfg.Page, link)
	if err != nil {
		return nil, err
	}
	auth := func(h http.Handler) http.Handler { return Auth(cfg.Credentials, h) }

	mux := http.NewServeMux()
	logger := cmp(cfg.Logger, slog.Default())
	mux.Handle("GET /healthz", checksHandler(cfg.Live, logger))
	mux.Handle("GET /readyz", checksHandler(cfg.Ready, logger))
	mux.Handle("GET /{$}", auth(page))
	if cfg.Dashboard != nil {
		mux.Handle(dashboard+"/", auth(ReadOnly(cfg.Dashboard))) // the mux redirects dashboard to dashboard+"/"
	}
	if cfg.Metrics != nil {
		h := cfg.Metrics.Handler()
		if !cfg.MetricsOpen {
			h = auth(h)
		}
		mux.Handle("GET /metrics", h)
	}
	return mux, nil
}

// Health returns a handler of /healthz and /readyz alone, for a process
// that serves no status page or dashboard (a worker or scheduler, or one
// without credentials). Failed checks are logged to logger.
func Health(live, ready []Check, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", checksHandler(live, logger))
	mux.Handle("GET /readyz", checksHandler(ready, logger))
	return mux
}

// WithMetrics serves m at GET /metrics, behind creds unless open, and
// everything else through h: the /metrics of a worker or scheduler, beside
// its probes. It refuses invalid credentials unless open.
func WithMetrics(h http.Handler, m *Metrics, creds Credentials, open bool) (http.Handler, error) {
	metrics := m.Handler()
	if !open {
		if err := creds.Validate(); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		metrics = Auth(creds, metrics)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("/", h)
	return mux, nil
}

// durationText writes d the way an operator reads it: "45s", "3m12s",
// "2h05m", "3d4h".
func durationText(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	}
}
