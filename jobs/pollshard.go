package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/store"
)

// PollShard is one part of a poll tick: the virtual accounts whose IDs lie
// in [FromVA, ToVA] (ToVA 0: no upper bound). The poll job's tick divides
// the active VAs into shards and enqueues one task per shard; any worker
// runs it (Poller.RunShard), so every replica shares the polling.
type PollShard struct {
	Tick   time.Time `json:"tick"`
	Index  int       `json:"shard"`
	Count  int       `json:"of"`
	FromVA int64     `json:"from_va"`
	ToVA   int64     `json:"to_va"`
}

// MaxPollShards bounds the shards of one tick.
const MaxPollShards = 256

// PlanPollShards divides the active VAs of r into shards of about
// shardSize VAs each (at least one shard when there is any VA, at most
// MaxPollShards), as contiguous ID ranges of equal width. The first shard
// has no lower bound and the last no upper bound, so a VA created after
// the plan is polled too.
func PlanPollShards(tick time.Time, r store.VARange, shardSize int) []PollShard {
	if r.Count == 0 {
		return nil
	}
	size := max(shardSize, 1)
	span := r.To - r.From + 1
	n := min(int64((r.Count+size-1)/size), MaxPollShards, span)
	width := (span + n - 1) / n
	n = (span + width - 1) / width // no empty shard at the end
	out := make([]PollShard, n)
	for i := range out {
		from := r.From + int64(i)*width
		out[i] = PollShard{Tick: tick, Index: i, Count: int(n), FromVA: from, ToVA: from + width - 1}
	}
	out[0].FromVA, out[n-1].ToVA = 0, 0
	return out
}

// BudgetShare is the shard's part of a budget of calls: the budget divided
// as evenly as whole calls allow, so the shares add up to the budget (0,
// no budget, stays 0).
func (s PollShard) BudgetShare(budget int) int {
	if budget <= 0 || s.Count <= 1 {
		return budget
	}
	share := budget / s.Count
	if s.Index < budget%s.Count {
		share++
	}
	return share
}

// ParsePollShardPayload reads a poll shard task's payload.
func ParsePollShardPayload(b []byte) (PollShard, error) {
	var s PollShard
	if err := json.Unmarshal(b, &s); err != nil || s.Count < 1 || s.Index < 0 || s.Index >= s.Count || s.Tick.IsZero() {
		return s, fmt.Errorf("poll shard task payload %q is not a shard: %w", truncate(b, 64), asynq.SkipRetry)
	}
	return s, nil
}

// PollDispatchResult is what one tick of the poll job did; the scheduler
// stores it in the job-run log. Each shard's own result is in the
// poll-shard log (store.PollShardRuns).
type PollDispatchResult struct {
	VAs    int `json:"vas"`    // active virtual accounts
	Shards int `json:"shards"` // shard tasks enqueued
}

// PollDispatcher is the poll job: at each tick it divides the active
// virtual accounts into shards and enqueues a task for each.
type PollDispatcher struct {
	db        PollDispatchStore
	queue     *Queue
	shardSize int
	interval  time.Duration
	logger    *slog.Logger
}

// PollDispatchStore is what the poll job reads and writes: the range of
// the active virtual accounts, and the pruning of the poll-shard log.
type PollDispatchStore interface {
	ActiveVARange(ctx context.Context) (store.VARange, error)
	PrunePollShardRuns(ctx context.Context, tick time.Time) error
}

var _ PollDispatchStore = (*store.DB)(nil)

// NewPollDispatcher returns the poll job. shardSize is about how many VAs
// one shard polls; interval is the poll schedule's period, which bounds
// how long a shard may run (a shard not started by then is skipped: the
// next tick polls its VAs).
func NewPollDispatcher(db PollDispatchStore, queue *Queue, shardSize int, interval time.Duration, logger *slog.Logger) *PollDispatcher {
	return &PollDispatcher{db: db, queue: queue, shardSize: max(shardSize, 1), interval: interval, logger: logger}
}

// RunOnce plans the tick's shards and enqueues them, and prunes the
// poll-shard log.
func (d *PollDispatcher) RunOnce(ctx context.Context, tick time.Time) (PollDispatchResult, error) {
	if err := d.db.PrunePollShardRuns(ctx, tick); err != nil {
		return PollDispatchResult{}, err
	}
	r, err := d.db.ActiveVARange(ctx)
	if err != nil {
		return PollDispatchResult{}, err
	}
	shards := PlanPollShards(tick, r, d.shardSize)
	res := PollDispatchResult{VAs: r.Count}
	for _, s := range shards {
		if err := d.queue.EnqueuePollShard(ctx, s, d.interval); err != nil {
			return res, err
		}
		res.Shards++
	}
	d.logger.DebugContext(ctx, "poll tick", "tick", tick, "vas", r.Count, "shards", res.Shards)
	return res, nil
}

// shardDeadline is when a shard of a tick must stop making calls: a share
// of the interval after its tick, so it ends before the next tick's shard
// of the same VAs starts.
func shardDeadline(tick time.Time, interval time.Duration) time.Time {
	return tick.Add(time.Duration(float64(interval) * cycleShare))
}

// RunShardOnce runs a shard of a tick unless it ran already (a duplicate
// delivery) or its time is up (it waited in the queue past its deadline:
// the next tick polls its VAs), and records it in the poll-shard log with
// this replica's name. It stops making calls at the shard's deadline;
// calls under way finish (a bank call cut off by the caller would count
// against the provider's breaker). Errors are logged and recorded, not returned: a
// shard is never retried, the next tick is its retry.
func (p *Poller) RunShardOnce(ctx context.Context, s PollShard) {
	if late := p.cfg.Schedule.Interval > 0 && !p.cfg.Now().Before(shardDeadline(s.Tick, p.cfg.Schedule.Interval)); late {
		p.logger.WarnContext(ctx, "poll shard skipped: it waited in the queue until its tick was over; the next tick polls its VAs",
			"tick", s.Tick, "shard", s.Index, "shards", s.Count)
		return
	}
	started, err := p.db.StartPollShard(ctx, store.PollShardRun{
		Tick: s.Tick, Shard: s.Index, Shards: s.Count, FromVA: s.FromVA, ToVA: s.ToVA, Replica: p.cfg.Replica,
	})
	if err != nil || !started {
		if err != nil {
			p.logger.ErrorContext(ctx, "poll shard not run", "shard", s.Index, "err", err)
		}
		return
	}
	res, runErr := p.RunShard(ctx, s)
	if err := p.db.FinishPollShard(context.WithoutCancel(ctx), s.Tick, s.Index, res, runErr); err != nil {
		p.logger.ErrorContext(ctx, "poll shard result not recorded", "shard", s.Index, "err", err)
	}
}
