package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// sandbox is one sandbox bank with its client.
type sandbox struct {
	url    string
	client *banksim.Client
}

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	sim := httptest.NewServer(banksim.New(banksim.Options{Token: token}))
	t.Cleanup(sim.Close)
	sb := sandbox{url: sim.URL, client: banksim.NewClient(sim.URL, token, nil)}
	for _, id := range []string{accounts.Collection, accounts.Lender, accounts.Holding, accounts.Fee} {
		sb.account(t, id)
	}
	return sb
}

func (sb sandbox) account(t *testing.T, id string) {
	t.Helper()
	if _, err := sb.client.CreateAccount(context.Background(), banksim.Account{ID: id, HolderName: "Holder " + id, Currency: "KRW"}); err != nil {
		t.Fatal(err)
	}
}

func (sb sandbox) credit(t *testing.T, id string, amount int64) {
	t.Helper()
	if _, err := sb.client.Credit(context.Background(), id, amount, "ACME PAYROLL"); err != nil {
		t.Fatal(err)
	}
}

func (sb sandbox) balanceCalls(t *testing.T) int64 {
	t.Helper()
	st, err := sb.client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Requests["GET /v2.0/account/balance/acnt_num"] + st.Requests["POST /v1/balances:batchGet"]
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	return settletest.NewDB(t, 16)
}

// addCustomers creates n customers at provider, each with a VA and a
// payout account at sb; payday > 0 sets their payday.
func addCustomers(t *testing.T, db *store.DB, sb sandbox, provider, prefix string, n, payday int) []string {
	t.Helper()
	ctx := context.Background()
	var vas []string
	for i := range n {
		ref := fmt.Sprintf("%s%03d", prefix, i)
		va, own := "VA-"+ref, "OWN-"+ref
		sb.account(t, va)
		sb.account(t, own)
		if _, err := db.CreateCustomer(ctx, store.NewCustomer{
			ExternalRef: ref, HolderName: "Holder " + own, Payout: pipeline.Payee{Account: own, Holder: "Holder " + own},
			Provider: provider, VANumber: va, Currency: "KRW", Obligations: pipeline.Obligations{FeeFixed: 100},
		}); err != nil {
			t.Fatal(err)
		}
		if payday > 0 {
			if _, err := db.SetCustomerPayday(ctx, ref, store.PaydayPatch{Payday: &payday}, testAudit); err != nil {
				t.Fatal(err)
			}
		}
		vas = append(vas, va)
	}
	return vas
}

var testAudit = store.Audit{Actor: "test", Command: "test", Reason: "test"}

// ageRows moves every VA's poll times back by d, as if d had passed.
func ageRows(t *testing.T, db *store.DB, d time.Duration) {
	t.Helper()
	if _, err := db.SQL().Exec(`UPDATE virtual_accounts SET last_polled_at = last_polled_at - $1 * interval '1 second',
		next_poll_at = next_poll_at - $1 * interval '1 second'`, d.Seconds()); err != nil {
		t.Fatal(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A budget of 12 calls a cycle at a provider that answers one account per
// call, 10 VAs near payday and 20 not: the first cycle spends 2 calls (the
// reserve) on idle VAs and 10 on the near ones; the idle backlog drains in
// the next cycles; near-payday VAs are then polled every cycle and the
// others every 6th; a deposit is found accordingly, and the customer's
// payday is learned.
func TestPollWithinBudgetNearPaydayFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	today := time.Now().UTC().Day()
	near := addCustomers(t, db, sb, "sandbox", "near-", 10, today)
	idle := addCustomers(t, db, sb, "sandbox", "idle-", 20, 0)
	adapter, err := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "sandbox", BaseURL: sb.url, Token: token}})
	if err != nil {
		t.Fatal(err)
	}
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, jobs.PollConfig{
		Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
		Schedule: pipeline.PollPolicy{Interval: time.Minute, IdleEvery: 6, PaydayWindow: 2},
		Providers: map[string]jobs.ProviderPolling{
			"sandbox": {Budget: 12, AccountsPerCall: openbanking.BatchSize},
		},
	}, quiet())
	type want struct{ polled, near, calls, left, due, found int }
	run := func(step string, w want) jobs.PollResult {
		t.Helper()
		before := sb.balanceCalls(t)
		res, err := poller.RunOnce(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		got := want{res.Polled, res.Near, res.Calls, res.BudgetLeft, res.DueLeft, res.Found}
		if got != w {
			t.Errorf("%s: polled, near, calls, budget left, due left, found = %+v, want %+v", step, got, w)
		}
		if n := sb.balanceCalls(t) - before; n != int64(res.Calls) {
			t.Errorf("%s: the bank answered %d balance calls, the poller counted %d", step, n, res.Calls)
		}
		return res
	}
	run("first cycle", want{polled: 12, near: 10, calls: 12, left: 0, due: 18})
	run("second cycle, at once", want{polled: 12, calls: 12, left: 0, due: 6})
	res := run("third cycle", want{polled: 6, calls: 6, left: 6})
	if p := res.Providers["sandbox"]; p.Budget != 12 || p.OldestUnpolled > time.Minute {
		t.Errorf("provider result %+v", p)
	}
	run("nothing due", want{left: 12})

	ageRows(t, db, time.Minute) // one interval later
	sb.credit(t, near[3], 2_000_000)
	sb.credit(t, idle[7], 1_000_000)
	run("an interval later: near payday only", want{polled: 10, near: 10, calls: 10, left: 2, found: 1})
	ageRows(t, db, 5*time.Minute) // the 6th interval since the idle VAs' poll
	run("six intervals later: the near ones and the idle ones due again", want{polled: 12, near: 9, calls: 12, left: 0, due: 17})
	run("the idle backlog", want{polled: 12, calls: 12, left: 0, due: 5, found: 1})

	p, err := db.GetCustomerPayday(ctx, "idle-007")
	if err != nil || p.LearnedPayday == nil || *p.LearnedPayday != time.Now().In(time.UTC).Day() || p.Source != "learned" {
		t.Errorf("payday of idle-007 after its deposit: %+v %v", p, err)
	}
}

