package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

// Run builds an isolated installation, seeds the customers, pays them all,
// runs the engine until every settlement has ended, measures, checks the
// money and tears the installation down.
func Run(ctx context.Context, o Options) (*Result, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	p := newProgress(o.Progress, o.ProgressTTY)
	p.phase("setting up an isolated installation: a new database, a private redis-server, a sandbox bank")
	in, err := install(ctx, o)
	if err != nil {
		return nil, err
	}
	defer in.close()
	rc := redis.NewClient(&redis.Options{Addr: in.redis.addr()})
	defer rc.Close()
	r := &Result{Params: paramsOf(o), Machine: machine(ctx, in, rc), Dialect: o.Dialect}
	if o.KeepDB {
		r.Database = in.dbName
	}
	if err := prepare(ctx, in, o, p, rc, r); err != nil {
		return nil, err
	}
	if err := payday(ctx, in, o, p, rc, r); err != nil {
		return nil, err
	}
	if err := check(ctx, in, o, r); err != nil {
		return nil, err
	}
	if o.RateLimit > 0 {
		r.RateInUse = ratio(r.TransfersPerSec, o.RateLimit)
	}
	if o.Floor {
		p.phase("floor: PostgreSQL single-row updates and Asynq no-op tasks on the same servers, %s each", o.FloorDuration)
		opt, _ := jobs.ParseRedisURL(in.redis.url())
		if r.Floor, err = measureFloor(ctx, in.dbURL, opt, o.Concurrency, o.FloorDuration); err != nil {
			return nil, err
		}
		r.Floor.StepsPerPGUpdate = ratio(r.SteadyStepsPerSec, r.Floor.PGUpdateTxPerSec)
		r.Floor.StepsPerAsynqTask = ratio(r.SteadyStepsPerSec, r.Floor.AsynqNoopTasksPerSec)
	}
	r.Targets = targets(r, o)
	r.Machine.LoadAvgAtEnd = loadAvg()
	return r, nil
}

var errNoDeposits = errors.New("no customers were seeded")

// prepare seeds the customers, measures Redis per queued task and sets the
// bank's faults.
func prepare(ctx context.Context, in *installation, o Options, p *progress, rc *redis.Client, r *Result) error {
	p.phase("seeding %d customers (demo seeder: accounts at the sandbox bank, customers and obligations in the database)", o.Customers)
	t := time.Now()
	ds, err := seed(ctx, in, o, func(n int64) { p.bar("seeding", n, int64(o.Customers), "") })
	p.end()
	if err != nil {
		return err
	}
	in.deposits = ds
	r.SeedSec = time.Since(t).Seconds()
	opt, err := jobs.ParseRedisURL(in.redis.url())
	if err != nil {
		return err
	}
	n := min(o.Customers, 100_000)
	p.phase("redis: enqueueing %d step tasks as the engine does, to weigh one", n)
	if r.RedisBytesPerQueuedTask, err = bytesPerQueuedTask(ctx, rc, opt, n); err != nil {
		return err
	}
	return in.bank.setFaults(ctx, sandboxFaults(o))
}

// payday pays the customers, runs the engine until every settlement ended
// and measures what that took.
func payday(ctx context.Context, in *installation, o Options, p *progress, rc *redis.Client, r *Result) error {
	if len(in.deposits) == 0 {
		return errNoDeposits
	}
	if o.ArrivalRate == 0 {
		p.phase("payday: crediting all %d virtual accounts at once", len(in.deposits))
		t := time.Now()
		if err := payAll(ctx, in, in.deposits); err != nil {
			return err
		}
		r.PaySec = time.Since(t).Seconds()
	}
	stats := newDBStats(ctx, in.monitor, &in.own)
	before, err := snapshotAll(ctx, in, stats, rc)
	if err != nil {
		return err
	}
	var run runner = newInProcess(in, o.NewEngine)
	if o.Processes > 0 {
		run = &workerProcs{in: in, exe: o.Executable, n: o.Processes}
	}
	defer run.stop()
	start, usage, pgCPU, err := runEngine(ctx, in, o, p, rc, r, run)
	if err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // backends report their statistics as they exit
	after, err := snapshotAll(ctx, in, stats, rc)
	if err != nil {
		return err
	}
	tables, err := in.deadTuples(ctx)
	if err != nil {
		return err
	}
	t, err := analyze(ctx, in.db.SQL(), start)
	if err != nil {
		return err
	}
	fill(r, t, before, after, usage, pgCPU, in, run)
	r.DB.Tables = tables
	if err := measureDetection(ctx, in, o, start, before.bank, after.bank, in.detected, r); err != nil {
		return fmt.Errorf("detection: %w", err)
	}
	return depositLatency(ctx, in, r)
}

