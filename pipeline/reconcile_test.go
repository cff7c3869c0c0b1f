package pipeline

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	recFrom = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	recAsOf = recFrom.Add(20 * time.Hour)
	inDay   = recFrom.Add(9 * time.Hour)
)

// recCase builds a reconciliation of provider "p": COL (collection) and LEND
// (lender) have their statements read, VA1 is a virtual account.
type recCase struct {
	name     string
	expected []EngineTransfer // recorded as succeeded as of recAsOf
	attempts []EngineTransfer // other attempts the lines name
	lines    []StatementLine
	ledger   map[string]int64
	bank     map[string]int64
	after    map[string]int64 // balances read again after the statements
	stored   map[string]int64
	readVA   bool

	kinds   []FindingKind // of the transaction findings, sorted
	drifts  []string      // accounts whose balance drifts
	pending map[string]int64
	check   func(t *testing.T, out ReconcileOutput)
}

func sweep(key string, amount int64) EngineTransfer {
	return EngineTransfer{Key: key, From: "VA1", To: "COL", Amount: amount, Status: AttemptSucceeded,
		CreatedAt: inDay, SucceededAt: inDay.Add(time.Second), SettlementID: 7, StepID: 70}
}

func line(id, acc string, dir Direction, amount int64, cp, key string) StatementLine {
	return StatementLine{ID: id, Account: acc, Direction: dir, Amount: amount, Counterparty: cp, Key: key, At: inDay.Add(time.Second)}
}

