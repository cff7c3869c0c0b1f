package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/pipeline"
)

// TestRateLimitHolds sends many calls at once and checks, call pair by call
// pair, that no stretch of time saw more calls than the bucket allows:
// Burst + (RPS − Burst + 1) × its length, so never more than RPS in a
// second.
func TestRateLimitHolds(t *testing.T) {
	t.Parallel()
	const n, rps, burst = 40, 10.0, 3
	f := &fakeBank{clock: newFakeClock()}
	b := wrap(t, f, throttle.Config{RPS: rps, Burst: burst, MaxInFlight: n})
	var done atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := b.Transfer(bg(), transfer()); err != nil {
				t.Error(err)
			}
			done.Add(1)
		})
	}
	for done.Load() < n {
		waitFor(t, "every call to finish or sleep", func() bool { return int(done.Load())+f.clock.Sleepers() == n })
		if done.Load() < n {
			f.clock.Advance(10 * time.Millisecond)
		}
	}
	wg.Wait()
	calls, _, _ := f.snapshot()
	slices.SortFunc(calls, func(a, b time.Time) int { return a.Compare(b) })
	for i := range calls {
		for j := i; j < len(calls); j++ {
			if allowed := burst + (rps-burst+1)*calls[j].Sub(calls[i]).Seconds() + 1e-9; float64(j-i+1) > allowed {
				t.Fatalf("%d calls between %s and %s: more than %v", j-i+1, calls[i].Sub(t0), calls[j].Sub(t0), allowed)
			}
		}
	}
	if took, least := calls[n-1].Sub(t0), time.Duration(float64(n-burst)/(rps-burst+1)*float64(time.Second)); took < least {
		t.Fatalf("%d calls took %s, want at least %s", n, took, least)
	}
}

func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	const n, limit = 20, 3
	f := &fakeBank{clock: newFakeClock(), gate: make(chan error)}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1), MaxInFlight: limit})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { _, _ = b.Transfer(bg(), transfer()) })
	}
	waitFor(t, "the slots to fill", func() bool { return f.inFlightNow() == limit })
	for range n {
		f.gate <- nil // lets one call answer
	}
	wg.Wait()
	if calls, _, most := f.snapshot(); len(calls) != n || most != limit {
		t.Fatalf("%d calls, at most %d at once; want %d, at most %d", len(calls), most, n, limit)
	}
}

func TestRetryAfterPausesEveryCall(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock(), answer: func(n int) error {
		if n == 1 {
			return &pipeline.RetryAfterError{Err: pipeline.ErrRateLimited, After: 5 * time.Second}
		}
		return nil
	}}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1)})
	_, err := b.Transfer(bg(), transfer())
	if pipeline.Classify(pipeline.Receipt{}, err) != pipeline.ClassTransient || pipeline.RetryAfter(err) != 5*time.Second {
		t.Fatalf("429: %v, want the bank's error unchanged", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = b.Transfer(bg(), transfer()) })
	wg.Go(func() { _, _ = b.TransferStatus(bg(), transfer()) })
	wg.Go(func() { _, _ = b.Balances(bg(), []string{"A"}) })
	waitFor(t, "three paused calls", func() bool { return f.clock.Sleepers() == 3 })
	f.clock.Advance(4 * time.Second)
	if f.clock.Sleepers() != 3 || f.callCount() != 1 {
		t.Fatalf("a call went before the pause ended: %d sleeping, %d calls", f.clock.Sleepers(), f.callCount())
	}
	f.clock.Advance(time.Second)
	wg.Wait()
	calls, _, _ := f.snapshot()
	for _, at := range calls[1:] {
		if at.Before(t0.Add(5 * time.Second)) {
			t.Fatalf("call at %s, inside the pause", at.Sub(t0))
		}
	}
	if len(calls) != 4 {
		t.Fatalf("%d calls, want 4", len(calls))
	}
}

func TestRateLimitedWithoutRetryAfterDoesNotPause(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock(), answer: func(n int) error {
		if n == 1 {
			return &pipeline.RetryAfterError{Err: pipeline.ErrRateLimited}
		}
		return nil
	}}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1)})
	_, _ = b.Transfer(bg(), transfer())
	if _, err := b.Transfer(bg(), transfer()); err != nil || f.clock.Sleepers() != 0 {
		t.Fatalf("second call: %v", err)
	}
}

// failing answers the n-th call with errs[n-1], and nil after the list.
func failing(errs ...error) func(int) error {
	return func(n int) error {
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}
}

