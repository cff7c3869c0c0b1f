package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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
	DefaultReconcileReadRetry    = time.Second
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
	// ReadRetry is the wait before a read that failed for a passing reason
	// is tried again, doubling for each try (five in all); a 429's
	// Retry-After, when longer, wins. 0 means 1s.
	ReadRetry time.Duration
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
	c.ReadRetry = cmpOrDuration(c.ReadRetry, DefaultReconcileReadRetry)
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
	db     ReconcileStore
	banks  pipeline.Banks
	cfg    ReconcileConfig
	logger *slog.Logger
	last   time.Time // of the last statement call, for PageInterval
}

// ReconcileStore is what reconciliation reads and records: the lock that
// serializes runs and the run log, the engine's snapshot and attempts of a
// provider, the statement cursors, the findings, and the alerts about a
// provider that could not be read.
type ReconcileStore interface {
	LockReconcile(ctx context.Context) (release func(), err error)
	LastDailyReconcile(ctx context.Context) (time.Time, bool, error)
	StartReconcileRun(ctx context.Context, provider string, from time.Time, daily bool) (int64, error)
	FinishReconcileRun(ctx context.Context, id int64, result any, runErr error) error
	ReconcileSnapshot(ctx context.Context, provider string, from time.Time) (store.ReconcileSnapshot, error)
	EngineAttempts(ctx context.Context, provider string, keys []string) (map[string]pipeline.EngineTransfer, error)
	StatementCursor(ctx context.Context, provider, account string, before time.Time) (string, error)
	SaveStatementMarks(ctx context.Context, provider string, marks []store.StatementMark) error
	SettlementsOfSteps(ctx context.Context, steps []int64) (map[int64]int64, error)
	RecordFindings(ctx context.Context, runID int64, fs []pipeline.Finding) ([]store.RecordedFinding, error)
	ProblemStore
}

var _ ReconcileStore = (*store.DB)(nil)

// NewReconciler returns a reconciler. banks should be the throttled
// adapters settlement uses, so balance calls share their rate limits.
func NewReconciler(db ReconcileStore, banks pipeline.Banks, cfg ReconcileConfig, logger *slog.Logger) *Reconciler {
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
			ProblemKey: unreadableProblem(p), Kind: pipeline.AlertKindReconcile, Severity: pipeline.SeverityWarning,
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
