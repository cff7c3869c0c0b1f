package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ExecutorConfig tunes the executor. Zero fields take the documented default.
type ExecutorConfig struct {
	// Lease is how long a claim owns its step (default 30s). It must be longer
	// than BankTimeout so a live worker always records before its lease ends.
	Lease time.Duration
	// BankTimeout bounds one bank call (default 10s).
	BankTimeout time.Duration
	// MaxAttempts is how many claims a step gets before it dies (default 5).
	MaxAttempts int
	// RetryBase and RetryMax bound the exponential backoff after a transient
	// error (defaults 1s and 5m).
	RetryBase, RetryMax time.Duration
	// UnknownWait is how long an unknown outcome waits before a resolve
	// task asks the bank for its status (default Lease).
	UnknownWait time.Duration
	// Hook, when set, is called at each named point of a step's execution.
	// The fault-injection tests use it to kill the process right there.
	Hook func(point string)
	// Observer, when set, hears how every run of a claimed step ended and
	// how long it took (metrics). Deliveries that claim nothing are not
	// runs; neither are the sweep's resolutions.
	Observer StepObserver
	// KeyRetention is, by provider, how long the bank keeps an idempotency
	// key it was sent (default DefaultKeyRetention). An attempt older than
	// that, by the database's clock, whose status call says the bank never
	// saw it is not sent again: the bank may have applied it and forgotten
	// the key since.
	KeyRetention map[string]time.Duration
	// Notify tunes the retries of a NOTIFY step; MaxAttempts, RetryBase and
	// RetryMax do not apply to it.
	Notify NotifyConfig
	// AccountKeys names the engine's own accounts, by provider: account
	// number → the configuration key that names it (Accounts.ConfigKeys).
	// A transfer refused because such an account does not exist, is closed
	// or is frozen is the configuration's problem, not the customer's: its
	// alert names the key.
	AccountKeys map[string]map[string]string
}

// NotifyConfig is how a NOTIFY step keeps trying to give the lender's app
// its event. It runs after its settlement is SETTLED, so none of this holds
// up or fails the settlement. Zero fields take the documented default.
type NotifyConfig struct {
	// RetryBase and RetryMax bound the exponential backoff after the app
	// did not take the event (defaults 1m and 1h).
	RetryBase, RetryMax time.Duration
	// WarnAfter: a NOTIFY still failing this long after its settlement
	// settled raises a warning, once per settlement (default 30m).
	WarnAfter time.Duration
	// GiveUpAfter: a NOTIFY still failing this long after its settlement
	// settled stops: the step is DEAD, the warning says so, the settlement
	// stays SETTLED (default 72h). settle replay sends it again.
	GiveUpAfter time.Duration
}

func (c NotifyConfig) withDefaults() NotifyConfig {
	c.RetryBase = cmpOr(c.RetryBase, time.Minute)
	c.RetryMax = cmpOr(c.RetryMax, time.Hour)
	c.WarnAfter = cmpOr(c.WarnAfter, 30*time.Minute)
	c.GiveUpAfter = cmpOr(c.GiveUpAfter, 72*time.Hour)
	return c
}

// The named points of a step's execution where Hook is called. The store
// calls its own hook at PointBeforeRecordCommit, and at
// PointAfterSettlementsCommit: a poll's settlements are written, their
// first steps not yet enqueued.
const (
	PointAfterClaim             = "after_claim"
	PointAfterBankOK            = "after_bank_ok"
	PointBeforeRecordCommit     = "before_record_commit"
	PointAfterRecordCommit      = "after_record_commit"
	PointAfterSettlementsCommit = "after_settlements_commit"
)

