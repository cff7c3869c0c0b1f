package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Defaults of ReconcileConfig.
const (
	DefaultReconcilePageSize     = pipeline.MaxStatementPage
	DefaultReconcilePageInterval = 100 * time.Millisecond
	DefaultReconcileBalanceBatch = 100
	DefaultReconcileSlack        = time.Hour
	DefaultReconcileTolerance    = 24 * time.Hour
	DefaultReconcileConfirmDelay = 10 * time.Second
)

// ReconcileConfig configures the Reconciler. Zero fields take the defaults.
type ReconcileConfig struct {
	// Accounts are the engine's own accounts at each provider; every provider
	// named here is reconciled. Required.
	Accounts map[string]pipeline.Accounts
	// Statements lists statements at the providers whose dialect can (rest);
	// a provider without one gets its balances compared only.
	Statements map[string]pipeline.Statements
	// PageSize is the lines one statement call asks for; 0 means 500, the
	// most the rest dialect allows.
	PageSize int
	// PageInterval is the least time between two statement calls, so that a
	// reconciliation leaves the bank's rate limit to settlement; 0 means
	// 100ms, a negative value no pause.
	PageInterval time.Duration
	// BalanceBatch is the accounts one balance call asks for; 0 means 100.
	BalanceBatch int
	// Slack is how far a bank's clock may lag the database's; 0 means 1h.
	Slack time.Duration
	// DateTolerance is how long after its attempt a bank line without a key
	// may still be matched to it by amount and date; 0 means 24h.
	DateTolerance time.Duration
	// ConfirmDelay is how long to wait before a second look at balances
	// that drift: a drift is reported only if the second look shows the
	// same amount (money in flight during the first look is not drift); 0
	// means 10s.
	ConfirmDelay time.Duration
	// Location is the time zone of business days: a run with no start
	// reconciles from the start of yesterday there. nil means time.Local.
	Location *time.Location
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c ReconcileConfig) withDefaults() ReconcileConfig {
	if c.PageSize <= 0 || c.PageSize > pipeline.MaxStatementPage {
		c.PageSize = DefaultReconcilePageSize
	}
	c.PageInterval = cmpOrDuration(c.PageInterval, DefaultReconcilePageInterval)
	if c.BalanceBatch <= 0 {
		c.BalanceBatch = DefaultReconcileBalanceBatch
	}
	c.Slack = cmpOrDuration(c.Slack, DefaultReconcileSlack)
	c.DateTolerance = cmpOrDuration(c.DateTolerance, DefaultReconcileTolerance)
	c.ConfirmDelay = cmpOrDuration(c.ConfirmDelay, DefaultReconcileConfirmDelay)
	if c.Location == nil {
		c.Location = time.Local
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func cmpOrDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return max(v, 0)
}

// Reconciler compares, per provider, the engine's ledger and transfers with
// the bank's balances and statements, and records each difference as a
// finding with one alert. It reads and records; it never moves money and
// never writes the ledger. Runs are serialized across processes.
type Reconciler struct {
	db     *store.DB
	banks  pipeline.Banks
	cfg    ReconcileConfig
	logger *slog.Logger
	last   time.Time // of the last statement call, for PageInterval
}

// NewReconciler returns a reconciler. banks should be the throttled
// adapters settlement uses, so balance calls share their rate limits.
func NewReconciler(db *store.DB, banks pipeline.Banks, cfg ReconcileConfig, logger *slog.Logger) *Reconciler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{db: db, banks: banks, cfg: cfg.withDefaults(), logger: logger}
}

// ReconcileOptions choose what one run covers.
type ReconcileOptions struct {
	// Since starts the window: attempts created and bank lines dated from
	// then on are matched; balances are compared as they are now. Zero
	// means the start of yesterday in the configured time zone.
	Since time.Time
	// Provider reconciles one provider; "" means every one.
	Provider string
	daily    bool // a run of the daily job (RunDaily)
}

// ReconcileResult reports one run.
type ReconcileResult struct {
	RunID     int64               `json:"run_id"`
	From      time.Time           `json:"from"`
	Providers []ProviderReconcile `json:"providers"`
	Findings  int                 `json:"findings"` // differences seen by this run
	New       int                 `json:"new"`      // of them, stored and alerted for the first time
}

