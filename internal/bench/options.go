package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/settle-dev/settle/internal/config"
)

// Engine is a settle daemon the bench runs in its own process, assembled
// exactly as `settle serve` assembles it.
type Engine interface {
	// Start starts the workers, the scheduler and the HTTP server.
	Start() error
	// Stop lets running steps finish within ctx and closes every connection.
	Stop(ctx context.Context)
}

// EngineFactory builds an Engine from a configuration, as `settle serve`
// does; cmd/settle passes its own daemon wiring.
type EngineFactory func(ctx context.Context, cfg *config.Config, logger *slog.Logger) (Engine, error)

// Dialects the bench can drive: the sandbox bank serves both on one
// server, and the provider of the bench's configuration speaks one.
var Dialects = []string{"rest", "openbanking"}

// Options are one benchmark run's parameters. Zero fields take the default
// named in their comment.
type Options struct {
	// AdminURL points at the PostgreSQL server (SETTLE_DATABASE_URL). The
	// bench creates settle_bench_<random> there and drops it at the end; it
	// touches no other database. Required.
	AdminURL string
	// DBParams are extra connection parameters added to the bench
	// database's URL (such as "binary_parameters=yes"), for experiments.
	DBParams string
	// Customers is how many customers are paid on the payday (default 10000).
	Customers int
	// Concurrency is worker.concurrency: steps run at once per process
	// (default the configuration's, 64).
	Concurrency int
	// DBConns is database.max_open_conns per process (default the
	// configuration's, 20).
	DBConns int
	// Latency is the bank's answer delay on its dialect endpoints.
	Latency Latency
	// RateLimit is the bank's limit in requests per second (0: none).
	RateLimit float64
	// Faults are the bank's fault rates on its dialect endpoints (zero:
	// none), drawn from the run's seed.
	Faults BankFaults
	// Dialect is the bank dialect the provider speaks (default "rest"):
	// "openbanking" asks about one account per balance call.
	Dialect string
	// Processes is 0 to run the engine inside the bench process, or how
	// many `settle serve` worker processes to start (Executable).
	Processes int
	// Executable is the settle binary for worker processes.
	Executable string
	// NewEngine builds the in-process engine. Required when Processes is 0.
	NewEngine EngineFactory
	// ArrivalRate spreads the deposits at this many a second; 0 (the
	// default) credits every virtual account at once: the payday.
	ArrivalRate float64
	// PollEvery is the balance poll's interval (default 30s).
	PollEvery time.Duration
	// Seed makes obligations and salaries repeatable (default 1).
	Seed uint64
	// Timeout bounds the wait for every settlement to end (default 2h).
	Timeout time.Duration
	// StallAfter aborts the run when no settlement ends and no money moves
	// for this long
	// (default 3m).
	StallAfter time.Duration
	// Floor also measures PostgreSQL update transactions/s and Asynq no-op
	// tasks/s on the same servers, for FloorDuration each (default 10s).
	Floor         bool
	FloorDuration time.Duration
	// KeepDB leaves the bench database in place (its name is in the result).
	KeepDB bool
	// Progress receives the progress display (nil: none). ProgressTTY
	// redraws one line; otherwise a line is printed every few seconds.
	Progress    io.Writer
	ProgressTTY bool
	// CPUProfile, when set, receives a CPU profile of the bench process
	// while the engine runs.
	CPUProfile io.Writer
}

// BankFaults are the sandbox bank's fault rates, each a probability 0..1
// per dialect request.
type BankFaults struct {
	// ErrorRate answers HTTP 500 without doing anything (--error-rate).
	ErrorRate float64
	// ApplyThenDrop applies a transfer, then closes the connection without
	// an answer: its outcome is unknown (--apply-then-drop).
	ApplyThenDrop float64
	// Processing answers a new transfer "processing": its outcome is
	// unknown until its status is asked (--processing).
	Processing float64
}

// ErrUsage marks an Options problem the user must fix (bad flag values).
var ErrUsage = errors.New("bad benchmark options")

func (o Options) withDefaults() Options {
	if o.Customers == 0 {
		o.Customers = 10000
	}
	if o.Concurrency == 0 {
		o.Concurrency = config.DefaultWorkerConcurrency
	}
	if o.DBConns == 0 {
		o.DBConns = config.DefaultMaxOpenConns
	}
	if o.Dialect == "" {
		o.Dialect = "rest"
	}
	if o.PollEvery == 0 {
		o.PollEvery = 30 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Hour
	}
	if o.StallAfter == 0 {
		o.StallAfter = 3 * time.Minute
	}
	if o.FloorDuration == 0 {
		o.FloorDuration = 10 * time.Second
	}
	return o
}

