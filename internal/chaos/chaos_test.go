package chaos

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

const bankToken = "chaos-bank-token"

var accounts = pipeline.Accounts{Collection: "CH-COL", Lender: "CH-LEND", Holding: "CH-HOLD", Fee: "CH-FEE"}

// Settings of one run; the environment overrides them (make chaos).
type settings struct {
	seed        uint64
	customers   int
	duration    time.Duration
	workers     int
	crashChance float64
	openbanking int // how many of the customers bank at a second provider, "legacy", which speaks openbanking
}

func loadSettings(t *testing.T) settings {
	s := settings{seed: uint64(time.Now().UnixNano() % 1_000_000), customers: 120, duration: 15 * time.Second, workers: 3, crashChance: 0.01}
	if v := os.Getenv("SETTLE_TEST_CHAOS_SEED"); v != "" {
		s.seed = mustUint(t, "SETTLE_TEST_CHAOS_SEED", v)
	}
	if v := os.Getenv("SETTLE_TEST_CHAOS_CUSTOMERS"); v != "" {
		s.customers = int(mustUint(t, "SETTLE_TEST_CHAOS_CUSTOMERS", v))
	}
	if v := os.Getenv("SETTLE_TEST_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SETTLE_TEST_CHAOS_DURATION %q: %v", v, err)
		}
		s.duration = d
	}
	if v := os.Getenv("SETTLE_TEST_CHAOS_CRASH"); v != "" {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("SETTLE_TEST_CHAOS_CRASH %q: %v", v, err)
		}
		s.crashChance = p
	}
	s.openbanking = s.customers / 3
	return s
}

func mustUint(t *testing.T, name, v string) uint64 {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s %q: want a whole number", name, v)
	}
	return n
}

// TestChaos runs a payday through several `settle serve` processes while a
// seeded schedule kills, pauses and crashes them at named points, wipes and
// restarts Redis, cuts database connections and makes the bank slow, failing,
// lying about timeouts and rate limiting; a sweep races the workers every
// 100ms. Then it lets the system quiesce and checks that every settlement is
// SETTLED or FAILED with an alert, that the invariants hold, and that the
// bank applied exactly the transfers the engine recorded, each once.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped with -short")
	}
	s := loadSettings(t)
	t.Logf("chaos seed %d: replay with SETTLE_TEST_CHAOS_SEED=%d (customers %d, %d of them on openbanking; chaos for %s, %d workers)",
		s.seed, s.seed, s.customers, s.openbanking, s.duration, s.workers)
	h := newHarness(t, s)
	cs := h.seed(t)
	deposits := h.payAll(t, cs) // the payday burst
	h.startWorkers(t, true)
	stopSweep := h.raceSweep(t)

	rng := rand.New(rand.NewPCG(s.seed, 0xc4a05))
	counts := h.runChaos(t, rng, cs, deposits, s.duration)
	t.Logf("chaos actions: %v", counts)

	h.calm(t)
	h.restartWorkers(t, false)
	quiet := time.Now()
	h.waitQuiet(t, deposits)
	t.Logf("quiet %s after the chaos ended", time.Since(quiet).Round(time.Second))
	stopSweep()
	h.stopWorkers(t)
	h.check(t, cs, deposits)
}

type harness struct {
	s      settings
	bin    string
	cfg    string
	pgURL  string
	redis  *testenv.Redis
	db     *store.DB
	bank   *banksim.Client
	seeder *demo.Seeder // the customers of the rest provider, "sandbox"; and the salaries
	legacy *demo.Seeder // the customers of the openbanking provider, "legacy"; nil when there are none
	sweep  *jobs.Sweep

	log       *workerLog
	mu        sync.Mutex
	procs     []*exec.Cmd
	supervise bool
	restarts  int
	crashes   int
	wg        sync.WaitGroup
}

