package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// settle verify --bank-journal on a running engine: a transfer the bank
// applied while its attempt is still being recorded is in flight, not a
// difference; once recorded it matches.
func TestVerifyBankJournalWhileATransferIsInFlight(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	s := e.seeder(1)
	cs, err := s.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pay(ctx, cs[0], 1_000_000); err != nil {
		t.Fatal(err)
	}
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
