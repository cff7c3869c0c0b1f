package settletest

import (
	"context"
	"sync"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// Queue is the edge fake of the Asynq queue (pipeline.Queue): it remembers
// the steps to run, in order, and the resolve tasks asked for. Tests deliver
// them themselves, one at a time: Pop the next step ID and run it, or call
// Executor.Resolve for a Resolve.
type Queue struct {
	mu       sync.Mutex
	ids      []int64
	resolves []Resolve
}

// Resolve is a resolve task the Queue was asked for.
type Resolve struct {
	Ref   pipeline.StepRef
	After time.Duration
}

// EnqueueStep remembers the step's ID.
func (q *Queue) EnqueueStep(_ context.Context, ref pipeline.StepRef) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, ref.ID)
	return nil
}

// EnqueueResolve remembers the resolve task.
func (q *Queue) EnqueueResolve(_ context.Context, ref pipeline.StepRef, after time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.resolves = append(q.resolves, Resolve{Ref: ref, After: after})
	return nil
}

// Pop takes the oldest step ID not taken yet; false when there is none.
func (q *Queue) Pop() (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ids) == 0 {
		return 0, false
	}
	id := q.ids[0]
	q.ids = q.ids[1:]
	return id, true
}

// Resolves is every resolve task asked for so far.
func (q *Queue) Resolves() []Resolve {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Resolve(nil), q.resolves...)
}
