package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// RelayStore is what the READY relay reads: the steps READY for at least
// minAge, oldest first.
type RelayStore interface {
	DueReadySteps(ctx context.Context, minAge time.Duration, limit int) ([]pipeline.StepRef, error)
}

var _ RelayStore = (*store.DB)(nil)

// Relay is the READY relay (the outbox): it enqueues READY steps again that
// may be missing from the queue because an enqueue failed after commit or
// Redis lost its data.
type Relay struct {
	db     RelayStore
	queue  *Queue
	minAge time.Duration
	batch  int
	logger *slog.Logger
}

// NewRelay returns a relay that considers steps READY for at least minAge.
func NewRelay(db RelayStore, queue *Queue, minAge time.Duration, logger *slog.Logger) *Relay {
	return &Relay{db: db, queue: queue, minAge: minAge, batch: 1000, logger: logger}
}

// RelayResult reports one relay run.
type RelayResult struct {
	Seen, Enqueued int
}

// RunOnce enqueues every due READY step not already queued.
func (r *Relay) RunOnce(ctx context.Context) (RelayResult, error) {
	var res RelayResult
	refs, err := r.db.DueReadySteps(ctx, r.minAge, r.batch)
	if err != nil {
		return res, err
	}
	for _, ref := range refs {
		res.Seen++
		ok, err := r.queue.Requeue(ctx, ref)
		if err != nil {
			return res, err
		}
		if ok {
			res.Enqueued++
		}
	}
	if res.Enqueued > 0 {
		r.logger.InfoContext(ctx, "relay enqueued READY steps missing from the queue", "count", res.Enqueued)
	}
	return res, nil
}

// SweepStore is what the sweep reads and writes: the steps whose lease
// expired, the steps stuck in an unknown outcome and the problems of those
// no longer stuck, and the alerts about them.
type SweepStore interface {
	ExpiredSteps(ctx context.Context, limit int) ([]int64, error)
	UnknownSteps(ctx context.Context, after time.Duration, limit int) ([]store.UnknownStep, error)
	UnstuckProblems(ctx context.Context, limit int) ([]store.UnstuckProblem, error)
	ProblemStore
}

var _ SweepStore = (*store.DB)(nil)

// Sweep resolves steps whose lease expired (a worker died, or the bank's
// answer was unknown) by asking the bank for the attempt's status, and
// alerts operators about steps whose outcome stays unknown (stuck.go).
type Sweep struct {
	db         SweepStore
	exec       *pipeline.Executor
	batch      int
	stuckAfter time.Duration
	logger     *slog.Logger
}

// NewSweep returns a sweep that alerts about a step stuck in an unknown
// outcome after DefaultStuckAfter (see WithStuckAfter).
func NewSweep(db SweepStore, exec *pipeline.Executor, logger *slog.Logger) *Sweep {
	return &Sweep{db: db, exec: exec, batch: 1000, stuckAfter: DefaultStuckAfter, logger: logger}
}

// SweepResult reports one sweep run.
type SweepResult struct {
	Expired, Failed int
	// Stuck counts the alerts raised about steps stuck in an unknown
	// outcome, Unstuck the problems resolved because their outcome is known.
	Stuck, Unstuck int
}

// RunOnce resolves every step whose lease has expired, then alerts about
// the steps still stuck in an unknown outcome and resolves the alerts of
// those that are not any more.
func (s *Sweep) RunOnce(ctx context.Context) (SweepResult, error) {
	res, err := s.resolveExpired(ctx)
	if err != nil {
		return res, err
	}
	return res, s.alertStuck(ctx, &res)
}

// resolveExpired resolves every step whose lease has expired.
func (s *Sweep) resolveExpired(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	ids, err := s.db.ExpiredSteps(ctx, s.batch)
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		res.Expired++
		if err := s.exec.Resolve(ctx, id); err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			var later *pipeline.RetryLaterError
			if !errors.As(err, &later) {
				res.Failed++
				s.logger.WarnContext(ctx, "sweep could not resolve step", "step", id, "err", err)
			}
		}
	}
	return res, nil
}
