package jobs_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

// stepRuns records what a StepObserver hears, one "KIND outcome" per run.
type stepRuns struct {
	mu   sync.Mutex
	runs []string
}

func (s *stepRuns) StepDone(kind pipeline.Kind, outcome pipeline.Outcome, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if took <= 0 {
		outcome += " (no duration)"
	}
	s.runs = append(s.runs, string(kind)+" "+string(outcome))
}

// The executor's observer hears every run of a claimed step with its kind
// and outcome, and nothing of deliveries that claim nothing.
func TestExecutorObserverHearsEveryRun(t *testing.T) {
	t.Parallel()
	obs := &stepRuns{}
	f := newFixture(t, pipeline.ExecutorConfig{Observer: obs})
	ctx := context.Background()
	c := f.payday(t, 2_000_000)
	if _, err := f.bank.SetState(ctx, c.Payout, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	head, _ := f.queue.Pop()
	_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: head})
	_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: head}) // a duplicate delivery: claims nothing
	f.drain(t)
	var want []string
	for _, s := range settlement(t, f.db).Steps {
		switch s.Status {
		case pipeline.StepDone:
			want = append(want, string(s.Kind)+" done")
		case pipeline.StepFailed:
			want = append(want, string(s.Kind)+" failed")
		}
	}
	if len(want) < 2 || !slices.Equal(obs.runs, want) {
		t.Fatalf("observed %q, want %q", obs.runs, want)
	}
}

// OnCycle hears every poll cycle, the failed ones too.
func TestPollReportsEachCycle(t *testing.T) {
	t.Parallel()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "o-", 3, 0)
	sb.credit(t, vas[1], 1_000_000)
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	type cycle struct {
		took time.Duration
		res  jobs.PollResult
		err  error
	}
	var cycles []cycle
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, jobs.PollConfig{
		Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
		OnCycle: func(took time.Duration, res jobs.PollResult, err error) {
			cycles = append(cycles, cycle{took, res, err})
		},
	}, quiet())
	res, err := poller.RunOnce(context.Background())
	if err != nil || len(cycles) != 1 {
		t.Fatalf("one cycle: %+v %v, heard %d", res, err, len(cycles))
	}
	if got := cycles[0]; got.took <= 0 || got.err != nil || got.res.Polled != 3 || got.res.Found != 1 {
		t.Fatalf("heard %+v, want 3 polled, 1 found, a duration and no error", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := poller.RunOnce(ctx); err == nil {
		t.Fatal("a cycle with a cancelled context succeeded")
	}
	if len(cycles) != 2 || !errors.Is(cycles[1].err, context.Canceled) {
		t.Fatalf("the failed cycle was heard as %+v", cycles[1:])
	}
}
