package notify

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Buttons on a failed settlement's alert and on the requests made from it
// (bot mode, notify.slack.interactive): notify renders them and the
// messages that answer a click; the interact package handles the clicks.

// Action is a button an operator may click.
type Action string

// The buttons. A request (replay, cancel, compensate) runs only once
// another operator approves it.
const (
	ActionDryRun      Action = "dry_run"     // show the dry run of what may be requested
	ActionReplay      Action = "replay"      // request a replay
	ActionCancel      Action = "cancel"      // request a cancel
	ActionCompensate  Action = "compensate"  // request a compensation
	ActionAcknowledge Action = "acknowledge" // say someone is on it
	ActionApprove     Action = "approve"     // approve another operator's request
)

// actionPrefix starts the action_id of every settle button.
const actionPrefix = "settle:"

// ID is the button's action_id, "settle:replay".
func (a Action) ID() string { return actionPrefix + string(a) }

// ParseActionID returns the action of a settle button's action_id.
func ParseActionID(id string) (Action, bool) {
	a, ok := strings.CutPrefix(id, actionPrefix)
	switch Action(a) {
	case ActionDryRun, ActionReplay, ActionCancel, ActionCompensate, ActionAcknowledge, ActionApprove:
		return Action(a), ok
	}
	return "", false
}

// Requests reports whether the action requests a settlement command.
func (a Action) Requests() bool {
	return a == ActionReplay || a == ActionCancel || a == ActionCompensate
}

// Label is the button's text.
func (a Action) Label() string {
	switch {
	case a == ActionDryRun:
		return "Dry run"
	case a.Requests():
		return "Request " + string(a)
	}
	return strings.ToUpper(string(a[:1])) + string(a[1:])
}

// ActionsBlockID is the block ID of an alert's buttons.
const ActionsBlockID = "settle:actions"

// actions adds a row of buttons, each carrying value.
func (b *builder) actions(blockID, value string, as []Action, confirm *slack.ConfirmationBlockObject) {
	if len(as) == 0 {
		return
	}
	els := make([]slack.BlockElement, len(as))
	for i, a := range as {
		btn := slack.NewButtonBlockElement(a.ID(), value, slack.NewTextBlockObject(slack.PlainTextType, a.Label(), false, false))
		if a == ActionApprove {
			btn = btn.WithStyle(slack.StylePrimary).WithConfirm(confirm)
		}
		els[i] = btn
	}
	b.blocks = append(b.blocks, slack.NewActionBlock(blockID, els...))
}

var memberID = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

// Mention is how a Slack user is named in a message: <@U0123> for a
// member ID, anything else shown escaped as it is.
func Mention(user string) string {
	if memberID.MatchString(user) {
		return "<@" + user + ">"
	}
	return escape(user)
}

// DryRun is one command's dry run, as the CLI prints it.
type DryRun struct {
	Command string // the command line, "settle replay 42 --dry-run"
	Output  string // what it printed, or why it was refused
}

// RenderDryRuns is the answer to a Dry run click, in the alert's thread:
// each command and exactly what it prints.
func RenderDryRuns(user string, runs []DryRun) Message {
	var b builder
	lead := "Dry run for " + Mention(user) + ": nothing was changed."
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(":mag: "+lead), nil, nil))
	b.text = append(b.text, "Dry run: nothing was changed.")
	for _, r := range runs {
		b.code(r.Command, r.Output)
	}
	return b.message()
}

// code adds a command and its output in a code block.
func (b *builder) code(command, output string) {
	body := "$ " + command + "\n" + strings.TrimRight(output, "\n")
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut("```"+escape(body)+"```", maxSection)), nil, nil))
	b.text = append(b.text, escape(body))
}

// RequestState is where a request stands.
type RequestState string

// The states a request's message shows.
const (
	RequestPending RequestState = "pending" // waiting for an approver
	RequestApplied RequestState = "applied" // approved; the command ran
	RequestExpired RequestState = "expired" // approved too late: nothing ran
	RequestChanged RequestState = "changed" // the settlement changed since: nothing ran
)

