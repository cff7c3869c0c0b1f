// Package throttle guards one bank provider: it wraps the provider's
// pipeline.Bank with
//
//   - a token-bucket rate limit (golang.org/x/time/rate) on every call that
//     never lets more than RPS calls through in any second,
//   - a cap on the calls in flight,
//   - a pause of every call when the bank answers 429 with Retry-After, until
//     the time it asked for has passed,
//   - a slow-down when the bank says it is busy (ErrUnavailable: gateway
//     busy, nothing done): every call pauses for a backoff that doubles
//     while the bank stays busy, and the rate halves (down to a tenth of
//     RPS), growing back by a twentieth of RPS with each answer that is not
//     busy, and
//   - a circuit breaker per operation (balances, transfers, status,
//     statements): once at least FailureThreshold of the operation's recent
//     calls (the last 10 × FailureThreshold) failed, and more than three in
//     five of them (transport errors, 5xx and garbage answers), it opens and
//     fails that operation's calls fast for CoolDown, then lets one probe
//     call through (half-open); the probe's success closes it, its failure
//     opens it again. A bank failing a share of its calls at random does not
//     open it; a statement the bank cannot serve never pauses transfers.
//
// A call the throttle does not send returns an error that classifies as
// transient, never as a failure or an unknown outcome: an open breaker's
// error wraps ErrCircuitOpen and pipeline.ErrUnavailable; a call whose
// context ends while it waits (for a token, a slot or a Retry-After pause)
// wraps ErrNotSent, pipeline.ErrRateLimited and the context's error. Both
// carry a *pipeline.RetryAfterError hint when the throttle knows one. So
// steps wait; they do not fail.
//
// Statements puts a provider's statement lister behind the same throttle,
// so reconciliation's reads share the provider's limits with settlement.
//
// Refusals, not-found, key conflicts, busy answers, 429s and 401s are the
// bank answering: they count as the bank being up. Invalid requests and the caller's own
// cancellation count as nothing.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/settle-dev/settle/pipeline"
)

// Defaults of Config.
const (
	DefaultRPS              = 10.0
	DefaultMaxInFlight      = 8
	DefaultFailureThreshold = 5
	DefaultCoolDown         = 30 * time.Second
)

// maxPause caps the pause a bank's Retry-After may impose.
const maxPause = time.Hour

// The pause after a busy answer starts at busyPause, doubles with each busy
// answer in a row and stops at maxBusyPause.
const (
	busyPause    = 250 * time.Millisecond
	maxBusyPause = 10 * time.Second
)

// ErrCircuitOpen is wrapped, with pipeline.ErrUnavailable, by the error of a
// call the open circuit breaker failed fast: nothing was sent.
var ErrCircuitOpen = errors.New("circuit breaker open")

// ErrNotSent is wrapped, with pipeline.ErrRateLimited and the context's
// error, by the error of a call whose context ended while it waited for a
// rate-limit token, a free slot or the end of a Retry-After pause: nothing
// was sent.
var ErrNotSent = errors.New("call not sent")

// Clock is the throttle's time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx ends, whichever is first; it returns
	// ctx.Err() in the second case.
	Sleep(ctx context.Context, d time.Duration) error
}

// Config configures the throttle of one provider.
type Config struct {
	// Name names the provider in errors, logs and transitions. Required.
	Name string
	// RPS is the calls a second the token bucket lets through; 0 means
	// DefaultRPS (10); math.Inf(1) means no limit.
	RPS float64
	// Burst is the bucket's size: calls that may go at once after a quiet
	// spell; 0 means 1. The bucket refills at RPS − (Burst − 1) a second, so
	// no second ever sees more than RPS calls; Burst may not exceed RPS.
	Burst int
	// MaxInFlight caps the calls in progress at once; 0 means
	// DefaultMaxInFlight (8).
	MaxInFlight int
	// FailureThreshold is the fewest failures among an operation's last
	// 10 × FailureThreshold calls that open its breaker, once they are more
	// than three in five of those calls; 0
	// means DefaultFailureThreshold (5).
	FailureThreshold int
	// CoolDown is how long the breaker stays open before a probe; 0 means
	// DefaultCoolDown (30 s).
	CoolDown time.Duration
	// BalanceBatch is the accounts one call of the wrapped adapter asks
	// about (rest.BatchSize, openbanking.BatchSize): Balances is split into
	// calls of this size, each throttled on its own. 0 means no split.
	BalanceBatch int
	// OnStateChange, if set, is called after each breaker transition, outside
	// the throttle's locks; it must not block for long. Transitions of
	// concurrent calls may arrive out of order: each carries its time.
	OnStateChange func(Transition)
	// Clock is the time source; nil means the system clock.
	Clock Clock
	// Logger receives a warning per transition and an info per pause; nil
	// discards them.
	Logger *slog.Logger
}

