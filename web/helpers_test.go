package web_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

const bankToken = "web-test-bank-token"

var accounts = pipeline.Accounts{Collection: "WEB-COLLECTION", Lender: "WEB-LENDER", Holding: "WEB-HOLDING", Fee: "WEB-FEE"}

func newDB(t *testing.T) *store.DB {
	t.Helper()
	return settletest.NewDB(t, 8)
}

// payday is an installation after one payday: customer 0 settled; customer
// 1's payout account is frozen at the bank, so its settlement FAILED at
// PAYOUT; customer 2 was paid late and the worker that claimed its SWEEP
// died, so the step is RUNNING past its lease.
type payday struct {
	db        *store.DB
	settled   demo.Customer
	failed    demo.Customer
	stuck     demo.Customer
	stuckStep int64
	failedID  int64
	reason    string // the FAILED settlement's failure reason
	holder    string // the failed customer's name, which the page shows only when asked
}

// newPayday runs the real poller and executor against the sandbox bank over
// HTTP; only the queue is replaced, by a list the test drains.
func newPayday(t *testing.T) *payday {
	t.Helper()
	ctx := context.Background()
	db := newDB(t)
	sim := httptest.NewServer(banksim.New(banksim.Options{Token: bankToken}))
	t.Cleanup(sim.Close)
	client := banksim.NewClient(sim.URL, bankToken, nil)
	seeder := demo.NewSeeder(db, client, demo.Options{
		Provider: "sandbox", Currency: "KRW", Accounts: accounts, Customers: 3, Prefix: "web-", Seed: 7,
	})
	cs, err := seeder.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.SetState(ctx, cs[1].Payout, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	// Larger than any demo debt, hold and fee: there is a PAYOUT to refuse.
	for _, c := range cs[:2] {
		if err := seeder.Pay(ctx, c, 10_000_000); err != nil {
			t.Fatal(err)
		}
	}
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: sim.URL, Token: bankToken})
	if err != nil {
		t.Fatal(err)
	}
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter})
	q := &settletest.Queue{}
	logger := slog.New(slog.DiscardHandler)
	poller := jobs.NewPoller(db, banks, q, jobs.PollConfig{
		Policy: pipeline.Policy{MinDeposit: 1}, Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
	}, logger)
	if res, err := poller.RunOnce(ctx); err != nil || res.Found != 2 {
		t.Fatalf("poll: %+v %v, want 2 deposits found", res, err)
	}
	exec := pipeline.NewExecutor(db, banks, q, pipeline.ExecutorConfig{Lease: 10 * time.Second, BankTimeout: 5 * time.Second}, logger)
	for id, ok := q.Pop(); ok; id, ok = q.Pop() {
		if err := exec.Run(ctx, id); err != nil {
			t.Fatalf("run step %d: %v", id, err)
		}
	}
	p := &payday{db: db, settled: cs[0], failed: cs[1], stuck: cs[2]}
	if err := seeder.Pay(ctx, cs[2], 2_000_000); err != nil {
		t.Fatal(err)
	}
	if res, err := poller.RunOnce(ctx); err != nil || res.Found != 1 {
		t.Fatalf("second poll: %+v %v, want 1 deposit found", res, err)
	}
	p.stuckStep, _ = q.Pop()
	if _, err := db.ClaimStep(ctx, p.stuckStep, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c, err := db.GetCustomer(ctx, cs[1].Ref)
	if err != nil {
		t.Fatal(err)
	}
	p.holder = c.HolderName
	rows, err := db.ListSettlements(ctx, store.SettlementFilter{Status: "FAILED", Limit: 10})
	if err != nil || len(rows) != 1 || rows[0].CustomerRef != cs[1].Ref {
		t.Fatalf("FAILED settlements %+v %v, want one of %s", rows, err, cs[1].Ref)
	}
	p.failedID, p.reason = rows[0].ID, rows[0].FailureReason
	return p
}
