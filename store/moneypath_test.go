package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// The claim, the record of a success and the creation of a settlement are
// each one statement with data-modifying CTEs. These tests pin what the
// statements must keep doing: under concurrency, on the compensation and
// NOTIFY paths, and when a settlement that failed ends.

// together runs fn from n goroutines released at the same moment.
func together(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// count runs a query that returns one integer.
func count(t *testing.T, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func claimStep(t *testing.T, db *store.DB, id int64, lease time.Duration) pipeline.Claim {
	t.Helper()
	c, err := db.ClaimStep(context.Background(), id, lease)
	if err != nil {
		t.Fatalf("claim step %d: %v", id, err)
	}
	return c
}

func completeStep(t *testing.T, db *store.DB, c pipeline.Claim) pipeline.StepRef {
	t.Helper()
	next, err := db.Complete(context.Background(), c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: fmt.Sprintf("tr_%d", c.StepID)})
	if err != nil {
		t.Fatalf("complete step %d: %v", c.StepID, err)
	}
	return next
}

// refuse records the bank's permanent refusal of the claim, as the executor
// does: the step FAILED, its attempt REFUSED, the settlement FAILED, an alert.
func refuse(t *testing.T, db *store.DB, c pipeline.Claim, code pipeline.RefusalCode) pipeline.Failure {
	t.Helper()
	f := pipeline.Failure{Refused: &pipeline.RefusedError{Code: code, BankCode: "E_" + string(code)}}
	f.Reason = f.Refused.Error()
	f.Alert = pipeline.FailureAlert(c, f)
	if err := db.Fail(context.Background(), c, f); err != nil {
		t.Fatalf("fail step %d: %v", c.StepID, err)
	}
	return f
}

func replay(t *testing.T, db *store.DB, settlementID int64) int64 {
	t.Helper()
	out, err := db.Replay(context.Background(), settlementID, sandboxAccounts, store.Audit{Actor: "ops", Command: "replay", Reason: "fixed"}, false)
	if err != nil {
		t.Fatalf("replay %d: %v", settlementID, err)
	}
	return out.Enqueue.ID
}

func mustVerify(t *testing.T, db *store.DB) {
	t.Helper()
	if vs, err := db.Verify(context.Background()); err != nil || len(vs) != 0 {
		t.Fatalf("verify: %+v %v", vs, err)
	}
}

// waitLeasesExpired waits until the steps' leases ended by the database's
// clock.
func waitLeasesExpired(t *testing.T, db *store.DB, ids []int64) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := count(t, db, `SELECT count(*) FROM steps WHERE id = ANY($1) AND lease_until < now()`, pq.Array(ids))
		return n == len(ids), fmt.Sprintf("%d of %d leases expired", n, len(ids))
	})
}

// After a refusal and a replay, workers claiming the step at the same time
// make exactly one new attempt, with the next key, counted once.
func TestConcurrentClaimsAfterARefusalMakeOneAttempt(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	refuse(t, db, claimStep(t, db, created.HeadStepID, time.Minute), pipeline.RefusedAccountFrozen)
	step := replay(t, db, created.SettlementID)

	var mu sync.Mutex
	var won []pipeline.Claim
	together(16, func(int) {
		c, err := db.ClaimStep(context.Background(), step, time.Minute)
		if err != nil && !errors.Is(err, pipeline.ErrNotClaimable) {
			t.Error(err)
		}
		if err == nil {
			mu.Lock()
			won = append(won, c)
			mu.Unlock()
		}
	})
	if len(won) != 1 {
		t.Fatalf("%d concurrent claims won, want 1", len(won))
	}
	c := won[0]
	if c.Transfer.No != 2 || c.Transfer.Key != pipeline.AttemptKey(step, 2) || c.Attempts != 1 {
		t.Fatalf("claim after a refusal: attempt %+v, attempts %d; want attempt 2 with key %s, counted once",
			c.Transfer, c.Attempts, pipeline.AttemptKey(step, 2))
	}
	if n := count(t, db, `SELECT count(*) FROM transfers WHERE step_id = $1`, step); n != 2 {
		t.Fatalf("%d attempts written, want the refused one and one new", n)
	}
	if n := count(t, db, `SELECT attempts FROM steps WHERE id = $1`, step); n != 1 {
		t.Fatalf("attempts %d, want 1", n)
	}
}