// ProviderReconcile reports one provider's part of a run.
type ProviderReconcile struct {
	Provider string `json:"provider"`
	// Statements is false when the provider's dialect cannot list
	// statements: only balances were compared.
	Statements     bool `json:"statements"`
	Accounts       int  `json:"accounts"` // balances compared
	BalanceCalls   int  `json:"balance_calls"`
	StatementCalls int  `json:"statement_calls"`
	pipeline.ReconcileStats
	PendingCredits int             `json:"pending_credits"` // virtual accounts holding credits not settled yet
	PendingAmount  int64           `json:"pending_amount"`
	Moving         int             `json:"moving"` // drifts a second look did not confirm
	Findings       []FindingReport `json:"findings"`
	Error          string          `json:"error,omitempty"`
}

// FindingReport is a finding as a run reports it; the account number
// prints and marshals masked.
type FindingReport struct {
	ID           int64                  `json:"id"`
	New          bool                   `json:"new"`
	Kind         pipeline.FindingKind   `json:"kind"`
	Account      pipeline.AccountNumber `json:"account,omitempty"`
	Key          string                 `json:"idempotency_key,omitempty"`
	Amount       int64                  `json:"amount"`
	BankAmount   int64                  `json:"bank_amount"`
	SettlementID int64                  `json:"settlement_id,omitempty"`
	Detail       string                 `json:"detail"`
}

// RunOnce reconciles every provider from the start of yesterday.
func (r *Reconciler) RunOnce(ctx context.Context) (ReconcileResult, error) {
	return r.Run(ctx, ReconcileOptions{})
}

