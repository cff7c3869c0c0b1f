package web

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// GaugeReader reads the database gauges; *store.DB implements it.
type GaugeReader interface {
	Gauges(ctx context.Context, readyGrace time.Duration) (store.Gauges, error)
}

var _ GaugeReader = (*store.DB)(nil)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	settlementsDesc   = desc("settlements", "Settlements by status.", "status")
	openDesc          = desc("open_settlements", "Settlements in flight (RUNNING or COMPENSATING).")
	oldestOpenDesc    = desc("oldest_open_settlement_age_seconds", "Age of the oldest settlement in flight; 0 when none is.")
	deadStepsDesc     = desc("dead_steps", "Steps out of attempts, waiting for an operator (settle replay).")
	stuckStepsDesc    = desc("stuck_steps", "Steps that should move and do not: RUNNING past their lease (reason lease_expired), READY and due for over the grace (reason ready_overdue).", "reason")
	alertBacklogDesc  = desc("alert_outbox_backlog", "Alerts not yet delivered to operators.")
	notifyDesc        = desc("notify_undelivered", "NOTIFY steps of SETTLED settlements whose event the lender's app has not taken: retrying on their own backoff (state retrying) or given up (state gave_up; settle replay sends them again).", "state")
	databaseUpDesc    = desc("database_up", "1 when the last read of the database gauges succeeded, else 0 (and the settle_ gauges above are missing).")
	gaugeReadTimeDesc = desc("database_gauges_read_seconds", "How long the last read of the database gauges took.")
)

// gaugeCollector reads the gauges at scrape time, at most once per cacheFor.
type gaugeCollector struct {
	read     func(ctx context.Context) (store.Gauges, error)
	cacheFor time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu     sync.Mutex
	readAt time.Time // zero: never read
	took   time.Duration
	last   store.Gauges
	err    error
}

func newGaugeCollector(cfg MetricsConfig, logger *slog.Logger) *gaugeCollector {
	grace := cmp(cfg.ReadyGrace, time.Minute)
	return &gaugeCollector{
		read:     func(ctx context.Context) (store.Gauges, error) { return cfg.Gauges.Gauges(ctx, grace) },
		cacheFor: cmp(cfg.CacheFor, 5*time.Second),
		now:      cfg.Now,
		logger:   logger,
	}
}

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{settlementsDesc, openDesc, oldestOpenDesc, deadStepsDesc,
		stuckStepsDesc, alertBacklogDesc, notifyDesc, databaseUpDesc, gaugeReadTimeDesc} {
		ch <- d
	}
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	g, took, err := c.gauges()
	ch <- prometheus.MustNewConstMetric(gaugeReadTimeDesc, prometheus.GaugeValue, took.Seconds())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(databaseUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(databaseUpDesc, prometheus.GaugeValue, 1)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Every status has a series, so a status that empties reads 0 rather
	// than vanishing.
	statuses := slices.Clone(pipeline.SettlementStatuses)
	for s := range g.ByStatus {
		if !slices.Contains(statuses, s) {
			statuses = append(statuses, s)
		}
	}
	for _, s := range statuses {
		gauge(settlementsDesc, float64(g.ByStatus[s]), string(s))
	}
	gauge(openDesc, float64(g.Open))
	gauge(oldestOpenDesc, g.OldestOpen.Seconds())
	gauge(deadStepsDesc, float64(g.DeadSteps))
	gauge(stuckStepsDesc, float64(g.StuckRunning), "lease_expired")
	gauge(stuckStepsDesc, float64(g.StuckReady), "ready_overdue")
	gauge(alertBacklogDesc, float64(g.AlertBacklog))
	gauge(notifyDesc, float64(g.NotifyRetrying), "retrying")
	gauge(notifyDesc, float64(g.NotifyGaveUp), "gave_up")
}

// gauges returns the cached read while it is fresh, else reads again.
// Concurrent scrapes wait for one read.
func (c *gaugeCollector) gauges() (store.Gauges, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	if !c.readAt.IsZero() && now.Sub(c.readAt) < c.cacheFor {
		return c.last, c.took, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	c.last, c.err = c.read(ctx)
	c.took, c.readAt = time.Since(start), now
	if c.err != nil {
		c.logger.Warn("metrics: read database gauges", "err", c.err)
	}
	return c.last, c.took, c.err
}

func (c *gaugeCollector) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
