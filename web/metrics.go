package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsConfig configures NewMetrics. Zero fields take their defaults.
type MetricsConfig struct {
	// Gauges reads the database gauges at scrape time; *store.DB. Required.
	Gauges GaugeReader
	// CacheFor is how long one read of the database gauges serves scrapes;
	// default 5s. A failed read is cached as long, so a database outage is
	// not hammered by scrapers.
	CacheFor time.Duration
	// ReadyGrace is how long a READY step may be due before it counts as
	// stuck; default 1m.
	ReadyGrace time.Duration
	// Collectors are registered too, e.g. Asynq's queue metrics
	// (github.com/hibiken/asynq/x/metrics.NewQueueMetricsCollector).
	Collectors []prometheus.Collector
	// Now is the clock of the cache; default time.Now.
	Now func() time.Time
	// Logger receives scrape errors; default slog.Default().
	Logger *slog.Logger
}

// Metrics is settle's Prometheus registry: the database gauges read at
// scrape time, and the engine's counters and histograms, which the engine
// feeds through the Observe methods. It uses its own registry, never the
// global one. A nil *Metrics ignores every observation.
type Metrics struct {
	registry *prometheus.Registry
	logger   *slog.Logger

	stepDuration *prometheus.HistogramVec
	bankRequests *prometheus.CounterVec
	bankDuration *prometheus.HistogramVec
	pollDuration prometheus.Histogram
	pollPolled   prometheus.Counter
	pollFound    prometheus.Counter
}

const namespace = "settle"

// Bucket bounds, in seconds.
var (
	stepBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	bankBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	pollBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
)

// NewMetrics builds the registry.
func NewMetrics(cfg MetricsConfig) (*Metrics, error) {
	if cfg.Gauges == nil {
		return nil, errors.New("metrics: no gauge reader (the database)")
	}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		logger:   cmp(cfg.Logger, slog.Default()),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "step_duration_seconds", Buckets: stepBuckets,
			Help: "Time to run one step (claim, bank call, record), by step kind and outcome class.",
		}, []string{"kind", "class"}),
		bankRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bank_requests_total",
			Help: "Requests to bank providers, by provider, operation and outcome.",
		}, []string{"provider", "operation", "outcome"}),
		bankDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "bank_request_duration_seconds", Buckets: bankBuckets,
			Help: "Latency of requests to bank providers, by provider and operation.",
		}, []string{"provider", "operation"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "poll_cycle_duration_seconds", Buckets: pollBuckets,
			Help: "Time of one balance poll cycle over every eligible virtual account.",
		}),
		pollPolled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "poll_accounts_polled_total",
			Help: "Virtual accounts whose balance was asked for.",
		}),
		pollFound: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "poll_deposits_found_total",
			Help: "Deposits found by the balance poll (settlements created).",
		}),
	}
	db := newGaugeCollector(cfg, m.logger)
	all := []prometheus.Collector{
		db, m.stepDuration, m.bankRequests, m.bankDuration, m.pollDuration, m.pollPolled, m.pollFound,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	for _, c := range append(all, cfg.Collectors...) {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register %T: %w", c, err)
		}
	}
	return m, nil
}

// Registry is the registry, for registering more collectors and in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	})
}

// ObserveStep records one run of a step: its kind (SWEEP, PAYOUT, …), the
// class of its outcome (done, retry, unknown, failed, dead, …) and how long
// it took.
func (m *Metrics) ObserveStep(kind, class string, d time.Duration) {
	if m == nil {
		return
	}
	m.stepDuration.WithLabelValues(kind, class).Observe(d.Seconds())
}

// ObserveBank records one request to a bank provider: the operation
// (balances, transfer, transfer_status, transactions), its outcome (ok,
// refused, rate_limited, transient, unknown, …) and its latency.
func (m *Metrics) ObserveBank(provider, op, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.bankRequests.WithLabelValues(provider, op, outcome).Inc()
	m.bankDuration.WithLabelValues(provider, op).Observe(d.Seconds())
}

// ObservePoll records one balance poll cycle: its duration, how many
// virtual accounts it asked about and how many deposits it found.
func (m *Metrics) ObservePoll(d time.Duration, polled, found int) {
	if m == nil {
		return
	}
	m.pollDuration.Observe(d.Seconds())
	m.pollPolled.Add(float64(max(polled, 0)))
	m.pollFound.Add(float64(max(found, 0)))
}

// cmp returns v, or def when v is the zero value.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
