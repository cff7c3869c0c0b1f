package store_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// settleAll runs every step of a settlement to DONE as a worker would.
func settleAll(t *testing.T, db *store.DB, head int64) {
	t.Helper()
	ctx := context.Background()
	for id := head; id != 0; {
		c, err := db.ClaimStep(ctx, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		next, err := db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "tr"})
		if err != nil {
			t.Fatal(err)
		}
		id = next.ID
	}
}

// failAt runs a settlement's steps until the one of the given kind and
// records the bank's permanent refusal of it, as the executor does.
func failAt(t *testing.T, db *store.DB, head int64, kind pipeline.Kind, reason string) {
	t.Helper()
	ctx := context.Background()
	c, err := db.ClaimStep(ctx, head, time.Minute)
	for err == nil && c.Kind != kind {
		var next pipeline.StepRef
		if next, err = db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded}); err == nil {
			c, err = db.ClaimStep(ctx, next.ID, time.Minute)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Failure{
		Refused: &pipeline.RefusedError{Code: "account_frozen", BankCode: "account_frozen", Message: "frozen"},
		Reason:  reason,
	}
	f.Alert = pipeline.FailureAlert(c, f)
	if err := db.Fail(context.Background(), c, f); err != nil {
		t.Fatal(err)
	}
}

func TestGaugesOfAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	g, err := db.Gauges(context.Background(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.ByStatus) != 0 || g.Open != 0 || g.OldestOpen != 0 || g.DeadSteps != 0 ||
		g.StuckRunning != 0 || g.StuckReady != 0 || g.AlertBacklog != 0 {
		t.Fatalf("gauges of an empty database: %+v", g)
	}
	st, err := db.Status(context.Background(), store.StatusQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Failed == nil || st.Stuck == nil || st.SettledToday == nil || st.Now.IsZero() {
		t.Fatalf("empty status must have empty, non-nil lists and a clock: %+v", st)
	}
}

// One settlement of each kind an operator cares about: settled today,
// failed, running with an expired lease, and READY but never picked up.
func TestStatusShowsWhatNeedsAnOperator(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, settled := seedSettlement(t, db, "settled", 700_000, pipeline.Obligations{})
	settleAll(t, db, settled.HeadStepID)
	_, failed := seedSettlement(t, db, "failed", 500_000, pipeline.Obligations{})
	failAt(t, db, failed.HeadStepID, pipeline.KindPayout, "bank refused the transfer: account_frozen <script>")
	_, expired := seedSettlement(t, db, "expired", 300_000, pipeline.Obligations{})
	if _, err := db.ClaimStep(ctx, expired.HeadStepID, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, waiting := seedSettlement(t, db, "waiting", 200_000, pipeline.Obligations{})

	var st store.Status
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		var err error
		st, err = db.Status(ctx, store.StatusQuery{TimeZone: "Asia/Seoul", ReadyGrace: time.Millisecond})
		if err != nil {
			return false, err.Error()
		}
		return st.StuckRunning == 1 && st.StuckReady == 1, "stuck steps not seen yet"
	})
	want := map[pipeline.SettlementStatus]int64{pipeline.SettlementSettled: 1, pipeline.SettlementFailed: 1, pipeline.SettlementRunning: 2}
	for s, n := range want {
		if st.ByStatus[s] != n {
			t.Errorf("ByStatus = %v, want %v", st.ByStatus, want)
		}
	}
	if st.Open != 2 || st.OldestOpen <= 0 || st.DeadSteps != 0 || st.AlertBacklog != 1 {
		t.Errorf("gauges %+v: want 2 open, an age, no dead step, 1 undelivered alert", st.Gauges)
	}
	if len(st.SettledToday) != 1 || st.SettledToday[0] != (store.CurrencyTotal{Currency: "KRW", Count: 1, Amount: 700_000}) {
		t.Errorf("settled today %+v, want 1 KRW settlement of 700,000", st.SettledToday)
	}
	if zone, _ := time.LoadLocation("Asia/Seoul"); !st.DayStart.Equal(dayStart(st.Now, zone)) {
		t.Errorf("day start %s, want midnight in Seoul before %s", st.DayStart, st.Now)
	}

	if len(st.Failed) != 1 {
		t.Fatalf("failed %+v, want one", st.Failed)
	}
	f := st.Failed[0]
	if f.ID != failed.SettlementID || f.CustomerRef != "failed" || f.HolderName != "" || f.StepKind != "PAYOUT" ||
		f.StepStatus != "FAILED" || !strings.Contains(f.Reason, "account_frozen") || f.Amount != 500_000 || f.Age < 0 {
		t.Errorf("failed settlement %+v", f)
	}
	if f.To.Masked() != "****iled" {
		t.Errorf("failed step's account %q, want the payout account OWN-failed", f.To.Masked())
	}

	stuck := map[int64]pipeline.StepStatus{}
	for _, s := range st.Stuck {
		stuck[s.ID] = s.Status
		if s.For <= 0 || s.CustomerRef == "" {
			t.Errorf("stuck step %+v: want how long and whose", s)
		}
	}
	if stuck[expired.HeadStepID] != "RUNNING" || stuck[waiting.HeadStepID] != "READY" || len(stuck) != 2 {
		t.Errorf("stuck steps %+v, want %d RUNNING and %d READY", st.Stuck, expired.HeadStepID, waiting.HeadStepID)
	}

	named, err := db.Status(ctx, store.StatusQuery{WithNames: true})
	if err != nil {
		t.Fatal(err)
	}
	if named.Failed[0].HolderName != "Kim failed" {
		t.Errorf("with names: holder %q", named.Failed[0].HolderName)
	}
}

