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
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// reconcileJSON runs `settle reconcile --json` and decodes its result (log
// lines, which go to stderr, come first in the test's combined output).
func (e *env) reconcileJSON(t *testing.T, want int) jobs.ReconcileResult {
	t.Helper()
	out := e.cli(t, want, "reconcile", "--json")
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
// daemon while four differences are injected at the sandbox bank and in the
// engine's tables. Each is reported once with the right kind; the balances
// they disturb are explained by them (no drift); nothing is posted; a second
// run stores and alerts nothing new; operators acknowledge and resolve.
func TestReconcileReportsInjectedDrift(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	s := e.seeder(6)
	cs, err := s.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	// unknown_to_engine: a transfer made at the bank with no engine record.
	if _, err := e.bank.CreateAccount(ctx, banksim.Account{ID: "E2E-STRANGER", HolderName: "Stranger", Currency: "KRW"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bank.Transfer(ctx, pipeline.TransferRequest{Key: "manual-0001", From: testAccounts.Lender, To: "E2E-STRANGER",
		Amount: pipeline.Money{Amount: 1_000, Currency: "KRW"}, Memo: "by hand"}); err != nil {
		t.Fatal(err)
	}

	before := ledgerState(t, e.db)
	first := e.reconcileJSON(t, 3)
	byKey := map[string]jobs.FindingReport{}
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
	} {
		if got := byKey[key].Kind; got != want {
			t.Errorf("key %s: %q, want %q", key, got, want)
		}
	}
	if first.Findings != 4 || first.New != 4 || len(byKey) != 4 {
		t.Fatalf("first run: %d findings, %d new, want exactly the 4 injected: %+v", first.Findings, first.New, first.Providers[0].Findings)
	}
	if f := byKey[wrong.Transfer.Key]; f.Amount != 1_000_000 || f.BankAmount != 990_000 {
		t.Errorf("amount mismatch reported as %+v", f)
	}
	if f := byKey[lost.Transfer.Key]; !strings.Contains(f.Detail, "lost track") || f.SettlementID == 0 {
		t.Errorf("lost attempt reported as %+v", f)
	}

	second := e.reconcileJSON(t, 3)
	if second.Findings != 4 || second.New != 0 {
		t.Fatalf("second run: %d findings, %d new; want the same 4, none new", second.Findings, second.New)
	}
	if after := ledgerState(t, e.db); after != before {
		t.Fatalf("reconciliation changed the ledger, transfers or settlements:\n%s\n%s", before, after)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) { // the delivery job sent each alert once
		var raised, delivered int
		err := e.db.SQL().QueryRow(`SELECT count(*), count(delivered_at) FROM alerts WHERE kind = 'reconcile'`).Scan(&raised, &delivered)
		return err == nil && raised == 4 && delivered == 4, fmt.Sprintf("%d reconcile alerts, %d delivered (%v)", raised, delivered, err)
	})

	id := strconv.FormatInt(byKey["manual-0001"].ID, 10)
	e.cli(t, 2, "reconcile", "findings", "resolve", id) // no --reason
	e.cli(t, 0, "reconcile", "findings", "resolve", id, "--ack", "--reason", "finance moved it", "--actor", "ops-kim")
	e.cli(t, 0, "reconcile", "findings", "resolve", strconv.FormatInt(byKey[missing.Transfer.Key].ID, 10),
		"--reason", "test fixture", "--actor", "ops-kim")
	var open []store.FindingRow
	if err := json.Unmarshal([]byte(e.cli(t, 0, "reconcile", "findings", "list", "--open", "--json")), &open); err != nil || len(open) != 3 {
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
	if third.New != 0 || third.Findings != 4 {
		t.Fatalf("after the operators acted: %d findings, %d new", third.Findings, third.New)
	}
}

// After a normal payday of demo data, reconciliation finds nothing.
func TestReconcileCleanAfterPayday(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	s := e.seeder(30)
	cs, err := s.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := s.Pay(ctx, c, s.Salary()); err != nil {
			t.Fatal(err)
		}
	}
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"SETTLED": 30})
	out := e.cli(t, 0, "reconcile")
	if !strings.Contains(out, "no differences") {
		t.Fatalf("reconcile:\n%s", out)
	}
	res := e.reconcileJSON(t, 0)
	if p := res.Providers[0]; p.Findings == nil || len(p.Findings) != 0 || p.Matched < 30*3 || p.Accounts != 34 {
		t.Fatalf("clean run: %+v", p)
	}
	if list := e.cli(t, 0, "reconcile", "findings", "list", "--open"); !strings.Contains(list, "(no findings)") {
		t.Fatalf("findings:\n%s", list)
	}
	e.cli(t, 2, "reconcile", "--date", "yesterday")
}

// settle serve runs the reconcile job: each tick queues the day's task on
// the reconcile queue and a worker runs it. Here the job runs every two
// seconds while a payday settles: no run, during the payday or after it,
// finds a difference.
func TestServeReconcilesOnSchedule(t *testing.T) {
	e := newEnvOpts(t, envOpts{reconcile: "@every 2s"})
	clearSettleEnv(t)
	ctx := context.Background()
	s := e.seeder(20)
	cs, err := s.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
