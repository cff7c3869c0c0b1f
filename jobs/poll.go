package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// PollConfig tunes the balance poller.
type PollConfig struct {
	// BatchSize is how many accounts one balance call asks for (1..100).
	BatchSize int
	// Policy is what a plan follows (the minimum deposit).
	Policy pipeline.Policy
	// Accounts are the engine's own accounts at each provider.
	Accounts map[string]pipeline.Accounts
}

// Poller finds deposits by asking the banks for virtual-account balances,
// and turns each into a settlement with all its steps.
type Poller struct {
	db     *store.DB
	banks  pipeline.Banks
	queue  pipeline.Queue
	cfg    PollConfig
	logger *slog.Logger
}

// NewPoller returns a poller.
func NewPoller(db *store.DB, banks pipeline.Banks, queue pipeline.Queue, cfg PollConfig, logger *slog.Logger) *Poller {
	if cfg.BatchSize <= 0 || cfg.BatchSize > 100 {
		cfg.BatchSize = 100
	}
	return &Poller{db: db, banks: banks, queue: queue, cfg: cfg, logger: logger}
}

// PollResult reports one poll cycle.
type PollResult struct {
	Polled  int // virtual accounts asked about
	Calls   int // balance calls made
	Found   int // settlements created
	Stale   int // balances dropped because the VA was settled meanwhile
	Errors  int // batches that failed (retried next cycle)
	Skipped int // balances below the minimum, or in another currency
}

// RunOnce polls every eligible virtual account once.
func (p *Poller) RunOnce(ctx context.Context) (PollResult, error) {
	var res PollResult
	var after int64
	for {
		targets, err := p.db.PollTargets(ctx, after, p.cfg.BatchSize*10)
		if err != nil {
			return res, err
		}
		if len(targets) == 0 {
			return res, nil
		}
		after = targets[len(targets)-1].VAID
		for provider, group := range groupByProvider(targets) {
			for chunk := range chunks(group, p.cfg.BatchSize) {
				if err := p.pollBatch(ctx, provider, chunk, &res); err != nil {
					if ctx.Err() != nil {
						return res, ctx.Err()
					}
					res.Errors++
					p.logger.WarnContext(ctx, "balance batch failed; retried next cycle", "provider", provider, "accounts", len(chunk), "err", err)
				}
			}
		}
	}
}

func (p *Poller) pollBatch(ctx context.Context, provider string, targets []store.PollTarget, res *PollResult) error {
	bank, err := p.banks.Bank(provider)
	if err != nil {
		return err
	}
	numbers := make([]string, len(targets))
	for i, t := range targets {
		numbers[i] = t.Number
	}
	res.Calls++
	res.Polled += len(targets)
	balances, err := bank.Balances(ctx, numbers)
	if err != nil {
		return err
	}
	byNumber := make(map[string]pipeline.Money, len(balances))
	for _, b := range balances {
		byNumber[b.Account] = b.Available
	}
	for _, t := range targets {
		bal, ok := byNumber[t.Number]
		if !ok || bal.Amount <= 0 {
			continue
		}
		if err := p.settle(ctx, t, bal, res); err != nil {
			return err
		}
	}
	return nil
}

// settle creates the settlement for one balance and wakes its first step.
func (p *Poller) settle(ctx context.Context, t store.PollTarget, bal pipeline.Money, res *PollResult) error {
	if bal.Currency != t.Currency {
		res.Skipped++
		p.logger.WarnContext(ctx, "balance in an unexpected currency; not settled", "va", t.VAID, "want", t.Currency, "got", bal.Currency)
		return nil
	}
	plan, err := pipeline.BuildPlan(bal, t.Obligations(), p.cfg.Policy)
	if errors.Is(err, pipeline.ErrBelowMinimum) {
		res.Skipped++
		return nil
	}
	if err != nil {
		return fmt.Errorf("plan for customer %d: %w", t.CustomerID, err)
	}
	acc, ok := p.cfg.Accounts[t.Provider]
	if !ok {
		return fmt.Errorf("provider %s has no accounts configured", t.Provider)
	}
	created, err := p.db.CreateSettlement(ctx, store.NewSettlement{
		Target: t, Plan: plan, Steps: plan.Steps(t.Number, acc, t.Payee()),
	})
	if errors.Is(err, store.ErrStale) {
		res.Stale++
		return nil
	}
	if err != nil {
		return err
	}
	res.Found++
	if err := p.queue.EnqueueStep(ctx, pipeline.StepRef{ID: created.HeadStepID}); err != nil {
		p.logger.WarnContext(ctx, "enqueue failed; the relay will retry", "step", created.HeadStepID, "err", err)
	}
	return nil
}

func groupByProvider(ts []store.PollTarget) map[string][]store.PollTarget {
	out := make(map[string][]store.PollTarget)
	for _, t := range ts {
		out[t.Provider] = append(out[t.Provider], t)
	}
	return out
}

func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}
