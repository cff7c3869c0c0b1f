package interact_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/interact"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/notify/notifytest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Canary secrets: none may show in a message, a log line or an audit row.
const (
	botToken      = "xoxb-CANARY-interact-bot"
	appToken      = "xapp-1-CANARY-interact-app"
	signingSecret = "CANARYsigningSecret0123456789ab"
	team          = "T0SETTLE"
)

// Who clicks: two approvers, an operator, a viewer, and someone unknown.
const (
	alice  = "UALICE"
	bob    = "UBOB"
	oliver = "UOLIVER"
	vera   = "UVERA"
	eve    = "UEVE"
)

var accounts = pipeline.Accounts{Collection: "COL", Lender: "LEND", Holding: "HOLD", Fee: "FEE"}

// fixture is a FAILED settlement whose alert the bot posted with its
// buttons to a fake Slack, and the handler behind an HTTP interactivity
// endpoint.
type fixture struct {
	db       *store.DB
	slack    *notifytest.Server
	h        *interact.Handler
	endpoint string
	logs     *testenv.Buffer
	id       int64
	alert    notifytest.Message
	woken    chan pipeline.StepRef
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db := settletest.NewDB(t, 8)
	f := &fixture{db: db, logs: &testenv.Buffer{}, woken: make(chan pipeline.StepRef, 10)}
	f.id = settletest.FailedAtPayout(t, db, "c1", 500_000, accounts)
	f.slack = notifytest.NewServer(t, botToken, "/services/T0/B0/CANARYhook")
	f.slack.AcceptAppToken(appToken)
	bot := notify.NewBot(notify.Config{BotToken: botToken, Channel: "#settle-alerts", APIURL: f.slack.APIURL(), Timeout: 5 * time.Second})
	f.h = interact.New(interact.Config{
		DB: db, Slack: bot, TeamID: team, Window: 15 * time.Minute,
		Ops: map[notify.Action]interact.Op{
			notify.ActionReplay: func(ctx context.Context, id int64, a store.Audit, dry bool) (store.Outcome, error) {
				return db.Replay(ctx, id, map[string]pipeline.Accounts{"sandbox": accounts}, a, dry)
			},
			notify.ActionCancel:     db.Cancel,
			notify.ActionCompensate: db.Compensate,
		},
		Wake: func(_ context.Context, ref pipeline.StepRef) string {
			f.woken <- ref
			return fmt.Sprintf("step %d is queued for a worker", ref.ID)
		},
		Users:  map[string]interact.Role{alice: interact.Approver, bob: interact.Approver, oliver: interact.Operator, vera: interact.Viewer},
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	t.Cleanup(func() { f.h.Close(context.Background()) })
	srv := httptest.NewServer(f.h.HTTP(signingSecret))
	t.Cleanup(srv.Close)
	f.endpoint = srv.URL

	alert := notify.Alert{ID: 1, ProblemKey: fmt.Sprintf("settlement:%d:account_frozen", f.id), Kind: pipeline.AlertKindSettlementFailed,
		Severity: pipeline.SeverityCritical, SettlementID: f.id, Summary: "payout refused: account_frozen",
		Action: fmt.Sprintf("settle settlements show %d", f.id), CreatedAt: time.Now()}
	ref, err := bot.Post(ctx, notify.Notice{Alert: alert, Occurrences: 1, FirstAt: alert.CreatedAt, Actions: f.h.Actions(ctx, alert)})
	if err != nil {
		t.Fatal(err)
	}
	f.alert, _ = f.slack.Root(ref.TS)
	t.Cleanup(func() { f.checkNoSecrets(t) })
	return f
}

// post delivers a click to the HTTP endpoint, signed now, and fails the
// test unless it is answered 200.
func (f *fixture) post(t *testing.T, c notifytest.Click) {
	t.Helper()
	status, err := notifytest.PostInteraction(f.endpoint, signingSecret, time.Now(), c.Payload())
	if err != nil || status != http.StatusOK {
		t.Fatalf("interaction answered %d %v", status, err)
	}
}

func (f *fixture) click(t *testing.T, m notifytest.Message, a notify.Action, user string) notifytest.Click {
	t.Helper()
	return notifytest.ClickOn(t, m, a.ID(), team, user)
}

// wait returns the first message, newest last, that match accepts, waiting
// for it up to 30 s.
func (f *fixture) wait(t *testing.T, what string, match func(notifytest.Message) bool) notifytest.Message {
	t.Helper()
	var found notifytest.Message
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, m := range f.slack.Messages() {
			if match(m) {
				found = m
				return true, ""
			}
		}
		return false, "no " + what + " yet"
	})
	return found
}

