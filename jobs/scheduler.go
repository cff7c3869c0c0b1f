package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/settle-dev/settle/jobs/cronspec"
	"github.com/settle-dev/settle/store"
)

// Job is one scheduled job: a name, a cron spec and one run, which is
// given the tick it runs for.
type Job struct {
	Name     string
	Schedule string
	Run      func(ctx context.Context, tick time.Time) (any, error)
}

// Scheduler runs jobs on their cron schedules in every replica; each tick
// of a job runs on one replica only, the holder of the job's lease
// (store.ClaimJobTick), and is recorded in the job-run log. "@every"
// schedules are aligned to the clock (every 30s fires at :00 and :30), so
// all replicas agree on which tick is which.
//
// The lease expires by the database's clock unless its holder renews it,
// which it does while the run goes on; no transaction stays open across a
// run. A replica that finds the job's lease held by another keeps claiming
// the job's current tick until the tick is done, so when the holder dies
// or stalls, a waiting replica takes the tick over once the lease expired
// (with a higher fence: the stalled holder's late writes are refused), and
// a daily job is not lost to a replica that died running it.
type Scheduler struct {
	cron    *cron.Cron
	db      SchedulerStore
	replica string
	lease   time.Duration
	logger  *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
}

// SchedulerStore is what the scheduler reads and writes: the jobs' leases
// and the job-run log.
type SchedulerStore interface {
	ClaimJobTick(ctx context.Context, job string, tick time.Time, replica string, lease time.Duration) (store.JobClaim, error)
	RenewJobLease(ctx context.Context, l store.JobLease, lease time.Duration) error
	ReleaseJobLease(ctx context.Context, l store.JobLease) error
	FinishJobRun(ctx context.Context, l store.JobLease, result any, runErr error) error
}

var _ SchedulerStore = (*store.DB)(nil)

// DefaultJobLease is how long a job's lease lasts unless renewed: a
// replica that stalls mid-run holds its job back for about this long.
const DefaultJobLease = 30 * time.Second

// SchedulerConfig tunes a Scheduler.
type SchedulerConfig struct {
	// Replica names this process in the job-run log; default Replica().
	Replica string
	// Lease is how long a job's lease lasts unless renewed, at least 1s;
	// default DefaultJobLease. Its holder renews it every third of it.
	Lease time.Duration
}

// Replica names this process in the job-run and poll-shard logs: host and
// process ID.
func Replica() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// NewScheduler registers the jobs; it refuses a job whose schedule does not
// parse.
func NewScheduler(db SchedulerStore, jobs []Job, cfg SchedulerConfig, logger *slog.Logger) (*Scheduler, error) {
	if cfg.Lease != 0 && cfg.Lease < time.Second {
		return nil, fmt.Errorf("job lease %s: must be at least 1s", cfg.Lease)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		cron:    cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger))),
		db:      db,
		replica: cmp.Or(cfg.Replica, Replica()),
		lease:   cmp.Or(cfg.Lease, DefaultJobLease),
		logger:  logger,
		ctx:     ctx,
		cancel:  cancel,
	}
	for _, j := range jobs {
		sched, err := ParseSchedule(j.Schedule)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("job %s: %w", j.Name, err)
		}
		s.cron.Schedule(sched, cron.FuncJob(s.wrap(j, sched)))
	}
	return s, nil
}

// ParseSchedule parses a cron spec; "@every D" becomes a schedule aligned
// to multiples of D since the Unix epoch.
func ParseSchedule(spec string) (cron.Schedule, error) {
	sched, err := cronspec.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	if every, ok := sched.(cron.ConstantDelaySchedule); ok {
		return alignedEvery{every.Delay}, nil
	}
	return sched, nil
}

// alignedEvery fires at every multiple of d.
type alignedEvery struct{ d time.Duration }

func (a alignedEvery) Next(t time.Time) time.Time { return t.Truncate(a.d).Add(a.d) }

// Tick is the activation of sched that a run starting at now belongs to: the
// latest one at or before now.
func Tick(sched cron.Schedule, now time.Time) time.Time {
	if a, ok := sched.(alignedEvery); ok {
		return now.Truncate(a.d)
	}
	for back := time.Second; back <= 800*24*time.Hour; back *= 2 {
		t := sched.Next(now.Add(-back))
		if t.After(now) {
			continue
		}
		for n := sched.Next(t); !n.After(now); n = sched.Next(n) {
			t = n
		}
		return t
	}
	return now.Truncate(time.Second)
}

