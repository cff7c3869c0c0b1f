package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

// resolveConfig is a short lease and unknown wait, so that resolving an
// unknown outcome takes well under a second of the test's time.
var resolveConfig = pipeline.ExecutorConfig{Lease: time.Second, BankTimeout: 500 * time.Millisecond, UnknownWait: 300 * time.Millisecond}

// startWorker runs a real Asynq worker on a test Redis over the fixture's
// database and bank, with an executor that enqueues into the real queue;
// no sweep runs.
func startWorker(t *testing.T, f *fixture, cfg pipeline.ExecutorConfig) (*jobs.Queue, asynq.RedisConnOpt) {
	t.Helper()
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: f.bankURL, Token: token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter})
	opt, err := jobs.ParseRedisURL(testenv.StartRedis(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	queue := jobs.NewQueue(opt, time.Minute)
	t.Cleanup(func() { queue.Close() })
	exec := pipeline.NewExecutor(f.db, banks, queue, cfg, quiet())
	poller := jobs.NewPoller(f.db, banks, &settletest.Queue{}, jobs.PollConfig{Accounts: map[string]pipeline.Accounts{"sandbox": accounts}}, quiet())
	srv, mux := jobs.NewWorker(opt, exec, poller, jobs.WorkerConfig{Concurrency: 2, ShutdownTimeout: 5 * time.Second}, quiet())
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return queue, opt
}

// Every transfer's outcome is unknown (the bank applies it and drops the
// connection, or answers "processing"): each step is resolved by its
// resolve task asking the bank's status call when the step's lease ends,
// with no sweep run, and each step moves its money once.
func TestUnknownOutcomeIsResolvedByItsResolveTask(t *testing.T) {
	t.Parallel()
	for name, faults := range map[string]banksim.Faults{
		"apply-then-drop": {TimeoutAfterApplyRate: 1},
		"processing":      {ProcessingRate: 1, ProcessingDelayMS: 3_600_000},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, resolveConfig)
			ctx := context.Background()
			f.payday(t, 2_000_000)
			head, _ := f.queue.Pop()
			queue, _ := startWorker(t, f, resolveConfig)
			if err := f.bank.SetFaults(ctx, faults); err != nil {
				t.Fatal(err)
			}
			if err := queue.EnqueueStep(ctx, pipeline.StepRef{ID: head}); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				d := settlement(t, f.db)
				return d.Status == "SETTLED", "steps: " + stepStates(d)
			})
			for _, s := range settlement(t, f.db).Steps {
				if s.Kind == "NOTIFY" {
					continue
				}
				if len(s.Transfers) != 1 || s.Transfers[0].Status != "SUCCEEDED" || s.Attempts != 1 {
					t.Errorf("step %s: %d attempts with %+v; want one claim, one key, SUCCEEDED", s.Kind, s.Attempts, s.Transfers)
				}
			}
			f.verify(t, 4)
		})
	}
}

// A resolve that arrives before the step's lease ends by the database's
// clock is told to come back when it does, not dropped; when it comes
// back it resolves the step.
func TestEarlyResolveIsRetriedNotDropped(t *testing.T) {
	t.Parallel()
	cfg := pipeline.ExecutorConfig{Lease: time.Second, BankTimeout: 500 * time.Millisecond, UnknownWait: 2 * time.Second}
	f := newFixture(t, cfg)
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	if err := f.bank.SetFaults(ctx, banksim.Faults{TimeoutAfterApplyRate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.exec.Run(ctx, head); err != nil {
		t.Fatal(err)
	}
	if err := f.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	err := f.exec.Resolve(ctx, head)
	var later *pipeline.RetryLaterError
	if !errors.As(err, &later) || later.After <= 0 || later.After > cfg.UnknownWait {
		t.Fatalf("early resolve: err = %v, want RetryLaterError within (0, %s]", err, cfg.UnknownWait)
	}
	if s := settlement(t, f.db).Steps[0]; s.Status != "RUNNING" || s.Transfers[0].Status != "UNKNOWN" {
		t.Fatalf("an early resolve changed the step: %+v", s)
	}
	if got := f.queue.Resolves(); len(got) != 1 || got[0].Ref.ID != head || got[0].After != cfg.UnknownWait {
		t.Fatalf("resolves scheduled %+v, want step %d after %s", got, head, cfg.UnknownWait)
	}
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		err := f.exec.Resolve(ctx, head)
		d := settlement(t, f.db)
		return err == nil && d.Steps[0].Status == "DONE", fmt.Sprintf("resolve: %v; steps: %s", err, stepStates(d))
	})
	f.drain(t)
	f.verify(t, 4)
}

// Asynq makes a scheduled task pending once the whole second it is filed
// under begins, so a resolve task is scheduled for the next whole second
// at or after its step's lease ends: never early, however short the wait.
func TestResolveTaskIsNeverDueBeforeItsWait(t *testing.T) {
	t.Parallel()
	opt, err := jobs.ParseRedisURL(testenv.StartRedis(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	queue := jobs.NewQueue(opt, time.Minute)
	t.Cleanup(func() { _ = queue.Close() })
	ins := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = ins.Close() })
	for i, wait := range []time.Duration{0, 300 * time.Millisecond, 1700 * time.Millisecond} {
		ref := pipeline.StepRef{ID: int64(100 + i), Fence: 1}
		earliest := time.Now().Add(wait)
		if err := queue.EnqueueResolve(context.Background(), ref, wait); err != nil {
			t.Fatal(err)
		}
		info, err := ins.GetTaskInfo(jobs.QueueSteps, jobs.ResolveTaskID(ref))
		if err != nil {
			t.Fatal(err)
		}
		if at := info.NextProcessAt; at.Before(earliest) || at.Nanosecond() != 0 {
			t.Errorf("wait %s: due at %s, want a whole second no sooner than %s", wait, at.Format(time.StampMilli), earliest.Format(time.StampMilli))
		}
	}
}
