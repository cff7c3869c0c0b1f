package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/internal/bench"
	"github.com/settle-dev/settle/internal/config"
)

// benchFlags are the flags of `settle bench`.
type benchFlags struct {
	customers, concurrency, dbConns, processes int
	latency, dialect, chart, cpuProfile        string
	dbParams                                   string
	rateLimit, arrivalRate                     float64
	faults                                     bench.BankFaults
	pollEvery, timeout, floorDuration          time.Duration
	seed                                       uint64
	floor, jsonOnly, keepDB                    bool
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Payday benchmark: settle N customers' salaries on an isolated installation and report as JSON",
		Long: "Create an isolated installation — a new database settle_bench_<random> on the server of\n" +
			"SETTLE_DATABASE_URL (dropped at the end), a private redis-server, an in-process sandbox bank —\n" +
			"create --customers customers with realistic obligations, credit every virtual account at once,\n" +
			"run the engine as `settle serve` does (in this process, or --processes worker processes)\n" +
			"until every settlement has ended, check the money, and print a JSON summary on stdout.\n" +
			"Progress goes to stderr. Exit 3 when the money does not add up.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.customers, "customers", 10000, "customers paid on the payday")
	fl.IntVar(&f.concurrency, "concurrency", config.DefaultWorkerConcurrency, "worker.concurrency: steps run at once per process")
	fl.IntVar(&f.dbConns, "db-conns", config.DefaultMaxOpenConns, "database.max_open_conns per process")
	fl.StringVar(&f.latency, "latency", "0", `bank answer delay in ms: fixed ("20") or a distribution ("p50,p99", e.g. "20,200")`)
	fl.Float64Var(&f.rateLimit, "rate-limit", 0, "bank rate limit in requests/s (0: none)")
	fl.Float64Var(&f.faults.ErrorRate, "error-rate", 0, "share of bank requests answered HTTP 500 without doing anything (0..1)")
	fl.Float64Var(&f.faults.ApplyThenDrop, "apply-then-drop", 0, "share of transfers the bank applies and then drops the connection: outcome unknown (0..1)")
	fl.Float64Var(&f.faults.Processing, "processing", 0, `share of transfers the bank answers "processing": outcome unknown until asked (0..1)`)
	fl.StringVar(&f.dialect, "dialect", "rest", "bank dialect of the provider (rest, or openbanking: one account per balance call)")
	fl.IntVar(&f.processes, "processes", 0, "0: run the engine in this process; N: start N `settle serve` worker processes")
	fl.Float64Var(&f.arrivalRate, "arrival-rate", 0, "deposits per second spread over the run (0: all at once, the payday)")
	fl.DurationVar(&f.pollEvery, "poll-every", 30*time.Second, "balance poll interval (poll.schedule); the engine starts a second before a tick. Near-payday VAs are polled at every tick, so a short interval costs calls and queries")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed of obligations and salaries")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Hour, "give up when the settlements have not all ended by then")
	fl.BoolVar(&f.floor, "floor", false, "also measure PostgreSQL update tx/s and Asynq no-op tasks/s on the same servers")
	fl.DurationVar(&f.floorDuration, "floor-duration", 10*time.Second, "how long each floor measurement runs")
	fl.StringVar(&f.chart, "chart", "", "write throughput and latency over time to this .svg file")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process while the engine runs (go tool pprof); with --processes it covers the bench and the sandbox bank only")
	fl.BoolVar(&f.jsonOnly, "json-only", false, "print only the JSON: no progress, no summary")
	fl.BoolVar(&f.keepDB, "keep-db", false, "keep the bench database for inspection (its name is in the JSON)")
	fl.StringVar(&f.dbParams, "db-params", "", `extra connection parameters for the engine, e.g. "binary_parameters=yes"`)
	return cmd
}

func runBench(cmd *cobra.Command, f benchFlags) error {
	opts, err := f.options()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if !f.jsonOnly {
		opts.Progress, opts.ProgressTTY = cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr())
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		opts.CPUProfile = pf
	}
	res, err := bench.Run(cmd.Context(), opts)
	if errors.Is(err, bench.ErrUsage) {
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if f.chart != "" {
		if err := writeChart(f.chart, res); err != nil {
			return err
		}
	}
	if !f.jsonOnly {
		_ = bench.WriteSummary(cmd.ErrOrStderr(), res)
	}
	if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
		return err
	}
	if !res.VerifyOK {
		return &exitError{code: 3, err: fmt.Errorf("bench: the money does not add up: %d violations", len(res.Violations))}
	}
	return nil
}

func (f benchFlags) options() (bench.Options, error) {
	lat, err := bench.ParseLatency(f.latency)
	if err != nil {
		return bench.Options{}, err
	}
	if f.chart != "" && !strings.EqualFold(filepath.Ext(f.chart), ".svg") {
		return bench.Options{}, fmt.Errorf("--chart %s: only SVG is written (name it .svg; rsvg-convert or a browser makes a PNG of it)", f.chart)
	}
	o := bench.Options{
		AdminURL: os.Getenv("SETTLE_DATABASE_URL"), DBParams: f.dbParams,
		Customers: f.customers, Concurrency: f.concurrency, DBConns: f.dbConns,
		Latency: lat, RateLimit: f.rateLimit, Faults: f.faults, Dialect: f.dialect, Processes: f.processes,
		ArrivalRate: f.arrivalRate, PollEvery: f.pollEvery, Seed: f.seed, Timeout: f.timeout,
		Floor: f.floor, FloorDuration: f.floorDuration, KeepDB: f.keepDB,
		NewEngine: newBenchEngine,
	}
	if f.processes > 0 {
		if o.Executable, err = os.Executable(); err != nil {
			return o, fmt.Errorf("find the settle binary for worker processes: %w", err)
		}
	}
	return o, nil
}

// newBenchEngine is `settle serve`'s daemon, for an in-process run.
func newBenchEngine(ctx context.Context, cfg *config.Config, logger *slog.Logger) (bench.Engine, error) {
	d, err := newDaemon(ctx, cfg, logger, roleAll, nil)
	if err != nil {
		return nil, err
	}
	return daemonEngine{d}, nil
}

// daemonEngine adapts the daemon to bench.Engine.
type daemonEngine struct{ d *daemon }

func (e daemonEngine) Start() error             { return e.d.start() }
func (e daemonEngine) Stop(ctx context.Context) { e.d.stop(ctx) }

func writeChart(path string, res *bench.Result) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--chart: %w", err)
	}
	if err := bench.WriteChart(out, res); err != nil {
		out.Close()
		return fmt.Errorf("--chart %s: %w", path, err)
	}
	return out.Close()
}
