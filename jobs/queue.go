package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/pipeline"
)

// Queue names and task types.
const (
	// QueueSteps carries the steps of settlements under way: the step a
	// completed step made READY, and any step the relay enqueues again.
	QueueSteps = "steps"
	// QueueSettlements carries the first step of each new settlement. It
	// is served only when QueueSteps is empty, so settlements under way
	// finish before new ones start: on a payday burst customers are paid
	// one after another from the first minute, not all together at the end.
	QueueSettlements = "settlements"
	// QueueReconcile carries the daily reconciliation, served when no step
	// waits (reconcile_task.go).
	QueueReconcile = "reconcile"
	// TypeStep is the task type whose payload is a step ID in decimal.
	TypeStep = "step:run"
	// TypeResolve is the task type that resolves a step's unknown outcome
	// by asking the bank's status call; its payload is a step ID in decimal.
	TypeResolve = "step:resolve"
	// QueuePoll carries poll shard tasks.
	QueuePoll = "poll"
	// TypePollShard is the task type whose payload is a PollShard in JSON.
	TypePollShard = "poll:shard"
)

// StepTaskID is the Asynq task ID of a step at a fence: the same step is
// queued at most once per fence. When a step is claimed again (the sweep took
// it over), its fence moves, so a task stuck with a dead worker until Asynq
// recovers it does not block the step's next delivery.
func StepTaskID(ref pipeline.StepRef) string {
	return "step:" + strconv.FormatInt(ref.ID, 10) + ":" + strconv.FormatInt(ref.Fence, 10)
}

// ResolveTaskID is the Asynq task ID of a step's resolve at a fence: an
// unknown outcome is resolved once per claim, and a step claimed again
// (whose outcome may be unknown again) gets a resolve of its own.
func ResolveTaskID(ref pipeline.StepRef) string {
	return "resolve:" + strconv.FormatInt(ref.ID, 10) + ":" + strconv.FormatInt(ref.Fence, 10)
}

// Queue enqueues step tasks into Asynq. It implements pipeline.Queue.
type Queue struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	timeout   time.Duration
}

var _ pipeline.Queue = (*Queue)(nil)

// NewQueue returns a queue over Redis. taskTimeout bounds one step's handler
// and must exceed the bank timeout.
func NewQueue(redis asynq.RedisConnOpt, taskTimeout time.Duration) *Queue {
	return &Queue{client: asynq.NewClient(redis), inspector: asynq.NewInspector(redis), timeout: taskTimeout}
}

// Close releases the Redis connections.
func (q *Queue) Close() error {
	return errors.Join(q.client.Close(), q.inspector.Close())
}

// EnqueueStep implements pipeline.Queue: a settlement's first step goes to
// QueueSettlements, any other to QueueSteps; a step already queued,
// scheduled or running at this fence is left as it is.
func (q *Queue) EnqueueStep(ctx context.Context, ref pipeline.StepRef) error {
	queue := QueueSteps
	if ref.First {
		queue = QueueSettlements
	}
	_, err := q.client.EnqueueContext(ctx, q.task(ref, queue))
	if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return fmt.Errorf("enqueue step %d: %w", ref.ID, err)
}

// EnqueueResolve implements pipeline.Queue: the resolve task waits in
// QueueSteps, scheduled after the delay; one already there at this fence
// is left as it is.
func (q *Queue) EnqueueResolve(ctx context.Context, ref pipeline.StepRef, after time.Duration) error {
	t := asynq.NewTask(TypeResolve, []byte(strconv.FormatInt(ref.ID, 10)),
		asynq.TaskID(ResolveTaskID(ref)), asynq.Queue(QueueSteps), asynq.ProcessAt(dueNoSooner(time.Now().Add(after))),
		asynq.MaxRetry(25), asynq.Timeout(q.timeout))
	_, err := q.client.EnqueueContext(ctx, t)
	if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return fmt.Errorf("enqueue resolve of step %d: %w", ref.ID, err)
}