// whispered waits for a message shown to user alone that says want.
func (f *fixture) whispered(t *testing.T, user, want string) notifytest.Message {
	t.Helper()
	return f.wait(t, "ephemeral message to "+user+" saying "+want, func(m notifytest.Message) bool {
		return m.Method == "chat.postEphemeral" && m.User == user && strings.Contains(m.Text, want)
	})
}

// inThread waits for a message in the alert's thread that says want.
func (f *fixture) inThread(t *testing.T, want string) notifytest.Message {
	t.Helper()
	return f.wait(t, "thread message saying "+want, func(m notifytest.Message) bool {
		return m.Method == "chat.postMessage" && m.ThreadTS == f.alert.TS && strings.Contains(m.Text, want)
	})
}

// request has user click Request on the alert and returns the request's
// message once it is posted.
func (f *fixture) request(t *testing.T, a notify.Action, user string) notifytest.Message {
	t.Helper()
	f.post(t, f.click(t, f.alert, a, user))
	return f.wait(t, "request message", func(m notifytest.Message) bool {
		return m.ThreadTS == f.alert.TS && len(m.Buttons()) == 1 && m.Buttons()[0].ActionID == notify.ActionApprove.ID()
	})
}

// audit is one audit row as a test reads it.
type audit struct{ actor, command, outcome, detail, args string }

// audits are the audit rows about the settlement, oldest first.
func (f *fixture) audits(t *testing.T) []audit {
	t.Helper()
	rows, err := f.db.ListAudit(context.Background(), fmt.Sprintf("settlement:%d", f.id), 100)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]audit, len(rows))
	for i, r := range rows {
		out[len(rows)-1-i] = audit{r.Actor, r.Command, r.Outcome, r.Detail, string(r.Args)}
	}
	return out
}

// waitAudits waits until there are n audit rows about the settlement.
func (f *fixture) waitAudits(t *testing.T, n int) []audit {
	t.Helper()
	var got []audit
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got = f.audits(t)
		return len(got) >= n, fmt.Sprintf("%d audit rows, want %d: %v", len(got), n, got)
	})
	if len(got) != n {
		t.Fatalf("%d audit rows, want %d: %v", len(got), n, got)
	}
	return got
}

func (f *fixture) status(t *testing.T) string {
	t.Helper()
	d, err := f.db.GetSettlement(context.Background(), f.id)
	if err != nil {
		t.Fatal(err)
	}
	return string(d.Status)
}

func (f *fixture) requests(t *testing.T) []string {
	t.Helper()
	var joined string
	if err := f.db.SQL().QueryRow(`SELECT coalesce(string_agg(status, ',' ORDER BY id), '') FROM approval_requests`).Scan(&joined); err != nil {
		t.Fatal(err)
	}
	if joined == "" {
		return nil
	}
	return strings.Split(joined, ",")
}

// checkNoSecrets fails the test if a secret shows in a message sent to
// Slack, a log line or an audit row, or if the click's verification token
// or response URL was kept.
func (f *fixture) checkNoSecrets(t *testing.T) {
	var rows string
	if err := f.db.SQL().QueryRow(`SELECT coalesce(string_agg(to_jsonb(a)::text, E'\n'), '') FROM audit_log a`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	var requests string
	if err := f.db.SQL().QueryRow(`SELECT coalesce(string_agg(to_jsonb(r)::text, E'\n'), '') FROM approval_requests r`).Scan(&requests); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, m := range f.slack.Messages() {
		msgs = append(msgs, m.Text, m.Blocks)
	}
	for what, s := range map[string]string{"audit rows": rows, "requests": requests, "logs": f.logs.String(),
		"messages": strings.Join(msgs, "\n")} {
		for _, secret := range []string{"CANARY", "deprecated-verification-token", "hooks.slack.com/actions"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s show %q:\n%s", what, secret, s)
			}
		}
	}
	// The bot token authenticates the Web API calls; nothing else secret
	// goes to Slack.
	for _, r := range f.slack.Requests() {
		if strings.Contains(r, appToken) || strings.Contains(r, signingSecret) {
			t.Errorf("a request to Slack carries the app token or the signing secret: %s", r)
		}
	}
}

