package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// PollConfig tunes the balance poller. The zero value of every field but
// Accounts polls every eligible virtual account at every cycle, with no
// budget.
type PollConfig struct {
	// BatchSize is how many accounts one balance request asks for (1..100;
	// default 100). A dialect that answers one account per call (see
	// ProviderPolling.AccountsPerCall) is asked about at most 10 at a time.
	BatchSize int
	// Policy is what a plan follows (the minimum deposit).
	Policy pipeline.Policy
	// Accounts are the engine's own accounts at each provider.
	Accounts map[string]pipeline.Accounts
	// Schedule decides which VAs each cycle polls (see pipeline.PollPolicy).
	Schedule pipeline.PollPolicy
	// Providers tunes polling per provider; a provider not named here has
	// no budget and no maintenance windows.
	Providers map[string]ProviderPolling
	// Concurrency is how many balance requests go at once per provider
	// (default 4). The provider's throttle still caps the rate.
	Concurrency int
	// Replica names this process in the poll-shard log; "" means Replica().
	Replica string
	// Now is the clock for maintenance windows and the cycle's deadline;
	// nil means time.Now. Due times are judged by the database's clock.
	Now func() time.Time
	// OnCycle, when set, is called after every cycle with how long it took
	// (by Now), its result and its error: metrics. It must not block.
	OnCycle func(took time.Duration, res PollResult, err error)
}

// ProviderPolling is how one provider is polled.
type ProviderPolling struct {
	// Budget is the most balance calls one cycle makes at the provider;
	// 0 means no limit.
	Budget int
	// AccountsPerCall is how many accounts one balance call of the
	// provider's dialect asks about (openbanking 1, rest 100), to count the
	// calls a request costs; 0 means BatchSize.
	AccountsPerCall int
	// Closed reports whether the provider is in a maintenance window at a
	// time and until when; no poll is made in one. nil means never.
	Closed func(time.Time) (time.Time, bool)
}

// PollStore is what the poller reads and writes: the database's clock, the
// providers and due virtual accounts to poll and their marks, the backlog,
// the paydays learned, the settlements of the deposits found, the alerts
// about a VA below its ledger balance, and the poll-shard log.
type PollStore interface {
	Now(ctx context.Context) (time.Time, error)
	PollProviders(ctx context.Context) ([]string, error)
	DuePollTargets(ctx context.Context, q store.DueQuery) (store.DuePage, error)
	MarkPolled(ctx context.Context, vaIDs []int64, idle time.Duration) error
	MarkDue(ctx context.Context, vaIDs []int64) error
	PollBacklog(ctx context.Context, q store.DueQuery) (store.PollBacklog, error)
	LearnPaydays(ctx context.Context, customerIDs []int64, tz string) error
	CreateSettlements(ctx context.Context, batch []store.NewSettlement) ([]store.Created, error)
	StartPollShard(ctx context.Context, r store.PollShardRun) (bool, error)
	FinishPollShard(ctx context.Context, tick time.Time, shard int, result any, runErr error) error
	ProblemStore
}

var _ PollStore = (*store.DB)(nil)

// Poller finds deposits by asking the banks for virtual-account balances,
// and turns each into a settlement with all its steps.
type Poller struct {
	db     PollStore
	banks  pipeline.Banks
	queue  pipeline.Queue
	cfg    PollConfig
	logger *slog.Logger
}