// A shard's result, with its budget figures, is what the poll-shard log
// keeps.
func TestPollResultInShardLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	addCustomers(t, db, sb, "sandbox", "c-", 3, 0)
	adapter, _ := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, jobs.PollConfig{
		Accounts:  map[string]pipeline.Accounts{"sandbox": accounts},
		Providers: map[string]jobs.ProviderPolling{"sandbox": {Budget: 5, AccountsPerCall: rest.BatchSize}},
	}, quiet())
	r, err := db.ActiveVARange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	poller.RunShardOnce(ctx, jobs.PlanPollShards(time.Now().Truncate(time.Second), r, 100)[0])
	var raw []byte
	if err := db.SQL().QueryRow(`SELECT result FROM poll_shard_runs`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{"polled": 3, "calls": 1, "budget_left": 4, "found": 0, "oldest_unpolled_s": 0} {
		if got[key] != want {
			t.Errorf("job log %s = %v, want %v (%s)", key, got[key], want, raw)
		}
	}
}

// No poll is made at a provider inside its maintenance window.
func TestPollSkipsAProviderInMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "m-", 2, 0)
	sb.credit(t, vas[0], 1_000_000)
	seoul, _ := time.LoadLocation("Asia/Seoul")
	m, _ := bank.ParseMaintenance([]string{"23:30-00:30"}, seoul)
	now := time.Date(2026, 11, 24, 23, 45, 0, 0, seoul)
	adapter, _ := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	wrapped := bank.WithMaintenance(adapter, "sandbox", m, func() time.Time { return now })
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": wrapped}), &settletest.Queue{}, jobs.PollConfig{
		Accounts:  map[string]pipeline.Accounts{"sandbox": accounts},
		Providers: map[string]jobs.ProviderPolling{"sandbox": {Closed: m.Closed}},
		Now:       func() time.Time { return now },
	}, quiet())
	res, err := poller.RunOnce(ctx)
	if err != nil || res.Calls != 0 || res.Found != 0 || res.DueLeft != 2 || res.Providers["sandbox"].Paused == "" {
		t.Fatalf("in the window: %+v %v", res, err)
	}
	if n := sb.balanceCalls(t); n != 0 {
		t.Fatalf("%d balance calls reached the bank in its window", n)
	}
	now = now.Add(45 * time.Minute)
	if res, err := poller.RunOnce(ctx); err != nil || res.Found != 1 || res.Polled != 2 {
		t.Fatalf("after the window: %+v %v", res, err)
	}
}

