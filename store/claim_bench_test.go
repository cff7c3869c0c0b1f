package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// benchObligations give every settlement all six steps.
var benchObligations = pipeline.Obligations{Outstanding: 1_250_000, Hold: 100_000, FeeFixed: 500, FeeBPS: 25}

func benchDB(b *testing.B, conns int) *store.DB {
	b.Helper()
	return settletest.NewDB(b, conns)
}

// benchTargets creates n customers and returns them as the poller sees them.
func benchTargets(b *testing.B, db *store.DB, n int) []store.PollTarget {
	b.Helper()
	ctx := context.Background()
	for i := range n {
		ref := fmt.Sprintf("bench-%06d", i)
		if _, err := db.CreateCustomer(ctx, store.NewCustomer{
			ExternalRef: ref, HolderName: "Kim " + ref, Payout: pipeline.Payee{Account: "OWN-" + ref, Holder: "Kim " + ref},
			Provider: "sandbox", VANumber: "VA-" + ref, Currency: "KRW", Obligations: benchObligations,
		}); err != nil {
			b.Fatal(err)
		}
	}
	var out []store.PollTarget
	for after := int64(0); ; {
		ts, err := db.PollTargets(ctx, after, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if len(ts) == 0 {
			return out
		}
		out = append(out, ts...)
		after = ts[len(ts)-1].VAID
	}
}

func newSettlement(t store.PollTarget) (store.NewSettlement, error) {
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: 3_200_000, Currency: "KRW"}, t.Obligations(), pipeline.Policy{MinDeposit: 1})
	if err != nil {
		return store.NewSettlement{}, err
	}
	return store.NewSettlement{Target: t, Plan: plan, Steps: plan.Steps(t.Number, accounts, t.Payee())}, nil
}

// benchHeads creates n settlements and returns their first steps.
func benchHeads(b *testing.B, db *store.DB, n int) []pipeline.StepRef {
	b.Helper()
	var heads []pipeline.StepRef
	for _, t := range benchTargets(b, db, n) {
		ns, err := newSettlement(t)
		if err != nil {
			b.Fatal(err)
		}
		created, err := db.CreateSettlement(context.Background(), ns)
		if err != nil {
			b.Fatal(err)
		}
		heads = append(heads, pipeline.StepRef{ID: created.HeadStepID})
	}
	return heads
}

// runStep is a worker's database work for one step: the claim and the
// record of a success, which makes the next step READY.
func runStep(ctx context.Context, db *store.DB, id int64) (pipeline.StepRef, error) {
	c, err := db.ClaimStep(ctx, id, 30*time.Second)
	if err != nil {
		return pipeline.StepRef{}, fmt.Errorf("claim step %d: %w", id, err)
	}
	return db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "tr_bench"})
}

// BenchmarkClaimComplete runs steps one after another, each a ClaimStep and
// a Complete transaction on real PostgreSQL: the engine's database cost of
// one step without the bank call or the queue.
func BenchmarkClaimComplete(b *testing.B) {
	db := benchDB(b, 4)
	ctx := context.Background()
	heads := benchHeads(b, db, b.N/6+1)
	queue := heads
	b.ResetTimer()
	for range b.N {
		ref := queue[0]
		queue = queue[1:]
		next, err := runStep(ctx, db, ref.ID)
		if err != nil {
			b.Fatal(err)
		}
		if next.ID != 0 {
			queue = append(queue, next)
		}
	}
}

// BenchmarkClaimCompleteParallel runs settlements' steps from parallel
// goroutines (-cpu sets how many), each taking settlements whole, as the
// workers do on payday.
func BenchmarkClaimCompleteParallel(b *testing.B) {
	db := benchDB(b, 64)
	ctx := context.Background()
	heads := benchHeads(b, db, b.N/5+64)
	var taken atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var cur pipeline.StepRef
		for pb.Next() {
			if cur.ID == 0 {
				i := taken.Add(1) - 1
				if int(i) >= len(heads) {
					b.Error("ran out of settlements")
					return
				}
				cur = heads[i]
			}
			next, err := runStep(ctx, db, cur.ID)
			if err != nil {
				b.Error(err)
				return
			}
			cur = next
		}
	})
}

// BenchmarkCreateSettlement is the poller's write for one deposit found:
// the settlement, its six steps and the deposit's journal, in one
// transaction.
func BenchmarkCreateSettlement(b *testing.B) {
	db, news := benchNewSettlements(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := db.CreateSettlement(ctx, news[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateSettlementsBatch is the poller's write for one balance
// request's deposits: 100 settlements with their steps and journals in one
// statement. ns/op is per settlement, to compare with
// BenchmarkCreateSettlement.
func BenchmarkCreateSettlementsBatch(b *testing.B) {
	const batch = 100
	db, news := benchNewSettlements(b)
	ctx := context.Background()
	b.ResetTimer()
	for from := 0; from < b.N; from += batch {
		created, err := db.CreateSettlements(ctx, news[from:min(from+batch, b.N)])
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range created {
			if c.SettlementID == 0 {
				b.Fatal("a fresh deposit was taken for a stale read")
			}
		}
	}
}

// benchNewSettlements returns b.N settlements ready to be written, one for
// each of b.N new customers.
func benchNewSettlements(b *testing.B) (*store.DB, []store.NewSettlement) {
	db := benchDB(b, 4)
	targets := benchTargets(b, db, b.N)
	news := make([]store.NewSettlement, len(targets))
	for i, t := range targets {
		var err error
		if news[i], err = newSettlement(t); err != nil {
			b.Fatal(err)
		}
	}
	return db, news
}