func dayStart(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// A step out of attempts is DEAD and counted until an operator acts.
func TestGaugesCountDeadSteps(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "dead", 400_000, pipeline.Obligations{})
	c, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Failure{Dead: true, Reason: "out of attempts"}
	f.Alert = pipeline.FailureAlert(c, f)
	if err := db.Fail(ctx, c, f); err != nil {
		t.Fatal(err)
	}
	g, err := db.Gauges(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if g.DeadSteps != 1 || g.ByStatus[pipeline.SettlementFailed] != 1 || g.Open != 0 || g.OldestOpen != 0 {
		t.Fatalf("gauges %+v: want one DEAD step of one FAILED settlement, nothing open", g)
	}
}

func TestStatusRefusesAnUnknownTimeZone(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	_, err := db.Status(context.Background(), store.StatusQuery{TimeZone: "Mars/Olympus"})
	if err == nil || !strings.Contains(err.Error(), "Mars/Olympus") {
		t.Fatalf("err = %v, want the zone named", err)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if err := db.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, "down", io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); !errors.Is(err, store.ErrSchemaNotCurrent) || !strings.Contains(err.Error(), "settle migrate up") {
		t.Fatalf("ready with an old schema: %v", err)
	}
}

// BenchmarkGaugesAtScale reads the gauges and the status page after four
// paydays of 100,000 customers: 400,000 settlements (1,000 FAILED, 2,000
// RUNNING with an expired lease), 2.4M steps. Writing the data takes a few
// minutes: go test ./store -run '^$' -bench GaugesAtScale -benchtime 10x.
//
// Measured once with psql on the 2-core development machine after twelve
// such paydays (1.2M settlements): gauges 0.3 s, most of it counting
// settlements by status; the status page 1.2 s, of which 0.7 s sum today's
// settlements by scanning the SETTLED ones. An index on settlements
// (finished_at) WHERE status = 'SETTLED' takes that sum to 0.1 s.
func BenchmarkGaugesAtScale(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.PostgresURL(b), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO customers (external_ref, holder_name, payout_account, payout_holder_name, provider)
		 SELECT 'c' || i, 'Kim', 'OWN' || i, 'Kim', 'sandbox' FROM generate_series(1, 100000) i`,
		`INSERT INTO virtual_accounts (customer_id, provider, number, currency)
		 SELECT id, 'sandbox', 'VA' || id, 'KRW' FROM customers`,
		`INSERT INTO settlements (customer_id, va_id, provider, amount, currency, repay, hold, fee, payout, status,
		                          failure_reason, created_at, finished_at)
		 SELECT c, c, 'sandbox', 1000, 'KRW', 0, 0, 0, 1000,
		        CASE WHEN m = 4 AND c <= 1000 THEN 'FAILED' WHEN m = 4 AND c <= 3000 THEN 'RUNNING' ELSE 'SETTLED' END,
		        '', now() - (4 - m) * interval '30 days',
		        CASE WHEN m = 4 AND c <= 3000 THEN NULL ELSE now() - (4 - m) * interval '30 days' END
		   FROM generate_series(1, 4) m, generate_series(1, 100000) c`,
		`INSERT INTO steps (settlement_id, seq, kind, amount, currency, provider, status, lease_until)
		 SELECT s.id, k.seq, k.kind, CASE WHEN k.kind = 'NOTIFY' THEN 0 ELSE 1000 END, 'KRW', 'sandbox',
		        CASE WHEN s.status = 'SETTLED' THEN 'DONE'
		             WHEN s.status = 'FAILED' AND k.seq = 1 THEN 'DEAD'
		             WHEN s.status = 'RUNNING' AND k.seq = 1 THEN 'RUNNING'
		             ELSE 'PENDING' END,
		        CASE WHEN s.status = 'RUNNING' AND k.seq = 1 THEN now() - interval '1 minute' END
		   FROM settlements s,
		        (VALUES (1, 'SWEEP'), (2, 'REPAY'), (3, 'HOLD'), (4, 'FEE'), (5, 'PAYOUT'), (6, 'NOTIFY')) k(seq, kind)`,
		`VACUUM ANALYZE`, // as autovacuum would have: index-only scans need the visibility map
	} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Gauges", func(b *testing.B) {
		for b.Loop() {
			g, err := db.Gauges(ctx, time.Minute)
			if err != nil || g.DeadSteps != 1000 || g.StuckRunning != 2000 {
				b.Fatalf("%+v %v", g, err)
			}
		}
	})
	b.Run("Status", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Status(ctx, store.StatusQuery{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