// A step due inside its provider's maintenance window is not sent: it
// waits for the window's end without spending an attempt, then runs.
func TestStepWaitsForTheEndOfAMaintenanceWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "w-", 1, 0)
	sb.credit(t, vas[0], 1_000_000)
	seoul, _ := time.LoadLocation("Asia/Seoul")
	m, _ := bank.ParseMaintenance([]string{"23:30-00:30"}, seoul)
	now := time.Date(2026, 11, 24, 22, 0, 0, 0, seoul)
	adapter, _ := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": bank.WithMaintenance(adapter, "sandbox", m, func() time.Time { return now })})
	q := &settletest.Queue{}
	poller := jobs.NewPoller(db, banks, q, jobs.PollConfig{Accounts: map[string]pipeline.Accounts{"sandbox": accounts}}, quiet())
	if res, err := poller.RunOnce(ctx); err != nil || res.Found != 1 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	head, _ := q.Pop()
	exec := pipeline.NewExecutor(db, banks, q, pipeline.ExecutorConfig{MaxAttempts: 1}, quiet())
	now = time.Date(2026, 11, 24, 23, 50, 0, 0, seoul)
	for range 3 { // more claims than MaxAttempts: none is spent
		err := exec.Run(ctx, head)
		var later *pipeline.RetryLaterError
		if !errors.As(err, &later) || later.After < 39*time.Minute || later.After > 41*time.Minute {
			t.Fatalf("a step in the window: %v, want to wait 40m for its end", err)
		}
		if _, err := db.SQL().Exec(`UPDATE steps SET next_run_at = now() WHERE id = $1`, head); err != nil {
			t.Fatal(err)
		}
	}
	var attempts int
	var status string
	if err := db.SQL().QueryRow(`SELECT attempts, status FROM steps WHERE id = $1`, head).Scan(&attempts, &status); err != nil || attempts != 0 || status != "READY" {
		t.Fatalf("step after the window's refusals: %d attempts, %s (%v)", attempts, status, err)
	}
	if j, _ := sb.client.Journal(ctx, 0); len(j) != 0 {
		t.Fatalf("%d transfers reached the bank in its window", len(j))
	}
	now = time.Date(2026, 11, 25, 0, 30, 0, 0, seoul)
	if err := exec.Run(ctx, head); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if j, _ := sb.client.Journal(ctx, 0); len(j) != 1 {
		t.Fatalf("after the window the bank applied %d transfers, want the sweep", len(j))
	}
}

// A customer moved to another provider keeps its old VA polled; a salary
// that still lands there is settled through the old provider's adapter
// and accounts, and one in the new VA through the new provider's.
func TestDepositSettlesThroughTheProviderOfItsVA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	legacy, modern := newSandbox(t), newSandbox(t)
	vas := addCustomers(t, db, legacy, "legacy", "r-", 1, 0)
	modern.account(t, "N"+vas[0])
	modern.account(t, "OWN-r-000")
	legacyBank, _ := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "legacy", BaseURL: legacy.url, Token: token}})
	modernBank, _ := rest.New(rest.Config{Name: "modern", BaseURL: modern.url, Token: token})
	banks := bank.NewRouter(map[string]pipeline.Bank{"legacy": legacyBank, "modern": modernBank})
	out, err := db.MigrateCustomers(ctx, store.MigrateRequest{
		To: "modern", NewVA: func(c store.MigrationCandidate) (string, error) { return "N" + c.VANumber, nil }, Audit: testAudit,
	})
	if err != nil || len(out.Moved) != 1 || out.Remaining != 0 {
		t.Fatalf("migrate: %+v %v", out, err)
	}
	q := &settletest.Queue{}
	poller := jobs.NewPoller(db, banks, q, jobs.PollConfig{Accounts: map[string]pipeline.Accounts{"legacy": accounts, "modern": accounts}}, quiet())
	exec := pipeline.NewExecutor(db, banks, q, pipeline.ExecutorConfig{}, quiet())
	f := &fixture{db: db, queue: q, exec: exec}
	for i, sb := range []sandbox{legacy, modern} {
		va := []string{vas[0], "N" + vas[0]}[i]
		sb.credit(t, va, 1_000_000)
		if res, err := poller.RunOnce(ctx); err != nil || res.Found != 1 {
			t.Fatalf("poll after a deposit into %s: %+v %v", va, res, err)
		}
		f.drain(t)
	}
	rows, err := db.ListSettlements(ctx, store.SettlementFilter{Limit: 10})
	if err != nil || len(rows) != 2 {
		t.Fatalf("settlements: %+v %v", rows, err)
	}
	for _, r := range rows {
		if r.Status != "SETTLED" {
			t.Errorf("settlement %d is %s", r.ID, r.Status)
		}
	}
	if n := settletest.CheckMoney(t, db, legacy.client, "legacy", openbanking.AttemptKey); n != 3 {
		t.Errorf("the legacy bank moved %d transfers, want the sweep, fee and payout of the deposit in the old VA", n)
	}
	if n := settletest.CheckMoney(t, db, modern.client, "modern", rest.AttemptKey); n != 3 {
		t.Errorf("the modern bank moved %d transfers, want those of the deposit in the new VA", n)
	}
}

