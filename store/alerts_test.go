package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// raise writes an alert to the outbox as the engine does and returns its ID.
func raise(t *testing.T, db *store.DB, key string, kind pipeline.AlertKind, settlementID int64) int64 {
	t.Helper()
	var id int64
	err := db.SQL().QueryRowContext(context.Background(), `
		INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail, action)
		VALUES ($1, $2, 'critical', NULLIF($3::bigint, 0), 'summary of ' || $1, 'detail', 'settle settlements show 1')
		RETURNING id`, key, kind, settlementID).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// sendAll is a delivery that always succeeds, recording each batch's IDs.
type sendAll struct {
	mu      sync.Mutex
	batches [][]int64
}

func (s *sendAll) fn(_ context.Context, b store.AlertBatch) store.AlertOutcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for _, a := range b.Alerts {
		ids = append(ids, a.ID)
	}
	s.batches = append(s.batches, ids)
	p := b.Problem
	p.Occurrences += len(b.Alerts)
	p.FirstAt, p.LastAt, p.PostedAt = b.Now, b.Now, b.Now
	return store.AlertOutcome{Sent: true, Problem: p}
}

func undelivered(t *testing.T, db *store.DB) int {
	t.Helper()
	b, err := db.AlertBacklog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b.Undelivered
}

