package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

func (f *fixture) restClient(t *testing.T) *rest.Client {
	t.Helper()
	c, err := rest.New(rest.Config{Name: "sandbox", BaseURL: f.bankURL, Token: token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reconciler reconciles the fixture's sandbox provider; withStatements
// false plays a dialect that cannot list statements.
func (f *fixture) reconciler(t *testing.T, withStatements bool, pageSize int) *jobs.Reconciler {
	t.Helper()
	return f.newReconciler(t, withStatements, pageSize, nil)
}

// reconcilerIn reconciles with statements, business days in loc.
func (f *fixture) reconcilerIn(t *testing.T, loc *time.Location) *jobs.Reconciler {
	t.Helper()
	return f.newReconciler(t, true, 0, loc)
}

func (f *fixture) newReconciler(t *testing.T, withStatements bool, pageSize int, loc *time.Location) *jobs.Reconciler {
	t.Helper()
	c := f.restClient(t)
	cfg := jobs.ReconcileConfig{
		Accounts: map[string]pipeline.Accounts{"sandbox": accounts}, PageSize: pageSize,
		PageInterval: -1, ConfirmDelay: 50 * time.Millisecond, ReadRetry: 10 * time.Millisecond, Location: loc,
	}
	if withStatements {
		cfg.Statements = map[string]pipeline.Statements{"sandbox": c.Statements()}
	}
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": c})
	return jobs.NewReconciler(f.db, banks, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func ledgerTotals(t *testing.T, db *store.DB) [3]int64 {
	t.Helper()
	var n [3]int64
	err := db.SQL().QueryRow(`SELECT (SELECT count(*) FROM journals), (SELECT count(*) FROM postings),
		(SELECT coalesce(sum(abs(amount)), 0) FROM postings)`).Scan(&n[0], &n[1], &n[2])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func kinds(res jobs.ReconcileResult) map[pipeline.FindingKind]int {
	out := map[pipeline.FindingKind]int{}
	for _, p := range res.Providers {
		for _, f := range p.Findings {
			out[f.Kind]++
		}
	}
	return out
}

// After a settled payday, reconciliation finds nothing; a transfer made at
// the bank behind the engine's back is found, stored and alerted once, and
// reconciliation writes nothing to the ledger.
func TestReconcilerFindsATransferNobodyAskedFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	f.drain(t)
	r := f.reconciler(t, true, 2) // two lines a page: the statements take several pages
	res, err := r.RunOnce(ctx)
	if err != nil || res.Findings != 0 {
		t.Fatalf("clean payday: %+v %v", res, err)
	}
	p := res.Providers[0]
	if !p.Statements || p.Matched != 4 || p.Accounts != 5 || p.StatementCalls < 4 || p.Lines == 0 {
		t.Fatalf("clean payday report: %+v", p)
	}

	before := ledgerTotals(t, f.db)
	if _, err := f.bank.CreateAccount(ctx, banksim.Account{ID: "STRANGER", HolderName: "Stranger", Currency: "KRW"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.restClient(t).Transfer(ctx, pipeline.TransferRequest{Key: "manual-0001", From: accounts.Lender, To: "STRANGER",
		Amount: pipeline.Money{Amount: 1000, Currency: "KRW"}, Memo: "by hand"}); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		res, err := r.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := kinds(res)
		if len(got) != 1 || got[pipeline.FindingUnknownToEngine] != 1 || res.New != 2-run {
			t.Fatalf("run %d: %v, %d new: %+v", run, got, res.New, res.Providers)
		}
	}
	if after := ledgerTotals(t, f.db); after != before {
		t.Fatalf("reconciliation wrote to the ledger: %v → %v", before, after)
	}
	var alerts int
	if err := f.db.SQL().QueryRow(`SELECT count(*) FROM alerts WHERE kind = 'reconcile'`).Scan(&alerts); err != nil || alerts != 1 {
		t.Fatalf("%d reconcile alerts (%v), want 1", alerts, err)
	}
	var marks int
	if err := f.db.SQL().QueryRow(`SELECT count(*) FROM reconcile_cursors`).Scan(&marks); err != nil || marks == 0 {
		t.Fatalf("no statement cursors saved (%v)", err)
	}
}

// A provider that cannot list statements gets its balances compared: money
// that appears in an own account is a drift, confirmed by a second look.
func TestReconcilerWithoutStatementsComparesBalances(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	f.drain(t)
	r := f.reconciler(t, false, 0)
	if res, err := r.RunOnce(ctx); err != nil || res.Findings != 0 || res.Providers[0].Statements {
		t.Fatalf("clean: %+v %v", res, err)
	}
	if _, err := f.bank.Credit(ctx, accounts.Fee, 777, "SOMEONE"); err != nil {
		t.Fatal(err)
	}
	res, err := r.RunOnce(ctx)
	if err != nil || kinds(res)[pipeline.FindingBalanceDrift] != 1 || res.Findings != 1 {
		t.Fatalf("drift: %+v %v", res, err)
	}
	if fr := res.Providers[0].Findings[0]; fr.Amount != 777 || fr.Account != pipeline.AccountNumber(accounts.Fee) {
		t.Fatalf("drift finding %+v", fr)
	}
	// With statements the same money is a transaction nobody asked for, and
	// it explains the balance: no drift.
	res, err = f.reconciler(t, true, 0).RunOnce(ctx)
	if err != nil || kinds(res)[pipeline.FindingUnknownToEngine] != 1 || kinds(res)[pipeline.FindingBalanceDrift] != 0 {
		t.Fatalf("with statements: %+v %v", res, err)
	}
}

// A deposit that arrived and is not settled yet is pending, not drift.
func TestReconcilerTreatsUnsettledDepositsAsPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	cs, err := f.seeder.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.seeder.Pay(ctx, cs[0], 3_000_000); err != nil {
		t.Fatal(err)
	}
	res, err := f.reconciler(t, true, 0).RunOnce(ctx)
	if err != nil || res.Findings != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if p := res.Providers[0]; p.PendingCredits != 1 || p.PendingAmount != 3_000_000 {
		t.Fatalf("pending: %+v", p)
	}
}

func TestReconcilerRunsOneAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	release, err := f.db.LockReconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := f.reconciler(t, true, 0).RunOnce(ctx); !errors.Is(err, store.ErrReconcileBusy) {
		t.Fatalf("concurrent run: %v", err)
	}
	if _, err := f.reconciler(t, true, 0).Run(ctx, jobs.ReconcileOptions{Provider: "nope"}); err == nil {
		t.Fatal("unknown provider accepted")
	}
}

// stuckLister is a bank whose paging is broken: every page says more lines
// follow and hands back the cursor it was asked with.
type stuckLister struct{ pipeline.Statements }

func (l stuckLister) Transactions(ctx context.Context, account, cursor string, limit int) (pipeline.StatementPage, error) {
	p, err := l.Statements.Transactions(ctx, account, cursor, limit)
	p.More, p.Next = true, cursor
	return p, err
}

// A statement whose cursor does not advance is an error for its provider,
// not an endless loop, and nothing is recorded as a finding.
func TestReconcilerRefusesAStatementThatDoesNotAdvance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	f.payday(t, 2_000_000)
	f.drain(t)
	c := f.restClient(t)
	r := jobs.NewReconciler(f.db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": c}), jobs.ReconcileConfig{
		Accounts:   map[string]pipeline.Accounts{"sandbox": accounts},
		Statements: map[string]pipeline.Statements{"sandbox": stuckLister{c.Statements()}}, PageInterval: -1,
	}, nil)
	for range 2 {
		res, err := r.RunOnce(context.Background())
		if err == nil || !strings.Contains(err.Error(), "gives no cursor past this page") || res.Providers[0].Error == "" {
			t.Fatalf("stuck paging: %v, %+v", err, res.Providers)
		}
		if res.Findings != 0 || res.Providers[0].StatementCalls != 1 {
			t.Fatalf("stuck paging recorded %d findings after %d calls", res.Findings, res.Providers[0].StatementCalls)
		}
	}
	// Operators hear once that the provider cannot be read, and again when
	// a run reads it.
	if got := problemAlerts(t, f.db, "reconcile:provider:sandbox"); got != "reconcile" {
		t.Fatalf("alerts of the unreadable provider: %q, want one", got)
	}
	if _, err := f.reconciler(t, true, 0).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := problemAlerts(t, f.db, "reconcile:provider:sandbox"); got != "reconcile,resolved" {
		t.Fatalf("alerts of the provider read again: %q, want the first and its resolution", got)
	}
}

// problemAlerts lists the kinds of a problem's alerts, oldest first.
func problemAlerts(t *testing.T, db *store.DB, key string) string {
	t.Helper()
	var kinds string
	if err := db.SQL().QueryRow(`SELECT coalesce(string_agg(kind, ',' ORDER BY id), '') FROM alerts WHERE problem_key = $1`, key).
		Scan(&kinds); err != nil {
		t.Fatal(err)
	}
	return kinds
}

// A daily run reaches back to the start of the day on which the last daily
// run that completed without an error began: the days in between, which no
// daily run completed, are reconciled too.
func TestDailyRunReachesBackToTheLastCompleteDailyRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	f.drain(t)
	r := f.reconcilerIn(t, time.UTC)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	yesterday := today.AddDate(0, 0, -1)
	for _, run := range []struct {
		from, started time.Time
		daily         bool
		err           string
	}{
		{from: today.AddDate(0, 0, -5), started: today.AddDate(0, 0, -4).Add(30 * time.Minute), daily: true}, // complete
		{from: today.AddDate(0, 0, -3), started: today.AddDate(0, 0, -2).Add(30 * time.Minute), daily: true, err: "bank down"},
		{from: today, started: today}, // an operator's run, not the daily job's
	} {
		if _, err := f.db.SQL().Exec(`INSERT INTO reconcile_runs (window_from, daily, started_at, finished_at, error)
			VALUES ($1, $2, $3, $3, $4)`, run.from, run.daily, run.started, run.err); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []time.Time{today.AddDate(0, 0, -4), yesterday} {
		res, err := r.RunDaily(ctx, yesterday)
		if err != nil || !res.From.Equal(want) || res.Findings != 0 {
			t.Fatalf("daily run %d: from %s, %d findings (%v); want from %s, none", i+1, res.From, res.Findings, err, want)
		}
	}
}

// The scheduled job queues one reconcile task per day on the reconcile
// queue, with only the day as payload; the worker's handler runs that
// day's reconciliation.
func TestDailyReconcileIsQueuedOncePerDay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	redis := testenv.StartRedis(t)
	opt, err := jobs.ParseRedisURL(redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := jobs.NewQueue(opt, time.Minute)
	t.Cleanup(func() { _ = q.Close() })
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 15, 30, 0, 0, time.UTC) // 00:30 on the 26th in Seoul
	for i, want := range []bool{true, false} {
		got, err := q.QueueDailyReconcile(ctx, now, seoul)
		if err != nil || got != (jobs.ReconcileQueued{Day: "2026-11-25", Queued: want}) {
			t.Fatalf("tick %d: %+v %v, want day 2026-11-25 queued %v", i+1, got, err, want)
		}
	}
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = inspector.Close() })
	tasks, err := inspector.ListPendingTasks(jobs.QueueReconcile)
	if err != nil || len(tasks) != 1 || tasks[0].Type != jobs.TypeReconcile || string(tasks[0].Payload) != "2026-11-25" ||
		tasks[0].ID != jobs.ReconcileTaskID("2026-11-25") {
		t.Fatalf("reconcile queue: %+v %v", tasks, err)
	}
	if steps, _ := inspector.ListPendingTasks(jobs.QueueSteps); len(steps) != 0 {
		t.Fatalf("%d tasks on the steps queue", len(steps))
	}

	f.payday(t, 2_000_000)
	f.drain(t)
	h := jobs.ReconcileHandler(f.reconcilerIn(t, seoul))
	if err := h.ProcessTask(ctx, asynq.NewTask(tasks[0].Type, tasks[0].Payload)); err != nil {
		t.Fatal(err)
	}
	var from time.Time
	var findings int
	if err := f.db.SQL().QueryRow(`SELECT window_from, (result->>'findings')::int FROM reconcile_runs WHERE finished_at IS NOT NULL`).
		Scan(&from, &findings); err != nil || !from.Equal(time.Date(2026, 11, 25, 0, 0, 0, 0, seoul)) || findings != 0 {
		t.Fatalf("the task's run: from %s, %d findings (%v); want the 25th in Seoul, none", from, findings, err)
	}
	if err := h.ProcessTask(ctx, asynq.NewTask(jobs.TypeReconcile, []byte("yesterday"))); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("a payload that is not a day: %v, want it dropped", err)
	}
}