// The alert offers what the settlement's state allows: a PAYOUT refused
// after the SWEEP moved money may be replayed or compensated, not
// cancelled.
func TestAlertOffersWhatTheStateAllows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got []string
	for _, b := range f.alert.Buttons() {
		if b.Value != fmt.Sprint(f.id) || b.BlockID != notify.ActionsBlockID {
			t.Errorf("button %+v does not carry settlement %d", b, f.id)
		}
		got = append(got, b.Text)
	}
	if want := "Dry run,Request replay,Request compensate,Acknowledge"; strings.Join(got, ",") != want {
		t.Fatalf("buttons %v, want %s", got, want)
	}
	if as := f.h.Actions(context.Background(), notify.Alert{Kind: pipeline.AlertKindStepStuck, SettlementID: f.id}); as != nil {
		t.Fatalf("a stuck step's alert offers %v", as)
	}
}

// Who may not act is told so alone, and nothing changes but an audit
// row: someone not listed, a viewer requesting, an operator approving, a
// click from another workspace. A viewer's dry run posts exactly what the
// CLI prints, and an operator's acknowledgement is said in the thread.
func TestClicksRefusedToWhoMayNot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.post(t, f.click(t, f.alert, notify.ActionReplay, eve))
	f.whispered(t, eve, "Slack user UEVE is not in notify.slack.interactive.users")
	f.post(t, f.click(t, f.alert, notify.ActionReplay, vera))
	f.whispered(t, vera, "Slack user UVERA is a viewer; Request replay needs an operator")
	other := f.click(t, f.alert, notify.ActionCompensate, alice)
	other.Team = "T0OTHER"
	f.post(t, other)
	f.whispered(t, alice, "Slack workspace T0OTHER is not the one settle is configured for")

	f.post(t, f.click(t, f.alert, notify.ActionDryRun, vera))
	dry, err := f.db.Replay(context.Background(), f.id, map[string]pipeline.Accounts{"sandbox": accounts},
		store.Audit{Actor: "test", Command: "replay", Reason: "compare"}, true)
	if err != nil {
		t.Fatal(err)
	}
	posted := f.inThread(t, "Dry run")
	if want := fmt.Sprintf("$ settle replay %d --dry-run\n%s", f.id, strings.TrimRight(dry.Text(), "\n")); !strings.Contains(posted.Text, want) {
		t.Fatalf("the dry run posted\n%s\nis not what settle replay --dry-run prints:\n%s", posted.Text, want)
	}
	if !strings.Contains(posted.Text, fmt.Sprintf("$ settle compensate %d --dry-run\ndry run: settlement %d would change", f.id, f.id)) {
		t.Fatalf("the dry run does not show the compensation:\n%s", posted.Text)
	}
	f.post(t, f.click(t, f.alert, notify.ActionAcknowledge, oliver))
	f.inThread(t, "acknowledged the alert")

	r := f.request(t, notify.ActionReplay, alice)
	f.post(t, f.click(t, r, notify.ActionApprove, oliver))
	f.whispered(t, oliver, "Slack user UOLIVER is an operator; Approve needs an approver")

	got := f.waitAudits(t, 7)
	want := []audit{
		{actor: "slack:T0SETTLE/UEVE", command: "request replay", outcome: "refused"},
		{actor: "slack:T0SETTLE/UVERA", command: "request replay", outcome: "refused"},
		{actor: "slack:T0OTHER/UALICE", command: "request compensate", outcome: "refused"},
		{actor: "slack:T0SETTLE/UVERA", command: "dry run", outcome: "applied"},
		{actor: "slack:T0SETTLE/UOLIVER", command: "acknowledge", outcome: "applied"},
		{actor: "slack:T0SETTLE/UALICE", command: "request replay", outcome: "applied"},
		{actor: "slack:T0SETTLE/UOLIVER", command: "replay", outcome: "refused"},
	}
	for i, w := range want {
		if g := got[i]; g.actor != w.actor || g.command != w.command || g.outcome != w.outcome ||
			!strings.Contains(g.args, `"team": "`) || !strings.Contains(g.args, `"trigger_id": "`) {
			t.Errorf("audit row %d: %+v, want %+v with the Slack user, team and click", i, g, w)
		}
	}
	if s := f.status(t); s != "FAILED" {
		t.Fatalf("settlement %s after refused clicks, want FAILED", s)
	}
	if rs := f.requests(t); len(rs) != 1 || rs[0] != "PENDING" {
		t.Fatalf("requests %v, want alice's PENDING", rs)
	}
}

