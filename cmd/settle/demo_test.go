package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/internal/testenv"
)

// The demo's first salary goes to the customer whose payout account it
// froze, so that its failed settlement shows up at the first poll.
func TestDemoPaysTheFrozenCustomerFirst(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs([]string{"demo", "--config", e.path, "--customers", "10", "--per-tick", "1", "--every", "1h"})
		done <- cmd.ExecuteContext(ctx)
	}()
	// 10 customers: the sixth (the middle one) is frozen.
	const frozen = 6
	va := func(i int) string { return fmt.Sprintf("demo-VA%08d", i) }
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		a, err := e.bank.Account(ctx, va(frozen))
		if err != nil {
			return false, err.Error()
		}
		return a.Balance > 0, fmt.Sprintf("the frozen customer's virtual account holds %d", a.Balance)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("settle demo: %v", err)
	}
	bg := context.Background()
	payout, err := e.bank.Account(bg, fmt.Sprintf("demo-OWN%08d", frozen))
	if err != nil || payout.State != banksim.StateFrozen {
		t.Fatalf("the middle customer's payout account: %+v, %v; want frozen", payout, err)
	}
	for i := 1; i <= 10; i++ {
		a, err := e.bank.Account(bg, va(i))
		if err != nil {
			t.Fatal(err)
		}
		if i != frozen && a.Balance != 0 {
			t.Errorf("%s holds %d: only the frozen customer was to be paid in the first tick", va(i), a.Balance)
		}
	}
}
