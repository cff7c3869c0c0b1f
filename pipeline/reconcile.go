package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// This file is reconciliation's domain: what a bank statement line is, the
// port that lists statements, and Reconcile, the pure comparison of the
// engine's records with a bank's. docs/reconciliation.md explains the model.

// Direction says whether a statement line brought money into the account or
// took it out.
type Direction string

const (
	// Credit brought money in.
	Credit Direction = "credit"
	// Debit took money out.
	Debit Direction = "debit"
)

// StatementLine is one line of an account's statement at a bank.
type StatementLine struct {
	ID           string
	Account      string // the account whose statement holds the line
	Direction    Direction
	Amount       int64 // positive minor units
	Counterparty string
	Key          string // the idempotency key; empty for money not sent by a keyed transfer
	At           time.Time
}

// signed is the line's amount as it changes the account's balance.
func (l StatementLine) signed() int64 {
	if l.Direction == Debit {
		return -l.Amount
	}
	return l.Amount
}

// StatementPage is one page of a statement. Next is where to resume, now or
// later; More says whether lines follow it already.
type StatementPage struct {
	Lines []StatementLine
	Next  string
	More  bool
}

// MaxStatementPage is the most lines one Transactions call may ask for.
const MaxStatementPage = 500

// Statements lists account statements at one provider. It is a port of its
// own, apart from Bank, because not every dialect has it: the rest dialect
// does, the openbanking dialect does not.
type Statements interface {
	// Transactions returns up to limit (1 to MaxStatementPage) lines of the
	// account's statement after cursor ("" for the start), oldest first.
	// Errors are classified like Bank's: ErrRateLimited (with a
	// *RetryAfterError hint) means nothing was read and the call may be
	// repeated later.
	Transactions(ctx context.Context, account, cursor string, limit int) (StatementPage, error)
}

// FindingKind is what kind of difference reconciliation found.
type FindingKind string

const (
	// FindingMissingAtBank: the engine recorded a transfer as succeeded; the
	// bank's statements have no record of it.
	FindingMissingAtBank FindingKind = "missing_at_bank"
	// FindingUnknownToEngine: the bank moved money the engine never asked
	// for, or applied an attempt the engine lost track of or recorded as
	// refused.
	FindingUnknownToEngine FindingKind = "unknown_to_engine"
	// FindingAmountMismatch: the bank moved a different amount between the
	// same accounts than the engine recorded for the key.
	FindingAmountMismatch FindingKind = "amount_mismatch"
	// FindingAccountMismatch: the bank moved the key's money from or to other
	// accounts than the engine recorded.
	FindingAccountMismatch FindingKind = "account_mismatch"
	// FindingBalanceDrift: an account's bank balance differs from its ledger
	// balance by more than every transaction difference and pending credit
	// explains.
	FindingBalanceDrift FindingKind = "balance_drift"
)

// FindingKinds lists every kind, in the order reports show them.
var FindingKinds = []FindingKind{FindingMissingAtBank, FindingUnknownToEngine, FindingAmountMismatch,
	FindingAccountMismatch, FindingBalanceDrift}

// Severity is the severity of the kind's alert: a transaction difference is
// critical (a customer may be unpaid, or money moved without the engine), a
// balance drift a warning until someone explains it.
func (k FindingKind) Severity() Severity {
	if k == FindingBalanceDrift {
		return SeverityWarning
	}
	return SeverityCritical
}

// Words names the kind for people.
func (k FindingKind) Words() string {
	switch k {
	case FindingMissingAtBank:
		return "transfer missing at the bank"
	case FindingUnknownToEngine:
		return "bank transaction unknown to settle"
	case FindingAmountMismatch:
		return "amount differs from the bank's"
	case FindingAccountMismatch:
		return "accounts differ from the bank's"
	case FindingBalanceDrift:
		return "balance drift"
	}
	return string(k)
}

