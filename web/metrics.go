package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/settle-dev/settle/pipeline"
)

// MetricsConfig configures NewMetrics. Zero fields take their defaults.
type MetricsConfig struct {
	// Gauges reads the database gauges at scrape time; *store.DB. nil
	// leaves them out: a worker's or scheduler's /metrics carries only its
	// own series, and the web role's the database's.
	Gauges GaugeReader
	// CacheFor is how long one read of the database gauges serves scrapes;
	// default 5s. A failed read is cached as long, so a database outage is
	// not hammered by scrapers.
	CacheFor time.Duration
	// ReadyGrace is how long a READY step may be due before it counts as
	// stuck; default 1m.
	ReadyGrace time.Duration
	// Breakers, when set, returns the state of each bank provider's
	// circuit breakers at scrape time (the processes that call banks).
	Breakers func() []BreakerState
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
// feeds through StepDone, ObserveBank and ObservePoll. It uses its own
// registry, never the global one. A nil *Metrics ignores every observation.
// No series carries an account number, a customer or an amount: labels
// are step kinds, provider names, operations and fixed outcome words.
type Metrics struct {
	registry *prometheus.Registry
	logger   *slog.Logger
	now      func() time.Time

	stepDuration *prometheus.HistogramVec
	bankRequests *prometheus.CounterVec
	bankDuration *prometheus.HistogramVec
	pollDuration prometheus.Histogram
	pollFailed   prometheus.Counter
	pollPolled   prometheus.Counter
	pollFound    prometheus.Counter
	pollLag      prometheus.Gauge
	pollLast     prometheus.Gauge
}

var _ pipeline.StepObserver = (*Metrics)(nil)

const namespace = "settle"

// Bucket bounds, in seconds.
var (
	stepBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	bankBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	pollBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
)

// NewMetrics builds the registry.
func NewMetrics(cfg MetricsConfig) (*Metrics, error) {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		logger:   cmp(cfg.Logger, slog.Default()),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "step_duration_seconds", Buckets: stepBuckets,
			Help: "Time to run one step (claim, bank call, record), by step kind and outcome " +
				"(done, retry, waiting, unknown, failed, dead, lease_lost, error).",
		}, []string{"kind", "outcome"}),
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
		pollFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "poll_cycles_failed_total",
			Help: "Balance poll cycles that ended in an error.",
		}),
		pollPolled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "poll_accounts_polled_total",
			Help: "Virtual accounts whose balance was asked for.",
		}),
		pollFound: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "poll_deposits_found_total",
			Help: "Deposits found by the balance poll (settlements created).",
		}),
		pollLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "poll_lag_seconds",
			Help: "How long ago the least recently polled eligible virtual account was polled, as the last successful poll cycle measured it.",
		}),
		pollLast: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "poll_last_cycle_timestamp_seconds",
			Help: "When the last successful poll cycle of this process ended, in Unix seconds: time() minus it is how long polling has been silent.",
		}),
	}
	all := []prometheus.Collector{
		m.stepDuration, m.bankRequests, m.bankDuration,
		m.pollDuration, m.pollFailed, m.pollPolled, m.pollFound, m.pollLag, m.pollLast,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if m.now = cfg.Now; m.now == nil {
		m.now = time.Now
	}
	if cfg.Gauges != nil {
		all = append(all, newGaugeCollector(cfg, m.logger))
	}
	if cfg.Breakers != nil {
		all = append(all, breakerCollector(cfg.Breakers))
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

// StepDone records one run of a step: its kind (SWEEP, PAYOUT, …), its
// outcome and how long it took. It implements pipeline.StepObserver.
func (m *Metrics) StepDone(kind pipeline.Kind, outcome pipeline.Outcome, d time.Duration) {
	if m == nil {
		return
	}
	m.stepDuration.WithLabelValues(string(kind), string(outcome)).Observe(d.Seconds())
}

// ObserveBank records one request to a bank provider: the operation
// (balances, transfer, transfer_status), its outcome (ok, pending, refused,
// rate_limited, unavailable, timeout, error, …; see bank.Outcome) and its
// latency. It implements bank.Observer.
func (m *Metrics) ObserveBank(provider, op, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.bankRequests.WithLabelValues(provider, op, outcome).Inc()
	m.bankDuration.WithLabelValues(provider, op).Observe(d.Seconds())
}

// PollCycle is one balance poll cycle, as ObservePoll records it.
type PollCycle struct {
	Took   time.Duration
	Polled int // virtual accounts asked about
	Found  int // deposits found: settlements created
	// Lag is how long ago the least recently polled eligible virtual
	// account was polled, at the cycle's end.
	Lag    time.Duration
	Failed bool // the cycle ended in an error; its Lag is not measured
}

// ObservePoll records one balance poll cycle: its duration, the accounts
// polled and deposits found, and, when it succeeded, the lag and when it
// ended.
func (m *Metrics) ObservePoll(c PollCycle) {
	if m == nil {
		return
	}
	m.pollDuration.Observe(c.Took.Seconds())
	m.pollPolled.Add(float64(max(c.Polled, 0)))
	m.pollFound.Add(float64(max(c.Found, 0)))
	if c.Failed {
		m.pollFailed.Inc()
		return
	}
	m.pollLag.Set(c.Lag.Seconds())
	m.pollLast.Set(float64(m.now().UnixNano()) / 1e9)
}

// cmp returns v, or def when v is the zero value.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
