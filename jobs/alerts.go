package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// AlertDeliveryConfig tunes alert delivery. Zero fields take the documented
// default.
type AlertDeliveryConfig struct {
	// StormThreshold and StormWindow define a storm: more than
	// StormThreshold alerts of one kind at one provider raised within
	// StormWindow are summarized in one message instead of sent one by one
	// (defaults 20 and 5m).
	StormThreshold int
	StormWindow    time.Duration
	// RepeatInterval is the least time between two follow-ups about one
	// problem or storm (default 5m). Repeats in between are counted, and
	// shown when the first message is rewritten (bot mode).
	RepeatInterval time.Duration
	// RetryBase and RetryMax bound the exponential backoff after a failed
	// delivery (defaults 10s and 10m). Alerts are never given up on.
	RetryBase, RetryMax time.Duration
	// MaxBatches is how many problems one run delivers at most (default 200).
	MaxBatches int
	// StormLimit is how many alerts one storm summary marks delivered in one
	// run (default 10000); the rest follow in the next run.
	StormLimit int
	// Actions, when set, gives the buttons a problem's first message
	// shows (notify.Notice.Actions): operators act from Slack
	// (interact.Handler.Actions). It is asked each time the message is
	// posted or rewritten, so the buttons follow the settlement's state.
	Actions func(context.Context, notify.Alert) []notify.Action
}

func (c AlertDeliveryConfig) withDefaults() AlertDeliveryConfig {
	c.StormThreshold = cmp.Or(c.StormThreshold, 20)
	c.StormWindow = cmp.Or(c.StormWindow, 5*time.Minute)
	c.RepeatInterval = cmp.Or(c.RepeatInterval, 5*time.Minute)
	c.RetryBase = cmp.Or(c.RetryBase, 10*time.Second)
	c.RetryMax = cmp.Or(c.RetryMax, 10*time.Minute)
	c.MaxBatches = cmp.Or(c.MaxBatches, 200)
	c.StormLimit = cmp.Or(c.StormLimit, 10000)
	return c
}

// AlertDelivery sends the alert outbox to operators: one message per
// problem (repeats update it), one summary per storm, a follow-up when a
// problem is resolved.
//
// Each delivery is one short transaction that locks its alerts (FOR UPDATE
// SKIP LOCKED, so two processes never take the same alert), sends, and marks
// them delivered before it commits; a failed send counts an attempt and
// schedules the next with exponential backoff, or after Slack's Retry-After.
// No alert is ever dropped. If the process dies after Slack accepted a
// message and before the commit, the alert is sent again: delivery is at
// least once, and exactly once otherwise.
type AlertDelivery struct {
	db     AlertDeliveryStore
	n      notify.Notifier
	cfg    AlertDeliveryConfig
	logger *slog.Logger
}

// AlertDeliveryStore is the alert outbox as delivery sees it: the storms,
// the delivery of a storm's or a problem's alerts in one transaction
// around a send, and the deferral of every undelivered alert.
type AlertDeliveryStore interface {
	AlertStorms(ctx context.Context, threshold int, window time.Duration) ([]store.StormGroup, error)
	DeliverStorm(ctx context.Context, g store.StormGroup, window time.Duration, limit int,
		fn func(context.Context, store.StormBatch) store.AlertOutcome) (int, error)
	DeliverNextAlert(ctx context.Context, skip []store.StormGroup, fn func(context.Context, store.AlertBatch) store.AlertOutcome) (bool, error)
	DeferAlerts(ctx context.Context, d time.Duration) error
}

var _ AlertDeliveryStore = (*store.DB)(nil)

// NewAlertDelivery returns the delivery job sending through n.
func NewAlertDelivery(db AlertDeliveryStore, n notify.Notifier, cfg AlertDeliveryConfig, logger *slog.Logger) *AlertDelivery {
	return &AlertDelivery{db: db, n: n, cfg: cfg.withDefaults(), logger: logger}
}

// AlertDeliveryResult reports one run.
type AlertDeliveryResult struct {
	Delivered   int  // alerts marked delivered
	Summarized  int  // of those, alerts folded into a storm summary
	Failed      int  // alerts whose delivery failed; they are due again later
	RateLimited bool // Slack asked to wait: every undelivered alert waits
}

