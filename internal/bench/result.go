package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Result is one run's summary, printed as JSON.
type Result struct {
	SettlementsPerSec       float64 `json:"settlements_per_sec"`
	StepsPerSec             float64 `json:"steps_per_sec"`
	SteadySettlementsPerSec float64 `json:"steady_settlements_per_sec"`
	SteadyStepsPerSec       float64 `json:"steady_steps_per_sec"`
	// Latencies are detection → settled: a SETTLED settlement's created_at
	// (the poll found the deposit) to its finished_at, by the database.
	LatencyP50MS       float64 `json:"latency_p50_ms"`
	LatencyP95MS       float64 `json:"latency_p95_ms"`
	LatencyP99MS       float64 `json:"latency_p99_ms"`
	LatencyMaxMS       float64 `json:"latency_max_ms"`
	SteadyLatencyP99MS float64 `json:"steady_latency_p99_ms"`
	// DepositLatency*MS are credit → settled: from the bank confirming
	// the salary to the settlement's end, the poll's wait included.
	DepositLatencyP50MS float64 `json:"deposit_to_settled_p50_ms"`
	DepositLatencyP99MS float64 `json:"deposit_to_settled_p99_ms"`
	// DetectionP99MS is engine start → detection for the 99th percentile
	// deposit: how long the poll took to find the payday's deposits.
	DetectionP99MS float64 `json:"detection_p99_ms"`
	// Dialect is the bank dialect the provider spoke; Detection how long
	// the poll took to find the deposits in it, and what that cost.
	Dialect                   string    `json:"dialect"`
	Detection                 Detection `json:"detection"`
	BankCallsPerSettlement    float64   `json:"bank_calls_per_settlement"`
	DBRoundTripsPerSettlement float64   `json:"db_round_trips_per_settlement"`
	DBRoundTripsMethod        string    `json:"db_round_trips_method"`
	RedisBytesPerQueuedTask   float64   `json:"redis_bytes_per_queued_task"`
	PeakRSSBytes              int64     `json:"peak_rss_bytes"`
	CPUSecondsPerSettlement   float64   `json:"cpu_seconds_per_settlement"`
	VerifyOK                  bool      `json:"verify_ok"`
	// TransfersPerSec is the rate of the transfers the bank applied from
	// the 5th to the 95th percentile of their times: the burst, without
	// its ramp and its tail. RateInUse is its share of the bank's rate
	// limit, when one is set.
	TransfersPerSec float64 `json:"transfers_per_sec"`
	RateInUse       float64 `json:"rate_in_use,omitempty"`

	Settlements map[string]int64 `json:"settlements"`
	StepsDone   int64            `json:"steps_done"`
	// ElapsedSec is engine start → the last settlement ended.
	ElapsedSec float64 `json:"elapsed_sec"`
	// SteadySec is the length of the steady window: the 10th to the 90th
	// percentile of settlement end times.
	SteadySec float64 `json:"steady_sec"`
	SeedSec   float64 `json:"seed_sec"`
	PaySec    float64 `json:"pay_sec,omitempty"`

	Bank       BankUsage   `json:"bank"`
	DB         DBUsage     `json:"db"`
	Redis      RedisUsage  `json:"redis"`
	CPU        CPUUsage    `json:"cpu"`
	Memory     MemoryUsage `json:"memory"`
	EngineLog  LogSummary  `json:"engine_log"`
	Violations []string    `json:"violations"`
	Floor      *Floor      `json:"floor,omitempty"`
	Targets    []Target    `json:"targets"`
	Params     Params      `json:"params"`
	Machine    Machine     `json:"machine"`
	// Database is the kept bench database's name (KeepDB).
	Database string `json:"kept_database,omitempty"`

	Series []Point `json:"-"`
}

// BankUsage is what the engine asked of the sandbox bank.
type BankUsage struct {
	Calls            map[string]int64 `json:"calls"`
	RateLimited      int64            `json:"rate_limited"`
	ServerErrors     int64            `json:"server_errors"`
	TransfersApplied int64            `json:"transfers_applied"`
}

// CPUUsage is CPU time spent during the engine phase.
type CPUUsage struct {
	EngineSeconds float64 `json:"engine_seconds"`
	// EngineScope says which processes EngineSeconds covers.
	EngineScope string `json:"engine_scope"`
	// PostgresSeconds covers the backends connected to the bench database
	// (local servers only; omitted otherwise).
	PostgresSeconds float64 `json:"postgres_backend_seconds,omitempty"`
	RedisSeconds    float64 `json:"redis_seconds"`
	// PerSettlement splits cpu_seconds_per_settlement into its parts.
	PostgresPerSettlement float64 `json:"postgres_seconds_per_settlement,omitempty"`
	RedisPerSettlement    float64 `json:"redis_seconds_per_settlement"`
}

// MemoryUsage is the engine's peak resident memory.
type MemoryUsage struct {
	PeakRSSBytes    int64  `json:"peak_rss_bytes"`
	PeakRSSSumBytes int64  `json:"peak_rss_sum_bytes"`
	Processes       int    `json:"processes"`
	Scope           string `json:"scope"`
}

// LogSummary counts the engine's warnings and errors.
type LogSummary struct {
	Warnings     int    `json:"warnings"`
	Errors       int    `json:"errors"`
	FirstWarning string `json:"first_warning,omitempty"`
	FirstError   string `json:"first_error,omitempty"`
}

// Target is one of the performance goals and whether this run meets it.
type Target struct {
	Name    string  `json:"name"`
	Want    string  `json:"want"`
	Value   float64 `json:"value"`
	Met     bool    `json:"met"`
	Applies bool    `json:"applies"` // the run's parameters are the target's
	Note    string  `json:"note,omitempty"`
}

