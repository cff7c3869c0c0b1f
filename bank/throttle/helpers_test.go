package throttle_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/pipeline"
)

var t0 = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

func bg() context.Context { return context.Background() }

// fakeClock is a manual clock whose Sleep returns when Advance passes its
// end or its context ends.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers map[*sleeper]bool
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0, sleepers: map[*sleeper]bool{}} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	c.mu.Lock()
	s := &sleeper{until: c.now.Add(d), wake: make(chan struct{})}
	c.sleepers[s] = true
	c.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.sleepers, s)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Advance moves the clock and wakes the sleepers whose time has come.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for s := range c.sleepers {
		if !s.until.After(c.now) {
			close(s.wake)
			delete(c.sleepers, s)
		}
	}
}

// Sleepers is the number of goroutines sleeping on the clock.
func (c *fakeClock) Sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// fakeBank is the wrapped bank: it records when each call came, by the fake
// clock, and answers with answer(n) for the n-th call (from 1). With a gate,
// each call waits for a value from it (or its context) before answering.
type fakeBank struct {
	clock  *fakeClock
	gate   chan error
	answer func(n int) error

	mu          sync.Mutex
	calls       []time.Time
	batches     [][]string
	inFlight    int
	maxInFlight int
}

var _ pipeline.Bank = (*fakeBank)(nil)

func (f *fakeBank) call(ctx context.Context) error {
	f.mu.Lock()
	f.calls = append(f.calls, f.clock.Now())
	n := len(f.calls)
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	var err error
	if f.answer != nil {
		err = f.answer(n)
	}
	if f.gate != nil {
		select {
		case err = <-f.gate:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	return err
}

func (f *fakeBank) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	f.mu.Lock()
	f.batches = append(f.batches, accounts)
	f.mu.Unlock()
	if err := f.call(ctx); err != nil {
		return nil, err
	}
	out := make([]pipeline.Balance, len(accounts))
	for i, a := range accounts {
		out[i] = pipeline.Balance{Account: a, Available: pipeline.Money{Amount: 1, Currency: "KRW"}}
	}
	return out, nil
}

func (f *fakeBank) Transfer(ctx context.Context, _ pipeline.TransferRequest) (pipeline.Receipt, error) {
	if err := f.call(ctx); err != nil {
		return pipeline.Receipt{}, err
	}
	return pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "ref"}, nil
}

func (f *fakeBank) TransferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	return f.Transfer(ctx, req)
}

func (f *fakeBank) snapshot() (calls []time.Time, inFlight, maxInFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...), f.inFlight, f.maxInFlight
}

func (f *fakeBank) callCount() int {
	c, _, _ := f.snapshot()
	return len(c)
}

func (f *fakeBank) inFlightNow() int {
	_, n, _ := f.snapshot()
	return n
}

// wrap returns the fake wrapped by a throttle on the fake's clock.
func wrap(t *testing.T, f *fakeBank, cfg throttle.Config) *throttle.Bank {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "acme"
	}
	cfg.Clock = f.clock
	b, err := throttle.Wrap(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func transfer() pipeline.TransferRequest {
	return pipeline.TransferRequest{Key: "settle-s1-a1", From: "A", To: "B", Amount: pipeline.Money{Amount: 1, Currency: "KRW"}}
}

// recorder collects breaker transitions.
type recorder struct {
	mu sync.Mutex
	ts []throttle.Transition
}

func (r *recorder) add(t throttle.Transition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ts = append(r.ts, t)
}

func (r *recorder) path() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, t := range r.ts {
		out = append(out, string(t.From)+">"+string(t.To))
	}
	return out
}

// Transactions makes the fake a statement lister too: an empty page.
func (f *fakeBank) Transactions(ctx context.Context, _, _ string, _ int) (pipeline.StatementPage, error) {
	if err := f.call(ctx); err != nil {
		return pipeline.StatementPage{}, err
	}
	return pipeline.StatementPage{Next: "1"}, nil
}