// withDefaults validates cfg and fills in its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.Name == "":
		return cfg, errors.New("field Name must be set to the provider's name")
	case cfg.RPS < 0 || math.IsNaN(cfg.RPS):
		return cfg, fmt.Errorf("field RPS must not be negative (got %v); 0 means %v", cfg.RPS, DefaultRPS)
	case cfg.Burst < 0 || cfg.MaxInFlight < 0 || cfg.FailureThreshold < 0 || cfg.BalanceBatch < 0:
		return cfg, errors.New("fields Burst, MaxInFlight, FailureThreshold and BalanceBatch must not be negative; 0 means the default")
	case cfg.CoolDown < 0:
		return cfg, fmt.Errorf("field CoolDown must not be negative (got %s); 0 means %s", cfg.CoolDown, DefaultCoolDown)
	}
	cfg.RPS = orDefault(cfg.RPS, DefaultRPS)
	cfg.Burst = orDefault(cfg.Burst, 1)
	if float64(cfg.Burst) > cfg.RPS {
		return cfg, fmt.Errorf("field Burst (%d) must not exceed RPS (%v): a burst above the rate would let more than the rate through in one second", cfg.Burst, cfg.RPS)
	}
	cfg.MaxInFlight = orDefault(cfg.MaxInFlight, DefaultMaxInFlight)
	cfg.FailureThreshold = orDefault(cfg.FailureThreshold, DefaultFailureThreshold)
	cfg.CoolDown = orDefault(cfg.CoolDown, DefaultCoolDown)
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Bank is a throttled pipeline.Bank. It is safe for concurrent use.
type Bank struct {
	inner    pipeline.Bank
	cfg      Config
	refill   rate.Limit // the limiter's rate when the bank is not busy
	limiter  *rate.Limiter
	slots    chan struct{}
	breakers map[Operation]*breaker

	mu          sync.Mutex // guards pausedUntil and busy, and orders reservations
	pausedUntil time.Time
	busy        int // busy answers in a row
}

var _ pipeline.Bank = (*Bank)(nil)

// Wrap returns inner throttled as cfg says.
func Wrap(inner pipeline.Bank, cfg Config) (*Bank, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("throttle %s: config: %w", cfg.Name, err)
	}
	limit := rate.Limit(cfg.RPS - float64(cfg.Burst-1))
	if math.IsInf(cfg.RPS, 1) {
		limit = rate.Inf
	}
	b := &Bank{
		inner: inner, cfg: cfg, refill: limit,
		limiter:  rate.NewLimiter(limit, cfg.Burst),
		slots:    make(chan struct{}, cfg.MaxInFlight),
		breakers: make(map[Operation]*breaker, len(Operations)),
	}
	for _, op := range Operations {
		b.breakers[op] = newBreaker(cfg, op, b.transitioned)
	}
	return b, nil
}

// State returns the worst state now of the breakers that guard the money
// (balances, transfers, status); an open breaker whose cool-down has passed
// is half-open. StateOf tells each operation's.
func (b *Bank) State() State {
	worst := Closed
	for _, op := range []Operation{OpBalances, OpTransfers, OpStatus} {
		switch s := b.StateOf(op); {
		case s == Open, s == HalfOpen && worst == Closed:
			worst = s
		}
	}
	return worst
}

// StateOf returns the state now of one operation's breaker.
func (b *Bank) StateOf(op Operation) State { return b.breakers[op].current() }

// Rate is the calls a second the throttle lets through now: less than the
// configured rate while the bank keeps saying it is busy.
func (b *Bank) Rate() float64 { return float64(b.limiter.Limit()) }

// Balances asks the wrapped bank, in calls of BalanceBatch accounts.
func (b *Bank) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	size := b.cfg.BalanceBatch
	if size == 0 || len(accounts) <= size {
		return throttled(b, ctx, OpBalances, func(ctx context.Context) ([]pipeline.Balance, error) { return b.inner.Balances(ctx, accounts) })
	}
	var out []pipeline.Balance
	for start := 0; start < len(accounts); start += size {
		batch := accounts[start:min(start+size, len(accounts))]
		got, err := throttled(b, ctx, OpBalances, func(ctx context.Context) ([]pipeline.Balance, error) { return b.inner.Balances(ctx, batch) })
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// Transfer sends the transfer through the throttle.
func (b *Bank) Transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	return throttled(b, ctx, OpTransfers, func(ctx context.Context) (pipeline.Receipt, error) { return b.inner.Transfer(ctx, req) })
}

// TransferStatus asks for the transfer's status through the throttle.
func (b *Bank) TransferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	return throttled(b, ctx, OpStatus, func(ctx context.Context) (pipeline.Receipt, error) { return b.inner.TransferStatus(ctx, req) })
}

// throttled runs one call of the wrapped bank: fail fast if the
// operation's breaker is open, take a slot, wait out any pause, take a
// token, pass the breaker, call, and learn from the result.
func throttled[T any](b *Bank, ctx context.Context, op Operation, call func(context.Context) (T, error)) (T, error) {
	var zero T
	br := b.breakers[op]
	if err := br.check(); err != nil {
		return zero, err
	}
	release, err := b.acquire(ctx)
	if err != nil {
		return zero, err
	}
	defer release()
	if err := b.waitPause(ctx); err != nil {
		return zero, err
	}
	if err := b.waitToken(ctx); err != nil {
		return zero, err
	}
	probe, err := br.admit()
	if err != nil {
		return zero, err
	}
	v, err := call(ctx)
	b.learn(ctx, err)
	br.record(probe, outcomeOf(ctx, err), err)
	return v, err
}

