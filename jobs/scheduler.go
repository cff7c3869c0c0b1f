package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/settle-dev/settle/store"
)

// Job is one scheduled job: a name, a cron spec and one run.
type Job struct {
	Name     string
	Schedule string
	Run      func(ctx context.Context) (any, error)
}

// Scheduler runs jobs on their cron schedules. Each run takes a PostgreSQL
// advisory lock named after the job, so with several replicas a tick runs
// on one of them only, and a run still going when the next tick comes is
// skipped rather than doubled.
type Scheduler struct {
	cron   *cron.Cron
	db     *store.DB
	logger *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
}

// CronParser accepts five or six fields (seconds optional) and descriptors
// such as "@every 10s".
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NewScheduler registers the jobs; it refuses a job whose schedule does not
// parse.
func NewScheduler(db *store.DB, jobs []Job, logger *slog.Logger) (*Scheduler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		cron:   cron.New(cron.WithParser(CronParser), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger))),
		db:     db,
		logger: logger,
		ctx:    ctx,
		cancel: cancel,
	}
	for _, j := range jobs {
		if _, err := s.cron.AddFunc(j.Schedule, s.wrap(j)); err != nil {
			cancel()
			return nil, fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Schedule, err)
		}
	}
	return s, nil
}

func (s *Scheduler) wrap(j Job) func() {
	return func() {
		start := time.Now()
		var res any
		ran, err := s.db.TryJobLock(s.ctx, j.Name, func(ctx context.Context) error {
			var err error
			res, err = j.Run(ctx)
			return err
		})
		switch {
		case err != nil && s.ctx.Err() == nil:
			s.logger.Error("job failed", "job", j.Name, "err", err)
		case ran:
			s.logger.Debug("job ran", "job", j.Name, "took", time.Since(start).Round(time.Millisecond), "result", res)
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
