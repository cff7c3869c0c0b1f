package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// settle verify --bank-journal after a payday, on each dialect. The journal
// of an openbanking bank names a transfer by its bank_tran_id, that of a
// rest bank by its Idempotency-Key; either way the check is clean after the
// payday, and a transfer the bank then applies a second time is reported as
// exactly one duplicate, under the engine's attempt key.
func TestVerifyBankJournalOnEachDialect(t *testing.T) {
	for _, dialect := range []string{"rest", "openbanking"} {
		t.Run(dialect, func(t *testing.T) {
			e := newEnvOpts(t, envOpts{dialect: dialect})
			clearSettleEnv(t)
			ctx := context.Background()
			const n = 20
			s, cs := e.seeded(t, n)
			for _, c := range cs {
				if err := s.Pay(ctx, c, s.Salary()); err != nil {
					t.Fatal(err)
				}
			}
			e.startDaemon(t)
			e.waitSettled(t, map[string]int64{"SETTLED": n})
			if out := e.cli(t, 0, "verify", "--bank-journal"); !strings.Contains(out, "all invariants hold") {
				t.Fatalf("verify after the payday:\n%s", out)
			}

			// The bank applies one payout a second time.
			journal, err := e.bank.Journal(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(journal, func(j banksim.JournalEntry) bool { return j.From == testAccounts.Collection && j.Dialect == dialect })
			if i < 0 {
				t.Fatalf("no %s transfer out of the collection account in a journal of %d entries", dialect, len(journal))
			}
			twice := journal[i]
			if _, err := e.bank.Credit(ctx, testAccounts.Collection, twice.Amount, "the money to pay twice"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.bank.Reapply(ctx, twice.Dialect, twice.IdempotencyKey); err != nil {
				t.Fatal(err)
			}
			ours, err := e.db.SucceededTransfers(ctx, "sandbox")
			if err != nil {
				t.Fatal(err)
			}
			j := slices.IndexFunc(ours, func(o pipeline.BankTransfer) bool {
				return o.From == twice.From && o.To == twice.To && o.Amount == twice.Amount
			})
			if j < 0 {
				t.Fatalf("the engine recorded no transfer %+v", twice)
			}
			out := e.cli(t, 3, "verify", "--bank-journal")
			want := "VIOLATION bank_journal_duplicate_at_bank settlement=0: sandbox " + ours[j].Key + ": "
			if got := strings.Count(out, "VIOLATION"); got != 1 || !strings.Contains(out, want) {
				t.Fatalf("verify after the bank applied %s (%s) twice: %d violations, want one %q:\n%s",
					ours[j].Key, twice.IdempotencyKey, got, want, out)
			}
		})
	}
}

// settle verify --bank-journal on a running engine: a transfer the bank
// applied while its attempt is still being recorded is in flight, not a
// difference; once recorded it matches.
func TestVerifyBankJournalWhileATransferIsInFlight(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	e.paidCustomer(t, 1_000_000)
	targets, err := e.db.PollTargets(ctx, 0, 10)
	if err != nil || len(targets) != 1 {
		t.Fatalf("poll targets: %v %v", targets, err)
	}
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: 1_000_000, Currency: "KRW"}, targets[0].Obligations(), pipeline.Policy{MinDeposit: 1})
	if err != nil {
		t.Fatal(err)
	}
	created, err := e.db.CreateSettlement(ctx, store.NewSettlement{Target: targets[0], Plan: plan,
		Steps: plan.Steps(targets[0].Number, testAccounts, targets[0].Payee())})
	if err != nil {
		t.Fatal(err)
	}
	claim, err := e.db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := e.restClient(t).Transfer(ctx, claim.Request())
	if err != nil {
		t.Fatal(err)
	}
	// The bank applied it; the worker has not recorded it yet.
	if out := e.cli(t, 0, "verify", "--bank-journal"); !strings.Contains(out, "all invariants hold") {
		t.Fatalf("verify with a transfer in flight:\n%s", out)
	}
	if _, err := e.db.Complete(ctx, claim, receipt); err != nil {
		t.Fatal(err)
	}
	if out := e.cli(t, 0, "verify", "--bank-journal"); !strings.Contains(out, "all invariants hold") {
		t.Fatalf("verify once the transfer is recorded:\n%s", out)
	}
}