func (c recCase) input() ReconcileInput {
	in := ReconcileInput{
		Provider: "p", From: recFrom, Slack: time.Hour, DateTolerance: 24 * time.Hour, AsOf: recAsOf,
		Accounts: map[string]Role{"COL": RoleCollection, "LEND": RoleLender, "VA1": RoleVA},
		Read:     map[string]bool{"COL": true, "LEND": true, "VA1": c.readVA},
		Lines:    c.lines, Expected: c.expected, Attempts: map[string]EngineTransfer{},
		Ledger: c.ledger, Bank: c.bank, BankAfter: c.after, Stored: c.stored, StatementsAvailable: true,
	}
	for _, t := range append(slices.Clone(c.expected), c.attempts...) {
		in.Attempts[t.Key] = t
	}
	return in
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	for _, c := range []recCase{
		{
			name:     "clean sweep",
			expected: []EngineTransfer{sweep("k1", 1000)},
			lines:    []StatementLine{line("t1", "COL", Credit, 1000, "VA1", "k1")},
			ledger:   map[string]int64{"COL": 1000, "VA1": 0},
			bank:     map[string]int64{"COL": 1000, "VA1": 0, "LEND": 0},
			check: func(t *testing.T, out ReconcileOutput) {
				if out.Stats.Matched != 1 || out.Stats.Lines != 1 {
					t.Errorf("stats %+v", out.Stats)
				}
			},
		},
		{
			name:     "missing at bank explains both balances",
			expected: []EngineTransfer{sweep("k1", 1000)},
			ledger:   map[string]int64{"COL": 1000, "VA1": 0},
			bank:     map[string]int64{"COL": 0, "VA1": 1000, "LEND": 0},
			kinds:    []FindingKind{FindingMissingAtBank},
			check: func(t *testing.T, out ReconcileOutput) {
				f := out.Findings[0]
				if !maps.Equal(f.Effects, map[string]int64{"COL": -1000, "VA1": 1000}) || f.Key != "k1" || f.SettlementID != 7 {
					t.Errorf("finding %+v", f)
				}
				if f.Fingerprint != "p|missing_at_bank|key|k1" || !f.OccurredAt.Equal(inDay) {
					t.Errorf("fingerprint %q at %s", f.Fingerprint, f.OccurredAt)
				}
			},
		},
		{
			name:   "a transfer nobody asked for",
			lines:  []StatementLine{line("t9", "LEND", Debit, 500, "STRANGER", "manual-1")},
			ledger: map[string]int64{"LEND": 2000},
			bank:   map[string]int64{"LEND": 1500, "COL": 0},
			kinds:  []FindingKind{FindingUnknownToEngine},
			check: func(t *testing.T, out ReconcileOutput) {
				f := out.Findings[0]
				if !strings.Contains(f.Detail, "never asked") || f.BankAmount != 500 || f.Account != "LEND" ||
					!maps.Equal(f.Effects, map[string]int64{"LEND": -500, "STRANGER": 500}) {
					t.Errorf("finding %+v", f)
				}
			},
		},
		{
			name:     "the bank moved another amount",
			expected: []EngineTransfer{sweep("k1", 1000)},
			lines:    []StatementLine{line("t1", "COL", Credit, 900, "VA1", "k1")},
			ledger:   map[string]int64{"COL": 1000, "VA1": 0},
			bank:     map[string]int64{"COL": 900, "VA1": 100, "LEND": 0},
			kinds:    []FindingKind{FindingAmountMismatch},
			check: func(t *testing.T, out ReconcileOutput) {
				if f := out.Findings[0]; f.Amount != 1000 || f.BankAmount != 900 || !maps.Equal(f.Effects, map[string]int64{"COL": -100, "VA1": 100}) {
					t.Errorf("finding %+v", f)
				}
			},
		},
		{
			name:     "the bank applied a key twice",
			expected: []EngineTransfer{sweep("k1", 1000)},
			lines:    []StatementLine{line("t1", "COL", Credit, 1000, "VA1", "k1"), line("t2", "COL", Credit, 1000, "VA1", "k1")},
			ledger:   map[string]int64{"COL": 1000, "VA1": 0},
			bank:     map[string]int64{"COL": 2000, "VA1": 0, "LEND": 0},
			kinds:    []FindingKind{FindingAmountMismatch},
			// a second payroll credit the duplicate took along: it is not
			// settled yet as far as the ledger knows
			pending: map[string]int64{"VA1": 1000},
		},
		{
			name:     "the bank moved it elsewhere",
			expected: []EngineTransfer{{Key: "k2", From: "COL", To: "LEND", Amount: 300, Status: AttemptSucceeded, CreatedAt: inDay}},
			lines:    []StatementLine{line("t1", "COL", Debit, 300, "OTHER", "k2")},
			ledger:   map[string]int64{"COL": -300, "LEND": 300},
			bank:     map[string]int64{"COL": -300, "LEND": 0},
			kinds:    []FindingKind{FindingAccountMismatch},
		},
		{
			name:   "an attempt the engine lost track of",
			lines:  []StatementLine{line("t1", "COL", Credit, 700, "VA1", "settle-s42-a1")},
			ledger: map[string]int64{"COL": 0, "VA1": 700},
			bank:   map[string]int64{"COL": 700, "VA1": 0, "LEND": 0},
			kinds:  []FindingKind{FindingUnknownToEngine},
			check: func(t *testing.T, out ReconcileOutput) {
				if d := out.Findings[0].Detail; !strings.Contains(d, "lost track") || !strings.Contains(d, "step 42") {
					t.Errorf("detail %q", d)
				}
			},
		},
		{
			name:     "an attempt the engine recorded as refused",
			attempts: []EngineTransfer{{Key: "k3", From: "VA1", To: "COL", Amount: 700, Status: AttemptRefused, CreatedAt: inDay}},
			lines:    []StatementLine{line("t1", "COL", Credit, 700, "VA1", "k3")},
			ledger:   map[string]int64{"COL": 0, "VA1": 700},
			bank:     map[string]int64{"COL": 700, "VA1": 0, "LEND": 0},
			kinds:    []FindingKind{FindingUnknownToEngine},
		},
		{
			name:     "in flight: sent, not recorded yet",
			attempts: []EngineTransfer{{Key: "k4", From: "VA1", To: "COL", Amount: 1000, Status: AttemptUnknown, CreatedAt: inDay}},
			lines:    []StatementLine{line("t1", "COL", Credit, 1000, "VA1", "k4")},
			ledger:   map[string]int64{"COL": 0, "VA1": 1000},
			bank:     map[string]int64{"COL": 1000, "VA1": 0, "LEND": 0},
			check: func(t *testing.T, out ReconcileOutput) {
				if out.Stats.InFlight != 1 {
					t.Errorf("stats %+v", out.Stats)
				}
			},
		},
		{
			name: "in flight: recorded after the ledger was read",
			attempts: []EngineTransfer{{Key: "k5", From: "VA1", To: "COL", Amount: 1000, Status: AttemptSucceeded,
				CreatedAt: inDay, SucceededAt: recAsOf.Add(time.Second)}},
			lines:  []StatementLine{line("t1", "COL", Credit, 1000, "VA1", "k5")},
			ledger: map[string]int64{"COL": 0, "VA1": 1000},
			bank:   map[string]int64{"COL": 1000, "VA1": 0, "LEND": 0},
		},
		{
			name: "in flight: recorded before the ledger was read, committed after",
			attempts: []EngineTransfer{{Key: "k7", From: "VA1", To: "COL", Amount: 1000, Status: AttemptSucceeded,
				CreatedAt: inDay, SucceededAt: recAsOf.Add(-time.Millisecond)}},
			lines:  []StatementLine{line("t1", "COL", Credit, 1000, "VA1", "k7")},
			ledger: map[string]int64{"COL": 0, "VA1": 1000},
			bank:   map[string]int64{"COL": 1000, "VA1": 0, "LEND": 0},
			check: func(t *testing.T, out ReconcileOutput) {
				if out.Stats.InFlight != 1 {
					t.Errorf("stats %+v", out.Stats)
				}
			},
		},
		{
			name:   "money into an own account from outside",
			lines:  []StatementLine{line("t1", "COL", Credit, 100, "ACME", "")},
			ledger: map[string]int64{"COL": 0},
			bank:   map[string]int64{"COL": 100, "LEND": 0},
			kinds:  []FindingKind{FindingUnknownToEngine},
			check: func(t *testing.T, out ReconcileOutput) {
				if f := out.Findings[0]; f.Fingerprint != "p|unknown_to_engine|line|COL|t1" {
					t.Errorf("fingerprint %q", f.Fingerprint)
				}
			},
		},
		{
			name:     "keyless lines matched by amount and date",
			expected: []EngineTransfer{{Key: "k6", From: "COL", To: "LEND", Amount: 300, Status: AttemptSucceeded, CreatedAt: inDay}},
			// line IDs need only be unique within one statement
			lines:  []StatementLine{line("t1", "COL", Debit, 300, "LEND", ""), line("t1", "LEND", Credit, 300, "COL", "")},
			ledger: map[string]int64{"COL": -300, "LEND": 300},
			bank:   map[string]int64{"COL": -300, "LEND": 300},
			check: func(t *testing.T, out ReconcileOutput) {
				if out.Stats.MatchedByAmount != 1 {
					t.Errorf("stats %+v", out.Stats)
				}
			},
		},
		{
			name:    "a payroll credit not settled yet is pending, not drift",
			lines:   []StatementLine{line("t1", "VA1", Credit, 5000, "ACME PAYROLL", "")},
			readVA:  true,
			ledger:  map[string]int64{},
			bank:    map[string]int64{"VA1": 5000, "COL": 0, "LEND": 0},
			pending: map[string]int64{"VA1": 5000},
			check: func(t *testing.T, out ReconcileOutput) {
				if out.Stats.Deposits != 1 {
					t.Errorf("stats %+v", out.Stats)
				}
			},
		},
		{
			name:   "an own account drifts",
			ledger: map[string]int64{"COL": 0},
			bank:   map[string]int64{"COL": 100, "LEND": 0},
			drifts: []string{"COL"},
		},
		{
			name:  "an own account whose balance moved while its statement was read does not drift",
			lines: []StatementLine{line("t1", "COL", Credit, 100, "VA1", "k9")},
			attempts: []EngineTransfer{{Key: "k9", From: "VA1", To: "COL", Amount: 100, Status: AttemptSucceeded,
				CreatedAt: inDay, SucceededAt: recAsOf.Add(time.Second)}},
			ledger: map[string]int64{"COL": 0, "VA1": 100},
			bank:   map[string]int64{"COL": 0, "VA1": 100, "LEND": 0}, // read before the bank applied k9
			after:  map[string]int64{"COL": 100, "LEND": 0},
			// the VA's balance, read before the sweep, still holds it
			pending: map[string]int64{"VA1": 100},
			check: func(t *testing.T, out ReconcileOutput) {
				c := out.Checks[slices.IndexFunc(out.Checks, func(c BalanceCheck) bool { return c.Account == "COL" })]
				if !c.Moved || !c.Unsettled() || c.Drifts() {
					t.Errorf("check %+v", c)
				}
			},
		},
		{
			name:   "an own account that held still drifts",
			ledger: map[string]int64{"COL": 0},
			bank:   map[string]int64{"COL": 100, "LEND": 0},
			after:  map[string]int64{"COL": 100, "LEND": 0},
			drifts: []string{"COL"},
		},
		{
			name:   "stored findings explain an old difference",
			ledger: map[string]int64{"COL": 1000},
			bank:   map[string]int64{"COL": 900, "LEND": 0},
			stored: map[string]int64{"COL": -100},
		},
		{
			name:   "a short virtual account whose statement was not read asks for it",
			ledger: map[string]int64{"VA1": 1000},
			bank:   map[string]int64{"VA1": 0, "COL": 0, "LEND": 0},
			check: func(t *testing.T, out ReconcileOutput) {
				c := out.Checks[slices.IndexFunc(out.Checks, func(c BalanceCheck) bool { return c.Account == "VA1" })]
				if !c.NeedsStatement || c.Drifts() {
					t.Errorf("check %+v", c)
				}
			},
		},
		{
			name:   "a short virtual account whose statement was read drifts",
			readVA: true,
			ledger: map[string]int64{"VA1": 1000},
			bank:   map[string]int64{"VA1": 0, "COL": 0, "LEND": 0},
			drifts: []string{"VA1"},
		},
		{
			name: "before the window: not examined",
			lines: []StatementLine{{ID: "t0", Account: "COL", Direction: Credit, Amount: 5, Key: "old",
				At: recFrom.Add(-10 * time.Minute)}},
			attempts: []EngineTransfer{{Key: "old", From: "VA1", To: "COL", Amount: 4, Status: AttemptSucceeded,
				CreatedAt: recFrom.Add(-11 * time.Minute), SucceededAt: recFrom.Add(-10 * time.Minute)}},
			ledger: map[string]int64{"COL": 4},
			bank:   map[string]int64{"COL": 5, "LEND": 0},
			stored: map[string]int64{"COL": 1}, // the earlier run's amount_mismatch
		},
		{
			name: "a key unknown to the engine that an earlier window stored is not examined again",
			lines: []StatementLine{
				{ID: "t0", Account: "COL", Direction: Credit, Amount: 100, Key: "twice", At: recFrom.Add(-10 * time.Minute)},
				{ID: "t1", Account: "COL", Direction: Credit, Amount: 100, Key: "twice", At: recFrom.Add(10 * time.Minute)},
			},
			ledger: map[string]int64{"COL": 0},
			bank:   map[string]int64{"COL": 200, "LEND": 0},
			stored: map[string]int64{"COL": 200}, // the earlier run saw both lines
		},
		{
			name:   "the bank does not know an account the ledger uses",
			ledger: map[string]int64{"LEND": 10},
			bank:   map[string]int64{"COL": 0},
			drifts: []string{"LEND"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := Reconcile(c.input())
			var kinds []FindingKind
			for _, f := range out.Findings {
				kinds = append(kinds, f.Kind)
				if f.Fingerprint == "" || f.Detail == "" || f.Provider != "p" {
					t.Errorf("incomplete finding %+v", f)
				}
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, c.kinds) {
				t.Errorf("findings %v, want %v: %+v", kinds, c.kinds, out.Findings)
			}
			var drifts []string
			pending := map[string]int64{}
			for _, ch := range out.Checks {
				if ch.Drifts() {
					drifts = append(drifts, ch.Account)
				}
				if ch.Pending != 0 {
					pending[ch.Account] = ch.Pending
				}
				if !ch.NeedsStatement && ch.Bank-ch.Ledger != ch.Explained+ch.Pending+ch.Unexplained {
					t.Errorf("check %+v does not add up", ch)
				}
			}
			if !slices.Equal(drifts, c.drifts) {
				t.Errorf("drifting %v, want %v: %+v", drifts, c.drifts, out.Checks)
			}
			if len(pending) > 0 || len(c.pending) > 0 {
				if !maps.Equal(pending, c.pending) {
					t.Errorf("pending %v, want %v", pending, c.pending)
				}
			}
			if c.check != nil {
				c.check(t, out)
			}
		})
	}
}

