package pipeline

import "testing"

// benchDeposit and benchObligations are a typical payday customer: a loan
// to repay, money to hold, a fee; every leg is present.
var (
	benchDeposit     = Money{Amount: 3_200_000, Currency: "KRW"}
	benchObligations = Obligations{Outstanding: 1_250_000, Hold: 100_000, FeeFixed: 500, FeeBPS: 25}
	benchAccounts    = Accounts{Collection: "COLLECTION", Lender: "LENDER", Holding: "HOLDING", Fee: "FEE"}
)

// BenchmarkBuildPlan is the poller's pure work per deposit found.
func BenchmarkBuildPlan(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildPlan(benchDeposit, benchObligations, Policy{MinDeposit: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanSteps turns a plan into the rows written with the settlement.
func BenchmarkPlanSteps(b *testing.B) {
	plan, err := BuildPlan(benchDeposit, benchObligations, Policy{MinDeposit: 1})
	if err != nil {
		b.Fatal(err)
	}
	payee := Payee{Account: "OWN00000042", Holder: "Customer 00042"}
	b.ReportAllocs()
	for b.Loop() {
		if steps := plan.Steps("VA00000042", benchAccounts, payee); len(steps) != 6 {
			b.Fatalf("%d steps, want 6", len(steps))
		}
	}
}
