package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/notify/notifytest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// reconcileJSON runs `settle reconcile --json` with args and decodes its
// result (log lines, which go to stderr, come first in the test's combined
// output).
func (e *env) reconcileJSON(t *testing.T, want int, args ...string) jobs.ReconcileResult {
	t.Helper()
	out := e.cli(t, want, append([]string{"reconcile", "--json"}, args...)...)
	start := strings.Index(out, "{\n")
	end := strings.LastIndex(out, "}\n")
	var res jobs.ReconcileResult
	if start < 0 || end < start || json.Unmarshal([]byte(out[start:end+1]), &res) != nil {
		t.Fatalf("reconcile --json printed no result:\n%s", out)
	}
	return res
}

func (e *env) restClient(t *testing.T) *rest.Client {
	t.Helper()
	p := e.cfg.Providers[0]
	c, err := rest.New(rest.Config{Name: p.Name, BaseURL: p.BaseURL, Token: p.Token.Reveal(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ledgerState is what reconciliation must never change: the ledger, the
// transfers and the settlements.
func ledgerState(t *testing.T, db *store.DB) string {
	t.Helper()
	var s string
	err := db.SQL().QueryRow(`SELECT (SELECT count(*) FROM journals) || '/' || (SELECT count(*) FROM postings) || '/' ||
		(SELECT coalesce(sum(abs(amount)), 0) FROM postings) || '/' || (SELECT count(*) FROM transfers) || '/' ||
		(SELECT string_agg(status, ',' ORDER BY id) FROM settlements)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handSweep writes a settlement for c's deposit as the poller would, claims
// its SWEEP, lets send do what it likes at the bank, and then cancels what
// is left and suspends the customer, so the daemon leaves it alone. It
// returns the claim.
func handSweep(t *testing.T, e *env, c demo.Customer, deposit int64, send func(pipeline.Claim)) pipeline.Claim {
	t.Helper()
	ctx := context.Background()
	targets, err := e.db.PollTargets(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var target store.PollTarget
	for _, x := range targets {
		if x.Number == c.VA {
			target = x
		}
	}
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: deposit, Currency: "KRW"}, target.Obligations(), pipeline.Policy{MinDeposit: 1})
	if err != nil {
		t.Fatal(err)
	}
	created, err := e.db.CreateSettlement(ctx, store.NewSettlement{Target: target, Plan: plan,
		Steps: plan.Steps(target.Number, testAccounts, target.Payee())})
	if err != nil {
		t.Fatal(err)
	}
	claim, err := e.db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	send(claim)
	for _, q := range []string{
		`UPDATE steps SET status = 'CANCELLED', lease_until = NULL WHERE settlement_id = $1 AND status <> 'DONE'`,
		`UPDATE settlements SET status = 'CANCELLED', finished_at = now() WHERE id = $1`,
		`UPDATE customers SET status = 'SUSPENDED' WHERE id = (SELECT customer_id FROM settlements WHERE id = $1)`,
	} {
		if _, err := e.db.SQL().Exec(q, created.SettlementID); err != nil {
			t.Fatal(err)
		}
	}
	return claim
}

// The acceptance test of reconciliation: a payday settles through the
// daemon while five differences are injected at the sandbox bank and in
// the engine's tables. Each is reported with the right kind; the balances
// they disturb are explained by them (no drift); nothing is posted; each is
// told in Slack once, and a second run stores and tells nothing new;
// operators acknowledge and resolve, and a resolution is told in its
// thread.
func TestReconcileReportsInjectedDrift(t *testing.T) {
	slack := notifytest.NewServer(t, "xoxb-reconcile-test", "/services/T0/B0/x")
	e := newEnvWith(t, fmt.Sprintf(`, slack: {bot_token: "xoxb-reconcile-test", channel: "#ops", api_url: %q}`, slack.APIURL()))
	clearSettleEnv(t)
	ctx := context.Background()
	s, cs := e.seeded(t, 6)
	for _, c := range cs {
		if err := s.Pay(ctx, c, 1_000_000); err != nil {
			t.Fatal(err)
		}
	}
	bank := e.restClient(t)
	complete := func(c pipeline.Claim) {
		if _, err := e.db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "fake"}); err != nil {
			t.Fatal(err)
		}
	}
	// missing_at_bank: the engine records a SWEEP the bank never saw.
	missing := handSweep(t, e, cs[3], 1_000_000, complete)
	// amount_mismatch: the bank moves 990,000 under the SWEEP's key; the
	// engine records 1,000,000.
	wrong := handSweep(t, e, cs[4], 1_000_000, func(c pipeline.Claim) {
		req := c.Request()
		req.Amount.Amount = 990_000
		if _, err := bank.Transfer(ctx, req); err != nil {
			t.Fatal(err)
		}
		complete(c)
	})
	// unknown_to_engine: the bank applies the SWEEP, and its attempt row is
	// lost.
	lost := handSweep(t, e, cs[5], 1_000_000, func(c pipeline.Claim) {
		if _, err := bank.Transfer(ctx, c.Request()); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.SQL().Exec(`DELETE FROM transfers WHERE id = $1`, c.Transfer.ID); err != nil {
			t.Fatal(err)
		}
	})

	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"SETTLED": 3, "CANCELLED": 3})
	// unknown_to_engine, twice: a transfer made at the bank with a key
	// settle never used, and money paid into the fee account from outside.
	if _, err := e.bank.CreateAccount(ctx, banksim.Account{ID: "E2E-STRANGER", HolderName: "Stranger", Currency: "KRW"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bank.Transfer(ctx, pipeline.TransferRequest{Key: "manual-0001", From: testAccounts.Lender, To: "E2E-STRANGER",
		Amount: pipeline.Money{Amount: 1_000, Currency: "KRW"}, Memo: "by hand"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bank.Credit(ctx, testAccounts.Fee, 777, "SOMEONE"); err != nil {
		t.Fatal(err)
	}

	before := ledgerState(t, e.db)
	first := e.reconcileJSON(t, 3)
	byKey := map[string]jobs.FindingReport{} // "" for the keyless credit
	for _, f := range first.Providers[0].Findings {
		if !f.New {
			t.Errorf("first run: finding %d is not new", f.ID)
		}
		byKey[f.Key] = f
	}
	for key, want := range map[string]pipeline.FindingKind{
		missing.Transfer.Key: pipeline.FindingMissingAtBank,
		wrong.Transfer.Key:   pipeline.FindingAmountMismatch,
		lost.Transfer.Key:    pipeline.FindingUnknownToEngine,
		"manual-0001":        pipeline.FindingUnknownToEngine,
		"":                   pipeline.FindingUnknownToEngine,
	} {
		if got := byKey[key].Kind; got != want {
			t.Errorf("key %q: %q, want %q", key, got, want)
		}
	}
	if first.Findings != 5 || first.New != 5 || len(byKey) != 5 {
		t.Fatalf("first run: %d findings, %d new, want exactly the 5 injected: %+v", first.Findings, first.New, first.Providers[0].Findings)
	}
	if f := byKey[wrong.Transfer.Key]; f.Amount != 1_000_000 || f.BankAmount != 990_000 {
		t.Errorf("amount mismatch reported as %+v", f)
	}
	if f := byKey[lost.Transfer.Key]; !strings.Contains(f.Detail, "lost track") || f.SettlementID == 0 {
		t.Errorf("lost attempt reported as %+v", f)
	}
	if f := byKey[""]; f.BankAmount != 777 || string(f.Account) != pipeline.AccountNumber(testAccounts.Fee).Masked() ||
		!strings.Contains(f.Detail, "credit of 777") {
		t.Errorf("money from outside reported as %+v", f)
	}

	second := e.reconcileJSON(t, 3)
	if second.Findings != 5 || second.New != 0 {
		t.Fatalf("second run: %d findings, %d new; want the same 5, none new", second.Findings, second.New)
	}
	if after := ledgerState(t, e.db); after != before {
		t.Fatalf("reconciliation changed the ledger, transfers or settlements:\n%s\n%s", before, after)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) { // the delivery job told Slack of each finding once
		var raised, delivered int
		err := e.db.SQL().QueryRow(`SELECT count(*), count(delivered_at) FROM alerts WHERE kind = 'reconcile'`).Scan(&raised, &delivered)
		return err == nil && raised == 5 && delivered == 5, fmt.Sprintf("%d reconcile alerts, %d delivered (%v)", raised, delivered, err)
	})
	if roots := reconcileMessages(slack, false); len(roots) != 5 {
		t.Fatalf("%d Slack messages about findings, want 5:\n%s", len(roots), strings.Join(roots, "\n"))
	}

	id := strconv.FormatInt(byKey["manual-0001"].ID, 10)
	e.cli(t, 2, "reconcile", "findings", "resolve", id) // no --reason
	e.cli(t, 0, "reconcile", "findings", "resolve", id, "--ack", "--reason", "finance moved it", "--actor", "ops-kim")
	e.cli(t, 0, "reconcile", "findings", "resolve", strconv.FormatInt(byKey[missing.Transfer.Key].ID, 10),
		"--reason", "test fixture", "--actor", "ops-kim")
	var open []store.FindingRow
	if err := json.Unmarshal([]byte(e.cli(t, 0, "reconcile", "findings", "list", "--open", "--json")), &open); err != nil || len(open) != 4 {
		t.Fatalf("open findings: %d (%v)", len(open), err)
	}
	if list := e.cli(t, 0, "reconcile", "findings", "list"); !strings.Contains(list, "ACKNOWLEDGED") || !strings.Contains(list, "RESOLVED") ||
		strings.Contains(list, cs[3].VA) {
		t.Fatalf("findings list:\n%s", list)
	}
	if audit := e.cli(t, 0, "audit", "list"); strings.Count(audit, "reconcile findings resolve") != 2 {
		t.Fatalf("audit log:\n%s", audit)
	}
	third := e.reconcileJSON(t, 3)
	if third.New != 0 || third.Findings != 5 {
		t.Fatalf("after the operators acted: %d findings, %d new", third.Findings, third.New)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) { // the resolution, in its finding's thread
		replies := reconcileMessages(slack, true)
		return len(replies) == 1 && strings.Contains(replies[0], "Resolved"), fmt.Sprintf("replies: %q", replies)
	})
	if roots := reconcileMessages(slack, false); len(roots) != 5 {
		t.Fatalf("%d Slack messages about findings after the third run, want still 5", len(roots))
	}
}

// reconcileMessages returns the texts of the Slack messages posted about
// reconciliation findings: first messages, or replies in their threads.
func reconcileMessages(slack *notifytest.Server, replies bool) []string {
	var out []string
	for _, m := range slack.Messages() {
		if m.Method == "chat.postMessage" && (m.ThreadTS != "") == replies && strings.Contains(m.Text, "Reconciliation at sandbox") {
			out = append(out, m.Text)
		}
	}
	return out
}

// A month of demo data settles through the real engine: 40 customers paid
// by four employers on four paydays, bonuses that settle nine of them a
// second time, a bank that fails calls, answers "processing" and times out
// after applying transfers (so steps retry and the sweep resolves unknown
// outcomes), and a frozen payout account that fails its settlement until an
// operator replays it. Reconciling the month finds no difference, and every
// transfer settle recorded as succeeded is matched by its key.
func TestReconcileCleanMonth(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	s, cs := e.seeded(t, 40)
	frozen := cs[2] // paid on the third payday
	if _, err := e.bank.SetState(ctx, frozen.Payout, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.bank.SetFaults(ctx, banksim.Faults{ErrorRate: 0.05, ProcessingRate: 0.05, ProcessingDelayMS: 500,
		TimeoutAfterApplyRate: 0.03, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	e.startDaemon(t)
	settled := int64(0)
	for payday := range 4 {
		for i, c := range cs {
			pay := i%4 == payday
			if payday > 0 && i%4 == payday-1 && i < 12 && c.Ref != frozen.Ref { // a bonus for the previous payday's first three
				pay = true
			}
			if !pay {
				continue
			}
			settled++
			if err := s.Pay(ctx, c, s.Salary()); err != nil {
				t.Fatal(err)
			}
		}
		if payday != 2 {
			e.waitSettled(t, map[string]int64{"SETTLED": settled, "RUNNING": 0})
			continue
		}
		e.waitSettled(t, map[string]int64{"SETTLED": settled - 1, "FAILED": 1, "RUNNING": 0})
		if _, err := e.bank.SetState(ctx, frozen.Payout, banksim.StateActive, ""); err != nil {
			t.Fatal(err)
		}
		id := strconv.FormatInt(settlementIDWith(t, e, "FAILED"), 10)
		e.cli(t, 0, "replay", id, "--reason", "the bank unfroze the payout account", "--actor", "ops-kim")
		e.waitSettled(t, map[string]int64{"SETTLED": settled, "FAILED": 0, "RUNNING": 0})
	}
	if err := e.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.cli(t, 0, "verify", "--bank-journal")
	var succeeded, other int
	if err := e.db.SQL().QueryRow(`SELECT count(*) FILTER (WHERE status = 'SUCCEEDED'), count(*) FILTER (WHERE status <> 'SUCCEEDED')
		FROM transfers`).Scan(&succeeded, &other); err != nil || other == 0 {
		t.Fatalf("%d attempts not succeeded (%v): the month should hold the frozen account's refusal", other, err)
	}
	t.Logf("%d settlements, %d transfers succeeded, %d other attempts", settled, succeeded, other)

	monthAgo := time.Now().AddDate(0, 0, -30).Format(time.DateOnly)
	if out := e.cli(t, 0, "reconcile", "--date", monthAgo); !strings.Contains(out, "no differences") {
		t.Fatalf("reconcile:\n%s", out)
	}
	res := e.reconcileJSON(t, 0, "--date", monthAgo)
	p := res.Providers[0]
	if res.Findings != 0 || p.Findings == nil || p.Matched != succeeded || p.InFlight != 0 || p.MatchedByAmount != 0 ||
		p.Accounts != 44 || p.PendingCredits != 0 || p.Moving != 0 {
		t.Fatalf("the month: %+v; want no finding, all %d succeeded transfers matched by key, 44 accounts", p, succeeded)
	}
	if list := e.cli(t, 0, "reconcile", "findings", "list", "--open"); !strings.Contains(list, "(no findings)") {
		t.Fatalf("findings:\n%s", list)
	}
}

// settle serve runs the reconcile job: each tick queues the day's task on
// the reconcile queue and a worker runs it. Here the job runs every two
// seconds while a payday settles: no run, during the payday or after it,
// finds a difference.
func TestServeReconcilesOnSchedule(t *testing.T) {
	e := newEnvOpts(t, envOpts{reconcile: "@every 2s"})
	clearSettleEnv(t)
	ctx := context.Background()
	s, cs := e.seeded(t, 20)
	for _, c := range cs {
		if err := s.Pay(ctx, c, s.Salary()); err != nil {
			t.Fatal(err)
		}
	}
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"SETTLED": 20})
	var settled time.Time
	if err := e.db.SQL().QueryRow(`SELECT now()`).Scan(&settled); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		var runs, after int
		err := e.db.SQL().QueryRow(`SELECT count(*), count(*) FILTER (WHERE started_at > $1) FROM reconcile_runs
			WHERE finished_at IS NOT NULL AND error = ''`, settled).Scan(&runs, &after)
		return err == nil && after >= 1, fmt.Sprintf("%d runs, %d since the payday settled (%v)", runs, after, err)
	})
	var findings, ticks, runs int
	if err := e.db.SQL().QueryRow(`SELECT (SELECT count(*) FROM reconcile_findings), (SELECT count(*) FROM job_runs WHERE job = 'reconcile'),
		(SELECT count(*) FROM reconcile_runs)`).Scan(&findings, &ticks, &runs); err != nil || findings != 0 || ticks == 0 {
		t.Fatalf("%d findings, %d reconcile ticks (%v); want none, some", findings, ticks, err)
	}
	t.Logf("%d ticks of the reconcile job, %d runs, no finding", ticks, runs)
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.redis.Addr()})
	defer inspector.Close()
	if q, err := inspector.GetQueueInfo(jobs.QueueReconcile); err != nil || q.Processed == 0 {
		t.Fatalf("reconcile queue: %+v %v; want tasks processed there", q, err)
	}
}

// A balance drift shows what the engine accounts for in ENGINE and the
// bank's balance in BANK: a VA holding 888000 the ledger knows nothing of
// reads 0 against 888000, not 888000 against 888000.
func TestFindingsListShowsADriftAgainstTheLedger(t *testing.T) {
	var out strings.Builder
	rows := []store.FindingRow{{ID: 1, Status: "open", Provider: "sandbox", Kind: pipeline.FindingBalanceDrift,
		Account: "VA00001234", Amount: 888000, BankAmount: 888000, SeenCount: 1, Detail: "bank balance 888000, ledger balance 0"}}
	if err := printFindings(&out, rows, colours{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	fields := strings.Fields(lines[1])
	if len(lines) != 2 || fields[6] != "0" || fields[7] != "888,000" {
		t.Fatalf("findings list:\n%s\nwant ENGINE 0 and BANK 888,000", out.String())
	}
}