func TestDriftFinding(t *testing.T) {
	t.Parallel()
	f := DriftFinding("p", BalanceCheck{Account: "COLLECTION-0001", Role: RoleCollection, Ledger: 0, Bank: 100, AtBank: true, Unexplained: 100})
	if f.Kind != FindingBalanceDrift || f.Fingerprint != "p|balance_drift|COLLECTION-0001|100" || f.Amount != 100 || len(f.Effects) != 0 {
		t.Fatalf("%+v", f)
	}
	if !strings.Contains(f.Detail, "holds more") || strings.Contains(f.Detail, "COLLECTION-0001") {
		t.Fatalf("detail %q", f.Detail)
	}
	if s := f.Summary(); !strings.Contains(s, "balance drift") || !strings.Contains(s, "****0001") {
		t.Fatalf("summary %q", s)
	}
}

// Findings name accounts masked: a full account number never reaches an
// alert.
func TestReconcileDetailsMaskAccounts(t *testing.T) {
	t.Parallel()
	in := recCase{
		expected: []EngineTransfer{{Key: "k1", From: "VA00001234", To: "COLLECT9876", Amount: 10, Status: AttemptSucceeded, CreatedAt: inDay}},
		lines:    []StatementLine{line("t1", "COLLECT9876", Credit, 11, "VA00001234", "k1")},
	}.input()
	in.Read["COLLECT9876"] = true
	out := Reconcile(in)
	if len(out.Findings) != 1 {
		t.Fatalf("%+v", out.Findings)
	}
	if d := out.Findings[0].Detail; strings.Contains(d, "VA00001234") || strings.Contains(d, "COLLECT9876") || !strings.Contains(d, "****1234") {
		t.Fatalf("detail %q", d)
	}
}

func TestAccountsRoles(t *testing.T) {
	t.Parallel()
	got := Accounts{Collection: "C", Lender: "L", Holding: "", Fee: "L"}.Roles()
	if !maps.Equal(got, map[string]Role{"C": RoleCollection, "L": RoleLender}) {
		t.Fatalf("%v", got)
	}
}

func TestParseAttemptKey(t *testing.T) {
	t.Parallel()
	if step, no := ParseAttemptKey(AttemptKey(42, 3)); step != 42 || no != 3 {
		t.Fatalf("%d %d", step, no)
	}
	for _, k := range []string{"manual-1", "settle-s1-a1x", "settle-s01-a1", ""} {
		if step, no := ParseAttemptKey(k); step != 0 || no != 0 {
			t.Errorf("%q: %d %d", k, step, no)
		}
	}
}
