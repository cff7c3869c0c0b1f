// Package settletest holds what several test suites share about a whole
// installation: the checks of the money invariants in the database and of
// the sandbox bank's journal against the engine's records, Queue, the
// edge fake of the Asynq queue with which tests drive the executor one
// delivery at a time, and what tests start from: a migrated store of their
// own (NewDB, OpenDB), a failed settlement (FailedAtPayout). It is test
// support: no package of the settle binary imports it (internal/archtest
// checks that).
package settletest

import (
	"context"
	"testing"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// CheckMoney fails the test unless every invariant holds and the bank
// applied exactly the transfers the engine recorded as succeeded at
// provider, each once. attemptKey is the mapping of the provider's dialect
// from journal keys to attempt keys (rest.AttemptKey,
// openbanking.AttemptKey). It returns how many transfers that is.
func CheckMoney(t testing.TB, db *store.DB, bank *banksim.Client, provider string, attemptKey func(string) (string, bool)) int {
	t.Helper()
	ctx := context.Background()
	vs, err := db.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("invariant %s broken for settlement %d: %s", v.Check, v.SettlementID, v.Detail)
	}
	journal, err := bank.Journal(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := db.SucceededTransfers(ctx, provider)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range pipeline.MatchJournal(ours, banksim.BankTransfers(journal, attemptKey), nil) {
		t.Errorf("bank journal of %s: %s %s: %s", provider, m.Kind, m.Key, m.Detail)
	}
	return len(ours)
}
