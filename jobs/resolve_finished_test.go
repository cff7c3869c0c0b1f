package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

// A resolve task for a step that is no longer RUNNING (its outcome became
// known meanwhile) does nothing: the step's row and the bank are left as
// they are.
func TestResolveTaskForAFinishedStepDoesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, resolveConfig)
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: head})
	f.drain(t)
	queue, opt := startWorker(t, f, resolveConfig)
	before := settlement(t, f.db)
	if before.Status != "SETTLED" {
		t.Fatalf("settlement %s, want SETTLED", before.Status)
	}
	ref := pipeline.StepRef{ID: head, Fence: 1}
	if err := queue.EnqueueResolve(ctx, ref, 0); err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { inspector.Close() })
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		info, err := inspector.GetTaskInfo(jobs.QueueSteps, jobs.ResolveTaskID(ref))
		if errors.Is(err, asynq.ErrTaskNotFound) {
			return true, ""
		}
		return false, fmt.Sprintf("resolve task: %+v %v", info, err)
	})
	after := settlement(t, f.db)
	for i, s := range after.Steps {
		if b := before.Steps[i]; s.Status != b.Status || !s.UpdatedAt.Equal(b.UpdatedAt) || len(s.Transfers) != len(b.Transfers) {
			t.Errorf("step %s changed: %+v, was %+v", s.Kind, s, b)
		}
	}
	f.verify(t, 4)
}
