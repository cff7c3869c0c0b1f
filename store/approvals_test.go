package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/store"
)

// failedAtPayout is a settlement whose SWEEP moved money and whose PAYOUT
// the bank refused: FAILED, with an alert.
func failedAtPayout(t *testing.T, db *store.DB, ref string) int64 {
	t.Helper()
	return settletest.FailedAtPayout(t, db, ref, 500_000, accounts)
}

// requested is a FAILED settlement and alice's request for a command on
// it (replay, cancel or compensate).
func requested(t *testing.T, action string) (*store.DB, int64, store.Request) {
	t.Helper()
	db := newDB(t)
	id := failedAtPayout(t, db, "c1")
	ops := map[string]func(context.Context, int64, store.Audit, bool) (store.Outcome, error){
		"replay": replayer(db), "cancel": db.Cancel, "compensate": db.Compensate}
	return db, id, request(t, db, id, action, ops[action])
}

// request records alice's request for a command, with its dry run.
func request(t *testing.T, db *store.DB, id int64, action string, op func(context.Context, int64, store.Audit, bool) (store.Outcome, error)) store.Request {
	t.Helper()
	ctx := context.Background()
	dry, err := op(ctx, id, store.Audit{Actor: "slack:T1/UALICE", Command: action, Reason: "look"}, true)
	if err != nil {
		t.Fatalf("dry run of %s: %v", action, err)
	}
	r, err := db.RequestApproval(ctx, store.NewRequest{Action: action, DryRun: dry, Window: 15 * time.Minute},
		store.Audit{Actor: "slack:T1/UALICE", Command: "request " + action, Reason: "from the alert", Click: "req-" + itoa(clicks.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.RequestPending || r.DryRun != dry.Text() || !r.ExpiresAt.Equal(r.CreatedAt.Add(15*time.Minute)) {
		t.Fatalf("request %+v, want PENDING for 15m with the dry run %q", r, dry.Text())
	}
	return r
}

var clicks atomic.Int64

// approval is who approves request r, with which click.
func approval(r store.Request, who, click string) store.Audit {
	return store.Audit{Actor: who, Command: r.Action, Reason: "approved in Slack", Approves: r.ID, Click: click,
		Args: map[string]any{"request": r.ID, "requested_by": r.Requester}}
}

func requestStatus(t *testing.T, db *store.DB, id int64) store.Request {
	t.Helper()
	r, err := db.GetRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A request runs only with a second operator's approval, once however
// often it is approved, and every try is audited: the requester's own
// approval is refused, the second approver's runs the replay, a third
// finds it done, and the same click delivered again does nothing at all.
func TestApprovalRunsTheCommandOnceWithFourEyes(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	id := failedAtPayout(t, db, "c1")
	subject := "settlement:" + itoa(id)
	mark := lastAudit(t, db)
	r := request(t, db, id, "replay", replayer(db))
	if a := newAudit(t, db, subject, mark); a.Actor != "slack:T1/UALICE" || a.Command != "request replay" || a.Outcome != "applied" ||
		!strings.Contains(a.Args, `"request": `+itoa(r.ID)) || a.After == nil || !strings.Contains(*a.After, "PENDING") {
		t.Fatalf("the request's audit row: %+v", a)
	}

	before, mark := snapshot(t, db, id), lastAudit(t, db)
	_, err := replayer(db)(ctx, id, approval(r, "slack:T1/UALICE", "own"), false)
	if !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), "four eyes") {
		t.Fatalf("the requester's own approval: %v", err)
	}
	if snapshot(t, db, id) != before || requestStatus(t, db, r.ID).Status != store.RequestPending {
		t.Fatal("the requester's own approval changed something")
	}
	if a := newAudit(t, db, subject, mark); a.Outcome != "refused" || a.Actor != "slack:T1/UALICE" || a.Command != "replay" {
		t.Fatalf("the refused approval's audit row: %+v", a)
	}

	// Two approvers at once (and one of them twice): one replay.
	mark = lastAudit(t, db)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, who := range []string{"slack:T1/UBOB", "slack:T1/UCAROL", "slack:T1/UBOB"} {
		click := "click-" + who
		wg.Go(func() { _, errs[i] = replayer(db)(ctx, id, approval(r, who, click), false) })
	}
	wg.Wait()
	var applied, done, dup int
	for _, err := range errs {
		switch {
		case err == nil:
			applied++
		case errors.Is(err, store.ErrNothingToDo) && strings.Contains(err.Error(), "already approved"):
			done++
		case errors.Is(err, store.ErrDuplicate):
			dup++
		default:
			t.Fatalf("approval: %v", err)
		}
	}
	if applied != 1 || done+dup != 2 || dup < 1 {
		t.Fatalf("approvals: %d applied, %d found it done, %d duplicates: %v", applied, done, dup, errs)
	}
	got := requestStatus(t, db, r.ID)
	if got.Status != store.RequestApproved || got.Approver == "" || got.Approver == got.Requester || got.DecidedAt == nil {
		t.Fatalf("request after approval: %+v", got)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_log WHERE id > $1 AND outcome = 'applied' AND command = 'replay'`, mark); n != 1 {
		t.Fatalf("%d applied replays audited, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_log WHERE id > $1`, mark); n != 1+done {
		t.Fatalf("%d audit rows for %d approvals that acted or were told it was done", n, 1+done)
	}
	if d, err := db.GetSettlement(ctx, id); err != nil || d.Status != "RUNNING" {
		t.Fatalf("settlement %s %v after the approval, want RUNNING", d.Status, err)
	}
}

// An approval after the window, by the database's clock, runs nothing and
// closes the request EXPIRED.
func TestApprovalAfterTheWindowIsRefused(t *testing.T) {
	t.Parallel()
	db, id, r := requested(t, "replay")
	ctx := context.Background()
	if _, err := db.SQL().Exec(`UPDATE approval_requests SET created_at = created_at - interval '20 minutes',
		expires_at = expires_at - interval '20 minutes' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	before, mark := snapshot(t, db, id), lastAudit(t, db)
	_, err := replayer(db)(ctx, id, approval(r, "slack:T1/UBOB", "late"), false)
	if !errors.Is(err, store.ErrRequestExpired) || !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), "15m0s after it was made") {
		t.Fatalf("late approval: %v", err)
	}
	if snapshot(t, db, id) != before {
		t.Fatal("a late approval changed the settlement")
	}
	if got := requestStatus(t, db, r.ID); got.Status != store.RequestExpired || got.Detail != err.Error() || got.Approver != "" {
		t.Fatalf("request after a late approval: %+v", got)
	}
	if a := newAudit(t, db, "settlement:"+itoa(id), mark); a.Outcome != "refused" || a.Detail != err.Error() {
		t.Fatalf("late approval's audit row: %+v", a)
	}
	if _, err := replayer(db)(ctx, id, approval(r, "slack:T1/UCAROL", "later"), false); !errors.Is(err, store.ErrRefused) ||
		!strings.Contains(err.Error(), "is EXPIRED") {
		t.Fatalf("approving an expired request: %v", err)
	}
}

// An approval whose settlement changed since the request runs nothing and
// closes the request CHANGED: the customer's payout account changed (the
// replay would still run, to another account), or someone else replayed it.
func TestApprovalAfterTheSettlementChangedIsRefused(t *testing.T) {
	t.Parallel()
	db, id, r := requested(t, "replay")
	ctx := context.Background()
	if _, err := db.UpdateCustomer(ctx, "c1", store.CustomerPatch{PayoutAccount: new("OWN-NEW-c1")},
		store.Audit{Actor: "ops", Command: "customers update", Reason: "new account"}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, db, id)
	_, err := replayer(db)(ctx, id, approval(r, "slack:T1/UBOB", "b1"), false)
	if !errors.Is(err, store.ErrRequestChanged) || !strings.Contains(err.Error(), "dry run now differs") {
		t.Fatalf("approval after the payout account changed: %v", err)
	}
	if snapshot(t, db, id) != before || requestStatus(t, db, r.ID).Status != store.RequestChanged {
		t.Fatal("a stale approval changed the settlement, or left its request open")
	}

	r = request(t, db, id, "replay", replayer(db))
	if _, err := replayer(db)(ctx, id, store.Audit{Actor: "ops", Command: "replay", Reason: "from the CLI"}, false); err != nil {
		t.Fatal(err)
	}
	_, err = replayer(db)(ctx, id, approval(r, "slack:T1/UBOB", "b2"), false)
	if !errors.Is(err, store.ErrRequestChanged) || !strings.Contains(err.Error(), "only a FAILED settlement is replayed") {
		t.Fatalf("approval after a replay from the CLI: %v", err)
	}
}

// A compensation's dry run adds steps whose IDs its rollback does not give
// back; its approval still finds the settlement unchanged and runs it.
func TestApprovedCompensationRuns(t *testing.T) {
	t.Parallel()
	db, id, r := requested(t, "compensate")
	ctx := context.Background()
	out, err := db.Compensate(ctx, id, approval(r, "slack:T1/UBOB", "b1"), false)
	if err != nil || out.Enqueue.ID == 0 || out.Text() == "" {
		t.Fatalf("approved compensation: %+v %v", out, err)
	}
	if d, err := db.GetSettlement(ctx, id); err != nil || d.Status != "COMPENSATING" {
		t.Fatalf("settlement %s %v, want COMPENSATING", d.Status, err)
	}
	// An approval names its command: this request is not a cancel's.
	if _, err := db.Cancel(ctx, id, approval(r, "slack:T1/UBOB", "b2"), false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a cancel approving a compensation's request: %v", err)
	}
}

// Decisions that change no settlement are audited once per click.
func TestRecordAuditOncePerClick(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	a := store.Audit{Actor: "slack:T1/UEVE", Command: "request replay", Reason: "from the alert", Click: "T1:trig:1.2"}
	refusal := errors.Join(store.ErrRefused, errors.New("slack user UEVE has no role"))
	mark := lastAudit(t, db)
	if err := db.RecordAudit(ctx, a, "settlement:1", refusal); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordAudit(ctx, a, "settlement:1", refusal); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("the same click again: %v", err)
	}
	if r := newAudit(t, db, "settlement:1", mark); r.Outcome != "refused" || !strings.Contains(r.Detail, "no role") {
		t.Fatalf("audit row %+v", r)
	}
	a.Click = "T1:trig:1.3"
	if err := db.RecordAudit(ctx, a, "settlement:1", errors.New("the database failed")); err == nil {
		t.Fatal("an error that decided nothing was audited")
	}
}
