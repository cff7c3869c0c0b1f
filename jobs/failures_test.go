package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// dialects are the bank dialects a failure test runs on.
var dialects = []string{"rest", "openbanking"}

// bankKey is how the sandbox's stats and journal name an attempt key of
// this fixture's dialect ("dialect/key").
func (f *fixture) bankKey(attemptKey string) string {
	if f.dialect == "openbanking" {
		return "openbanking/" + openbanking.BankTranID(attemptKey)
	}
	return "rest/" + attemptKey
}

// stats reads the sandbox's counters.
func (f *fixture) stats(t *testing.T) banksim.Stats {
	t.Helper()
	st, err := f.bank.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// transferPosts counts the transfer requests the bank received in the
// fixture's dialect.
func (f *fixture) transferPosts(t *testing.T) int64 {
	t.Helper()
	st := f.stats(t)
	return st.Requests["POST /v1/transfers"] + st.Requests["POST /v2.0/transfer/deposit/acnt_num"]
}

// noKeySentTwice fails the test if any key reached the bank more than once.
func (f *fixture) noKeySentTwice(t *testing.T) {
	t.Helper()
	if again := f.stats(t).SentAgain; len(again) != 0 {
		t.Errorf("keys sent to the bank more than once: %v", again)
	}
}

// The same key with other content (rest 422, openbanking A05) halts the
// step DEAD with a critical alert that names the cause; no new key is
// minted, and neither a duplicate delivery nor the sweep sends anything
// again.
func TestKeyReusedWithOtherContentHaltsTheStep(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := newFixtureOn(t, pipeline.ExecutorConfig{}, dialect)
			ctx := context.Background()
			c := f.payday(t, 2_000_000)
			head, _ := f.queue.Pop()
			key := pipeline.AttemptKey(head, 1)
			// Someone else used the step's first key for another transfer, one
			// the bank refused (more than the VA holds): the bank remembers it.
			outside, _ := dialectAdapter(t, dialect, f.bankURL)
			fee, err := f.bank.Account(ctx, accounts.Fee)
			if err != nil {
				t.Fatal(err)
			}
			_, err = outside.Transfer(ctx, pipeline.TransferRequest{Key: key, From: c.VA, To: accounts.Fee, ToHolder: fee.HolderName,
				Amount: pipeline.Money{Amount: 9_000_000, Currency: "KRW"}})
			if pipeline.Classify(pipeline.Receipt{}, err) != pipeline.ClassRefused {
				t.Fatalf("the outside transfer: %v, want a refusal", err)
			}
			if err := f.exec.Run(ctx, head); err != nil {
				t.Fatal(err)
			}
			for range 3 { // a duplicate delivery and the sweep change nothing
				if err := f.exec.Run(ctx, head); err != nil {
					t.Fatal(err)
				}
				if _, err := f.sweep.RunOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			d := settlement(t, f.db)
			s := d.Steps[0]
			if d.Status != pipeline.SettlementFailed || s.Status != pipeline.StepDead {
				t.Fatalf("settlement %s, steps %s: want FAILED with its SWEEP DEAD", d.Status, stepStates(d))
			}
			if s.Attempts != 1 || len(s.Transfers) != 1 || s.Transfers[0].Key != key {
				t.Fatalf("step %s: %d claims, attempts %+v; want one claim and the one key %s", s.Kind, s.Attempts, s.Transfers, key)
			}
			var severity, summary string
			if err := f.db.SQL().QueryRowContext(ctx, `SELECT severity, summary FROM alerts WHERE settlement_id = $1`, d.ID).
				Scan(&severity, &summary); err != nil {
				t.Fatalf("no alert for the halted step: %v", err)
			}
			if severity != "critical" || !strings.Contains(summary, "key_reused") {
				t.Errorf("alert %s %q: want critical, naming key_reused", severity, summary)
			}
			if n := f.stats(t).SentAgain[f.bankKey(key)]; n != 2 {
				t.Errorf("key %s sent %d times; want twice: the outsider's and the engine's one request", key, n)
			}
			// The bank holds a transfer under the key: the attempt stays
			// UNKNOWN, so no replay mints a new key for the same money.
			if s.Transfers[0].Status != "UNKNOWN" {
				t.Errorf("the conflicting attempt is %s, want UNKNOWN", s.Transfers[0].Status)
			}
			if _, err := f.db.Replay(ctx, d.ID, map[string]pipeline.Accounts{"sandbox": accounts}, store.Audit{Actor: "ops", Command: "replay", Reason: "test"}, false); !errors.Is(err, store.ErrRefused) {
				t.Errorf("replay after a key conflict: %v, want refused", err)
			}
			f.verify(t, 0)
			settletest.CheckBankBalances(t, f.db, f.bank, "sandbox")
		})
	}
}