func TestBreakerOpensHalfOpensAndCloses(t *testing.T) {
	t.Parallel()
	transport := &url.Error{Op: "Post", URL: "https://bank.example/v1/transfers", Err: errors.New("connection reset")}
	bad := fmt.Errorf("HTTP 502: %w", pipeline.ErrBadResponse)
	f := &fakeBank{clock: newFakeClock(), answer: failing(bad, nil, transport, nil, transport, bad)}
	var rec recorder
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1), FailureThreshold: 3, CoolDown: 10 * time.Second, OnStateChange: rec.add})
	for i := range 5 { // three failures of five calls: not more than three in five, still closed
		_, _ = b.Transfer(bg(), transfer())
		if b.State() != throttle.Closed {
			t.Fatalf("call %d: %s, want closed", i+1, b.State())
		}
	}
	_, _ = b.Transfer(bg(), transfer()) // four of six: the bank is failing
	if b.State() != throttle.Open || !slices.Equal(rec.path(), []string{"closed>open"}) {
		t.Fatalf("state %s, transitions %v; want open", b.State(), rec.path())
	}
	rec.mu.Lock()
	if tr := rec.ts[0]; tr.Provider != "acme" || tr.Operation != throttle.OpTransfers || tr.Failures != 4 ||
		!errors.Is(tr.Err, pipeline.ErrBadResponse) || !tr.At.Equal(t0) {
		t.Fatalf("transition %+v", tr)
	}
	rec.mu.Unlock()

	wantFastFail(t, b, f, 6, 10*time.Second)
	f.clock.Advance(5 * time.Second)
	wantFastFail(t, b, f, 6, 5*time.Second)
	f.clock.Advance(5 * time.Second)
	if b.State() != throttle.HalfOpen {
		t.Fatalf("after the cool-down: %s, want half-open", b.State())
	}

	// The probe fails: open again, and the cool-down starts over.
	f.gate = make(chan error)
	probe := make(chan error)
	go func() { _, err := b.Transfer(bg(), transfer()); probe <- err }()
	waitFor(t, "the probe", func() bool { return f.inFlightNow() == 1 })
	wantFastFail(t, b, f, 7, 0) // only one probe at a time
	f.gate <- bad
	<-probe
	if b.State() != throttle.Open {
		t.Fatalf("after a failed probe: %s, want open", b.State())
	}
	f.gate = nil
	f.clock.Advance(10 * time.Second)
	if _, err := b.Transfer(bg(), transfer()); err != nil { // the probe succeeds
		t.Fatal(err)
	}
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if b.State() != throttle.Closed || !slices.Equal(rec.path(), want) {
		t.Fatalf("state %s, transitions %v; want closed after %v", b.State(), rec.path(), want)
	}
}

// wantFastFail checks that a call fails fast as transient, with the wait
// as its hint, and does not reach the bank (which has had calls calls).
func wantFastFail(t *testing.T, b *throttle.Bank, f *fakeBank, calls int, wait time.Duration) {
	t.Helper()
	r, err := b.Transfer(bg(), transfer())
	if !errors.Is(err, throttle.ErrCircuitOpen) || !errors.Is(err, pipeline.ErrUnavailable) ||
		pipeline.Classify(r, err) != pipeline.ClassTransient || pipeline.RetryAfter(err) != wait {
		t.Fatalf("%v (retry after %s), want a transient ErrCircuitOpen after %s", err, pipeline.RetryAfter(err), wait)
	}
	if !strings.Contains(err.Error(), "acme") || f.callCount() != calls {
		t.Fatalf("%v: %d calls reached the bank, want %d", err, f.callCount(), calls)
	}
}

func TestAnswersDoNotTripTheBreaker(t *testing.T) {
	t.Parallel()
	refused := &pipeline.RefusedError{Code: pipeline.RefusedInsufficientFunds, BankCode: "551"}
	answers := []error{
		refused, refused, refused, fmt.Errorf("x: %w", pipeline.ErrNotFound), pipeline.ErrKeyReused,
		&pipeline.RetryAfterError{Err: pipeline.ErrRateLimited}, pipeline.ErrUnauthorized, pipeline.ErrUnavailable,
	}
	f := &fakeBank{clock: newFakeClock(), answer: failing(answers...)}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1), FailureThreshold: 2})
	for range answers {
		_, _ = b.Transfer(bg(), transfer())
	}
	if b.State() != throttle.Closed || f.callCount() != len(answers) {
		t.Fatalf("%s after %d answers, want closed", b.State(), f.callCount())
	}
}

