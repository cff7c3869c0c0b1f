package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// verified runs verify and returns every violation it found.
func verified(t *testing.T, db *store.DB) []store.Violation {
	t.Helper()
	vs, err := db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// violations runs verify and returns the names of the checks it found
// broken.
func violations(t *testing.T, db *store.DB) []string {
	t.Helper()
	var out []string
	for _, v := range verified(t, db) {
		out = append(out, v.Check)
	}
	return out
}

// A settlement is SETTLED, and its VA free to be polled, when its last
// money step is DONE; its NOTIFY runs after it. A NOTIFY that retries with
// a warning raises it once, one that gives up is DEAD with the settlement
// still SETTLED, verify holds all along, replay sends it again, and its
// delivery resolves the warning.
func TestNotifyRunsAfterTheSettlementIsSettled(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	target, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	next := completeStep(t, db, claimStep(t, db, created.HeadStepID, time.Minute)) // SWEEP
	notifyRef := completeStep(t, db, claimStep(t, db, next.ID, time.Minute))       // PAYOUT
	if notifyRef.ID == 0 {
		t.Fatal("no NOTIFY step follows PAYOUT")
	}
	if n := count(t, db, `SELECT count(*) FROM settlements WHERE id = $1 AND status = 'SETTLED' AND finished_at IS NOT NULL`,
		created.SettlementID); n != 1 {
		t.Fatal("the settlement is not SETTLED once its last money step is DONE")
	}
	if n := count(t, db, `SELECT count(*) FROM virtual_accounts WHERE id = $1 AND held_until IS NULL`, target.VAID); n != 1 {
		t.Fatal("the VA is still held from polling after its money moved")
	}
	mustVerify(t, db) // NOTIFY READY under a SETTLED settlement

	c := claimStep(t, db, notifyRef.ID, time.Minute)
	if c.Kind != pipeline.KindNotify || c.SettledFor < 0 || c.SettledFor > time.Minute {
		t.Fatalf("NOTIFY claim %+v, want settled a moment ago", c)
	}
	warn := pipeline.NotifyAlert(c, "evt_x", time.Hour, false)
	for range 2 {
		if err := db.Retry(ctx, c, pipeline.Wait{Reason: "app down", Alert: &warn}); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, db)
		c = claimStep(t, db, notifyRef.ID, time.Minute)
	}
	if got := alertsOf(t, db, warn.ProblemKey); !slices.Equal(got, []pipeline.AlertKind{pipeline.AlertKindNotifyUndelivered}) {
		t.Fatalf("alerts of %s: %v, want one warning for two failed retries", warn.ProblemKey, got)
	}
	notifyShown(t, db, created.SettlementID, "RUNNING", 1, 0)
	gaveUp := pipeline.NotifyAlert(c, "evt_x", time.Hour, true)
	if err := db.Fail(ctx, c, pipeline.Failure{Dead: true, Reason: "gave up", Alert: gaveUp}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM settlements s JOIN steps st ON st.settlement_id = s.id
	                       WHERE s.id = $1 AND s.status = 'SETTLED' AND st.kind = 'NOTIFY' AND st.status = 'DEAD'`,
		created.SettlementID); n != 1 {
		t.Fatal("a NOTIFY that gave up must be DEAD under a SETTLED settlement")
	}
	if n := count(t, db, `SELECT count(*) FROM alerts WHERE severity = 'critical' OR kind = $1`, pipeline.AlertKindSettlementFailed); n != 0 {
		t.Fatalf("%d critical alerts for a notification", n)
	}
	notifyShown(t, db, created.SettlementID, "DEAD", 0, 1)
	mustVerify(t, db)

	ref := replay(t, db, created.SettlementID)
	if ref != notifyRef.ID {
		t.Fatalf("replay re-drove step %d, want the DEAD NOTIFY %d", ref, notifyRef.ID)
	}
	if n := count(t, db, `SELECT count(*) FROM settlements WHERE id = $1 AND status = 'SETTLED'`, created.SettlementID); n != 1 {
		t.Fatal("replaying a notification changed its SETTLED settlement")
	}
	completeStep(t, db, claimStep(t, db, notifyRef.ID, time.Minute))
	if got := alertsOf(t, db, warn.ProblemKey); len(got) != 3 || got[2] != pipeline.AlertKindResolved {
		t.Fatalf("alerts of %s: %v, want the warning, the give-up and a resolution", warn.ProblemKey, got)
	}
	mustVerify(t, db)
}

// notifyShown checks what operators see of a settlement's notification:
// its status in the settlement's row, and the status page's counts.
func notifyShown(t *testing.T, db *store.DB, id int64, status pipeline.StepStatus, retrying, gaveUp int64) {
	t.Helper()
	d, err := db.GetSettlement(context.Background(), id)
	if err != nil || d.Status != pipeline.SettlementSettled || d.Notify != status {
		t.Fatalf("settlement %d: %s, notify %q (%v); want SETTLED, notify %s", id, d.Status, d.Notify, err, status)
	}
	g, err := db.Gauges(context.Background(), time.Minute)
	if err != nil || g.NotifyRetrying != retrying || g.NotifyGaveUp != gaveUp {
		t.Fatalf("gauges %+v (%v): want %d notifications retrying, %d given up", g, err, retrying, gaveUp)
	}
}

// verify lets a SETTLED settlement have a NOTIFY step READY, RUNNING or
// DEAD, and nothing else that is not DONE; a RUNNING settlement needs a
// live money step, and a FAILED one a failed money step.
func TestVerifyKeepsNotifyOutsideTheMoney(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	set := func(id int64, query string) {
		t.Helper()
		if _, err := db.SQL().ExecContext(ctx, query, id); err != nil {
			t.Fatal(err)
		}
	}
	_, s1 := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	next := completeStep(t, db, claimStep(t, db, s1.HeadStepID, time.Minute))
	completeStep(t, db, claimStep(t, db, next.ID, time.Minute)) // SETTLED, NOTIFY READY
	for _, st := range []string{"RUNNING", "DEAD", "READY"} {
		set(s1.SettlementID, `UPDATE steps SET status = '`+st+`' WHERE settlement_id = $1 AND kind = 'NOTIFY'`)
		if got := violations(t, db); len(got) != 0 {
			t.Fatalf("NOTIFY %s under a SETTLED settlement: violations %v", st, got)
		}
	}
	for _, st := range []string{"PENDING", "FAILED", "CANCELLED"} {
		set(s1.SettlementID, `UPDATE steps SET status = '`+st+`' WHERE settlement_id = $1 AND kind = 'NOTIFY'`)
		if got := violations(t, db); !slices.Equal(got, []string{"settled_all_done"}) {
			t.Fatalf("NOTIFY %s under a SETTLED settlement: violations %v, want settled_all_done", st, got)
		}
	}
	set(s1.SettlementID, `UPDATE steps SET status = 'READY' WHERE settlement_id = $1 AND kind = 'NOTIFY'`)

	// Its money steps all DONE, only NOTIFY live: it should have been SETTLED.
	set(s1.SettlementID, `UPDATE settlements SET status = 'RUNNING' WHERE id = $1`)
	if got := violations(t, db); !slices.Contains(got, "running_has_live_step") {
		t.Fatalf("RUNNING settlement with only NOTIFY live: violations %v", got)
	}
	// Failed by its NOTIFY alone: money moved, nothing failed it.
	set(s1.SettlementID, `UPDATE steps SET status = 'DEAD' WHERE settlement_id = $1 AND kind = 'NOTIFY'`)
	set(s1.SettlementID, `UPDATE settlements SET status = 'FAILED' WHERE id = $1`)
	if got := violations(t, db); !slices.Contains(got, "failed_has_failed_step") {
		t.Fatalf("FAILED settlement whose only dead step is NOTIFY: violations %v", got)
	}
}

// settle compensate refuses a SETTLED settlement whose notification is
// not delivered, says why, and changes nothing.
func TestCompensateRefusesAnUndeliveredNotification(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	next := completeStep(t, db, claimStep(t, db, created.HeadStepID, time.Minute))
	completeStep(t, db, claimStep(t, db, next.ID, time.Minute))
	before := count(t, db, `SELECT count(*) FROM audit_log`)
	_, err := db.Compensate(ctx, created.SettlementID, store.Audit{Actor: "ops", Command: "compensate", Reason: "app down"}, false)
	if !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), "notification") {
		t.Fatalf("compensate: err = %v, want a refusal that names the notification", err)
	}
	// The refusal is audited, and nothing else is written.
	if n := count(t, db, `SELECT count(*) FROM audit_log WHERE outcome = 'refused' AND command = 'compensate'`); n != 1 ||
		count(t, db, `SELECT count(*) FROM audit_log`) != before+1 {
		t.Fatalf("a refused compensate wrote %d refused audit rows, want exactly its one", n)
	}
	mustVerify(t, db)
}

// The migration that moves NOTIFY after the settlement settles the
// settlements older code left open by their NOTIFY alone: RUNNING with
// every money step DONE, and FAILED because NOTIFY ran out of attempts
// (its critical problem resolved, its NOTIFY retried). A settlement
// failed by a money step stays FAILED.
func TestMigrationSettlesWhatOnlyNotifyHeldOpen(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	moved := func(ref string) int64 {
		_, created := seedSettlement(t, db, ref, 500_000, pipeline.Obligations{})
		next := completeStep(t, db, claimStep(t, db, created.HeadStepID, time.Minute))
		completeStep(t, db, claimStep(t, db, next.ID, time.Minute))
		return created.SettlementID
	}
	running, failed := moved("c1"), moved("c2")
	_, payoutFailed := seedSettlement(t, db, "c3", 500_000, pipeline.Obligations{})
	next := completeStep(t, db, claimStep(t, db, payoutFailed.HeadStepID, time.Minute))
	refuse(t, db, claimStep(t, db, next.ID, time.Minute), pipeline.RefusedAccountFrozen)
	// As older code left them: NOTIFY READY in a RUNNING settlement, and
	// NOTIFY DEAD in a FAILED one with its critical alert.
	for _, q := range []string{
		`UPDATE settlements SET status = 'RUNNING', finished_at = NULL WHERE id = $1`,
	} {
		if _, err := db.SQL().ExecContext(ctx, q, running); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`UPDATE settlements SET status = 'FAILED', finished_at = NULL, failure_reason = 'out of attempts (5)' WHERE id = $1`,
		`UPDATE steps SET status = 'DEAD', attempts = 5 WHERE settlement_id = $1 AND kind = 'NOTIFY'`,
		`INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail)
		 VALUES ('settlement:' || $1::bigint || ':out_of_attempts', 'settlement_failed', 'critical', $1::bigint, 'failed at NOTIFY', 'x')`,
	} {
		if _, err := db.SQL().ExecContext(ctx, q, failed); err != nil {
			t.Fatal(err)
		}
	}
	// Down past 00014 (and the migrations after it), then up again.
	for {
		_, have, _, err := db.SchemaCurrent(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if have < 14 {
			break
		}
		if err := db.Migrate(ctx, "down", io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	status := func(id int64) string {
		var s string
		if err := db.SQL().QueryRowContext(ctx, `SELECT s.status || ' ' || st.status FROM settlements s
		      JOIN steps st ON st.settlement_id = s.id AND st.kind = 'NOTIFY' WHERE s.id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for id, want := range map[int64]string{running: "SETTLED READY", failed: "SETTLED READY", payoutFailed.SettlementID: "FAILED PENDING"} {
		if got := status(id); got != want {
			t.Errorf("settlement %d after the migration: %s, want %s", id, got, want)
		}
	}
	if got := alertsOf(t, db, fmt.Sprintf("settlement:%d:out_of_attempts", failed)); !slices.Equal(got, []pipeline.AlertKind{pipeline.AlertKindSettlementFailed, pipeline.AlertKindResolved}) {
		t.Errorf("the NOTIFY failure's problem: %v, want it resolved", got)
	}
	mustVerify(t, db)
}