// A bank past its key retention no longer knows a key it applied: its
// status call says it never saw it. An attempt older than the provider's
// key retention (by the database's clock) is then not sent again, which
// would pay twice: the step halts DEAD with a critical alert that says to
// check the bank statement, and settle replay refuses it.
func TestKeyPastItsRetentionIsNotSentAgain(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := newFixtureOn(t, pipeline.ExecutorConfig{Lease: 300 * time.Millisecond, BankTimeout: 200 * time.Millisecond,
				KeyRetention: map[string]time.Duration{"sandbox": time.Millisecond}}, dialect)
			ctx := context.Background()
			f.payday(t, 2_000_000)
			head, _ := f.queue.Pop()
			key := pipeline.AttemptKey(head, 1)
			if err := f.bank.SetFaults(ctx, banksim.Faults{TimeoutAfterApplyRate: 1}); err != nil {
				t.Fatal(err)
			}
			if err := f.exec.Run(ctx, head); err != nil { // applied; the answer lost
				t.Fatal(err)
			}
			if err := f.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
				t.Fatal(err)
			}
			dialectName, bankKey, _ := strings.Cut(f.bankKey(key), "/")
			if err := f.bank.Forget(ctx, dialectName, bankKey); err != nil {
				t.Fatal(err)
			}
			posts := f.transferPosts(t) // rest's HTTP client may resend a keyed POST whose connection dropped
			f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status != "RUNNING" })
			d := settlement(t, f.db)
			s := d.Steps[0]
			if s.Status != pipeline.StepDead || d.Status != pipeline.SettlementFailed {
				t.Fatalf("settlement %s, steps %s: want FAILED with its SWEEP DEAD", d.Status, stepStates(d))
			}
			if len(s.Transfers) != 1 || s.Transfers[0].Status != "UNKNOWN" {
				t.Fatalf("attempts %+v: want the one attempt, its outcome UNKNOWN", s.Transfers)
			}
			if n, applied := f.transferPosts(t)-posts, f.stats(t).TransfersApplied; n != 0 || applied != 1 {
				t.Fatalf("%d transfer requests after the bank forgot key %s, %d transfers applied: the forgotten key was sent again",
					n, key, applied)
			}
			var severity, detail string
			if err := f.db.SQL().QueryRowContext(ctx, `SELECT severity, detail FROM alerts WHERE settlement_id = $1`, d.ID).
				Scan(&severity, &detail); err != nil {
				t.Fatalf("no alert for the halted step: %v", err)
			}
			if severity != "critical" || !strings.Contains(detail, "bank statement") {
				t.Errorf("alert %s %q: want critical, telling to check the bank statement", severity, detail)
			}
			_, err := f.db.Replay(ctx, d.ID, sandboxAccounts, store.Audit{Actor: "ops", Command: "replay", Reason: "test"}, false)
			if !errors.Is(err, store.ErrRefused) {
				t.Errorf("replay of the halted step: %v, want refused until its outcome is known", err)
			}
			// The bank holds the one transfer the engine does not record yet.
			journal, err := f.bank.Journal(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			ms := pipeline.MatchJournal(nil, banksim.BankTransfers(journal, f.attemptKey), nil)
			if len(ms) != 1 || ms[0].Key != key || ms[0].Kind != "unknown_to_engine" {
				t.Errorf("bank journal against the engine: %+v; want only %s, applied once, unknown to the engine", ms, key)
			}
		})
	}
}