// runEngine starts the engine, waits until every settlement ended, reads
// what the engine and its PostgreSQL backends used, and stops it. start is
// the engine's start by the database's clock.
func runEngine(ctx context.Context, in *installation, o Options, p *progress, rc *redis.Client, r *Result, run runner) (
	start time.Time, usage procUsage, pgCPU float64, err error) {
	if o.ArrivalRate == 0 {
		if err := awaitTick(ctx, o.PollEvery, p); err != nil {
			return start, usage, 0, err
		}
	}
	if start, err = in.dbNow(ctx); err != nil {
		return start, usage, 0, err
	}
	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			return start, usage, 0, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	p.phase("running the engine (%s, concurrency %d, bank latency %s ms, rate limit %g/s)", run.scope(), o.Concurrency, o.Latency, o.RateLimit)
	if err := run.start(ctx); err != nil {
		return start, usage, 0, err
	}
	if err := waitEnded(ctx, in, o, p, rc, r); err != nil {
		return start, usage, 0, err
	}
	usage, err = run.usage() // before stop: the workers' /proc entries go with them
	if err != nil {
		return start, usage, 0, fmt.Errorf("read the engine's usage: %w", err)
	}
	pgCPU = backendCPU(ctx, in)
	run.stop()
	return start, usage, pgCPU, nil
}

// awaitTick waits until a second before the poll's next tick (ticks fall
// on multiples of the interval), so that the engine starts as if the
// payday's salaries had landed just before a tick, whatever the interval.
func awaitTick(ctx context.Context, every time.Duration, p *progress) error {
	wait := time.Until(time.Now().Truncate(every).Add(every)) - time.Second
	if wait <= 0 {
		return nil
	}
	p.phase("waiting %s to start the engine a second before a poll tick", wait.Round(100*time.Millisecond))
	select {
	case <-time.After(wait):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitEnded polls until every deposit's settlement has ended, showing
// progress and watching Redis's memory.
func waitEnded(ctx context.Context, in *installation, o Options, p *progress, rc *redis.Client, r *Result) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	total := int64(len(in.deposits))
	payErr := make(chan error, 1)
	paid := o.ArrivalRate == 0 // every credit has returned
	if !paid {
		go func() { payErr <- payPaced(ctx, in, in.deposits, o.ArrivalRate) }()
	}
	var lastEnded, lastJournal int64 = -1, -1
	lastMove := time.Now()
	r.Redis.BaselineUsedMemory, _ = usedMemory(ctx, rc)
	tk := time.NewTicker(2 * time.Second) // a count of the settlements costs the database too
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			p.end()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%d of %d settlements ended within --timeout %s: raise it", lastEnded, total, o.Timeout)
			}
			return fmt.Errorf("waiting for the settlements: %w (%d of %d ended)", ctx.Err(), lastEnded, total)
		case err := <-payErr:
			paid = true
			if err != nil {
				p.end()
				return err
			}
		case <-tk.C:
		}
		ended, failed, created, journal, err := in.progressCounts(ctx)
		if err != nil {
			p.end()
			return fmt.Errorf("progress: %w", err)
		}
		if mem, err := usedMemory(ctx, rc); err == nil {
			r.Redis.PeakUsedMemory = max(r.Redis.PeakUsedMemory, mem)
		}
		if age, err := in.oldestWriteTx(ctx); err == nil {
			r.DB.LongestWriteTxSec = max(r.DB.LongestWriteTxSec, age)
		}
		p.bar("payday", ended, total, fmt.Sprintf("detected %d  failed %d", created, failed))
		if created >= total && paid && in.detected == nil {
			in.markDetected(ctx)
		}
		if ended >= total && paid {
			p.end()
			return nil
		}
		// Progress is a settlement ending or money moving: on a payday
		// burst the steps of every settlement advance together, and the
		// first settlements end only late in the run.
		if ended != lastEnded || journal != lastJournal {
			lastEnded, lastJournal, lastMove = ended, journal, time.Now()
		} else if time.Since(lastMove) > o.StallAfter {
			p.end()
			return fmt.Errorf("%w: %d of %d ended, %d detected, no money moved for %s (see the engine's log)", errStalled, ended, total, created, o.StallAfter)
		}
	}
}

