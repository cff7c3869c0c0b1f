package pipeline

import "slices"

// Accounts are the engine's own accounts at one provider that the legs of a
// settlement move money between.
type Accounts struct {
	Collection string
	Lender     string
	Holding    string
	Fee        string
}

// Payee is where a customer's payout goes.
type Payee struct {
	Account string
	Holder  string
}

// StepSpec is one step as it is written when a settlement is created (or
// compensated: then Reverses names the step it undoes).
type StepSpec struct {
	Seq      int
	Kind     Kind
	Amount   int64
	From     string
	To       string
	ToHolder string
	Reverses int64
}

// DoneLeg is a completed money step of a settlement, as a compensation sees
// it.
type DoneLeg struct {
	StepID int64
	Seq    int
	Kind   Kind
	Amount int64
	From   string
	To     string
}

// ReverseSeqBase is the first sequence number of a compensation's steps,
// after every leg a plan can have.
const ReverseSeqBase = 101

// Reversals plans a compensation: one REVERSE step per completed leg, in the
// reverse order of the legs, each moving the leg's amount back from where it
// went to where it came from. NOTIFY legs move nothing and are left out.
func Reversals(done []DoneLeg) []StepSpec {
	legs := slices.Clone(done)
	slices.SortFunc(legs, func(a, b DoneLeg) int { return b.Seq - a.Seq })
	out := make([]StepSpec, 0, len(legs))
	for _, l := range legs {
		if !l.Kind.MovesMoney() || l.Kind == KindReverse {
			continue
		}
		out = append(out, StepSpec{Seq: ReverseSeqBase + len(out), Kind: KindReverse, Amount: l.Amount,
			From: l.To, To: l.From, Reverses: l.StepID})
	}
	return out
}

// Steps turns a plan into the settlement's ordered steps: SWEEP from the
// virtual account to collection, the split legs from collection to their
// accounts, and NOTIFY last.
func (p Plan) Steps(va string, acc Accounts, payee Payee) []StepSpec {
	out := make([]StepSpec, 0, len(p.Legs))
	for i, l := range p.Legs {
		s := StepSpec{Seq: i + 1, Kind: l.Kind, Amount: l.Amount, From: acc.Collection}
		switch l.Kind {
		case KindSweep:
			s.From, s.To = va, acc.Collection
		case KindRepay:
			s.To = acc.Lender
		case KindHold:
			s.To = acc.Holding
		case KindFee:
			s.To = acc.Fee
		case KindPayout:
			s.To, s.ToHolder = payee.Account, payee.Holder
		case KindNotify:
			s.From = ""
		}
		out = append(out, s)
	}
	return out
}

// Posting is one line of a ledger journal. The postings of a journal sum to
// zero.
type Posting struct {
	Account string
	Amount  int64
}

// ExternalPayroll is the ledger account that salary deposits come from. A
// deposit journal moves money new to the ledger from it into the VA's
// account: a VA's balance the ledger already holds (a cancelled or
// compensated settlement's deposit) is taken over, never posted again.
const ExternalPayroll = "external:payroll"

// LedgerAccount names a bank account in the ledger: provider and account.
func LedgerAccount(provider, account string) string { return provider + ":" + account }

// TransferPostings records a completed transfer between two bank accounts.
func TransferPostings(provider, from, to string, amount int64) []Posting {
	return []Posting{
		{Account: LedgerAccount(provider, from), Amount: -amount},
		{Account: LedgerAccount(provider, to), Amount: amount},
	}
}
