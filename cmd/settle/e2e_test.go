package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

const bankToken = "e2e-bank-token"

var testAccounts = pipeline.Accounts{Collection: "E2E-COLLECTION", Lender: "E2E-LENDER", Holding: "E2E-HOLDING", Fee: "E2E-FEE"}

// env is one isolated installation: its own database, Redis and sandbox bank.
type env struct {
	path  string
	cfg   *config.Config
	db    *store.DB
	bank  *banksim.Client
	redis *testenv.Redis
	log   io.Writer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOpts(t, envOpts{})
}

// newEnvWith is newEnv with more notify configuration.
func newEnvWith(t *testing.T, notify string) *env {
	t.Helper()
	return newEnvOpts(t, envOpts{notify: notify})
}

// envOpts vary an installation: the bank's token, a password in the
// database URL (the test server trusts local connections, so any password
// works), more notify keys, more top-level keys, where the daemon logs, when it reconciles,
// and the dialect the provider speaks.
type envOpts struct {
	bankToken  string
	dbPassword string
	notify     string
	http       string
	more       string // YAML appended to the file
	log        io.Writer
	reconcile  string // reconcile.schedule; default never (February 30th), so no test meets a daily run by chance
	dialect    string // the provider's dialect; default rest
}

func newEnvOpts(t *testing.T, o envOpts) *env {
	t.Helper()
	bankToken := cmpOr(o.bankToken, bankToken)
	pg := testenv.PostgresURL(t)
	if o.dbPassword != "" {
		u, err := url.Parse(pg)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), o.dbPassword)
		pg = u.String()
	}
	redis := testenv.StartRedis(t)
	sim := httptest.NewServer(banksim.New(banksim.Options{Token: bankToken}))
	t.Cleanup(sim.Close)
	path := filepath.Join(t.TempDir(), "settle.yaml")
	yaml := fmt.Sprintf(`
database: {url: %q}
redis: {url: %q}
http: {addr: "127.0.0.1:0"%s}
log: {level: warn, format: text}
poll: {schedule: "@every 1s"}
relay: {schedule: "@every 1s"}
sweep: {schedule: "@every 1s"}
reconcile: {schedule: %q}
worker: {concurrency: 16, lease: 6s, bank_timeout: 2s, shutdown_timeout: 4s, retry_base: 100ms, retry_max: 1s}
providers:
  - name: sandbox
    dialect: %s
    base_url: %q
    token: %q
    breaker_cooldown: 1s
    accounts: {collection: %s, lender: %s, holding: %s, fee: %s}
notify: {delivery_schedule: "@every 1s"%s}
%s`, pg, redis.URL(), o.http, cmpOr(o.reconcile, "0 0 0 30 2 *"), cmpOr(o.dialect, "rest"), sim.URL, bankToken, testAccounts.Collection, testAccounts.Lender, testAccounts.Holding, testAccounts.Fee, o.notify, o.more)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	ctx := context.Background()
	db, err := openDB(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	bank := banksim.NewClient(sim.URL, bankToken, nil)
	for _, id := range []string{testAccounts.Collection, testAccounts.Lender, testAccounts.Holding, testAccounts.Fee} {
		openAccount(t, bank, id) // the engine's accounts exist, as settle serve checks at start
	}
	return &env{path: path, cfg: cfg, db: db, bank: bank, redis: redis, log: o.log}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (e *env) startDaemon(t *testing.T) *daemon {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch {
	case e.log != nil:
		logger = slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case testing.Verbose():
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	d, err := newDaemon(context.Background(), e.cfg, logger, roleAll, nil)
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(context.Background()) })
	return d
}

func (e *env) seeder(n int) *demo.Seeder {
	return demo.NewSeeder(e.db, e.bank, demo.Options{
		Provider: "sandbox", Currency: "KRW", Accounts: testAccounts, Customers: n, Prefix: "e2e-", Seed: 42,
	})
}

// seeded seeds n customers (accounts at the sandbox bank, rows in the
// database) and returns the seeder, which pays them, and the customers.
func (e *env) seeded(t *testing.T, n int) (*demo.Seeder, []demo.Customer) {
	t.Helper()
	s := e.seeder(n)
	cs, err := s.Seed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, cs
}

// paidCustomer seeds one customer and pays them amount at the bank.
func (e *env) paidCustomer(t *testing.T, amount int64) demo.Customer {
	t.Helper()
	return e.paidCustomerWith(t, amount, "")
}

// frozenPayoutCustomer is paidCustomer whose payout account the bank froze
// before the salary came: the settlement fails at its PAYOUT.
func (e *env) frozenPayoutCustomer(t *testing.T, amount int64) demo.Customer {
	t.Helper()
	return e.paidCustomerWith(t, amount, banksim.StateFrozen)
}