// Answers outweigh failures; an invalid request, which says nothing about
// the bank, weighs nothing.
func TestAnswersOutweighFailuresAndNothingWeighsNothing(t *testing.T) {
	t.Parallel()
	invalid := errors.New("request invalid, nothing sent")
	refused := &pipeline.RefusedError{Code: pipeline.RefusedAccountClosed, BankCode: "415"}
	bad := fmt.Errorf("HTTP 502: %w", pipeline.ErrBadResponse)
	f := &fakeBank{clock: newFakeClock(), answer: failing(bad, refused, nil, bad, invalid, bad, bad)}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1), FailureThreshold: 2})
	for i := range 6 { // three failures of five calls that said something
		_, _ = b.Transfer(bg(), transfer())
		if b.State() != throttle.Closed {
			t.Fatalf("call %d: %s", i+1, b.State())
		}
	}
	_, _ = b.Transfer(bg(), transfer()) // four of six; counting the invalid request it would be four of seven
	if b.State() != throttle.Open {
		t.Fatalf("%s, want open: an invalid request says nothing about the bank", b.State())
	}
}

// A bank that fails three calls in ten at random (a 5xx here and there)
// keeps its breaker closed: its calls are asked about, not paused. When it
// then fails every call, the breaker opens.
func TestRandomFailuresDoNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	bad := fmt.Errorf("HTTP 500: %w", pipeline.ErrBadResponse)
	rng := rand.New(rand.NewPCG(7, 7))
	dead := false
	f := &fakeBank{clock: newFakeClock(), answer: func(int) error {
		if dead || rng.Float64() < 0.3 {
			return bad
		}
		return nil
	}}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1)})
	for i := range 5000 {
		_, _ = b.Transfer(bg(), transfer())
		if b.State() != throttle.Closed {
			t.Fatalf("call %d at a 30%% failure rate: breaker %s, want closed", i+1, b.State())
		}
	}
	dead = true
	for range 50 {
		_, _ = b.Transfer(bg(), transfer())
	}
	if b.State() != throttle.Open {
		t.Fatalf("a bank failing every call: breaker %s, want open", b.State())
	}
}

func TestCallerCancellingDoesNotTripTheBreaker(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock(), gate: make(chan error)}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1), FailureThreshold: 1})
	ctx, cancel := context.WithCancel(bg())
	done := make(chan error)
	go func() { _, err := b.Transfer(ctx, transfer()); done <- err }()
	waitFor(t, "the call", func() bool { return f.inFlightNow() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || b.State() != throttle.Closed {
		t.Fatalf("%v, state %s; want closed", err, b.State())
	}
}

// wantNotSent checks the error of a call the throttle never sent.
func wantNotSent(t *testing.T, err, cause error, hint time.Duration) {
	t.Helper()
	if !errors.Is(err, throttle.ErrNotSent) || !errors.Is(err, cause) ||
		pipeline.Classify(pipeline.Receipt{}, err) != pipeline.ClassTransient || pipeline.RetryAfter(err) != hint {
		t.Fatalf("%v (retry after %s), want a transient ErrNotSent wrapping %v after %s", err, pipeline.RetryAfter(err), cause, hint)
	}
}

func TestCancelWhileWaitingForAToken(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock()}
	b := wrap(t, f, throttle.Config{RPS: 1, Burst: 1})
	if _, err := b.Transfer(bg(), transfer()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg())
	done := make(chan error)
	go func() { _, err := b.Transfer(ctx, transfer()); done <- err }()
	waitFor(t, "the call to wait for a token", func() bool { return f.clock.Sleepers() == 1 })
	cancel()
	wantNotSent(t, <-done, context.Canceled, time.Second)
	// The cancelled call gave its token back: one second on, a call goes at
	// once.
	f.clock.Advance(time.Second)
	go func() { _, err := b.Transfer(bg(), transfer()); done <- err }()
	waitFor(t, "the next call", func() bool { return f.callCount() == 2 || f.clock.Sleepers() > 0 })
	if f.callCount() != 2 {
		t.Fatal("the next call waits: the cancelled call did not give its token back")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCancelWhileWaitingForASlot(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock(), gate: make(chan error)}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1), MaxInFlight: 1})
	go func() { _, _ = b.Transfer(bg(), transfer()) }()
	waitFor(t, "the first call", func() bool { return f.inFlightNow() == 1 })
	ctx, cancel := context.WithCancel(bg())
	cancel()
	_, err := b.Transfer(ctx, transfer())
	wantNotSent(t, err, context.Canceled, 0)
	f.gate <- nil
	if f.callCount() != 1 {
		t.Fatalf("%d calls, want 1", f.callCount())
	}
}

