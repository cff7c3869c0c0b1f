package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// How one provider is read and compared: the engine's snapshot first, then
// the bank's balances, then its statements, then the balances of the
// accounts whose statements were read once more (an account whose balance
// moved meanwhile cannot drift in this look). docs/reconciliation.md
// explains why in this order.

// providerRun is one provider's part of a run: what it has read so far, and
// its report.
type providerRun struct {
	*Reconciler
	p      string
	from   time.Time
	bank   pipeline.Bank
	lister pipeline.Statements // nil when the provider's dialect cannot list statements
	own    map[string]pipeline.Role
	pr     ProviderReconcile

	lines map[string][]pipeline.StatementLine // by account, each line once
	seen  map[string]bool                     // lineKey of the lines held
	end   map[string]string                   // where each account's statement was read up to
	marks []store.StatementMark               // page boundaries to save
}

// provider reconciles one provider and records its findings.
func (r *Reconciler) provider(ctx context.Context, p string, from time.Time, runID int64) (ProviderReconcile, error) {
	pv := &providerRun{Reconciler: r, p: p, from: from, lister: r.cfg.Statements[p], own: r.cfg.Accounts[p].Roles(),
		pr:    ProviderReconcile{Provider: p, Statements: r.cfg.Statements[p] != nil, Findings: []FindingReport{}},
		lines: map[string][]pipeline.StatementLine{}, seen: map[string]bool{}, end: map[string]string{}}
	var err error
	if pv.bank, err = r.banks.Bank(p); err != nil {
		return pv.pr, err
	}
	fs, err := pv.findings(ctx)
	if err != nil {
		return pv.pr, err
	}
	if err := r.db.SaveStatementMarks(ctx, p, pv.marks); err != nil {
		return pv.pr, err
	}
	return pv.pr, r.record(ctx, runID, fs, &pv.pr)
}

// findings looks once and, when a balance does not add up, once more after
// ConfirmDelay: a drift is reported only when both looks show it with the
// same amount on an account that held still.
func (pv *providerRun) findings(ctx context.Context) ([]pipeline.Finding, error) {
	out, err := pv.look(ctx)
	if err != nil {
		return nil, err
	}
	var drifts []pipeline.Finding
	if slices.ContainsFunc(out.Checks, pipeline.BalanceCheck.Unsettled) {
		if err := sleep(ctx, pv.cfg.ConfirmDelay); err != nil {
			return nil, err
		}
		first := out.Checks
		if out, err = pv.look(ctx); err != nil {
			return nil, err
		}
		drifts, pv.pr.Moving = confirmDrifts(pv.p, first, out.Checks)
	}
	pv.pr.ReconcileStats = out.Stats
	for _, c := range out.Checks {
		if c.Pending > 0 {
			pv.pr.PendingCredits++
			pv.pr.PendingAmount += c.Pending
		}
	}
	return append(out.Findings, drifts...), nil
}

// confirmDrifts keeps the drifts the second look shows with the same amount
// as the first, and counts the other unsettled checks of the second look as
// moving.
func confirmDrifts(p string, first, second []pipeline.BalanceCheck) ([]pipeline.Finding, int) {
	seen := map[string]int64{}
	for _, c := range first {
		if c.Drifts() {
			seen[c.Account] = c.Unexplained
		}
	}
	var out []pipeline.Finding
	moving := 0
	for _, c := range second {
		if u, ok := seen[c.Account]; ok && c.Drifts() && u == c.Unexplained {
			out = append(out, pipeline.DriftFinding(p, c))
		} else if c.Unsettled() {
			moving++
		}
	}
	return out, moving
}

// look reads the engine's side, the bank's balances and its statements
// (continuing where an earlier look stopped), and compares. A virtual
// account that holds less than explained gets its statement read too: it
// shows why (a transfer out of it to an account whose statement is not
// read).
func (pv *providerRun) look(ctx context.Context) (pipeline.ReconcileOutput, error) {
	in, err := pv.input(ctx)
	if err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	if pv.lister == nil {
		return pipeline.Reconcile(in), nil
	}
	if err := pv.readAndRecheck(ctx, &in, pv.toRead()); err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	out, err := pv.compare(ctx, in)
	var short []string
	for _, c := range out.Checks {
		if c.NeedsStatement {
			short = append(short, c.Account)
		}
	}
	if err != nil || len(short) == 0 {
		return out, err
	}
	if err := pv.readAndRecheck(ctx, &in, short); err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	return pv.compare(ctx, in)
}

