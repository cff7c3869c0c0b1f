package pipeline

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

// StepSpec is one step as it is written when a settlement is created.
type StepSpec struct {
	Seq      int
	Kind     Kind
	Amount   int64
	From     string
	To       string
	ToHolder string
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

// ExternalPayroll is the ledger account that salary deposits come from.
const ExternalPayroll = "external:payroll"

// LedgerAccount names a bank account in the ledger: provider and account.
func LedgerAccount(provider, account string) string { return provider + ":" + account }

// DepositPostings records money arriving in a virtual account from payroll.
func DepositPostings(provider, va string, amount int64) []Posting {
	return []Posting{
		{Account: ExternalPayroll, Amount: -amount},
		{Account: LedgerAccount(provider, va), Amount: amount},
	}
}

// TransferPostings records a completed transfer between two bank accounts.
func TransferPostings(provider, from, to string, amount int64) []Posting {
	return []Posting{
		{Account: LedgerAccount(provider, from), Amount: -amount},
		{Account: LedgerAccount(provider, to), Amount: amount},
	}
}
