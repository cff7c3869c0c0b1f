package jobs_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/notify/notifytest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Canary secrets: none may show in a message, a log line, an error or the
// database.
const (
	alertToken = "xoxb-CANARY-jobs-token-77"
	alertHook  = "/services/T0CANARY/B0CANARY/jobsCANARYhook"
)

// alertEnv is a database, a fake Slack and a log buffer for alert delivery.
type alertEnv struct {
	db    *store.DB
	slack *notifytest.Server
	logs  *testenv.Buffer
}

func newAlertEnv(t *testing.T) *alertEnv {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.PostgresURL(t), store.Options{MaxOpenConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	return &alertEnv{db: db, slack: notifytest.NewServer(t, alertToken, alertHook), logs: &testenv.Buffer{}}
}

func (e *alertEnv) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (e *alertEnv) bot() notify.Notifier {
	return notify.NewBot(notify.Config{BotToken: alertToken, Channel: "#settle-alerts", APIURL: e.slack.APIURL(), Timeout: 5 * time.Second})
}

func (e *alertEnv) webhook() notify.Notifier {
	return notify.NewWebhook(notify.Config{WebhookURL: e.slack.WebhookURL(), Timeout: 5 * time.Second})
}

// delivery returns a delivery job with quick retries and the given storm
// threshold; repeats are told at most once an hour.
func (e *alertEnv) delivery(n notify.Notifier, threshold int) *jobs.AlertDelivery {
	return jobs.NewAlertDelivery(e.db, n, jobs.AlertDeliveryConfig{
		StormThreshold: threshold, StormWindow: time.Hour, RepeatInterval: time.Hour,
		RetryBase: time.Millisecond, RetryMax: 20 * time.Millisecond,
	}, e.logger())
}

// settlement creates a customer with a settlement at provider "sandbox" and
// returns the settlement and its head step.
func (e *alertEnv) settlement(t *testing.T, ref string) store.Created {
	t.Helper()
	ctx := context.Background()
	if _, err := e.db.CreateCustomer(ctx, store.NewCustomer{
		ExternalRef: ref, HolderName: "Kim " + ref, Payout: pipeline.Payee{Account: "110234567890", Holder: "Kim " + ref},
		Provider: "sandbox", VANumber: "VA-" + ref, Currency: "KRW",
	}); err != nil {
		t.Fatal(err)
	}
	targets, err := e.db.PollTargets(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		if target.Number != "VA-"+ref {
			continue
		}
		plan, err := pipeline.BuildPlan(pipeline.Money{Amount: 1_000_000, Currency: "KRW"}, target.Obligations(), pipeline.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		created, err := e.db.CreateSettlement(ctx, store.NewSettlement{Target: target, Plan: plan,
			Steps: plan.Steps(target.Number, pipeline.Accounts{Collection: "COL", Lender: "LEND", Holding: "HOLD", Fee: "FEE"}, target.Payee())})
		if err != nil {
			t.Fatal(err)
		}
		return created
	}
	t.Fatalf("no poll target for %s", ref)
	return store.Created{}
}

// refuse fails the settlement's head step as a frozen account would, the
// way the executor records it: the alert is written with the failure.
func (e *alertEnv) refuse(t *testing.T, c store.Created) pipeline.Alert {
	t.Helper()
	ctx := context.Background()
	claim, err := e.db.ClaimStep(ctx, c.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Failure{Refused: &pipeline.RefusedError{Code: pipeline.RefusedAccountFrozen, BankCode: "account_frozen",
		Message: "account 110-234-567890 is frozen"}}
	f.Reason = f.Refused.Error()
	f.Alert = pipeline.FailureAlert(claim, f)
	if err := e.db.Fail(ctx, claim, f); err != nil {
		t.Fatal(err)
	}
	return f.Alert
}

// raise writes n alerts of kind to the outbox, each its own problem unless
// key is set, for the settlement (0 for none).
func (e *alertEnv) raise(t *testing.T, n int, kind pipeline.AlertKind, key string, settlementID int64) {
	t.Helper()
	_, err := e.db.SQL().ExecContext(context.Background(), `
		INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail, action)
		SELECT CASE WHEN $3 = '' THEN 'settlement:' || i || ':' || (CASE WHEN i % 50 = 0 THEN 'account_frozen' ELSE 'out_of_attempts' END)
		            ELSE $3 END,
		       $2, 'critical', NULLIF($4::bigint, 0), 'Settlement ' || i || ' failed', 'out of attempts (5): bank unavailable',
		       'settle settlements show ' || i
		  FROM generate_series(1, $1) AS i`, n, kind, key, settlementID)
	if err != nil {
		t.Fatal(err)
	}
}

func (e *alertEnv) backlog(t *testing.T) store.AlertBacklog {
	t.Helper()
	b, err := e.db.AlertBacklog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, d *jobs.AlertDelivery) jobs.AlertDeliveryResult {
	t.Helper()
	res, err := d.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// problemKey finds the problem key in a message's fallback text.
var problemKey = regexp.MustCompile(`Problem (\S+) ·`)

// firstMessages counts the messages that opened each problem: posts that
// are not replies in a thread.
func firstMessages(msgs []notifytest.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		if m.Method == "chat.update" || m.ThreadTS != "" || strings.HasPrefix(m.Text, "Repeated") {
			continue
		}
		if k := problemKey.FindStringSubmatch(m.Text); k != nil {
			out[k[1]]++
		}
	}
	return out
}

// Slack answering 500, then 429 with Retry-After, delays alerts; once it is
// back every alert is delivered exactly once.
func TestAlertsSurviveASlackOutage(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"bot", "webhook"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newAlertEnv(t)
			n := e.bot()
			if mode == "webhook" {
				n = e.webhook()
			}
			d := e.delivery(n, 1000)
			const count = 30
			e.raise(t, count, pipeline.AlertKindSettlementFailed, "", 0)

			e.slack.Outage(500, 0)
			for range 5 {
				if res := run(t, d); res.Delivered != 0 || res.Failed == 0 {
					t.Fatalf("during a 500 outage: %+v", res)
				}
			}
			if b := e.backlog(t); b.Undelivered != count || b.MaxAttempts == 0 || !strings.Contains(b.LastError, "HTTP 500") {
				t.Fatalf("backlog during the outage %+v", b)
			}

			e.slack.Outage(429, 2)
			if res := run(t, d); !res.RateLimited || res.Delivered != 0 {
				t.Fatalf("on a 429: %+v", res)
			}
			refused := e.slack.Refused()
			e.slack.Outage(0, 0)
			// Retry-After holds every alert back, not only the one that hit it.
			if res := run(t, d); res.Delivered != 0 || e.slack.Refused() != refused || len(e.slack.Messages()) != 0 {
				t.Fatalf("Retry-After not honoured: %+v, %d messages", res, len(e.slack.Messages()))
			}

			testenv.Eventually(t, 20*time.Second, func() (bool, string) {
				run(t, d)
				b := e.backlog(t)
				return b.Undelivered == 0, fmt.Sprintf("%d alerts undelivered", b.Undelivered)
			})
			first := firstMessages(e.slack.Messages())
			if len(first) != count {
				t.Fatalf("%d problems told, want %d", len(first), count)
			}
			for k, c := range first {
				if c != 1 {
					t.Errorf("problem %s told %d times", k, c)
				}
			}
			if got := len(e.slack.Messages()); got != count {
				t.Errorf("%d messages, want exactly %d", got, count)
			}
		})
	}
}