// input reads the engine's snapshot, then the balances of the provider's
// own accounts and virtual accounts.
func (pv *providerRun) input(ctx context.Context) (pipeline.ReconcileInput, error) {
	snap, err := pv.db.ReconcileSnapshot(ctx, pv.p, pv.from)
	if err != nil {
		return pipeline.ReconcileInput{}, err
	}
	accounts := maps.Clone(pv.own)
	for _, va := range snap.VAs {
		if _, ok := accounts[va]; !ok {
			accounts[va] = pipeline.RoleVA
		}
	}
	pv.pr.Accounts = len(accounts)
	balances, err := pv.balances(ctx, slices.Sorted(maps.Keys(accounts)), snap.Currency)
	return pipeline.ReconcileInput{
		Provider: pv.p, From: pv.from, Slack: pv.cfg.Slack, DateTolerance: pv.cfg.DateTolerance, AsOf: snap.AsOf,
		Accounts: accounts, Expected: snap.Expected, Ledger: snap.Ledger, Bank: balances, BankAfter: map[string]int64{},
		Stored: snap.Stored, StatementsAvailable: pv.lister != nil,
	}, err
}

// toRead are the own accounts, whose statements every look reads, and the
// virtual accounts an earlier look read.
func (pv *providerRun) toRead() []string {
	accs := slices.Sorted(maps.Keys(pv.own))
	for _, acc := range slices.Sorted(maps.Keys(pv.end)) {
		if _, own := pv.own[acc]; !own {
			accs = append(accs, acc)
		}
	}
	return accs
}

// readAndRecheck reads the accounts' statements, then their balances once
// more into in.BankAfter.
func (pv *providerRun) readAndRecheck(ctx context.Context, in *pipeline.ReconcileInput, accs []string) error {
	for _, acc := range accs {
		if err := pv.readStatement(ctx, acc); err != nil {
			return err
		}
	}
	after, err := pv.balances(ctx, accs, nil)
	maps.Copy(in.BankAfter, after)
	return err
}

// compare looks up the attempts the lines name and reconciles.
func (pv *providerRun) compare(ctx context.Context, in pipeline.ReconcileInput) (pipeline.ReconcileOutput, error) {
	in.Read, in.Lines = map[string]bool{}, nil
	keys := map[string]bool{}
	for _, lines := range pv.lines {
		in.Lines = append(in.Lines, lines...)
		for _, l := range lines {
			if l.Key != "" {
				keys[l.Key] = true
			}
		}
	}
	for acc := range pv.end {
		in.Read[acc] = true
	}
	slices.SortFunc(in.Lines, func(a, b pipeline.StatementLine) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.Account, b.Account), strings.Compare(a.ID, b.ID))
	})
	var err error
	if in.Attempts, err = pv.db.EngineAttempts(ctx, in.Provider, slices.Sorted(maps.Keys(keys))); err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	return pipeline.Reconcile(in), nil
}

