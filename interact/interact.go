// Package interact lets operators act on a failed settlement from its
// Slack alert (bot mode, notify.slack.interactive): the alert's buttons
// show the dry run of a replay, cancel or compensate and request one; the
// request runs only when a different operator with the approver role
// approves it within the approval window, and only if the settlement is
// still as the request's dry run found it (four eyes).
//
// Every command runs through the store's operator commands, the very ones
// settle replay, cancel and compensate run (Op), so it refuses, audits and
// dry-runs as they do; a request and its approval are rows of
// approval_requests (store.RequestApproval, store.Audit.Approves), so they
// survive a restart and any replica may take the approval. Every click,
// allowed, refused or too late, writes an audit row naming the Slack user
// and team (actor slack:T…/U…), and a click Slack delivers twice acts once
// (store.Audit.Click).
//
// Clicks arrive over Socket Mode (SocketMode) or at an HTTP interactivity
// endpoint verified with the app's signing secret (Handler.HTTP). notify
// renders the messages; this package decides.
package interact

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Role is what a Slack user may do; each allows what the one before does.
type Role int

// The roles (config.SlackViewer, SlackOperator, SlackApprover).
const (
	NoRole   Role = iota
	Viewer        // dry runs
	Operator      // and acknowledge, and request a command
	Approver      // and approve another operator's request
)

// ParseRole reads a role as the configuration names it.
func ParseRole(s string) (Role, bool) {
	switch s {
	case "viewer":
		return Viewer, true
	case "operator":
		return Operator, true
	case "approver":
		return Approver, true
	}
	return NoRole, false
}

func (r Role) String() string {
	switch r {
	case Viewer:
		return "a viewer"
	case Operator:
		return "an operator"
	case Approver:
		return "an approver"
	}
	return "nobody listed"
}

// Op is a settlement command as `settle replay`, `settle cancel` or
// `settle compensate` runs it, with the configuration loaded.
type Op func(ctx context.Context, id int64, a store.Audit, dryRun bool) (store.Outcome, error)

// Poster is how the handler answers in Slack (notify.Bot).
type Poster interface {
	PostInThread(ctx context.Context, thread notify.Ref, m notify.Message) (notify.Ref, error)
	Edit(ctx context.Context, ref notify.Ref, m notify.Message) error
	PostEphemeral(ctx context.Context, ref notify.Ref, user string, m notify.Message) error
}

// Config is what the handler needs.
type Config struct {
	DB    *store.DB
	Slack Poster
	// Ops are the commands a request may ask for: notify.ActionReplay,
	// ActionCancel and ActionCompensate.
	Ops map[notify.Action]Op
	// Wake queues a step an approved command made READY and says so; the
	// READY relay queues it anyway if this fails.
	Wake func(context.Context, pipeline.StepRef) string
	// TeamID is the workspace clicks must come from.
	TeamID string
	// Users maps Slack member IDs to their roles; anyone else is refused.
	Users map[string]Role
	// Window is how long a request may be approved (default 15m).
	Window time.Duration
	// Timeout bounds the handling of one click (default 30s).
	Timeout time.Duration
	// Concurrency is how many clicks are handled at once (default 8).
	Concurrency int
	Logger      *slog.Logger
}

// Handler decides what a click does. Handle and Go are safe for
// concurrent use.
type Handler struct {
	cfg  Config
	sem  chan struct{}
	wg   sync.WaitGroup
	base context.Context
	stop context.CancelFunc
}

// New returns a handler.
func New(cfg Config) *Handler {
	cfg.Window = cmp.Or(cfg.Window, 15*time.Minute)
	cfg.Timeout = cmp.Or(cfg.Timeout, 30*time.Second)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 8)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	base, stop := context.WithCancel(context.Background())
	return &Handler{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), base: base, stop: stop}
}

// Go handles an interaction in the background, once Slack has been
// answered (Slack wants an answer within 3 seconds); Close waits for it.
func (h *Handler) Go(cb slack.InteractionCallback) {
	h.wg.Go(func() {
		select {
		case h.sem <- struct{}{}:
		case <-h.base.Done():
			return
		}
		defer func() { <-h.sem }()
		ctx, cancel := context.WithTimeout(h.base, h.cfg.Timeout)
		defer cancel()
		h.Handle(ctx, cb)
	})
}

