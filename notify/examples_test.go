package notify_test

import (
	"strings"
	"time"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
)

// t0 is when the examples happen; fixed, so the golden files are stable.
var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func krw(n int64) pipeline.Money { return pipeline.Money{Amount: n, Currency: "KRW"} }

// refusedAlert is a settlement whose payout the bank refused: the account
// is frozen.
func refusedAlert() notify.Alert {
	return notify.Alert{
		ID: 17, ProblemKey: "settlement:42:account_frozen", Kind: pipeline.AlertKindSettlementFailed, Severity: pipeline.SeverityCritical,
		SettlementID: 42,
		Summary:      "Settlement 42 failed at PAYOUT (step 4 of customer 7): account_frozen",
		Detail:       "bank refused the transfer: account_frozen: account 110-234-567890 is frozen",
		Action:       "settle settlements show 42",
		CreatedAt:    t0.Add(12 * time.Second),
		Customer:     "cust-0042", PayoutAccount: "110234567890", Provider: "sandbox", Deposit: krw(2_000_000),
		Step: &notify.Step{
			Kind: "PAYOUT", Seq: 4, Status: "FAILED", Amount: krw(1_185_000), From: "SETTLE-COLLECTION", To: "110234567890",
			Attempts: 1, FirstTry: t0.Add(11 * time.Second),
			LastError:   "bank refused the transfer: account_frozen: account 110-234-567890 is frozen",
			BankCode:    "account_frozen",
			BankMessage: "bank refused the transfer: account_frozen: account 110-234-567890 is frozen",
		},
	}
}

// engineAccountAlert is a settlement whose FEE the bank refused: the fee
// account the configuration names does not exist there.
func engineAccountAlert() notify.Alert {
	return notify.Alert{
		ID: 20, ProblemKey: "settlement:44:no_such_account", Kind: pipeline.AlertKindSettlementFailed, Severity: pipeline.SeverityCritical,
		SettlementID: 44,
		Summary: "Settlement 44 failed at FEE (step 4 of customer 9): no_such_account at the engine's own account " +
			"providers[0].accounts.fee: fix the configuration, not the customer",
		Detail: "bank refused the transfer: no_such_account: the account does not exist; the account is the engine's own: " +
			"fix providers[0].accounts.fee",
		Action:    "settle providers check --provider sandbox",
		ConfigKey: "providers[0].accounts.fee",
		CreatedAt: t0.Add(20 * time.Second),
		Customer:  "cust-0044", PayoutAccount: "3333-01-9988776", Provider: "sandbox", Deposit: krw(2_500_000),
		Step: &notify.Step{
			Kind: "FEE", Seq: 4, Status: "FAILED", Amount: krw(25_000), From: "SETTLE-COLLECTION", To: "SETTLE-FEEE",
			Attempts: 1, FirstTry: t0.Add(19 * time.Second),
			LastError: "bank refused the transfer: no_such_account: the account does not exist",
			BankCode:  "no_such_account", BankMessage: "the account does not exist",
		},
	}
}

// outOfAttemptsAlert is a settlement whose sweep never got through.
func outOfAttemptsAlert() notify.Alert {
	return notify.Alert{
		ID: 18, ProblemKey: "settlement:43:out_of_attempts", Kind: pipeline.AlertKindSettlementFailed, Severity: pipeline.SeverityCritical,
		SettlementID: 43,
		Summary:      "Settlement 43 failed at SWEEP (step 1 of customer 8): out_of_attempts",
		Detail:       "out of attempts (5): bank unavailable, nothing done (HTTP 503)",
		Action:       "settle settlements show 43",
		CreatedAt:    t0.Add(4 * time.Minute),
		Customer:     "cust-0043", PayoutAccount: "3333-01-4455667", Provider: "sandbox", Deposit: krw(3_000_000),
		Step: &notify.Step{
			Kind: "SWEEP", Seq: 1, Status: "DEAD", Amount: krw(3_000_000), From: "90001234567890", To: "SETTLE-COLLECTION",
			Attempts: 5, FirstTry: t0.Add(-11 * time.Minute),
			LastError: "out of attempts (5): bank unavailable, nothing done (HTTP 503)",
		},
	}
}