// acquire takes a slot of MaxInFlight; the returned func gives it back.
func (b *Bank) acquire(ctx context.Context) (func(), error) {
	release := func() { <-b.slots }
	select {
	case b.slots <- struct{}{}:
		return release, nil
	default:
	}
	select {
	case b.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, b.notSent(ctx.Err(), "a free slot", 0)
	}
}

// waitPause waits until a Retry-After pause has passed. A pause longer than
// the call's deadline returns at once, with the pause as its hint.
func (b *Bank) waitPause(ctx context.Context) error {
	for {
		b.mu.Lock()
		left := b.pausedUntil.Sub(b.cfg.Clock.Now())
		b.mu.Unlock()
		if left <= 0 {
			return nil
		}
		if outlasts(ctx, left) {
			return b.notSent(context.DeadlineExceeded, "the bank's Retry-After pause", left)
		}
		if err := b.cfg.Clock.Sleep(ctx, left); err != nil {
			return b.notSent(err, "the bank's Retry-After pause", left)
		}
	}
}

// waitToken takes a token from the bucket, waiting for one if need be. A
// wait longer than the call's deadline, or cut short by ctx, gives the
// token back.
func (b *Bank) waitToken(ctx context.Context) error {
	b.mu.Lock() // reservations in the order of their times
	now := b.cfg.Clock.Now()
	r := b.limiter.ReserveN(now, 1)
	b.mu.Unlock()
	if !r.OK() {
		return b.notSent(errors.New("the rate limit admits no call"), "a rate-limit token", 0)
	}
	wait := r.DelayFrom(now)
	if wait <= 0 {
		return nil
	}
	if outlasts(ctx, wait) {
		r.CancelAt(now)
		return b.notSent(context.DeadlineExceeded, "a rate-limit token", wait)
	}
	if err := b.cfg.Clock.Sleep(ctx, wait); err != nil {
		r.CancelAt(b.cfg.Clock.Now())
		return b.notSent(err, "a rate-limit token", wait)
	}
	return nil
}

// outlasts reports whether ctx ends before d has passed.
func outlasts(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return ok && time.Until(deadline) < d
}

// notSent is the error of a call that was never sent.
func (b *Bank) notSent(cause error, waitingFor string, hint time.Duration) error {
	err := fmt.Errorf("throttle %s: %w: %w while waiting for %s: %w", b.cfg.Name, ErrNotSent, cause, waitingFor, pipeline.ErrRateLimited)
	return &pipeline.RetryAfterError{Err: err, After: hint}
}

// learn pauses every call when the bank asks for it with a Retry-After,
// and slows the provider down while the bank says it is busy.
func (b *Bank) learn(ctx context.Context, err error) {
	if errors.Is(err, pipeline.ErrUnavailable) {
		b.slowDown()
		return
	}
	if outcomeOf(ctx, err) == healthy {
		b.speedUp()
	}
	after := pipeline.RetryAfter(err)
	if after <= 0 || !errors.Is(err, pipeline.ErrRateLimited) {
		return
	}
	b.pause(min(after, maxPause), "bank asked to slow down; pausing calls")
}

// pause holds every call back for d, unless a longer pause is on.
func (b *Bank) pause(d time.Duration, why string) {
	until := b.cfg.Clock.Now().Add(d)
	b.mu.Lock()
	extended := until.After(b.pausedUntil)
	if extended {
		b.pausedUntil = until
	}
	b.mu.Unlock()
	if extended {
		b.cfg.Logger.Info(why, "provider", b.cfg.Name, "until", until)
	}
}

// slowDown answers a busy bank: a pause that doubles with each busy answer
// in a row, and half the rate, down to a tenth of the configured one.
func (b *Bank) slowDown() {
	b.mu.Lock()
	b.busy++
	d := busyPause << min(b.busy-1, 16)
	b.mu.Unlock()
	if b.refill != rate.Inf {
		now := b.cfg.Clock.Now()
		b.limiter.SetLimitAt(now, max(b.limiter.Limit()/2, b.refill/10))
	}
	b.pause(min(d, maxBusyPause), "bank busy; slowing down")
}

// speedUp grows the rate back by a twentieth of the configured one after
// an answer that is not busy.
func (b *Bank) speedUp() {
	b.mu.Lock()
	b.busy = 0
	b.mu.Unlock()
	if lim := b.limiter.Limit(); lim < b.refill {
		b.limiter.SetLimitAt(b.cfg.Clock.Now(), min(lim+b.refill/20, b.refill))
	}
}

func (b *Bank) transitioned(t Transition) {
	b.cfg.Logger.Warn("bank circuit breaker "+string(t.To), "provider", t.Provider, "operation", string(t.Operation), "from", string(t.From),
		"failures", t.Failures, "err", t.Err)
	if b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(t)
	}
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