func (c ExecutorConfig) withDefaults() ExecutorConfig {
	c.Lease = cmpOr(c.Lease, 30*time.Second)
	c.BankTimeout = cmpOr(c.BankTimeout, 10*time.Second)
	c.MaxAttempts = cmpOr(c.MaxAttempts, 5)
	c.RetryBase = cmpOr(c.RetryBase, time.Second)
	c.RetryMax = cmpOr(c.RetryMax, 5*time.Minute)
	c.UnknownWait = cmpOr(c.UnknownWait, c.Lease)
	c.Notify = c.Notify.withDefaults()
	if c.Hook == nil {
		c.Hook = func(string) {}
	}
	return c
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Executor runs one step at a time: claim, call the bank with no transaction
// open, record. Every method is safe to call twice for the same step, at the
// same time, from different processes.
type Executor struct {
	store  StepStore
	banks  Banks
	queue  Queue
	events EventSink
	cfg    ExecutorConfig
	logger *slog.Logger
}

// NewExecutor returns an executor over the given ports.
func NewExecutor(store StepStore, banks Banks, queue Queue, cfg ExecutorConfig, logger *slog.Logger) *Executor {
	return &Executor{store: store, banks: banks, queue: queue, cfg: cfg.withDefaults(), logger: logger}
}

// WithEvents makes NOTIFY steps send their event to sink before they are
// done; without it NOTIFY only records the event.
func (e *Executor) WithEvents(sink EventSink) *Executor {
	e.events = sink
	return e
}

// RetryLaterError asks the caller to deliver the step again after a delay;
// it is not a failure.
type RetryLaterError struct {
	After  time.Duration
	Reason string
}

func (e *RetryLaterError) Error() string {
	return fmt.Sprintf("step retries in %s: %s", e.After, e.Reason)
}

// Run executes the step if it is READY and due. A duplicate or late delivery
// returns nil; a step waiting for its backoff returns *RetryLaterError.
func (e *Executor) Run(ctx context.Context, stepID int64) error {
	start := time.Now()
	c, err := e.store.ClaimStep(ctx, stepID, e.cfg.Lease)
	var notDue *NotDueError
	switch {
	case errors.Is(err, ErrNotClaimable):
		return nil
	case errors.As(err, &notDue):
		return &RetryLaterError{After: notDue.In, Reason: "backoff"}
	case err != nil:
		return fmt.Errorf("claim step %d: %w", stepID, err)
	}
	e.cfg.Hook(PointAfterClaim)
	// Nothing goes to the bank once the lease may have ended: the claim's
	// lease runs from the database's now(), which is after start, so a
	// deadline measured from start on this process's monotonic clock ends
	// first, whatever its wall clock says. A worker paused past its lease
	// (GC, SIGSTOP, a slow VM) wakes with its context done and sends
	// nothing; the sweep has the step, and the bank never sees the old
	// request late, even a bank that would apply a key it refused before.
	lctx, cancel := context.WithDeadline(ctx, start.Add(e.cfg.Lease-leaseMargin(e.cfg.Lease)))
	defer cancel()
	out, err := e.run(lctx, c)
	if e.cfg.Observer != nil {
		e.cfg.Observer.StepDone(c.Kind, out, time.Since(start))
	}
	return err
}

// run carries out a claimed step and records what came of it.
func (e *Executor) run(ctx context.Context, c Claim) (Outcome, error) {
	if !c.Kind.MovesMoney() {
		return e.notify(ctx, c)
	}
	bank, err := e.banks.Bank(c.Provider)
	if err != nil {
		return e.record(ctx, c, Receipt{}, fmt.Errorf("%w: %v", ErrUnavailable, err))
	}
	r, err := e.call(ctx, func(ctx context.Context) (Receipt, error) { return bank.Transfer(ctx, c.Request()) })
	rctx, cancel := recordContext(ctx)
	defer cancel()
	return e.record(rctx, c, r, err)
}

// leaseMargin is how long before its lease's end a claim stops starting
// bank calls: a tenth of the lease, at most a second.
func leaseMargin(lease time.Duration) time.Duration { return min(lease/10, time.Second) }

// call runs one bank call bounded by the bank timeout.
func (e *Executor) call(ctx context.Context, fn func(context.Context) (Receipt, error)) (Receipt, error) {
	callCtx, cancel := context.WithTimeout(ctx, e.cfg.BankTimeout)
	defer cancel()
	return fn(callCtx)
}

// recordContext keeps recording a bank's answer from being cut off by the
// caller's cancellation (a shutdown, a task deadline): an answer received is
// an answer worth writing down. It is still bounded.
func recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
}