// Sweepers taking over the same expired step at once: one wins, the fence
// moves once, the live attempt and its key are kept and no attempt is
// counted.
func TestConcurrentReclaimsOneWins(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	zombie := claimStep(t, db, created.HeadStepID, time.Millisecond)
	waitLeasesExpired(t, db, []int64{zombie.StepID})

	var mu sync.Mutex
	var won []pipeline.Claim
	together(16, func(int) {
		c, err := db.ReclaimExpired(context.Background(), zombie.StepID, time.Minute)
		var notDue *pipeline.NotDueError // the winner's lease runs
		if err != nil && !errors.As(err, &notDue) {
			t.Error(err)
		}
		if err == nil {
			mu.Lock()
			won = append(won, c)
			mu.Unlock()
		}
	})
	if len(won) != 1 {
		t.Fatalf("%d concurrent reclaims won, want 1", len(won))
	}
	c := won[0]
	if c.Fence != zombie.Fence+1 || !c.Transfer.Same(zombie.Transfer) || c.Attempts != zombie.Attempts {
		t.Fatalf("reclaim: fence %d attempt %+v attempts %d; want fence %d, the attempt %+v, attempts %d",
			c.Fence, c.Transfer, c.Attempts, zombie.Fence+1, zombie.Transfer, zombie.Attempts)
	}
	if n := count(t, db, `SELECT count(*) FROM transfers WHERE step_id = $1`, c.StepID); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

// A worker whose lease just expired records its success while the sweep
// takes the step over: exactly one of them wins, and the step's money is
// recorded once.
func TestCompleteRacingAReclaimRecordsOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	const n = 12
	var zombies []pipeline.Claim
	var ids []int64
	for i := range n {
		_, created := seedSettlement(t, db, fmt.Sprintf("c%d", i), 500_000, pipeline.Obligations{Outstanding: 200_000})
		z := claimStep(t, db, created.HeadStepID, time.Millisecond)
		zombies, ids = append(zombies, z), append(ids, z.StepID)
	}
	waitLeasesExpired(t, db, ids)
	for _, z := range zombies {
		var completed, reclaimed error
		var owner pipeline.Claim
		together(2, func(i int) {
			if i == 0 {
				_, completed = db.Complete(ctx, z, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "tr_zombie"})
				return
			}
			owner, reclaimed = db.ReclaimExpired(ctx, z.StepID, time.Minute)
		})
		switch {
		case completed == nil && errors.Is(reclaimed, pipeline.ErrNotClaimable):
		case reclaimed == nil && errors.Is(completed, pipeline.ErrLeaseLost):
			completeStep(t, db, owner)
		default:
			t.Fatalf("step %d: complete %v, reclaim %v; want exactly one to win", z.StepID, completed, reclaimed)
		}
	}
	if got := count(t, db, `SELECT count(*) FROM journals WHERE step_id = ANY($1)`, pq.Array(ids)); got != n {
		t.Fatalf("%d journals for %d steps", got, n)
	}
	if got := count(t, db, `SELECT count(*) FROM transfers WHERE step_id = ANY($1) AND status = 'SUCCEEDED'`, pq.Array(ids)); got != n {
		t.Fatalf("%d succeeded attempts for %d steps", got, n)
	}
	mustVerify(t, db)
}

type obligation struct{ outstanding, repaid, held int64 }