// Finding is one difference between the engine's records and a bank's.
type Finding struct {
	Provider string
	Kind     FindingKind
	// Fingerprint is the finding's identity: a repeated run that finds the
	// same difference produces the same fingerprint.
	Fingerprint string
	Account     string // the account it is about: the line's, the drifting one, or the transfer's source
	Key         string // the idempotency key, if the difference has one
	Amount      int64  // the engine's amount (0 if it has none); for a drift, the unexplained amount
	BankAmount  int64  // the bank's amount (0 if it has none)
	// OccurredAt is when it happened: the engine attempt's creation when the
	// engine knows the key, else the bank line's time. Zero for a drift.
	OccurredAt   time.Time
	SettlementID int64
	StepID       int64
	// Effects is, per bank account, how much the difference adds to (bank
	// balance − ledger balance) once the engine has recorded what it knows.
	// Later reconciliations count them as explained. Empty for a drift.
	Effects map[string]int64
	Detail  string
}

// Summary is the finding in one line, for alerts and lists.
func (f Finding) Summary() string {
	subject := f.Key
	if subject == "" {
		subject = AccountNumber(f.Account).Masked()
	}
	return fmt.Sprintf("Reconciliation at %s: %s (%s)", f.Provider, f.Kind.Words(), subject)
}

// settledNothing reports whether the engine recorded the attempt as one
// that moved no money: refused by the bank, or superseded by a replay.
func (t EngineTransfer) settledNothing() bool {
	return t.Status == AttemptRefused || t.Status == AttemptSuperseded
}

// EngineTransfer is one transfer attempt as the engine records it.
type EngineTransfer struct {
	Key          string
	From         string
	To           string
	Amount       int64
	Status       AttemptStatus
	CreatedAt    time.Time
	SucceededAt  time.Time // when it was recorded as succeeded; zero otherwise
	SettlementID int64
	StepID       int64
}

// Role is what an account is to the engine at one provider.
type Role string

// The roles of the accounts whose balances reconciliation checks.
const (
	RoleVA         Role = "va"
	RoleCollection Role = "collection"
	RoleLender     Role = "lender"
	RoleHolding    Role = "holding"
	RoleFee        Role = "fee"
	RolePayout     Role = "payout" // the customer's payout account: a step's, never reconciled
)

// Customer reports whether the role is a customer's account (shown masked
// to its last four characters) rather than one of the engine's.
func (r Role) Customer() bool { return r == RoleVA || r == RolePayout }

// Key names the role for an operator: an engine account by its
// configuration key (accounts.fee), a customer's by what it is (payout).
func (r Role) Key() string {
	if r.Customer() {
		return string(r)
	}
	return "accounts." + string(r)
}

// Shown is an account that plays the role as an operator sees it: an
// engine account as it is configured, a customer's masked to its last four
// characters.
func (r Role) Shown(account string) string {
	if r.Customer() {
		return AccountNumber(account).Masked()
	}
	return account
}

// Roles lists the engine's own accounts with their roles; empty accounts are
// left out and an account named twice keeps its first role.
func (a Accounts) Roles() map[string]Role {
	out := map[string]Role{}
	for _, r := range []struct {
		acc  string
		role Role
	}{{a.Collection, RoleCollection}, {a.Lender, RoleLender}, {a.Holding, RoleHolding}, {a.Fee, RoleFee}} {
		if _, dup := out[r.acc]; r.acc != "" && !dup {
			out[r.acc] = r.role
		}
	}
	return out
}

// ConfigKeys maps each of the accounts to the configuration key that names
// it under the provider's key prefix: "providers[0]" gives
// "providers[0].accounts.fee" for the fee account.
func (a Accounts) ConfigKeys(prefix string) map[string]string {
	out := map[string]string{}
	for acc, role := range a.Roles() {
		out[acc] = prefix + ".accounts." + string(role)
	}
	return out
}

