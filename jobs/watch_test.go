package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/notify/notifytest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// slackFor is a fake Slack and a bot-mode delivery job over db.
func slackFor(t *testing.T, db *store.DB) (*notifytest.Server, *jobs.AlertDelivery) {
	t.Helper()
	slack := notifytest.NewServer(t, alertToken, alertHook)
	bot := notify.NewBot(notify.Config{BotToken: alertToken, Channel: "#settle-alerts", APIURL: slack.APIURL(), Timeout: 5 * time.Second})
	return slack, jobs.NewAlertDelivery(db, bot, jobs.AlertDeliveryConfig{StormThreshold: 1000, RepeatInterval: time.Hour},
		slog.New(slog.DiscardHandler))
}

// resolvedReplies returns the follow-ups that resolved a problem.
func resolvedReplies(msgs []notifytest.Message) []notifytest.Message {
	var out []notifytest.Message
	for _, m := range msgs {
		if m.Method != "chat.update" && strings.HasPrefix(m.Text, "Resolved: ") {
			out = append(out, m)
		}
	}
	return out
}

func countAlerts(t *testing.T, db *store.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM alerts WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A transfer whose outcome the bank does not tell raises one alert once it
// has been unknown for longer than stuck_after (judged by the database's
// clock), however many sweeps see it; once the bank answers, the problem is
// resolved with what happened, and the follow-up is delivered once.
func TestSweepAlertsAStuckStepOnceAndResolvesIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{Lease: 300 * time.Millisecond, BankTimeout: 200 * time.Millisecond})
	f.sweep.WithStuckAfter(10 * time.Minute)
	slack, delivery := slackFor(t, f.db)
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	if err := f.bank.SetFaults(ctx, banksim.Faults{TimeoutAfterApplyRate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.exec.Run(ctx, head); err != nil {
		t.Fatal(err)
	}
	// The status call fails too: the outcome stays unknown.
	if err := f.bank.SetFaults(ctx, banksim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	if res, err := f.sweep.RunOnce(ctx); err != nil || res.Stuck != 0 {
		t.Fatalf("sweep right after the timeout: %+v %v, want no alert yet", res, err)
	}
	if _, err := f.db.SQL().Exec(`UPDATE transfers SET updated_at = updated_at - interval '11 minutes' WHERE status = 'UNKNOWN'`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		res, err := f.sweep.RunOnce(ctx)
		if want := map[bool]int{true: 1}[i == 0]; err != nil || res.Stuck != want || res.Unstuck != 0 {
			t.Fatalf("sweep %d past stuck_after: %+v %v", i, res, err)
		}
	}
	d := settlement(t, f.db)
	key := store.StuckProblemKey(d.ID, d.Steps[0].ID)
	if n := countAlerts(t, f.db, `problem_key = $1 AND kind = 'step_stuck'`, key); n != 1 {
		t.Fatalf("%d stuck alerts for %s, want 1", n, key)
	}
	run(t, delivery)
	msgs := slack.Messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Text, fmt.Sprintf("Settlement %d stuck at SWEEP", d.ID)) ||
		!strings.Contains(msgs[0].Text, "Problem "+key) || !strings.Contains(msgs[0].Text, "key settle-s") {
		t.Fatalf("messages %+v", msgs)
	}

	if err := f.bank.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "DONE" })
	if res, err := f.sweep.RunOnce(ctx); err != nil || res.Stuck+res.Unstuck != 0 {
		t.Fatalf("sweep after the follow-up: %+v %v", res, err)
	}
	var note string
	if err := f.db.SQL().QueryRow(`SELECT detail FROM alerts WHERE problem_key = $1 AND kind = 'resolved'`, key).Scan(&note); err != nil ||
		note != "the bank confirmed the transfer: step 1 (SWEEP) is DONE" {
		t.Fatalf("resolution %q %v", note, err)
	}
	run(t, delivery)
	run(t, delivery)
	if got := resolvedReplies(slack.Messages()); len(got) != 1 || got[0].ThreadTS != msgs[0].TS {
		t.Fatalf("resolved follow-ups %+v, want one in the stuck message's thread", got)
	}
	if root, _ := slack.Root(msgs[0].TS); !strings.Contains(root.Text, "Resolved") {
		t.Errorf("stuck message not marked resolved: %s", root.Text)
	}
	f.drain(t)
	f.verify(t, 4)
}