// A cycle that runs out of time stops making calls, so it ends before the
// next tick; what it did not poll stays due.
func TestPollCycleIsCutShortBeforeTheNextTick(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	addCustomers(t, db, sb, "sandbox", "cut-", 25, 0)
	adapter, _ := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "sandbox", BaseURL: sb.url, Token: token}})
	start, reads := time.Now(), 0
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, jobs.PollConfig{
		Accounts:  map[string]pipeline.Accounts{"sandbox": accounts},
		Schedule:  pipeline.PollPolicy{Interval: time.Minute, IdleEvery: 6},
		Providers: map[string]jobs.ProviderPolling{"sandbox": {AccountsPerCall: 1}},
		// The clock moves 20s at each reading: the cycle starts (0s), checks
		// for maintenance (20s), sends its first request of 10 accounts (40s)
		// and at 60s is past its deadline, 90% of the interval.
		Now: func() time.Time {
			reads++
			return start.Add(time.Duration(reads-1) * 20 * time.Second)
		},
	}, quiet())
	res, err := poller.RunOnce(ctx)
	if p := res.Providers["sandbox"]; err != nil || !p.CutShort || res.Polled != 10 || res.Calls != 10 || res.DueLeft != 15 {
		t.Fatalf("cut short: %+v %v", res, err)
	}
}

// A VA whose salary was found in the open payday window goes back on the
// idle schedule until the window closes: with 10 VAs near payday and a
// budget of 5 calls a cycle, once near-000's deposit is found and settled
// the next cycles spend their calls on the nine still waiting for their
// salary, not on it; it is still polled every IdleEvery cycles (a second
// deposit is found), and near payday again in the next window.
func TestPollSendsAPaidVAToTheIdleScheduleUntilItsWindowCloses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "near-", 10, time.Now().UTC().Day())
	adapter, err := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "sandbox", BaseURL: sb.url, Token: token}})
	if err != nil {
		t.Fatal(err)
	}
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter})
	q := &settletest.Queue{}
	f := &fixture{db: db, queue: q, exec: pipeline.NewExecutor(db, banks, q, pipeline.ExecutorConfig{}, quiet())}
	newPoller := func(budget int) *jobs.Poller {
		return jobs.NewPoller(db, banks, q, jobs.PollConfig{
			Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
			Schedule: pipeline.PollPolicy{Interval: time.Minute, IdleEvery: 6, PaydayWindow: 2},
			Providers: map[string]jobs.ProviderPolling{
				"sandbox": {Budget: budget, AccountsPerCall: openbanking.BatchSize},
			},
			Concurrency: 1, // requests in the order dispatched: the order of last polls is known
		}, quiet())
	}
	tight, unlimited := newPoller(5), newPoller(0)
	// run runs a cycle and returns the numbers of the VAs it polled (their
	// last poll moved), in VA order.
	run := func(step string, poller *jobs.Poller, wantFound int) ([]string, jobs.PollResult) {
		t.Helper()
		before := lastPolls(t, db)
		res, err := poller.RunOnce(ctx)
		if err != nil || res.Found != wantFound {
			t.Fatalf("%s: %+v %v; want %d found", step, res, err, wantFound)
		}
		var polled []string
		for va, at := range lastPolls(t, db) {
			if !at.Equal(before[va]) {
				polled = append(polled, va)
			}
		}
		slices.Sort(polled)
		return polled, res
	}
	expect := func(step string, got []string, want ...int) {
		t.Helper()
		var names []string
		for _, i := range want {
			names = append(names, vas[i])
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s: polled %v, want %v", step, got, names)
		}
	}

	sb.credit(t, vas[0], 2_000_000)
	got, _ := run("first cycle", tight, 1)
	expect("first cycle", got, 0, 1, 2, 3, 4)
	f.drain(t) // near-000's settlement ends: its hold is released
	ageRows(t, db, time.Minute)
	got, _ = run("second cycle", tight, 0)
	expect("second cycle", got, 5, 6, 7, 8, 9)
	ageRows(t, db, time.Minute)
	got, res := run("third cycle", tight, 0)
	expect("third cycle: the unpaid ones least recently polled first, not the paid one", got, 1, 2, 3, 4, 5)
	if res.Near != 5 || res.Calls != 5 {
		t.Errorf("third cycle: %d near, %d calls; want the whole budget on 5 near payday", res.Near, res.Calls)
	}
	ageRows(t, db, time.Minute)
	got, _ = run("fourth cycle", tight, 0)
	expect("fourth cycle", got, 1, 6, 7, 8, 9)

	// A second deposit (a correction, a bonus) is found on the idle
	// schedule: the reserve polls near-000 once its idle poll is due.
	sb.credit(t, vas[0], 300_000)
	ageRows(t, db, 5*time.Minute) // 8 intervals since its poll
	got, _ = run("idle poll of the paid VA", tight, 1)
	expect("idle poll of the paid VA", got, 0, 2, 3, 4, 5)
	f.drain(t)

	ageRows(t, db, time.Minute)
	if got, res = run("every due VA", unlimited, 0); res.Near != 9 || len(got) != 9 || slices.Contains(got, vas[0]) {
		t.Errorf("every due VA in this window: polled %v, %d near; want the nine unpaid, near-000 idle", got, res.Near)
	}
	// Its next payday's window: the deposits found are older than its
	// opening, so near-000 is near payday again.
	if _, err := db.SQL().Exec(`UPDATE settlements SET created_at = created_at - interval '40 days'`); err != nil {
		t.Fatal(err)
	}
	ageRows(t, db, time.Minute)
	if got, res = run("the next window", unlimited, 0); res.Near != 10 || len(got) != 10 {
		t.Errorf("the next window: polled %v, %d near; want all ten near payday", got, res.Near)
	}
}

