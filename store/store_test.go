package store_test

import (
	"context"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

func newDB(t *testing.T) *store.DB {
	t.Helper()
	return settletest.NewDB(t, 8)
}

var accounts = pipeline.Accounts{Collection: "COL", Lender: "LEND", Holding: "HOLD", Fee: "FEE"}

// seedSettlement creates one customer with a deposit and its settlement.
func seedSettlement(t *testing.T, db *store.DB, ref string, deposit int64, ob pipeline.Obligations) (store.PollTarget, store.Created) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.CreateCustomer(ctx, store.NewCustomer{
		ExternalRef: ref, HolderName: "Kim " + ref, Payout: pipeline.Payee{Account: "OWN-" + ref, Holder: "Kim " + ref},
		Provider: "sandbox", VANumber: "VA-" + ref, Currency: "KRW", Obligations: ob,
	}); err != nil {
		t.Fatal(err)
	}
	target := findTarget(t, db, "VA-"+ref)
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: deposit, Currency: "KRW"}, target.Obligations(), pipeline.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	created, err := db.CreateSettlement(ctx, store.NewSettlement{Target: target, Plan: plan, Steps: plan.Steps(target.Number, accounts, target.Payee())})
	if err != nil {
		t.Fatal(err)
	}
	return target, created
}

func findTarget(t *testing.T, db *store.DB, va string) store.PollTarget {
	t.Helper()
	ts, err := db.PollTargets(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if x.Number == va {
			return x
		}
	}
	t.Fatalf("no poll target for %s", va)
	return store.PollTarget{}
}

func TestCreateSettlementWritesStepsAndDeposit(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	_, created := seedSettlement(t, db, "c1", 1_000_000, pipeline.Obligations{Outstanding: 300_000, FeeFixed: 1000})
	d, err := db.GetSettlement(context.Background(), created.SettlementID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range d.Steps {
		got = append(got, string(s.Kind)+":"+string(s.Status))
	}
	want := "SWEEP:READY REPAY:PENDING FEE:PENDING PAYOUT:PENDING NOTIFY:PENDING"
	if strings.Join(got, " ") != want {
		t.Fatalf("steps %v, want %s", got, want)
	}
	if d.Steps[0].ID != created.HeadStepID {
		t.Fatalf("head step %d, want %d", created.HeadStepID, d.Steps[0].ID)
	}
	if vs, err := db.Verify(context.Background()); err != nil || len(vs) != 0 {
		t.Fatalf("verify: %v %v", vs, err)
	}
}

// A second poll that read the balance before the first settlement was
// created must not settle the same money again.
func TestStaleBalanceIsNotSettledTwice(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	target, _ := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	plan, _ := pipeline.BuildPlan(pipeline.Money{Amount: 500_000, Currency: "KRW"}, pipeline.Obligations{}, pipeline.Policy{})
	_, err := db.CreateSettlement(context.Background(), store.NewSettlement{Target: target, Plan: plan, Steps: plan.Steps(target.Number, accounts, target.Payee())})
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("second settlement from the same read: err = %v, want ErrStale", err)
	}
	if ts, _ := db.PollTargets(context.Background(), 0, 10); len(ts) != 0 {
		t.Fatalf("a customer with an open settlement is still polled: %+v", ts)
	}
}

func TestLedgerIsAppendOnlyAndBalanced(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	ctx := context.Background()
	for _, q := range []string{
		`UPDATE postings SET amount = amount + 1`,
		`DELETE FROM postings`,
		`UPDATE journals SET kind = 'transfer'`,
		`DELETE FROM journals`,
		`TRUNCATE postings`,
	} {
		if _, err := db.SQL().ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", q, err)
		}
	}
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One more posting into the deposit's journal leaves it unbalanced.
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO postings (journal_id, account, amount, currency)
		SELECT id, 'x', 5, 'KRW' FROM journals LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err == nil || !strings.Contains(err.Error(), "does not balance") {
		t.Fatalf("commit of an unbalanced journal: err = %v, want refusal", err)
	}
}

func TestClaimIsExclusive(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won, lost int
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.ClaimStep(context.Background(), created.HeadStepID, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, pipeline.ErrNotClaimable):
				lost++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != 19 {
		t.Fatalf("won %d lost %d, want 1 and 19", won, lost)
	}
}

// A worker whose lease expired and was taken over records nothing.
func TestFencingStopsAZombieWorker(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	zombie, err := db.ClaimStep(ctx, created.HeadStepID, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var owner pipeline.Claim
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		owner, err = db.ReclaimExpired(ctx, created.HeadStepID, time.Minute)
		return err == nil, "reclaim: " + errString(err)
	})
	if owner.Transfer.Key != zombie.Transfer.Key || owner.Fence <= zombie.Fence {
		t.Fatalf("reclaim must keep the attempt and raise the fence: zombie %+v owner %+v", zombie, owner)
	}
	if _, err := db.Complete(ctx, zombie, pipeline.Receipt{State: pipeline.TransferSucceeded}); !errors.Is(err, pipeline.ErrLeaseLost) {
		t.Fatalf("zombie complete: err = %v, want ErrLeaseLost", err)
	}
	if err := db.Retry(ctx, zombie, pipeline.Wait{After: time.Second, Reason: "x"}); !errors.Is(err, pipeline.ErrLeaseLost) {
		t.Fatalf("zombie retry: err = %v, want ErrLeaseLost", err)
	}
	next, err := db.Complete(ctx, owner, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "tr_1"})
	if err != nil || next.ID == 0 {
		t.Fatalf("owner complete: next %+v err %v", next, err)
	}
	if vs, err := db.Verify(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("verify: %v %v", vs, err)
	}
}

