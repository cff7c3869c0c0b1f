package pipeline

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func krw(n int64) Money { return Money{Amount: n, Currency: "KRW"} }

func TestBuildPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		deposit int64
		ob      Obligations
		want    []Leg
	}{
		{"everything", 3_000_000, Obligations{Outstanding: 500_000, Hold: 100_000, FeeFixed: 1_000, FeeBPS: 10},
			[]Leg{{KindSweep, 3_000_000}, {KindRepay, 500_000}, {KindHold, 100_000}, {KindFee, 4_000}, {KindPayout, 2_396_000}, {KindNotify, 0}}},
		{"no obligations: sweep and pay out", 1_000, Obligations{},
			[]Leg{{KindSweep, 1_000}, {KindPayout, 1_000}, {KindNotify, 0}}},
		{"partial repayment takes everything", 200_000, Obligations{Outstanding: 500_000, Hold: 100_000, FeeFixed: 1_000},
			[]Leg{{KindSweep, 200_000}, {KindRepay, 200_000}, {KindNotify, 0}}},
		{"hold capped by what repay leaves", 550_000, Obligations{Outstanding: 500_000, Hold: 100_000, FeeFixed: 1_000},
			[]Leg{{KindSweep, 550_000}, {KindRepay, 500_000}, {KindHold, 50_000}, {KindNotify, 0}}},
		{"fee capped, no payout", 601_000, Obligations{Outstanding: 500_000, Hold: 100_000, FeeFixed: 5_000},
			[]Leg{{KindSweep, 601_000}, {KindRepay, 500_000}, {KindHold, 100_000}, {KindFee, 1_000}, {KindNotify, 0}}},
		{"bps fee rounds down", 999, Obligations{FeeBPS: 100},
			[]Leg{{KindSweep, 999}, {KindFee, 9}, {KindPayout, 990}, {KindNotify, 0}}},
		{"full-rate fee takes it all", 12_345, Obligations{FeeBPS: 10000},
			[]Leg{{KindSweep, 12_345}, {KindFee, 12_345}, {KindNotify, 0}}},
		{"huge deposit does not overflow", math.MaxInt64, Obligations{FeeBPS: 9999, FeeFixed: math.MaxInt64},
			[]Leg{{KindSweep, math.MaxInt64}, {KindFee, math.MaxInt64}, {KindNotify, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := BuildPlan(krw(tt.deposit), tt.ob, Policy{})
			if err != nil {
				t.Fatalf("BuildPlan: %v", err)
			}
			if !reflect.DeepEqual(p.Legs, tt.want) {
				t.Errorf("legs = %v, want %v", p.Legs, tt.want)
			}
			checkPlanInvariants(t, p)
		})
	}
}

func TestBuildPlanRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		deposit Money
		ob      Obligations
		pol     Policy
		want    error
	}{
		{"zero deposit", krw(0), Obligations{}, Policy{}, ErrBelowMinimum},
		{"below minimum", krw(99), Obligations{}, Policy{MinDeposit: 100}, ErrBelowMinimum},
		{"negative deposit", krw(-1), Obligations{}, Policy{}, ErrInvalidAmount},
		{"bad currency", Money{Amount: 5, Currency: "krw"}, Obligations{}, Policy{}, ErrInvalidCurrency},
		{"negative outstanding", krw(5), Obligations{Outstanding: -1}, Policy{}, ErrInvalidObligations},
		{"fee above 100%", krw(5), Obligations{FeeBPS: 10001}, Policy{}, ErrInvalidObligations},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := BuildPlan(tt.deposit, tt.ob, tt.pol)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// checkPlanInvariants holds for every plan: SWEEP moves the deposit first,
// the split legs sum to it, nothing is negative or zero but NOTIFY, the
// order is fixed and NOTIFY is last.
func checkPlanInvariants(t *testing.T, p Plan) {
	t.Helper()
	if len(p.Legs) < 2 || p.Legs[0] != (Leg{KindSweep, p.Deposit.Amount}) || p.Legs[len(p.Legs)-1] != (Leg{Kind: KindNotify}) {
		t.Fatalf("plan must start with SWEEP of the deposit and end with NOTIFY: %v", p.Legs)
	}
	var sum int64
	order := map[Kind]int{}
	for i, k := range Kinds {
		order[k] = i
	}
	for i, l := range p.Legs {
		if i > 0 && order[l.Kind] <= order[p.Legs[i-1].Kind] {
			t.Fatalf("legs out of order: %v", p.Legs)
		}
		if l.Kind == KindSweep || l.Kind == KindNotify {
			continue
		}
		if l.Amount <= 0 {
			t.Fatalf("leg %s has amount %d", l.Kind, l.Amount)
		}
		sum += l.Amount
	}
	if sum != p.Deposit.Amount || p.Repay+p.Hold+p.Fee+p.Payout != p.Deposit.Amount {
		t.Fatalf("legs sum to %d (split %d+%d+%d+%d), deposit %d", sum, p.Repay, p.Hold, p.Fee, p.Payout, p.Deposit.Amount)
	}
}

func FuzzBuildPlan(f *testing.F) {
	f.Add(int64(3_000_000), int64(500_000), int64(100_000), int64(1_000), int64(10), int64(1))
	f.Add(int64(1), int64(0), int64(0), int64(0), int64(0), int64(0))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(10000), int64(0))
	f.Fuzz(func(t *testing.T, deposit, outstanding, hold, feeFixed, feeBPS, minDeposit int64) {
		ob := Obligations{Outstanding: outstanding, Hold: hold, FeeFixed: feeFixed, FeeBPS: feeBPS}
		p, err := BuildPlan(krw(deposit), ob, Policy{MinDeposit: minDeposit})
		if err != nil {
			if !errors.Is(err, ErrInvalidAmount) && !errors.Is(err, ErrInvalidObligations) && !errors.Is(err, ErrBelowMinimum) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		checkPlanInvariants(t, p)
		if p.Repay != min(outstanding, deposit) {
			t.Fatalf("repay %d, want min(%d, %d)", p.Repay, outstanding, deposit)
		}
		steps := p.Steps("VA1", Accounts{"COL", "LEND", "HOLD", "FEE"}, Payee{"OWN", "Holder"})
		for i, s := range steps {
			if s.Seq != i+1 || s.Kind != p.Legs[i].Kind || s.Amount != p.Legs[i].Amount {
				t.Fatalf("step %d = %+v does not match leg %+v", i, s, p.Legs[i])
			}
		}
	})
}

func TestParseAmount(t *testing.T) {
	t.Parallel()
	good := map[string]int64{"0": 0, "2500000": 2500000, "2_500_000": 2500000, "2,500,000": 2500000, " 7 ": 7,
		"9223372036854775807": math.MaxInt64}
	for in, want := range good {
		if got, err := ParseAmount(in); err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "+1", "1.5", "1e6", "9223372036854775808", "abc", "１２"} {
		if _, err := ParseAmount(in); !errors.Is(err, ErrInvalidAmount) {
			t.Errorf("ParseAmount(%q) err = %v, want ErrInvalidAmount", in, err)
		}
	}
}

// Money prints as the command line, the status page and the alerts show
// it, and ParseAmount reads that back.
func TestMoneyString(t *testing.T) {
	t.Parallel()
	for m, want := range map[Money]string{
		{0, "KRW"}: "0 KRW", {999, "KRW"}: "999 KRW", {1000, "KRW"}: "1,000 KRW", {3_760_000, "KRW"}: "3,760,000 KRW",
		{math.MaxInt64, "KRW"}: "9,223,372,036,854,775,807 KRW", {-1_200_000, "KRW"}: "-1,200,000 KRW", {12345, ""}: "12,345",
	} {
		if got := m.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", m, got, want)
		}
		if n, err := ParseAmount(strings.TrimSuffix(want, " KRW")); m.Amount >= 0 && (err != nil || n != m.Amount) {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", want, n, err, m.Amount)
		}
	}
}

func TestStepsRouteMoney(t *testing.T) {
	t.Parallel()
	p, err := BuildPlan(krw(1_000_000), Obligations{Outstanding: 100, Hold: 200, FeeFixed: 300}, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Steps("VA9", Accounts{"COL", "LEND", "HOLD", "FEE"}, Payee{"OWN", "Kim"})
	want := []StepSpec{
		{1, KindSweep, 1_000_000, "VA9", "COL", "", 0},
		{2, KindRepay, 100, "COL", "LEND", "", 0},
		{3, KindHold, 200, "COL", "HOLD", "", 0},
		{4, KindFee, 300, "COL", "FEE", "", 0},
		{5, KindPayout, 999_400, "COL", "OWN", "Kim", 0},
		{6, KindNotify, 0, "", "", "", 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("steps = %+v\nwant %+v", got, want)
	}
}

func TestReversals(t *testing.T) {
	t.Parallel()
	done := []DoneLeg{
		{StepID: 11, Seq: 1, Kind: KindSweep, Amount: 1000, From: "VA", To: "COL"},
		{StepID: 13, Seq: 3, Kind: KindHold, Amount: 50, From: "COL", To: "HOLD"},
		{StepID: 12, Seq: 2, Kind: KindRepay, Amount: 300, From: "COL", To: "LEND"},
	}
	want := []StepSpec{
		{Seq: 101, Kind: KindReverse, Amount: 50, From: "HOLD", To: "COL", Reverses: 13},
		{Seq: 102, Kind: KindReverse, Amount: 300, From: "LEND", To: "COL", Reverses: 12},
		{Seq: 103, Kind: KindReverse, Amount: 1000, From: "COL", To: "VA", Reverses: 11},
	}
	if got := Reversals(done); !reflect.DeepEqual(got, want) {
		t.Fatalf("Reversals = %+v\nwant %+v", got, want)
	}
	if got := Reversals(nil); len(got) != 0 {
		t.Fatalf("nothing done, nothing to reverse: %+v", got)
	}
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0", "2,500,000", "9223372036854775807", "9223372036854775808", "-1", "1e6", " 7 ", "１２"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseAmount(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAmount) {
				t.Fatalf("ParseAmount(%q): unexpected error %v", s, err)
			}
			return
		}
		if v < 0 {
			t.Fatalf("ParseAmount(%q) = %d, negative", s, v)
		}
	})
}
