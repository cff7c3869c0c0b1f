package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// cli runs settle against the env's config and fails the test unless the
// exit code is want.
func (e *env) cli(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, msg, code := runCLI(t, append(args, "--config", e.path)...)
	if code != want {
		t.Fatalf("settle %s: exit %d, want %d: %s %s", strings.Join(args, " "), code, want, msg, out)
	}
	return out + msg
}

// frozenPayoutFailed seeds one customer whose payout account the bank has
// frozen, pays them amount, starts the daemon and waits for the settlement
// to fail; it returns the customer and the settlement's ID.
func (e *env) frozenPayoutFailed(t *testing.T, amount int64) (demo.Customer, int64) {
	t.Helper()
	c := e.frozenPayoutCustomer(t, amount)
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1})
	return c, settlementID(t, e)
}

// failedAlert reads the settlement_failed alert of a settlement, and its
// failure reason.
func (e *env) failedAlert(t *testing.T, id int64) (summary, action, configKey, reason string) {
	t.Helper()
	if err := e.db.SQL().QueryRow(`
		SELECT a.summary, a.action, a.config_key, s.failure_reason FROM alerts a JOIN settlements s ON s.id = a.settlement_id
		 WHERE a.settlement_id = $1 AND a.kind = 'settlement_failed'`, id).Scan(&summary, &action, &configKey, &reason); err != nil {
		t.Fatal(err)
	}
	return summary, action, configKey, reason
}

