package banktest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
)

// Token is the bearer token of the sandbox banks the suite starts.
const Token = "banktest-token-5f0c2a"

// Start is the time the sandbox clocks start at: 2026-11-25 09:30 KST.
var Start = time.Date(2026, 11, 25, 0, 30, 0, 0, time.UTC)

// Clock is a manual clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sandbox is a sandbox bank served over real HTTP, with a manual clock.
type Sandbox struct {
	t     testing.TB
	URL   string
	Clock *Clock
	Sim   *banksim.Client // the sandbox-only endpoints
}

// NewSandbox starts an empty sandbox bank guarded by Token; it stops when
// the test ends.
func NewSandbox(t testing.TB) *Sandbox {
	t.Helper()
	clk := NewClock(Start)
	srv := httptest.NewServer(banksim.New(banksim.Options{Token: Token, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	return &Sandbox{t: t, URL: srv.URL, Clock: clk, Sim: banksim.NewClient(srv.URL, Token, srv.Client())}
}

func bg() context.Context { return context.Background() }

// Open creates a KRW account.
func (s *Sandbox) Open(id, holder string, balance int64) {
	s.t.Helper()
	if _, err := s.Sim.CreateAccount(bg(), banksim.Account{ID: id, HolderName: holder, Balance: balance, Currency: "KRW"}); err != nil {
		s.t.Fatalf("open %s: %v", id, err)
	}
}

// SetState freezes, closes or reopens an account.
func (s *Sandbox) SetState(id string, state banksim.AccountState) {
	s.t.Helper()
	if _, err := s.Sim.SetState(bg(), id, state, ""); err != nil {
		s.t.Fatalf("set state of %s: %v", id, err)
	}
}

// Faults replaces the fault injection; Faults{} clears it.
func (s *Sandbox) Faults(f banksim.Faults) {
	s.t.Helper()
	if err := s.Sim.SetFaults(bg(), f); err != nil {
		s.t.Fatalf("set faults: %v", err)
	}
}

// Journal returns every transfer the bank applied.
func (s *Sandbox) Journal() []banksim.JournalEntry {
	s.t.Helper()
	j, err := s.Sim.Journal(bg(), 0)
	if err != nil {
		s.t.Fatalf("journal: %v", err)
	}
	return j
}

// Balance returns an account's balance.
func (s *Sandbox) Balance(id string) int64 {
	s.t.Helper()
	a, err := s.Sim.Account(bg(), id)
	if err != nil {
		s.t.Fatalf("account %s: %v", id, err)
	}
	return a.Balance
}