// A task for a step whose predecessor is not DONE (the step PENDING) is
// refused: nothing reaches the bank and the step stays PENDING.
func TestOutOfOrderDeliveryIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	d := settlement(t, f.db)
	for _, s := range d.Steps[1:] {
		if err := f.exec.Run(ctx, s.ID); err != nil {
			t.Fatalf("out-of-order delivery of step %d: %v", s.ID, err)
		}
	}
	if n := f.transferPosts(t); n != 0 {
		t.Fatalf("%d transfer requests reached the bank for steps delivered out of order", n)
	}
	if d := settlement(t, f.db); d.Steps[0].Status != "READY" || strings.Count(stepStates(d), "=PENDING") != len(d.Steps)-1 {
		t.Fatalf("steps %s: want the head READY and the rest PENDING", stepStates(d))
	}
	// The head delivered, then the step after next before its predecessor
	// is DONE.
	if err := f.exec.Run(ctx, head); err != nil {
		t.Fatal(err)
	}
	f.queue.Pop()
	if err := f.exec.Run(ctx, d.Steps[2].ID); err != nil {
		t.Fatal(err)
	}
	if n := f.transferPosts(t); n != 1 {
		t.Fatalf("%d transfer requests; want the head's one", n)
	}
	if s := settlement(t, f.db).Steps[2]; s.Status != "PENDING" || len(s.Transfers) != 0 {
		t.Fatalf("step %s: %s with %d attempts; want PENDING with none", s.Kind, s.Status, len(s.Transfers))
	}
	_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: d.Steps[1].ID})
	f.drain(t)
	f.verify(t, 4)
	f.noKeySentTwice(t)
}

// failingQueue loses every enqueue with an error, as Redis down right after
// a record committed would.
type failingQueue struct{}

func (failingQueue) EnqueueStep(context.Context, pipeline.StepRef) error {
	return errors.New("redis: connection refused")
}

func (failingQueue) EnqueueResolve(context.Context, pipeline.StepRef, time.Duration) error {
	return errors.New("redis: connection refused")
}

// An enqueue that fails after the record committed leaves the next step
// READY in PostgreSQL and in no queue: one run of the READY relay delivers
// it.
func TestEnqueueFailedAfterCommitIsRelayed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	adapter, _ := dialectAdapter(t, "rest", f.bankURL)
	lossy := pipeline.NewExecutor(f.db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), failingQueue{}, pipeline.ExecutorConfig{},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := lossy.Run(ctx, head); err != nil {
		t.Fatal(err)
	}
	d := settlement(t, f.db)
	if d.Steps[0].Status != "DONE" || d.Steps[1].Status != "READY" {
		t.Fatalf("steps %s: want the head DONE and the next READY", stepStates(d))
	}
	opt, err := jobs.ParseRedisURL(testenv.StartRedis(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	q := jobs.NewQueue(opt, time.Minute)
	t.Cleanup(func() { _ = q.Close() })
	res, err := jobs.NewRelay(f.db, q, 0, slog.New(slog.NewTextHandler(io.Discard, nil))).RunOnce(ctx)
	if err != nil || res.Enqueued != 1 {
		t.Fatalf("relay run %+v %v: want the one READY step enqueued", res, err)
	}
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = inspector.Close() })
	tasks, err := inspector.ListPendingTasks(jobs.QueueSteps)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("steps queue after the relay: %+v %v; want the one task", tasks, err)
	}
	id, err := jobs.ParseStepPayload(tasks[0].Payload)
	if err != nil || id != d.Steps[1].ID {
		t.Fatalf("the relayed task is for step %d (%v), want %d", id, err, d.Steps[1].ID)
	}
	_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: id}) // the worker's delivery of that task
	f.drain(t)
	if got := f.status(t); got["SETTLED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	f.verify(t, 4)
	f.noKeySentTwice(t)
}
