package bank_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/banktest"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

// observed records what an Observer hears, one "provider operation outcome"
// line per call.
type observed struct {
	mu    sync.Mutex
	calls []string
}

func (o *observed) ObserveBank(provider, op, outcome string, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took <= 0 {
		outcome += " (no latency)"
	}
	o.calls = append(o.calls, provider+" "+op+" "+outcome)
}

// Every call through the decorator is reported with its provider,
// operation and outcome, over real HTTP to the sandbox bank; nothing else
// of the call is.
func TestInstrumentReportsEveryCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := banktest.NewSandbox(t)
	for _, a := range []banksim.Account{
		{ID: "VA-1001", HolderName: "Kim", Balance: 50_000, Currency: "KRW"},
		{ID: "OWN-2002", HolderName: "Kim", Currency: "KRW"},
	} {
		if _, err := sb.Sim.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sb.Sim.SetState(ctx, "OWN-2002", banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	adapter := func(token string) pipeline.Bank {
		c, err := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.URL, Token: token, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	obs := &observed{}
	b := bank.Instrument(adapter(banktest.Token), "sandbox", obs)
	money := pipeline.Money{Amount: 1000, Currency: "KRW"}
	if _, err := b.Balances(ctx, []string{"VA-1001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Transfer(ctx, pipeline.TransferRequest{Key: "k-ok", From: "VA-1001", To: "OWN-2002", ToHolder: "Kim", Amount: money}); err == nil {
		t.Fatal("a transfer to a frozen account went through")
	}
	if _, err := sb.Sim.SetState(ctx, "OWN-2002", banksim.StateActive, ""); err != nil {
		t.Fatal(err)
	}
	req := pipeline.TransferRequest{Key: "k-ok2", From: "VA-1001", To: "OWN-2002", ToHolder: "Kim", Amount: money}
	if _, err := b.Transfer(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TransferStatus(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TransferStatus(ctx, pipeline.TransferRequest{Key: "never-sent"}); !errors.Is(err, pipeline.ErrNotFound) {
		t.Fatalf("status of a key never sent: %v", err)
	}
	if _, err := bank.Instrument(adapter("wrong-token-000000"), "sandbox", obs).Balances(ctx, []string{"VA-1001"}); err == nil {
		t.Fatal("a wrong token was accepted")
	}
	want := []string{
		"sandbox balances ok",
		"sandbox transfer refused",
		"sandbox transfer ok",
		"sandbox transfer_status ok",
		"sandbox transfer_status not_found",
		"sandbox balances unauthorized",
	}
	if !slices.Equal(obs.calls, want) {
		t.Fatalf("observed\n%q\nwant\n%q", obs.calls, want)
	}
	if b := bank.Instrument(adapter(banktest.Token), "sandbox", nil); fmt.Sprintf("%T", b) != "*rest.Client" {
		t.Fatalf("without an observer the adapter is wrapped anyway: %T", b)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestOutcomeWords(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		r    pipeline.Receipt
		err  error
		want string
	}{
		{pipeline.Receipt{State: pipeline.TransferSucceeded}, nil, "ok"},
		{pipeline.Receipt{State: pipeline.TransferPending}, nil, "pending"},
		{pipeline.Receipt{State: "weird-state-from-a-bank"}, nil, "pending"},
		{pipeline.Receipt{}, &pipeline.RefusedError{Code: pipeline.RefusedAccountFrozen}, "refused"},
		{pipeline.Receipt{}, &pipeline.RetryAfterError{Err: pipeline.ErrRateLimited, After: time.Second}, "rate_limited"},
		{pipeline.Receipt{}, fmt.Errorf("busy: %w", pipeline.ErrUnavailable), "unavailable"},
		{pipeline.Receipt{}, pipeline.ErrUnauthorized, "unauthorized"},
		{pipeline.Receipt{}, pipeline.ErrNotFound, "not_found"},
		{pipeline.Receipt{}, pipeline.ErrKeyReused, "key_reused"},
		{pipeline.Receipt{}, fmt.Errorf("garbage: %w", pipeline.ErrBadResponse), "bad_response"},
		{pipeline.Receipt{}, fmt.Errorf("post: %w", context.DeadlineExceeded), "timeout"},
		{pipeline.Receipt{}, fmt.Errorf("read: %w", timeoutErr{}), "timeout"},
		{pipeline.Receipt{}, context.Canceled, "canceled"},
		{pipeline.Receipt{}, errors.New("connection reset by peer"), "error"},
	} {
		if got := bank.Outcome(c.r, c.err); got != c.want {
			t.Errorf("Outcome(%v, %v) = %q, want %q", c.r.State, c.err, got, c.want)
		}
	}
}