// Close waits for the clicks under way, at most until ctx ends, then
// cancels them.
func (h *Handler) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	h.stop()
	<-done
}

// requestable are the commands a request may ask for, in the order their
// buttons show.
var requestable = []notify.Action{notify.ActionReplay, notify.ActionCancel, notify.ActionCompensate}

// Actions are the buttons a failed settlement's alert shows: Dry run,
// a request for each command its settlement's state allows (its dry run
// passes), and Acknowledge. Other alerts have none
// (jobs.AlertDeliveryConfig.Actions).
func (h *Handler) Actions(ctx context.Context, a notify.Alert) []notify.Action {
	if a.Kind != pipeline.AlertKindSettlementFailed || a.SettlementID == 0 {
		return nil
	}
	out := []notify.Action{notify.ActionDryRun}
	for _, r := range h.dryRuns(ctx, a.SettlementID, store.Audit{Actor: "settle", Reason: "which buttons the alert shows"}) {
		if r.err == nil {
			out = append(out, r.action)
		}
	}
	return append(out, notify.ActionAcknowledge)
}

// dryRun is one command's dry run on a settlement.
type dryRun struct {
	action notify.Action
	out    store.Outcome
	err    error // nil when the settlement's state allows the command
}

// dryRuns runs the dry run of each command a request may ask for, as who
// a names.
func (h *Handler) dryRuns(ctx context.Context, id int64, a store.Audit) []dryRun {
	var out []dryRun
	for _, act := range requestable {
		if op, ok := h.cfg.Ops[act]; ok {
			a.Command = string(act)
			r := dryRun{action: act}
			r.out, r.err = op(ctx, id, a, true)
			out = append(out, r)
		}
	}
	return out
}

// click is one click on a settle button, as the handler reads it.
type click struct {
	action       notify.Action
	value        string
	team, user   string
	actor        string     // slack:<team>/<user>, as the audit log names them
	id           string     // the click's own ID: a second delivery has the same
	thread       notify.Ref // the thread to answer in: the alert's
	where        notify.Ref // where the button is, for answers to the clicker alone
	triggerID    string
	actionTS     string
	channel, msg string
}

