package settletest

import (
	"context"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// FailedAtPayout writes a customer ref at provider "sandbox" and a deposit
// of theirs, runs its settlement's steps through the store as workers
// would, and has the bank refuse the PAYOUT (account frozen): the
// settlement is FAILED after its SWEEP moved money, with its alert raised.
// It returns the settlement's ID.
func FailedAtPayout(t testing.TB, db *store.DB, ref string, deposit int64, accounts pipeline.Accounts) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := db.CreateCustomer(ctx, store.NewCustomer{
		ExternalRef: ref, HolderName: "Kim " + ref, Payout: pipeline.Payee{Account: "1102345" + ref, Holder: "Kim " + ref},
		Provider: "sandbox", VANumber: "VA-" + ref, Currency: "KRW",
	}); err != nil {
		t.Fatal(err)
	}
	targets, err := db.PollTargets(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		if target.Number != "VA-"+ref {
			continue
		}
		plan, err := pipeline.BuildPlan(pipeline.Money{Amount: deposit, Currency: "KRW"}, target.Obligations(), pipeline.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		created, err := db.CreateSettlement(ctx, store.NewSettlement{Target: target, Plan: plan,
			Steps: plan.Steps(target.Number, accounts, target.Payee())})
		if err != nil {
			t.Fatal(err)
		}
		for step := created.HeadStepID; ; {
			c, err := db.ClaimStep(ctx, step, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind == pipeline.KindPayout {
				f := pipeline.Failure{Refused: &pipeline.RefusedError{Code: pipeline.RefusedAccountFrozen, BankCode: "E_FROZEN"}}
				f.Reason = f.Refused.Error()
				f.Alert = pipeline.FailureAlert(c, f)
				if err := db.Fail(ctx, c, f); err != nil {
					t.Fatal(err)
				}
				return created.SettlementID
			}
			next, err := db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "tr-" + ref})
			if err != nil {
				t.Fatal(err)
			}
			step = next.ID
		}
	}
	t.Fatalf("no poll target for VA-%s", ref)
	return 0
}