func newHarness(t *testing.T, s settings) *harness {
	t.Helper()
	h := &harness{s: s, bin: buildSettle(t), pgURL: testenv.PostgresURL(t), redis: testenv.StartRedis(t), log: newWorkerLog(t)}
	sim := httptest.NewServer(banksim.New(banksim.Options{Token: bankToken}))
	t.Cleanup(sim.Close)
	h.cfg = filepath.Join(t.TempDir(), "settle.yaml")
	legacy := "" // the same sandbox bank, spoken to in the other dialect
	if s.openbanking > 0 {
		legacy = fmt.Sprintf(`  - {name: legacy, dialect: openbanking, base_url: %q, token: %q,
     accounts: {collection: %s, lender: %s, holding: %s, fee: %s}}
`, sim.URL, bankToken, accounts.Collection, accounts.Lender, accounts.Holding, accounts.Fee)
	}
	yaml := fmt.Sprintf(`
database: {url: %q, max_open_conns: 12}
redis: {url: %q}
scheduler: {lease: 3s}
http: {addr: "127.0.0.1:0"}
log: {level: error, format: text}
poll: {schedule: "@every 1s", shard_size: 50}
relay: {schedule: "@every 1s"}
sweep: {schedule: "@every 1s"}
worker: {concurrency: 8, lease: 3s, bank_timeout: 1s, shutdown_timeout: 2s, max_attempts: 10, retry_base: 100ms, retry_max: 2s}
providers:
  - {name: sandbox, dialect: rest, base_url: %q, token: %q,
     accounts: {collection: %s, lender: %s, holding: %s, fee: %s}}
%s`, h.pgURL, h.redis.URL(), sim.URL, bankToken, accounts.Collection, accounts.Lender, accounts.Holding, accounts.Fee, legacy)
	if err := os.WriteFile(h.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, h.pgURL, store.Options{MaxOpenConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	h.db = db
	h.bank = banksim.NewClient(sim.URL, bankToken, nil)
	h.seeder = demo.NewSeeder(db, h.bank, demo.Options{Provider: "sandbox", Currency: "KRW", Accounts: accounts,
		Customers: s.customers - s.openbanking, Prefix: "ch-", Seed: s.seed})
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: sim.URL, Token: bankToken, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	banks := map[string]pipeline.Bank{"sandbox": adapter}
	if s.openbanking > 0 {
		h.legacy = demo.NewSeeder(db, h.bank, demo.Options{Provider: "legacy", Currency: "KRW", Accounts: accounts,
			Customers: s.openbanking, Prefix: "chob-", Seed: s.seed + 1})
		if banks["legacy"], err = openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "legacy", BaseURL: sim.URL, Token: bankToken, Timeout: time.Second}}); err != nil {
			t.Fatal(err)
		}
	}
	opt, err := jobs.ParseRedisURL(h.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	queue := jobs.NewQueue(opt, 30*time.Second)
	t.Cleanup(func() { queue.Close() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	executor := pipeline.NewExecutor(db, bank.NewRouter(banks), queue,
		pipeline.ExecutorConfig{Lease: 3 * time.Second, BankTimeout: time.Second}, logger)
	h.sweep = jobs.NewSweep(db, executor, logger)
	return h
}

// seed creates the customers of both providers and their accounts at the
// bank.
func (h *harness) seed(t *testing.T) []demo.Customer {
	t.Helper()
	cs, err := h.seeder.Seed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.legacy != nil {
		more, err := h.legacy.Seed(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, more...)
	}
	return cs
}

// buildSettle builds the settle binary the workers run.
func buildSettle(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "settle")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/settle-dev/settle/cmd/settle").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func (h *harness) payAll(t *testing.T, cs []demo.Customer) map[string]int64 {
	t.Helper()
	deposits := map[string]int64{}
	for _, c := range cs {
		amount := h.seeder.Salary()
		if err := h.seeder.Pay(context.Background(), c, amount); err != nil {
			t.Fatal(err)
		}
		deposits[c.Ref] += amount
	}
	return deposits
}

// startWorkers starts the worker processes, with or without crash points,
// and a supervisor for each that restarts it whenever it exits (a crash
// point, a kill, a SIGTERM) until stopWorkers.
func (h *harness) startWorkers(t *testing.T, crashes bool) {
	t.Helper()
	h.mu.Lock()
	h.supervise = true
	h.procs = make([]*exec.Cmd, h.s.workers)
	h.mu.Unlock()
	for i := range h.s.workers {
		h.startWorker(t, i, crashes)
	}
}

func (h *harness) startWorker(t *testing.T, slot int, crashes bool) {
	t.Helper()
	cmd := exec.Command(h.bin, "serve", "--config", h.cfg)
	cmd.Env = append(os.Environ(), "SETTLE_DATABASE_URL=", "SETTLE_REDIS_URL=")
	if crashes {
		h.mu.Lock()
		h.restarts++
		seed := h.s.seed*1000 + uint64(h.restarts)
		h.mu.Unlock()
		p := strconv.FormatFloat(h.s.crashChance, 'f', -1, 64)
		cmd.Env = append(cmd.Env, "SETTLE_TEST_CRASH=after_claim="+p+",after_bank_ok="+p+",before_record_commit="+p+",after_record_commit="+p+
			",after_settlements_commit="+p,
			"SETTLE_TEST_CRASH_SEED="+strconv.FormatUint(seed, 10))
	}
	cmd.Stderr = h.log.writer(fmt.Sprintf("worker %d: ", slot))
	if err := cmd.Start(); err != nil {
		t.Errorf("start worker %d: %v", slot, err) // may run on a supervisor goroutine: no Fatal
		return
	}
	h.mu.Lock()
	h.procs[slot] = cmd
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = cmd.Wait()
		h.mu.Lock()
		again := h.supervise && h.procs[slot] == cmd
		if again {
			h.crashes++
		}
		h.mu.Unlock()
		if again {
			h.startWorker(t, slot, crashes)
		}
	}()
}