func TestCancelWhilePaused(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock(), answer: failing(&pipeline.RetryAfterError{Err: pipeline.ErrRateLimited, After: time.Minute})}
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1)})
	_, _ = b.Transfer(bg(), transfer())
	ctx, cancel := context.WithCancel(bg())
	done := make(chan error)
	go func() { _, err := b.Transfer(ctx, transfer()); done <- err }()
	waitFor(t, "the paused call", func() bool { return f.clock.Sleepers() == 1 })
	cancel()
	wantNotSent(t, <-done, context.Canceled, time.Minute)

	// A deadline that ends inside the pause returns at once.
	ctx, cancel = context.WithTimeout(bg(), 30*time.Second)
	defer cancel()
	_, err := b.Transfer(ctx, transfer())
	wantNotSent(t, err, context.DeadlineExceeded, time.Minute)
	if f.callCount() != 1 {
		t.Fatalf("%d calls, want 1", f.callCount())
	}
}

func TestBalancesInBatches(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock()}
	b := wrap(t, f, throttle.Config{RPS: 3, Burst: 3, BalanceBatch: 2})
	got, err := b.Balances(bg(), []string{"A", "B", "C", "D", "E"})
	if err != nil || len(got) != 5 {
		t.Fatalf("balances %v %v", got, err)
	}
	f.mu.Lock()
	batches := fmt.Sprint(f.batches)
	f.mu.Unlock()
	if batches != "[[A B] [C D] [E]]" {
		t.Fatalf("batches %s", batches)
	}
	// The three batches took the bucket's three tokens: the next call waits.
	done := make(chan error)
	go func() { _, err := b.Transfer(bg(), transfer()); done <- err }()
	waitFor(t, "the call to wait for a token", func() bool { return f.clock.Sleepers() == 1 })
	f.clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConfigIsValidated(t *testing.T) {
	t.Parallel()
	for _, cfg := range []throttle.Config{
		{},
		{Name: "acme", RPS: -1},
		{Name: "acme", RPS: math.NaN()},
		{Name: "acme", Burst: -1},
		{Name: "acme", MaxInFlight: -1},
		{Name: "acme", FailureThreshold: -1},
		{Name: "acme", CoolDown: -time.Second},
		{Name: "acme", BalanceBatch: -1},
	} {
		if _, err := throttle.Wrap(&fakeBank{}, cfg); err == nil || !strings.Contains(err.Error(), "config") {
			t.Errorf("%+v: %v, want a config error", cfg, err)
		}
	}
}

// Statement calls share the provider's throttle with transfers: they take
// tokens from the same bucket, and a 429 on either pauses both.
func TestStatementsShareTheThrottle(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock(), answer: failing(nil, &pipeline.RetryAfterError{Err: pipeline.ErrRateLimited, After: 5 * time.Second})}
	b := wrap(t, f, throttle.Config{RPS: 1, Burst: 1})
	lister := b.Statements(f)
	if _, err := b.Transfer(bg(), transfer()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { _, err := lister.Transactions(bg(), "A", "", 10); done <- err }()
	waitFor(t, "the statement call to wait for the token the transfer took", func() bool { return f.clock.Sleepers() == 1 })
	if f.callCount() != 1 {
		t.Fatalf("%d calls before the bucket refilled, want 1", f.callCount())
	}
	f.clock.Advance(time.Second)
	if err := <-done; !errors.Is(err, pipeline.ErrRateLimited) {
		t.Fatalf("statement call: %v, want the bank's 429", err)
	}
	go func() { _, err := b.Transfer(bg(), transfer()); done <- err }()
	waitFor(t, "the transfer to wait out the pause the statement call's 429 asked for", func() bool { return f.clock.Sleepers() == 1 })
	f.clock.Advance(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls, _, _ := f.snapshot(); len(calls) != 3 || calls[2].Before(t0.Add(6*time.Second)) {
		t.Fatalf("calls at %v: the transfer went inside the pause", calls)
	}
}

// A bank that keeps saying it is busy (gateway busy, nothing done) slows
// the provider down: every call waits out a pause that doubles, the rate
// halves; the breaker stays closed. Answers that are not busy bring the
// rate back.
func TestBusyBankSlowsTheProviderDown(t *testing.T) {
	t.Parallel()
	busy := fmt.Errorf("A0001 gateway busy: %w", pipeline.ErrUnavailable)
	f := &fakeBank{clock: newFakeClock(), answer: failing(busy, busy, busy, busy, busy, busy)}
	b := wrap(t, f, throttle.Config{RPS: 40, FailureThreshold: 2})
	pauses := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second}
	for i, pause := range pauses {
		done := make(chan error)
		go func() { _, err := b.Transfer(bg(), transfer()); done <- err }()
		if pause > 0 {
			waitFor(t, "the call to wait out the busy pause", func() bool { return f.clock.Sleepers() == 1 })
			if f.callCount() != i {
				t.Fatalf("call %d reached the bank inside the pause", i+1)
			}
			f.clock.Advance(pause)
		}
		if err := <-done; !errors.Is(err, pipeline.ErrUnavailable) {
			t.Fatalf("call %d: %v, want the bank's busy answer", i+1, err)
		}
	}
	if b.State() != throttle.Closed {
		t.Fatalf("%s after 4 busy answers, want closed: busy is the bank answering", b.State())
	}
	if r := b.Rate(); r != 4 {
		t.Fatalf("rate %v after 4 busy answers, want 40 halved down to its floor of 4", r)
	}
	f.answer = nil
	f.clock.Advance(2 * time.Second) // the last pause
	for range 20 {
		if _, err := b.Transfer(bg(), transfer()); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
	}
	if r := b.Rate(); r != 40 {
		t.Fatalf("rate %v after 20 answers, want back to 40", r)
	}
}