// RunOnce delivers the due alerts: storms first, as one summary each, then
// problem by problem. It stops early when Slack is unavailable or asks to
// wait. Slack failures are recorded, not returned; an error means the
// database failed.
func (d *AlertDelivery) RunOnce(ctx context.Context) (AlertDeliveryResult, error) {
	var res AlertDeliveryResult
	storms, err := d.db.AlertStorms(ctx, d.cfg.StormThreshold, d.cfg.StormWindow)
	if err != nil {
		return res, err
	}
	stop, err := d.deliverStorms(ctx, storms, &res)
	if err != nil || stop {
		return res, err
	}
	return res, d.deliverProblems(ctx, storms, &res)
}

// deliverStorms sends one summary per storm group.
func (d *AlertDelivery) deliverStorms(ctx context.Context, storms []store.StormGroup, res *AlertDeliveryResult) (stop bool, err error) {
	for _, g := range storms {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		var sendErr error
		n, err := d.db.DeliverStorm(ctx, g, d.cfg.StormWindow, d.cfg.StormLimit, func(ctx context.Context, b store.StormBatch) store.AlertOutcome {
			var o store.AlertOutcome
			o, sendErr = d.sendStorm(ctx, b)
			return d.outcome(o, sendErr, b.Alerts)
		})
		if err != nil {
			return true, err
		}
		if sendErr == nil {
			res.Summarized += n
		}
		if d.count(ctx, res, n, sendErr) {
			return true, nil
		}
	}
	return false, nil
}

// deliverProblems sends problem by problem, leaving out the storm groups.
func (d *AlertDelivery) deliverProblems(ctx context.Context, storms []store.StormGroup, res *AlertDeliveryResult) error {
	for range d.cfg.MaxBatches {
		if err := ctx.Err(); err != nil {
			return err
		}
		var sendErr error
		var n int
		found, err := d.db.DeliverNextAlert(ctx, storms, func(ctx context.Context, b store.AlertBatch) store.AlertOutcome {
			var o store.AlertOutcome
			n = len(b.Alerts)
			o, sendErr = d.sendProblem(ctx, b)
			return d.outcome(o, sendErr, b.Alerts)
		})
		if err != nil || !found || d.count(ctx, res, n, sendErr) {
			return err
		}
	}
	return nil
}

// outcome completes a send's outcome for the store: on failure, when to
// try the alerts again.
func (d *AlertDelivery) outcome(o store.AlertOutcome, sendErr error, alerts []store.AlertRow) store.AlertOutcome {
	if sendErr == nil {
		o.Sent = true
		return o
	}
	tried := 0
	for _, a := range alerts {
		tried = max(tried, a.Attempts)
	}
	retry := pipeline.Backoff(tried+1, d.cfg.RetryBase, d.cfg.RetryMax)
	if rl := rateLimit(sendErr); rl != nil {
		retry = rl.After
	}
	return store.AlertOutcome{Error: sendErr.Error(), RetryIn: retry}
}

// count adds a delivery to res and reports whether the run must stop: Slack
// is unavailable, or asked to wait (then every undelivered alert waits).
func (d *AlertDelivery) count(ctx context.Context, res *AlertDeliveryResult, n int, sendErr error) (stop bool) {
	if sendErr == nil {
		res.Delivered += n
		return false
	}
	res.Failed += n
	if rl := rateLimit(sendErr); rl != nil {
		res.RateLimited = true
		d.logger.WarnContext(ctx, "slack asked to wait; alert delivery paused", "retry_after", rl.After)
		if err := d.db.DeferAlerts(ctx, rl.After); err != nil {
			d.logger.WarnContext(ctx, "could not defer alerts", "err", err)
		}
		return true
	}
	d.logger.WarnContext(ctx, "alert delivery failed; the alerts are kept and retried", "alerts", n, "err", sendErr)
	return errors.Is(sendErr, notify.ErrUnavailable) || ctx.Err() != nil
}