// ReconcileInput is everything one provider's reconciliation compares. The
// ledger is read first (AsOf), then the bank's balances, then its statements,
// so that money the bank moved after the ledger was read shows up as a
// transfer still in flight, not as a difference.
type ReconcileInput struct {
	Provider string
	// From starts the window: attempts created at or after it, and bank
	// lines at or after it whose key the engine does not know, are examined.
	From time.Time
	// Slack is how far a bank's clock may be behind the database's: lines
	// down to From−Slack may belong to attempts of the window.
	Slack time.Duration
	// DateTolerance is how long after its attempt a keyless bank line may
	// still be matched to it by amount and date.
	DateTolerance time.Duration
	AsOf          time.Time // when Ledger and Expected were read (the database's clock)
	// Accounts are the accounts whose balances are checked, with their roles.
	Accounts map[string]Role
	// Read are the accounts whose statements were read from before the
	// window to their end; Lines holds those lines.
	Read  map[string]bool
	Lines []StatementLine
	// Expected are the attempts at the provider recorded as succeeded in the
	// ledger as of AsOf and created at or after From.
	Expected []EngineTransfer
	// Attempts are the engine's attempts named by the lines' keys, as they
	// stand after the statements were read, by key.
	Attempts map[string]EngineTransfer
	Ledger   map[string]int64 // ledger balance as of AsOf, by account
	Bank     map[string]int64 // bank balance, by account; absent when the bank does not know it
	// BankAfter are balances read again once the statements were read, for
	// the accounts whose statements were read. An account whose balance
	// changed meanwhile is moving: its statement and Bank may disagree by
	// money that moved in between, so its remainder is no drift.
	BankAfter map[string]int64
	// Stored are the effects of the findings stored before the window, by
	// account: differences earlier runs found and already explain.
	Stored map[string]int64
	// StatementsAvailable says whether the provider can list statements, so
	// a virtual account that holds less than explained can be read.
	StatementsAvailable bool
}

// BalanceCheck is one account's balance as reconciliation saw it.
type BalanceCheck struct {
	Account     string `json:"account"`
	Role        Role   `json:"role"`
	Ledger      int64  `json:"ledger"`
	Bank        int64  `json:"bank"`
	AtBank      bool   `json:"at_bank"`   // false when the bank does not know the account
	Explained   int64  `json:"explained"` // what transaction differences and transfers in flight explain
	Pending     int64  `json:"pending"`   // credits in a virtual account not settled yet
	Unexplained int64  `json:"unexplained"`
	// NeedsStatement is set for a virtual account that holds less than
	// explained and whose statement was not read: read it, and reconcile
	// again.
	NeedsStatement bool `json:"needs_statement,omitempty"`
	// Moved is set when the bank balance changed while the statements were
	// read (ReconcileInput.BankAfter): the remainder may be money in motion.
	Moved bool `json:"moved,omitempty"`
}

// Unsettled reports whether the check's remainder is unexplained: a drift,
// or money that moved while it was read.
func (c BalanceCheck) Unsettled() bool { return c.Unexplained != 0 && !c.NeedsStatement }

// Drifts reports whether the check shows a balance drift: a remainder
// nothing explains, on an account that held still while it was read.
func (c BalanceCheck) Drifts() bool { return c.Unsettled() && !c.Moved }

// ReconcileStats count what matched.
type ReconcileStats struct {
	Lines           int `json:"lines"`             // bank lines examined
	Matched         int `json:"matched"`           // keys whose bank and engine records agree
	MatchedByAmount int `json:"matched_by_amount"` // attempts matched to keyless lines by amount and date
	InFlight        int `json:"in_flight"`         // keys the bank applied and the engine is still recording
	Deposits        int `json:"deposits"`          // keyless credits into virtual accounts (payroll)
}

// ReconcileOutput is what Reconcile found.
type ReconcileOutput struct {
	Findings []Finding // transaction differences; drifts come from Checks
	Checks   []BalanceCheck
	Stats    ReconcileStats
}

