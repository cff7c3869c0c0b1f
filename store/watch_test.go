package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// alertsOf returns the kinds of a problem's alerts, oldest first.
func alertsOf(t *testing.T, db *store.DB, key string) []pipeline.AlertKind {
	t.Helper()
	rows, err := db.SQL().QueryContext(context.Background(), `SELECT kind FROM alerts WHERE problem_key = $1 ORDER BY id`, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var kinds []pipeline.AlertKind
	for rows.Next() {
		var k pipeline.AlertKind
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, k)
	}
	return kinds
}

// A problem found again unchanged raises nothing; changed, it raises a
// repeat; after its resolution it opens again. Concurrent checks raise one.
func TestRaiseAlertOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	a := pipeline.Alert{ProblemKey: "invariant:steps_in_order", Kind: "invariant_violation", Severity: "critical",
		Summary: "Invariant broken", Detail: "settlement 1", Action: "settle verify"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	raised := 0
	for range 5 {
		wg.Go(func() {
			ok, err := db.RaiseAlertOnce(ctx, a)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				raised++
			}
		})
	}
	wg.Wait()
	if raised != 1 {
		t.Fatalf("%d alerts raised by concurrent checks, want 1", raised)
	}
	step := func(a pipeline.Alert, want bool) {
		t.Helper()
		if ok, err := db.RaiseAlertOnce(ctx, a); err != nil || ok != want {
			t.Fatalf("raise %q: %v %v, want %v", a.Detail, ok, err, want)
		}
	}
	step(a, false)
	changed := a
	changed.Detail = "settlement 1; settlement 2"
	step(changed, true)
	step(changed, false)
	if _, err := db.ResolveProblem(ctx, a.ProblemKey, "holds again"); err != nil {
		t.Fatal(err)
	}
	step(changed, true)
	got := alertsOf(t, db, a.ProblemKey)
	want := []pipeline.AlertKind{pipeline.AlertKindInvariant, pipeline.AlertKindInvariant, pipeline.AlertKindResolved, pipeline.AlertKindInvariant}
	if len(got) != len(want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("alerts %v, want %v", got, want)
		}
	}
}

// A step is stuck once its attempt's outcome has been unknown for longer
// than asked, by the database's clock; its problem is reported unstuck once
// the bank has answered, until it is resolved.
func TestUnknownStepsAndUnstuckProblems(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	raise(t, db, "settlement:9:stuck", pipeline.AlertKindStepStuck, 0) // a key of another form is left alone
	c, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Unknown(ctx, c, time.Minute, "timeout"); err != nil {
		t.Fatal(err)
	}
	if got, err := db.UnknownSteps(ctx, 10*time.Minute, 100); err != nil || len(got) != 0 {
		t.Fatalf("unknown for a moment, stuck already: %+v %v", got, err)
	}
	if _, err := db.SQL().ExecContext(ctx, `UPDATE transfers SET updated_at = now() - interval '11 minutes' WHERE id = $1`, c.Transfer.ID); err != nil {
		t.Fatal(err)
	}
	got, err := db.UnknownSteps(ctx, 10*time.Minute, 100)
	if err != nil || len(got) != 1 {
		t.Fatalf("stuck steps %+v %v, want the one", got, err)
	}
	s := got[0]
	if s.StepID != c.StepID || s.SettlementID != c.SettlementID || s.Seq != 1 || s.Kind != "SWEEP" || s.Attempt != 1 ||
		s.Key != c.Transfer.Key || s.For < 11*time.Minute || s.For > time.Hour {
		t.Fatalf("stuck step %+v", s)
	}
	key := store.StuckProblemKey(c.SettlementID, c.StepID)
	if _, err := db.RaiseAlertOnce(ctx, pipeline.Alert{ProblemKey: key, Kind: pipeline.AlertKindStepStuck, Severity: "warning",
		SettlementID: c.SettlementID, Summary: "stuck", Detail: "since then"}); err != nil {
		t.Fatal(err)
	}
	if u, err := db.UnstuckProblems(ctx, 100); err != nil || len(u) != 0 {
		t.Fatalf("still stuck, reported unstuck: %+v %v", u, err)
	}
	if err := db.Absent(ctx, c); err != nil { // the bank never saw it
		t.Fatal(err)
	}
	u, err := db.UnstuckProblems(ctx, 100)
	if err != nil || len(u) != 1 {
		t.Fatalf("unstuck %+v %v, want the one", u, err)
	}
	if want := (store.UnstuckProblem{ProblemKey: key, Seq: 1, Kind: "SWEEP", Status: "READY", Attempt: 1, Transfer: "SENDING"}); u[0] != want {
		t.Fatalf("unstuck %+v, want %+v", u[0], want)
	}
	if _, err := db.ResolveProblem(ctx, key, "sent again"); err != nil {
		t.Fatal(err)
	}
	if u, err := db.UnstuckProblems(ctx, 100); err != nil || len(u) != 0 {
		t.Fatalf("resolved, reported again: %+v %v", u, err)
	}
}