// recordTimeout bounds writing down one bank answer.
const recordTimeout = 10 * time.Second

// Resolve takes over a step whose lease expired and settles its outcome by
// asking the bank for the attempt's status: it never sends the transfer
// again blindly. It returns nil when the step needs no resolving (it is not
// RUNNING), and *RetryLaterError when its lease has not ended yet by the
// database's clock: a resolve task that arrives early waits, it is not lost.
func (e *Executor) Resolve(ctx context.Context, stepID int64) error {
	c, err := e.store.ReclaimExpired(ctx, stepID, e.cfg.Lease)
	var notDue *NotDueError
	switch {
	case errors.Is(err, ErrNotClaimable):
		return nil
	case errors.As(err, &notDue):
		return &RetryLaterError{After: notDue.In, Reason: "lease not ended"}
	case err != nil:
		return fmt.Errorf("reclaim step %d: %w", stepID, err)
	}
	if !c.Kind.MovesMoney() {
		return errOnly(e.notify(ctx, c)) // the receiver drops a duplicate by its event ID
	}
	bank, err := e.banks.Bank(c.Provider)
	if err != nil {
		return errOnly(e.unknown(ctx, c, fmt.Sprintf("provider %s: %v", c.Provider, err)))
	}
	r, err := e.call(ctx, func(ctx context.Context) (Receipt, error) { return bank.TransferStatus(ctx, c.Request()) })
	ctx, cancel := recordContext(ctx)
	defer cancel()
	switch Classify(r, err) {
	case ClassAbsent:
		if c.Transfer.Age >= e.keyRetention(c.Provider) {
			return errOnly(e.keyExpired(ctx, c))
		}
		return e.absent(ctx, c)
	case ClassTransient:
		return errOnly(e.unknown(ctx, c, "status check: "+err.Error()))
	default:
		return errOnly(e.record(ctx, c, r, err))
	}
}

// errOnly drops the outcome of a run the observer does not hear of.
func errOnly(_ Outcome, err error) error { return err }

// record turns a bank answer into the step's next state.
func (e *Executor) record(ctx context.Context, c Claim, r Receipt, callErr error) (Outcome, error) {
	class := Classify(r, callErr)
	e.logger.DebugContext(ctx, "bank answered", "step", c.StepID, "kind", c.Kind, "attempt", c.Transfer.No, "class", class.String())
	switch class {
	case ClassSuccess:
		e.cfg.Hook(PointAfterBankOK)
		return e.complete(ctx, c, r)
	case ClassRefused:
		var refused *RefusedError
		errors.As(callErr, &refused)
		f := Failure{Refused: refused, Reason: refused.Error(), ConfigKey: e.engineAccountKey(c, refused.Code)}
		if f.ConfigKey != "" {
			f.Reason += "; the account is the engine's own: fix " + f.ConfigKey
		}
		return e.fail(ctx, c, f)
	case ClassTransient:
		return e.retry(ctx, c, callErr)
	case ClassKeyConflict:
		// The bank holds a transfer under this key and may have paid it:
		// the attempt stays UNKNOWN, so no replay sends a new key for the
		// same money until someone has read the bank's statement.
		return e.fail(ctx, c, Failure{Dead: true, Cause: CauseKeyReused, Unresolved: true, Reason: "halted: " + callErr.Error()})
	default: // unknown, or absent from a transfer call (a bank bug): ask later
		reason := "bank answered " + string(r.State)
		if callErr != nil {
			reason = callErr.Error()
		}
		return e.unknown(ctx, c, reason)
	}
}

// notify runs a NOTIFY step: the event goes to the lender's app (when one
// is configured) and the step is done; a failed send waits on the notify
// backoff (notifyFailed).
func (e *Executor) notify(ctx context.Context, c Claim) (Outcome, error) {
	if e.events != nil {
		ev, err := e.store.SettledEvent(ctx, c)
		if err != nil {
			return OutcomeError, fmt.Errorf("event of settlement %d: %w", c.SettlementID, err)
		}
		callCtx, cancel := context.WithTimeout(ctx, e.cfg.BankTimeout)
		err = e.events.Send(callCtx, ev)
		cancel()
		if err != nil {
			rctx, cancel := recordContext(ctx)
			defer cancel()
			return e.notifyFailed(rctx, c, ev.ID, err)
		}
	}
	return e.complete(ctx, c, Receipt{State: TransferSucceeded})
}