// restartWorkers stops every worker and starts them again, with or without
// crash points.
func (h *harness) restartWorkers(t *testing.T, crashes bool) {
	t.Helper()
	h.stopWorkers(t)
	h.startWorkers(t, crashes)
}

func (h *harness) stopWorkers(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	h.supervise = false
	procs := append([]*exec.Cmd(nil), h.procs...)
	h.mu.Unlock()
	for _, p := range procs {
		if p != nil && p.Process != nil {
			_ = p.Process.Signal(syscall.SIGCONT)
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	h.wg.Wait()
}

// raceSweep runs a sweep every 100ms from this process, racing the workers'.
func (h *harness) raceSweep(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = h.sweep.RunOnce(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// runChaos applies one seeded fault every few hundred milliseconds, and
// pays some customers a second time, until the duration is over.
func (h *harness) runChaos(t *testing.T, rng *rand.Rand, cs []demo.Customer, deposits map[string]int64, d time.Duration) map[string]int {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
	rc := redis.NewClient(&redis.Options{Addr: h.redis.Addr()})
	defer rc.Close()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		<-time.After(time.Duration(200+rng.IntN(500)) * time.Millisecond)
		action := []string{"kill", "pause", "flushall", "redis_restart", "pg_terminate", "bank_faults", "bank_calm", "second_salary"}[rng.IntN(8)]
		counts[action]++
		switch action {
		case "kill":
			h.signal(rng.IntN(h.s.workers), syscall.SIGKILL)
		case "pause": // past the 3s lease, then resume: a zombie worker
			slot := rng.IntN(h.s.workers)
			h.signal(slot, syscall.SIGSTOP)
			time.AfterFunc(3500*time.Millisecond, func() { h.signal(slot, syscall.SIGCONT) })
		case "flushall":
			_ = rc.FlushAll(ctx).Err()
		case "redis_restart":
			h.redis.Restart()
		case "pg_terminate":
			_, _ = h.db.SQL().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		case "bank_faults":
			f := banksim.Faults{LatencyMS: rng.IntN(40), ErrorRate: rng.Float64() * 0.1,
				TimeoutAfterApplyRate: rng.Float64() * 0.1, ProcessingRate: rng.Float64() * 0.1,
				ProcessingDelayMS: 500, Seed: int64(rng.Uint32())}
			if rng.IntN(3) == 0 {
				f.RateLimitRPS = 100
			}
			_ = h.bank.SetFaults(ctx, f)
		case "bank_calm":
			_ = h.bank.SetFaults(ctx, banksim.Faults{})
		case "second_salary":
			c := cs[rng.IntN(len(cs))]
			amount := h.seeder.Salary()
			if err := h.seeder.Pay(ctx, c, amount); err == nil {
				deposits[c.Ref] += amount
			}
		}
	}
	h.mu.Lock()
	counts["worker_exits"] = h.crashes
	h.mu.Unlock()
	return counts
}

func (h *harness) signal(slot int, sig syscall.Signal) {
	h.mu.Lock()
	p := h.procs[slot]
	h.mu.Unlock()
	if p != nil && p.Process != nil {
		_ = p.Process.Signal(sig)
	}
}

// calm ends every fault: the bank behaves, paused workers resume.
func (h *harness) calm(t *testing.T) {
	t.Helper()
	if err := h.bank.SetFaults(context.Background(), banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	for i := range h.s.workers {
		h.signal(i, syscall.SIGCONT)
	}
}

// waitQuiet waits until no settlement is running and every deposited won
// is in a settlement, except for customers blocked by a FAILED one.
func (h *harness) waitQuiet(t *testing.T, deposits map[string]int64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Minute, func() (bool, string) {
		got, err := h.perCustomer()
		if err != nil {
			return false, err.Error()
		}
		for ref, want := range deposits {
			g := got[ref]
			if g.running > 0 || (g.failed == 0 && g.amount != want) {
				return false, fmt.Sprintf("%s: %d won deposited, %d in settlements, %d running", ref, want, g.amount, g.running)
			}
		}
		return true, ""
	})
}

type customerSums struct{ amount, payout, running, failed int64 }

// perCustomer sums each customer's settlements.
func (h *harness) perCustomer() (map[string]customerSums, error) {
	rows, err := h.db.SQL().Query(`SELECT c.external_ref, sum(s.amount),
		coalesce(sum(s.payout) FILTER (WHERE s.status = 'SETTLED'), 0),
		count(*) FILTER (WHERE s.status = 'RUNNING'), count(*) FILTER (WHERE s.status = 'FAILED')
		FROM settlements s JOIN customers c ON c.id = s.customer_id GROUP BY c.external_ref`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]customerSums{}
	for rows.Next() {
		var ref string
		var s customerSums
		if err := rows.Scan(&ref, &s.amount, &s.payout, &s.running, &s.failed); err != nil {
			return nil, err
		}
		out[ref] = s
	}
	return out, rows.Err()
}

func (h *harness) check(t *testing.T, cs []demo.Customer, deposits map[string]int64) {
	t.Helper()
	ctx := context.Background()
	transfers := settletest.CheckMoney(t, h.db, h.bank, "sandbox", rest.AttemptKey)
	if h.legacy != nil { // the same bank's journal: each provider's check leaves the other dialect's keys alone
		transfers += settletest.CheckMoney(t, h.db, h.bank, "legacy", openbanking.AttemptKey)
	}
	providers := []string{"sandbox"}
	if h.legacy != nil {
		providers = append(providers, "legacy")
	}
	settletest.CheckBankBalances(t, h.db, h.bank, providers...)
	verify := exec.Command(h.bin, "verify", "--bank-journal", "--config", h.cfg)
	verify.Env = append(os.Environ(), "SETTLE_DATABASE_URL=", "SETTLE_REDIS_URL=")
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("settle verify --bank-journal: %v\n%s", err, out)
	}
	var failedWithoutAlert int
	if err := h.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM settlements s WHERE s.status = 'FAILED'
		AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.settlement_id = s.id)`).Scan(&failedWithoutAlert); err != nil {
		t.Fatal(err)
	}
	if failedWithoutAlert > 0 {
		t.Errorf("%d FAILED settlements have no alert", failedWithoutAlert)
	}
	counts, _ := h.db.StatusCounts(ctx)
	h.checkBalances(t, cs, deposits)
	t.Logf("settlements %v; bank transfers %d, each once", counts, transfers)
}

// checkBalances: every won deposited was settled; a customer whose
// settlements all SETTLED has an empty VA and was paid exactly the payouts.
// A customer blocked by a FAILED settlement keeps the rest in the VA.
func (h *harness) checkBalances(t *testing.T, cs []demo.Customer, deposits map[string]int64) {
	t.Helper()
	ctx := context.Background()
	got, err := h.perCustomer()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		g := got[c.Ref]
		va, err := h.bank.Account(ctx, c.VA)
		if err != nil {
			t.Fatal(err)
		}
		if g.failed > 0 {
			continue
		}
		own, err := h.bank.Account(ctx, c.Payout)
		if err != nil {
			t.Fatal(err)
		}
		if g.amount != deposits[c.Ref] || va.Balance != 0 || own.Balance != g.payout {
			t.Errorf("%s: deposited %d, settled %d; VA holds %d (want 0); payout account %d (want %d)",
				c.Ref, deposits[c.Ref], g.amount, va.Balance, own.Balance, g.payout)
		}
	}
}

// workerLog keeps the last lines the workers wrote to stderr and prints
// them if the test fails.
type workerLog struct {
	mu    sync.Mutex
	lines []string
}

func newWorkerLog(t *testing.T) *workerLog {
	l := &workerLog{}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("last worker output:\n%s", strings.Join(l.lines, ""))
		}
	})
	return l
}

func (l *workerLog) writer(prefix string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+string(p))
		if len(l.lines) > 300 {
			l.lines = l.lines[len(l.lines)-300:]
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