// A problem's repeats go out together, a resolution alone and after them,
// and a problem told once is remembered.
func TestDeliverNextAlertBatchesAProblem(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	a1 := raise(t, db, "p:1:x", "settlement_failed", 0)
	b1 := raise(t, db, "p:2:y", "settlement_failed", 0)
	a2 := raise(t, db, "p:1:x", "settlement_failed", 0)
	r1 := raise(t, db, "p:1:x", pipeline.AlertKindResolved, 0)
	a3 := raise(t, db, "p:1:x", "settlement_failed", 0)
	var s sendAll
	for {
		found, err := db.DeliverNextAlert(ctx, nil, s.fn)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			break
		}
	}
	want := [][]int64{{a1, a2}, {b1}, {r1}, {a3}}
	if !slices.EqualFunc(s.batches, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", s.batches, want)
	}
	if n := undelivered(t, db); n != 0 {
		t.Fatalf("%d undelivered", n)
	}
	// The problem was told: its state comes with its next alert.
	raise(t, db, "p:1:x", "settlement_failed", 0)
	_, err := db.DeliverNextAlert(ctx, nil, func(_ context.Context, b store.AlertBatch) store.AlertOutcome {
		if !b.Problem.Told() || b.Problem.Occurrences != 4 {
			t.Errorf("problem %+v, want told, with the 4 alerts delivered so far", b.Problem)
		}
		return store.AlertOutcome{Sent: true, Problem: b.Problem}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A failed delivery counts an attempt, keeps the error and waits; nothing is
// dropped.
func TestFailedAlertDeliveryWaitsAndIsKept(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	raise(t, db, "p:1:x", "settlement_failed", 0)
	fail := func(context.Context, store.AlertBatch) store.AlertOutcome {
		return store.AlertOutcome{Error: "slack unavailable (HTTP 503)", RetryIn: time.Hour}
	}
	if found, err := db.DeliverNextAlert(ctx, nil, fail); !found || err != nil {
		t.Fatalf("found %v err %v", found, err)
	}
	if found, err := db.DeliverNextAlert(ctx, nil, fail); found || err != nil {
		t.Fatalf("an alert waiting for its retry was taken: found %v err %v", found, err)
	}
	b, err := db.AlertBacklog(ctx)
	if err != nil || b.Undelivered != 1 || b.MaxAttempts != 1 || b.LastError != "slack unavailable (HTTP 503)" {
		t.Fatalf("backlog %+v err %v", b, err)
	}
	if _, err := db.SQL().ExecContext(ctx, `UPDATE alerts SET next_try_at = now()`); err != nil {
		t.Fatal(err)
	}
	var s sendAll
	if found, err := db.DeliverNextAlert(ctx, nil, s.fn); !found || err != nil {
		t.Fatalf("retry: found %v err %v", found, err)
	}
	if b, _ := db.AlertBacklog(ctx); b.Undelivered != 0 {
		t.Fatalf("backlog after the retry %+v", b)
	}
}

// Deliverers running at once (two replicas) never take the same alert.
func TestConcurrentDeliverersNeverShareAnAlert(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	const n = 40
	for i := range n {
		raise(t, db, "p:"+string(rune('a'+i%26))+string(rune('a'+i/26))+":x", "settlement_failed", 0)
	}
	var s sendAll
	slow := func(ctx context.Context, b store.AlertBatch) store.AlertOutcome {
		time.Sleep(2 * time.Millisecond) // hold the locks as a Slack call would
		return s.fn(ctx, b)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				found, err := db.DeliverNextAlert(ctx, nil, slow)
				if err != nil {
					t.Error(err)
					return
				}
				if !found {
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[int64]int{}
	for _, b := range s.batches {
		for _, id := range b {
			seen[id]++
		}
	}
	if len(seen) != n {
		t.Fatalf("%d alerts delivered, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("alert %d delivered %d times", id, c)
		}
	}
}

func TestAlertStormIsDeliveredAsOne(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, c1 := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	for range 4 {
		raise(t, db, "settlement:1:account_frozen", "settlement_failed", c1.SettlementID)
	}
	for i := range 6 {
		raise(t, db, "settlement:"+string(rune('a'+i))+":out_of_attempts", "settlement_failed", c1.SettlementID)
	}
	lone := raise(t, db, "other:1", "reconcile_difference", 0)
	storms, err := db.AlertStorms(ctx, 5, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := store.StormGroup{Kind: "settlement_failed", Provider: "sandbox", Count: 10}
	if len(storms) != 1 || storms[0] != want {
		t.Fatalf("storms %+v, want %+v", storms, want)
	}
	var got store.StormBatch
	n, err := db.DeliverStorm(ctx, storms[0], time.Minute, 100, func(_ context.Context, b store.StormBatch) store.AlertOutcome {
		got = b
		return store.AlertOutcome{Sent: true, Problem: store.AlertProblem{Occurrences: len(b.Alerts), FirstAt: b.Now, LastAt: b.Now, PostedAt: b.Now}}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The three later alerts of settlement:1 wait for the first: a problem's
	// alerts go out in order.
	if n != 7 || got.Stats.Count != 10 || got.Stats.Severity != "critical" || got.Problem.Key != "storm:settlement_failed:sandbox" {
		t.Fatalf("n %d, batch %+v", n, got)
	}
	wantCauses := []store.CauseCount{{Cause: "out_of_attempts", Count: 6}, {Cause: "account_frozen", Count: 4}}
	if !slices.Equal(got.Stats.Causes, wantCauses) || !slices.Equal(got.Stats.Settlements, []int64{c1.SettlementID}) {
		t.Fatalf("stats %+v", got.Stats)
	}
	var via string
	if err := db.SQL().QueryRowContext(ctx, `SELECT delivered_via FROM alerts WHERE id = $1`, got.Alerts[0].ID).Scan(&via); err != nil || via != "storm:settlement_failed:sandbox" {
		t.Fatalf("delivered via %q (%v)", via, err)
	}
	// The storm's own group is skipped by problem-by-problem delivery.
	var s sendAll
	for {
		found, err := db.DeliverNextAlert(ctx, storms, s.fn)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			break
		}
	}
	if !slices.EqualFunc(s.batches, [][]int64{{lone}}, slices.Equal) {
		t.Fatalf("batches %v, want only the lone alert", s.batches)
	}
}

func TestResolveProblem(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if _, err := db.ResolveProblem(ctx, "nope", "x"); !errors.Is(err, store.ErrNoProblem) {
		t.Fatalf("err = %v, want ErrNoProblem", err)
	}
	_, c1 := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	raise(t, db, "settlement:1:account_frozen", "settlement_failed", c1.SettlementID)
	raise(t, db, "settlement:1:out_of_attempts", "settlement_failed", c1.SettlementID)
	var wg sync.WaitGroup
	var mu sync.Mutex
	queued := 0
	for range 5 {
		wg.Go(func() {
			ok, err := db.ResolveProblem(ctx, "settlement:1:account_frozen", "replayed")
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				queued++
			}
		})
	}
	wg.Wait()
	if queued != 1 {
		t.Fatalf("%d resolutions queued, want 1", queued)
	}
	n, err := db.ResolveSettlement(ctx, c1.SettlementID, "settled")
	if err != nil || n != 1 {
		t.Fatalf("resolve settlement: %d %v, want the one open problem", n, err)
	}
	var kind pipeline.AlertKind
	var severity pipeline.Severity
	var summary, detail string
	var sid int64
	err = db.SQL().QueryRowContext(ctx, `
		SELECT kind, severity, settlement_id, summary, detail FROM alerts
		 WHERE problem_key = 'settlement:1:out_of_attempts' ORDER BY id DESC LIMIT 1`).Scan(&kind, &severity, &sid, &summary, &detail)
	if err != nil || kind != pipeline.AlertKindResolved || severity != pipeline.SeverityInfo || sid != c1.SettlementID ||
		summary != "Resolved: summary of settlement:1:out_of_attempts" || detail != "settled" {
		t.Fatalf("resolved alert %s %s %d %q %q (%v)", kind, severity, sid, summary, detail, err)
	}
}

// An alert read for delivery carries its settlement's customer, the failed
// step and the bank's answer.
func TestAlertRowsCarryTheSettlement(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	c, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Failure{Refused: &pipeline.RefusedError{Code: pipeline.RefusedAccountFrozen, BankCode: "E_FROZEN", Message: "frozen by order"}}
	f.Reason = f.Refused.Error()
	f.Alert = pipeline.FailureAlert(c, f)
	if err := db.Fail(ctx, c, f); err != nil {
		t.Fatal(err)
	}
	var row store.AlertRow
	if _, err := db.DeliverNextAlert(ctx, nil, func(_ context.Context, b store.AlertBatch) store.AlertOutcome {
		row = b.Alerts[0]
		return store.AlertOutcome{Error: "x", RetryIn: time.Second}
	}); err != nil {
		t.Fatal(err)
	}
	if row.CustomerRef != "c1" || row.PayoutAccount != "OWN-c1" || row.Provider != "sandbox" || row.Deposit != 500_000 ||
		row.Currency != "KRW" || row.StepKind != "SWEEP" || row.StepSeq != 1 || row.StepStatus != "FAILED" ||
		row.StepFrom != "VA-c1" || row.StepAttempts != 1 || row.BankCode != "E_FROZEN" || row.FirstTry == nil ||
		row.ProblemKey != f.Alert.ProblemKey || row.SettlementID != c.SettlementID {
		t.Fatalf("alert row %+v", row)
	}
}

func TestDeferAlerts(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	raise(t, db, "p:1", "k", 0)
	if err := db.DeferAlerts(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	var s sendAll
	if found, err := db.DeliverNextAlert(ctx, nil, s.fn); found || err != nil {
		t.Fatalf("a deferred alert was taken: %v %v", found, err)
	}
	b, _ := db.AlertBacklog(ctx)
	if b.Undelivered != 1 || b.MaxAttempts != 0 {
		t.Fatalf("backlog %+v: deferring must not count an attempt", b)
	}
}