func rateLimit(err error) *notify.RateLimitedError {
	var rl *notify.RateLimitedError
	if errors.As(err, &rl) {
		return rl
	}
	return nil
}

// sendProblem delivers a problem's batch: a first message, a repeat, or a
// resolution. At most one call that adds a message is made, and it is the
// last, so a failed batch that is retried never repeats a message.
func (d *AlertDelivery) sendProblem(ctx context.Context, b store.AlertBatch) (store.AlertOutcome, error) {
	latest := b.Alerts[len(b.Alerts)-1]
	if latest.Kind == pipeline.AlertKindResolved {
		return d.sendResolved(ctx, b, toAlert(latest))
	}
	p, a := b.Problem, toAlert(latest)
	snapshot, err := json.Marshal(a)
	if err != nil {
		return store.AlertOutcome{}, err
	}
	if !p.Told() || p.ResolvedAt != nil { // new, or back after being resolved
		p = store.AlertProblem{Key: p.Key, Occurrences: len(b.Alerts), FirstAt: b.Alerts[0].CreatedAt,
			LastAt: latest.CreatedAt, PostedAt: b.Now, Snapshot: snapshot}
		ref, err := d.n.Post(ctx, notify.Notice{Alert: a, Occurrences: p.Occurrences, FirstAt: p.FirstAt, Actions: d.actions(ctx, a)})
		p.Channel, p.TS = ref.Channel, ref.TS
		return store.AlertOutcome{Problem: p}, err
	}
	p.Occurrences += len(b.Alerts)
	p.LastAt, p.Snapshot = latest.CreatedAt, snapshot
	n := notify.Notice{Alert: a, Occurrences: p.Occurrences, FirstAt: p.FirstAt, Actions: d.actions(ctx, a)}
	ref := notify.Ref{Channel: p.Channel, TS: p.TS}
	if err := d.n.Update(ctx, ref, n); err != nil {
		return store.AlertOutcome{}, err
	}
	// The first repeat is always told; later ones at most once an interval.
	if p.RepliedAt == nil || b.Now.Sub(*p.RepliedAt) >= d.cfg.RepeatInterval {
		if err := d.n.Reply(ctx, ref, n); err != nil {
			return store.AlertOutcome{}, err
		}
		p.RepliedAt = &b.Now
	}
	return store.AlertOutcome{Problem: p}, nil
}

// actions are the buttons the alert's message shows, if operators act
// from Slack.
func (d *AlertDelivery) actions(ctx context.Context, a notify.Alert) []notify.Action {
	if d.cfg.Actions == nil {
		return nil
	}
	return d.cfg.Actions(ctx, a)
}

// sendResolved marks the problem's first message resolved and follows it
// up in its thread (or on its own, when it has none).
func (d *AlertDelivery) sendResolved(ctx context.Context, b store.AlertBatch, resolved notify.Alert) (store.AlertOutcome, error) {
	p := b.Problem
	ref := notify.Ref{Channel: p.Channel, TS: p.TS}
	if p.Told() && p.ResolvedAt == nil {
		var root notify.Alert
		if err := json.Unmarshal(p.Snapshot, &root); err == nil && root.ID != 0 {
			err := d.n.Update(ctx, ref, notify.Notice{Alert: root, Occurrences: p.Occurrences, FirstAt: p.FirstAt,
				Resolved: &notify.Resolution{At: resolved.CreatedAt, Note: resolved.Detail}})
			if err != nil {
				return store.AlertOutcome{}, err
			}
		}
	}
	if !p.Told() {
		p = store.AlertProblem{Key: p.Key, Occurrences: 1, FirstAt: resolved.CreatedAt, LastAt: resolved.CreatedAt, PostedAt: b.Now}
	}
	if err := d.n.Reply(ctx, ref, notify.Notice{Alert: resolved}); err != nil {
		return store.AlertOutcome{}, err
	}
	p.ResolvedAt, p.RepliedAt = &b.Now, &b.Now
	return store.AlertOutcome{Problem: p}, nil
}

