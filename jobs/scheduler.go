package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/robfig/cron/v3"

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
// of a job runs on one replica only (store.RunJobTick) and is recorded in
// the job-run log. "@every" schedules are aligned to the clock (every 30s
// fires at :00 and :30), so all replicas agree on which tick is which.
type Scheduler struct {
	cron    *cron.Cron
	db      *store.DB
	replica string
	logger  *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
}

// Replica names this process in the job-run and poll-shard logs: host and
// process ID.
func Replica() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// CronParser accepts five or six fields (seconds optional) and descriptors
// such as "@every 10s".
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NewScheduler registers the jobs; it refuses a job whose schedule does not
// parse.
func NewScheduler(db *store.DB, jobs []Job, logger *slog.Logger) (*Scheduler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		cron:    cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger))),
		db:      db,
		replica: Replica(),
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
	sched, err := CronParser.Parse(spec)
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

func (s *Scheduler) wrap(j Job, sched cron.Schedule) func() {
	return func() {
		start := time.Now()
		tick := Tick(sched, start)
		ran, err := s.db.RunJobTick(s.ctx, j.Name, tick, s.replica, func(ctx context.Context) (any, error) { return j.Run(ctx, tick) })
		switch {
		case err != nil && s.ctx.Err() == nil:
			s.logger.Error("job failed", "job", j.Name, "tick", tick, "err", err)
		case ran:
			s.logger.Debug("job ran", "job", j.Name, "tick", tick, "took", time.Since(start).Round(time.Millisecond))
		}
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