// balances asks the bank for the accounts' balances, BalanceBatch a call.
// A balance in another currency than the ledger's (currency, by account)
// is an error: the amounts cannot be compared.
func (pv *providerRun) balances(ctx context.Context, accounts []string, currency map[string]string) (map[string]int64, error) {
	out := make(map[string]int64, len(accounts))
	for batch := range chunks(accounts, pv.cfg.BalanceBatch) {
		var got []pipeline.Balance
		err := pv.read(ctx, "balances", func() error {
			pv.pr.BalanceCalls++
			var err error
			got, err = pv.bank.Balances(ctx, batch)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("balances: %w", err)
		}
		for _, b := range got {
			if want := currency[b.Account]; want != "" && b.Available.Currency != want {
				return nil, fmt.Errorf("the bank holds %s in %s, the ledger in %s: check that providers[].accounts names "+
					"the right account at %s", pipeline.AccountNumber(b.Account), b.Available.Currency, want, pv.p)
			}
			out[b.Account] = b.Available.Amount
		}
	}
	return out, nil
}

// readStatement reads an account's statement to its end: from where an
// earlier look stopped, else (own accounts) from the latest saved page
// boundary before the window, else from the start. It keeps the lines from
// the window's start less the slack.
func (pv *providerRun) readStatement(ctx context.Context, acc string) error {
	floor := pv.from.Add(-pv.cfg.Slack)
	_, own := pv.own[acc]
	cursor, resumed := pv.end[acc]
	if !resumed && own {
		var err error
		if cursor, err = pv.db.StatementCursor(ctx, pv.p, acc, floor); err != nil {
			return err
		}
	}
	for {
		page, err := pv.page(ctx, acc, cursor)
		if err != nil {
			return fmt.Errorf("statement of %s: %w", pipeline.AccountNumber(acc), err)
		}
		pv.add(acc, page.Lines, floor)
		if page.More && (page.Next == "" || page.Next == cursor) {
			return fmt.Errorf("statement of %s: the bank says more lines follow but gives no cursor past this page; "+
				"nothing after it can be read: ask the bank to fix its paging", pipeline.AccountNumber(acc))
		}
		if page.Next != "" {
			cursor = page.Next
			if n := len(page.Lines); n > 0 && own {
				pv.marks = append(pv.marks, store.StatementMark{Account: acc, Cursor: cursor, LastAt: page.Lines[n-1].At})
			}
		}
		if !page.More {
			pv.end[acc] = cursor
			return nil
		}
	}
}

// add keeps the lines from floor on that are not held yet.
func (pv *providerRun) add(acc string, lines []pipeline.StatementLine, floor time.Time) {
	for _, l := range lines {
		l.Account = acc
		id := acc + "\x00" + l.ID
		if pv.seen[id] || l.At.Before(floor) {
			continue
		}
		pv.seen[id] = true
		pv.lines[acc] = append(pv.lines[acc], l)
	}
}

// page reads one page politely: no sooner than PageInterval after the last
// call, and again after a transient failure (read).
func (pv *providerRun) page(ctx context.Context, acc, cursor string) (pipeline.StatementPage, error) {
	var page pipeline.StatementPage
	err := pv.read(ctx, "statement page", func() error {
		if err := sleep(ctx, time.Until(pv.last.Add(pv.cfg.PageInterval))); err != nil {
			return err
		}
		pv.last = time.Now()
		pv.pr.StatementCalls++
		var err error
		page, err = pv.lister.Transactions(ctx, acc, cursor, pv.cfg.PageSize)
		return err
	})
	return page, err
}

// readTries is how often one read (a statement page, a batch of balances)
// is tried. Reading changes nothing at the bank, so a read that failed for
// a passing reason is simply asked again: one failed call in a run of
// thousands must not fail the run.
const readTries = 5

// read runs call, and again after a transient failure: after the time a
// 429 asks for, else after ReadRetry, doubling (1s, 2s, 4s, 8s by default).
func (pv *providerRun) read(ctx context.Context, what string, call func() error) error {
	for try := 1; ; try++ {
		err := call()
		if err == nil || try == readTries || ctx.Err() != nil || !transient(err) {
			return err
		}
		wait := max(pipeline.RetryAfter(err), pv.cfg.ReadRetry<<(try-1))
		pv.logger.InfoContext(ctx, "reading the bank again after a passing failure", "provider", pv.p, "read", what,
			"wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// transient reports whether a failed read may succeed when asked again:
// the bank asked to slow down, said it did nothing, gave an answer that
// could not be understood (a 5xx), or did not answer.
func transient(err error) bool {
	var ne net.Error
	return errors.Is(err, pipeline.ErrRateLimited) || errors.Is(err, pipeline.ErrUnavailable) ||
		errors.Is(err, pipeline.ErrBadResponse) || errors.As(err, &ne)
}