// fromRaised is an alert as a job raised it, read back from the outbox.
func fromRaised(id int64, at time.Time, a pipeline.Alert) notify.Alert {
	return notify.Alert{
		ID: id, ProblemKey: a.ProblemKey, Kind: a.Kind, Severity: a.Severity, SettlementID: a.SettlementID,
		Summary: a.Summary, Detail: a.Detail, Action: a.Action, CreatedAt: at,
	}
}

// stuckAlert is a payout whose outcome the bank has not told for 35
// minutes, as the sweep raises it.
func stuckAlert() notify.Alert {
	a := fromRaised(21, t0.Add(35*time.Minute), notify.StuckAlert(notify.Stuck{
		ProblemKey: "settlement:44:step:213:stuck", SettlementID: 44, Seq: 5, Kind: "PAYOUT",
		Attempt: 1, Key: "settle-s213-a1", Since: t0, For: 35 * time.Minute,
	}))
	a.Customer, a.PayoutAccount, a.Provider, a.Deposit = "cust-0044", "110987654321", "legacy-bank", krw(2_500_000)
	a.Step = &notify.Step{
		Kind: "PAYOUT", Seq: 5, Status: "RUNNING", Amount: krw(2_450_000), From: "SETTLE-COLLECTION", To: "110987654321",
		Attempts: 1, FirstTry: t0,
		LastError: "outcome unknown: context deadline exceeded",
	}
	return a
}

// unstuckAlert follows up stuckAlert once the bank confirmed the payout.
func unstuckAlert() notify.Alert {
	stuck := stuckAlert()
	return notify.Alert{
		ID: 24, ProblemKey: stuck.ProblemKey, Kind: pipeline.AlertKindResolved, Severity: pipeline.SeverityInfo,
		SettlementID: 44,
		Summary:      "Resolved: " + stuck.Summary,
		Detail:       notify.UnstuckNote(notify.Unstuck{Seq: 5, Kind: "PAYOUT", Status: "DONE", Attempt: 1, Transfer: "SUCCEEDED"}),
		CreatedAt:    t0.Add(41 * time.Minute),
		Customer:     "cust-0044", PayoutAccount: "110987654321", Provider: "legacy-bank", Deposit: krw(2_500_000),
	}
}

// invariantAlert is a check that settle verify found broken for seven
// settlements.
func invariantAlert() notify.Alert {
	var vs []notify.Violation
	for i := range int64(7) {
		vs = append(vs, notify.Violation{SettlementID: 300 + 7*i, Detail: "step 4 is DONE but step 3 before it is READY"})
	}
	return fromRaised(25, t0.Add(time.Hour), notify.InvariantAlert("steps_in_order", vs))
}

// summaryAlert is the daily summary of a payday, at 08:00 in Seoul.
func summaryAlert() notify.Alert {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		panic(err)
	}
	to := time.Date(2026, 11, 25, 8, 0, 0, 0, seoul)
	return fromRaised(31, to.Add(2*time.Second), notify.DailySummaryAlert(notify.DailySummary{
		From: to.Add(-24 * time.Hour), To: to, Location: seoul,
		Settled: []notify.Settled{{Count: 1204, Total: krw(2_845_600_000)}},
		Failed:  3, FailedNow: 2, Open: 17,
		Oldest: &notify.OpenSettlement{ID: 412, Status: "FAILED", Customer: "cust-0412",
			CreatedAt: time.Date(2026, 11, 20, 18, 12, 40, 0, seoul)},
	}))
}

// resolvedAlert follows up refusedAlert once the settlement was replayed.
func resolvedAlert() notify.Alert {
	return notify.Alert{
		ID: 23, ProblemKey: "settlement:42:account_frozen", Kind: pipeline.AlertKindResolved, Severity: pipeline.SeverityInfo,
		SettlementID: 42,
		Summary:      "Resolved: Settlement 42 failed at PAYOUT (step 4 of customer 7): account_frozen",
		Detail:       "settlement 42 is SETTLED",
		CreatedAt:    t0.Add(2 * time.Hour),
		Customer:     "cust-0042", PayoutAccount: "110234567890", Provider: "sandbox", Deposit: krw(2_000_000),
	}
}

