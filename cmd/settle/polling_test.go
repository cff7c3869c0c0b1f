package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// rateSample is the bank's request count at one moment.
type rateSample struct {
	at       time.Duration
	calls    int64
	rejected int64
}

// A payday burst at a bank that allows 50 calls a second, with the
// provider's throttle at 50 calls a second: the bank never answers 429,
// and the engine keeps the allowed rate in use while the burst lasts
// (measured and logged, not asserted: docs/polling.md has the figures).
// SETTLE_TEST_RATE_CUSTOMERS sets the burst's size (default 150),
// SETTLE_TEST_RATE_RPS the limit (default 50) and SETTLE_TEST_RATE_BURST
// the throttle's burst (default 1).
func TestThrottleKeepsTheBankLimitInUse(t *testing.T) {
	rps, n := 50, 150
	if v, err := strconv.Atoi(os.Getenv("SETTLE_TEST_RATE_RPS")); err == nil && v > 0 {
		rps = v
	}
	if v, err := strconv.Atoi(os.Getenv("SETTLE_TEST_RATE_CUSTOMERS")); err == nil && v > 0 {
		n = v
	}
	burst := 1
	if v, err := strconv.Atoi(os.Getenv("SETTLE_TEST_RATE_BURST")); err == nil && v > 0 {
		burst = v
	}
	e := newTwoBanks(t, fmt.Sprintf("rate_limit_rps: %d, burst: %d, ", rps, burst), "")
	ctx := context.Background()
	if err := e.legacy.SetFaults(ctx, banksim.Faults{RateLimitRPS: float64(rps)}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		va, own := fmt.Sprintf("VA%05d", i), fmt.Sprintf("OWN%05d", i)
		openAccount(t, e.legacy, va)
		openAccount(t, e.legacy, own)
		if _, err := e.db.CreateCustomer(ctx, store.NewCustomer{
			ExternalRef: fmt.Sprintf("r-%05d", i), HolderName: "Holder " + own, Payout: pipeline.Payee{Account: own, Holder: "Holder " + own},
			Provider: "legacy", VANumber: va, Currency: "KRW",
			Obligations: pipeline.Obligations{Outstanding: 100_000, Hold: 20_000, FeeFixed: 500}, // five transfers each
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.legacy.Credit(ctx, va, 2_000_000, "ACME PAYROLL"); err != nil {
			t.Fatal(err)
		}
	}
	var samples []rateSample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if st, err := e.legacy.Stats(ctx); err == nil {
					samples = append(samples, rateSample{time.Since(start), st.DialectCalls(), st.RateLimited})
				}
			}
		}
	})
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(halt)
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"SETTLED": int64(n)})
	halt()

	st, err := e.legacy.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.RateLimited != 0 {
		t.Errorf("the bank answered 429 %d times: the engine went over its limit", st.RateLimited)
	}
	if got := settletest.CheckMoney(t, e.db, e.legacy, "legacy", openbanking.AttemptKey); got != 5*n {
		t.Errorf("%d transfers went through, want %d", got, 5*n)
	}
	total := st.DialectCalls()
	if testing.Verbose() {
		t.Logf("calls per second: %v", perSecond(samples))
	}
	from, to := busyWindow(samples, total)
	rate := float64(to.calls-from.calls) / (to.at - from.at).Seconds()
	t.Logf("throttle burst %d; burst of %d settlements: %d calls to the bank (%d balance, %d transfers, %d results), 429s %d; "+
		"from %.1fs to %.1fs (5%%..95%% of the calls) %.1f calls/s = %.1f%% of the %d allowed; busiest second %d calls",
		burst, n, total, st.Requests["GET /v2.0/account/balance/acnt_num"], st.Requests["POST /v2.0/transfer/deposit/acnt_num"],
		st.Requests["POST /v2.0/transfer/result"], st.RateLimited, from.at.Seconds(), to.at.Seconds(), rate, 100*rate/float64(rps), rps, busiest(samples))
}

// busyWindow returns the samples at which 5% and 95% of the calls were
// made: the burst, without its ramp-up and its tail.
func busyWindow(ss []rateSample, total int64) (from, to rateSample) {
	for _, s := range ss {
		if from.calls == 0 && s.calls >= total/20 {
			from = s
		}
		if s.calls >= total*19/20 {
			return from, s
		}
	}
	return from, ss[len(ss)-1]
}

// busiest returns the most calls the bank saw within one second.
func busiest(ss []rateSample) int64 {
	var most int64
	j := 0
	for i := range ss {
		for ss[i].at-ss[j].at > time.Second {
			j++
		}
		most = max(most, ss[i].calls-ss[j].calls)
	}
	return most
}

// perSecond returns the calls made in each whole second of the run.
func perSecond(ss []rateSample) []int64 {
	var out []int64
	var last int64
	next := time.Second
	for _, s := range ss {
		if s.at >= next {
			out = append(out, s.calls-last)
			last, next = s.calls, next+time.Second
		}
	}
	return out
}