// Reconcile compares a provider's statements and balances with the engine's
// records. It is a pure function: it moves no money and writes nothing.
//
// Transfers are matched by idempotency key: the bank's side of a key is
// rebuilt from its lines (a line's counterparty stands in for an account
// whose statement was not read) and compared with the engine's attempt.
// Attempts with no keyed line are then matched to keyless lines by account,
// amount and date. What is left are findings, each with the amount it adds
// to its accounts' (bank − ledger).
//
// Balances: for each account, bank − ledger − (the effects of stored and new
// findings and of transfers in flight) is unexplained. In a virtual account a
// positive remainder is a credit not settled yet, not a drift.
func Reconcile(in ReconcileInput) ReconcileOutput {
	m := &matcher{in: in, observed: map[string]int64{}}
	m.matchKeys()
	m.matchKeyless()
	m.out.Checks = m.checkBalances()
	slices.SortFunc(m.out.Findings, func(a, b Finding) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	return m.out
}

type matcher struct {
	in       ReconcileInput
	out      ReconcileOutput
	observed map[string]int64 // this run's explanations of (bank − ledger), by account
	missing  []missingAttempt
}

// missingAttempt is an attempt with no keyed line, which a keyless line may
// still match.
type missingAttempt struct {
	t     EngineTransfer
	index int // of its finding in out.Findings
}

// keyedLines groups the window's keyed lines by key.
func (m *matcher) keyedLines() map[string][]StatementLine {
	byKey := map[string][]StatementLine{}
	for _, l := range m.in.Lines {
		if l.Key != "" && !l.At.Before(m.in.From.Add(-m.in.Slack)) {
			byKey[l.Key] = append(byKey[l.Key], l)
		}
	}
	return byKey
}

func (m *matcher) matchKeys() {
	byKey := m.keyedLines()
	expected := map[string]EngineTransfer{}
	for _, t := range m.in.Expected {
		expected[t.Key] = t
	}
	keys := slices.Sorted(maps.Keys(byKey))
	for _, k := range slices.Sorted(maps.Keys(expected)) {
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, key := range keys {
		t, known := m.in.Attempts[key]
		e, settled := expected[key]
		if settled && !known {
			t, known = e, true
		}
		m.matchKey(key, byKey[key], t, known, settled || m.settledBefore(t, known))
	}
}

// settledBefore reports whether the ledger read holds an attempt created
// before the window, which Expected does not list: it was recorded as
// succeeded before the ledger was read. For an attempt of the window,
// Expected is the exact answer: a recording that began before the read and
// committed after it has a time before AsOf and is not in the ledger read.
func (m *matcher) settledBefore(t EngineTransfer, known bool) bool {
	return known && t.Status == AttemptSucceeded && t.CreatedAt.Before(m.in.From) &&
		!t.SucceededAt.IsZero() && !t.SucceededAt.After(m.in.AsOf)
}

// matchKey compares one key's bank lines with the engine's attempt. settled
// says whether the ledger read as of AsOf holds the attempt's postings.
func (m *matcher) matchKey(key string, lines []StatementLine, t EngineTransfer, known, settled bool) {
	bank := m.bankSide(lines)
	inFlight := known && len(lines) > 0 && !settled && !t.settledNothing()
	if inFlight {
		m.out.Stats.InFlight++
		addAll(m.observed, bank, 1) // the bank moved it; the ledger read does not hold it yet
	}
	if !m.inWindow(lines, t, known) {
		return
	}
	m.out.Stats.Lines += len(lines)
	var engine map[string]int64
	if known && !t.settledNothing() {
		engine = map[string]int64{t.From: -t.Amount, t.To: t.Amount}
	}
	f, ok := m.compare(key, lines, t, known, bank, engine)
	switch {
	case !ok:
		m.out.Stats.Matched++
		return
	case f.Kind == FindingMissingAtBank && (!settled || !(m.in.Read[t.From] || m.in.Read[t.To])):
		return // not recorded as of the ledger read, or no statement could show it
	case f.Kind == FindingMissingAtBank:
		m.missing = append(m.missing, missingAttempt{t: t, index: len(m.out.Findings)})
	}
	if !inFlight {
		addAll(m.observed, f.Effects, 1)
	}
	m.out.Findings = append(m.out.Findings, f)
}

// inWindow: a key the engine knows belongs to the window of its attempt's
// creation; another key to the window of its earliest line. Either is when
// its finding occurred, so a finding an earlier window stored is explained
// by Stored and never examined again as well.
func (m *matcher) inWindow(lines []StatementLine, t EngineTransfer, known bool) bool {
	if known {
		return !t.CreatedAt.Before(m.in.From)
	}
	return len(lines) > 0 && !earliest(lines).Before(m.in.From)
}

// earliest is the time of the earliest of lines (at least one).
func earliest(lines []StatementLine) time.Time {
	at := lines[0].At
	for _, l := range lines[1:] {
		if l.At.Before(at) {
			at = l.At
		}
	}
	return at
}

// bankSide rebuilds what the bank did with a key, per account: each read
// account's own lines, and for an account whose statement was not read, the
// opposite of the lines naming it as counterparty.
func (m *matcher) bankSide(lines []StatementLine) map[string]int64 {
	side := map[string]int64{}
	for _, l := range lines {
		side[l.Account] += l.signed()
		if l.Counterparty != "" && !m.in.Read[l.Counterparty] {
			side[l.Counterparty] -= l.signed()
		}
	}
	return nonZero(side)
}

// compare returns the finding for a key whose bank and engine sides differ,
// or false when they agree.
func (m *matcher) compare(key string, lines []StatementLine, t EngineTransfer, known bool, bank, engine map[string]int64) (Finding, bool) {
	if maps.Equal(bank, engine) {
		return Finding{}, false
	}
	f := Finding{Provider: m.in.Provider, Key: key, Amount: t.Amount, BankAmount: moved(bank),
		SettlementID: t.SettlementID, StepID: t.StepID, Effects: diff(bank, engine), OccurredAt: t.CreatedAt}
	if engine == nil {
		f.Amount = 0
	}
	if len(lines) > 0 {
		f.Account = lines[0].Account
		if !known {
			f.OccurredAt = earliest(lines)
		}
	}
	switch {
	case engine == nil:
		f.Kind, f.Detail = FindingUnknownToEngine, m.unknownDetail(key, lines, t, known)
	case len(lines) == 0:
		f.Kind, f.Account = FindingMissingAtBank, t.From
		f.Detail = fmt.Sprintf("settle recorded %d from %s to %s as succeeded (attempt %s, settlement %d); no statement shows it",
			t.Amount, AccountNumber(t.From), AccountNumber(t.To), t.Status, t.SettlementID)
	case sameAccounts(bank, engine):
		f.Kind = FindingAmountMismatch
		f.Detail = fmt.Sprintf("settle recorded %d from %s to %s; the bank moved %d", t.Amount,
			AccountNumber(t.From), AccountNumber(t.To), f.BankAmount)
	default:
		f.Kind = FindingAccountMismatch
		f.Detail = fmt.Sprintf("settle recorded %d from %s to %s; the bank moved %s", t.Amount,
			AccountNumber(t.From), AccountNumber(t.To), describeSide(bank))
	}
	f.Fingerprint = fmt.Sprintf("%s|%s|key|%s", m.in.Provider, f.Kind, key)
	return f, true
}

func (m *matcher) unknownDetail(key string, lines []StatementLine, t EngineTransfer, known bool) string {
	what := fmt.Sprintf("the bank moved %s under key %s", describeLines(lines), key)
	step, no := ParseAttemptKey(key)
	switch {
	case known && t.settledNothing():
		return what + fmt.Sprintf("; settle recorded that attempt as %s (settlement %d, step %d), so its ledger does not hold it", strings.ToLower(string(t.Status)), t.SettlementID, t.StepID)
	case step != 0:
		return what + fmt.Sprintf("; the key is settle's attempt %d of step %d, of which settle has no record: an attempt it lost track of", no, step)
	}
	return what + "; settle never asked for it"
}

// ParseAttemptKey returns the step and attempt number an AttemptKey names,
// or zeros for another key.
func ParseAttemptKey(key string) (step int64, no int) {
	if !IsAttemptKey(key) {
		return 0, 0
	}
	_, _ = fmt.Sscanf(key, "settle-s%d-a%d", &step, &no)
	return step, no
}

// matchKeyless matches attempts missing a keyed line to keyless lines of the
// same accounts, amount and date; the keyless lines left over are unknown to
// the engine, except credits into virtual accounts, which are deposits.
func (m *matcher) matchKeyless() {
	free := m.keylessLines()
	dropped := map[int]bool{}
	for _, ma := range m.missing {
		if used, ok := m.keylessMatch(ma.t, free); ok {
			dropped[ma.index] = true
			addAll(m.observed, m.out.Findings[ma.index].Effects, -1)
			free = slices.DeleteFunc(free, func(l StatementLine) bool { return used[lineID(l)] })
			m.out.Stats.MatchedByAmount++
		}
	}
	kept := m.out.Findings[:0]
	for i, f := range m.out.Findings {
		if !dropped[i] {
			kept = append(kept, f)
		}
	}
	m.out.Findings = kept
	for _, l := range free {
		if !l.At.Before(m.in.From) { // earlier ones are the previous window's
			m.unknownLine(l)
		}
	}
}

// keylessLines are the window's lines without a key, less the deposits.
func (m *matcher) keylessLines() []StatementLine {
	var free []StatementLine
	for _, l := range m.in.Lines {
		switch {
		case l.Key != "" || l.At.Before(m.in.From.Add(-m.in.Slack)):
		case l.Direction == Credit && m.in.Accounts[l.Account] == RoleVA:
			if !l.At.Before(m.in.From) {
				m.out.Stats.Deposits++
			}
		default:
			free = append(free, l)
		}
	}
	return free
}

// unknownLine reports a keyless line nothing explains.
func (m *matcher) unknownLine(l StatementLine) {
	m.out.Stats.Lines++
	m.observed[l.Account] += l.signed()
	m.out.Findings = append(m.out.Findings, Finding{Provider: m.in.Provider, Kind: FindingUnknownToEngine,
		Account: l.Account, BankAmount: l.Amount, OccurredAt: l.At, Effects: map[string]int64{l.Account: l.signed()},
		Fingerprint: fmt.Sprintf("%s|%s|line|%s|%s", m.in.Provider, FindingUnknownToEngine, l.Account, l.ID),
		Detail: fmt.Sprintf("the bank shows a %s of %d %s %s (line %s, %s) with no idempotency key; settle never asked for it",
			l.Direction, l.Amount, map[Direction]string{Credit: "from", Debit: "to"}[l.Direction], counterparty(l), l.ID,
			l.At.UTC().Format(time.RFC3339))})
}

// lineID identifies a line: IDs need only be unique within a statement.
func lineID(l StatementLine) string { return l.Account + "\x00" + l.ID }

// keylessMatch finds, for each read account of the attempt, a keyless line
// of the right direction and amount dated from the attempt's creation (less
// the slack) to DateTolerance after it.
func (m *matcher) keylessMatch(t EngineTransfer, free []StatementLine) (map[string]bool, bool) {
	used := map[string]bool{}
	for _, side := range []struct {
		acc string
		dir Direction
	}{{t.From, Debit}, {t.To, Credit}} {
		if !m.in.Read[side.acc] {
			continue
		}
		i := slices.IndexFunc(free, func(l StatementLine) bool {
			return !used[lineID(l)] && l.Account == side.acc && l.Direction == side.dir && l.Amount == t.Amount &&
				!l.At.Before(t.CreatedAt.Add(-m.in.Slack)) && !l.At.After(t.CreatedAt.Add(m.in.DateTolerance))
		})
		if i < 0 {
			return nil, false
		}
		used[lineID(free[i])] = true
	}
	return used, len(used) > 0
}

// checkBalances compares each account's bank and ledger balances.
func (m *matcher) checkBalances() []BalanceCheck {
	out := make([]BalanceCheck, 0, len(m.in.Accounts))
	for _, acc := range slices.Sorted(maps.Keys(m.in.Accounts)) {
		c := BalanceCheck{Account: acc, Role: m.in.Accounts[acc], Ledger: m.in.Ledger[acc]}
		c.Bank, c.AtBank = m.in.Bank[acc]
		if !c.AtBank && c.Ledger == 0 {
			continue // not opened at the bank yet, and nothing recorded
		}
		c.Explained = m.in.Stored[acc] + m.observed[acc]
		c.Unexplained = c.Bank - c.Ledger - c.Explained
		if c.Role == RoleVA && c.Unexplained > 0 {
			c.Pending, c.Unexplained = c.Unexplained, 0
		}
		c.NeedsStatement = c.Role == RoleVA && c.Unexplained < 0 && !m.in.Read[acc] && m.in.StatementsAvailable
		if after, ok := m.in.BankAfter[acc]; ok && after != c.Bank {
			c.Moved = true
		}
		out = append(out, c)
	}
	return out
}

// DriftFinding is the finding of a check that drifts.
func DriftFinding(provider string, c BalanceCheck) Finding {
	more := "holds more"
	if c.Unexplained < 0 {
		more = "holds less"
	}
	detail := fmt.Sprintf("bank balance %d, ledger balance %d; transaction differences and transfers in flight explain %d, "+
		"so the bank %s than the ledger by %d with no transaction to show why", c.Bank, c.Ledger, c.Explained, more, abs(c.Unexplained))
	if !c.AtBank {
		detail = fmt.Sprintf("the bank does not know this %s account; the ledger holds %d in it", c.Role, c.Ledger)
	}
	if c.Pending > 0 {
		detail += fmt.Sprintf(" (%d of credits not settled yet set aside)", c.Pending)
	}
	return Finding{Provider: provider, Kind: FindingBalanceDrift, Account: c.Account, Amount: c.Unexplained, BankAmount: c.Bank,
		Fingerprint: fmt.Sprintf("%s|%s|%s|%d", provider, FindingBalanceDrift, c.Account, c.Unexplained), Detail: detail}
}

func addAll(dst, src map[string]int64, sign int64) {
	for k, v := range src {
		dst[k] += sign * v
	}
}

func nonZero(m map[string]int64) map[string]int64 {
	maps.DeleteFunc(m, func(_ string, v int64) bool { return v == 0 })
	return m
}

// diff is bank − engine per account, without zeros.
func diff(bank, engine map[string]int64) map[string]int64 {
	out := maps.Clone(bank)
	if out == nil {
		out = map[string]int64{}
	}
	addAll(out, engine, -1)
	return nonZero(out)
}

// moved is how much a side moved: the sum of its credits.
func moved(side map[string]int64) int64 {
	var n int64
	for _, v := range side {
		n += max(v, 0)
	}
	return n
}

func sameAccounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || (v < 0) != (w < 0) {
			return false
		}
	}
	return true
}

func describeSide(side map[string]int64) string {
	var parts []string
	for _, acc := range slices.Sorted(maps.Keys(side)) {
		parts = append(parts, fmt.Sprintf("%+d on %s", side[acc], AccountNumber(acc)))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func describeLines(lines []StatementLine) string {
	var parts []string
	for _, l := range lines {
		parts = append(parts, fmt.Sprintf("a %s of %d on %s (line %s)", l.Direction, l.Amount, AccountNumber(l.Account), l.ID))
	}
	return strings.Join(parts, " and ")
}

func counterparty(l StatementLine) string {
	if l.Counterparty == "" {
		return "an unnamed party"
	}
	return fmt.Sprintf("%q", AccountNumber(l.Counterparty).Masked())
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