// A request runs only with another approver's approval: the requester's
// own is refused; the second approver's runs the replay through the
// store, the request's message shows it done, and the step is queued.
func TestRequestRunsOnceAnotherApproverApproves(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.request(t, notify.ActionReplay, alice)
	if !strings.Contains(r.Text, "waiting for approval") || !strings.Contains(r.Text, fmt.Sprintf("$ settle replay %d --dry-run", f.id)) {
		t.Fatalf("request message:\n%s", r.Text)
	}
	f.post(t, f.click(t, r, notify.ActionApprove, alice))
	f.whispered(t, alice, "who cannot approve it: a second operator must (four eyes)")
	if s := f.status(t); s != "FAILED" {
		t.Fatalf("settlement %s after the requester's own approval", s)
	}
	f.post(t, f.click(t, r, notify.ActionApprove, bob))
	f.inThread(t, "approved request")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		m, _ := f.slack.Root(r.TS)
		return strings.Contains(m.Text, "approved and done") && len(m.Buttons()) == 0, "request message not updated: " + m.Text
	})
	select {
	case ref := <-f.woken:
		if ref.ID == 0 {
			t.Fatal("no step woken")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the replayed step was not queued")
	}
	if s := f.status(t); s != "RUNNING" {
		t.Fatalf("settlement %s after the approval, want RUNNING", s)
	}
	got := f.waitAudits(t, 3)
	if got[1].actor != "slack:T0SETTLE/UALICE" || got[1].command != "replay" || got[1].outcome != "refused" ||
		got[2].actor != "slack:T0SETTLE/UBOB" || got[2].command != "replay" || got[2].outcome != "applied" ||
		!strings.Contains(got[2].args, `"requested_by": "slack:T0SETTLE/UALICE"`) || !strings.Contains(got[2].args, `"request": `) {
		t.Fatalf("audit rows %+v", got)
	}
}

// An approval after the window runs nothing: the approver is told, the
// request's message says it expired.
func TestApprovalAfterTheWindowRunsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.request(t, notify.ActionReplay, alice)
	// The window passed, by the database's clock.
	if _, err := f.db.SQL().Exec(`UPDATE approval_requests SET created_at = created_at - interval '16 minutes',
		expires_at = expires_at - interval '16 minutes'`); err != nil {
		t.Fatal(err)
	}
	f.post(t, f.click(t, r, notify.ActionApprove, bob))
	f.whispered(t, bob, "expired at")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		m, _ := f.slack.Root(r.TS)
		return strings.Contains(m.Text, "expired: nothing was run") && len(m.Buttons()) == 0, "request message: " + m.Text
	})
	if s, rs := f.status(t), f.requests(t); s != "FAILED" || rs[0] != store.RequestExpired {
		t.Fatalf("settlement %s, requests %v after a late approval", s, rs)
	}
	if got := f.waitAudits(t, 2); got[1].outcome != "refused" || !strings.Contains(got[1].detail, "expired") {
		t.Fatalf("audit rows %+v", got)
	}
}

