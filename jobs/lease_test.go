package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// A worker paused between its claim and its bank call for longer than its
// lease wakes with its context done and sends nothing, even to a bank that
// forgets the keys it refused: while it slept the sweep took its step over,
// the bank refused the same key, an operator replayed the step with a new
// key, and the next salary landed in the VA. Its old key reaches the bank
// once, from the worker that took over.
func TestPausedWorkerPastItsLeaseSendsNothing(t *testing.T) {
	t.Parallel()
	cfg := pipeline.ExecutorConfig{Lease: 300 * time.Millisecond, BankTimeout: 200 * time.Millisecond}
	f := newFixture(t, cfg)
	ctx := context.Background()
	c := f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	if err := f.bank.SetFaults(ctx, banksim.Faults{ForgetRefusals: true}); err != nil {
		t.Fatal(err)
	}
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: f.bankURL, Token: token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	paused, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	zcfg := cfg
	zcfg.Hook = func(point string) {
		if point == pipeline.PointAfterClaim {
			once.Do(func() { close(paused); <-release })
		}
	}
	zombie := pipeline.NewExecutor(f.db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, zcfg,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- zombie.Run(ctx, head) }()
	<-paused

	if _, err := f.bank.SetState(ctx, c.VA, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	// The sweep asks the bank, which never saw the key: the step is READY.
	f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "READY" })
	// The same key again, refused this time.
	if err := f.exec.Run(ctx, head); err != nil {
		t.Fatal(err)
	}
	if d := settlement(t, f.db); d.Status != pipeline.SettlementFailed {
		t.Fatalf("settlement %s, steps %s: want FAILED at its SWEEP", d.Status, stepStates(d))
	}
	if _, err := f.bank.SetState(ctx, c.VA, banksim.StateActive, ""); err != nil {
		t.Fatal(err)
	}
	replay(t, f.db, settlement(t, f.db).ID)
	if err := f.exec.Run(ctx, head); err != nil { // a new key
		t.Fatal(err)
	}
	f.drain(t)
	if _, err := f.bank.Credit(ctx, c.VA, 2_000_000, "ACME PAYROLL"); err != nil { // next month's salary
		t.Fatal(err)
	}

	close(release)
	if err := <-done; err != nil {
		t.Errorf("the paused worker's run: %v", err)
	}
	st, err := f.bank.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.SentAgain["rest/"+pipeline.AttemptKey(head, 1)]; n != 0 {
		t.Errorf("the first key reached the bank %d times: the paused worker sent it after its lease", n)
	}
	if res, err := f.poller.RunOnce(ctx); err != nil || res.Found != 1 {
		t.Fatalf("poll of the next salary: %+v %v", res, err)
	}
	f.drain(t)
	settletest.CheckMoney(t, f.db, f.bank, "sandbox", rest.AttemptKey)
	settletest.CheckBankBalances(t, f.db, f.bank, "sandbox")
}

func replay(t *testing.T, db *store.DB, id int64) {
	t.Helper()
	if _, err := db.Replay(context.Background(), id, sandboxAccounts, store.Audit{Actor: "ops", Command: "replay", Reason: "unfrozen"}, false); err != nil {
		t.Fatal(err)
	}
}