// A transient retry and a proven absence both reuse the attempt and its key;
// only a refusal (then a replay) makes a new attempt with a new key.
func TestAttemptKeys(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	claim := func() pipeline.Claim {
		t.Helper()
		c, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := claim()
	if err := db.Retry(ctx, c1, pipeline.Wait{Reason: "busy"}); err != nil {
		t.Fatal(err)
	}
	c2 := claim()
	if err := db.Unknown(ctx, c2, 0, "timeout"); err != nil {
		t.Fatal(err)
	}
	if err := db.Absent(ctx, c2); err != nil {
		t.Fatal(err)
	}
	c3 := claim()
	if !c2.Transfer.Same(c1.Transfer) || !c3.Transfer.Same(c1.Transfer) || c3.Attempts != 3 {
		t.Fatalf("retries must reuse the attempt: %+v, %+v, %+v", c1.Transfer, c2.Transfer, c3.Transfer)
	}
	refused := &pipeline.RefusedError{Code: pipeline.RefusedAccountFrozen, BankCode: "account_frozen"}
	failure := pipeline.Failure{Refused: refused, Reason: refused.Error()}
	failure.Alert = pipeline.FailureAlert(c3, failure)
	if err := db.Fail(ctx, c3, failure); err != nil {
		t.Fatal(err)
	}
	// An operator's replay puts the failed step back to READY.
	if _, err := db.SQL().ExecContext(ctx, `UPDATE steps SET status = 'READY' WHERE id = $1`, created.HeadStepID); err != nil {
		t.Fatal(err)
	}
	c4 := claim()
	if c4.Transfer.No != 2 || c4.Transfer.Key != pipeline.AttemptKey(c4.StepID, 2) {
		t.Fatalf("after a refusal a new attempt with a new key is due: %+v", c4.Transfer)
	}
}

func TestNotDueStepIsNotClaimed(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	c, _ := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err := db.Retry(ctx, c, pipeline.Wait{After: time.Hour, Reason: "busy"}); err != nil {
		t.Fatal(err)
	}
	var notDue *pipeline.NotDueError
	if _, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute); !errors.As(err, &notDue) {
		t.Fatalf("err = %v, want NotDueError", err)
	}
	// The wait is measured by the database's clock, so a worker whose own
	// clock is off waits as long as the backoff says, no more, no less.
	if notDue.In <= 59*time.Minute || notDue.In > time.Hour {
		t.Errorf("not due for %s by the database's clock, want just under the hour of backoff", notDue.In)
	}
	if _, err := db.ClaimStep(ctx, 999999, time.Minute); !errors.Is(err, pipeline.ErrNotClaimable) {
		t.Fatalf("unknown step: err = %v, want ErrNotClaimable", err)
	}
}

func TestMigrateDownAndUpAgain(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if err := db.Migrate(ctx, "down", io.Discard); err != nil {
		t.Fatal(err)
	}
	if ok, _, _, _ := db.SchemaCurrent(ctx); ok {
		t.Fatal("schema reported current after down")
	}
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	if ok, have, want, err := db.SchemaCurrent(ctx); !ok || err != nil {
		t.Fatalf("schema not current after up: have %d want %d err %v", have, want, err)
	}
	if err := db.Migrate(ctx, "sideways", io.Discard); err == nil {
		t.Fatal("unknown migrate command accepted")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Verify finds a broken rule: a RUNNING settlement whose live step was
// pushed back to PENDING by hand, and a step DONE out of order.
func TestVerifyReportsViolations(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{Outstanding: 100})
	if _, err := db.SQL().ExecContext(ctx, `UPDATE steps SET status = 'PENDING' WHERE id = $1`, created.HeadStepID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `UPDATE steps SET status = 'DONE' WHERE settlement_id = $1 AND seq = 3`, created.SettlementID); err != nil {
		t.Fatal(err)
	}
	vs, err := db.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, v := range vs {
		got[v.Check] = true
		if v.SettlementID != created.SettlementID {
			t.Errorf("violation %+v names the wrong settlement", v)
		}
	}
	for _, want := range []string{"running_has_live_step", "steps_in_order", "done_step_has_transfer_and_journal"} {
		if !got[want] {
			t.Errorf("verify missed %s; got %+v", want, vs)
		}
	}
}

// sandboxAccounts are the engine's accounts as configured, for replay.
var sandboxAccounts = map[string]pipeline.Accounts{"sandbox": accounts}

// replayer is db.Replay with the configured accounts.
func replayer(db *store.DB) func(context.Context, int64, store.Audit, bool) (store.Outcome, error) {
	return func(ctx context.Context, id int64, a store.Audit, dryRun bool) (store.Outcome, error) {
		return db.Replay(ctx, id, sandboxAccounts, a, dryRun)
	}
}

// The index that keeps a customer to one open settlement and the queries
// that look for a customer's open settlement name the same statuses,
// pipeline.OpenSettlementStatuses: a migration that changes the index's
// predicate must change the list, and the other way round.
func TestOpenStatusesAreTheIndexPredicate(t *testing.T) {
	db := newDB(t)
	var def string
	if err := db.SQL().QueryRowContext(context.Background(), `
		SELECT indexdef FROM pg_indexes
		 WHERE tablename = 'settlements' AND indexname = 'settlements_one_open_per_customer'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	_, pred, ok := strings.Cut(def, " WHERE ")
	if !ok || !strings.Contains(pred, "status") {
		t.Fatalf("index settlements_one_open_per_customer: %s, want a predicate on status", def)
	}
	var got []string
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(pred, -1) {
		got = append(got, m[1])
	}
	var want []string
	for _, s := range pipeline.OpenSettlementStatuses {
		want = append(want, string(s))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("index predicate %s names %v; pipeline.OpenSettlementStatuses %v", pred, got, want)
	}
}
