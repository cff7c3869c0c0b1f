package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// VerifyJournal names each difference between the bank's journal and the
// recorded transfers as a bank_journal_ check; a key the bank applied whose
// attempt is live but not recorded yet is in flight, not a difference; a
// journal that cannot be read is an error that keeps its cause.
func TestVerifyJournal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, pipeline.ExecutorConfig{})
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	claim, err := f.db.ClaimStep(ctx, head, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	key := claim.Request().Key
	check := func(journal []pipeline.BankTransfer) []store.Violation {
		t.Helper()
		vs, err := jobs.VerifyJournal(ctx, f.db, "sandbox", func(context.Context) ([]pipeline.BankTransfer, error) { return journal, nil })
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	applied := pipeline.BankTransfer{Key: key, From: string(claim.From), To: string(claim.To), Amount: claim.Amount.Amount}
	if vs := check([]pipeline.BankTransfer{applied}); len(vs) != 0 {
		t.Errorf("a transfer applied while its attempt is being recorded: %+v, want none (in flight)", vs)
	}
	vs := check([]pipeline.BankTransfer{applied, applied})
	if len(vs) != 1 || vs[0].Check != "bank_journal_duplicate_at_bank" || vs[0].Detail != "sandbox "+key+": the bank applied this key more than once" {
		t.Errorf("a key applied twice: %+v, want one bank_journal_duplicate_at_bank", vs)
	}
	stranger := pipeline.BankTransfer{Key: pipeline.AttemptKey(head+1000, 1), From: "X", To: "Y", Amount: 1}
	vs = check([]pipeline.BankTransfer{stranger})
	if len(vs) != 1 || vs[0].Check != "bank_journal_unknown_to_engine" {
		t.Errorf("a key no attempt has: %+v, want one bank_journal_unknown_to_engine", vs)
	}
	checks := map[string]bool{}
	for _, c := range jobs.JournalChecks() {
		checks[c] = true
	}
	if len(checks) != len(pipeline.MismatchKinds) || !checks["bank_journal_duplicate_at_bank"] || !checks["bank_journal_unknown_to_engine"] {
		t.Errorf("JournalChecks %v: want one per mismatch kind, so that settle verify resolves their alerts", jobs.JournalChecks())
	}
	unreadable := errors.New("journal not found")
	_, err = jobs.VerifyJournal(ctx, f.db, "sandbox", func(context.Context) ([]pipeline.BankTransfer, error) { return nil, unreadable })
	if !errors.Is(err, unreadable) {
		t.Errorf("unreadable journal: %v, want its cause kept", err)
	}
}