// RunDaily is the daily job's run: every provider from the start of day,
// or from further back when the last daily run that completed without an
// error began before day (from the start of that run's day), so a day that
// no daily run completed (the daemon was down, a bank could not be read)
// is reconciled by the next one.
func (r *Reconciler) RunDaily(ctx context.Context, day time.Time) (ReconcileResult, error) {
	last, ok, err := r.db.LastDailyReconcile(ctx)
	if err != nil {
		return ReconcileResult{}, err
	}
	if y, m, d := last.In(r.cfg.Location).Date(); ok {
		day = minTime(day, time.Date(y, m, d, 0, 0, 0, 0, r.cfg.Location))
	}
	return r.Run(ctx, ReconcileOptions{Since: day, daily: true})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Run reconciles as opt says. It returns store.ErrReconcileBusy when
// another run holds the lock. A provider that cannot be read is reported
// in the result and the error, and alerted once until a later run reads it;
// the others are still reconciled.
func (r *Reconciler) Run(ctx context.Context, opt ReconcileOptions) (res ReconcileResult, err error) {
	providers, err := r.providers(opt.Provider)
	if err != nil {
		return res, err
	}
	release, err := r.db.LockReconcile(ctx)
	if err != nil {
		return res, err
	}
	defer release()
	res.From = opt.Since
	if res.From.IsZero() {
		res.From = r.yesterday()
	}
	if res.RunID, err = r.db.StartReconcileRun(ctx, opt.Provider, res.From, opt.daily); err != nil {
		return res, err
	}
	defer func() {
		if ferr := r.db.FinishReconcileRun(ctx, res.RunID, res, err); ferr != nil {
			r.logger.Error("could not record the reconciliation run", "run", res.RunID, "err", ferr)
		}
	}()
	var errs []error
	for _, p := range providers {
		pr, perr := r.provider(ctx, p, res.From, res.RunID)
		r.tellReadable(ctx, p, perr)
		if perr != nil {
			pr.Error = perr.Error()
			errs = append(errs, fmt.Errorf("reconcile %s: %w", p, perr))
		}
		res.add(pr)
	}
	return res, errors.Join(errs...)
}

func (res *ReconcileResult) add(pr ProviderReconcile) {
	res.Providers = append(res.Providers, pr)
	res.Findings += len(pr.Findings)
	for _, f := range pr.Findings {
		if f.New {
			res.New++
		}
	}
}

// unreadableProblem is the alert problem of a provider reconciliation
// could not read.
func unreadableProblem(p string) string { return "reconcile:provider:" + p }

// tellReadable alerts, once, that a provider could not be read, and
// resolves that alert when a later run reads it. A run cut short by its
// own context (a shutdown) says nothing.
func (r *Reconciler) tellReadable(ctx context.Context, p string, perr error) {
	if ctx.Err() != nil {
		return
	}
	var err error
	if perr == nil {
		_, err = r.db.ResolveProblem(ctx, unreadableProblem(p), "reconciliation read provider "+p+" again")
		if errors.Is(err, store.ErrNoProblem) {
			err = nil
		}
	} else {
		_, err = r.db.RaiseAlertOnce(ctx, pipeline.Alert{
			ProblemKey: unreadableProblem(p), Kind: store.AlertKindReconcile, Severity: "warning",
			Summary: fmt.Sprintf("Reconciliation could not read provider %s: its balances and transfers are not checked", p),
			Detail:  perr.Error(),
			Action: fmt.Sprintf("check the provider; the daily run is retried, and the next one reaches back to the last complete run "+
				"(or run 'settle reconcile --provider %s' once it answers)", p),
		})
	}
	if err != nil {
		r.logger.ErrorContext(ctx, "could not record whether the provider was readable", "provider", p, "err", err)
	}
}

func (r *Reconciler) providers(only string) ([]string, error) {
	all := slices.Sorted(maps.Keys(r.cfg.Accounts))
	if only == "" {
		return all, nil
	}
	if !slices.Contains(all, only) {
		return nil, fmt.Errorf("no provider named %q (configured: %v)", only, all)
	}
	return []string{only}, nil
}

// yesterday is the start of the previous business day.
func (r *Reconciler) yesterday() time.Time {
	y, m, d := r.cfg.Now().In(r.cfg.Location).Date()
	return time.Date(y, m, d-1, 0, 0, 0, 0, r.cfg.Location)
}

// provider reconciles one provider: a first look, and when a balance
// drifts, a second look after ConfirmDelay; then the findings are recorded.
func (r *Reconciler) provider(ctx context.Context, p string, from time.Time, runID int64) (ProviderReconcile, error) {
	pr := ProviderReconcile{Provider: p, Findings: []FindingReport{}}
	rs := newReadState()
	out, err := r.look(ctx, p, from, rs, &pr)
	if err != nil {
		return pr, err
	}
	var drifts []pipeline.Finding
	if slices.ContainsFunc(out.Checks, pipeline.BalanceCheck.Drifts) {
		if err := sleep(ctx, r.cfg.ConfirmDelay); err != nil {
			return pr, err
		}
		first := out.Checks
		if out, err = r.look(ctx, p, from, rs, &pr); err != nil {
			return pr, err
		}
		drifts, pr.Moving = confirmDrifts(p, first, out.Checks)
	}
	pr.ReconcileStats = out.Stats
	for _, c := range out.Checks {
		if c.Pending > 0 {
			pr.PendingCredits++
			pr.PendingAmount += c.Pending
		}
	}
	if err := r.db.SaveStatementMarks(ctx, p, rs.marks); err != nil {
		return pr, err
	}
	return pr, r.record(ctx, runID, append(out.Findings, drifts...), &pr)
}

// confirmDrifts keeps the drifts the second look shows with the same amount
// as the first, and counts the others as moving.
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
		if !c.Drifts() {
			continue
		}
		if u, ok := seen[c.Account]; ok && u == c.Unexplained {
			out = append(out, pipeline.DriftFinding(p, c))
		} else {
			moving++
		}
	}
	return out, moving
}

func (r *Reconciler) record(ctx context.Context, runID int64, fs []pipeline.Finding, pr *ProviderReconcile) error {
	if err := r.nameLostAttempts(ctx, fs); err != nil {
		return err
	}
	recorded, err := r.db.RecordFindings(ctx, runID, fs)
	if err != nil {
		return err
	}
	for i, f := range fs {
		rec := recorded[i]
		pr.Findings = append(pr.Findings, FindingReport{ID: rec.ID, New: rec.New, Kind: f.Kind,
			Account: pipeline.AccountNumber(f.Account), Key: f.Key, Amount: f.Amount, BankAmount: f.BankAmount,
			SettlementID: f.SettlementID, Detail: f.Detail})
		if rec.New {
			r.logger.WarnContext(ctx, "reconciliation found a difference", "provider", pr.Provider, "finding", rec.ID,
				"kind", string(f.Kind), "account", pipeline.AccountNumber(f.Account), "key", f.Key)
		}
	}
	return nil
}