// A storm of 500 failures makes one summary, not 500 messages; when they
// trickle in, at most the threshold go out one by one before the summary.
func TestAlertStormSendsOneSummary(t *testing.T) {
	t.Parallel()
	const threshold = 20
	for _, mode := range []string{"bot", "webhook"} {
		t.Run(mode+" burst", func(t *testing.T) {
			t.Parallel()
			e := newAlertEnv(t)
			n := e.bot()
			if mode == "webhook" {
				n = e.webhook()
			}
			d := e.delivery(n, threshold)
			c := e.settlement(t, "c1")
			e.raise(t, 500, pipeline.AlertKindSettlementFailed, "", c.SettlementID)
			res := run(t, d)
			if res.Delivered != 500 || res.Summarized != 500 {
				t.Fatalf("run %+v", res)
			}
			msgs := e.slack.Messages()
			if len(msgs) != 1 || !strings.Contains(msgs[0].Text, "500 settlements failed in 1 h at provider sandbox: out_of_attempts 490, account_frozen 10") {
				t.Fatalf("messages %+v", msgs)
			}
			// More of the same storm: bot mode rewrites the summary, webhook
			// mode waits for the repeat interval; no new message either way.
			e.raise(t, 100, pipeline.AlertKindSettlementFailed, "", c.SettlementID)
			run(t, d)
			posts := 0
			for _, m := range e.slack.Messages() {
				if m.Method != "chat.update" {
					posts++
				}
			}
			if posts != 1 || e.backlog(t).Undelivered != 0 {
				t.Fatalf("%d messages after the storm grew, backlog %+v", posts, e.backlog(t))
			}
			if mode == "bot" {
				root, _ := e.slack.Root(msgs[0].TS)
				if !strings.Contains(root.Text, "600 settlements failed") || !strings.Contains(root.Text, "600 alerts folded in") {
					t.Errorf("summary not rewritten: %s", root.Text)
				}
			}
		})
	}
	t.Run("trickle", func(t *testing.T) {
		t.Parallel()
		e := newAlertEnv(t)
		d := e.delivery(e.webhook(), threshold)
		for i := range 50 {
			e.raise(t, 10, pipeline.AlertKindSettlementFailed, "", 0)
			if _, err := e.db.SQL().Exec(`UPDATE alerts SET problem_key = problem_key || ':' || id WHERE delivered_at IS NULL`); err != nil {
				t.Fatal(err)
			}
			if res := run(t, d); res.Failed != 0 {
				t.Fatalf("run %d: %+v", i, res)
			}
		}
		if got := len(e.slack.Messages()); got > threshold+1 {
			t.Fatalf("%d messages for 500 alerts, want at most %d", got, threshold+1)
		}
		if b := e.backlog(t); b.Undelivered != 0 {
			t.Fatalf("backlog %+v", b)
		}
	})
}