func storm(count, folded int) *notify.Storm {
	return &notify.Storm{
		Key: "storm:settlement_failed:sandbox", Kind: pipeline.AlertKindSettlementFailed, Provider: "sandbox",
		Count: count, Window: 5 * time.Minute, Threshold: 20,
		Causes:      []notify.CauseCount{{Cause: "out_of_attempts", Count: count - 3}, {Cause: "account_frozen", Count: 3}},
		Severity:    pipeline.SeverityCritical,
		Settlements: []int64{512, 511, 510, 509, 508},
		Folded:      folded, Since: t0,
		Action: "settle settlements list --status FAILED",
	}
}

// example is one message operators may get: the golden files and
// docs/alerts.md show each.
type example struct {
	name  string // file name stem under testdata/
	title string // heading in docs/alerts.md
	when  string // when it is sent
	reply bool   // a follow-up (RenderReply) rather than a first message (Render)
	n     notify.Notice
	// msg, when set, renders a message of the Slack buttons instead of n;
	// such a message exists in bot mode only, so it has no log line.
	msg func() notify.Message
}

// The dry runs of a replay and a compensation of refusedAlert's
// settlement, as settle replay and settle compensate print them.
const (
	replayDryRun = `dry run: settlement 42 would change as follows; nothing was changed
  settlement 42: FAILED → RUNNING
  step 213 (PAYOUT, seq 4): FAILED → READY, attempts reset
  the bank refused attempt 1 (account_frozen): attempt 2 with the new key settle-s213-a2 will be sent
`
	compensateDryRun = `dry run: settlement 42 would change as follows; nothing was changed
  settlement 42: FAILED → COMPENSATING; steps not done are CANCELLED
  new step seq 101: REVERSE 15000 from ****-FEE back to ****TION (undoes step 212)
  new step seq 102: REVERSE 800000 from ****NDER back to ****TION (undoes step 211)
  new step seq 103: REVERSE 2000000 from ****TION back to ****4321 (undoes step 210)
`
	replayDone = `  settlement 42: FAILED → RUNNING
  step 213 (PAYOUT, seq 4): FAILED → READY, attempts reset
  the bank refused attempt 1 (account_frozen): attempt 2 with the new key settle-s213-a2 will be sent
  step 213 is queued for a worker
`
)

// request is the replay U0KIM asks for from refusedAlert, as its message
// shows it.
func request(state notify.RequestState) notify.Request {
	return notify.Request{ID: 7, SettlementID: 42, Action: notify.ActionReplay, Requester: "U0KIM", DryRun: replayDryRun,
		Window: 15 * time.Minute, ExpiresAt: t0.Add(2*time.Hour + 15*time.Minute), State: state}
}