// validate returns every problem at once, each wrapping ErrUsage.
func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...))
	}
	if o.AdminURL == "" {
		bad("no PostgreSQL server: set SETTLE_DATABASE_URL (eval \"$(scripts/devenv.sh up test)\" starts one)")
	}
	if o.Customers < 1 || o.Customers > 1_000_000 {
		bad("--customers %d: must be 1..1000000", o.Customers)
	}
	if o.Concurrency < 1 || o.Concurrency > 1000 {
		bad("--concurrency %d: must be 1..1000 (worker.concurrency)", o.Concurrency)
	}
	if o.DBConns < config.MinOpenConns || o.DBConns > 1000 {
		bad("--db-conns %d: must be %d..1000 (database.max_open_conns)", o.DBConns, config.MinOpenConns)
	}
	if !supported(o.Dialect) {
		bad("--dialect %q: the bench drives %s", o.Dialect, strings.Join(Dialects, " or "))
	}
	if o.RateLimit < 0 || o.RateLimit > 1_000_000 {
		bad("--rate-limit %g: must be 0 (none) to 1000000 requests/s", o.RateLimit)
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--error-rate", o.Faults.ErrorRate}, {"--apply-then-drop", o.Faults.ApplyThenDrop}, {"--processing", o.Faults.Processing}} {
		if !(r.v >= 0 && r.v <= 1) {
			bad("%s %g: must be 0..1 (a probability per bank request)", r.flag, r.v)
		}
	}
	if o.Processes < 0 || o.Processes > 64 {
		bad("--processes %d: must be 0 (in-process) to 64", o.Processes)
	}
	if o.Processes > 0 && o.Executable == "" {
		bad("worker processes need the settle binary")
	}
	if o.Processes == 0 && o.NewEngine == nil {
		bad("in-process runs need an engine factory")
	}
	if o.ArrivalRate < 0 || math.IsInf(o.ArrivalRate, 0) || math.IsNaN(o.ArrivalRate) {
		bad("--arrival-rate %g: must be 0 (all at once) or more", o.ArrivalRate)
	}
	if o.PollEvery < time.Second || o.PollEvery%time.Second != 0 {
		bad("--poll-every %s: must be whole seconds, at least 1s (the cron runs no faster)", o.PollEvery)
	}
	if o.FloorDuration < time.Second {
		bad("--floor-duration %s: must be at least 1s", o.FloorDuration)
	}
	if o.Timeout <= 0 || o.StallAfter <= 0 {
		bad("--timeout and the stall limit must be more than 0s")
	}
	return errors.Join(errs...)
}

func supported(dialect string) bool {
	for _, d := range Dialects {
		if d == dialect {
			return true
		}
	}
	return false
}

// Latency is the sandbox bank's answer delay: fixed (P99 == P50) or a
// log-normal distribution with the given median and 99th percentile.
type Latency struct {
	P50 time.Duration
	P99 time.Duration
}

// Fixed reports whether every answer waits the same time.
func (l Latency) Fixed() bool { return l.P99 == l.P50 }

// String is the flag's form: "20" or "20,200" (milliseconds).
func (l Latency) String() string {
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
	}
	if l.Fixed() {
		return ms(l.P50)
	}
	return ms(l.P50) + "," + ms(l.P99)
}

// ParseLatency reads "MS" (a fixed delay) or "P50,P99" (milliseconds, a
// log-normal distribution with that median and 99th percentile).
func ParseLatency(s string) (Latency, error) {
	parts := strings.Split(strings.TrimSpace(s), ",")
	if len(parts) > 2 || s == "" {
		return Latency{}, fmt.Errorf("%w: --latency %q: want milliseconds (20) or p50,p99 (20,200)", ErrUsage, s)
	}
	var ds []time.Duration
	for _, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v > 60_000 || math.IsNaN(v) {
			return Latency{}, fmt.Errorf("%w: --latency %q: %q is not 0..60000 milliseconds", ErrUsage, s, p)
		}
		ds = append(ds, time.Duration(v*float64(time.Millisecond)))
	}
	l := Latency{P50: ds[0], P99: ds[len(ds)-1]}
	if l.P99 < l.P50 {
		return Latency{}, fmt.Errorf("%w: --latency %q: p99 must not be below p50", ErrUsage, s)
	}
	if !l.Fixed() && l.P50 == 0 {
		return Latency{}, fmt.Errorf("%w: --latency %q: a distribution needs a p50 above 0", ErrUsage, s)
	}
	return l, nil
}