// One message per problem: a repeat rewrites it and replies in its thread
// (bot) or posts one short line (webhook), at most once an interval.
func TestRepeatsUpdateTheProblemsMessage(t *testing.T) {
	t.Parallel()
	t.Run("bot", func(t *testing.T) {
		t.Parallel()
		e := newAlertEnv(t)
		d := e.delivery(e.bot(), 1000)
		e.raise(t, 1, pipeline.AlertKindSettlementFailed, "settlement:7:account_frozen", 0)
		run(t, d)
		root := e.slack.Messages()[0]
		e.raise(t, 2, pipeline.AlertKindSettlementFailed, "settlement:7:account_frozen", 0)
		run(t, d)
		e.raise(t, 1, pipeline.AlertKindSettlementFailed, "settlement:7:account_frozen", 0)
		run(t, d)
		var methods []string
		for _, m := range e.slack.Messages() {
			methods = append(methods, m.Method+"/"+map[bool]string{true: "thread", false: "channel"}[m.ThreadTS == root.TS])
		}
		want := "chat.postMessage/channel chat.update/channel chat.postMessage/thread chat.update/channel"
		if strings.Join(methods, " ") != want {
			t.Fatalf("calls %v, want %s", methods, want)
		}
		got, _ := e.slack.Root(root.TS)
		if !strings.Contains(got.Text, "seen 4 times") {
			t.Errorf("first message after repeats: %s", got.Text)
		}
	})
	t.Run("webhook", func(t *testing.T) {
		t.Parallel()
		e := newAlertEnv(t)
		d := e.delivery(e.webhook(), 1000)
		for range 3 {
			e.raise(t, 2, pipeline.AlertKindSettlementFailed, "settlement:7:account_frozen", 0)
			run(t, d)
		}
		msgs := e.slack.Messages()
		if len(msgs) != 2 || !strings.HasPrefix(msgs[1].Text, "Repeated (seen 4 times") {
			t.Fatalf("messages %+v, want the problem and one repeated line", msgs)
		}
	})
}

// A real failure, written by the store with the failure, reaches Slack with
// who, why, what was tried and the command; resolving it threads a follow-up
// and marks the first message resolved; a new failure opens a new message.
func TestFailureAlertIsActionableAndResolves(t *testing.T) {
	t.Parallel()
	e := newAlertEnv(t)
	d := e.delivery(e.bot(), 1000)
	c := e.settlement(t, "cust-77")
	alert := e.refuse(t, c)
	run(t, d)
	msgs := e.slack.Messages()
	if len(msgs) != 1 {
		t.Fatalf("messages %+v", msgs)
	}
	text := msgs[0].Text
	for _, want := range []string{
		fmt.Sprintf("Settlement %d failed at SWEEP: account frozen", c.SettlementID),
		"Customer: cust-77 · payout account ****7890",
		"Bank code account_frozen",
		"Sent the transfer once; the bank refused it for good",
		"Fix: " + alert.Action,
		"Problem " + alert.ProblemKey,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text+msgs[0].Blocks, "110234567890") || strings.Contains(text+msgs[0].Blocks, "234-567890") {
		t.Errorf("message shows an account number unmasked:\n%s", text)
	}

	n, err := e.db.ResolveSettlement(context.Background(), c.SettlementID, "replayed and SETTLED")
	if err != nil || n != 1 {
		t.Fatalf("resolve: %d %v", n, err)
	}
	run(t, d)
	msgs = e.slack.Messages()
	if len(msgs) != 3 || msgs[1].Method != "chat.update" || msgs[2].ThreadTS != msgs[0].TS || !strings.HasPrefix(msgs[2].Text, "Resolved: ") {
		t.Fatalf("after resolving: %+v", msgs)
	}
	if root, _ := e.slack.Root(msgs[0].TS); !strings.Contains(root.Text, ":white_check_mark: Resolved:") || !strings.Contains(root.Text, "replayed and SETTLED") {
		t.Errorf("first message not marked resolved: %s", root.Text)
	}
	// The same problem again is a new problem: a new first message.
	e.raise(t, 1, pipeline.AlertKindSettlementFailed, alert.ProblemKey, c.SettlementID)
	run(t, d)
	if got := firstMessages(e.slack.Messages())[alert.ProblemKey]; got != 2 {
		t.Errorf("problem opened %d times, want 2 (before and after its resolution)", got)
	}
}