var (
	slackID   = regexp.MustCompile(`^[A-Z0-9]{2,24}$`)
	clickPart = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// Handle acts on one interaction: each settle button clicked in it.
// Anything else is ignored. Outcomes are told in Slack and audited;
// failures are logged.
func (h *Handler) Handle(ctx context.Context, cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, ba := range cb.ActionCallback.BlockActions {
		c, ok := readClick(cb, ba)
		if !ok {
			h.cfg.Logger.WarnContext(ctx, "slack: ignored a click that is not a settle button or names no user, team or trigger",
				"action_id", ba.ActionID)
			continue
		}
		h.click(ctx, c)
	}
}

func readClick(cb slack.InteractionCallback, ba *slack.BlockAction) (click, bool) {
	action, ok := notify.ParseActionID(ba.ActionID)
	team, user := cmp.Or(cb.Team.ID, cb.User.TeamID), cb.User.ID
	actionTS := cmp.Or(ba.ActionTs, cb.ActionTs)
	if !ok || !slackID.MatchString(team) || !slackID.MatchString(user) ||
		!clickPart.MatchString(cb.TriggerID) || !clickPart.MatchString(actionTS) {
		return click{}, false
	}
	channel := cmp.Or(cb.Container.ChannelID, cb.Channel.ID)
	msg := cmp.Or(cb.Container.MessageTs, cb.Message.Timestamp)
	thread := cmp.Or(cb.Container.ThreadTs, cb.Message.ThreadTimestamp, msg)
	var where notify.Ref
	if thread != msg {
		where = notify.Ref{Channel: channel, TS: thread}
	} else {
		where = notify.Ref{Channel: channel}
	}
	return click{
		action: action, value: ba.Value, team: team, user: user,
		actor:     "slack:" + team + "/" + user,
		id:        "slack:" + team + ":" + cb.TriggerID + ":" + actionTS,
		thread:    notify.Ref{Channel: channel, TS: thread},
		where:     where,
		triggerID: cb.TriggerID, actionTS: actionTS, channel: channel, msg: msg,
	}, true
}

// audit is the audit record of the click as command, with args beside who
// clicked where.
func (c click) audit(command, reason string, args map[string]any) store.Audit {
	all := map[string]any{"slack": map[string]any{
		"team": c.team, "user": c.user, "channel": c.channel, "message_ts": c.msg,
		"trigger_id": c.triggerID, "action_ts": c.actionTS, "button": string(c.action),
	}}
	for k, v := range args {
		all[k] = v
	}
	return store.Audit{Actor: c.actor, Command: command, Args: all, Reason: reason, Click: c.id}
}

// needs is the role each button needs.
func needs(a notify.Action) Role {
	switch {
	case a == notify.ActionDryRun:
		return Viewer
	case a == notify.ActionApprove:
		return Approver
	}
	return Operator
}

func (h *Handler) click(ctx context.Context, c click) {
	if c.action == notify.ActionApprove {
		h.approve(ctx, c)
		return
	}
	id, err := strconv.ParseInt(c.value, 10, 64)
	command := string(c.action)
	switch {
	case c.action == notify.ActionDryRun:
		command = "dry run"
	case c.action.Requests():
		command = "request " + command
	}
	if err != nil || id <= 0 {
		h.cfg.Logger.WarnContext(ctx, "slack: ignored a click on a button without a settlement", "action", c.action)
		return
	}
	subject := fmt.Sprintf("settlement:%d", id)
	a := c.audit(command, fmt.Sprintf("Slack: %s on the alert of settlement %d", c.action.Label(), id), map[string]any{"settlement": id})
	if !h.may(ctx, c, a, subject) {
		return
	}
	switch {
	case c.action == notify.ActionDryRun:
		h.dryRun(ctx, c, a, subject, id)
	case c.action == notify.ActionAcknowledge:
		if h.record(ctx, c, a, subject, nil) {
			h.tell(ctx, c, nil, "acknowledged the alert: they are on it", true)
		}
	case c.action.Requests():
		h.request(ctx, c, a, subject, id)
	}
}

// may reports whether the click comes from the configured workspace and a
// user whose role allows its button; if not, it audits and tells the
// clicker why.
func (h *Handler) may(ctx context.Context, c click, a store.Audit, subject string) bool {
	role, need := h.cfg.Users[c.user], needs(c.action)
	var why string
	switch {
	case c.team != h.cfg.TeamID:
		why = fmt.Sprintf("Slack workspace %s is not the one settle is configured for (notify.slack.interactive.team_id)", c.team)
	case role == NoRole:
		why = fmt.Sprintf("Slack user %s is not in notify.slack.interactive.users, so may not act on settle's alerts", c.user)
	case role < need:
		why = fmt.Sprintf("Slack user %s is %s; %s needs %s", c.user, role, c.action.Label(), need)
	default:
		return true
	}
	err := fmt.Errorf("%w: %s", store.ErrRefused, why)
	if h.record(ctx, c, a, subject, err) {
		h.whisper(ctx, c, "Refused, nothing was changed: "+why+".")
	}
	return false
}

// record audits the click's decision and reports whether to go on: not
// for a second delivery of the click, nor when the audit row could not be
// written (then the clicker is told).
func (h *Handler) record(ctx context.Context, c click, a store.Audit, subject string, decided error) bool {
	err := h.cfg.DB.RecordAudit(ctx, a, subject, decided)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return false
	case err != nil:
		h.failed(ctx, c, err)
		return false
	}
	return true
}

// failed logs a failure that decided nothing and tells the clicker.
func (h *Handler) failed(ctx context.Context, c click, err error) {
	h.cfg.Logger.ErrorContext(ctx, "slack: a click could not be handled", "actor", c.actor, "button", c.action, "err", err)
	h.whisper(ctx, c, "settle could not do this now (the database or Slack failed); nothing was changed. Try again.")
}

// whisper shows text to the clicker alone.
func (h *Handler) whisper(ctx context.Context, c click, text string) {
	if err := h.cfg.Slack.PostEphemeral(ctx, c.where, c.user, notify.RenderNote(nil, text)); err != nil {
		h.cfg.Logger.WarnContext(ctx, "slack: could not answer a click", "actor", c.actor, "err", err)
	}
}

// tell says text in the alert's thread, naming the clicker first when
// byClicker, then users.
func (h *Handler) tell(ctx context.Context, c click, users []string, text string, byClicker bool) {
	if byClicker {
		users = append([]string{c.user}, users...)
	}
	if _, err := h.cfg.Slack.PostInThread(ctx, c.thread, notify.RenderNote(users, text)); err != nil {
		h.cfg.Logger.WarnContext(ctx, "slack: could not answer in the thread", "actor", c.actor, "err", err)
	}
}