// movingLister plays money that moves while reconciliation reads: each
// time the collection account's statement is asked for, one more of the
// engine's claimed transfers reaches the bank first, after the balances were
// read.
type movingLister struct {
	pipeline.Statements
	bank    *rest.Client
	pending []pipeline.TransferRequest
}

func (l *movingLister) Transactions(ctx context.Context, account, cursor string, limit int) (pipeline.StatementPage, error) {
	if account == accounts.Collection && len(l.pending) > 0 {
		if _, err := l.bank.Transfer(ctx, l.pending[0]); err != nil {
			return pipeline.StatementPage{}, err
		}
		l.pending = l.pending[1:]
	}
	return l.Statements.Transactions(ctx, account, cursor, limit)
}

// Two sweeps of the same amount reach the bank between the balance read and
// the statement read of each look. The collection account's balance then
// lags its statement by the same amount in both looks, which looked like a
// confirmed drift; the balance read again after the statements shows the
// account moving, so nothing is reported.
func TestReconcilerIgnoresMoneyMovingWhileItReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	s := demo.NewSeeder(f.db, f.bank, demo.Options{Provider: "sandbox", Currency: "KRW", Accounts: accounts, Customers: 2, Seed: 7})
	cs, err := s.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := s.Pay(ctx, c, 1_000_000); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := f.poller.RunOnce(ctx); err != nil || res.Found != 2 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	c := f.restClient(t)
	moving := &movingLister{Statements: c.Statements(), bank: c}
	for {
		id, ok := f.queue.Pop()
		if !ok {
			break
		}
		claim, err := f.db.ClaimStep(ctx, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		moving.pending = append(moving.pending, claim.Request())
	}
	r := jobs.NewReconciler(f.db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": c}), jobs.ReconcileConfig{
		Accounts:   map[string]pipeline.Accounts{"sandbox": accounts},
		Statements: map[string]pipeline.Statements{"sandbox": moving}, PageInterval: -1, ConfirmDelay: time.Millisecond,
	}, nil)
	res, err := r.RunOnce(ctx)
	if err != nil || len(moving.pending) != 0 {
		t.Fatalf("%v; %d transfers not sent", err, len(moving.pending))
	}
	if p := res.Providers[0]; res.Findings != 0 || p.InFlight != 2 || p.Moving == 0 {
		t.Fatalf("%d findings, %d in flight, %d moving: %+v; want none, both sweeps, the collection account", res.Findings, p.InFlight, p.Moving, p.Findings)
	}
}