// The operator story: a frozen payout account fails the settlement with an
// alert; the operator points the customer at a new account and replays it;
// it settles with exactly one payout, both commands are audited, and a
// second replay changes nothing.
func TestOperatorFixesAFrozenPayoutAndReplays(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	c, id := e.frozenPayoutFailed(t, 3_000_000)
	var alerts int
	if err := e.db.SQL().QueryRow(`SELECT count(*) FROM alerts WHERE settlement_id = $1 AND summary LIKE '%account_frozen%'`, id).Scan(&alerts); err != nil || alerts != 1 {
		t.Fatalf("alerts about the frozen account: %d %v", alerts, err)
	}

	testenv.Eventually(t, time.Minute, func() (bool, string) { // the delivery job told the log notifier
		var delivered bool
		err := e.db.SQL().QueryRow(`SELECT delivered_at IS NOT NULL FROM alerts WHERE settlement_id = $1`, id).Scan(&delivered)
		return err == nil && delivered, fmt.Sprintf("alert not delivered yet (%v)", err)
	})

	newAccount := "E2E-NEWOWN-0001"
	if _, err := e.bank.CreateAccount(ctx, banksim.Account{ID: newAccount, HolderName: "Customer 00001", Currency: "KRW"}); err != nil {
		t.Fatal(err)
	}
	e.cli(t, 2, "replay", strconv.FormatInt(id, 10)) // no --reason
	e.cli(t, 0, "customers", "update", c.Ref, "--payout-account", newAccount, "--reason", "customer gave a new account", "--actor", "ops-kim")
	dry := e.cli(t, 0, "replay", strconv.FormatInt(id, 10), "--dry-run", "--reason", "new payout account")
	if !strings.Contains(dry, "dry run") || !strings.Contains(dry, "new key") || !strings.Contains(dry, "****0001") {
		t.Fatalf("dry run does not say what would happen:\n%s", dry)
	}
	if st, _ := e.db.StatusCounts(ctx); st["FAILED"] != 1 {
		t.Fatalf("a dry run changed something: %v", st)
	}
	e.cli(t, 0, "replay", strconv.FormatInt(id, 10), "--reason", "new payout account", "--actor", "ops-kim")
	e.waitSettled(t, map[string]int64{"SETTLED": 1})

	settletest.CheckMoney(t, e.db, e.bank, "sandbox", rest.AttemptKey)
	d, err := e.db.GetSettlement(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	checkBalance(t, e.bank, newAccount, d.Payout)
	checkBalance(t, e.bank, c.Payout, 0)
	var payout int64
	if err := e.db.SQL().QueryRow(`SELECT id FROM steps WHERE settlement_id = $1 AND kind = 'PAYOUT'`, id).Scan(&payout); err != nil {
		t.Fatal(err)
	}
	// Both accounts end in 0001, so masked they read alike: the row keeps
	// the destination the replay sent to.
	rows, err := e.db.ListAudit(ctx, "settlement:"+strconv.FormatInt(id, 10), 1)
	if err != nil || len(rows) != 1 || feeTo(t, rows[0].After, payout) != "payout ****0001" {
		t.Fatalf("the replay's audit row does not record the payout's destination (%v): %s", err, rows[0].After)
	}
	// show: the PAYOUT ran once since the replay (TRIES 1) and lists both
	// attempts, the refused key and the new one; the engine's accounts by
	// their role and key, the customer's masked; money as the status page
	// prints it.
	show := e.cli(t, 0, "settlements", "show", strconv.FormatInt(id, 10))
	payoutLine := regexp.MustCompile(`(?m)^[0-9]+ +` + strconv.FormatInt(payout, 10) + ` +PAYOUT +[0-9,]+ KRW +collection \(providers\[0\]\.accounts\.collection\) +\*\*\*\*0001 +DONE +1 *$`)
	for _, want := range []string{"Deposit 3,000,000 KRW = repay ", "TRIES", "attempt 1", "attempt 2", "REFUSED", "SUCCEEDED",
		"lender (providers[0].accounts.lender)", pipeline.AccountNumber(c.VA).Masked()} {
		if !strings.Contains(show, want) {
			t.Errorf("settlements show does not say %q", want)
		}
	}
	// Times in time_zone (Asia/Seoul by default), with the offset.
	if !regexp.MustCompile(`(?m)^Created 20[0-9-]{8} [0-9:]{8} \+09:00, finished 20[0-9-]{8} [0-9:]{8} \+09:00 `).MatchString(show) {
		t.Errorf("settlements show: want the times in Asia/Seoul with the offset")
	}
	if !payoutLine.MatchString(show) || strings.Contains(show, "****TION") || strings.Contains(show, c.VA) || strings.Contains(show, newAccount) {
		t.Errorf("settlements show: want the PAYOUT line %s, no engine account masked, no customer account in full", payoutLine)
	}
	if t.Failed() {
		t.Fatalf("settlements show:\n%s", show)
	}
	var shown store.SettlementDetail
	if err := json.Unmarshal([]byte(e.cli(t, 0, "settlements", "show", strconv.FormatInt(id, 10), "--json")), &shown); err != nil ||
		shown.Steps[0].From != pipeline.AccountNumber(c.VA).Masked() || shown.Steps[0].To != testAccounts.Collection {
		t.Fatalf("settlements show --json: SWEEP %+v (%v); want the VA masked, the collection account as configured", shown.Steps[0], err)
	}
	again := e.cli(t, 0, "replay", strconv.FormatInt(id, 10), "--reason", "again")
	if !strings.Contains(again, "nothing to do") || !strings.Contains(again, "SETTLED") {
		t.Fatalf("second replay: %s", again)
	}
	if out := e.cli(t, 0, "settlements", "list", "--customer", c.Ref, "--provider", "sandbox", "--from", "1h"); !strings.Contains(out, c.Ref) ||
		!strings.Contains(out, " +09:00 ") {
		t.Fatalf("list by customer, provider and date:\n%s", out)
	}
	if out := e.cli(t, 0, "settlements", "list", "--customer", "nobody"); !strings.Contains(out, "(no settlements)") {
		t.Fatalf("list for an unknown customer:\n%s", out)
	}
	e.cli(t, 2, "settlements", "list", "--from", "yesterday")
	audit := e.cli(t, 0, "audit", "list")
	if strings.Count(audit, "ops-kim") != 2 || !strings.Contains(audit, " +09:00 ") || !strings.Contains(audit, "customers update") || !strings.Contains(audit, "replay") {
		t.Fatalf("audit log:\n%s", audit)
	}
}

// A settlement that failed after REPAY and HOLD is compensated: the money
// goes back to the VA, the debt is restored, the ledger stays balanced.
func TestCompensationReversesCompletedLegs(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	s, cs := e.seeded(t, 1)
	c := cs[0]
	e.cli(t, 0, "customers", "update", c.Ref, "--outstanding", "500000", "--hold", "100000", "--fee-fixed", "1000",
		"--fee-bps", "0", "--reason", "loan booked")
	if _, err := e.bank.SetState(ctx, testAccounts.Fee, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	const deposit = 2_000_000
	if err := s.Pay(ctx, c, deposit); err != nil {
		t.Fatal(err)
	}
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1})
	id := settlementID(t, e)
	if ob, _ := e.db.CustomerObligations(ctx, c.ID); ob.Outstanding != 0 {
		t.Fatalf("REPAY should have paid the debt off: %+v", ob)
	}
	checkBalance(t, e.bank, testAccounts.Lender, 500_000)
	checkBalance(t, e.bank, testAccounts.Holding, 100_000)

	// Keep the returned money from being settled again at once.
	e.cli(t, 0, "customers", "update", c.Ref, "--status", "SUSPENDED", "--reason", "compensating")
	e.cli(t, 1, "cancel", strconv.FormatInt(id, 10), "--reason", "too late") // money moved: refused
	out := e.cli(t, 0, "compensate", strconv.FormatInt(id, 10), "--reason", "fee account frozen, undo")
	if !strings.Contains(out, "REVERSE") {
		t.Fatalf("compensate output:\n%s", out)
	}
	e.waitSettled(t, map[string]int64{"COMPENSATED": 1})

	checkBalance(t, e.bank, c.VA, deposit)
	checkBalance(t, e.bank, testAccounts.Collection, 0)
	checkBalance(t, e.bank, testAccounts.Lender, 0)
	checkBalance(t, e.bank, testAccounts.Holding, 0)
	cv, err := e.db.GetCustomer(ctx, c.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if cv.Outstanding != 500_000 || cv.RepaidTotal != 0 || cv.HeldTotal != 0 {
		t.Fatalf("obligation not restored: %+v", cv)
	}
	settletest.CheckMoney(t, e.db, e.bank, "sandbox", rest.AttemptKey)
	e.cli(t, 0, "verify", "--bank-journal")
	again := e.cli(t, 0, "compensate", strconv.FormatInt(id, 10), "--reason", "again")
	if !strings.Contains(again, "nothing to do") {
		t.Fatalf("second compensate: %s", again)
	}
}

// Cancel stops a settlement whose first transfer the bank refused; the
// deposit stays in the virtual account.
func TestCancelBeforeMoneyMoved(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	s, cs := e.seeded(t, 1)
	c := cs[0]
	if _, err := e.bank.SetState(ctx, c.VA, banksim.StateFrozen, ""); err != nil { // SWEEP is refused
		t.Fatal(err)
	}
	if err := s.Pay(ctx, c, 1_000_000); err != nil {
		t.Fatal(err)
	}
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1})
	id := strconv.FormatInt(settlementID(t, e), 10)
	e.cli(t, 0, "customers", "update", c.Ref, "--status", "SUSPENDED", "--reason", "VA frozen by the bank")
	e.cli(t, 0, "cancel", id, "--reason", "VA frozen")
	e.waitSettled(t, map[string]int64{"CANCELLED": 1})
	checkBalance(t, e.bank, c.VA, 1_000_000)
	e.cli(t, 0, "verify")
	if out := e.cli(t, 0, "replay", id, "--reason", "x"); !strings.Contains(out, "nothing to do") {
		t.Fatalf("replay of a CANCELLED settlement: %s", out)
	}
}