// An approval after the settlement changed runs nothing, and both the
// requester and the approver are told why in the thread, with the dry run
// as it is now.
func TestApprovalAfterTheSettlementChangedRunsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.request(t, notify.ActionReplay, alice)
	if _, err := f.db.UpdateCustomer(context.Background(), "c1", store.CustomerPatch{PayoutAccount: new("3333019988776")},
		store.Audit{Actor: "ops", Command: "customers update", Reason: "new account"}); err != nil {
		t.Fatal(err)
	}
	f.post(t, f.click(t, r, notify.ActionApprove, bob))
	told := f.inThread(t, "nothing was run")
	var blocks []struct{ Text struct{ Text string } }
	if err := json.Unmarshal([]byte(told.Blocks), &blocks); err != nil || len(blocks) != 1 ||
		!strings.HasPrefix(blocks[0].Text.Text, "<@UBOB> <@UALICE> Nothing was run: settlement") || !strings.Contains(told.Text, "changed since request") {
		t.Fatalf("both operators are not told why:\n%s\n%s", told.Text, told.Blocks)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		m, _ := f.slack.Root(r.TS)
		return strings.Contains(m.Text, "the settlement changed since the request") && strings.Contains(m.Text, "****8776"),
			"request message without the new dry run: " + m.Text
	})
	if s, rs := f.status(t), f.requests(t); s != "FAILED" || rs[0] != store.RequestChanged {
		t.Fatalf("settlement %s, requests %v after a stale approval", s, rs)
	}
}

// A request that does not carry Slack's signature, or carries an old one,
// is answered 401 and does nothing; the same click delivered twice acts
// once.
func TestForgedReplayedAndRepeatedDeliveries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.click(t, f.alert, notify.ActionReplay, alice)
	for _, tt := range []struct {
		name   string
		secret string
		at     time.Time
	}{
		{"forged signature", "not-the-signing-secret-at-all", time.Now()},
		{"replayed with an old timestamp", signingSecret, time.Now().Add(-6 * time.Minute)},
		{"from the future", signingSecret, time.Now().Add(6 * time.Minute)},
	} {
		status, err := notifytest.PostInteraction(f.endpoint, tt.secret, tt.at, c.Payload())
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("%s: answered %d %v, want 401", tt.name, status, err)
		}
	}
	resp, err := http.Get(f.endpoint)
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := f.audits(t); len(got) != 0 || len(f.requests(t)) != 0 {
		t.Fatalf("unsigned requests did something: audits %v, requests %v", got, f.requests(t))
	}
	if !strings.Contains(f.logs.String(), "not signed by Slack") {
		t.Fatalf("refused requests are not logged:\n%s", f.logs.String())
	}

	f.post(t, c)
	f.post(t, c)
	f.request(t, notify.ActionReplay, bob) // a click of its own: a second request
	f.waitAudits(t, 2)
	if rs := f.requests(t); len(rs) != 2 {
		t.Fatalf("requests %v: alice's click delivered twice made %d", rs, len(rs)-1)
	}
	var posted int
	for _, m := range f.slack.Messages() {
		if m.ThreadTS == f.alert.TS && strings.Contains(m.Text, "waiting for approval") {
			posted++
		}
	}
	if posted != 2 {
		t.Fatalf("%d request messages, want 2", posted)
	}
}

// Over Socket Mode every interaction is acknowledged, and the same click
// delivered twice acts once; an app token Slack refuses is logged without
// it.
func TestSocketModeAcknowledgesAndActsOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sm := interact.NewSocketMode(f.h, interact.SocketConfig{AppToken: appToken, APIURL: f.slack.APIURL()})
	go func() { defer close(done); sm.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	c := f.click(t, f.alert, notify.ActionReplay, alice)
	first, second := f.slack.Interact(t, c.Payload()), f.slack.Interact(t, c.Payload())
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return f.slack.Acked(first) && f.slack.Acked(second), "interactions not acknowledged"
	})
	r := f.wait(t, "request message", func(m notifytest.Message) bool { return len(m.Buttons()) == 1 && m.ThreadTS == f.alert.TS })
	f.slack.Interact(t, f.click(t, r, notify.ActionApprove, bob).Payload())
	f.inThread(t, "approved request")
	if got, rs := f.waitAudits(t, 2), f.requests(t); len(rs) != 1 || rs[0] != store.RequestApproved || got[1].outcome != "applied" {
		t.Fatalf("requests %v, audits %v: want one request, approved once", rs, got)
	}

	refused := interact.NewSocketMode(f.h, interact.SocketConfig{AppToken: "xapp-1-CANARY-wrong", APIURL: f.slack.APIURL()})
	rctx, rcancel := context.WithCancel(context.Background())
	rdone := make(chan struct{})
	go func() { defer close(rdone); refused.Run(rctx) }()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(f.logs.String(), "invalid_auth"), "the refused app token is not logged"
	})
	rcancel()
	<-rdone
}