func obligationOf(t *testing.T, db *store.DB, customerID int64) obligation {
	t.Helper()
	var o obligation
	if err := db.SQL().QueryRowContext(context.Background(),
		`SELECT outstanding, repaid_total, held_total FROM obligations WHERE customer_id = $1`, customerID).
		Scan(&o.outstanding, &o.repaid, &o.held); err != nil {
		t.Fatal(err)
	}
	return o
}

// A REPAY lowers the debt and a HOLD raises what is held; compensating the
// settlement reverses them in reverse order, each REVERSE undoing exactly
// its leg's effect, and the settlement ends COMPENSATED with its failure
// resolved.
func TestCompensationRestoresTheObligation(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	target, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{Outstanding: 300_000, Hold: 50_000})
	next := created.HeadStepID
	for range 3 { // SWEEP, REPAY, HOLD
		next = completeStep(t, db, claimStep(t, db, next, time.Minute)).ID
	}
	if got, want := obligationOf(t, db, target.CustomerID), (obligation{outstanding: 0, repaid: 300_000, held: 50_000}); got != want {
		t.Fatalf("after REPAY and HOLD: %+v, want %+v", got, want)
	}
	payout := claimStep(t, db, next, time.Minute)
	f := refuse(t, db, payout, pipeline.RefusedAccountFrozen)
	out, err := db.Compensate(ctx, created.SettlementID, store.Audit{Actor: "ops", Command: "compensate", Reason: "customer left"}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []obligation{
		{outstanding: 0, repaid: 300_000, held: 0}, // the HOLD reversed
		{outstanding: 300_000, repaid: 0, held: 0}, // the REPAY reversed
		{outstanding: 300_000, repaid: 0, held: 0}, // the SWEEP reversed
	}
	step := out.Enqueue.ID
	for i, w := range want {
		c := claimStep(t, db, step, time.Minute)
		if c.Kind != pipeline.KindReverse || c.Transfer.Key != pipeline.AttemptKey(c.StepID, 1) {
			t.Fatalf("reversal %d: claim %+v", i, c)
		}
		step = completeStep(t, db, c).ID
		if got := obligationOf(t, db, target.CustomerID); got != w {
			t.Fatalf("after reversal %d: %+v, want %+v", i, got, w)
		}
	}
	if step != 0 {
		t.Fatalf("a step %d follows the last reversal", step)
	}
	d, err := db.GetSettlement(ctx, created.SettlementID)
	if err != nil || d.Status != pipeline.SettlementCompensated {
		t.Fatalf("settlement %s %v, want COMPENSATED", d.Status, err)
	}
	if got := alertsOf(t, db, f.Alert.ProblemKey); len(got) != 2 || got[1] != pipeline.AlertKindResolved {
		t.Fatalf("failure problem's alerts %v, want it raised and resolved once", got)
	}
	if n := count(t, db, `SELECT count(*) FROM journals j JOIN steps s ON s.id = j.step_id
	                       WHERE s.settlement_id = $1 AND s.kind = 'REVERSE'`, created.SettlementID); n != 3 {
		t.Fatalf("%d journals for 3 reversals", n)
	}
	// Every leg and its reversal cancel out: the VA holds the deposit again.
	if n := count(t, db, `SELECT coalesce(sum(amount), 0) FROM postings WHERE account = $1`,
		pipeline.LedgerAccount(target.Provider, target.Number)); n != 500_000 {
		t.Fatalf("VA balance in the ledger %d, want the deposit back", n)
	}
	mustVerify(t, db)
}