// Two replicas delivering at once send every alert exactly once.
func TestTwoReplicasSendEachAlertOnce(t *testing.T) {
	t.Parallel()
	e := newAlertEnv(t)
	const count = 60
	e.raise(t, count, pipeline.AlertKindSettlementFailed, "", 0)
	a, b := e.delivery(e.bot(), 1000), e.delivery(e.bot(), 1000)
	var wg sync.WaitGroup
	for _, d := range []*jobs.AlertDelivery{a, b} {
		wg.Go(func() {
			if _, err := d.RunOnce(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	first := firstMessages(e.slack.Messages())
	if len(first) != count || len(e.slack.Messages()) != count {
		t.Fatalf("%d problems in %d messages, want %d", len(first), len(e.slack.Messages()), count)
	}
	for k, c := range first {
		if c != 1 {
			t.Errorf("problem %s sent %d times", k, c)
		}
	}
}

// Neither the bot token nor the webhook URL shows in a message, a log line,
// an error kept in the database, or the result.
func TestSlackSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	e := newAlertEnv(t)
	dead := notifytest.NewServer(t, alertToken, alertHook)
	dead.Close()
	c := e.settlement(t, "c1")
	e.refuse(t, c)
	e.raise(t, 3, pipeline.AlertKindSettlementFailed, "", 0)
	for _, n := range []notify.Notifier{
		notify.NewWebhook(notify.Config{WebhookURL: dead.WebhookURL(), Timeout: time.Second}),
		notify.NewBot(notify.Config{BotToken: alertToken, Channel: "#a", APIURL: dead.APIURL(), Timeout: time.Second}),
		notify.NewBot(notify.Config{BotToken: "xoxb-CANARY-wrong", Channel: "#a", APIURL: e.slack.APIURL()}),
	} {
		res := run(t, e.delivery(n, 1000))
		if res.Failed == 0 {
			t.Fatalf("a broken Slack delivered: %+v", res)
		}
		if _, err := e.db.SQL().Exec(`UPDATE alerts SET next_try_at = now()`); err != nil {
			t.Fatal(err)
		}
	}
	e.slack.Outage(429, 1)
	run(t, e.delivery(e.webhook(), 1000))
	e.slack.Outage(0, 0)
	if _, err := e.db.SQL().Exec(`UPDATE alerts SET next_try_at = now()`); err != nil {
		t.Fatal(err)
	}
	run(t, e.delivery(e.webhook(), 1000))
	run(t, e.delivery(e.bot(), 1000))

	var kept strings.Builder
	rows, err := e.db.SQL().Query(`SELECT last_error || summary || detail || action || delivered_via FROM alerts
		UNION ALL SELECT problem_key || channel || message_ts || snapshot::text FROM alert_problems`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		kept.WriteString(s + "\n")
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	var sent strings.Builder
	for _, m := range e.slack.Messages() {
		sent.WriteString(m.Text + m.Blocks)
	}
	if !strings.Contains(e.logs.String(), "slack refused the message: invalid_auth") {
		t.Errorf("the log does not say why delivery failed:\n%s", e.logs.String())
	}
	for what, s := range map[string]string{"log": e.logs.String(), "database": kept.String(), "messages": sent.String()} {
		if strings.Contains(s, "CANARY") {
			t.Errorf("the %s shows a secret:\n%s", what, s)
		}
	}
	if strings.Contains(sent.String(), "110234567890") || strings.Contains(kept.String(), "110234567890") {
		t.Errorf("an account number is shown unmasked")
	}
}

// With no Slack, each alert is one structured log line.
func TestAlertsGoToTheLogWithoutSlack(t *testing.T) {
	t.Parallel()
	e := newAlertEnv(t)
	var buf testenv.Buffer
	n, err := notify.New(notify.Config{}, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e.raise(t, 5, pipeline.AlertKindSettlementFailed, "", 0)
	if res := run(t, e.delivery(n, 1000)); res.Delivered != 5 {
		t.Fatalf("run %+v", res)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], `"msg":"alert"`) || !strings.Contains(lines[0], `"action":"settle settlements show 1"`) {
		t.Fatalf("log:\n%s", buf.String())
	}
}
