package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

const token = "jobs-test-token"

var accounts = pipeline.Accounts{Collection: "T-COL", Lender: "T-LEND", Holding: "T-HOLD", Fee: "T-FEE"}

type fixture struct {
	dialect    string                      // the provider's dialect: rest or openbanking
	attemptKey func(string) (string, bool) // its journal keys read back into attempt keys
	bankURL    string
	pgURL      string // the fixture's own database
	db         *store.DB
	bank       *banksim.Client
	queue      *settletest.Queue
	exec       *pipeline.Executor
	poller     *jobs.Poller
	sweep      *jobs.Sweep
	seeder     *demo.Seeder
}

func newFixture(t *testing.T, cfg pipeline.ExecutorConfig) *fixture {
	t.Helper()
	return newFixtureOn(t, cfg, "rest")
}

// newFixtureOn is newFixture with a provider, "sandbox", that speaks
// dialect (rest or openbanking) to the sandbox bank.
func newFixtureOn(t *testing.T, cfg pipeline.ExecutorConfig, dialect string) *fixture {
	t.Helper()
	ctx := context.Background()
	pgURL := testenv.PostgresURL(t)
	db, err := store.Open(ctx, pgURL, store.Options{MaxOpenConns: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	sim := httptest.NewServer(banksim.New(banksim.Options{Token: token}))
	t.Cleanup(sim.Close)
	adapter, attemptKey := dialectAdapter(t, dialect, sim.URL)
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := &settletest.Queue{}
	exec := pipeline.NewExecutor(db, banks, q, cfg, logger)
	client := banksim.NewClient(sim.URL, token, nil)
	return &fixture{
		dialect: dialect, attemptKey: attemptKey,
		bankURL: sim.URL, pgURL: pgURL, db: db, bank: client, queue: q, exec: exec,
		poller: jobs.NewPoller(db, banks, q, jobs.PollConfig{Accounts: map[string]pipeline.Accounts{"sandbox": accounts}}, logger),
		sweep:  jobs.NewSweep(db, exec, logger),
		seeder: demo.NewSeeder(db, client, demo.Options{Provider: "sandbox", Currency: "KRW", Accounts: accounts, Customers: 1, Seed: 7}),
	}
}

// dialectAdapter is a provider named "sandbox" speaking dialect to the
// sandbox bank at url, and the dialect's mapping of journal keys.
func dialectAdapter(t *testing.T, dialect, url string) (pipeline.Bank, func(string) (string, bool)) {
	t.Helper()
	var adapter pipeline.Bank
	var attemptKey func(string) (string, bool)
	var err error
	switch dialect {
	case "rest":
		adapter, err = rest.New(rest.Config{Name: "sandbox", BaseURL: url, Token: token, Timeout: 2 * time.Second})
		attemptKey = rest.AttemptKey
	case "openbanking":
		adapter, err = openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "sandbox", BaseURL: url, Token: token, Timeout: 2 * time.Second}})
		attemptKey = openbanking.AttemptKey
	default:
		t.Fatalf("no dialect %q", dialect)
	}
	if err != nil {
		t.Fatal(err)
	}
	return adapter, attemptKey
}

// payday seeds one customer, pays them and polls: the settlement is created
// and its head step enqueued.
func (f *fixture) payday(t *testing.T, amount int64) demo.Customer {
	t.Helper()
	ctx := context.Background()
	cs, err := f.seeder.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.seeder.Pay(ctx, cs[0], amount); err != nil {
		t.Fatal(err)
	}
	res, err := f.poller.RunOnce(ctx)
	if err != nil || res.Found != 1 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	return cs[0]
}

// drain delivers every queued step until the queue is empty. A step that
// asks to be retried later is delivered again once its delay has passed,
// polled with a deadline.
func (f *fixture) drain(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		id, ok := f.queue.Pop()
		if !ok {
			return
		}
		err := f.exec.Run(context.Background(), id)
		var later *pipeline.RetryLaterError
		if errors.As(err, &later) {
			<-time.After(min(later.After, 50*time.Millisecond))
			_ = f.queue.EnqueueStep(context.Background(), pipeline.StepRef{ID: id})
			continue
		}
		if err != nil {
			t.Fatalf("run step %d: %v", id, err)
		}
	}
	t.Fatal("queue did not drain within 30s")
}