// nameLostAttempts gives a finding about an attempt key the engine has no
// row for the settlement and step the key names, so its alert shows them.
func (r *Reconciler) nameLostAttempts(ctx context.Context, fs []pipeline.Finding) error {
	var steps []int64
	for _, f := range fs {
		if step, _ := pipeline.ParseAttemptKey(f.Key); step != 0 && f.SettlementID == 0 {
			steps = append(steps, step)
		}
	}
	if len(steps) == 0 {
		return nil
	}
	of, err := r.db.SettlementsOfSteps(ctx, steps)
	if err != nil {
		return err
	}
	for i, f := range fs {
		if step, _ := pipeline.ParseAttemptKey(f.Key); f.SettlementID == 0 && of[step] != 0 {
			fs[i].SettlementID, fs[i].StepID = of[step], step
		}
	}
	return nil
}

// readState is what a run has read of a provider's statements: the lines by
// account (each once), where each account's reading stopped, and the page
// boundaries to save.
type readState struct {
	lines map[string][]pipeline.StatementLine
	seen  map[string]bool // account + "\x00" + line ID
	end   map[string]string
	marks []store.StatementMark
}

func newReadState() *readState {
	return &readState{lines: map[string][]pipeline.StatementLine{}, seen: map[string]bool{}, end: map[string]string{}}
}

// look reads the engine's side, then the bank's balances, then its
// statements (continuing where an earlier look stopped), and compares.
func (r *Reconciler) look(ctx context.Context, p string, from time.Time, rs *readState, pr *ProviderReconcile) (pipeline.ReconcileOutput, error) {
	snap, err := r.db.ReconcileSnapshot(ctx, p, from)
	if err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	bank, err := r.banks.Bank(p)
	if err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	own := r.cfg.Accounts[p].Roles()
	accounts := maps.Clone(own)
	for _, va := range snap.VAs {
		if _, ok := accounts[va]; !ok {
			accounts[va] = pipeline.RoleVA
		}
	}
	balances, err := r.balances(ctx, bank, slices.Sorted(maps.Keys(accounts)), pr)
	if err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	lister := r.cfg.Statements[p]
	pr.Statements, pr.Accounts = lister != nil, len(accounts)
	in := pipeline.ReconcileInput{
		Provider: p, From: from, Slack: r.cfg.Slack, DateTolerance: r.cfg.DateTolerance, AsOf: snap.AsOf,
		Accounts: accounts, Expected: snap.Expected, Ledger: snap.Ledger, Bank: balances, Stored: snap.Stored,
		StatementsAvailable: lister != nil,
	}
	if lister == nil {
		return pipeline.Reconcile(in), nil
	}
	// The own accounts' statements, and the virtual accounts an earlier look read.
	toRead := slices.Sorted(maps.Keys(own))
	for _, acc := range slices.Sorted(maps.Keys(rs.end)) {
		if _, isOwn := own[acc]; !isOwn {
			toRead = append(toRead, acc)
		}
	}
	if err := r.readStatements(ctx, p, lister, toRead, own, from, rs, pr); err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	out, err := r.compare(ctx, in, rs)
	if err != nil {
		return out, err
	}
	// A virtual account that holds less than explained: its statement shows
	// why (a transfer out of it to an account whose statement is not read).
	var short []string
	for _, c := range out.Checks {
		if c.NeedsStatement {
			short = append(short, c.Account)
		}
	}
	if len(short) == 0 {
		return out, nil
	}
	if err := r.readStatements(ctx, p, lister, short, own, from, rs, pr); err != nil {
		return out, err
	}
	return r.compare(ctx, in, rs)
}

func (r *Reconciler) readStatements(ctx context.Context, p string, lister pipeline.Statements, accs []string,
	own map[string]pipeline.Role, from time.Time, rs *readState, pr *ProviderReconcile) error {
	for _, acc := range accs {
		_, isOwn := own[acc]
		if err := r.readStatement(ctx, p, lister, acc, from, isOwn, rs, pr); err != nil {
			return err
		}
	}
	return nil
}

