// Package throttle guards one bank provider: it wraps the provider's
// pipeline.Bank with
//
//   - a token-bucket rate limit (golang.org/x/time/rate) on every call,
//   - a cap on the calls in flight,
//   - a pause of every call when the bank answers 429 with Retry-After, until
//     the time it asked for has passed, and
//   - a circuit breaker: after FailureThreshold consecutive failures
//     (transport errors, 5xx and garbage answers, ErrUnavailable) it opens and
//     fails calls fast for CoolDown, then lets one probe call through
//     (half-open); the probe's success closes it, its failure opens it again.
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
// Refusals, not-found, key conflicts, 429s and 401s are the bank answering:
// they count as the bank being up. Invalid requests and the caller's own
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
	// spell; 0 means RPS rounded down, at least 1.
	Burst int
	// MaxInFlight caps the calls in progress at once; 0 means
	// DefaultMaxInFlight (8).
	MaxInFlight int
	// FailureThreshold is the consecutive failures that open the breaker; 0
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
	cfg.Burst = orDefault(cfg.Burst, max(1, int(min(cfg.RPS, math.MaxInt32))))
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
	inner   pipeline.Bank
	cfg     Config
	limiter *rate.Limiter
	slots   chan struct{}
	breaker *breaker

	mu          sync.Mutex // guards pausedUntil and orders reservations
	pausedUntil time.Time
}

var _ pipeline.Bank = (*Bank)(nil)

// Wrap returns inner throttled as cfg says.
func Wrap(inner pipeline.Bank, cfg Config) (*Bank, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("throttle %s: config: %w", cfg.Name, err)
	}
	limit := rate.Limit(cfg.RPS)
	if math.IsInf(cfg.RPS, 1) {
		limit = rate.Inf
	}
	b := &Bank{
		inner: inner, cfg: cfg,
		limiter: rate.NewLimiter(limit, cfg.Burst),
		slots:   make(chan struct{}, cfg.MaxInFlight),
	}
	b.breaker = newBreaker(cfg, b.transitioned)
	return b, nil
}

// State returns the breaker's state now; an open breaker whose cool-down
// has passed is half-open.
func (b *Bank) State() State { return b.breaker.current() }

// Balances asks the wrapped bank, in calls of BalanceBatch accounts.
func (b *Bank) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	size := b.cfg.BalanceBatch
	if size == 0 || len(accounts) <= size {
		return throttled(b, ctx, func(ctx context.Context) ([]pipeline.Balance, error) { return b.inner.Balances(ctx, accounts) })
	}
	var out []pipeline.Balance
	for start := 0; start < len(accounts); start += size {
		batch := accounts[start:min(start+size, len(accounts))]
		got, err := throttled(b, ctx, func(ctx context.Context) ([]pipeline.Balance, error) { return b.inner.Balances(ctx, batch) })
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// Transfer sends the transfer through the throttle.
func (b *Bank) Transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	return throttled(b, ctx, func(ctx context.Context) (pipeline.Receipt, error) { return b.inner.Transfer(ctx, req) })
}

// TransferStatus asks for the transfer's status through the throttle.
func (b *Bank) TransferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	return throttled(b, ctx, func(ctx context.Context) (pipeline.Receipt, error) { return b.inner.TransferStatus(ctx, req) })
}

// throttled runs one call of the wrapped bank: fail fast if the breaker is
// open, take a slot, wait out any pause, take a token, pass the breaker,
// call, and learn from the result.
func throttled[T any](b *Bank, ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := b.breaker.check(); err != nil {
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
	probe, err := b.breaker.admit()
	if err != nil {
		return zero, err
	}
	v, err := call(ctx)
	b.learn(err)
	b.breaker.record(probe, outcomeOf(ctx, err), err)
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

// learn pauses every call when the bank asks for it with a Retry-After.
func (b *Bank) learn(err error) {
	after := pipeline.RetryAfter(err)
	if after <= 0 || !errors.Is(err, pipeline.ErrRateLimited) {
		return
	}
	until := b.cfg.Clock.Now().Add(min(after, maxPause))
	b.mu.Lock()
	extended := until.After(b.pausedUntil)
	if extended {
		b.pausedUntil = until
	}
	b.mu.Unlock()
	if extended {
		b.cfg.Logger.Info("bank asked to slow down; pausing calls", "provider", b.cfg.Name, "until", until)
	}
}

func (b *Bank) transitioned(t Transition) {
	b.cfg.Logger.Warn("bank circuit breaker "+string(t.To), "provider", t.Provider, "from", string(t.From),
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
