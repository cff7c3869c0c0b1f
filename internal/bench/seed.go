package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/pipeline"
)

// deposit is one salary to pay into a customer's virtual account.
type deposit struct {
	customer demo.Customer
	amount   int64
	paidAt   time.Time // when the bank confirmed the credit
}

// seedShards is how many demo seeders create customers side by side; each
// has its own prefix and seed, so a run is repeatable.
const seedShards = 8

// seed creates the customers at the sandbox bank and in the database with
// the demo seeder's realistic obligations, and draws each one's salary.
// progress is called every second with the customers created so far.
func seed(ctx context.Context, in *installation, o Options, progress func(done int64)) ([]deposit, error) {
	shards := min(seedShards, o.Customers)
	parts := make([][]deposit, shards)
	g, gctx := errgroup.WithContext(ctx)
	for i := range shards {
		n := o.Customers / shards
		if i < o.Customers%shards {
			n++
		}
		g.Go(func() error {
			s := demo.NewSeeder(in.db, in.bank.client, demo.Options{
				Provider: providerName, Currency: "KRW", Accounts: benchAccounts,
				Customers: n, Prefix: fmt.Sprintf("b%d-", i), Seed: o.Seed*1000 + uint64(i),
			})
			cs, err := s.Seed(gctx)
			if err != nil {
				return err
			}
			for _, c := range cs {
				parts[i] = append(parts[i], deposit{customer: c, amount: s.Salary()})
			}
			return nil
		})
	}
	stop := tick(time.Second, func() {
		if n, err := in.customerCount(ctx); err == nil {
			progress(n)
		}
	})
	err := g.Wait()
	stop()
	if err != nil {
		return nil, fmt.Errorf("seed customers: %w", err)
	}
	if err := setPayday(ctx, in); err != nil {
		return nil, err
	}
	// Interleave the shards, so paced arrivals mix them.
	out := make([]deposit, 0, o.Customers)
	for k := 0; len(out) < o.Customers; k++ {
		for _, p := range parts {
			if k < len(p) {
				out = append(out, p[k])
			}
		}
	}
	return out, nil
}

// payAll credits every virtual account at once: the payday.
func payAll(ctx context.Context, in *installation, ds []deposit) error {
	next := make(chan *deposit)
	g, ctx := errgroup.WithContext(ctx)
	for range 16 {
		g.Go(func() error {
			for d := range next {
				if err := credit(ctx, in, d); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(next)
		for i := range ds {
			select {
			case next <- &ds[i]:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	return g.Wait()
}

func credit(ctx context.Context, in *installation, d *deposit) error {
	if _, err := in.bank.client.Credit(ctx, d.customer.VA, d.amount, "ACME PAYROLL"); err != nil {
		return fmt.Errorf("pay %s: %w", d.customer.Ref, err)
	}
	d.paidAt = time.Now()
	return nil
}

// payPaced credits the deposits at rate a second, from the moment it is
// called, as salaries arriving through the day would. It returns when all
// are paid or ctx ends.
func payPaced(ctx context.Context, in *installation, ds []deposit, rate float64) error {
	start := time.Now()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	for i := range ds {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if wait := time.Until(at); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := credit(ctx, in, &ds[i]); err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// tick calls fn every d until the returned stop is called.
func tick(d time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// setPayday gives every customer today as payday, as a lender sets its
// customers' employer payday: the poller then asks about their VAs at
// every cycle, as on a real payday, instead of every poll.idle_every
// cycles (which would find deposits in lumps). On a weekend, when today
// is no expected payday, the day whose window is open is used.
func setPayday(ctx context.Context, in *installation) error {
	pol := pipeline.PollPolicy{PaydayWindow: in.cfg.Poll.PaydayWindow, Location: in.cfg.Location()}
	now := time.Now()
	open := pol.OpenPaydays(now)
	if len(open) == 0 {
		return fmt.Errorf("no payday window is open at %s with poll.payday_window %d", now.Format(time.RFC3339), pol.PaydayWindow)
	}
	day := open[0].Day
	today := now.In(pol.Location).Day()
	if slices.ContainsFunc(open, func(p pipeline.OpenPayday) bool { return p.Day == today }) {
		day = today
	}
	if _, err := in.db.SQL().ExecContext(ctx, `UPDATE customers SET payday = $1`, day); err != nil {
		return fmt.Errorf("set the customers' payday: %w", err)
	}
	return nil
}