// dueNoSooner is the time to schedule a task due at: the next whole second
// from it. Asynq files a scheduled task under its due second (Unix time in
// whole seconds) and makes it pending once that second begins, so a task
// scheduled within a second would run up to a second early: a resolve task
// before its step's lease ended, answered "not yet" again and again until
// Asynq gave up on it.
func dueNoSooner(at time.Time) time.Time { return at.Truncate(time.Second).Add(time.Second) }

// stepQueues are the queues a step task may wait in.
var stepQueues = []string{QueueSettlements, QueueSteps}

// Requeue enqueues a step the database says is READY but that may be missing
// from the queues, into QueueSteps. A task with the step's ID that waits or
// runs in either queue is left alone; an archived one (Asynq gave up on it)
// is deleted first, since the database, not Asynq, decides when a step is
// finished. It reports whether a task was enqueued.
func (q *Queue) Requeue(ctx context.Context, ref pipeline.StepRef) (bool, error) {
	id := StepTaskID(ref)
	for _, queue := range stepQueues {
		info, err := q.inspector.GetTaskInfo(queue, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			continue
		case err != nil:
			return false, fmt.Errorf("requeue step %d: %w", ref.ID, err)
		case info.State != asynq.TaskStateArchived:
			return false, nil // queued or running already
		}
		if err := q.inspector.DeleteTask(queue, id); err != nil {
			return false, fmt.Errorf("requeue step %d: delete archived task: %w", ref.ID, err)
		}
	}
	_, err := q.client.EnqueueContext(ctx, q.task(ref, QueueSteps))
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return false, nil // enqueued meanwhile
	case err != nil:
		return false, fmt.Errorf("requeue step %d: %w", ref.ID, err)
	}
	return true, nil
}

func (q *Queue) task(ref pipeline.StepRef, queue string) *asynq.Task {
	return asynq.NewTask(TypeStep, []byte(strconv.FormatInt(ref.ID, 10)),
		asynq.TaskID(StepTaskID(ref)), asynq.Queue(queue),
		asynq.MaxRetry(25), asynq.Timeout(q.timeout))
}

// PollShardTaskID is the Asynq task ID of a shard of a tick: a tick's
// shard is queued once.
func PollShardTaskID(s PollShard) string {
	return "poll:" + strconv.FormatInt(s.Tick.UnixMilli(), 10) + ":" + strconv.Itoa(s.Index)
}

// EnqueuePollShard enqueues a shard of a poll tick. The task's timeout is
// the poll interval and more: the shard itself stops at the next tick, and
// skips its work when it starts too late, so a backlog of shards drains
// without a retry or an archived task.
func (q *Queue) EnqueuePollShard(ctx context.Context, s PollShard, interval time.Duration) error {
	payload, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("enqueue poll shard %d: %w", s.Index, err)
	}
	t := asynq.NewTask(TypePollShard, payload, asynq.TaskID(PollShardTaskID(s)), asynq.Queue(QueuePoll),
		asynq.MaxRetry(0), asynq.Timeout(max(interval, time.Second)+time.Minute))
	if _, err := q.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue poll shard %d of %s: %w", s.Index, s.Tick.Format(time.RFC3339), err)
	}
	return nil
}

// ParseStepPayload reads a step task's payload.
func ParseStepPayload(b []byte) (int64, error) {
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("step task payload %q is not a step ID: %w", truncate(b, 32), asynq.SkipRetry)
	}
	return id, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Latency is how long the oldest pending step task has waited, in either
// step queue; 0 when they have never been used.
func (q *Queue) Latency(ctx context.Context) (time.Duration, error) {
	queues, err := q.inspector.Queues()
	if err != nil {
		return 0, err
	}
	var latency time.Duration
	for _, queue := range stepQueues {
		if !slices.Contains(queues, queue) {
			continue
		}
		info, err := q.inspector.GetQueueInfo(queue)
		if err != nil {
			return 0, err
		}
		latency = max(latency, info.Latency)
	}
	return latency, nil
}