func settlementID(t *testing.T, e *env) int64 {
	t.Helper()
	rows, err := e.db.ListSettlements(context.Background(), store.SettlementFilter{Limit: 1})
	if err != nil || len(rows) != 1 {
		t.Fatalf("settlements: %v %v", rows, err)
	}
	return rows[0].ID
}

func TestImportCustomersAllOrNothingThenPlan(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	header := "external_ref,holder_name,provider,va_number,currency,payout_account,payout_holder_name,payout_bank_code,outstanding,hold,fee_fixed,fee_bps\n"
	bad := writeConfig(t, header+
		"imp-1,Kim,sandbox,IMPVA1,KRW,IMPOWN1,Kim,,500000,0,1000,10\n"+
		"imp-2,Lee,sandbox,IMPVA2,KRW,IMPOWN2,Lee,,-1,0,0,0\n")
	out := e.cli(t, 1, "customers", "import", bad, "--reason", "onboarding")
	if !strings.Contains(out, "line 3") || !strings.Contains(out, "nothing was imported") {
		t.Fatalf("import of a bad file: %s", out)
	}
	e.cli(t, 1, "customers", "show", "imp-1")
	good := writeConfig(t, header+"imp-1,Kim,sandbox,IMPVA1,KRW,IMPOWN1,Kim,,500000,0,1000,10\n")
	e.cli(t, 0, "customers", "import", good, "--reason", "onboarding")
	if out := e.cli(t, 0, "customers", "show", "imp-1"); !strings.Contains(out, "****OWN1") || strings.Contains(out, "IMPOWN1") {
		t.Fatalf("customers show must mask the payout account:\n%s", out)
	}
	e.cli(t, 1, "customers", "import", good, "--reason", "again") // already there: refused, nothing imported
	plan := e.cli(t, 0, "plan", "--customer", "imp-1", "--amount", "3,000,000")
	for _, want := range []string{"SWEEP  3,000,000 KRW", "REPAY  500,000 KRW", "FEE    4,000 KRW", "PAYOUT 2,496,000 KRW"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan does not show %q:\n%s", want, plan)
		}
	}
	e.cli(t, 2, "plan", "--customer", "imp-1", "--amount", "-5")
	if n, _ := e.db.StatusCounts(context.Background()); len(n) != 0 {
		t.Fatalf("plan created settlements: %v", n)
	}
}