// notifyFailed puts back a NOTIFY whose event the lender's app did not
// take. Its settlement is SETTLED already and stays so: the step retries on
// the notify backoff, warns once it has failed for Notify.WarnAfter since
// the settlement settled, and is DEAD, with a warning, after
// Notify.GiveUpAfter.
func (e *Executor) notifyFailed(ctx context.Context, c Claim, eventID string, sendErr error) (Outcome, error) {
	n := e.cfg.Notify
	reason := fmt.Sprintf("send event %s: %v", eventID, sendErr)
	if c.SettledFor >= n.GiveUpAfter {
		a := NotifyAlert(c, eventID, n.GiveUpAfter, true)
		e.logger.WarnContext(ctx, "lender app never took the event; NOTIFY gives up, the settlement stays SETTLED",
			"settlement", c.SettlementID, "event", eventID, "err", sendErr)
		return e.recorded(c, OutcomeDead, e.store.Fail(ctx, c, Failure{Dead: true, Alert: a,
			Reason: fmt.Sprintf("gave up %s after the settlement settled: %s", n.GiveUpAfter, reason)}))
	}
	w := Wait{After: Backoff(c.Attempts, n.RetryBase, n.RetryMax), Reason: reason}
	if c.SettledFor >= n.WarnAfter {
		a := NotifyAlert(c, eventID, n.GiveUpAfter, false)
		w.Alert = &a
	}
	if err := e.store.Retry(ctx, c, w); err != nil {
		return e.recorded(c, OutcomeRetry, err)
	}
	return OutcomeRetry, &RetryLaterError{After: w.After, Reason: reason}
}

func (e *Executor) complete(ctx context.Context, c Claim, r Receipt) (Outcome, error) {
	next, err := e.store.Complete(ctx, c, r)
	if errors.Is(err, ErrLeaseLost) {
		e.logger.WarnContext(ctx, "result not recorded: lease lost to another owner", "step", c.StepID)
		return OutcomeLeaseLost, nil
	}
	if err != nil {
		return OutcomeError, fmt.Errorf("record step %d: %w", c.StepID, err)
	}
	e.cfg.Hook(PointAfterRecordCommit)
	if next.ID == 0 {
		return OutcomeDone, nil
	}
	// The next step is READY in the database already; if this enqueue is
	// lost, the READY relay enqueues it again.
	if err := e.queue.EnqueueStep(ctx, next); err != nil {
		e.logger.WarnContext(ctx, "enqueue next step failed; the relay will retry", "step", next, "err", err)
	}
	return OutcomeDone, nil
}

// retry puts a step back after a transient answer. A rate limit or a bank
// that is down (busy, in maintenance, its breaker open) did nothing and is
// not the step's failure: it costs the step no attempt, so a payday burst
// that outruns the bank, or an outage, makes steps wait rather than die.
func (e *Executor) retry(ctx context.Context, c Claim, callErr error) (Outcome, error) {
	waiting := errors.Is(callErr, ErrRateLimited) || errors.Is(callErr, ErrUnavailable)
	if !waiting && c.Attempts >= e.cfg.MaxAttempts {
		return e.fail(ctx, c, Failure{Dead: true,
			Reason: fmt.Sprintf("out of attempts (%d): %v", c.Attempts, callErr)})
	}
	out := OutcomeRetry
	if waiting {
		out = OutcomeWaiting
	}
	after := max(Backoff(c.Attempts, e.cfg.RetryBase, e.cfg.RetryMax), RetryAfter(callErr))
	if err := e.store.Retry(ctx, c, Wait{After: after, Reason: callErr.Error(), Refund: waiting}); err != nil {
		return e.recorded(c, out, err)
	}
	return out, &RetryLaterError{After: after, Reason: callErr.Error()}
}