// NewPoller returns a poller.
func NewPoller(db PollStore, banks pipeline.Banks, queue pipeline.Queue, cfg PollConfig, logger *slog.Logger) *Poller {
	if cfg.BatchSize <= 0 || cfg.BatchSize > 100 {
		cfg.BatchSize = 100
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Replica == "" {
		cfg.Replica = Replica()
	}
	return &Poller{db: db, banks: banks, queue: queue, cfg: cfg, logger: logger}
}

// PollResult reports one poll cycle; the scheduler stores it, as JSON, in
// the job-run log.
type PollResult struct {
	Polled  int `json:"polled"`  // virtual accounts asked about
	Near    int `json:"near"`    // of which near payday
	Calls   int `json:"calls"`   // balance calls spent
	Found   int `json:"found"`   // deposits found: settlements created
	Stale   int `json:"stale"`   // balances dropped because the VA was settled meanwhile
	Errors  int `json:"errors"`  // requests that failed (their VAs are retried next cycle)
	Skipped int `json:"skipped"` // balances below the minimum, in another currency, or below what the ledger holds
	// BudgetLeft is the calls left of the budgets of the providers that
	// have one; -1 when none has.
	BudgetLeft int `json:"budget_left"`
	// DueLeft counts the VAs that were due and were not polled (over
	// budget, cut short, paused).
	DueLeft int `json:"due_left"`
	// OldestUnpolled is how long ago the least recently polled VA of
	// those still due was polled, at any provider; 0 when none is left.
	OldestUnpolled time.Duration `json:"-"`
	OldestSeconds  int64         `json:"oldest_unpolled_s"`
	// Providers breaks the cycle down by provider.
	Providers map[string]ProviderPollResult `json:"providers,omitempty"`
}

// ProviderPollResult reports one provider's part of a cycle.
type ProviderPollResult struct {
	Polled  int `json:"polled"`
	Near    int `json:"near"`
	Calls   int `json:"calls"`
	Found   int `json:"found"`
	Stale   int `json:"stale"`
	Errors  int `json:"errors"`
	Skipped int `json:"skipped"`
	// Budget is the provider's budget (0: none) and BudgetLeft what is left
	// of it (-1 without one).
	Budget     int `json:"budget"`
	BudgetLeft int `json:"budget_left"`
	DueLeft    int `json:"due_left"`
	// OldestUnpolled is how long ago its least recently polled VA of those
	// still due was polled; 0 when none is left.
	OldestUnpolled time.Duration `json:"-"`
	OldestSeconds  int64         `json:"oldest_unpolled_s"`
	// Paused says why polling stopped early (a maintenance window, the bank
	// unavailable or rate limiting); CutShort that the cycle ran out of
	// time before its next tick.
	Paused   string `json:"paused,omitempty"`
	CutShort bool   `json:"cut_short,omitempty"`
}

// MaxPollHold is how long a VA in which a deposit was found is held from
// polling at most: its settlement's end releases it, and should that be
// missed, the hold runs out by itself.
const MaxPollHold = time.Hour

// pageSize is the most due VAs read at once.
const pageSize = 1000

// cycleShare is the part of the poll interval a cycle may use before it
// stops making calls, so it ends before the next tick.
const cycleShare = 0.9

// RunOnce runs one poll cycle over every virtual account, at once: every
// provider at once, each within its budget, polling the VAs its schedule
// says are due.
func (p *Poller) RunOnce(ctx context.Context) (PollResult, error) {
	return p.RunShard(ctx, PollShard{Count: 1})
}

// RunShard runs one shard of a poll cycle: the shard's VAs, at every
// provider at once, each provider within the shard's share of its budget.
// It stops making calls at the shard's deadline (a share of the interval
// after its tick; a zero Tick means now).
func (p *Poller) RunShard(ctx context.Context, shard PollShard) (PollResult, error) {
	start := p.cfg.Now()
	if shard.Tick.IsZero() {
		shard.Tick = start
	}
	cycleStart, err := p.db.Now(ctx)
	if err != nil {
		return p.cycleDone(start, PollResult{BudgetLeft: -1}, err)
	}
	providers, err := p.db.PollProviders(ctx)
	if err != nil {
		return p.cycleDone(start, PollResult{BudgetLeft: -1}, err)
	}
	var deadline time.Time
	if p.cfg.Schedule.Interval > 0 {
		deadline = shardDeadline(shard.Tick, p.cfg.Schedule.Interval)
	}
	paydays := p.cfg.Schedule.OpenPaydays(start)
	results := make([]ProviderPollResult, len(providers))
	var wg sync.WaitGroup
	for i, name := range providers {
		c := p.newCycle(name, shard, store.DueQuery{
			Provider: name, Paydays: paydays, CycleStart: cycleStart, NearEvery: p.cfg.Schedule.NearEvery(),
			FromVA: shard.FromVA, ToVA: shard.ToVA,
		}, deadline)
		wg.Go(func() { results[i] = c.run(ctx) })
	}
	wg.Wait()
	res := summarize(providers, results)
	p.logger.InfoContext(ctx, "poll cycle", "shard", shard.Index, "shards", shard.Count, "polled", res.Polled, "near_payday", res.Near, "calls", res.Calls,
		"budget_left", res.BudgetLeft, "found", res.Found, "due_left", res.DueLeft, "oldest_unpolled", res.OldestUnpolled,
		"errors", res.Errors, "took", time.Since(start).Round(time.Millisecond))
	return p.cycleDone(start, res, ctx.Err())
}

// cycleDone tells OnCycle about a cycle that started at start, and returns
// its result.
func (p *Poller) cycleDone(start time.Time, res PollResult, err error) (PollResult, error) {
	if p.cfg.OnCycle != nil {
		p.cfg.OnCycle(p.cfg.Now().Sub(start), res, err)
	}
	return res, err
}

func summarize(names []string, rs []ProviderPollResult) PollResult {
	res := PollResult{BudgetLeft: -1, Providers: make(map[string]ProviderPollResult, len(rs))}
	for i, r := range rs {
		res.Providers[names[i]] = r
		res.Polled += r.Polled
		res.Near += r.Near
		res.Calls += r.Calls
		res.Found += r.Found
		res.Stale += r.Stale
		res.Errors += r.Errors
		res.Skipped += r.Skipped
		res.DueLeft += r.DueLeft
		res.OldestUnpolled = max(res.OldestUnpolled, r.OldestUnpolled)
		if r.Budget > 0 {
			res.BudgetLeft = max(res.BudgetLeft, 0) + r.BudgetLeft
		}
	}
	res.OldestSeconds = int64(res.OldestUnpolled / time.Second)
	return res
}

// cycle is one provider's part of a poll cycle.
type cycle struct {
	p        *Poller
	q        store.DueQuery
	pp       ProviderPolling
	perCall  int // accounts one balance call asks about
	chunk    int // accounts one request asks about
	deadline time.Time

	mu      sync.Mutex
	res     ProviderPollResult
	stopped bool // paused or cut short: dispatch nothing more
	left    bool // due VAs may be left: the backlog is measured
}

func (p *Poller) newCycle(name string, shard PollShard, q store.DueQuery, deadline time.Time) *cycle {
	pp := p.cfg.Providers[name]
	budget := pp.Budget
	pp.Budget = shard.BudgetShare(budget)
	per := pp.AccountsPerCall
	if per <= 0 {
		per = p.cfg.BatchSize
	}
	return &cycle{
		p: p, q: q, pp: pp, perCall: per, chunk: min(p.cfg.BatchSize, 10*per), deadline: deadline,
		res: ProviderPollResult{Budget: pp.Budget, BudgetLeft: -1},
		// A budget smaller than the shard count leaves some shards nothing.
		stopped: budget > 0 && pp.Budget == 0,
	}
}

// run polls one provider: idle VAs up to the reserve, near-payday VAs,
// then idle VAs again, all within the budget; then measures the backlog.
func (c *cycle) run(ctx context.Context) ProviderPollResult {
	c.poll(ctx)
	c.measure(ctx)
	return c.res
}

func (c *cycle) poll(ctx context.Context) {
	c.left = true // until every due VA was asked about
	if until, closed := c.closed(c.p.cfg.Now()); closed {
		c.res.Paused = "maintenance window until " + until.Format("15:04 MST")
		return
	}
	bank, err := c.p.banks.Bank(c.q.Provider)
	if err != nil {
		c.res.Errors++
		c.p.logger.WarnContext(ctx, "virtual accounts at a provider that is not configured are not polled", "provider", c.q.Provider, "err", err)
		return
	}
	work := make(chan []store.DueTarget)
	var wg sync.WaitGroup
	for range c.p.cfg.Concurrency {
		wg.Go(func() {
			for batch := range work {
				c.pollBatch(ctx, bank, batch)
			}
		})
	}
	all, err := c.feedAll(ctx, work)
	close(work)
	wg.Wait()
	c.left = !all || c.stopped
	if err != nil && ctx.Err() == nil {
		c.res.Errors++
		c.p.logger.WarnContext(ctx, "poll cycle stopped early", "provider", c.q.Provider, "err", err)
	}
}

func (c *cycle) closed(t time.Time) (time.Time, bool) {
	if c.pp.Closed == nil {
		return time.Time{}, false
	}
	return c.pp.Closed(t)
}

// feedAll dispatches the due VAs in the policy's order. It reports whether
// it went through every due VA (nothing was left for lack of budget).
func (c *cycle) feedAll(ctx context.Context, work chan<- []store.DueTarget) (bool, error) {
	budget := c.budget()
	reserve := budget
	if c.pp.Budget > 0 {
		reserve = c.p.cfg.Schedule.Reserve(budget)
	}
	idle, _, err := c.feed(ctx, work, false, store.DueKey{}, reserve)
	if err != nil {
		return false, err
	}
	allNear := true
	if len(c.q.Paydays) > 0 { // no payday's window is open: no VA is near one
		if _, allNear, err = c.feed(ctx, work, true, store.DueKey{}, budget); err != nil {
			return false, err
		}
	}
	_, allIdle, err := c.feed(ctx, work, false, idle, budget)
	return allNear && allIdle, err
}

// feed dispatches due VAs of one class after a key, in requests of chunk
// accounts, until the class is exhausted or the calls spent reach limit.
// It returns the last key dispatched, and whether the class was exhausted.
func (c *cycle) feed(ctx context.Context, work chan<- []store.DueTarget, near bool, after store.DueKey, limit int) (store.DueKey, bool, error) {
	for {
		room := c.room(limit)
		if room <= 0 {
			return after, false, nil
		}
		q := c.q
		q.Near, q.After, q.Limit = near, after, pageSize
		if room < pageSize/c.perCall {
			q.Limit = room * c.perCall
		}
		page, err := c.p.db.DuePollTargets(ctx, q)
		if err != nil {
			return after, false, err
		}
		for batch := range chunks(page.Targets, c.chunk) {
			if !c.take(batch, limit) {
				return after, false, nil
			}
			select {
			case work <- batch:
			case <-ctx.Done():
				return after, false, ctx.Err()
			}
			after = batch[len(batch)-1].Key
		}
		if page.Scanned < q.Limit {
			return after, true, nil
		}
		after = page.Last
	}
}

// room returns the calls that may still be dispatched under limit, or 0
// once the cycle was stopped.
func (c *cycle) room(limit int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return 0
	}
	return limit - c.res.Calls
}