// A provider answering 500 to everything opens the breaker of its balance
// calls (the poll is the first to call it): operators get
// one alert, calls pause; when it answers again a probe closes the breaker
// and the problem is marked resolved.
func TestBreakerAlertsAndRecovers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.seeder(3)
	if _, err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.bank.SetFaults(ctx, banksim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	e.startDaemon(t)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		var n int
		err := e.db.SQL().QueryRow(`SELECT count(*) FROM alerts WHERE kind = 'provider_breaker'`).Scan(&n)
		return err == nil && n == 1, fmt.Sprintf("%d breaker alerts (%v)", n, err)
	})
	if err := e.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		var resolved bool
		err := e.db.SQL().QueryRow(`SELECT resolved_at IS NOT NULL FROM alert_problems WHERE problem_key = 'provider:sandbox:breaker:balances'`).Scan(&resolved)
		return err == nil && resolved, fmt.Sprintf("breaker problem not resolved yet (%v)", err)
	})
	var n int
	if err := e.db.SQL().QueryRow(`SELECT count(*) FROM alerts WHERE kind = 'provider_breaker'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("breaker alerts: %d %v, want exactly one", n, err)
	}
}

// The NOTIFY step POSTs a signed settlement.settled event to the lender's
// app; while the app answers 503 the step retries, and once it answers
// every settlement's event arrives with its amounts.
func TestNotifyPostsSignedEvents(t *testing.T) {
	const secret = "e2e-webhook-secret-0123456789"
	var mu sync.Mutex
	got := map[string]string{}
	var refused atomic.Int32
	verify := eventReceiver([]byte(secret), slog.New(slog.NewTextHandler(io.Discard, nil)))
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refused.Add(1) <= 3 { // the app is down for the first three calls
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		rec := httptest.NewRecorder()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		verify.ServeHTTP(rec, r)
		if rec.Code == http.StatusNoContent {
			mu.Lock()
			got[r.Header.Get(notify.HeaderEventID)] = string(body)
			mu.Unlock()
		}
		w.WriteHeader(rec.Code)
	}))
	t.Cleanup(app.Close)
	e := newEnvWith(t, fmt.Sprintf(", customer_webhook: {url: %q, secret: %q, retry_base: 100ms, retry_max: 500ms}", app.URL, secret))
	ctx := context.Background()
	s, cs := e.seeded(t, 5)
	for _, c := range cs {
		if err := s.Pay(ctx, c, 1_000_000); err != nil {
			t.Fatal(err)
		}
	}
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"SETTLED": 5})
	// NOTIFY runs after its settlement is SETTLED, on its own backoff.
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 5, fmt.Sprintf("the app got %d events", len(got))
	})
	rows, err := e.db.ListSettlements(ctx, store.SettlementFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range rows {
		body := got[fmt.Sprintf("evt_settlement_%d_settled", r.ID)]
		if !strings.Contains(body, fmt.Sprintf(`"payout": %d`, r.Payout)) && !strings.Contains(body, fmt.Sprintf(`"payout":%d`, r.Payout)) {
			t.Errorf("settlement %d: the app got %q", r.ID, body)
		}
	}
}

// The operator's HTTP surface on a running daemon: nothing but health
// without credentials, the status page with a failed settlement and its
// replay command, the dashboard read-only, metrics behind auth.
func TestOperatorHTTPSurface(t *testing.T) {
	const pass = "ops-password-0123456789"
	// A Prometheus for the dashboard's charts: it answers every range query
	// with no data and keeps what it was asked.
	var promQueries sync.Map
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		promQueries.Store(r.URL.Path+" "+r.URL.Query().Get("query"), true)
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	}))
	t.Cleanup(prom.Close)
	e := newEnvOpts(t, envOpts{http: `, user: ops, password: "` + pass + `", prometheus_url: "` + prom.URL + `"`})
	ctx := context.Background()
	s, cs := e.seeded(t, 2)
	if _, err := e.bank.SetState(ctx, cs[0].VA, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := s.Pay(ctx, c, 2_000_000); err != nil {
			t.Fatal(err)
		}
	}
	d := e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1, "SETTLED": 1})
	base := "http://" + d.httpAddr()
	get := func(method, path string, auth bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if auth {
			req.SetBasicAuth("ops", pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, path string
		auth         bool
		code         int
		want         string
	}{
		{"GET", "/healthz", false, 200, ""},
		{"GET", "/readyz", false, 200, ""},
		{"GET", "/", false, 401, ""},
		{"GET", "/monitoring/", false, 401, ""},
		{"GET", "/metrics", false, 401, ""},
		{"GET", "/", true, 200, "settle replay " + strconv.FormatInt(settlementIDWith(t, e, "FAILED"), 10)},
		{"GET", "/", true, 200, " 00:00 KST</small>"}, // settled today counts from midnight in time_zone (Asia/Seoul)
		{"GET", "/", true, 200, "Times in Asia/Seoul."},
		{"GET", "/metrics", true, 200, `settle_settlements{status="FAILED"} 1`},
		{"GET", "/monitoring/", true, 200, "<html"},
		{"DELETE", "/monitoring/api/queues/steps", true, 405, ""},
		{"POST", "/monitoring/api/queues/steps/pause", true, 405, ""},
		{"GET", "/monitoring/api/metrics?duration_sec=3600", true, 200, `"queue_size"`},
	} {
		code, body := get(c.method, c.path, c.auth)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s (auth %v): %d, want %d with %q; body %.300s", c.method, c.path, c.auth, code, c.code, c.want, body)
		}
	}
	if _, ok := promQueries.Load("/api/v1/query_range asynq_queue_size{}"); !ok {
		var asked []string
		promQueries.Range(func(k, _ any) bool { asked = append(asked, k.(string)); return true })
		t.Errorf("the dashboard's charts did not ask http.prometheus_url for the queue sizes; asked: %q", asked)
	}
}

func settlementIDWith(t *testing.T, e *env, status pipeline.SettlementStatus) int64 {
	t.Helper()
	rows, err := e.db.ListSettlements(context.Background(), store.SettlementFilter{Status: status, Limit: 1})
	if err != nil || len(rows) != 1 {
		t.Fatalf("%s settlements: %v %v", status, rows, err)
	}
	return rows[0].ID
}

// Refused commands are audited, each with why and the database user and
// host that ran it, and `settle audit list` shows them (text and JSON); a
// refused dry run writes nothing.
func TestRefusedCommandsAreAuditedAndListed(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	_, cs := e.seeded(t, 1)
	var user, client string
	if err := e.db.SQL().QueryRow(`SELECT session_user, coalesce(host(inet_client_addr()), 'local')`).Scan(&user, &client); err != nil {
		t.Fatal(err)
	}
	e.cli(t, 1, "cancel", "999999", "--dry-run", "--reason", "wrong id")
	if out := e.cli(t, 0, "audit", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("a refused dry run wrote audit rows:\n%s", out)
	}
	e.cli(t, 1, "cancel", "999999", "--reason", "wrong id", "--actor", "ops-lee")
	e.cli(t, 1, "customers", "payday", cs[0].Ref, "--day", "40", "--reason", "typo", "--actor", "ops-lee")
	e.cli(t, 1, "reconcile", "findings", "resolve", "999999", "--reason", "wrong id", "--actor", "ops-lee")

	text := e.cli(t, 0, "audit", "list")
	for _, want := range []string{"OUTCOME", "DB USER", "CLIENT", "refused: settlement 999999: not found",
		"refused: a payday is a day of month 1..31", "refused: finding 999999: not found", user, client} {
		if !strings.Contains(text, want) {
			t.Errorf("audit list does not show %q:\n%s", want, text)
		}
	}
	var rows []store.AuditRow
	if err := json.Unmarshal([]byte(e.cli(t, 0, "audit", "list", "--json")), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("audit list --json: %d rows, %v", len(rows), err)
	}
	for _, r := range rows {
		if r.Outcome != store.AuditRefused || r.Detail == "" || r.Actor != "ops-lee" || r.DBUser != user || r.Client != client {
			t.Errorf("audit row %+v, want refused by ops-lee as %s at %s", r, user, client)
		}
	}
}