// unknown keeps the step RUNNING for UnknownWait with its attempt UNKNOWN
// and schedules a resolve task for when that lease ends. If the task is
// lost, the sweep resolves the step.
func (e *Executor) unknown(ctx context.Context, c Claim, reason string) (Outcome, error) {
	e.logger.WarnContext(ctx, "transfer outcome unknown; the bank's status is asked after the unknown wait", "step", c.StepID,
		"attempt", c.Transfer.No, "reason", reason)
	if err := e.store.Unknown(ctx, c, e.cfg.UnknownWait, reason); err != nil {
		return e.recorded(c, OutcomeUnknown, err)
	}
	if err := e.queue.EnqueueResolve(ctx, StepRef{ID: c.StepID, Fence: c.Fence}, e.cfg.UnknownWait); err != nil {
		e.logger.WarnContext(ctx, "enqueue resolve failed; the sweep will resolve the step", "step", c.StepID, "err", err)
	}
	return OutcomeUnknown, nil
}

func (e *Executor) absent(ctx context.Context, c Claim) error {
	if err := e.store.Absent(ctx, c); err != nil {
		return errOnly(e.recorded(c, OutcomeRetry, err))
	}
	if err := e.queue.EnqueueStep(ctx, StepRef{ID: c.StepID, Fence: c.Fence}); err != nil {
		e.logger.WarnContext(ctx, "enqueue step failed; the relay will retry", "step", c.StepID, "err", err)
	}
	return nil
}

// DefaultKeyRetention is how long a bank is taken to keep an idempotency
// key when its provider does not say: both dialects keep keys at least 30
// days (ADR 0002).
const DefaultKeyRetention = 30 * 24 * time.Hour

// keyRetention is how long the provider's bank keeps a key.
func (e *Executor) keyRetention(provider string) time.Duration {
	if d, ok := e.cfg.KeyRetention[provider]; ok && d > 0 {
		return d
	}
	return DefaultKeyRetention
}

// keyExpired halts a step whose attempt is older than its bank's key
// retention and which the bank says it never saw: the bank may have applied
// it and forgotten the key, so sending the key again may pay twice. The
// step is DEAD, its attempt UNKNOWN (settle replay refuses it), and the
// alert says to check the bank statement.
func (e *Executor) keyExpired(ctx context.Context, c Claim) (Outcome, error) {
	retention := e.keyRetention(c.Provider)
	return e.fail(ctx, c, Failure{Dead: true, Cause: CauseKeyPastRetention, Unresolved: true,
		Reason: fmt.Sprintf("halted: the bank does not know key %s, made %s ago, past its key retention of %s: "+
			"it may have applied it and forgotten the key; not sent again", c.Transfer.Key, c.Transfer.Age.Round(time.Second), retention),
		Detail: fmt.Sprintf("Attempt %s of step %d (%s, %s %d %s → %s) is older than provider %s's key retention (%s) and its bank "+
			"no longer knows the key. Sending it again could pay twice, so the step is halted. Check the bank statement for a "+
			"transfer of this amount from %s to %s around %s.", c.Transfer.Key, c.StepID, c.Kind, c.Amount.Currency, c.Amount.Amount,
			AccountNumber(c.From).Masked(), AccountNumber(c.To).Masked(), c.Provider, retention, AccountNumber(c.From).Masked(), AccountNumber(c.To).Masked(),
			c.Transfer.CreatedAt.UTC().Format(time.RFC3339)),
	})
}

func (e *Executor) fail(ctx context.Context, c Claim, f Failure) (Outcome, error) {
	f.Alert = FailureAlert(c, f)
	e.logger.ErrorContext(ctx, "settlement failed", "settlement", c.SettlementID, "step", c.StepID, "kind", c.Kind, "reason", f.Reason)
	out := OutcomeFailed
	if f.Dead {
		out = OutcomeDead
	}
	return e.recorded(c, out, e.store.Fail(ctx, c, f))
}