// Params are the run's parameters.
type Params struct {
	Customers   int     `json:"customers"`
	Concurrency int     `json:"concurrency"`
	DBConns     int     `json:"db_conns"`
	Latency     string  `json:"latency_ms"`
	RateLimit   float64 `json:"rate_limit_rps"`
	// The bank's fault rates (BankFaults).
	ErrorRate     float64 `json:"error_rate"`
	ApplyThenDrop float64 `json:"apply_then_drop_rate"`
	Processing    float64 `json:"processing_rate"`
	Dialect       string  `json:"dialect"`
	Processes     int     `json:"processes"`
	ArrivalRate   float64 `json:"arrival_rate"`
	PollEvery     string  `json:"poll_every"`
	Seed          uint64  `json:"seed"`
	DBParams      string  `json:"db_params,omitempty"`
}

func paramsOf(o Options) Params {
	return Params{Customers: o.Customers, Concurrency: o.Concurrency, DBConns: o.DBConns, Latency: o.Latency.String(),
		RateLimit: o.RateLimit, Dialect: o.Dialect, Processes: o.Processes, ArrivalRate: o.ArrivalRate,
		PollEvery: o.PollEvery.String(), Seed: o.Seed, DBParams: o.DBParams,
		ErrorRate: o.Faults.ErrorRate, ApplyThenDrop: o.Faults.ApplyThenDrop, Processing: o.Faults.Processing}
}

// Machine describes where the run ran.
type Machine struct {
	CPUs        int    `json:"nproc"`
	CPUModel    string `json:"cpu_model"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	// Build is the engine's VCS revision, "+dirty" with uncommitted changes
	// (empty when built outside a git checkout).
	Build          string `json:"build,omitempty"`
	Postgres       string `json:"postgres_version"`
	Redis          string `json:"redis_version"`
	LoadAvgAtStart string `json:"loadavg_at_start"`
	LoadAvgAtEnd   string `json:"loadavg_at_end"`
	// The median of 200 sequential round trips before the run (SELECT 1,
	// PING): a busy machine shows here first.
	PostgresRoundTripUS float64 `json:"postgres_round_trip_us"`
	RedisRoundTripUS    float64 `json:"redis_round_trip_us"`
}

func machine(ctx context.Context, in *installation, rc *redis.Client) Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), MemoryBytes: memTotal(), GoVersion: runtime.Version(),
		Kernel: kernel(), LoadAvgAtStart: loadAvg(), Build: buildRevision()}
	in.own.Add(1)
	_ = in.monitor.QueryRowContext(ctx, `SELECT `+benchMarker+` current_setting('server_version')`).Scan(&m.Postgres)
	if info, err := redisInfo(ctx, rc, "server"); err == nil {
		m.Redis = info["redis_version"]
	}
	m.PostgresRoundTripUS = medianMicros(func() error {
		in.own.Add(1)
		_, err := in.monitor.ExecContext(ctx, `SELECT `+benchMarker+` 1`)
		return err
	})
	m.RedisRoundTripUS = medianMicros(func() error { return rc.Ping(ctx).Err() })
	return m
}

// medianMicros times 200 calls of fn and returns the median in µs.
func medianMicros(fn func() error) float64 {
	ds := make([]float64, 0, 200)
	for range 200 {
		t := time.Now()
		if fn() != nil {
			return 0
		}
		ds = append(ds, float64(time.Since(t).Microseconds()))
	}
	sort.Float64s(ds)
	return ds[len(ds)/2]
}

// buildRevision is the binary's vcs.revision, shortened, with "+dirty"
// when vcs.modified.
func buildRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func kernel() string {
	typ, _ := os.ReadFile("/proc/sys/kernel/ostype")
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(strings.TrimSpace(string(typ)) + " " + strings.TrimSpace(string(rel)))
}

// targets compares the run with the goals of the payday issue.
func targets(r *Result, o Options) []Target {
	fixed20 := o.Latency.Fixed() && o.Latency.P50.Milliseconds() == 20
	return []Target{
		{Name: "payday throughput", Want: ">= 167 settlements/s (100,000 customers in 10 min)",
			Value: r.SettlementsPerSec, Met: r.SettlementsPerSec >= 167, Applies: o.Customers >= 100_000 && o.ArrivalRate == 0,
			Note: fmt.Sprintf("%d customers took %.0fs", o.Customers, r.ElapsedSec)},
		{Name: "latency at a steady 100/s", Want: "p99 detection → settled < 1000 ms at 100 deposits/s, 20 ms bank latency",
			Value: r.LatencyP99MS, Met: r.LatencyP99MS < 1000, Applies: o.ArrivalRate == 100 && fixed20,
			Note: fmt.Sprintf("credit → settled p99 %.0f ms (the poll's wait included)", r.DepositLatencyP99MS)},
		{Name: "memory", Want: "peak RSS < 300 MB", Value: float64(r.PeakRSSBytes) / 1e6, Met: r.PeakRSSBytes < 300e6,
			Applies: o.Processes > 0, Note: r.Memory.Scope},
		{Name: "redis per queued task", Want: "< 300 bytes", Value: r.RedisBytesPerQueuedTask, Met: r.RedisBytesPerQueuedTask < 300, Applies: true},
		{Name: "bank rate in use", Want: ">= 95% of the bank's limit of transfers through the burst", Value: 100 * r.RateInUse,
			Met: r.RateInUse >= 0.95, Applies: o.RateLimit > 0,
			Note: fmt.Sprintf("%.1f transfers/s against a limit of %g/s", r.TransfersPerSec, o.RateLimit)},
	}
}