// take accounts for the calls of one request before it is dispatched. It
// refuses a request that would spend more than limit calls, and stops the
// cycle when its time is up.
func (c *cycle) take(batch []store.DueTarget, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	if !c.deadline.IsZero() && !c.p.cfg.Now().Before(c.deadline) {
		c.stopped, c.res.CutShort = true, true
		return false
	}
	cost := (len(batch) + c.perCall - 1) / c.perCall
	if c.res.Calls+cost > limit {
		return false
	}
	c.res.Calls += cost
	return true
}

// balanceTries is how many times one request's balances are asked for
// within a cycle; the waits between tries start at balanceRetryWait.
const (
	balanceTries     = 3
	balanceRetryWait = 100 * time.Millisecond
)

// balances asks the bank for the balances of one request, and asks again
// (up to balanceTries, within the budget) after a failure that may be
// passing: a 5xx, a timeout, a garbled answer. A balance call is a read,
// so asking again is safe, and a payday's deposits are not left for the
// next cycle by one 5xx. A bank that is busy, rate-limits or is in
// maintenance is not asked again: the cycle pauses the provider.
func (c *cycle) balances(ctx context.Context, bank pipeline.Bank, targets []store.DueTarget, numbers []string) ([]pipeline.Balance, error) {
	wait := balanceRetryWait
	for try := 1; ; try++ {
		got, err := bank.Balances(ctx, numbers)
		switch {
		case err == nil, errors.Is(err, pipeline.ErrUnavailable), errors.Is(err, pipeline.ErrRateLimited),
			try == balanceTries, ctx.Err() != nil, !c.take(targets, c.budget()):
			return got, err
		}
		if sleepErr := sleep(ctx, wait); sleepErr != nil {
			return nil, err
		}
		wait *= 2
	}
}