// interactive are the messages of the Slack buttons: an alert with them,
// what each click answers, and a request from asking to done.
func interactive(refused notify.Alert) []example {
	done := request(notify.RequestApplied)
	done.Approver, done.Outcome = "U0LEE", replayDone
	changed := request(notify.RequestChanged)
	changed.Outcome = "settlement 42 changed since request 7 by slack:T0123ABCD/U0KIM: the dry run now differs from the one the request showed; " +
		"nothing was run: request it again for a new dry run"
	changed.Now = strings.Replace(replayDryRun, "  the bank refused",
		"  step 213 (PAYOUT, seq 4): to payout ****7890 → ****2468\n  the bank refused", 1)
	expired := request(notify.RequestExpired)
	expired.Outcome = "request 7 by slack:T0123ABCD/U0KIM expired at 2026-11-25 11:15:00 UTC, 15m0s after it was made " +
		"(by the database's clock): nothing was run; request it again"
	buttons := []notify.Action{notify.ActionDryRun, notify.ActionReplay, notify.ActionCompensate, notify.ActionAcknowledge}
	return []example{
		{name: "interactive_alert", title: "Settlement failed, with buttons (bot mode, `notify.slack.interactive`)",
			when: "With `notify.slack.interactive` on, a failed settlement's alert offers *Dry run*, a *Request* button for each of replay, cancel and compensate that its state allows " +
				"(each one's dry run passes; here the payout failed after money moved, so cancel is not offered), and *Acknowledge*. The buttons are worked out again each time the message is rewritten, and go once it is resolved.",
			msg: func() notify.Message {
				return notify.Render(notify.Notice{Alert: refused, Occurrences: 1, FirstAt: refused.CreatedAt, Actions: buttons})
			}},
		{name: "interactive_dry_run", title: "Dry run", reply: true,
			when: "*Dry run* (any listed user, a viewer too) posts in the alert's thread exactly what `settle replay --dry-run` (and `settle compensate --dry-run`, …) prints for the commands the alert offers. Nothing changes; the click is audited.",
			msg: func() notify.Message {
				return notify.RenderDryRuns("U0PARK", []notify.DryRun{
					{Command: "settle replay 42 --dry-run", Output: replayDryRun},
					{Command: "settle compensate 42 --dry-run", Output: compensateDryRun}})
			}},
		{name: "interactive_request", title: "Request, waiting for approval", reply: true,
			when: "*Request replay* (an operator or approver) records the request with its dry run and posts it in the alert's thread. It runs only when a different user with the approver role clicks *Approve* (Slack asks them to confirm) within `notify.slack.interactive.approval_window`, by the database's clock.",
			msg:  func() notify.Message { return notify.RenderRequest(request(notify.RequestPending)) }},
		{name: "interactive_own_approval", title: "The requester's own approval, refused", reply: true,
			when: "Shown only to whoever clicked: the requester clicking *Approve*, anyone not in `notify.slack.interactive.users`, or a role that may not do what was clicked (a viewer requesting, an operator approving). Nothing changes; the click is audited as refused.",
			msg: func() notify.Message {
				return notify.RenderNote(nil, "Refused, nothing was run: request 7 was made by slack:T0123ABCD/U0KIM, who cannot approve it: a second operator must (four eyes)")
			}},
		{name: "interactive_done", title: "Request approved and done", reply: true,
			when: "A second approver approved: the replay ran through the same store operation as `settle replay`, in the transaction that approved the request, and its step was queued. The request's message is rewritten with what the command printed; a reply in the thread tells the requester. The alert resolves, as ever, when the settlement does.",
			msg:  func() notify.Message { return notify.RenderRequest(done) }},
		{name: "interactive_changed", title: "Settlement changed since the request", reply: true,
			when: "The approval found the settlement no longer as the request's dry run did (here the customer's payout account was changed meanwhile): nothing ran, the request is closed, its message shows the dry run as it is now, and the thread tells both operators why. Ask again to approve the new dry run.",
			msg:  func() notify.Message { return notify.RenderRequest(changed) }},
		{name: "interactive_expired", title: "Request expired", reply: true,
			when: "An approval after the window runs nothing: the approver is told, the request is closed and its message says so.",
			msg:  func() notify.Message { return notify.RenderRequest(expired) }},
	}
}