// Each operation has its own breaker: statements the bank cannot serve
// open the statements breaker and leave transfers flowing.
func TestStatementFailuresNeverPauseTransfers(t *testing.T) {
	t.Parallel()
	bad := fmt.Errorf("HTTP 500: %w", pipeline.ErrBadResponse)
	f := &fakeBank{clock: newFakeClock()}
	var rec recorder
	b := wrap(t, f, throttle.Config{RPS: math.Inf(1), FailureThreshold: 2, OnStateChange: rec.add})
	lister := b.Statements(f)
	f.answer = func(int) error { return bad }
	for range 3 {
		_, _ = lister.Transactions(bg(), "A", "", 10)
	}
	if b.StateOf(throttle.OpStatements) != throttle.Open {
		t.Fatalf("statements breaker %s after 3 failures, want open", b.StateOf(throttle.OpStatements))
	}
	f.answer = nil
	if _, err := b.Transfer(bg(), transfer()); err != nil {
		t.Fatalf("a transfer while statements fail: %v", err)
	}
	if b.State() != throttle.Closed || b.StateOf(throttle.OpTransfers) != throttle.Closed {
		t.Fatalf("provider %s, transfers %s: want both closed", b.State(), b.StateOf(throttle.OpTransfers))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.ts) != 1 || rec.ts[0].Operation != throttle.OpStatements {
		t.Fatalf("transitions %+v, want the statements breaker's only", rec.ts)
	}
}

// The default burst is 1: no second sees more calls than the rate, even
// the first after a quiet spell; a burst above the rate is refused.
func TestDefaultBurstKeepsEverySecondWithinTheRate(t *testing.T) {
	t.Parallel()
	f := &fakeBank{clock: newFakeClock()}
	b := wrap(t, f, throttle.Config{RPS: 5, MaxInFlight: 20})
	f.clock.Advance(time.Minute) // a quiet spell: the bucket is full
	var wg sync.WaitGroup
	var done atomic.Int64
	for range 20 {
		wg.Go(func() {
			if _, err := b.Transfer(bg(), transfer()); err != nil {
				t.Error(err)
			}
			done.Add(1)
		})
	}
	for done.Load() < 20 {
		waitFor(t, "every call to finish or sleep", func() bool { return int(done.Load())+f.clock.Sleepers() == 20 })
		if done.Load() < 20 {
			f.clock.Advance(10 * time.Millisecond)
		}
	}
	wg.Wait()
	calls, _, _ := f.snapshot()
	slices.SortFunc(calls, func(a, b time.Time) int { return a.Compare(b) })
	for i := range calls {
		n := 0
		for j := i; j < len(calls) && calls[j].Before(calls[i].Add(time.Second)); j++ {
			n++
		}
		if n > 5 {
			t.Fatalf("%d calls in the second from %s, want at most the rate, 5", n, calls[i].Sub(t0))
		}
	}
	if _, err := throttle.Wrap(f, throttle.Config{Name: "acme", RPS: 5, Burst: 6}); err == nil || !strings.Contains(err.Error(), "Burst") {
		t.Fatalf("burst 6 over rate 5: %v, want refused", err)
	}
}