// budget is the most calls the cycle may spend.
func (c *cycle) budget() int {
	if c.pp.Budget <= 0 {
		return int(^uint(0) >> 1)
	}
	return c.pp.Budget
}

// pollBatch asks the bank about one request's VAs and settles every
// deposit found. The VAs are marked polled, except those whose settlement
// could not be written, which stay due.
func (c *cycle) pollBatch(ctx context.Context, bank pipeline.Bank, targets []store.DueTarget) {
	numbers, ids := make([]string, len(targets)), make([]int64, len(targets))
	for i, t := range targets {
		numbers[i], ids[i] = t.Number, t.VAID
	}
	// Marked before the call, so that no other cycle (a later tick's, when
	// this one runs long) asks about them meanwhile.
	if err := c.p.db.MarkPolled(ctx, ids, c.p.cfg.Schedule.IdleAfter()); err != nil {
		c.failed(ctx, len(targets), err)
		return
	}
	balances, err := c.balances(ctx, bank, targets, numbers)
	if err != nil {
		c.failed(ctx, len(targets), err)
		c.due(ctx, ids)
		return
	}
	byNumber := make(map[string]pipeline.Money, len(balances))
	for _, b := range balances {
		byNumber[b.Account] = b.Available
	}
	var unsettled []int64
	var near int
	var tally ProviderPollResult
	var batch []store.NewSettlement
	for _, t := range targets {
		if t.Near {
			near++
		}
		bal, ok := byNumber[t.Number]
		if !ok || bal.Amount <= 0 {
			continue
		}
		ns, ok, err := c.p.plan(ctx, t.PollTarget, bal, &tally)
		switch {
		case err != nil:
			tally.Errors++
			unsettled = append(unsettled, t.VAID)
			c.p.logger.WarnContext(ctx, "deposit not settled; polled again next cycle", "provider", c.q.Provider, "va", t.VAID, "err", err)
		case ok:
			batch = append(batch, ns)
		}
	}
	found, failed := c.p.settle(ctx, batch, &tally)
	c.due(ctx, append(unsettled, failed...))
	c.learn(ctx, found)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Polled += len(targets)
	c.res.Near += near
	c.res.Found += tally.Found
	c.res.Stale += tally.Stale
	c.res.Errors += tally.Errors
	c.res.Skipped += tally.Skipped
}