// dollarLender is a bank that reports the lender account's balance in USD.
type dollarLender struct{ pipeline.Bank }

func (b dollarLender) Balances(ctx context.Context, accs []string) ([]pipeline.Balance, error) {
	out, err := b.Bank.Balances(ctx, accs)
	for i := range out {
		if out[i].Account == accounts.Lender {
			out[i].Available.Currency = "USD"
		}
	}
	return out, err
}

// A balance in another currency than the ledger's cannot be compared: the
// provider's reconciliation fails, naming the account, masked.
func TestReconcilerRefusesABalanceInAnotherCurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	f.payday(t, 2_000_000)
	f.drain(t)
	c := f.restClient(t)
	r := jobs.NewReconciler(f.db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": dollarLender{c}}), jobs.ReconcileConfig{
		Accounts:   map[string]pipeline.Accounts{"sandbox": accounts},
		Statements: map[string]pipeline.Statements{"sandbox": c.Statements()}, PageInterval: -1,
	}, nil)
	_, err := r.RunOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "****LEND in USD, the ledger in KRW") {
		t.Fatalf("lender in USD: %v", err)
	}
}

// Reads change nothing at the bank: a bank that fails a third of its calls
// (HTTP 500) is asked again, and the run completes with no finding.
func TestReconcilerReadsThroughPassingFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	ctx := context.Background()
	f.payday(t, 2_000_000)
	f.drain(t)
	r := f.reconciler(t, true, 2)
	clean, err := r.RunOnce(ctx)
	if err != nil || clean.Findings != 0 {
		t.Fatalf("without faults: %v, %d findings", err, clean.Findings)
	}
	if err := f.bank.SetFaults(ctx, banksim.Faults{ErrorRate: 0.33, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	res, err := r.RunOnce(ctx)
	if err != nil || res.Findings != 0 {
		t.Fatalf("with faults: %v, %d findings: %+v", err, res.Findings, res.Providers)
	}
	c, p := clean.Providers[0], res.Providers[0]
	if p.Matched != 4 || p.BalanceCalls+p.StatementCalls <= c.BalanceCalls+c.StatementCalls {
		t.Fatalf("%+v: want every transfer matched after failed calls were asked again (%d calls without faults)", p,
			c.BalanceCalls+c.StatementCalls)
	}
}
