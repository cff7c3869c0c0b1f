package pipeline

import (
	"errors"
	"fmt"
	"math"
)

// Kind is the kind of one leg (step) of a settlement. Legs always run in the
// order of Kinds.
type Kind string

const (
	// KindSweep moves the whole deposit from the customer's virtual account to
	// the collection account.
	KindSweep Kind = "SWEEP"
	// KindRepay pays the customer's outstanding loan to the lender account.
	KindRepay Kind = "REPAY"
	// KindHold moves the amount that must be withheld to the holding account.
	KindHold Kind = "HOLD"
	// KindFee moves the settlement fee to the fee account.
	KindFee Kind = "FEE"
	// KindPayout pays what is left to the customer's own bank account.
	KindPayout Kind = "PAYOUT"
	// KindNotify tells the customer what happened; it moves no money.
	KindNotify Kind = "NOTIFY"
	// KindReverse returns the money of a completed leg to where it came
	// from, when an operator compensates a failed settlement.
	KindReverse Kind = "REVERSE"
)

// Kinds lists the leg kinds in execution order.
var Kinds = []Kind{KindSweep, KindRepay, KindHold, KindFee, KindPayout, KindNotify}

// MovesMoney reports whether a leg of this kind is a bank transfer. It
// also decides where a step stands in its settlement: a settlement is
// SETTLED once its last step that moves money is DONE, and the steps that
// move none (NOTIFY) run after that, on their own backoff. They never fail
// their settlement nor keep it open: a lender's app that does not take an
// event does not undo or hold up money that moved (docs/adr).
func (k Kind) MovesMoney() bool { return k != KindNotify }

// Obligations is what a customer owes or must have withheld at the moment a
// deposit is detected.
type Obligations struct {
	// Outstanding is the loan balance still to repay, in minor units.
	Outstanding int64 `json:"outstanding"`
	// Hold is the amount to withhold from each deposit (for example a court
	// order or tax), in minor units. Capped by what the deposit leaves.
	Hold int64 `json:"hold"`
	// FeeFixed is a flat fee per settlement, in minor units.
	FeeFixed int64 `json:"fee_fixed"`
	// FeeBPS is a fee in basis points (1/100 of a percent) of the deposit,
	// 0..10000, rounded down.
	FeeBPS int64 `json:"fee_bps"`
}

// Policy holds the engine-wide rules a plan follows.
type Policy struct {
	// MinDeposit is the smallest balance worth settling; smaller balances are
	// left in the virtual account until more arrives.
	MinDeposit int64
}

// Leg is one planned movement. Amount is zero only for KindNotify.
type Leg struct {
	Kind   Kind  `json:"kind"`
	Amount int64 `json:"amount"`
}

// Plan is the ordered list of legs for one deposit, plus the split it makes.
type Plan struct {
	Deposit Money `json:"deposit"`
	Repay   int64 `json:"repay"`
	Hold    int64 `json:"hold"`
	Fee     int64 `json:"fee"`
	Payout  int64 `json:"payout"`
	Legs    []Leg `json:"legs"`
}

// ErrBelowMinimum is returned by BuildPlan when the deposit is smaller than the
// policy's minimum and should be left for a later poll.
var ErrBelowMinimum = errors.New("deposit below the minimum to settle")

// ErrInvalidObligations is returned by BuildPlan for negative obligations or a
// fee rate outside 0..10000 basis points.
var ErrInvalidObligations = errors.New("invalid obligations")

// BuildPlan splits a deposit into its legs: repay the loan first (partially
// when the deposit is smaller than the debt), then withhold, then take the fee,
// then pay out the rest. Zero legs are left out. The money legs after SWEEP
// always add up to the deposit, and SWEEP moves the whole deposit.
func BuildPlan(deposit Money, ob Obligations, pol Policy) (Plan, error) {
	if _, err := NewMoney(deposit.Amount, deposit.Currency); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	if err := ob.Validate(); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	if deposit.Amount == 0 || deposit.Amount < pol.MinDeposit {
		return Plan{}, fmt.Errorf("plan: %w: %s < %d", ErrBelowMinimum, deposit, max(pol.MinDeposit, 1))
	}
	left := deposit.Amount
	take := func(want int64) int64 {
		got := min(want, left)
		left -= got
		return got
	}
	p := Plan{Deposit: deposit}
	p.Repay = take(ob.Outstanding)
	p.Hold = take(ob.Hold)
	p.Fee = take(feeFor(deposit.Amount, ob))
	p.Payout = left
	p.Legs = []Leg{{KindSweep, deposit.Amount}}
	for _, l := range []Leg{{KindRepay, p.Repay}, {KindHold, p.Hold}, {KindFee, p.Fee}, {KindPayout, p.Payout}} {
		if l.Amount > 0 {
			p.Legs = append(p.Legs, l)
		}
	}
	p.Legs = append(p.Legs, Leg{Kind: KindNotify})
	return p, nil
}

// Validate reports whether the obligations can be planned with.
func (ob Obligations) Validate() error {
	switch {
	case ob.Outstanding < 0, ob.Hold < 0, ob.FeeFixed < 0:
		return fmt.Errorf("%w: amounts must not be negative (outstanding %d, hold %d, fee_fixed %d)",
			ErrInvalidObligations, ob.Outstanding, ob.Hold, ob.FeeFixed)
	case ob.FeeBPS < 0 || ob.FeeBPS > 10000:
		return fmt.Errorf("%w: fee_bps %d must be between 0 and 10000", ErrInvalidObligations, ob.FeeBPS)
	}
	return nil
}

// feeFor is the fixed fee plus the basis-point fee of the deposit, saturating
// at MaxInt64 (the plan caps it by what is left anyway).
func feeFor(deposit int64, ob Obligations) int64 {
	pct := mulDiv(deposit, ob.FeeBPS, 10000)
	if ob.FeeFixed > math.MaxInt64-pct {
		return math.MaxInt64
	}
	return ob.FeeFixed + pct
}
