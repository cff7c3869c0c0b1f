package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/notify/notifytest"
	"github.com/settle-dev/settle/store"
)

// Canary secrets of the Slack app.
const (
	slackBotToken = "xoxb-CANARY-e2e-bot"
	slackAppToken = "xapp-1-CANARY-e2e-app"
	slackTeam     = "T0SETTLE"
)

// waitMessage waits for a message the fake Slack accepted that match
// accepts, and returns the latest version of it.
func waitMessage(t *testing.T, s *notifytest.Server, what string, match func(notifytest.Message) bool) notifytest.Message {
	t.Helper()
	var found notifytest.Message
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		for _, m := range s.Messages() {
			if latest, ok := s.Root(m.TS); ok && m.Method != "chat.postEphemeral" {
				m = latest
			}
			if match(m) {
				found = m
				return true, ""
			}
		}
		return false, "no " + what + " yet"
	})
	return found
}

// The operator story, from Slack: a frozen payout fails a settlement; its
// alert arrives with buttons; once the bank lifts the freeze operator A
// requests a replay, and A's own approval is refused; operator B approves;
// the settlement is SETTLED, the request's message says it was done, the
// alert is resolved in its thread, and settle audit list shows who asked,
// who approved and what happened. No secret shows anywhere.
func TestOperatorReplaysFromSlackWithASecondApproval(t *testing.T) {
	slack := notifytest.NewServer(t, slackBotToken, "/services/T0/B0/CANARYhook")
	slack.AcceptAppToken(slackAppToken)
	logs := &testenv.Buffer{}
	e := newEnvOpts(t, envOpts{log: logs, notify: fmt.Sprintf(`, slack: {bot_token: %q, channel: "#settle-alerts", api_url: %q,
    interactive: {mode: socket, app_token: %q, team_id: %s, approval_window: 15m,
      users: [{id: UALICE, role: approver, name: Alice}, {id: UBOB, role: approver}]}}`,
		slackBotToken, slack.APIURL(), slackAppToken, slackTeam)})
	clearSettleEnv(t)
	ctx := context.Background()
	c := e.frozenPayoutCustomer(t, 3_000_000)
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1})
	id := settlementID(t, e)

	alert := waitMessage(t, slack, "alert with buttons", func(m notifytest.Message) bool {
		return m.ThreadTS == "" && len(m.Buttons()) > 0
	})
	var labels []string
	for _, b := range alert.Buttons() {
		labels = append(labels, b.Text)
	}
	if strings.Join(labels, ",") != "Dry run,Request replay,Request compensate,Acknowledge" || !strings.Contains(alert.Text, "account frozen") {
		t.Fatalf("alert %q offers %v", alert.Text, labels)
	}

	if _, err := e.bank.SetState(ctx, c.Payout, banksim.StateActive, ""); err != nil { // the bank lifted the freeze
		t.Fatal(err)
	}
	slack.Interact(t, notifytest.ClickOn(t, alert, notify.ActionReplay.ID(), slackTeam, "UALICE").Payload())
	request := waitMessage(t, slack, "request in the alert's thread", func(m notifytest.Message) bool {
		return m.ThreadTS == alert.TS && len(m.Buttons()) == 1 && m.Buttons()[0].ActionID == notify.ActionApprove.ID()
	})
	if !strings.Contains(request.Text, fmt.Sprintf("$ settle replay %d --dry-run\ndry run: settlement %d would change as follows", id, id)) {
		t.Fatalf("the request does not show the dry run:\n%s", request.Text)
	}

	slack.Interact(t, notifytest.ClickOn(t, request, notify.ActionApprove.ID(), slackTeam, "UALICE").Payload())
	waitMessage(t, slack, "refusal of Alice's own approval", func(m notifytest.Message) bool {
		return m.Method == "chat.postEphemeral" && m.User == "UALICE" && strings.Contains(m.Text, "four eyes")
	})
	if st, _ := e.db.StatusCounts(ctx); st["FAILED"] != 1 {
		t.Fatalf("the requester's own approval changed something: %v", st)
	}

	slack.Interact(t, notifytest.ClickOn(t, request, notify.ActionApprove.ID(), slackTeam, "UBOB").Payload())
	e.waitSettled(t, map[string]int64{"SETTLED": 1})
	waitMessage(t, slack, "request marked done", func(m notifytest.Message) bool {
		return m.TS == request.TS && strings.Contains(m.Text, "approved and done") && len(m.Buttons()) == 0
	})
	waitMessage(t, slack, "resolution in the alert's thread", func(m notifytest.Message) bool {
		return m.ThreadTS == alert.TS && strings.HasPrefix(m.Text, "Resolved: ")
	})
	waitMessage(t, slack, "alert marked resolved", func(m notifytest.Message) bool {
		return m.TS == alert.TS && strings.Contains(m.Text, "Resolved") && len(m.Buttons()) == 0
	})
	settletest.CheckMoney(t, e.db, e.bank, "sandbox", rest.AttemptKey)
	checkBalance(t, e.bank, c.Payout, mustSettlement(t, e, id).Payout)

	text := e.cli(t, 0, "audit", "list", "--subject", fmt.Sprintf("settlement:%d", id))
	for _, want := range []string{"slack:T0SETTLE/UALICE  ", "request replay", "refused: request", "four eyes", "slack:T0SETTLE/UBOB  "} {
		if !strings.Contains(text, want) {
			t.Errorf("settle audit list does not show %q:\n%s", want, text)
		}
	}
	var rows []store.AuditRow
	if err := json.Unmarshal([]byte(e.cli(t, 0, "audit", "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	var approved bool
	for _, r := range rows {
		var args struct {
			RequestedBy string `json:"requested_by"`
			Request     int64  `json:"request"`
		}
		if err := json.Unmarshal(r.Args, &args); err != nil {
			t.Fatal(err)
		}
		if r.Actor == "slack:T0SETTLE/UBOB" && r.Command == "replay" && r.Outcome == store.AuditApplied &&
			args.RequestedBy == "slack:T0SETTLE/UALICE" && args.Request != 0 {
			approved = true
		}
	}
	if !approved {
		t.Errorf("no applied replay by UBOB naming UALICE's request:\n%s", mustJSON(t, rows))
	}

	var shown []string
	for _, m := range slack.Messages() {
		shown = append(shown, m.Text, m.Blocks)
	}
	for what, s := range map[string]string{"log": logs.String(), "Slack messages": strings.Join(shown, "\n"), "audit log": string(mustJSON(t, rows))} {
		if strings.Contains(s, "CANARY") {
			t.Errorf("the %s shows a secret:\n%s", what, s)
		}
	}
}

func mustSettlement(t *testing.T, e *env, id int64) store.SettlementDetail {
	t.Helper()
	d, err := e.db.GetSettlement(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// In http mode settle serve takes Slack's clicks at
// notify.slack.interactive.path on http.addr, outside the dashboard's
// credentials: a request Slack did not sign is refused 401, a signed click
// of someone not listed is refused to them alone and audited.
func TestServeTakesSlackClicksOverHTTP(t *testing.T) {
	const secret = "CANARYsigning-e2e-0123456789"
	slack := notifytest.NewServer(t, slackBotToken, "/services/T0/B0/CANARYhook")
	e := newEnvOpts(t, envOpts{http: `, user: ops, password: "CANARY-dashboard-pw"`,
		notify: fmt.Sprintf(`, slack: {bot_token: %q, channel: "#settle-alerts", api_url: %q,
    interactive: {mode: http, signing_secret: %q, path: /slack/clicks, team_id: %s, users: [{id: UBOB, role: approver}]}}`,
			slackBotToken, slack.APIURL(), secret, slackTeam)})
	clearSettleEnv(t)
	d := e.startDaemon(t)
	endpoint := "http://" + d.httpAddr() + "/slack/clicks"
	click := notifytest.Click{Team: slackTeam, User: "UEVE", TriggerID: "1.2.trig", ActionTS: "1795597300.000001",
		Button:  notifytest.Button{BlockID: notify.ActionsBlockID, ActionID: notify.ActionReplay.ID(), Value: "1", Text: "Request replay"},
		Message: notifytest.Message{Channel: notifytest.ChannelID, TS: "1795597200.000001"}}
	if status, err := notifytest.PostInteraction(endpoint, "forged-secret-0123456789", time.Now(), click.Payload()); err != nil || status != 401 {
		t.Fatalf("a forged request: %d %v", status, err)
	}
	if status, err := notifytest.PostInteraction(endpoint, secret, time.Now(), click.Payload()); err != nil || status != 200 {
		t.Fatalf("a signed click: %d %v", status, err)
	}
	waitMessage(t, slack, "refusal to UEVE", func(m notifytest.Message) bool {
		return m.Method == "chat.postEphemeral" && m.User == "UEVE" && strings.Contains(m.Text, "not in notify.slack.interactive.users")
	})
	rows, err := e.db.ListAudit(context.Background(), "settlement:1", 10)
	if err != nil || len(rows) != 1 || rows[0].Actor != "slack:T0SETTLE/UEVE" || rows[0].Outcome != store.AuditRefused {
		t.Fatalf("audit rows %+v %v", rows, err)
	}
}
