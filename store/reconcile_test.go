package store_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

func countAlerts(t *testing.T, db *store.DB, kind pipeline.AlertKind) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM alerts WHERE kind = $1`, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRecordFindingsStoresAndAlertsOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	run, err := db.StartReconcileRun(ctx, "", time.Now().Add(-24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	fs := []pipeline.Finding{
		{Provider: "sandbox", Kind: pipeline.FindingUnknownToEngine, Fingerprint: "sandbox|unknown_to_engine|key|m1",
			Account: "LEND", Key: "m1", BankAmount: 500, OccurredAt: at, Effects: map[string]int64{"LEND": -500}, Detail: "moved"},
		{Provider: "sandbox", Kind: pipeline.FindingBalanceDrift, Fingerprint: "sandbox|balance_drift|COL|100",
			Account: "COL", Amount: 100, Detail: "drift"},
	}
	first, err := db.RecordFindings(ctx, run, fs)
	if err != nil {
		t.Fatal(err)
	}
	if !first[0].New || !first[1].New {
		t.Fatalf("first record: %+v", first)
	}
	again, err := db.RecordFindings(ctx, run, fs)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].New || again[1].New || again[0].ID != first[0].ID || again[1].ID != first[1].ID {
		t.Fatalf("second record: %+v, first %+v", again, first)
	}
	if n := countAlerts(t, db, pipeline.AlertKindReconcile); n != 2 {
		t.Fatalf("%d reconcile alerts, want 2", n)
	}
	rows, err := db.ListFindings(ctx, store.FindingFilter{Open: true})
	if err != nil || len(rows) != 2 || rows[1].SeenCount != 2 || rows[1].Status != store.FindingOpen {
		t.Fatalf("list: %+v %v", rows, err)
	}

	// Effects of findings before a window explain later balances.
	snap, err := db.ReconcileSnapshot(ctx, "sandbox", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(snap.Stored, map[string]int64{"LEND": -500}) {
		t.Fatalf("stored effects %v", snap.Stored)
	}
	if snap, _ = db.ReconcileSnapshot(ctx, "sandbox", at); len(snap.Stored) != 0 {
		t.Fatalf("a finding inside the window counts as stored: %v", snap.Stored)
	}

	// A resolved transaction finding is a fact: it is not raised again. A
	// resolved drift that comes back is a new finding.
	a := store.Audit{Actor: "ops-kim", Command: "reconcile findings resolve", Reason: "checked"}
	for _, r := range first {
		if _, err := db.ActOnFinding(ctx, r.ID, false, a); err != nil {
			t.Fatal(err)
		}
	}
	third, err := db.RecordFindings(ctx, run, fs)
	if err != nil {
		t.Fatal(err)
	}
	if third[0].New || third[0].ID != first[0].ID || !third[1].New {
		t.Fatalf("after resolution: %+v", third)
	}
	if n := countAlerts(t, db, pipeline.AlertKindReconcile); n != 3 {
		t.Fatalf("%d reconcile alerts, want 3", n)
	}
}

func TestActOnFindingAcknowledgesResolvesAndAudits(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	run, _ := db.StartReconcileRun(ctx, "sandbox", time.Now(), false)
	rec, err := db.RecordFindings(ctx, run, []pipeline.Finding{{Provider: "sandbox", Kind: pipeline.FindingMissingAtBank,
		Fingerprint: "f1", Account: "VA00001234", Key: "k1", Amount: 10, OccurredAt: time.Now(), Detail: "missing"}})
	if err != nil {
		t.Fatal(err)
	}
	id := rec[0].ID
	if _, err := db.ActOnFinding(ctx, id, true, store.Audit{Actor: "ops", Command: "x"}); !errors.Is(err, store.ErrRefused) {
		t.Fatalf("no reason: %v", err)
	}
	if _, err := db.ActOnFinding(ctx, 999, true, store.Audit{Actor: "ops", Command: "x", Reason: "r"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown finding: %v", err)
	}
	row, err := db.ActOnFinding(ctx, id, true, store.Audit{Actor: "ops", Command: "reconcile findings resolve", Reason: "bank confirms a delay"})
	if err != nil || row.Status != store.FindingAcknowledged || row.ActedBy != "ops" || row.ActedReason != "bank confirms a delay" {
		t.Fatalf("ack: %+v %v", row, err)
	}
	if open, _ := db.ListFindings(ctx, store.FindingFilter{Open: true}); len(open) != 1 {
		t.Fatalf("an acknowledged finding is still open: %+v", open)
	}
	if _, err := db.ActOnFinding(ctx, id, true, store.Audit{Actor: "ops", Command: "x", Reason: "again"}); !errors.Is(err, store.ErrNothingToDo) {
		t.Fatalf("second ack: %v", err)
	}
	if _, err := db.ActOnFinding(ctx, id, false, store.Audit{Actor: "ops", Command: "x", Reason: "arrived"}); err != nil {
		t.Fatal(err)
	}
	if open, _ := db.ListFindings(ctx, store.FindingFilter{Open: true}); len(open) != 0 {
		t.Fatalf("resolved finding listed as open: %+v", open)
	}
	if n := countAlerts(t, db, pipeline.AlertKindResolved); n != 1 {
		t.Fatalf("%d resolved follow-ups, want 1", n)
	}
	audit, err := db.ListAudit(ctx, "reconcile_finding:"+strconv.FormatInt(id, 10), 10)
	if err != nil || len(audit) != 3 { // ack, the second ack (nothing to do), resolve
		t.Fatalf("audit: %+v %v", audit, err)
	}
	if string(audit[0].Before) == "" || !strings.Contains(string(audit[2].After), "ACKNOWLEDGED") || strings.Contains(string(audit[2].After), "VA00001234") {
		t.Fatalf("audit rows: %s / %s", audit[2].Before, audit[2].After)
	}
	if audit[1].Outcome != store.AuditNothingToDo || !strings.Contains(audit[1].Detail, "already ACKNOWLEDGED") {
		t.Fatalf("the second ack's audit row: %s %q", audit[1].Outcome, audit[1].Detail)
	}
}

func TestReconcileSnapshotReadsLedgerAndSucceededAttempts(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	from := time.Now().Add(-time.Minute)
	_, created := seedSettlement(t, db, "c1", 1_000_000, pipeline.Obligations{})
	c, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded}); err != nil {
		t.Fatal(err)
	}
	snap, err := db.ReconcileSnapshot(ctx, "sandbox", from)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(snap.Ledger, map[string]int64{"VA-c1": 0, "COL": 1_000_000}) {
		t.Fatalf("ledger %v", snap.Ledger)
	}
	if len(snap.Expected) != 1 || snap.Expected[0].Key != c.Transfer.Key || snap.Expected[0].From != "VA-c1" ||
		snap.Expected[0].Amount != 1_000_000 || snap.Expected[0].SucceededAt.IsZero() || snap.AsOf.IsZero() {
		t.Fatalf("expected %+v", snap.Expected)
	}
	if len(snap.VAs) != 1 || snap.VAs[0] != "VA-c1" {
		t.Fatalf("VAs %v", snap.VAs)
	}
	if later, _ := db.ReconcileSnapshot(ctx, "sandbox", time.Now().Add(time.Hour)); len(later.Expected) != 0 {
		t.Fatalf("attempts before the window: %+v", later.Expected)
	}
	got, err := db.EngineAttempts(ctx, "sandbox", []string{c.Transfer.Key, "nope"})
	if err != nil || len(got) != 1 || got[c.Transfer.Key].Status != pipeline.AttemptSucceeded {
		t.Fatalf("attempts %+v %v", got, err)
	}
}

func TestStatementMarksAndLock(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Hour)
	marks := []store.StatementMark{
		{Account: "COL", Cursor: "10", LastAt: base.Add(10 * time.Minute)},
		{Account: "COL", Cursor: "20", LastAt: base.Add(20 * time.Minute)}, // same hour: the later one is kept
		{Account: "COL", Cursor: "30", LastAt: base.Add(90 * time.Minute)},
	}
	if err := db.SaveStatementMarks(ctx, "sandbox", marks); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		before time.Time
		want   string
	}{
		{base, ""},
		{base.Add(30 * time.Minute), "20"},
		{base.Add(2 * time.Hour), "30"},
	} {
		if got, err := db.StatementCursor(ctx, "sandbox", "COL", c.before); err != nil || got != c.want {
			t.Errorf("cursor before %s = %q %v, want %q", c.before, got, err, c.want)
		}
	}
	release, err := db.LockReconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LockReconcile(ctx); !errors.Is(err, store.ErrReconcileBusy) {
		t.Fatalf("second lock: %v", err)
	}
	release()
	release2, err := db.LockReconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release2()
}

// A finding's engine amount is its transfer's; a balance drift's is the
// balance the engine accounts for, the bank's less the unexplained part.
func TestFindingEngineAmount(t *testing.T) {
	t.Parallel()
	missing := store.FindingRow{Kind: pipeline.FindingMissingAtBank, Amount: 5000}
	drift := store.FindingRow{Kind: pipeline.FindingBalanceDrift, Amount: 888000, BankAmount: 1000000}
	if got := missing.EngineAmount(); got != 5000 {
		t.Errorf("missing at bank: engine amount %d, want 5000", got)
	}
	if got := drift.EngineAmount(); got != 112000 {
		t.Errorf("balance drift: engine amount %d, want 112000", got)
	}
}