// completeAll runs a settlement's steps from head to the end as if the bank
// accepted each transfer.
func completeAll(t *testing.T, db *store.DB, head int64) {
	t.Helper()
	ctx := context.Background()
	for id := head; id != 0; {
		c, err := db.ClaimStep(ctx, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		next, err := db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "ref"})
		if err != nil {
			t.Fatal(err)
		}
		id = next.ID
	}
}

// A replayed settlement that settles resolves its failure problems in the
// same transaction, once; other problems of it stay open, and a settlement
// that never failed raises nothing.
func TestSettlingAfterAReplayResolvesTheFailure(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, failed := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	_, clean := seedSettlement(t, db, "c2", 700_000, pipeline.Obligations{})
	c, err := db.ClaimStep(ctx, failed.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Failure{Refused: &pipeline.RefusedError{Code: pipeline.RefusedAccountFrozen, BankCode: "E_FROZEN"}}
	f.Reason = f.Refused.Error()
	f.Alert = pipeline.FailureAlert(c, f)
	if err := db.Fail(ctx, c, f); err != nil {
		t.Fatal(err)
	}
	other := raise(t, db, "reconcile:1:missing_at_bank", "reconcile", failed.SettlementID)
	out, err := db.Replay(ctx, failed.SettlementID, sandboxAccounts, store.Audit{Actor: "ops", Command: "replay", Reason: "unfrozen"}, false)
	if err != nil {
		t.Fatal(err)
	}
	completeAll(t, db, out.Enqueue.ID)
	completeAll(t, db, clean.HeadStepID)

	if got := alertsOf(t, db, f.Alert.ProblemKey); len(got) != 2 || got[1] != pipeline.AlertKindResolved {
		t.Fatalf("failure problem's alerts %v, want it raised and resolved", got)
	}
	var detail string
	if err := db.SQL().QueryRowContext(ctx, `SELECT detail FROM alerts WHERE problem_key = $1 AND kind = 'resolved'`,
		f.Alert.ProblemKey).Scan(&detail); err != nil || detail != fmt.Sprintf("settlement %d is SETTLED", failed.SettlementID) {
		t.Fatalf("resolution note %q %v", detail, err)
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM alerts WHERE id > $1`, other).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d alerts after the other problem, want only the failure's resolution (%v)", n, err)
	}
	if ok, err := db.ResolveProblem(ctx, f.Alert.ProblemKey, "again"); ok || err != nil {
		t.Fatalf("a resolved problem resolved again: %v %v", ok, err)
	}
}

// Cancelling a failed settlement resolves its failure problem, and says so;
// a dry run resolves nothing.
func TestCancellingAFailedSettlementResolvesTheFailure(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	c, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Failure{Refused: &pipeline.RefusedError{Code: pipeline.RefusedAccountClosed, BankCode: "E_CLOSED"}}
	f.Reason = f.Refused.Error()
	f.Alert = pipeline.FailureAlert(c, f)
	if err := db.Fail(ctx, c, f); err != nil {
		t.Fatal(err)
	}
	a := store.Audit{Actor: "ops", Command: "cancel", Reason: "customer left"}
	for _, dry := range []bool{true, false} {
		out, err := db.Cancel(ctx, c.SettlementID, a, dry)
		if err != nil || out.Changes[len(out.Changes)-1] != "its failure alert is resolved" {
			t.Fatalf("cancel (dry run %v): %+v %v", dry, out, err)
		}
		want := map[bool]int{true: 1, false: 2}[dry]
		if got := alertsOf(t, db, f.Alert.ProblemKey); len(got) != want {
			t.Fatalf("after cancel (dry run %v): alerts %v", dry, got)
		}
	}
	var note string
	if err := db.SQL().QueryRowContext(ctx, `SELECT detail FROM alerts WHERE kind = 'resolved'`).Scan(&note); err != nil ||
		note != fmt.Sprintf("settlement %d was CANCELLED by ops: customer left", c.SettlementID) {
		t.Fatalf("resolution %q %v", note, err)
	}
}