// compare looks up the attempts the lines name and reconciles.
func (r *Reconciler) compare(ctx context.Context, in pipeline.ReconcileInput, rs *readState) (pipeline.ReconcileOutput, error) {
	in.Read, in.Lines = map[string]bool{}, nil
	keys := map[string]bool{}
	for _, lines := range rs.lines {
		in.Lines = append(in.Lines, lines...)
		for _, l := range lines {
			if l.Key != "" {
				keys[l.Key] = true
			}
		}
	}
	slices.SortFunc(in.Lines, func(a, b pipeline.StatementLine) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.Account, b.Account), strings.Compare(a.ID, b.ID))
	})
	for acc := range rs.end {
		in.Read[acc] = true
	}
	var err error
	if in.Attempts, err = r.db.EngineAttempts(ctx, in.Provider, slices.Sorted(maps.Keys(keys))); err != nil {
		return pipeline.ReconcileOutput{}, err
	}
	return pipeline.Reconcile(in), nil
}

// balances asks the bank for the accounts' balances, BalanceBatch a call.
func (r *Reconciler) balances(ctx context.Context, bank pipeline.Bank, accounts []string, pr *ProviderReconcile) (map[string]int64, error) {
	out := make(map[string]int64, len(accounts))
	for batch := range chunks(accounts, r.cfg.BalanceBatch) {
		pr.BalanceCalls++
		got, err := bank.Balances(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("balances: %w", err)
		}
		for _, b := range got {
			out[b.Account] = b.Available.Amount
		}
	}
	return out, nil
}

// readStatement reads an account's statement to its end: from where an
// earlier look stopped, else (own accounts) from the latest saved page
// boundary before the window, else from the start. It keeps the lines from
// the window's start less the slack.
func (r *Reconciler) readStatement(ctx context.Context, p string, lister pipeline.Statements, acc string, from time.Time,
	own bool, rs *readState, pr *ProviderReconcile) error {
	floor := from.Add(-r.cfg.Slack)
	cursor, resumed := rs.end[acc]
	if !resumed && own {
		var err error
		if cursor, err = r.db.StatementCursor(ctx, p, acc, floor); err != nil {
			return err
		}
	}
	for {
		page, err := r.page(ctx, lister, acc, cursor, pr)
		if err != nil {
			return fmt.Errorf("statement of %s: %w", pipeline.AccountNumber(acc), err)
		}
		rs.add(acc, page.Lines, floor)
		if page.More && (page.Next == "" || page.Next == cursor) {
			return fmt.Errorf("statement of %s: the bank says more lines follow but gives no cursor past this page; "+
				"nothing after it can be read: ask the bank to fix its paging", pipeline.AccountNumber(acc))
		}
		if page.Next != "" {
			cursor = page.Next
			if n := len(page.Lines); n > 0 && own {
				rs.marks = append(rs.marks, store.StatementMark{Account: acc, Cursor: cursor, LastAt: page.Lines[n-1].At})
			}
		}
		if !page.More {
			rs.end[acc] = cursor
			return nil
		}
	}
}

func (rs *readState) add(acc string, lines []pipeline.StatementLine, floor time.Time) {
	for _, l := range lines {
		l.Account = acc
		id := acc + "\x00" + l.ID
		if rs.seen[id] || l.At.Before(floor) {
			continue
		}
		rs.seen[id] = true
		rs.lines[acc] = append(rs.lines[acc], l)
	}
}

// page reads one page politely: no sooner than PageInterval after the last
// call, and when the bank asks to slow down, after the time it asks for (up
// to five tries).
func (r *Reconciler) page(ctx context.Context, lister pipeline.Statements, acc, cursor string, pr *ProviderReconcile) (pipeline.StatementPage, error) {
	for try := 1; ; try++ {
		if err := sleep(ctx, time.Until(r.last.Add(r.cfg.PageInterval))); err != nil {
			return pipeline.StatementPage{}, err
		}
		r.last = time.Now()
		pr.StatementCalls++
		page, err := lister.Transactions(ctx, acc, cursor, r.cfg.PageSize)
		if err == nil || !errors.Is(err, pipeline.ErrRateLimited) || try == 5 {
			return page, err
		}
		wait := max(pipeline.RetryAfter(err), time.Second)
		r.logger.InfoContext(ctx, "bank asked reconciliation to slow down", "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return pipeline.StatementPage{}, err
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
