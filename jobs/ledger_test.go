package jobs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// failAtSweep pays a customer whose VA is frozen, so the SWEEP is refused
// and the settlement FAILED before any money moved; then the bank lifts
// the freeze.
func failAtSweep(t *testing.T, f *fixture, amount int64) (int64, string) {
	t.Helper()
	ctx := context.Background()
	c := f.payday(t, amount)
	if _, err := f.bank.SetState(ctx, c.VA, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	d := settlement(t, f.db)
	if d.Status != pipeline.SettlementFailed || d.Steps[0].Status != pipeline.StepFailed {
		t.Fatalf("settlement %s, steps %s: want FAILED at its SWEEP", d.Status, stepStates(d))
	}
	if _, err := f.bank.SetState(ctx, c.VA, banksim.StateActive, ""); err != nil {
		t.Fatal(err)
	}
	return d.ID, c.VA
}

// A settlement cancelled before money moved leaves the deposit in the VA;
// the next poll settles it once: the bank applied each transfer once, and
// every account the ledger knows holds what the bank shows.
func TestCancelledDepositSettlesOnceAtTheBank(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	id, _ := failAtSweep(t, f, 2_000_000)
	if _, err := f.db.Cancel(ctx, id, store.Audit{Actor: "ops", Command: "cancel", Reason: "VA frozen by mistake"}, false); err != nil {
		t.Fatal(err)
	}
	if res, err := f.poller.RunOnce(ctx); err != nil || res.Found != 1 {
		t.Fatalf("poll after the cancel: %+v %v", res, err)
	}
	f.drain(t)
	if got := f.status(t); got["SETTLED"] != 1 || got["CANCELLED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	if n := settletest.CheckMoney(t, f.db, f.bank, "sandbox", rest.AttemptKey); n < 3 {
		t.Errorf("%d transfers went through", n)
	}
	settletest.CheckBankBalances(t, f.db, f.bank, "sandbox")
}

// Money taken out of a VA at the bank after its settlement was cancelled
// leaves the bank below the ledger: nothing is settled and a critical alert
// says so; once the money is back the VA settles and the alert resolves.
func TestVABelowItsLedgerIsNotSettled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	id, va := failAtSweep(t, f, 2_000_000)
	if _, err := f.db.Cancel(ctx, id, store.Audit{Actor: "ops", Command: "cancel", Reason: "test"}, false); err != nil {
		t.Fatal(err)
	}
	outside, err := rest.New(rest.Config{Name: "outside", BaseURL: f.bankURL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	fee, err := f.bank.Account(ctx, accounts.Fee)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outside.Transfer(ctx, pipeline.TransferRequest{Key: "not-settle-1", From: va, To: accounts.Fee,
		ToHolder: fee.HolderName, Amount: pipeline.Money{Amount: 500_000, Currency: "KRW"}}); err != nil {
		t.Fatal(err)
	}
	res, err := f.poller.RunOnce(ctx)
	if err != nil || res.Found != 0 || res.Skipped != 1 {
		t.Fatalf("poll of a VA below its ledger: %+v %v; want it skipped", res, err)
	}
	var kind pipeline.AlertKind
	var severity pipeline.Severity
	var summary string
	if err := f.db.SQL().QueryRowContext(ctx, `SELECT kind, severity, summary FROM alerts WHERE problem_key LIKE 'va_below_ledger:%'`).
		Scan(&kind, &severity, &summary); err != nil {
		t.Fatalf("no alert for the VA below its ledger: %v", err)
	}
	if kind != pipeline.AlertKindBelowLedger || severity != pipeline.SeverityCritical || !strings.Contains(summary, "not settled") {
		t.Errorf("alert %s/%s %q", kind, severity, summary)
	}
	if _, err := f.poller.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countAlerts(t, f.db, `problem_key LIKE 'va_below_ledger:%'`); n != 1 {
		t.Errorf("%d alerts after a second poll, want the one", n)
	}
	if _, err := f.bank.Credit(ctx, va, 500_000, "ACME PAYROLL"); err != nil {
		t.Fatal(err)
	}
	if res, err := f.poller.RunOnce(ctx); err != nil || res.Found != 1 {
		t.Fatalf("poll once the money is back: %+v %v", res, err)
	}
	if n := countAlerts(t, f.db, `problem_key LIKE 'va_below_ledger:%' AND kind = 'resolved'`); n != 1 {
		t.Errorf("%d resolutions of the below-ledger alert, want 1", n)
	}
	f.drain(t)
	settletest.CheckMoney(t, f.db, f.bank, "sandbox", rest.AttemptKey)
}