// report is what the command prints for its outcome or error: exactly
// what the CLI shows.
func report(out store.Outcome, err error) string {
	if err == nil {
		return out.Text()
	}
	if line, ok := store.NothingToDoText(err); ok {
		return line
	}
	return "settle: " + err.Error()
}

func commandLine(act notify.Action, id int64, dryRun bool) string {
	s := fmt.Sprintf("settle %s %d", act, id)
	if dryRun {
		s += " --dry-run"
	}
	return s
}

// dryRun posts, in the alert's thread, the dry run of each command its
// settlement allows (of a replay when it allows none), as the CLI prints it.
// The click is audited first: a second delivery of it runs nothing.
func (h *Handler) dryRun(ctx context.Context, c click, a store.Audit, subject string, id int64) {
	if !h.record(ctx, c, a, subject, nil) {
		return
	}
	all := h.dryRuns(ctx, id, store.Audit{Actor: c.actor, Reason: a.Reason})
	var runs []notify.DryRun
	for _, r := range all {
		if r.err == nil {
			runs = append(runs, notify.DryRun{Command: commandLine(r.action, id, true), Output: report(r.out, r.err)})
		}
	}
	if len(runs) == 0 && len(all) > 0 { // none allowed: why a replay is not
		runs = append(runs, notify.DryRun{Command: commandLine(all[0].action, id, true), Output: report(all[0].out, all[0].err)})
	}
	if _, err := h.cfg.Slack.PostInThread(ctx, c.thread, notify.RenderDryRuns(c.user, runs)); err != nil {
		h.cfg.Logger.WarnContext(ctx, "slack: could not post a dry run", "actor", c.actor, "err", err)
	}
}

// request records a request for the command with its dry run, and posts
// it in the alert's thread with its Approve button. A command the
// settlement's state does not allow is refused, with its dry run, to the
// requester alone.
func (h *Handler) request(ctx context.Context, c click, a store.Audit, subject string, id int64) {
	op, ok := h.cfg.Ops[c.action]
	if !ok {
		return
	}
	dry, err := op(ctx, id, store.Audit{Actor: c.actor, Command: string(c.action), Reason: a.Reason}, true)
	if err != nil {
		if !decidedErr(err) {
			h.failed(ctx, c, err)
		} else if h.record(ctx, c, a, subject, err) {
			h.whisper(ctx, c, "Not requested, nothing was changed:\n"+report(dry, err))
		}
		return
	}
	a.Args["dry_run"] = dry.Changes
	r, err := h.cfg.DB.RequestApproval(ctx, store.NewRequest{
		Action: string(c.action), DryRun: dry, Window: h.cfg.Window, Channel: c.thread.Channel, ThreadTS: c.thread.TS,
	}, a)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return
	case err != nil:
		h.failed(ctx, c, err)
		return
	}
	ref, err := h.cfg.Slack.PostInThread(ctx, c.thread, notify.RenderRequest(h.shown(r, notify.RequestPending)))
	if err != nil {
		h.cfg.Logger.WarnContext(ctx, "slack: could not post a request", "request", r.ID, "err", err)
		h.whisper(ctx, c, fmt.Sprintf("Request %d was recorded but Slack did not take its message; it expires unapproved at %s.",
			r.ID, r.ExpiresAt.UTC().Format(time.RFC3339)))
		return
	}
	if err := h.cfg.DB.SetRequestMessage(ctx, r.ID, ref.Channel, ref.TS); err != nil {
		h.cfg.Logger.WarnContext(ctx, "slack: could not record a request's message", "request", r.ID, "err", err)
	}
}

// why is a refusal's reason, without the word refused.
func why(err error) string { return strings.TrimPrefix(err.Error(), store.ErrRefused.Error()+": ") }

// decidedErr reports whether err is a command's decision (refused,
// nothing to do, not found) rather than a failure.
func decidedErr(err error) bool {
	return errors.Is(err, store.ErrRefused) || errors.Is(err, store.ErrNothingToDo) || errors.Is(err, store.ErrNotFound)
}

