package banktest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/banktest"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/pipeline"
)

func bg() context.Context { return context.Background() }

// adapters returns a rest and an openbanking adapter for the same sandbox.
func adapters(t *testing.T, sb *banktest.Sandbox) (*rest.Client, *openbanking.Client) {
	t.Helper()
	r, err := rest.New(rest.Config{Name: "acme-rest", BaseURL: sb.URL, Token: banktest.Token, Now: sb.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	o, err := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "acme-ob", BaseURL: sb.URL, Token: banktest.Token, Now: sb.Clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	return r, o
}

// TestOneAccountInBothDialects: the sandbox's accounts are the same
// accounts whichever dialect moves their money, and its journal tells the
// dialects apart.
func TestOneAccountInBothDialects(t *testing.T) {
	t.Parallel()
	sb := banktest.NewSandbox(t)
	sb.Open("110234567890", "Kim", 1000)
	sb.Open("220987654321", "Lee", 0)
	viaRest, viaOB := adapters(t, sb)
	r1, err := viaRest.Transfer(bg(), banktest.Transfer("settle-s1-a1", "110234567890", "220987654321", "Lee", 300))
	banktest.WantClass(t, "rest transfer", r1, err, pipeline.ClassSuccess)
	r2, err := viaOB.Transfer(bg(), banktest.Transfer("settle-s2-a1", "110234567890", "220987654321", "Lee", 200))
	banktest.WantClass(t, "openbanking transfer", r2, err, pipeline.ClassSuccess)
	for _, b := range []pipeline.Bank{viaRest, viaOB} {
		got, err := b.Balances(bg(), []string{"110234567890", "220987654321"})
		if err != nil || len(got) != 2 || got[0].Available.Amount != 500 || got[1].Available.Amount != 500 {
			t.Fatalf("%T balances %+v %v, want 500 and 500", b, got, err)
		}
	}
	j := sb.Journal()
	if len(j) != 2 || j[0].Dialect != "rest" || j[0].IdempotencyKey != "settle-s1-a1" ||
		j[1].Dialect != "openbanking" || j[1].IdempotencyKey != "S0000000000002A00001" {
		t.Fatalf("journal %+v", j)
	}
	// Each dialect knows only its own keys.
	s, err := viaOB.TransferStatus(bg(), banktest.Transfer("settle-s1-a1", "110234567890", "220987654321", "Lee", 300))
	banktest.WantClass(t, "openbanking status of a rest transfer", s, err, pipeline.ClassAbsent)
}

// sandboxClock lets a throttle read the sandbox's clock; the tests below
// never make it sleep.
type sandboxClock struct{ *banktest.Clock }

func (sandboxClock) Sleep(ctx context.Context, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestThrottleOverRealAdapters: the breaker opens on the failures the rest
// adapter really returns from the sandbox's error fault (HTTP 500), while
// the openbanking one's answer to it (A0001, gateway busy, nothing done)
// slows the provider down and leaves the breaker closed; the sandbox's 429
// pauses the provider.
func TestThrottleOverRealAdapters(t *testing.T) {
	t.Parallel()
	sb := banktest.NewSandbox(t)
	sb.Open("A", "Kim", 1000)
	sb.Open("B", "Lee", 0)
	viaRest, viaOB := adapters(t, sb)
	sb.Faults(banksim.Faults{ErrorRate: 1})
	b, err := throttle.Wrap(viaRest, throttle.Config{Name: "acme", RPS: 1000, Burst: 10, FailureThreshold: 2, Clock: sandboxClock{sb.Clock}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, _ = b.Transfer(bg(), banktest.Transfer("settle-s9-a1", "A", "B", "", 1))
	}
	_, err = b.Transfer(bg(), banktest.Transfer("settle-s9-a1", "A", "B", "", 1))
	if b.State() != throttle.Open || !errors.Is(err, throttle.ErrCircuitOpen) {
		t.Fatalf("rest: %s, %v; want the breaker open", b.State(), err)
	}
	busy, err := throttle.Wrap(viaOB, throttle.Config{Name: "acme", RPS: 1000, Burst: 10, FailureThreshold: 2, Clock: sandboxClock{sb.Clock}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := busy.Transfer(bg(), banktest.Transfer("settle-s9-a1", "A", "B", "", 1)); !errors.Is(err, pipeline.ErrUnavailable) {
		t.Fatalf("openbanking under the error fault: %v, want the bank's busy answer", err)
	}
	short, cancel := context.WithTimeout(bg(), 10*time.Millisecond)
	defer cancel()
	if _, err := busy.Transfer(short, banktest.Transfer("settle-s9-a1", "A", "B", "", 1)); !errors.Is(err, throttle.ErrNotSent) {
		t.Fatalf("openbanking right after a busy answer: %v, want held back by the busy pause", err)
	}
	if busy.State() != throttle.Closed || busy.Rate() >= 1000 {
		t.Fatalf("openbanking after a busy answer: breaker %s, rate %v; want closed and slowed down", busy.State(), busy.Rate())
	}

	sb.Faults(banksim.Faults{RateLimitRPS: 1})
	b, err = throttle.Wrap(viaRest, throttle.Config{Name: "acme", RPS: 1000, Burst: 10, Clock: sandboxClock{sb.Clock}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Balances(bg(), []string{"A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Balances(bg(), []string{"A"}); !errors.Is(err, pipeline.ErrRateLimited) {
		t.Fatalf("over the sandbox's limit: %v", err)
	}
	ctx, cancel := context.WithTimeout(bg(), 10*time.Millisecond)
	defer cancel()
	_, err = b.Balances(ctx, []string{"A"})
	if !errors.Is(err, throttle.ErrNotSent) || pipeline.RetryAfter(err) != time.Second {
		t.Fatalf("during the pause: %v (retry after %s), want not sent, retry after 1s", err, pipeline.RetryAfter(err))
	}
	if st, _ := sb.Sim.Stats(bg()); st.RateLimited != 1 {
		t.Fatalf("stats %+v: the paused call reached the bank", st)
	}
}