// due makes VAs whose poll failed due again at the next cycle.
func (c *cycle) due(ctx context.Context, ids []int64) {
	if len(ids) == 0 {
		return
	}
	if err := c.p.db.MarkDue(context.WithoutCancel(ctx), ids); err != nil {
		c.p.logger.WarnContext(ctx, "could not make VAs whose poll failed due again; they wait for their next idle poll",
			"provider", c.q.Provider, "accounts", len(ids), "err", err)
	}
}

// learn learns the paydays of the customers whose deposit was found.
func (c *cycle) learn(ctx context.Context, found []int64) {
	if len(found) > 0 {
		if err := c.p.db.LearnPaydays(ctx, found, c.p.cfg.Schedule.TimeZone().String()); err != nil {
			c.p.logger.WarnContext(ctx, "could not learn paydays", "provider", c.q.Provider, "err", err)
		}
	}
}

// failed counts a failed request; a bank that says it did nothing (down,
// in maintenance, rate limiting) pauses the provider for the rest of the
// cycle.
func (c *cycle) failed(ctx context.Context, n int, err error) {
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Errors++
	if errors.Is(err, pipeline.ErrUnavailable) || errors.Is(err, pipeline.ErrRateLimited) {
		if !c.stopped {
			c.res.Paused = err.Error()
			c.p.logger.WarnContext(ctx, "bank unavailable; polling it resumes next cycle", "provider", c.q.Provider, "err", err)
		}
		c.stopped = true
		return
	}
	c.p.logger.WarnContext(ctx, "balance request failed; its VAs are polled again next cycle", "provider", c.q.Provider, "accounts", n, "err", err)
}

// measure fills in what the cycle left: budget, VAs still due, the oldest
// poll.
func (c *cycle) measure(ctx context.Context) {
	if c.pp.Budget > 0 {
		c.res.BudgetLeft = max(c.pp.Budget-c.res.Calls, 0)
	}
	if !c.left {
		return // every due VA was asked about: none is left
	}
	b, err := c.p.db.PollBacklog(context.WithoutCancel(ctx), c.q)
	if err != nil {
		c.p.logger.WarnContext(ctx, "could not measure the poll backlog", "provider", c.q.Provider, "err", err)
		return
	}
	c.res.DueLeft, c.res.OldestUnpolled = b.Due, b.Oldest
	c.res.OldestSeconds = int64(b.Oldest / time.Second)
}