// depositLatency measures credit → settled: from the moment the bank
// confirmed the salary (the bench's clock) to the settlement's finished_at
// (the database's clock, on the same machine). It includes the wait for
// the poll to find the deposit, which detection → settled leaves out.
func depositLatency(ctx context.Context, in *installation, r *Result) error {
	rows, err := in.db.SQL().QueryContext(ctx, `SELECT customer_id, finished_at FROM settlements WHERE status = 'SETTLED'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	finished := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return err
		}
		finished[id] = at
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var ms []float64
	for _, d := range in.deposits {
		if at, ok := finished[d.customer.ID]; ok && !d.paidAt.IsZero() {
			ms = append(ms, float64(at.Sub(d.paidAt))/float64(time.Millisecond))
		}
	}
	r.DepositLatencyP50MS, r.DepositLatencyP99MS = percentile(ms, 0.5), percentile(ms, 0.99)
	return nil
}

// percentile is the nearest-rank percentile of xs (sorted in place).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	i := int(math.Ceil(p*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// counters is one snapshot of every counter the bench compares.
type counters struct {
	db       dbCounters
	bank     banksim.Stats
	redis    map[string]int64
	redisCPU float64
}

func snapshotAll(ctx context.Context, in *installation, stats *dbStats, rc *redis.Client) (counters, error) {
	var c counters
	var err error
	if c.db, err = stats.snapshot(ctx); err != nil {
		return c, err
	}
	if c.bank, err = in.bank.client.Stats(ctx); err != nil {
		return c, err
	}
	if c.redis, err = commandCalls(ctx, rc); err != nil {
		return c, err
	}
	c.redisCPU, _ = procCPUSeconds(fmt.Sprint(in.redis.proc.Pid()))
	return c, nil
}

// backendCPU sums the CPU time of the PostgreSQL backends connected to the
// bench database, when the server runs on this machine (0 otherwise). The
// engine's connections are opened when it starts, so this is its share.
func backendCPU(ctx context.Context, in *installation) float64 {
	in.own.Add(1)
	rows, err := in.monitor.QueryContext(ctx, `SELECT `+benchMarker+` pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return 0
	}
	defer rows.Close()
	var sum float64
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil || !strings.Contains(processCmdline(pid), "postgres") {
			continue
		}
		if s, err := procCPUSeconds(fmt.Sprint(pid)); err == nil {
			sum += s
		}
	}
	return sum
}

