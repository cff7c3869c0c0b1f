package throttle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// State is where a circuit breaker stands.
type State string

const (
	// Closed: calls go through and their outcomes are counted.
	Closed State = "closed"
	// Open: calls fail fast until the cool-down has passed.
	Open State = "open"
	// HalfOpen: the cool-down has passed; one probe call goes through and
	// decides, the others fail fast meanwhile.
	HalfOpen State = "half-open"
)

// Operation is what a call does at the bank. Each has a breaker of its
// own, so a statement that cannot be read never pauses transfers.
type Operation string

// The operations of a provider.
const (
	OpBalances   Operation = "balances"
	OpTransfers  Operation = "transfers"
	OpStatus     Operation = "status"
	OpStatements Operation = "statements"
)

// Operations lists every operation, in a fixed order.
var Operations = []Operation{OpBalances, OpTransfers, OpStatus, OpStatements}

// Transition is one change of a breaker's state.
type Transition struct {
	Provider  string
	Operation Operation
	From, To  State
	At        time.Time
	Failures  int   // failures among the recent calls counted
	Err       error // the failure that opened the breaker; nil for other transitions
}

// outcome is what a call's result says about the bank's health.
type outcome int

const (
	neutral outcome = iota // says nothing: the caller gave up, the request was invalid
	healthy                // the bank answered
	failed                 // the bank is down, broken or too slow
)

// outcomeOf judges a call's result.
func outcomeOf(ctx context.Context, err error) outcome {
	var refused *pipeline.RefusedError
	var ue *url.Error
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &refused), errors.Is(err, pipeline.ErrNotFound), errors.Is(err, pipeline.ErrKeyReused),
		errors.Is(err, pipeline.ErrRateLimited), errors.Is(err, pipeline.ErrUnavailable), errors.Is(err, pipeline.ErrUnauthorized):
		return healthy // the bank answered; busy (ErrUnavailable) and 429 slow the provider down instead
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return neutral
	case errors.Is(err, pipeline.ErrBadResponse),
		errors.As(err, &ue), errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF):
		return failed
	}
	return neutral
}

// breaker is the circuit breaker of one operation of a provider.
type breaker struct {
	name      string
	op        Operation
	threshold int
	coolDown  time.Duration
	clock     Clock
	notify    func(Transition)

	mu       sync.Mutex
	state    State
	recent   []bool    // the outcomes of the latest calls that said something about the bank, oldest first: true failed
	failures int       // how many of recent failed
	until    time.Time // when open: the end of the cool-down
	probing  bool      // when half-open: the probe is out
}

// windowPerThreshold sizes the window of recent calls the breaker judges:
// ten times the failure threshold (50 for the default 5).
const windowPerThreshold = 10

func newBreaker(cfg Config, op Operation, notify func(Transition)) *breaker {
	return &breaker{name: cfg.Name, op: op, threshold: cfg.FailureThreshold, coolDown: cfg.CoolDown, clock: cfg.Clock,
		notify: notify, state: Closed}
}

// countLocked adds a call's outcome to the window, dropping the oldest one
// once the window is full.
func (br *breaker) countLocked(failed bool) {
	if len(br.recent) == br.threshold*windowPerThreshold {
		if br.recent[0] {
			br.failures--
		}
		br.recent = br.recent[1:]
	}
	br.recent = append(br.recent, failed)
	if failed {
		br.failures++
	}
}

// failingLocked reports whether the bank is failing: at least threshold of
// the recent calls failed, and more than three in five of them. A dead bank
// so opens the breaker after threshold calls, while one that fails a share
// of its calls at random (a 5xx here and there, a dropped connection) never
// does: its calls wait and are asked about, they are not paused.
func (br *breaker) failingLocked() bool {
	return br.failures >= br.threshold && br.failures*5 > len(br.recent)*3
}

// forgetLocked empties the window.
func (br *breaker) forgetLocked() { br.recent, br.failures = br.recent[:0], 0 }

// check fails fast while the breaker is open and cooling down, or while a
// probe is out; it changes nothing.
func (br *breaker) check() error {
	br.mu.Lock()
	defer br.mu.Unlock()
	now := br.clock.Now()
	switch {
	case br.state == Open && now.Before(br.until):
		return br.openError(br.until.Sub(now))
	case br.state == HalfOpen && br.probing:
		return br.openError(0)
	}
	return nil
}

// admit lets a call through: any call while closed, the probe once the
// cool-down has passed. It reports whether the call is the probe.
func (br *breaker) admit() (probe bool, err error) {
	br.mu.Lock()
	now := br.clock.Now()
	t := br.coolLocked(now)
	switch {
	case br.state == Closed:
	case br.state == Open:
		err = br.openError(br.until.Sub(now))
	case br.probing:
		err = br.openError(0)
	default:
		br.probing, probe = true, true
	}
	br.mu.Unlock()
	br.emit(t)
	return probe, err
}

// record learns from a call's result.
func (br *breaker) record(probe bool, o outcome, err error) {
	br.mu.Lock()
	now := br.clock.Now()
	var t *Transition
	switch {
	case probe:
		br.probing = false
		t = br.afterProbeLocked(now, o, err)
	case br.state != Closed: // a call that started before the breaker opened
	case o == healthy:
		br.countLocked(false)
	case o == failed:
		br.countLocked(true)
		if br.failingLocked() {
			t = br.openLocked(now, err)
		}
	}
	br.mu.Unlock()
	br.emit(t)
}

func (br *breaker) afterProbeLocked(now time.Time, o outcome, err error) *Transition {
	switch o {
	case healthy:
		br.forgetLocked()
		return br.moveLocked(now, Closed, nil)
	case failed:
		return br.openLocked(now, err)
	}
	return nil // the probe said nothing: the next call probes
}

// current returns the state, turning an open breaker whose cool-down has
// passed half-open.
func (br *breaker) current() State {
	br.mu.Lock()
	t := br.coolLocked(br.clock.Now())
	s := br.state
	br.mu.Unlock()
	br.emit(t)
	return s
}

// coolLocked turns an open breaker half-open once its cool-down has passed.
func (br *breaker) coolLocked(now time.Time) *Transition {
	if br.state != Open || now.Before(br.until) {
		return nil
	}
	br.probing = false
	return br.moveLocked(now, HalfOpen, nil)
}

func (br *breaker) openLocked(now time.Time, err error) *Transition {
	br.until = now.Add(br.coolDown)
	return br.moveLocked(now, Open, err)
}

func (br *breaker) moveLocked(now time.Time, to State, err error) *Transition {
	t := &Transition{Provider: br.name, Operation: br.op, From: br.state, To: to, At: now, Failures: br.failures, Err: err}
	br.state = to
	return t
}

// emit reports a transition; it is called without the lock held.
func (br *breaker) emit(t *Transition) {
	if t != nil && br.notify != nil {
		br.notify(*t)
	}
}

// openError is the error of a call failed fast; wait is how long until a
// probe may go.
func (br *breaker) openError(wait time.Duration) error {
	err := fmt.Errorf("throttle %s (%s): %w, nothing sent: %w", br.name, br.op, ErrCircuitOpen, pipeline.ErrUnavailable)
	return &pipeline.RetryAfterError{Err: err, After: wait}
}
