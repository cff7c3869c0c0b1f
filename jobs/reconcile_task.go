package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// The daily reconciliation runs as an Asynq task rather than inside the
// scheduler's tick: the scheduled job "reconcile" only queues it, onto
// QueueReconcile, which workers serve last, when no step waits. So
// a reconciliation takes one worker slot, never a scheduler's tick, and
// payday's steps keep the rest.

// TypeReconcile is the task type of a daily reconciliation. Its payload is
// the day (YYYY-MM-DD in the reconciler's time zone) whose start opens the
// window; nothing else.
const TypeReconcile = "reconcile:run"

// ReconcileTaskTimeout bounds one reconciliation task: statements of a
// payday at 100,000 customers take minutes to page through.
const ReconcileTaskTimeout = time.Hour

// reconcileMaxRetry is how often a failed reconciliation task (a provider
// that could not be read, another run holding the lock) is tried again,
// backing off from 1s to a minute: about ten minutes in all.
const reconcileMaxRetry = 15

// ReconcileTaskID is the task ID of the reconciliation of day: while it is
// queued or running, no replica and no tick queues the same day again.
func ReconcileTaskID(day string) string { return "reconcile:" + day }

// ReconcileQueued reports what the scheduled job did.
type ReconcileQueued struct {
	Day    string `json:"day"`    // the window's first day
	Queued bool   `json:"queued"` // false when that day's task was queued or running already
}

// QueueDailyReconcile queues the reconciliation of the window that starts
// at the beginning of yesterday in loc, as of now: what the scheduled job
// "reconcile" runs.
func (q *Queue) QueueDailyReconcile(ctx context.Context, now time.Time, loc *time.Location) (ReconcileQueued, error) {
	day := now.In(loc).AddDate(0, 0, -1).Format(time.DateOnly)
	task := asynq.NewTask(TypeReconcile, []byte(day), asynq.TaskID(ReconcileTaskID(day)), asynq.Queue(QueueReconcile),
		asynq.MaxRetry(reconcileMaxRetry), asynq.Timeout(ReconcileTaskTimeout))
	_, err := q.client.EnqueueContext(ctx, task)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return ReconcileQueued{Day: day}, nil
	case err != nil:
		return ReconcileQueued{Day: day}, fmt.Errorf("queue the reconciliation of %s: %w", day, err)
	}
	return ReconcileQueued{Day: day, Queued: true}, nil
}

// ReconcileHandler runs the reconciliations that reconcile tasks name. A
// payload that is not a day is dropped (asynq.SkipRetry); any other error
// is retried.
func ReconcileHandler(r *Reconciler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		day, err := time.ParseInLocation(time.DateOnly, string(t.Payload()), r.cfg.Location)
		if err != nil {
			return fmt.Errorf("reconcile task payload %q is not a day (YYYY-MM-DD): %w", truncate(t.Payload(), 32), asynq.SkipRetry)
		}
		_, err = r.RunDaily(ctx, day)
		return err
	})
}