// fill computes the summary from the database's view of the run and the
// counters.
func fill(r *Result, t throughput, before, after counters, u procUsage, pgCPU float64, in *installation, run runner) {
	n := t.ended
	secs := t.elapsed.Seconds()
	r.Settlements, r.StepsDone, r.ElapsedSec = t.statuses, t.stepsDone, secs
	r.SettlementsPerSec, r.StepsPerSec = ratio(float64(n), secs), ratio(float64(t.stepsDone), secs)
	if w := t.steady; !w.to.IsZero() {
		r.SteadySec = w.to.Sub(w.from).Seconds()
		r.SteadySettlementsPerSec = ratio(float64(w.settlements), r.SteadySec)
		r.SteadyStepsPerSec = ratio(float64(w.steps), r.SteadySec)
		r.SteadyLatencyP99MS = w.p99MS
	}
	r.LatencyP50MS, r.LatencyP95MS, r.LatencyP99MS, r.LatencyMaxMS = t.lat[0], t.lat[1], t.lat[2], t.lat[3]
	r.DetectionP99MS = t.detectP99
	r.Series = t.series

	r.Bank = BankUsage{Calls: map[string]int64{}, RateLimited: after.bank.RateLimited - before.bank.RateLimited,
		ServerErrors: after.bank.ServerErrors - before.bank.ServerErrors, TransfersApplied: after.bank.TransfersApplied - before.bank.TransfersApplied}
	var calls int64
	for k, v := range after.bank.Requests {
		if d := v - before.bank.Requests[k]; d > 0 && banksim.IsDialectEndpoint(k) {
			r.Bank.Calls[k] = d
			calls += d
		}
	}
	r.BankCallsPerSettlement = ratio(float64(calls), float64(n))

	longest := r.DB.LongestWriteTxSec
	r.DB = dbUsage(before.db, after.db, n, in.dbURL)
	r.DB.LongestWriteTxSec = longest
	r.DBRoundTripsPerSettlement, r.DBRoundTripsMethod = r.DB.RoundTripsPerSettlement, r.DB.Method
	peak, base := r.Redis.PeakUsedMemory, r.Redis.BaselineUsedMemory
	r.Redis = redisUsage(before.redis, after.redis, n)
	r.Redis.PeakUsedMemory, r.Redis.BaselineUsedMemory = peak, base
	r.Redis.CPUSeconds = after.redisCPU - before.redisCPU

	r.CPU = CPUUsage{EngineSeconds: u.CPUSeconds, EngineScope: run.scope(), PostgresSeconds: pgCPU, RedisSeconds: r.Redis.CPUSeconds,
		PostgresPerSettlement: ratio(pgCPU, float64(n)), RedisPerSettlement: ratio(r.Redis.CPUSeconds, float64(n))}
	r.CPUSecondsPerSettlement = ratio(u.CPUSeconds, float64(n))
	r.PeakRSSBytes = u.PeakRSS
	r.Memory = MemoryUsage{PeakRSSBytes: u.PeakRSS, PeakRSSSumBytes: u.PeakRSSSum, Processes: u.Processes, Scope: run.scope()}
	if !u.RSSAccurate {
		r.Memory.Scope += "; the peak could not be reset at the engine's start, so it includes seeding"
	}
	r.EngineLog = run.logCounts()
}

// check verifies the money: every invariant the database holds, and the
// bank's journal against the transfers the engine recorded.
func check(ctx context.Context, in *installation, o Options, r *Result) error {
	vs, err := in.db.Verify(ctx)
	if err != nil {
		return err
	}
	r.Violations = []string{}
	for _, v := range vs {
		r.Violations = append(r.Violations, fmt.Sprintf("%s settlement=%d: %s", v.Check, v.SettlementID, v.Detail))
	}
	journal, err := in.bank.client.Journal(ctx, 0)
	if err != nil {
		return fmt.Errorf("read the bank's journal: %w", err)
	}
	r.TransfersPerSec = burstRate(journal)
	ours, err := in.db.SucceededTransfers(ctx, providerName)
	if err != nil {
		return err
	}
	for _, m := range pipeline.MatchJournal(ours, banksim.BankTransfers(journal, dialect(o.Dialect).AttemptKey), nil) {
		r.Violations = append(r.Violations, fmt.Sprintf("bank_journal_%s %s: %s", m.Kind, m.Key, m.Detail))
	}
	if int64(len(ours)) != r.Bank.TransfersApplied {
		r.Violations = append(r.Violations, fmt.Sprintf("transfers: the engine recorded %d, the bank applied %d during the run",
			len(ours), r.Bank.TransfersApplied))
	}
	r.VerifyOK = len(r.Violations) == 0
	return nil
}

// burstRate is the rate of the journal's transfers between the 5th and
// the 95th percentile of their times.
func burstRate(journal []banksim.JournalEntry) float64 {
	if len(journal) < 20 {
		return 0
	}
	at := make([]time.Time, len(journal))
	for i, e := range journal {
		at[i] = e.AppliedAt
	}
	slices.SortFunc(at, time.Time.Compare)
	lo, hi := len(at)*5/100, len(at)*95/100
	span := at[hi].Sub(at[lo]).Seconds()
	return ratio(float64(hi-lo), span)
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}