// paidCustomerWith is paidCustomer with the payout account in state at the
// bank ("" leaves it active).
func (e *env) paidCustomerWith(t *testing.T, amount int64, state banksim.AccountState) demo.Customer {
	t.Helper()
	ctx := context.Background()
	s, cs := e.seeded(t, 1)
	if state != "" {
		if _, err := e.bank.SetState(ctx, cs[0].Payout, state, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Pay(ctx, cs[0], amount); err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

func (e *env) waitSettled(t *testing.T, want map[string]int64) {
	t.Helper()
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		got, err := e.db.StatusCounts(context.Background())
		if err != nil {
			return false, err.Error()
		}
		for s, n := range want {
			if got[s] != n {
				return false, fmt.Sprintf("settlements by status: %v, want %v", got, want)
			}
		}
		return true, ""
	})
}

// TestPaydaySettlesEndToEnd: 200 customers with varied obligations get
// deposits of varied sizes at the sandbox bank; the poller finds them, the
// workers run every step over real HTTP, Redis and PostgreSQL.
func TestPaydaySettlesEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 200
	s := e.seeder(n)
	customers, err := s.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deposits := map[string]int64{}
	for i, c := range customers {
		amount := s.Salary()
		if i%10 == 0 {
			amount = 30_000 // smaller than most debts: partial repayment, nothing paid out
		}
		deposits[c.Ref] = amount
		if err := s.Pay(ctx, c, amount); err != nil {
			t.Fatal(err)
		}
	}
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"SETTLED": n})

	rows, err := e.db.ListSettlements(ctx, store.SettlementFilter{Limit: n + 1})
	if err != nil {
		t.Fatal(err)
	}
	var wantTransfers int
	var sums struct{ repay, hold, fee int64 }
	byRef := map[string]demo.Customer{}
	for _, c := range customers {
		byRef[c.Ref] = c
	}
	for _, r := range rows {
		c := byRef[r.CustomerRef]
		plan, err := pipeline.BuildPlan(pipeline.Money{Amount: deposits[r.CustomerRef], Currency: "KRW"}, c.Obligations, pipeline.Policy{MinDeposit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if r.Amount != plan.Deposit.Amount || r.Repay != plan.Repay || r.Hold != plan.Hold || r.Fee != plan.Fee || r.Payout != plan.Payout {
			t.Errorf("settlement %d of %s = %+v, want plan %+v", r.ID, r.CustomerRef, r, plan)
		}
		if r.Payout != r.Amount-r.Repay-r.Hold-r.Fee {
			t.Errorf("settlement %d: payout %d != deposit - repay - hold - fee", r.ID, r.Payout)
		}
		wantTransfers += len(plan.Legs) - 1 // every leg but NOTIFY is one transfer
		sums.repay += r.Repay
		sums.hold += r.Hold
		sums.fee += r.Fee
		checkBalance(t, e.bank, c.VA, 0)
		checkBalance(t, e.bank, c.Payout, r.Payout)
	}
	if len(rows) != n {
		t.Fatalf("%d settlements, want %d", len(rows), n)
	}
	checkBalance(t, e.bank, testAccounts.Collection, 0)
	checkBalance(t, e.bank, testAccounts.Lender, sums.repay)
	checkBalance(t, e.bank, testAccounts.Holding, sums.hold)
	checkBalance(t, e.bank, testAccounts.Fee, sums.fee)
	if n := settletest.CheckMoney(t, e.db, e.bank, "sandbox", rest.AttemptKey); n != wantTransfers {
		t.Fatalf("%d transfers went through, the plans need %d", n, wantTransfers)
	}
	clearSettleEnv(t) // the CLI reads the test's config file, not the suite's server
	out, msg, code := runCLI(t, "verify", "--bank-journal", "--config", e.path)
	if code != 0 || !strings.Contains(out, "all invariants hold") {
		t.Fatalf("settle verify --bank-journal: exit %d %q %s", code, msg, out)
	}

	out, _, code = runCLI(t, "settlements", "list", "--status", "settled", "--limit", "1000", "--json", "--config", e.path)
	var listed []store.SettlementRow
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || len(listed) != n {
		t.Fatalf("settlements list --json: exit %d, %d rows (%v)", code, len(listed), err)
	}
	out, _, code = runCLI(t, "settlements", "show", strconv.FormatInt(listed[0].ID, 10), "--config", e.path)
	va := byRef[listed[0].CustomerRef].VA
	if code != 0 || !strings.Contains(out, "SWEEP") || !strings.Contains(out, "SETTLED") ||
		strings.Contains(out, va) || !strings.Contains(out, pipeline.AccountNumber(va).Masked()) {
		t.Fatalf("settlements show: exit %d, want the timeline with %s masked:\n%s", code, va, out)
	}

	// A transfer the engine never recorded shows up in verify.
	stray, err := rest.New(rest.Config{Name: "sandbox", BaseURL: e.cfg.Providers[0].BaseURL, Token: bankToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stray.Transfer(ctx, pipeline.TransferRequest{Key: pipeline.AttemptKey(999999, 1),
		From: testAccounts.Fee, To: testAccounts.Lender, Amount: pipeline.Money{Amount: 1, Currency: "KRW"}}); err != nil {
		t.Fatal(err)
	}
	out, _, code = runCLI(t, "verify", "--bank-journal", "--config", e.path)
	if code != 3 || !strings.Contains(out, "bank_journal_unknown_to_engine") {
		t.Fatalf("verify after a stray transfer: exit %d, %s", code, out)
	}
}

func checkBalance(t *testing.T, bank *banksim.Client, id string, want int64) {
	t.Helper()
	a, err := bank.Account(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance != want {
		t.Errorf("bank balance of %s = %d, want %d", id, a.Balance, want)
	}
}