// Request is a request for a settlement command, as its message in the
// alert's thread shows it.
type Request struct {
	ID           int64
	SettlementID int64
	Action       Action // ActionReplay, ActionCancel or ActionCompensate
	Requester    string // Slack member ID
	Approver     string // Slack member ID, once approved
	// DryRun is the command's dry run as it prints it, when requested.
	DryRun    string
	Window    time.Duration
	ExpiresAt time.Time
	State     RequestState
	// Outcome is what the command printed when it ran (applied), or why
	// nothing ran.
	Outcome string
	// Now is the dry run again, when the settlement changed.
	Now string
}

func (r Request) command(dryRun bool) string {
	c := fmt.Sprintf("settle %s %d", r.Action, r.SettlementID)
	if dryRun {
		c += " --dry-run"
	}
	return c
}

// RenderRequest is a request's message: while pending, the dry run and
// the Approve button; once decided, the outcome (chat.update).
func RenderRequest(r Request) Message {
	var b builder
	what := fmt.Sprintf("%s of settlement %d", r.Action, r.SettlementID)
	switch r.State {
	case RequestPending:
		lead := fmt.Sprintf(":hourglass_flowing_sand: %s requests *%s*. It runs only when another approver approves it, by %s (%s), "+
			"and only if the settlement is then as this dry run found it:", Mention(r.Requester), what, slackDate(r.ExpiresAt), span(r.Window))
		b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(lead), nil, nil))
		b.text = append(b.text, fmt.Sprintf("Request %d: %s, waiting for approval until %s.", r.ID, what, clock(r.ExpiresAt)))
		b.code(r.command(true), r.DryRun)
		confirm := slack.NewConfirmationBlockObject(
			slack.NewTextBlockObject(slack.PlainTextType, "Approve "+string(r.Action)+"?", false, false),
			mrkdwn(cut(fmt.Sprintf("This runs `%s` now, as the dry run above shows.", r.command(false)), 300)),
			slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false),
			slack.NewTextBlockObject(slack.PlainTextType, "Not now", false, false))
		b.actions(fmt.Sprintf("settle:request:%d", r.ID), strconv.FormatInt(r.ID, 10), []Action{ActionApprove}, confirm)
	case RequestApplied:
		lead := fmt.Sprintf(":white_check_mark: *%s*: requested by %s, approved by %s and done.", capitalize(what), Mention(r.Requester), Mention(r.Approver))
		b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(lead), nil, nil))
		b.text = append(b.text, fmt.Sprintf("Request %d: %s approved and done.", r.ID, what))
		b.code(r.command(false), r.Outcome)
	default:
		head := "expired: nothing was run"
		if r.State == RequestChanged {
			head = "not run: the settlement changed since the request"
		}
		lead := fmt.Sprintf(":no_entry: *%s* requested by %s: %s.\n%s", capitalize(what), Mention(r.Requester), head, escape(r.Outcome))
		b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut(lead, maxSection)), nil, nil))
		b.text = append(b.text, fmt.Sprintf("Request %d: %s %s. %s", r.ID, what, head, escape(r.Outcome)))
		if r.Now != "" {
			b.code(r.command(true), r.Now)
		}
	}
	b.context(fmt.Sprintf("Request %d · every click is in `settle audit list --subject settlement:%d`", r.ID, r.SettlementID),
		fmt.Sprintf("Request %d · settle audit list --subject settlement:%d", r.ID, r.SettlementID))
	return b.message()
}

// RenderNote is a short message naming users: a refusal shown to one
// user, an acknowledgement, who is told what in a thread. text is plain.
func RenderNote(users []string, text string) Message {
	var b builder
	var names []string
	for _, u := range users {
		names = append(names, Mention(u))
	}
	md := strings.TrimSpace(strings.Join(names, " ") + " " + escape(text))
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut(md, maxSection)), nil, nil))
	b.text = append(b.text, escape(text))
	return b.message()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