// A settlement that failed, was fixed and replayed, gets its failure
// problem resolved when it settles, and the follow-up is delivered once.
func TestReplayThatSettlesResolvesTheFailureAlertOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pipeline.ExecutorConfig{})
	slack, delivery := slackFor(t, f.db)
	ctx := context.Background()
	c := f.payday(t, 2_000_000)
	if _, err := f.bank.SetState(ctx, c.Payout, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	d := settlement(t, f.db)
	if d.Status != "FAILED" {
		t.Fatalf("settlement %s, want FAILED", d.Status)
	}
	run(t, delivery)
	first := slack.Messages()
	if len(first) != 1 || !strings.Contains(first[0].Text, "account frozen") {
		t.Fatalf("messages %+v", first)
	}

	if _, err := f.bank.SetState(ctx, c.Payout, banksim.StateActive, ""); err != nil {
		t.Fatal(err)
	}
	out, err := f.db.Replay(ctx, d.ID, sandboxAccounts, store.Audit{Actor: "ops", Command: "replay", Reason: "account unfrozen"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.queue.EnqueueStep(ctx, out.Enqueue); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	if d := settlement(t, f.db); d.Status != "SETTLED" {
		t.Fatalf("settlement %s after the replay, want SETTLED", d.Status)
	}
	if n := countAlerts(t, f.db, `kind = 'resolved'`); n != 1 {
		t.Fatalf("%d resolutions queued, want 1", n)
	}
	for range 3 {
		run(t, delivery)
	}
	got := resolvedReplies(slack.Messages())
	if len(got) != 1 || got[0].ThreadTS != first[0].TS || !strings.Contains(got[0].Text, fmt.Sprintf("settlement %d is SETTLED", d.ID)) {
		t.Fatalf("resolved follow-ups %+v, want one, in the failure's thread", got)
	}
	if root, _ := slack.Root(first[0].TS); !strings.Contains(root.Text, ":white_check_mark: Resolved:") {
		t.Errorf("failure message not marked resolved: %s", root.Text)
	}
	f.verify(t, 4)
}

// The scheduled verify raises one alert per broken check, nothing more
// while the same violations stand, a repeat when they change, and a
// resolved follow-up once the check holds again.
func TestVerifyAlertsBrokenInvariantsUntilTheyHold(t *testing.T) {
	t.Parallel()
	e := newAlertEnv(t)
	ctx := context.Background()
	v := jobs.NewVerifier(e.db, e.logger())
	d := e.delivery(e.webhook(), 1000)
	c := e.settlement(t, "c1")
	if res, err := v.RunOnce(ctx); err != nil || res.Violations != 0 || len(res.Raised)+len(res.Resolved) != 0 {
		t.Fatalf("verify of a sound database: %+v %v", res, err)
	}
	// A FAILED settlement without a failed step breaks one invariant.
	if _, err := e.db.SQL().Exec(`UPDATE settlements SET status = 'FAILED' WHERE id = $1`, c.SettlementID); err != nil {
		t.Fatal(err)
	}
	key := notify.InvariantProblemKey("failed_has_failed_step")
	for i := range 2 {
		res, err := v.RunOnce(ctx)
		if err != nil || res.Violations != 1 || len(res.Raised) != map[bool]int{true: 1}[i == 0] {
			t.Fatalf("verify %d of a broken invariant: %+v %v", i, res, err)
		}
		run(t, d)
	}
	if n := countAlerts(t, e.db, `problem_key = $1`, key); n != 1 {
		t.Fatalf("%d alerts for %s, want 1", n, key)
	}
	// Other violations of the same check: a repeat of the same problem.
	more := []store.Violation{
		{Check: "failed_has_failed_step", SettlementID: c.SettlementID, Detail: "FAILED settlement has no FAILED or DEAD step"},
		{Check: "failed_has_failed_step", SettlementID: c.SettlementID + 1000, Detail: "FAILED settlement has no FAILED or DEAD step"},
	}
	if res, err := jobs.ReportViolations(ctx, e.db, more, nil); err != nil || len(res.Raised) != 1 {
		t.Fatalf("report of changed violations: %+v %v", res, err)
	}
	run(t, d)
	if _, err := e.db.SQL().Exec(`UPDATE settlements SET status = 'RUNNING' WHERE id = $1`, c.SettlementID); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		res, err := v.RunOnce(ctx)
		if err != nil || res.Violations != 0 || len(res.Resolved) != map[bool]int{true: 1}[i == 0] {
			t.Fatalf("verify %d once the invariant holds: %+v %v", i, res, err)
		}
		run(t, d)
	}
	var texts []string
	for _, m := range e.slack.Messages() {
		texts = append(texts, strings.SplitN(m.Text, "\n", 2)[0])
	}
	want := []string{
		":red_circle: Invariant broken: failed_has_failed_step (1 violation)",
		"Repeated (seen 2 times since ",
		"Resolved: Invariant broken: failed_has_failed_step (2 violations)",
	}
	if len(texts) != len(want) {
		t.Fatalf("messages %q, want %d", texts, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(texts[i], w) {
			t.Errorf("message %d %q, want it to start %q", i, texts[i], w)
		}
	}
}

// settleAll runs a settlement's steps as if the bank accepted every one.
func settleAll(t *testing.T, db *store.DB, head int64) {
	t.Helper()
	ctx := context.Background()
	for id := head; id != 0; {
		c, err := db.ClaimStep(ctx, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		next, err := db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "ref"})
		if err != nil {
			t.Fatal(err)
		}
		id = next.ID
	}
}

// The daily summary counts what settled and failed in the 24 hours before
// its tick and names the oldest open settlement; one per date.
func TestDailySummary(t *testing.T) {
	t.Parallel()
	e := newAlertEnv(t)
	ctx := context.Background()
	settled := e.settlement(t, "c1")
	settleAll(t, e.db, settled.HeadStepID)
	failed := e.settlement(t, "c2")
	e.refuse(t, failed)
	e.settlement(t, "c3") // running
	s := jobs.NewDailySummary(e.db, jobs.DailySummaryConfig{Location: time.UTC}, e.logger())
	// A tick an hour from now: the 24 hours before hold all of the above.
	for i := range 2 {
		res, err := s.RunOnce(ctx, time.Now().Add(time.Hour))
		if err != nil || res.Raised != (i == 0) || res.Settled != 1 || res.Failed != 1 || !strings.HasPrefix(res.ProblemKey, "daily_summary:") {
			t.Fatalf("summary run %d: %+v %v", i, res, err)
		}
	}
	d := e.delivery(e.webhook(), 1000)
	run(t, d)
	run(t, d)
	var msgs []notifytest.Message // the failure of c2 has its own message
	for _, m := range e.slack.Messages() {
		if strings.HasPrefix(m.Text, ":bar_chart: Daily summary") {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) != 1 {
		t.Fatalf("%d summaries among %+v, want one", len(msgs), e.slack.Messages())
	}
	for _, want := range []string{
		"Daily summary, 24 h to ", ": 1 settled, 1 failed",
		"Settled: 1 settlement, 1,000,000 KRW",
		"Failed: 1 in the period; 1 FAILED now, waiting for an operator",
		fmt.Sprintf("Open: 2 settlements; the oldest, %d, is FAILED (customer c2, created ", failed.SettlementID),
		"Fix: settle settlements list --status FAILED",
	} {
		if !strings.Contains(msgs[0].Text, want) {
			t.Errorf("summary lacks %q:\n%s", want, msgs[0].Text)
		}
	}
	// A period that ended a day ago saw nothing settle or fail.
	res, err := s.RunOnce(ctx, time.Now().Add(-24*time.Hour))
	if err != nil || !res.Raised || res.Settled != 0 || res.Failed != 0 {
		t.Fatalf("summary of the day before: %+v %v", res, err)
	}
}

// A failure alert is of the kind the store resolves when the settlement
// settles after all.
func TestAlertKindsAgree(t *testing.T) {
	failure := pipeline.FailureAlert(pipeline.Claim{SettlementID: 1}, pipeline.Failure{Dead: true})
	if failure.Kind != pipeline.AlertKindSettlementFailed {
		t.Errorf("failure alert of kind %q, want %q", failure.Kind, pipeline.AlertKindSettlementFailed)
	}
}
