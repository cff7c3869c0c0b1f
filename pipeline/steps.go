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

// Roles returns where a step of the kind takes money from and sends it to:
// SWEEP from the VA to collection, REPAY, HOLD and FEE from collection to
// the lender, holding and fee accounts, PAYOUT from collection to the
// customer's payout account. A NOTIFY moves nothing, and a REVERSE takes
// the accounts of the step it undoes, swapped: both "".
func (k Kind) Roles() (from, to Role) {
	switch k {
	case KindSweep:
		return RoleVA, RoleCollection
	case KindRepay:
		return RoleCollection, RoleLender
	case KindHold:
		return RoleCollection, RoleHolding
	case KindFee:
		return RoleCollection, RoleFee
	case KindPayout:
		return RoleCollection, RolePayout
	}
	return "", ""
}

// Endpoints are the accounts a settlement's steps move money between: its
// virtual account, the engine's accounts at its provider and the
// customer's payout account.
type Endpoints struct {
	VA       string
	Accounts Accounts
	Payee    Payee
}

// Account returns the account that plays the role ("" for none).
func (e Endpoints) Account(r Role) string {
	switch r {
	case RoleVA:
		return e.VA
	case RoleCollection:
		return e.Accounts.Collection
	case RoleLender:
		return e.Accounts.Lender
	case RoleHolding:
		return e.Accounts.Holding
	case RoleFee:
		return e.Accounts.Fee
	case RolePayout:
		return e.Payee.Account
	}
	return ""
}

// Route returns a step of the kind's accounts among the endpoints (see
// Kind.Roles): from, to and, for a PAYOUT, the payee's holder name.
func (e Endpoints) Route(k Kind) (from, to, holder string) {
	fr, tr := k.Roles()
	if tr == RolePayout {
		holder = e.Payee.Holder
	}
	return e.Account(fr), e.Account(tr), holder
}

// Steps turns a plan into the settlement's ordered steps, each routed by
// Endpoints.Route: SWEEP from the virtual account to collection, the split
// legs from collection to their accounts, and NOTIFY last.
func (p Plan) Steps(va string, acc Accounts, payee Payee) []StepSpec {
	e := Endpoints{VA: va, Accounts: acc, Payee: payee}
	out := make([]StepSpec, 0, len(p.Legs))
	for i, l := range p.Legs {
		s := StepSpec{Seq: i + 1, Kind: l.Kind, Amount: l.Amount}
		s.From, s.To, s.ToHolder = e.Route(l.Kind)
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
