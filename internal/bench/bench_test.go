package bench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

func TestParseLatency(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		in      string
		want    Latency
		wantErr bool
	}{
		{"0", Latency{}, false},
		{"20", Latency{20 * ms, 20 * ms}, false},
		{"2.5", Latency{2500 * time.Microsecond, 2500 * time.Microsecond}, false},
		{"20,200", Latency{20 * ms, 200 * ms}, false},
		{" 20 , 200 ", Latency{20 * ms, 200 * ms}, false},
		{"200,20", Latency{}, true},
		{"0,20", Latency{}, true},
		{"-1", Latency{}, true},
		{"x", Latency{}, true},
		{"1,2,3", Latency{}, true},
		{"", Latency{}, true},
		{"60001", Latency{}, true},
	}
	for _, tc := range tests {
		got, err := ParseLatency(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseLatency(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrUsage) {
			t.Errorf("ParseLatency(%q): error %v does not match ErrUsage", tc.in, err)
		}
		if err == nil {
			if back, _ := ParseLatency(got.String()); back != got {
				t.Errorf("ParseLatency(%q).String() = %q does not parse back", tc.in, got.String())
			}
		}
	}
}

func TestLatencyDistributionHitsItsPercentiles(t *testing.T) {
	t.Parallel()
	l := Latency{P50: 20 * time.Millisecond, P99: 200 * time.Millisecond}
	rng := rand.New(rand.NewPCG(1, 2))
	ds := make([]float64, 50_000)
	for i := range ds {
		ds[i] = float64(l.sample(rng.NormFloat64()))
	}
	sort.Float64s(ds)
	p50, p99 := ds[len(ds)/2], ds[len(ds)*99/100]
	if math.Abs(p50/float64(l.P50)-1) > 0.05 || math.Abs(p99/float64(l.P99)-1) > 0.1 {
		t.Fatalf("p50 %v, p99 %v; want about %v and %v", time.Duration(p50), time.Duration(p99), l.P50, l.P99)
	}
	if fixed := (Latency{P50: 7 * time.Millisecond, P99: 7 * time.Millisecond}); fixed.sample(3) != fixed.P50 {
		t.Fatal("a fixed latency varies")
	}
}

func TestOptionsAreCheckedAllAtOnce(t *testing.T) {
	t.Parallel()
	o := Options{AdminURL: "", Customers: -1, Dialect: "soap", RateLimit: -1, Processes: 2, PollEvery: 1500 * time.Millisecond,
		Faults: BankFaults{ErrorRate: 1.5, ApplyThenDrop: -0.1, Processing: math.NaN()}}.withDefaults()
	err := o.validate()
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("validate = %v, want ErrUsage", err)
	}
	for _, want := range []string{"SETTLE_DATABASE_URL", "--customers -1", `--dialect "soap"`, "rest or openbanking",
		"--rate-limit", "settle binary", "--poll-every 1.5s", "--error-rate 1.5", "--apply-then-drop -0.1", "--processing NaN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validate's message lacks %q:\n%v", want, err)
		}
	}
}

// Both dialects are driven: the options accept them, the journal's keys of
// each read back into the engine's attempt keys, and the balance calls of
// each are counted, not the sandbox's own endpoints.
func TestBothDialectsAreDriven(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"rest", "openbanking"} {
		o := Options{AdminURL: "postgres://x", Dialect: d, NewEngine: func(context.Context, *config.Config, *slog.Logger) (Engine, error) {
			return nil, nil
		}}.withDefaults()
		if err := o.validate(); err != nil {
			t.Errorf("dialect %s: %v", d, err)
		}
	}
	key := pipeline.AttemptKey(42, 1)
	for d, bankKey := range map[string]string{"rest": key, "openbanking": openbanking.BankTranID(key)} {
		if got, ok := dialect(d).AttemptKey(bankKey); !ok || got != key {
			t.Errorf("%s journal key %q reads back as %q, %v; want %q", d, bankKey, got, ok, key)
		}
	}
	if dialect("openbanking").BatchSize != 1 || dialect("rest").BatchSize != 100 {
		t.Errorf("accounts a balance call: openbanking %d, rest %d; want 1 and 100", dialect("openbanking").BatchSize, dialect("rest").BatchSize)
	}
	st := banksim.Stats{Requests: map[string]int64{"GET /v2.0/account/balance/acnt_num": 7, "POST /v1/balances:batchGet": 2,
		"POST /v2.0/transfer/deposit/acnt_num": 5, "POST /sandbox/accounts/{id}/credit": 100, "GET /sandbox/balance": 9}}
	if st.BalanceCalls() != 9 || st.DialectCalls() != 14 {
		t.Errorf("balance calls %d, dialect calls %d; want 9 and 14", st.BalanceCalls(), st.DialectCalls())
	}
}