func examples() []example {
	refused := refusedAlert()
	repeated := refusedAlert()
	repeated.ID, repeated.CreatedAt = 19, t0.Add(40*time.Minute)
	out := []example{
		{name: "failed_refused", title: "Settlement failed: refused by the bank",
			when: "A bank refused a transfer for good (frozen, closed or unknown account, holder name mismatch, insufficient funds). The settlement is FAILED and waits for an operator. " +
				"When the refused account is one of the engine's (a SWEEP, REPAY, HOLD or FEE) the fix says to put it right at the bank or, if the configuration names the wrong account, " +
				"to correct `providers[].accounts` and replay: replay reads the configured accounts again and sends to them with a new key (`settle replay ID --dry-run` shows old → new).",
			n: notify.Notice{Alert: refused, Occurrences: 1, FirstAt: refused.CreatedAt}},
		{name: "failed_engine_account", title: "Settlement failed: the bank refused an engine account",
			when: "The refused account is one of the engine's own (`providers[].accounts`), not the customer's: it does not exist at the bank, or is closed or frozen. The alert names the configuration key to fix; `settle providers check` confirms the fix, and `settle serve` runs that check at start.",
			n:    notify.Notice{Alert: engineAccountAlert(), Occurrences: 1, FirstAt: engineAccountAlert().CreatedAt}},
		{name: "failed_out_of_attempts", title: "Settlement failed: out of attempts",
			when: "A step kept failing without a definite answer (bank unavailable, rate-limited, unusable answers) until it ran out of attempts. The step is DEAD and the settlement FAILED.",
			n:    notify.Notice{Alert: outOfAttemptsAlert(), Occurrences: 1, FirstAt: outOfAttemptsAlert().CreatedAt}},
		{name: "stuck_unknown_outcome", title: "Transfer stuck: outcome unknown",
			when: "The bank took a transfer but has not said whether it completed for longer than `sweep.stuck_after` (alert kind `step_stuck`, raised by the sweep once per step). settle keeps asking the bank's status call and never re-sends on its own.",
			n:    notify.Notice{Alert: stuckAlert(), Occurrences: 1, FirstAt: stuckAlert().CreatedAt}},
		{name: "stuck_resolved", title: "Transfer stuck: outcome known again", reply: true,
			when: "The sweep learned the stuck transfer's outcome (here the bank confirmed it); the step's problem is resolved with what happened.",
			n:    notify.Notice{Alert: unstuckAlert()}},
		{name: "invariant_violation", title: "Invariant broken",
			when: "`settle verify`, or its scheduled run in `settle serve` (`verify.schedule`), found a money invariant broken. One problem per check: the same violations raise nothing new, changed ones update the message, and the first check that finds the invariant holding resolves it.",
			n:    notify.Notice{Alert: invariantAlert(), Occurrences: 1, FirstAt: invariantAlert().CreatedAt}},
		{name: "daily_summary", title: "Daily summary",
			when: "Every day at `notify.daily_summary` (08:00 in `time_zone` by default): the settlements of the last 24 hours, the failures, and the oldest settlement still open. One message per date.",
			n:    notify.Notice{Alert: summaryAlert(), Occurrences: 1, FirstAt: summaryAlert().CreatedAt}},
		{name: "storm_summary", title: "Storm summary",
			when: "More than `notify.storm_threshold` alerts of one kind at one provider came within `notify.storm_window`: one summary is sent instead of each alert, and the alerts are marked delivered with it.",
			n:    notify.Notice{Storm: storm(214, 214)}},
		{name: "resolved", title: "Resolved", reply: true,
			when: "The problem was resolved (`store.ResolveProblem`, for example after a successful replay). Bot mode replies in the problem's thread and marks the first message resolved (below); webhook mode posts this on its own.",
			n:    notify.Notice{Alert: resolvedAlert()}},
		{name: "resolved_first_message", title: "First message, once resolved (bot mode)",
			when: "Bot mode rewrites the problem's first message with `chat.update` when the problem is resolved.",
			n:    notify.Notice{Alert: refused, Occurrences: 3, FirstAt: refused.CreatedAt, Resolved: &notify.Resolution{At: resolvedAlert().CreatedAt, Note: resolvedAlert().Detail}}},
		{name: "repeated", title: "Repeated", reply: true,
			when: "The same problem (same problem key) was raised again. Bot mode rewrites the first message with the count and replies in its thread; webhook mode posts this line. Either way at most once per `notify.repeat_interval`; repeats in between are counted, not sent.",
			n:    notify.Notice{Alert: repeated, Occurrences: 3, FirstAt: refused.CreatedAt}},
		{name: "storm_goes_on", title: "Storm goes on", reply: true,
			when: "More alerts of a storm came: bot mode rewrites the summary and replies in its thread, webhook mode posts this line, at most once per `notify.repeat_interval`.",
			n:    notify.Notice{Storm: storm(320, 480)}},
	}
	return append(out, interactive(refused)...)
}

func (e example) render() notify.Message {
	if e.msg != nil {
		return e.msg()
	}
	if e.reply {
		return notify.RenderReply(e.n)
	}
	return notify.Render(e.n)
}