// NOTIFY moves no money: its claim has no attempt, and its record writes
// the settlement.settled event once, no attempt and no journal; its
// settlement was SETTLED before it ran and stays so.
func TestNotifyRecordsTheEventAndNoMoney(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	next := created.HeadStepID
	for range 2 { // SWEEP, PAYOUT
		next = completeStep(t, db, claimStep(t, db, next, time.Minute)).ID
	}
	c := claimStep(t, db, next, time.Minute)
	if c.Kind != pipeline.KindNotify || c.Transfer != (pipeline.Attempt{}) {
		t.Fatalf("NOTIFY claim %+v, want no attempt", c)
	}
	if ref := completeStep(t, db, c); ref.ID != 0 {
		t.Fatalf("a step %d follows NOTIFY", ref.ID)
	}
	if _, err := db.Complete(context.Background(), c, pipeline.Receipt{State: pipeline.TransferSucceeded}); !errors.Is(err, pipeline.ErrLeaseLost) {
		t.Fatalf("NOTIFY recorded twice: err = %v, want ErrLeaseLost", err)
	}
	if n := count(t, db, `SELECT count(*) FROM customer_events WHERE settlement_id = $1 AND type = 'settlement.settled'
	                       AND payload->>'deposit' = '500000'`, created.SettlementID); n != 1 {
		t.Fatalf("%d settled events, want 1", n)
	}
	if n := count(t, db, `SELECT (SELECT count(*) FROM transfers WHERE step_id = $1) + (SELECT count(*) FROM journals WHERE step_id = $1)`, c.StepID); n != 0 {
		t.Fatalf("NOTIFY wrote %d attempts or journals", n)
	}
	if n := count(t, db, `SELECT count(*) FROM settlements WHERE id = $1 AND status = 'SETTLED' AND finished_at IS NOT NULL`, created.SettlementID); n != 1 {
		t.Fatal("the settlement is not SETTLED after NOTIFY")
	}
	if n := count(t, db, `SELECT count(*) FROM alerts`); n != 0 {
		t.Fatalf("a settlement that never failed raised %d alerts", n)
	}
	mustVerify(t, db)
}

// A settlement that failed twice for two causes and then settles resolves
// each failure problem once; one an operator already resolved gets nothing
// more.
func TestSettlingResolvesEachOpenFailureOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	frozen := refuse(t, db, claimStep(t, db, created.HeadStepID, time.Minute), pipeline.RefusedAccountFrozen)
	closed := refuse(t, db, claimStep(t, db, replay(t, db, created.SettlementID), time.Minute), pipeline.RefusedAccountClosed)
	again := refuse(t, db, claimStep(t, db, replay(t, db, created.SettlementID), time.Minute), pipeline.RefusedAccountClosed)
	if again.Alert.ProblemKey != closed.Alert.ProblemKey {
		t.Fatalf("the same cause makes another problem: %s %s", again.Alert.ProblemKey, closed.Alert.ProblemKey)
	}
	if ok, err := db.ResolveProblem(ctx, frozen.Alert.ProblemKey, "unfrozen by hand"); !ok || err != nil {
		t.Fatalf("resolve by hand: %v %v", ok, err)
	}
	completeAll(t, db, replay(t, db, created.SettlementID))

	if got := alertsOf(t, db, frozen.Alert.ProblemKey); fmt.Sprint(got) != "[settlement_failed resolved]" {
		t.Fatalf("problem resolved by hand: alerts %v, want no second resolution", got)
	}
	if got := alertsOf(t, db, closed.Alert.ProblemKey); fmt.Sprint(got) != "[settlement_failed settlement_failed resolved]" {
		t.Fatalf("problem raised twice: alerts %v, want one resolution", got)
	}
}