func (f *fixture) status(t *testing.T) map[string]int64 {
	t.Helper()
	c, err := f.db.StatusCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) verify(t *testing.T, wantTransfers int) {
	t.Helper()
	if n := settletest.CheckMoney(t, f.db, f.bank, "sandbox", f.attemptKey); n != wantTransfers {
		t.Fatalf("%d transfers went through, want %d", n, wantTransfers)
	}
}

// The same step delivered 50 times to 8 concurrent workers moves money once.
func TestDuplicateDeliveriesMoveMoneyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	var wg sync.WaitGroup
	deliveries := make(chan struct{}, 50)
	for range 50 {
		deliveries <- struct{}{}
	}
	close(deliveries)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range deliveries {
				if err := f.exec.Run(context.Background(), head); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	f.drain(t)
	if got := f.status(t); got["SETTLED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	f.verify(t, 4) // SWEEP, REPAY, FEE, PAYOUT for the seeded obligations
	if n := f.transferPosts(t); n != 4 {
		t.Errorf("%d transfer requests reached the bank, want one per step (4)", n)
	}
	f.noKeySentTwice(t)
}

// The bank applies the transfer and the connection dies: the outcome is
// unknown, the step stays RUNNING, and the sweep learns from the status
// call that it succeeded: no second transfer.
func TestApplyThenTimeoutIsResolvedByStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{Lease: 300 * time.Millisecond, BankTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	if err := f.bank.SetFaults(ctx, banksim.Faults{TimeoutAfterApplyRate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.exec.Run(ctx, head); err != nil {
		t.Fatal(err)
	}
	d := settlement(t, f.db)
	if s := d.Steps[0]; s.Status != "RUNNING" || s.Transfers[0].Status != "UNKNOWN" {
		t.Fatalf("after a timeout the step must wait RUNNING with an UNKNOWN attempt: %+v", s)
	}
	if err := f.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "DONE" })
	f.drain(t)
	if got := f.status(t); got["SETTLED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	f.verify(t, 4)
}

// A worker dies right after its claim, before calling the bank: the sweep
// asks the bank, learns the attempt never arrived, and the same attempt is
// sent again with the same key.
func TestCrashAfterClaimIsResolved(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{Lease: 200 * time.Millisecond})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	if _, err := f.db.ClaimStep(ctx, head, 200*time.Millisecond); err != nil { // the worker's claim; then it dies
		t.Fatal(err)
	}
	f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "READY" })
	f.drain(t)
	d := settlement(t, f.db)
	if s := d.Steps[0]; len(s.Transfers) != 1 || s.Transfers[0].Status != "SUCCEEDED" || s.Attempts != 2 {
		t.Fatalf("step %+v, want one key, claimed twice, SUCCEEDED", s)
	}
	f.verify(t, 4)
}

// "Processing" answers stay unknown until the status call says the
// transfer went through.
func TestProcessingIsResolvedByStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{Lease: 200 * time.Millisecond})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	if err := f.bank.SetFaults(ctx, banksim.Faults{ProcessingRate: 1, ProcessingDelayMS: 1}); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	if err := f.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "DONE" })
	f.drain(t)
	if got := f.status(t); got["SETTLED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	f.verify(t, 4)
}

// A frozen payout account fails the settlement for good, with an alert
// that names the cause; nothing is paid out and the money moved so far is
// in the ledger.
func TestFrozenPayoutFailsWithAlert(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	c := f.payday(t, 2_000_000)
	if _, err := f.bank.SetState(ctx, c.Payout, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	if got := f.status(t); got["FAILED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	d := settlement(t, f.db)
	payout := d.Steps[len(d.Steps)-2]
	if payout.Kind != "PAYOUT" || payout.Status != "FAILED" || payout.Transfers[0].Status != "REFUSED" {
		t.Fatalf("payout step %+v", payout)
	}
	var summary string
	if err := f.db.SQL().QueryRowContext(ctx, `SELECT summary FROM alerts WHERE settlement_id = $1`, d.ID).Scan(&summary); err != nil {
		t.Fatalf("no alert for the failed settlement: %v", err)
	}
	if want := "account_frozen"; !strings.Contains(summary, want) {
		t.Fatalf("alert %q does not name %s", summary, want)
	}
	f.verify(t, 3) // SWEEP, REPAY, FEE went through; PAYOUT did not
	if res, _ := f.poller.RunOnce(ctx); res.Polled != 0 {
		t.Fatalf("a customer with a FAILED settlement was polled again: %+v", res)
	}
}

// A rate-limited transfer is retried with the same key after a backoff.
func TestRateLimitRetriesWithTheSameKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{RetryBase: time.Millisecond})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	if err := f.bank.SetFaults(ctx, banksim.Faults{RateLimitRPS: 1}); err != nil { // one token, then 429s for a second
		t.Fatal(err)
	}
	if err := f.exec.Run(ctx, head); err != nil {
		t.Fatal(err)
	}
	next, _ := f.queue.Pop()
	var later *pipeline.RetryLaterError
	if err := f.exec.Run(ctx, next); !errors.As(err, &later) {
		t.Fatalf("rate-limited step: err = %v, want RetryLaterError", err)
	}
	s := settlement(t, f.db).Steps[1]
	if s.Status != "READY" || len(s.Transfers) != 1 || s.Transfers[0].Status != "SENDING" {
		t.Fatalf("after a 429 the step must be READY with its one attempt kept: %+v", s)
	}
	if err := f.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: next})
	f.drain(t)
	if got := f.status(t); got["SETTLED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	if s := settlement(t, f.db).Steps[1]; len(s.Transfers) != 1 || s.Attempts != 1 {
		t.Fatalf("step %s: %d attempts with %d keys, want one key and the rate-limited claim not counted", s.Kind, s.Attempts, len(s.Transfers))
	}
	f.verify(t, 4)
}