// plan builds the settlement of one balance. It reports false, counted in
// res, for a balance that is not to be settled.
func (p *Poller) plan(ctx context.Context, t store.PollTarget, bal pipeline.Money, res *ProviderPollResult) (store.NewSettlement, bool, error) {
	if bal.Currency != t.Currency {
		res.Skipped++
		p.logger.WarnContext(ctx, "balance in an unexpected currency; not settled", "va", t.VAID, "want", t.Currency, "got", bal.Currency)
		return store.NewSettlement{}, false, nil
	}
	plan, err := pipeline.BuildPlan(bal, t.Obligations(), p.cfg.Policy)
	if errors.Is(err, pipeline.ErrBelowMinimum) {
		res.Skipped++
		return store.NewSettlement{}, false, nil
	}
	if err != nil {
		return store.NewSettlement{}, false, fmt.Errorf("plan for customer %d: %w", t.CustomerID, err)
	}
	// The VA's provider moves the money, whatever the customer's route is
	// now: the deposit is there.
	acc, ok := p.cfg.Accounts[t.Provider]
	if !ok {
		return store.NewSettlement{}, false, fmt.Errorf("provider %s has no accounts configured", t.Provider)
	}
	return store.NewSettlement{Target: t, Plan: plan, Steps: plan.Steps(t.Number, acc, t.Payee()), Hold: MaxPollHold}, true, nil
}

// settle writes one balance request's settlements in one statement and
// wakes their first steps. It returns the customers whose settlement was
// written and, when the write failed, the VAs to poll again.
func (p *Poller) settle(ctx context.Context, batch []store.NewSettlement, res *ProviderPollResult) (found, failed []int64) {
	if len(batch) == 0 {
		return nil, nil
	}
	created, err := p.db.CreateSettlements(ctx, batch)
	if err != nil {
		res.Errors += len(batch)
		for _, ns := range batch {
			failed = append(failed, ns.Target.VAID)
		}
		p.logger.WarnContext(ctx, "deposits not settled; polled again next cycle", "provider", batch[0].Target.Provider, "accounts", len(batch), "err", err)
		return nil, failed
	}
	for i, c := range created {
		if c.BelowLedger() {
			res.Skipped++
			p.belowLedger(ctx, batch[i], c)
			continue
		}
		if c.SettlementID == 0 {
			res.Stale++
			continue
		}
		if c.LedgerHolds > 0 {
			p.ledgerAgrees(ctx, batch[i])
		}
		res.Found++
		found = append(found, batch[i].Target.CustomerID)
		if err := p.queue.EnqueueStep(ctx, pipeline.StepRef{ID: c.HeadStepID, First: true}); err != nil {
			p.logger.WarnContext(ctx, "enqueue failed; the relay will retry", "step", c.HeadStepID, "err", err)
		}
	}
	return found, nil
}

// belowLedger raises a critical alert for a VA whose balance is below what
// the ledger holds there: it is not settled until the two agree.
func (p *Poller) belowLedger(ctx context.Context, ns store.NewSettlement, c store.Created) {
	t := ns.Target
	p.logger.ErrorContext(ctx, "virtual account below its ledger balance; not settled",
		"provider", t.Provider, "va", t.VAID, "bank", ns.Plan.Deposit.Amount, "ledger", c.LedgerHolds)
	if _, err := p.db.RaiseAlertOnce(context.WithoutCancel(ctx), notify.BelowLedgerAlert(notify.BelowLedger{
		Provider: t.Provider, VAID: t.VAID, VA: t.Number, Bank: ns.Plan.Deposit, Ledger: c.LedgerHolds,
	})); err != nil {
		p.logger.ErrorContext(ctx, "could not raise the alert", "provider", t.Provider, "va", t.VAID, "err", err)
	}
}

// ledgerAgrees resolves a VA's below-ledger problem, if it had one, once a
// settlement took over what the ledger held there.
func (p *Poller) ledgerAgrees(ctx context.Context, ns store.NewSettlement) {
	t := ns.Target
	_, err := p.db.ResolveProblem(context.WithoutCancel(ctx), notify.BelowLedgerProblem(t.Provider, t.VAID),
		"the virtual account holds what the ledger says again; its settlement started")
	if err != nil && !errors.Is(err, store.ErrNoProblem) {
		p.logger.WarnContext(ctx, "could not resolve the below-ledger alert", "provider", t.Provider, "va", t.VAID, "err", err)
	}
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