// ScheduleInterval returns the period of a poll schedule (a cron spec or
// "@every D"): the shortest gap between its next activations after now, so
// that a VA near payday is due at every one of them.
func ScheduleInterval(spec string, now time.Time) (time.Duration, error) {
	sched, err := ParseSchedule(spec)
	if err != nil {
		return 0, err
	}
	var shortest time.Duration
	t := sched.Next(now)
	for range 64 {
		next := sched.Next(t)
		if gap := next.Sub(t); gap > 0 && (shortest == 0 || gap < shortest) {
			shortest = gap
		}
		t = next
	}
	return shortest, nil
}

// wrap is one activation of j on this replica: it claims j's current tick
// and runs it, or, while another replica holds j's lease, claims again
// every quarter of a lease, following the current tick, until the tick is
// done elsewhere or this replica takes it over.
func (s *Scheduler) wrap(j Job, sched cron.Schedule) func() {
	return func() {
		for s.ctx.Err() == nil {
			tick := Tick(sched, time.Now())
			claim, err := s.db.ClaimJobTick(s.ctx, j.Name, tick, s.replica, s.lease)
			switch {
			case err != nil:
				if s.ctx.Err() == nil {
					s.logger.Error("job could not claim its tick", "job", j.Name, "tick", tick, "err", err)
				}
				return
			case claim.Lease != nil:
				s.run(j, *claim.Lease, claim.TookOver)
				return
			case claim.Holder == "":
				return // the tick ran, or a later one began
			}
			select {
			case <-s.ctx.Done():
			case <-time.After(s.lease / 4):
			}
		}
	}
}

// run runs j under lease l and records its outcome, unless the lease was
// lost meanwhile. A run cut short by Stop releases the lease without
// finishing the tick, so that another replica runs the tick at once.
func (s *Scheduler) run(j Job, l store.JobLease, tookOver string) {
	start := time.Now()
	if tookOver != "" {
		s.logger.Warn("job tick taken over: its holder's lease ran out before the tick finished",
			"job", j.Name, "tick", l.Tick, "from", tookOver, "fence", l.Fence)
	}
	ctx, stop := s.hold(l)
	result, runErr := j.Run(ctx, l.Tick)
	stop()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if runErr != nil && s.ctx.Err() != nil {
		if err := s.db.ReleaseJobLease(wctx, l); err != nil && !errors.Is(err, store.ErrJobLeaseLost) {
			s.logger.Warn("job lease not released on stop; it expires by itself", "job", j.Name, "tick", l.Tick, "err", err)
		}
		return
	}
	err := s.db.FinishJobRun(wctx, l, result, runErr)
	switch {
	case errors.Is(err, store.ErrJobLeaseLost):
		s.logger.Warn("job run's outcome not recorded: its lease ran out and another replica may have taken the job over",
			"job", j.Name, "tick", l.Tick, "fence", l.Fence, "run_err", runErr)
	case err != nil || runErr != nil:
		s.logger.Error("job failed", "job", j.Name, "tick", l.Tick, "err", errors.Join(runErr, err))
	default:
		s.logger.Debug("job ran", "job", j.Name, "tick", l.Tick, "took", time.Since(start).Round(time.Millisecond))
	}
}

// hold keeps l's lease while a run goes on, renewing it every third of a
// lease. The context it returns is cancelled when the lease can no longer
// be counted on: when a renewal is refused, or when a lease has passed
// since the last renewal that went through was sent. That is timed by this
// process's monotonic clock, which runs on while the process is stopped,
// so a replica resumed after a SIGSTOP finds its run cancelled. stop ends
// the renewals.
func (s *Scheduler) hold(l store.JobLease) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	expired := time.AfterFunc(s.lease, func() { cancel(store.ErrJobLeaseLost) })
	done := make(chan struct{})
	go func() {
		renew := time.NewTicker(s.lease / 3)
		defer renew.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-renew.C:
			}
			sent := time.Now()
			switch err := s.db.RenewJobLease(ctx, l, s.lease); {
			case err == nil:
				expired.Reset(s.lease - time.Since(sent))
			case errors.Is(err, store.ErrJobLeaseLost):
				cancel(err)
				return
			case ctx.Err() == nil:
				s.logger.Warn("job lease not renewed; trying again", "job", l.Job, "err", err)
			}
		}
	}()
	return ctx, func() {
		close(done)
		expired.Stop()
		cancel(nil)
	}
}

// Start starts the cron loop.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop stops scheduling, cancels running jobs and waits for them.
func (s *Scheduler) Stop() {
	stopped := s.cron.Stop()
	s.cancel()
	<-stopped.Done()
}