func (f *fixture) sweepUntil(t *testing.T, cond func(store.SettlementDetail) bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		if _, err := f.sweep.RunOnce(context.Background()); err != nil {
			return false, err.Error()
		}
		d := settlement(t, f.db)
		return cond(d), "steps: " + stepStates(d)
	})
}

func settlement(t *testing.T, db *store.DB) store.SettlementDetail {
	t.Helper()
	rows, err := db.ListSettlements(context.Background(), store.SettlementFilter{Limit: 1})
	if err != nil || len(rows) != 1 {
		t.Fatalf("settlements: %v %v", rows, err)
	}
	d, err := db.GetSettlement(context.Background(), rows[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func stepStates(d store.SettlementDetail) string {
	s := ""
	for _, st := range d.Steps {
		s += string(st.Kind) + "=" + string(st.Status) + " "
	}
	return s
}

// A bank answering balances with garbage creates nothing; the batch is
// counted as failed and tried again next cycle.
func TestPollIgnoresGarbageBalances(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	cs, err := f.seeder.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.seeder.Pay(ctx, cs[0], 1_000_000); err != nil {
		t.Fatal(err)
	}
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"balances":[{"account_id":"x","available":-5,"currency":"KRW"}]`))
	}))
	t.Cleanup(garbage.Close)
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: garbage.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter})
	poller := jobs.NewPoller(f.db, banks, f.queue, jobs.PollConfig{Accounts: map[string]pipeline.Accounts{"sandbox": accounts}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	res, err := poller.RunOnce(ctx)
	if err != nil || res.Errors != 1 || res.Found != 0 {
		t.Fatalf("poll against garbage: %+v %v", res, err)
	}
	if got := f.status(t); len(got) != 0 {
		t.Fatalf("settlements were created from garbage: %v", got)
	}
	if res, err := f.poller.RunOnce(ctx); err != nil || res.Found != 1 {
		t.Fatalf("the next poll against the real bank: %+v %v", res, err)
	}
}

// A worker paused between its claim and its send (GC, SIGSTOP) wakes up
// after the sweep gave its step to another worker that already moved the
// money: its late send carries the same key, so the bank does not pay twice,
// and its record is refused by the fence.
func TestPausedWorkerSendingLateDoesNotPayTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{Lease: 100 * time.Millisecond})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	zombie, err := f.db.ClaimStep(ctx, head, 100*time.Millisecond) // then the worker is paused
	if err != nil {
		t.Fatal(err)
	}
	f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "READY" })
	if err := f.exec.Run(ctx, head); err != nil { // another worker sends it
		t.Fatal(err)
	}
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: f.bankURL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	r, err := adapter.Transfer(ctx, zombie.Request()) // the paused worker wakes and sends
	if pipeline.Classify(r, err) != pipeline.ClassSuccess {
		t.Fatalf("late send: %+v %v", r, err)
	}
	if _, err := f.db.Complete(ctx, zombie, r); !errors.Is(err, pipeline.ErrLeaseLost) {
		t.Fatalf("late record: err = %v, want ErrLeaseLost", err)
	}
	f.drain(t)
	f.verify(t, 4)
}

// sandboxAccounts are the engine's accounts as configured, for replay.
var sandboxAccounts = map[string]pipeline.Accounts{"sandbox": accounts}