// The bank fault flags reach the sandbox's faults, seeded by the run's
// seed, and the result's parameters.
func TestBankFaultsReachTheSandboxAndTheParams(t *testing.T) {
	t.Parallel()
	o := Options{Latency: Latency{P50: 5 * time.Millisecond, P99: 5 * time.Millisecond}, RateLimit: 100, Seed: 9,
		Faults: BankFaults{ErrorRate: 0.2, ApplyThenDrop: 0.05, Processing: 0.1}}.withDefaults()
	want := banksim.Faults{LatencyMS: 5, RateLimitRPS: 100, ErrorRate: 0.2, TimeoutAfterApplyRate: 0.05, ProcessingRate: 0.1, Seed: 9}
	if got := sandboxFaults(o); got != want {
		t.Errorf("sandbox faults %+v, want %+v", got, want)
	}
	p := paramsOf(o)
	if p.ErrorRate != 0.2 || p.ApplyThenDrop != 0.05 || p.Processing != 0.1 {
		t.Errorf("params %+v do not report the bank faults", p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"error_rate":0.2`, `"apply_then_drop_rate":0.05`, `"processing_rate":0.1`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("params JSON %s lacks %s", b, key)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	o := Options{Concurrency: 50}.withDefaults()
	if o.Customers != 10000 || o.Concurrency != 50 || o.DBConns != 20 || o.Dialect != "rest" || o.PollEvery != 30*time.Second || o.Seed != 1 {
		t.Fatalf("defaults: %+v", o)
	}
	if o := (Options{}).withDefaults(); o.Concurrency != 64 || o.DBConns != 20 {
		t.Fatalf("concurrency and db conns default to %d and %d, want 64 and 20 (settle serve's defaults)", o.Concurrency, o.DBConns)
	}
}

func TestRenderBar(t *testing.T) {
	t.Parallel()
	got := renderBar("payday", 250, 1000, 10*time.Second, "failed 0")
	for _, want := range []string{"payday", "[#######---------------------]", "250/1000", "25.0%", "25/s", "ETA 30s", "failed 0"} {
		if !strings.Contains(got, want) {
			t.Errorf("renderBar = %q, lacks %q", got, want)
		}
	}
	if done := renderBar("payday", 1000, 1000, 40*time.Second, ""); strings.Contains(done, "ETA") || !strings.Contains(done, "100.0%") {
		t.Errorf("finished bar = %q", done)
	}
}

func TestProgressWithoutTerminalPrintsLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgress(&buf, false)
	p.phase("phase %d", 1)
	p.bar("payday", 1, 10, "")
	p.bar("payday", 2, 10, "") // within the interval: not printed
	p.bar("payday", 10, 10, "")
	p.end()
	if strings.Contains(buf.String(), "\r") || strings.Count(buf.String(), "\n") != 3 {
		t.Fatalf("non-terminal progress:\n%q", buf.String())
	}
	var tty bytes.Buffer
	p = newProgress(&tty, true)
	p.bar("payday", 1, 10, "")
	p.bar("payday", 2, 10, "")
	p.end()
	if strings.Count(tty.String(), "\r") != 2 || !strings.HasSuffix(tty.String(), "\n") {
		t.Fatalf("terminal progress:\n%q", tty.String())
	}
	newProgress(nil, false).bar("x", 1, 2, "") // no writer: nothing, no panic
}

func TestChartIsWellFormedSVG(t *testing.T) {
	t.Parallel()
	r := &Result{SettlementsPerSec: 40, LatencyP99MS: 900, Params: Params{Customers: 100, Concurrency: 20, Latency: "20,200"}}
	for i := range 30 {
		r.Series = append(r.Series, Point{T: float64(i), Detected: int64(100 - 3*i), Settled: int64(i), P50MS: 200, P99MS: float64(400 + 10*i)})
	}
	var buf bytes.Buffer
	if err := WriteChart(&buf, r); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&buf)
	lines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 4 {
		t.Fatalf("%d polylines, want 4 (detected, settled, p50, p99)", lines)
	}
	var empty bytes.Buffer
	if err := WriteChart(&empty, &Result{}); err != nil || !strings.Contains(empty.String(), "</svg>") {
		t.Fatalf("chart of an empty run: %v", err)
	}
}

func TestNiceNumbers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, step, ceil float64 }{{7, 2, 8}, {93, 20, 100}, {1, 0.2, 1}, {1234, 500, 1500}} {
		if s := niceStep(tc.in / 5); s != tc.step {
			t.Errorf("niceStep(%v) = %v, want %v", tc.in/5, s, tc.step)
		}
		if c := niceCeil(tc.in); c != tc.ceil {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, c, tc.ceil)
		}
	}
}

func TestRoundTripsCountTheDriver(t *testing.T) {
	t.Parallel()
	before := dbCounters{method: methodStatements, xacts: 100, statements: map[int64]stmtCounter{1: {query: "BEGIN READ WRITE", calls: 5}}}
	after := dbCounters{method: methodStatements, xacts: 120, own: 4, statements: map[int64]stmtCounter{
		1: {query: "BEGIN READ WRITE", calls: 15, totalMS: 1},
		2: {query: "COMMIT", calls: 10, totalMS: 1},
		3: {query: "UPDATE steps SET status = $1 WHERE id = $2", calls: 20, totalMS: 8, rows: 20},
		4: {query: "SELECT sum(amount) FROM postings WHERE journal_id = NEW.journal_id", calls: 40, totalMS: 10},
	}}
	u := dbUsage(before, after, 10, "postgres://x@h/db?sslmode=disable")
	// per settlement: 1 BEGIN + 1 COMMIT + 2 UPDATEs × 2 round trips; the trigger's statement is not sent
	if u.RoundTripsPerSettlement != 6 || u.StatementsPerSettlement != 4 || u.XactsPerSettlement != 1.6 {
		t.Fatalf("usage = %+v", u)
	}
	if u = dbUsage(before, after, 10, "postgres://x@h/db?binary_parameters=yes"); u.RoundTripsPerSettlement != 4 {
		t.Fatalf("with binary_parameters: %v round trips, want 4", u.RoundTripsPerSettlement)
	}
	if !u.Top[0].ServerSide || u.Top[0].Calls != 40 {
		t.Fatalf("top statement %+v: want the trigger's, marked server side", u.Top[0])
	}
	fallback := dbUsage(dbCounters{method: methodDatabase, xacts: 10}, dbCounters{method: methodDatabase, xacts: 60, own: 10}, 10, "")
	if fallback.RoundTripsPerSettlement != 4 || fallback.Method != methodDatabase {
		t.Fatalf("pg_stat_database fallback = %+v", fallback)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	if p := percentile(xs, 0.5); p != 5 {
		t.Errorf("p50 = %v, want 5", p)
	}
	if p := percentile(xs, 0.99); p != 10 {
		t.Errorf("p99 = %v, want 10", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("p50 of nothing = %v", p)
	}
}

func TestIsUtility(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{"BEGIN": true, "begin read write": true, "COMMIT;": true, "ROLLBACK": true,
		"SELECT 1": false, "UPDATE steps SET x = 1": false, "": false} {
		if isUtility(q) != want {
			t.Errorf("isUtility(%q) = %v", q, !want)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	got, err := withDatabase("postgres://u:p@127.0.0.1:5432/settle?sslmode=disable&dbname=x", "settle_bench_1", "binary_parameters=yes")
	if err != nil || got != "postgres://u:p@127.0.0.1:5432/settle_bench_1?binary_parameters=yes&sslmode=disable" {
		t.Fatalf("withDatabase = %q, %v", got, err)
	}
	if _, err := withDatabase("host=x dbname=y", "settle_bench_1", ""); err == nil {
		t.Fatal("a key=value string was accepted")
	}
	if err := dropDatabase("postgres://127.0.0.1/x", "settle"); err == nil || !strings.Contains(err.Error(), "does not start with") {
		t.Fatalf("dropDatabase of another database: %v", err)
	}
}

func TestProcStatus(t *testing.T) {
	t.Parallel()
	st, err := readProcStatus("self")
	if err != nil || st.rss <= 0 || st.hwm < st.rss {
		t.Fatalf("readProcStatus(self) = %+v, %v", st, err)
	}
	cpu, err := procCPUSeconds(strconv.Itoa(os.Getpid()))
	if err != nil || cpu < 0 {
		t.Fatalf("procCPUSeconds = %v, %v", cpu, err)
	}
	if memTotal() <= 0 {
		t.Fatal("no MemTotal")
	}
}

// TestDatabaseAndRedisLifecycle creates and drops a bench database on the
// test server, and starts and stops a private redis-server.
func TestDatabaseAndRedisLifecycle(t *testing.T) {
	admin := os.Getenv("SETTLE_DATABASE_URL")
	if admin == "" {
		t.Fatal(`SETTLE_DATABASE_URL is not set: run make test, or eval "$(scripts/devenv.sh up test)" first`)
	}
	ctx := context.Background()
	name, dbURL, err := createDatabase(ctx, admin, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("the new database does not answer: %v", err)
	}
	// an open connection does not stop the drop
	if err := dropDatabase(admin, name); err != nil {
		t.Fatal(err)
	}
	db.Close()
	adminDB, err := sql.Open("postgres", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer adminDB.Close()
	var n int
	if err := adminDB.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %s still there (%d, %v)", name, n, err)
	}

	r, err := startRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rc.Close()
	if mem, err := usedMemory(ctx, rc); err != nil || mem <= 0 {
		t.Fatalf("used_memory = %d, %v", mem, err)
	}
	// A few tasks weigh what a task weighs (a hash of some 200 bytes), not
	// whatever else used_memory moved by meanwhile; they are gone afterwards.
	opt := asynq.RedisClientOpt{Addr: r.addr()}
	for _, n := range []int{3, 30} {
		per, err := bytesPerQueuedTask(ctx, rc, opt, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d queued tasks: %.1f bytes each", n, per)
		if per < 100 || per > 1000 {
			t.Errorf("%d queued tasks weigh %.1f bytes each, want 100 to 1000", n, per)
		}
	}
	if keys, err := rc.Keys(ctx, "asynq:{"+jobs.QueueSteps+"}:t:*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("%d task keys left after weighing (%v)", len(keys), err)
	}
	if _, err := bytesPerQueuedTask(ctx, rc, opt, 0); err == nil {
		t.Error("weighing no tasks did not fail")
	}
	r.stop()
	if r.proc.Alive() {
		t.Fatal("redis-server still runs after stop")
	}
}

// The engine log summary counts WARN and ERROR lines and keeps the first
// of each, so a run's warnings can be read without its log.
func TestCountLogLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine.log")
	log := `time=1 level=INFO msg="started"
time=2 level=WARN msg="enqueue failed; the relay will retry" step=7
time=3 level=ERROR msg="poll shard failed" err=boom
time=4 level=WARN msg="second warning"
time=5 level=ERROR msg="second error"
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got := countLogLines(path)
	if got.Warnings != 2 || got.Errors != 2 {
		t.Errorf("counted %d warnings and %d errors, want 2 and 2", got.Warnings, got.Errors)
	}
	if !strings.Contains(got.FirstWarning, "enqueue failed") || !strings.Contains(got.FirstError, "poll shard failed") {
		t.Errorf("first warning %q, first error %q: want the first line of each", got.FirstWarning, got.FirstError)
	}
	if none := countLogLines(filepath.Join(t.TempDir(), "missing.log")); none != (LogSummary{}) {
		t.Errorf("a missing log gave %+v, want nothing counted", none)
	}
}
