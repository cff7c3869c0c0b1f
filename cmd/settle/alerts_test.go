package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// settledOne pays one seeded customer and waits for the running daemon to
// settle the deposit; it returns the settlement's ID.
func (e *env) settledOne(t *testing.T) int64 {
	t.Helper()
	e.paidCustomer(t, 1_000_000)
	e.waitSettled(t, map[string]int64{"SETTLED": 1})
	return settlementID(t, e)
}

// openSettlement writes a customer and a settlement of theirs, RUNNING at
// its first step, as a poll would; it returns the settlement's ID.
func (e *env) openSettlement(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := e.db.CreateCustomer(ctx, store.NewCustomer{
		ExternalRef: "c1", HolderName: "Kim", Payout: pipeline.Payee{Account: "110234567890", Holder: "Kim"},
		Provider: "sandbox", VANumber: "VA-c1", Currency: "KRW",
	}); err != nil {
		t.Fatal(err)
	}
	targets, err := e.db.PollTargets(ctx, 0, 10)
	if err != nil || len(targets) != 1 {
		t.Fatalf("poll targets %v %v", targets, err)
	}
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: 1_000_000, Currency: "KRW"}, targets[0].Obligations(), pipeline.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	created, err := e.db.CreateSettlement(ctx, store.NewSettlement{Target: targets[0], Plan: plan,
		Steps: plan.Steps(targets[0].Number, testAccounts, targets[0].Payee())})
	if err != nil {
		t.Fatal(err)
	}
	return created.SettlementID
}

// breakInvariant sets a settlement's status: FAILED without a failed step
// breaks verify's failed_has_failed_step; its own status puts it right.
func (e *env) breakInvariant(t *testing.T, id int64, status string) {
	t.Helper()
	if _, err := e.db.SQL().Exec(`UPDATE settlements SET status = $2 WHERE id = $1`, id, status); err != nil {
		t.Fatal(err)
	}
}

// alertCount counts the alerts of a problem of the given kind; delivered
// counts only the delivered ones.
func (e *env) alertCount(t *testing.T, key string, kind pipeline.AlertKind, delivered bool) int {
	t.Helper()
	var n int
	err := e.db.SQL().QueryRow(`SELECT count(*) FROM alerts WHERE problem_key LIKE $1 AND kind = $2 AND (NOT $3 OR delivered_at IS NOT NULL)`,
		key, kind, delivered).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const invariantKey = "invariant:failed_has_failed_step"

// settle verify raises an alert for a broken invariant, once however often
// it finds it, and resolves it when it finds the invariant holding again.
func TestVerifyRaisesAndResolvesAlerts(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	id := e.openSettlement(t)
	e.breakInvariant(t, id, "FAILED")
	for i := range 2 {
		out := e.cli(t, 3, "verify")
		if !strings.Contains(out, fmt.Sprintf("VIOLATION failed_has_failed_step settlement=%d", id)) ||
			strings.Contains(out, "alert raised for failed_has_failed_step") != (i == 0) {
			t.Fatalf("settle verify %d:\n%s", i, out)
		}
	}
	if n := e.alertCount(t, invariantKey, "invariant_violation", false); n != 1 {
		t.Fatalf("%d alerts for the broken invariant, want 1", n)
	}
	e.breakInvariant(t, id, "RUNNING")
	out := e.cli(t, 0, "verify")
	if !strings.Contains(out, "all invariants hold") || !strings.Contains(out, "alert resolved for failed_has_failed_step") {
		t.Fatalf("settle verify once the invariant holds:\n%s", out)
	}
	e.cli(t, 0, "verify")
	if n := e.alertCount(t, invariantKey, pipeline.AlertKindResolved, false); n != 1 {
		t.Fatalf("%d resolutions, want 1", n)
	}
}

// settle serve checks the invariants on verify.schedule and sends the daily
// summary on notify.daily_summary, both through the alert outbox (here to
// the log).
func TestServeVerifiesAndSendsTheDailySummary(t *testing.T) {
	e := newEnvOpts(t, envOpts{notify: `, daily_summary: "@every 1s"`, more: "verify: {schedule: \"@every 1s\"}\n"})
	clearSettleEnv(t)
	e.startDaemon(t)
	id := e.settledOne(t)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		n := e.alertCount(t, "daily_summary:%", "daily_summary", true)
		return n > 0, "no daily summary delivered yet"
	})
	var summary string
	if err := e.db.SQL().QueryRow(`SELECT summary FROM alerts WHERE kind = 'daily_summary' ORDER BY id DESC LIMIT 1`).Scan(&summary); err != nil ||
		!strings.Contains(summary, "24 h to ") {
		t.Fatalf("daily summary %q %v", summary, err)
	}
	e.breakInvariant(t, id, "FAILED")
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		n := e.alertCount(t, invariantKey, "invariant_violation", true)
		return n == 1, fmt.Sprintf("%d invariant alerts delivered", n)
	})
	e.breakInvariant(t, id, "SETTLED")
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		n := e.alertCount(t, invariantKey, pipeline.AlertKindResolved, true)
		return n == 1, fmt.Sprintf("%d resolutions delivered", n)
	})
	if n := e.alertCount(t, invariantKey, "invariant_violation", false); n != 1 {
		t.Fatalf("%d alerts for the broken invariant, want 1", n)
	}
}