// lastPolls returns every VA's last poll, by number.
func lastPolls(t *testing.T, db *store.DB) map[string]time.Time {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT number, coalesce(last_polled_at, 'epoch') FROM virtual_accounts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var va string
		var at time.Time
		if err := rows.Scan(&va, &at); err != nil {
			t.Fatal(err)
		}
		out[va] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// flakyBalances fails the first fail balance calls with err, then asks the
// bank it wraps.
type flakyBalances struct {
	pipeline.Bank
	mu    sync.Mutex
	fail  int
	err   error
	calls int
}

func (f *flakyBalances) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	f.mu.Lock()
	f.calls++
	failing := f.calls <= f.fail
	f.mu.Unlock()
	if failing {
		return nil, f.err
	}
	return f.Bank.Balances(ctx, accounts)
}

// A balance call that fails the way a passing fault does (a 5xx, a
// garbled answer) is asked again within the cycle, so one 5xx does not
// leave a payday's deposit for the next cycle; a bank that says it is busy
// is not asked again: the cycle pauses it.
func TestFailedBalanceCallIsAskedAgainWithinTheCycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name         string
		err          error
		calls, found int
	}{
		{"5xx", fmt.Errorf("HTTP 500: %w", pipeline.ErrBadResponse), 2, 1},
		{"busy", fmt.Errorf("A0001: %w", pipeline.ErrUnavailable), 1, 0},
	} {
		db, sb := openDB(t), newSandbox(t)
		vas := addCustomers(t, db, sb, "sandbox", "flaky-", 1, time.Now().UTC().Day())
		sb.credit(t, vas[0], 1_000_000)
		adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		flaky := &flakyBalances{Bank: adapter, fail: 1, err: c.err}
		poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": flaky}), &settletest.Queue{}, jobs.PollConfig{
			Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
			Schedule: pipeline.PollPolicy{Interval: time.Minute, IdleEvery: 6, PaydayWindow: 1},
		}, quiet())
		res, err := poller.RunOnce(ctx)
		if err != nil || res.Found != c.found || flaky.calls != c.calls || res.Calls != c.calls {
			t.Errorf("%s: %+v %v, %d calls reached the bank; want %d calls counted and made, %d found",
				c.name, res, err, flaky.calls, c.calls, c.found)
		}
	}
}