// CreateSettlement writes nothing and says ErrStale when the VA was settled
// since its balance was read, or when the customer has an open settlement
// through another VA, also when the writers race; the winner's head step is
// its READY first step and its journal balances.
func TestCreateSettlementStaleWritesNothing(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	first := depositCustomers(t, db, "c", 1)[0]
	second := secondVA(t, db, first, "VA-c0-old")
	fromFirst, fromSecond := depositSettlement(t, first), depositSettlement(t, second)

	// Eight writers from the same read of one VA, and four from the other VA.
	var mu sync.Mutex
	var won []store.Created
	stale := 0
	together(12, func(i int) {
		ns := fromFirst
		if i >= 8 {
			ns = fromSecond
		}
		c, err := db.CreateSettlement(ctx, ns)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			won = append(won, c)
		case errors.Is(err, store.ErrStale):
			stale++
		default:
			t.Error(err)
		}
	})
	if len(won) != 1 || stale != 11 {
		t.Fatalf("%d settlements created, %d stale; want 1 and 11", len(won), stale)
	}
	if n := count(t, db, `SELECT (SELECT count(*) FROM settlements) * 1000 + (SELECT count(*) FROM steps) * 10 + (SELECT count(*) FROM journals)`); n != 1041 {
		t.Fatalf("settlements*1000 + steps*10 + journals = %d, want one settlement, its 4 steps, 1 journal", n)
	}
	if n := count(t, db, `SELECT sum(settle_version) FROM virtual_accounts`); n != 1 {
		t.Fatalf("settle versions moved %d times, want once", n)
	}
	var head struct {
		ID     int64
		Seq    int
		Status string
	}
	if err := db.SQL().QueryRowContext(ctx, `SELECT id, seq, status FROM steps WHERE status <> 'PENDING'`).
		Scan(&head.ID, &head.Seq, &head.Status); err != nil {
		t.Fatal(err)
	}
	if head.ID != won[0].HeadStepID || head.Seq != 1 || head.Status != "READY" {
		t.Fatalf("head step %d, want the only READY step %+v", won[0].HeadStepID, head)
	}
	mustVerify(t, db)
}

