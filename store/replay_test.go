package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// feeFailed creates a settlement whose SWEEP is DONE and whose FEE step
// is claimed once; fail records how that claim ended. It returns the
// settlement and the FEE step.
func feeFailed(t *testing.T, db *store.DB, ref string, fail func(pipeline.Claim)) (int64, int64) {
	t.Helper()
	_, created := seedSettlement(t, db, ref, 500_000, pipeline.Obligations{FeeFixed: 1_000})
	fee := completeStep(t, db, claimStep(t, db, created.HeadStepID, time.Minute))
	c := claimStep(t, db, fee.ID, time.Minute)
	if c.Kind != pipeline.KindFee {
		t.Fatalf("the step after the SWEEP is %s, want FEE", c.Kind)
	}
	fail(c)
	return created.SettlementID, fee.ID
}

// outOfAttempts records a claim that ran out of attempts on answers the
// bank did not act on: its attempt stays SENDING.
func outOfAttempts(t *testing.T, db *store.DB) func(pipeline.Claim) {
	return func(c pipeline.Claim) {
		f := pipeline.Failure{Dead: true, Reason: "out of attempts (5): bank busy"}
		f.Alert = pipeline.FailureAlert(c, f)
		if err := db.Fail(context.Background(), c, f); err != nil {
			t.Fatal(err)
		}
	}
}

// A FEE step whose attempt the bank never acted on, replayed after the fee
// account was fixed in the configuration: its old attempt is SUPERSEDED and
// the next claim sends a new key to the new account, never the old key with
// other content. The legs after the DONE SWEEP still draw on the collection
// account it paid, though the configuration names another now. Replayed with
// unchanged accounts, the same key is sent again.
func TestReplayToNewAccountsSupersedesAnUnactedAttempt(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	fixed := map[string]pipeline.Accounts{"sandbox": {Collection: "COL-NEW", Lender: "LEND", Holding: "HOLD", Fee: "FEE-NEW"}}

	id, step := feeFailed(t, db, "c1", outOfAttempts(t, db))
	out, err := db.Replay(ctx, id, fixed, store.Audit{Actor: "ops", Command: "replay", Reason: "fee account fixed"}, false)
	if err != nil {
		t.Fatal(err)
	}
	said := strings.Join(out.Changes, "\n")
	for _, want := range []string{"to accounts.fee FEE → FEE-NEW", "SUPERSEDED", pipeline.AttemptKey(step, 2)} {
		if !strings.Contains(said, want) {
			t.Errorf("replay does not say %q:\n%s", want, said)
		}
	}
	if strings.Contains(said, "COL-NEW") {
		t.Errorf("replay moved a leg off the collection account the DONE SWEEP paid:\n%s", said)
	}
	c := claimStep(t, db, step, time.Minute)
	if c.Transfer.No != 2 || c.Transfer.Key != pipeline.AttemptKey(step, 2) || c.From != "COL" || c.To != "FEE-NEW" {
		t.Fatalf("claim after the replay: attempt %+v from %s to %s; want attempt 2 (%s) from COL to FEE-NEW",
			c.Transfer, c.From, c.To, pipeline.AttemptKey(step, 2))
	}
	if n := count(t, db, `SELECT count(*) FROM transfers WHERE step_id = $1 AND attempt = 1 AND status = 'SUPERSEDED'`, step); n != 1 {
		t.Fatalf("attempt 1 is not SUPERSEDED")
	}

	id, step = feeFailed(t, db, "c2", outOfAttempts(t, db))
	if _, err := db.Replay(ctx, id, sandboxAccounts, store.Audit{Actor: "ops", Command: "replay", Reason: "bank back"}, false); err != nil {
		t.Fatal(err)
	}
	if c := claimStep(t, db, step, time.Minute); c.Transfer.No != 1 || c.To != "FEE" {
		t.Fatalf("claim after a replay to unchanged accounts: attempt %+v to %s; want attempt 1 again to FEE", c.Transfer, c.To)
	}
	mustVerify(t, db)
}

// Replay refuses, changing nothing, when it cannot read the accounts again:
// the provider is no longer configured, or the customer is CLOSED (the
// PAYOUT after the failed FEE would go to their payout account).
func TestReplayRefusesWhenItCannotRouteAgain(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	var claim pipeline.Claim
	id, step := feeFailed(t, db, "c1", func(c pipeline.Claim) { claim = c; refuse(t, db, c, pipeline.RefusedNoSuchAccount) })
	for _, c := range []struct {
		name     string
		accounts map[string]pipeline.Accounts
		setup    string
		why      string
	}{
		{"provider gone", map[string]pipeline.Accounts{"other": accounts}, "", "provider sandbox is not in the configuration"},
		{"customer closed", sandboxAccounts, `UPDATE customers SET status = 'CLOSED' WHERE id = $1`, "is CLOSED"},
	} {
		if c.setup != "" {
			if _, err := db.SQL().ExecContext(ctx, c.setup, claim.CustomerID); err != nil {
				t.Fatal(err)
			}
		}
		_, err := db.Replay(ctx, id, c.accounts, store.Audit{Actor: "ops", Command: "replay", Reason: c.name}, false)
		if !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), c.why) {
			t.Fatalf("%s: replay err = %v, want refused: %s", c.name, err, c.why)
		}
		if n := count(t, db, `SELECT count(*) FROM steps WHERE id = $1 AND status = 'FAILED' AND to_account = 'FEE'`, step); n != 1 {
			t.Fatalf("%s: a refused replay changed the step", c.name)
		}
		if n := count(t, db, `SELECT count(*) FROM settlements WHERE id = $1 AND status = 'FAILED'`, id); n != 1 {
			t.Fatalf("%s: a refused replay changed the settlement", c.name)
		}
	}
}