// member is the Slack member ID of an actor slack:<team>/<user>.
func member(actor string) string { return actor[strings.LastIndex(actor, "/")+1:] }

// shown is a request as its message shows it.
func (h *Handler) shown(r store.Request, state notify.RequestState) notify.Request {
	return notify.Request{
		ID: r.ID, SettlementID: r.SettlementID, Action: notify.Action(r.Action),
		Requester: member(r.Requester), Approver: member(r.Approver), DryRun: r.DryRun,
		Window: r.ExpiresAt.Sub(r.CreatedAt), ExpiresAt: r.ExpiresAt, State: state,
	}
}

// approve runs a request's command for a second operator: through the
// command itself, which approves the request in its own transaction
// (store.Audit.Approves) or refuses. The request's message shows the
// outcome; a settlement that changed since is told to both operators.
func (h *Handler) approve(ctx context.Context, c click) {
	rid, err := strconv.ParseInt(c.value, 10, 64)
	if err != nil || rid <= 0 {
		h.cfg.Logger.WarnContext(ctx, "slack: ignored an Approve click without a request")
		return
	}
	r, err := h.cfg.DB.GetRequest(ctx, rid)
	if errors.Is(err, store.ErrNotFound) {
		a := c.audit("approve", fmt.Sprintf("Slack: approve request %d", rid), map[string]any{"request": rid})
		if h.may(ctx, c, a, fmt.Sprintf("request:%d", rid)) && h.record(ctx, c, a, fmt.Sprintf("request:%d", rid), err) {
			h.whisper(ctx, c, fmt.Sprintf("Refused: there is no request %d.", rid))
		}
		return
	}
	if err != nil {
		h.failed(ctx, c, err)
		return
	}
	subject := fmt.Sprintf("settlement:%d", r.SettlementID)
	a := c.audit(r.Action, fmt.Sprintf("Slack: approved request %d of %s", r.ID, r.Requester),
		map[string]any{"settlement": r.SettlementID, "request": r.ID, "requested_by": r.Requester, "approved_by": c.actor})
	if !h.may(ctx, c, a, subject) {
		return
	}
	op, ok := h.cfg.Ops[notify.Action(r.Action)]
	if !ok {
		return
	}
	a.Approves = r.ID
	out, err := op(ctx, r.SettlementID, a, false)
	msg := notify.Ref{Channel: cmp.Or(r.Channel, c.channel), TS: r.MessageTS}
	switch {
	case errors.Is(err, store.ErrDuplicate):
	case err == nil:
		if out.Enqueue.ID != 0 && h.cfg.Wake != nil {
			out.Changes = append(out.Changes, h.cfg.Wake(ctx, out.Enqueue))
		}
		shown := h.shown(r, notify.RequestApplied)
		shown.Approver, shown.Outcome = c.user, out.Text()
		h.edit(ctx, msg, shown)
		h.tell(ctx, c, []string{member(r.Requester)},
			fmt.Sprintf("approved request %d: %s of settlement %d is done; the alert resolves when the settlement does.", r.ID, r.Action, r.SettlementID), true)
	case errors.Is(err, store.ErrRequestChanged):
		now, nerr := op(ctx, r.SettlementID, store.Audit{Actor: c.actor, Command: r.Action, Reason: a.Reason}, true)
		shown := h.shown(r, notify.RequestChanged)
		shown.Outcome, shown.Now = why(err), report(now, nerr)
		h.edit(ctx, msg, shown)
		h.tell(ctx, c, []string{member(r.Requester)}, "Nothing was run: "+why(err), true)
	case errors.Is(err, store.ErrRequestExpired):
		shown := h.shown(r, notify.RequestExpired)
		shown.Outcome = why(err)
		h.edit(ctx, msg, shown)
		h.whisper(ctx, c, "Refused, nothing was run: "+why(err))
	case decidedErr(err):
		h.whisper(ctx, c, "Refused, nothing was run: "+why(err))
	default:
		h.failed(ctx, c, err)
	}
}

// edit shows a request's outcome in its message.
func (h *Handler) edit(ctx context.Context, ref notify.Ref, r notify.Request) {
	if ref.TS == "" {
		return
	}
	if err := h.cfg.Slack.Edit(ctx, ref, notify.RenderRequest(r)); err != nil {
		h.cfg.Logger.WarnContext(ctx, "slack: could not update a request's message", "request", r.ID, "err", err)
	}
}