// sendStorm sends a storm's summary, or updates it while the storm goes
// on. A storm quiet for a whole window is over: the next one gets a new
// message.
func (d *AlertDelivery) sendStorm(ctx context.Context, b store.StormBatch) (store.AlertOutcome, error) {
	p := b.Problem
	first, last := b.Alerts[0].CreatedAt, b.Alerts[len(b.Alerts)-1].CreatedAt
	fresh := !p.Told() || p.LastAt.Before(b.Now.Add(-d.cfg.StormWindow))
	if fresh {
		p = store.AlertProblem{Key: p.Key, Occurrences: len(b.Alerts), FirstAt: first, LastAt: last, PostedAt: b.Now}
	} else {
		p.Occurrences += len(b.Alerts)
		if last.After(p.LastAt) {
			p.LastAt = last
		}
	}
	n := notify.Notice{Storm: d.storm(b, p)}
	if fresh {
		d.logger.InfoContext(ctx, "alert storm: sending one summary instead of each alert",
			"kind", b.Group.Kind, "provider", b.Group.Provider, "count", b.Stats.Count)
		ref, err := d.n.Post(ctx, n)
		p.Channel, p.TS = ref.Channel, ref.TS
		return store.AlertOutcome{Problem: p}, err
	}
	ref := notify.Ref{Channel: p.Channel, TS: p.TS}
	if err := d.n.Update(ctx, ref, n); err != nil {
		return store.AlertOutcome{}, err
	}
	if since := cmp.Or(p.RepliedAt, &p.PostedAt); b.Now.Sub(*since) >= d.cfg.RepeatInterval {
		if err := d.n.Reply(ctx, ref, n); err != nil {
			return store.AlertOutcome{}, err
		}
		p.RepliedAt = &b.Now
	}
	return store.AlertOutcome{Problem: p}, nil
}

func (d *AlertDelivery) storm(b store.StormBatch, p store.AlertProblem) *notify.Storm {
	causes := make([]notify.CauseCount, len(b.Stats.Causes))
	for i, c := range b.Stats.Causes {
		causes[i] = notify.CauseCount{Cause: c.Cause, Count: c.Count}
	}
	return &notify.Storm{
		Key: b.Group.Key(), Kind: b.Group.Kind, Provider: b.Group.Provider,
		Count: b.Stats.Count, Window: d.cfg.StormWindow, Threshold: d.cfg.StormThreshold,
		Causes: causes, Severity: b.Stats.Severity, Settlements: b.Stats.Settlements,
		Folded: p.Occurrences, Since: p.FirstAt, Action: stormAction(b.Group.Kind),
	}
}

// stormAction is the command to start a storm's work with.
func stormAction(kind pipeline.AlertKind) string {
	switch kind {
	case pipeline.AlertKindSettlementFailed:
		return "settle settlements list --status FAILED"
	case pipeline.AlertKindStepStuck:
		return "settle settlements list --status RUNNING"
	}
	return ""
}

// toAlert is an outbox row as notify shows it.
func toAlert(r store.AlertRow) notify.Alert {
	a := notify.Alert{
		ID: r.ID, ProblemKey: r.ProblemKey, Kind: r.Kind, Severity: r.Severity, SettlementID: r.SettlementID,
		Summary: r.Summary, Detail: r.Detail, Action: r.Action, ConfigKey: r.ConfigKey, CreatedAt: r.CreatedAt,
		Customer: r.CustomerRef, PayoutAccount: pipeline.AccountNumber(r.PayoutAccount), Provider: r.Provider,
		Deposit: pipeline.Money{Amount: r.Deposit, Currency: r.Currency},
	}
	if r.StepKind != "" {
		a.Step = &notify.Step{
			Kind: r.StepKind, Seq: r.StepSeq, Status: r.StepStatus,
			Amount: pipeline.Money{Amount: r.StepAmount, Currency: r.Currency},
			From:   pipeline.AccountNumber(r.StepFrom), To: pipeline.AccountNumber(r.StepTo),
			Attempts: r.StepAttempts, LastError: r.StepError, BankCode: r.BankCode, BankMessage: r.BankMessage,
		}
		if r.FirstTry != nil {
			a.Step.FirstTry = *r.FirstTry
		}
	}
	return a
}