// A claim whose new attempt would break the one-live-attempt rule (a
// broken invariant: a refused attempt newer than a live one) fails whole:
// the step stays READY with its fence and attempts, and no attempt is
// written.
func TestClaimHittingTheLiveAttemptIndexChangesNothing(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	c := claimStep(t, db, created.HeadStepID, time.Minute)
	if err := db.Retry(ctx, c, pipeline.Wait{Reason: "busy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `
		INSERT INTO transfers (step_id, attempt, idempotency_key, provider, amount, currency, status)
		SELECT step_id, 2, 'settle-s' || step_id || '-a2', provider, amount, currency, 'REFUSED' FROM transfers WHERE id = $1`,
		c.Transfer.ID); err != nil {
		t.Fatal(err)
	}
	_, err := db.ClaimStep(ctx, c.StepID, time.Minute)
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || pqErr.Constraint != "transfers_one_live_per_step" {
		t.Fatalf("claim: err = %v, want the unique violation of transfers_one_live_per_step", err)
	}
	if n := count(t, db, `SELECT count(*) FROM steps WHERE id = $1 AND status = 'READY' AND fence = $2 AND attempts = $3`,
		c.StepID, c.Fence, c.Attempts); n != 1 {
		t.Fatal("the failed claim changed the step")
	}
	if n := count(t, db, `SELECT count(*) FROM transfers WHERE step_id = $1`, c.StepID); n != 2 {
		t.Fatalf("%d attempts after the failed claim, want 2", n)
	}
}

// A step whose attempt already SUCCEEDED but that is not DONE (a broken
// invariant) is never claimed nor reclaimed, so its money is never sent
// again: the claim says to run settle verify and changes nothing.
func TestStepWithASucceededAttemptIsNotClaimed(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	c := claimStep(t, db, created.HeadStepID, time.Millisecond)
	if _, err := db.SQL().ExecContext(ctx, `UPDATE transfers SET status = 'SUCCEEDED' WHERE id = $1`, c.Transfer.ID); err != nil {
		t.Fatal(err)
	}
	waitLeasesExpired(t, db, []int64{c.StepID})
	unchanged := func(what, status string) {
		t.Helper()
		if n := count(t, db, `SELECT count(*) FROM steps WHERE id = $1 AND status = $2 AND fence = $3 AND attempts = $4`,
			c.StepID, status, c.Fence, c.Attempts); n != 1 {
			t.Fatalf("%s changed the step", what)
		}
		if n := count(t, db, `SELECT count(*) FROM transfers WHERE step_id = $1`, c.StepID); n != 1 {
			t.Fatalf("%s wrote an attempt: %d", what, n)
		}
	}
	_, err := db.ReclaimExpired(ctx, c.StepID, time.Minute)
	if err == nil || errors.Is(err, pipeline.ErrNotClaimable) || !strings.Contains(err.Error(), "run settle verify") {
		t.Fatalf("reclaim: err = %v, want the broken invariant named", err)
	}
	unchanged("the reclaim", "RUNNING")
	if _, err := db.SQL().ExecContext(ctx, `UPDATE steps SET status = 'READY', lease_until = NULL WHERE id = $1`, c.StepID); err != nil {
		t.Fatal(err)
	}
	_, err = db.ClaimStep(ctx, c.StepID, time.Minute)
	var notDue *pipeline.NotDueError
	if err == nil || errors.Is(err, pipeline.ErrNotClaimable) || errors.As(err, &notDue) || !strings.Contains(err.Error(), "run settle verify") {
		t.Fatalf("claim: err = %v, want the broken invariant named", err)
	}
	unchanged("the claim", "READY")
}

// A poll's batch of deposits is written in one statement: each settlement
// with its steps (the first READY) and its deposit journal, and each stale
// read (a VA settled since it was read, a customer with an open settlement
// through another VA) left out with nothing written for it; the result
// follows the batch's order.
func TestCreateSettlementsWritesABatch(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	targets := depositCustomers(t, db, "b", 5)
	other := secondVA(t, db, targets[3], "VA-b3-old")
	if _, err := db.CreateSettlement(ctx, depositSettlement(t, other)); err != nil {
		t.Fatal(err)
	}
	stale := targets[1]
	stale.SettleVersion = 7 // read before a settlement that moved it; no such version now
	batch := []store.NewSettlement{
		depositSettlement(t, targets[0]), depositSettlement(t, stale), depositSettlement(t, targets[3]), depositSettlement(t, targets[4]),
	}
	got, err := db.CreateSettlements(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].SettlementID == 0 || got[1] != (store.Created{}) || got[2] != (store.Created{}) || got[3].SettlementID == 0 {
		t.Fatalf("created %+v; want the 1st and 4th written, the stale read and the customer with an open settlement not", got)
	}
	for _, i := range []int{0, 3} {
		d, err := db.GetSettlement(ctx, got[i].SettlementID)
		if err != nil {
			t.Fatal(err)
		}
		if d.CustomerID != batch[i].Target.CustomerID || len(d.Steps) != len(batch[i].Steps) || d.Steps[0].ID != got[i].HeadStepID ||
			d.Steps[0].Status != "READY" || d.Steps[1].Status != "PENDING" {
			t.Errorf("batch entry %d: settlement of customer %d with %d steps, head %d (%s); want customer %d, %d steps, head %d READY, the rest PENDING",
				i, d.CustomerID, len(d.Steps), d.Steps[0].ID, d.Steps[0].Status, batch[i].Target.CustomerID, len(batch[i].Steps), got[i].HeadStepID)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM journals WHERE kind = 'deposit'`); n != 3 {
		t.Errorf("%d deposit journals, want 3 (the earlier settlement and two of the batch)", n)
	}
	var versions pq.Int64Array
	if err := db.SQL().QueryRowContext(ctx, `SELECT array_agg(settle_version ORDER BY id) FROM virtual_accounts`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 0, 0, 0, 1, 1}; !slices.Equal(versions, want) {
		t.Errorf("VA settle versions %v, want %v: only the written settlements move theirs", versions, want)
	}
	var held pq.Int64Array
	if err := db.SQL().QueryRowContext(ctx, `SELECT array_agg(id ORDER BY id) FROM virtual_accounts WHERE held_until > now()`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if want := []int64{targets[0].VAID, targets[4].VAID, other.VAID}; !slices.Equal(held, want) {
		t.Errorf("VAs held from polling %v, want %v: those whose settlement was written", held, want)
	}
	mustVerify(t, db)
}

// Two VAs of one customer in one batch (the customer is moving between
// providers) would be two open settlements: the statement fails as a whole,
// the batch is written one by one, and the first of the two wins; the rest
// of the batch is written all the same.
func TestCreateSettlementsOneCustomerTwiceInABatch(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	targets := depositCustomers(t, db, "d", 2)
	other := secondVA(t, db, targets[0], "VA-d0-old")
	got, err := db.CreateSettlements(ctx, []store.NewSettlement{
		depositSettlement(t, targets[0]), depositSettlement(t, other), depositSettlement(t, targets[1]),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].SettlementID == 0 || got[1] != (store.Created{}) || got[2].SettlementID == 0 {
		t.Fatalf("created %+v; want the first VA's and the other customer's settlements, not the second VA's", got)
	}
	if n := count(t, db, `SELECT count(*) FROM settlements`); n != 2 {
		t.Errorf("%d settlements, want 2", n)
	}
	if n := count(t, db, `SELECT sum(settle_version) FROM virtual_accounts`); n != 2 {
		t.Errorf("settle versions moved %d times, want twice", n)
	}
	mustVerify(t, db)
	if _, err := db.CreateSettlements(ctx, []store.NewSettlement{depositSettlement(t, targets[1]), depositSettlement(t, targets[1])}); err == nil ||
		!strings.Contains(err.Error(), "twice") {
		t.Errorf("one VA twice in a batch: err = %v, want a refusal naming it", err)
	}
	empty := depositSettlement(t, targets[1])
	empty.Steps = nil
	if _, err := db.CreateSettlements(ctx, []store.NewSettlement{empty}); err == nil || !strings.Contains(err.Error(), "no steps") {
		t.Errorf("a settlement without steps: err = %v, want a refusal", err)
	}
	if n := count(t, db, `SELECT count(*) FROM settlements`); n != 2 {
		t.Errorf("%d settlements after the refused batches, want still 2", n)
	}
}

// depositCustomers creates n customers, prefix0 to prefix(n-1), each with a
// VA VA-prefixN and a debt, and returns their poll targets.
func depositCustomers(t *testing.T, db *store.DB, prefix string, n int) []store.PollTarget {
	t.Helper()
	var out []store.PollTarget
	for i := range n {
		ref := fmt.Sprintf("%s%d", prefix, i)
		if _, err := db.CreateCustomer(context.Background(), store.NewCustomer{
			ExternalRef: ref, HolderName: "Kim", Payout: pipeline.Payee{Account: "OWN-" + ref, Holder: "Kim"},
			Provider: "sandbox", VANumber: "VA-" + ref, Currency: "KRW", Obligations: pipeline.Obligations{Outstanding: 100_000},
		}); err != nil {
			t.Fatal(err)
		}
		out = append(out, findTarget(t, db, "VA-"+ref))
	}
	return out
}

// secondVA gives target's customer another VA and returns it as a target.
func secondVA(t *testing.T, db *store.DB, target store.PollTarget, number string) store.PollTarget {
	t.Helper()
	second := target
	second.Number, second.SettleVersion = number, 0
	if err := db.SQL().QueryRowContext(context.Background(), `
		INSERT INTO virtual_accounts (customer_id, provider, number, currency) VALUES ($1, $2, $3, 'KRW') RETURNING id`,
		target.CustomerID, target.Provider, number).Scan(&second.VAID); err != nil {
		t.Fatal(err)
	}
	return second
}

// depositSettlement is the settlement of a 400,000 KRW deposit found in
// target, as the poller writes it.
func depositSettlement(t *testing.T, target store.PollTarget) store.NewSettlement {
	t.Helper()
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: 400_000, Currency: "KRW"}, target.Obligations(), pipeline.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	return store.NewSettlement{Target: target, Plan: plan, Steps: plan.Steps(target.Number, accounts, target.Payee()), Hold: time.Hour}
}