// recorded is out once the store recorded it. A lost lease is not an error
// (the new owner records) and anything else is wrapped.
func (e *Executor) recorded(c Claim, out Outcome, err error) (Outcome, error) {
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, ErrLeaseLost):
		return OutcomeLeaseLost, nil
	default:
		return OutcomeError, fmt.Errorf("record step %d: %w", c.StepID, err)
	}
}

// Backoff is the delay before retry n (1-based) of a transient failure:
// base·2^(n-1), capped at max.
func Backoff(n int, base, maxDelay time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// NotifyAlert is the warning about a SETTLED settlement whose event the
// lender's app has not taken: one problem per settlement. Its detail stays
// the same while the step retries, so it is raised once; giving up raises
// it again with the detail that says so. Delivery resolves it.
func NotifyAlert(c Claim, eventID string, giveUpAfter time.Duration, gaveUp bool) Alert {
	a := Alert{
		ProblemKey:   fmt.Sprintf("settlement:%d:notify_undelivered", c.SettlementID),
		Kind:         AlertKindNotifyUndelivered,
		Severity:     SeverityWarning,
		SettlementID: c.SettlementID,
		Summary: fmt.Sprintf("Settlement %d is SETTLED but the lender's app has not taken its event (customer %d)",
			c.SettlementID, c.CustomerID),
		Detail: fmt.Sprintf("The money moved as planned; only event %s is not delivered. NOTIFY keeps trying on its own "+
			"until %s after the settlement settled; the customer is settled and polled as usual.", eventID, giveUpAfter),
		Action: fmt.Sprintf("settle settlements show %d", c.SettlementID),
	}
	if gaveUp {
		a.Summary = fmt.Sprintf("Settlement %d is SETTLED but its event never reached the lender's app: NOTIFY gave up (customer %d)",
			c.SettlementID, c.CustomerID)
		a.Detail = fmt.Sprintf("The money moved as planned; event %s was not taken within %s after the settlement settled, "+
			"so NOTIFY is DEAD. Once the app answers again, settle replay sends the same event again.", eventID, giveUpAfter)
		a.Action = fmt.Sprintf("settle replay %d --reason \"lender app back\"", c.SettlementID)
	}
	return a
}

// engineAccountKey is the configuration key of the engine account a
// refusal of c is about, when the code says an account is missing, closed
// or frozen and c's destination is one of the provider's engine accounts;
// "" otherwise: the refused account is the customer's (a PAYOUT's payout
// account, a reversed SWEEP's virtual account). The bank does not say which
// side it refused, and the destination is the one to blame: a leg to a
// customer's account comes from the collection account, which the
// settlement's SWEEP sent money to moments before (a collection account
// that is missing, closed or frozen fails that SWEEP, naming its key).
func (e *Executor) engineAccountKey(c Claim, code RefusalCode) string {
	switch code {
	case RefusedNoSuchAccount, RefusedAccountClosed, RefusedAccountFrozen:
	default:
		return ""
	}
	return e.cfg.AccountKeys[c.Provider][c.To]
}

// FailureAlert is the operator's message for a failed settlement. One
// about an engine account names its configuration key, and the command
// that checks it.
func FailureAlert(c Claim, f Failure) Alert {
	cause := cmpOr(f.Cause, CauseOutOfAttempts)
	if f.Refused != nil {
		cause = string(f.Refused.Code)
	}
	a := Alert{
		ProblemKey:   fmt.Sprintf("settlement:%d:%s", c.SettlementID, cause),
		Kind:         AlertKindSettlementFailed,
		Severity:     SeverityCritical,
		SettlementID: c.SettlementID,
		Summary:      fmt.Sprintf("Settlement %d failed at %s (step %d of customer %d): %s", c.SettlementID, c.Kind, c.Seq, c.CustomerID, cause),
		Detail:       cmpOr(f.Detail, f.Reason),
		Action:       fmt.Sprintf("settle settlements show %d", c.SettlementID),
	}
	if f.ConfigKey != "" {
		a.ConfigKey = f.ConfigKey
		a.Summary += " at the engine's own account " + f.ConfigKey + ": fix the configuration, not the customer"
		a.Action = "settle providers check --provider " + c.Provider
	}
	return a
}
