package web_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
	"github.com/settle-dev/settle/web"
)

func scrape(t *testing.T, m *web.Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("scrape: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

func wantSeries(t *testing.T, out string, series ...string) {
	t.Helper()
	for _, s := range series {
		if !strings.Contains(out, "\n"+s+"\n") {
			t.Errorf("metrics lack the line %q", s)
		}
	}
}

// The gauges come from the database after a real payday; the engine's
// series come from its Observe calls.
func TestMetricsAfterAPayday(t *testing.T) {
	t.Parallel()
	p := newPayday(t)
	m, err := web.NewMetrics(web.MetricsConfig{Gauges: p.db})
	if err != nil {
		t.Fatal(err)
	}
	m.StepDone(pipeline.KindPayout, pipeline.OutcomeFailed, 120*time.Millisecond)
	m.StepDone(pipeline.KindSweep, pipeline.OutcomeDone, 40*time.Millisecond)
	m.ObserveBank("sandbox", "transfer", "refused", 30*time.Millisecond)
	m.ObserveBank("sandbox", "transfer", "ok", 20*time.Millisecond)
	m.ObserveBank("sandbox", "transfer", "ok", 25*time.Millisecond)
	m.ObservePoll(web.PollCycle{Took: 1500 * time.Millisecond, Polled: 2, Found: 2, Lag: 90 * time.Second})
	var none *web.Metrics
	none.StepDone(pipeline.KindSweep, pipeline.OutcomeDone, time.Second) // a nil Metrics ignores observations
	none.ObservePoll(web.PollCycle{Failed: true})
	out := scrape(t, m)
	wantSeries(t, out,
		`settle_settlements{status="FAILED"} 1`,
		`settle_settlements{status="SETTLED"} 1`,
		`settle_settlements{status="RUNNING"} 1`,
		`settle_settlements{status="COMPENSATING"} 0`,
		`settle_open_settlements 1`,
		`settle_dead_steps 0`,
		`settle_stuck_steps{reason="lease_expired"} 1`,
		`settle_stuck_steps{reason="ready_overdue"} 0`,
		`settle_alert_outbox_backlog 1`,
		`settle_database_up 1`,
		`settle_step_duration_seconds_count{kind="PAYOUT",outcome="failed"} 1`,
		`settle_step_duration_seconds_bucket{kind="SWEEP",outcome="done",le="0.05"} 1`,
		`settle_bank_requests_total{operation="transfer",outcome="ok",provider="sandbox"} 2`,
		`settle_bank_requests_total{operation="transfer",outcome="refused",provider="sandbox"} 1`,
		`settle_bank_request_duration_seconds_count{operation="transfer",provider="sandbox"} 3`,
		`settle_poll_cycle_duration_seconds_sum 1.5`,
		`settle_poll_accounts_polled_total 2`,
		`settle_poll_deposits_found_total 2`,
		`settle_poll_lag_seconds 90`,
		`settle_poll_cycles_failed_total 0`,
	)
	if v := value(t, out, "settle_poll_last_cycle_timestamp_seconds"); v < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last poll cycle at %v, want about now", v)
	}
	if v := value(t, out, "settle_oldest_open_settlement_age_seconds"); v <= 0 || v > 600 {
		t.Errorf("oldest open settlement age %v s, want the stuck settlement's few seconds", v)
	}
	for _, family := range []string{"go_goroutines", "process_cpu_seconds_total",
		"# HELP settle_stuck_steps", "# TYPE settle_step_duration_seconds histogram"} {
		if !strings.Contains(out, family) {
			t.Errorf("metrics lack %s", family)
		}
	}
}

// value returns the value of the series named exactly name.
func value(t *testing.T, out, name string) float64 {
	t.Helper()
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}

// countingGauges counts reads of the real database gauges.
type countingGauges struct {
	db    *store.DB
	reads atomic.Int64
}

func (c *countingGauges) Gauges(ctx context.Context, grace time.Duration) (store.Gauges, error) {
	c.reads.Add(1)
	return c.db.Gauges(ctx, grace)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestMetricsCacheTheDatabaseGauges(t *testing.T) {
	t.Parallel()
	g := &countingGauges{db: newDB(t)}
	clock := &fakeClock{now: time.Date(2026, 1, 25, 9, 0, 0, 0, time.UTC)}
	m, err := web.NewMetrics(web.MetricsConfig{Gauges: g, CacheFor: 10 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		scrape(t, m)
	}
	clock.Add(9 * time.Second)
	scrape(t, m)
	if n := g.reads.Load(); n != 1 {
		t.Fatalf("6 scrapes within the cache time read the database %d times, want 1", n)
	}
	clock.Add(time.Second)
	scrape(t, m)
	if n := g.reads.Load(); n != 2 {
		t.Fatalf("a scrape after the cache time: %d reads, want 2", n)
	}
}

func TestMetricsWithTheDatabaseDown(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	db.Close()
	m, err := web.NewMetrics(web.MetricsConfig{Gauges: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m.ObservePoll(web.PollCycle{Took: time.Second, Polled: 10, Found: 1})
	m.ObservePoll(web.PollCycle{Took: time.Second, Failed: true})
	out := scrape(t, m)
	wantSeries(t, out, `settle_database_up 0`, `settle_poll_deposits_found_total 1`, `settle_poll_cycles_failed_total 1`,
		`settle_poll_cycle_duration_seconds_count 2`)
	if strings.Contains(out, "settle_open_settlements") {
		t.Fatal("gauges of an unreadable database must be missing, not zero")
	}
}

// asynq's x/metrics (the 2021 pseudo-version, the only one served) works
// with asynq v0.26: the steps queue shows up with its size and latency.
func TestMetricsWithTheAsynqQueueCollector(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	m, err := web.NewMetrics(web.MetricsConfig{Gauges: db, Collectors: []prometheus.Collector{queueCollector(t)}})
	if err != nil {
		t.Fatal(err)
	}
	out := scrape(t, m)
	wantSeries(t, out, `asynq_queue_size{queue="steps"} 1`, `asynq_tasks_enqueued_total{queue="steps",state="pending"} 1`)
	if !strings.Contains(out, `asynq_queue_latency_seconds{queue="steps"}`) {
		t.Errorf("no queue latency:\n%s", out)
	}
}

// A worker's or scheduler's /metrics: its own series, no database gauges,
// behind the credentials unless open, beside its probes.
func TestProcessMetricsBesideTheProbes(t *testing.T) {
	t.Parallel()
	m, err := web.NewMetrics(web.MetricsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m.StepDone(pipeline.KindSweep, pipeline.OutcomeDone, 30*time.Millisecond)
	h, err := web.WithMetrics(web.Health(nil, nil, slog.Default()), m, creds, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if resp, _ := do(t, srv, request{"GET", "/metrics", nil}); resp.StatusCode != 401 {
		t.Fatalf("metrics without credentials: %d", resp.StatusCode)
	}
	resp, body := do(t, srv, request{"GET", "/metrics", bearer(creds.Token)})
	if resp.StatusCode != 200 || !strings.Contains(body, `settle_step_duration_seconds_count{kind="SWEEP",outcome="done"} 1`) ||
		strings.Contains(body, "settle_database_up") {
		t.Fatalf("a worker's metrics: %d\n%.400s", resp.StatusCode, body)
	}
	if resp, _ := do(t, srv, request{"GET", "/healthz", nil}); resp.StatusCode != 200 {
		t.Fatalf("healthz beside the metrics: %d", resp.StatusCode)
	}
	if _, err := web.WithMetrics(web.Health(nil, nil, slog.Default()), m, web.Credentials{}, false); err == nil {
		t.Fatal("metrics behind no credentials accepted")
	}
	open, err := web.WithMetrics(web.Health(nil, nil, slog.Default()), m, web.Credentials{}, true)
	if err != nil {
		t.Fatal(err)
	}
	openSrv := httptest.NewServer(open)
	t.Cleanup(openSrv.Close)
	if resp, _ := do(t, openSrv, request{"GET", "/metrics", nil}); resp.StatusCode != 200 {
		t.Fatalf("open metrics: %d", resp.StatusCode)
	}
}

// Each breaker has a series per state, 1 for the one it is in; a provider
// with a limit has its current rate, one without has none.
func TestMetricsOfTheBreakers(t *testing.T) {
	t.Parallel()
	m, err := web.NewMetrics(web.MetricsConfig{Breakers: func() []web.BreakerState {
		return []web.BreakerState{
			{Provider: "acme", Operation: "transfers", State: "open", Rate: 50},
			{Provider: "acme", Operation: "balances", State: "half-open", Rate: 50},
			{Provider: "legacy", Operation: "transfers", State: "closed", Rate: math.Inf(1)},
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := scrape(t, m)
	wantSeries(t, out,
		`settle_bank_breaker_state{operation="transfers",provider="acme",state="open"} 1`,
		`settle_bank_breaker_state{operation="transfers",provider="acme",state="closed"} 0`,
		`settle_bank_breaker_state{operation="balances",provider="acme",state="half-open"} 1`,
		`settle_bank_breaker_state{operation="transfers",provider="legacy",state="closed"} 1`,
		`settle_bank_breaker_state{operation="transfers",provider="legacy",state="open"} 0`,
		`settle_bank_rate_limit_per_second{provider="acme"} 50`,
	)
	if strings.Contains(out, `settle_bank_rate_limit_per_second{provider="legacy"}`) {
		t.Error("a provider without a limit has a rate series")
	}
}

// queueCollector is Asynq's queue collector over a private Redis whose
// steps queue holds one task.
func queueCollector(t *testing.T) prometheus.Collector {
	t.Helper()
	redis := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: redis.Addr()}
	q := jobs.NewQueue(opt, time.Minute)
	t.Cleanup(func() { q.Close() })
	if err := q.EnqueueStep(context.Background(), pipeline.StepRef{ID: 42, Fence: 1}); err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { inspector.Close() })
	return asynqmetrics.NewQueueMetricsCollector(inspector)
}
