package bench

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

// redisInfo reads one INFO section as key → value.
func redisInfo(ctx context.Context, rc *redis.Client, section string) (map[string]string, error) {
	s, err := rc.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO %s: %w", section, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out, nil
}

func usedMemory(ctx context.Context, rc *redis.Client) (int64, error) {
	m, err := redisInfo(ctx, rc, "memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(m["used_memory"], 10, 64)
}

// commandCalls reads INFO commandstats as command → calls. The bench's own
// INFO calls are left out.
func commandCalls(ctx context.Context, rc *redis.Client) (map[string]int64, error) {
	m, err := redisInfo(ctx, rc, "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for k, v := range m {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok || name == "info" {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(kv, "calls="); ok {
				out[name], _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	return out, nil
}

// RedisUsage is what the engine asked of Redis during the run.
type RedisUsage struct {
	// CommandsPerSettlement counts every command Redis ran, including
	// those inside Asynq's Lua scripts (evalsha counts the scripts).
	CommandsPerSettlement float64          `json:"commands_per_settlement"`
	ScriptsPerSettlement  float64          `json:"scripts_per_settlement"`
	Top                   map[string]int64 `json:"top_commands"`
	PeakUsedMemory        int64            `json:"peak_used_memory_bytes"`
	BaselineUsedMemory    int64            `json:"baseline_used_memory_bytes"`
	CPUSeconds            float64          `json:"cpu_seconds"`
}

func redisUsage(before, after map[string]int64, settlements int64) RedisUsage {
	n := float64(max(settlements, 1))
	type kv struct {
		k string
		v int64
	}
	var all []kv
	var total, scripts int64
	for k, a := range after {
		d := a - before[k]
		if d <= 0 {
			continue
		}
		total += d
		if k == "evalsha" || k == "eval" {
			scripts += d
		}
		all = append(all, kv{k, d})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	u := RedisUsage{CommandsPerSettlement: float64(total) / n, ScriptsPerSettlement: float64(scripts) / n, Top: map[string]int64{}}
	for i, e := range all {
		if i == 12 {
			break
		}
		u.Top[e.k] = e.v
	}
	return u
}

// bytesPerQueuedTask enqueues n step tasks exactly as the engine does
// (jobs.Queue.EnqueueStep, before any worker runs), weighs what they take in
// Redis and deletes them again. It weighs the keys themselves (MEMORY USAGE
// of each task's hash and the growth of the pending list), not used_memory:
// used_memory also moves with client buffers and every other user of the
// server, so around a small n it can even shrink. A warm-up round first
// creates the queue's list, whose fixed cost is not the tasks'.
func bytesPerQueuedTask(ctx context.Context, rc *redis.Client, opt asynq.RedisConnOpt, n int) (float64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("weigh queued tasks: n = %d, want at least 1", n)
	}
	q := jobs.NewQueue(opt, time.Minute)
	defer q.Close()
	const senders, warm, first = 8, 400, 100_000
	if err := enqueueSteps(ctx, q, senders, 1, warm); err != nil {
		return 0, err
	}
	pending := "asynq:{" + jobs.QueueSteps + "}:pending"
	before, err := rc.MemoryUsage(ctx, pending, 0).Result()
	if err != nil {
		return 0, fmt.Errorf("redis MEMORY USAGE %s: %w", pending, err)
	}
	// Step IDs of the size a 100,000-customer payday has.
	if err := enqueueSteps(ctx, q, senders, first, n); err != nil {
		return 0, err
	}
	after, err := rc.MemoryUsage(ctx, pending, 0).Result()
	if err != nil {
		return 0, fmt.Errorf("redis MEMORY USAGE %s: %w", pending, err)
	}
	total := max(after-before, 0)
	const chunk = 1000
	for lo := 0; lo < n; lo += chunk {
		pipe := rc.Pipeline()
		var sizes []*redis.IntCmd
		for i := lo; i < min(lo+chunk, n); i++ {
			key := "asynq:{" + jobs.QueueSteps + "}:t:" + jobs.StepTaskID(pipeline.StepRef{ID: int64(first + i)})
			sizes = append(sizes, pipe.MemoryUsage(ctx, key, 0))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("redis MEMORY USAGE of the test tasks: %w", err)
		}
		for _, c := range sizes {
			total += c.Val()
		}
	}
	ins := asynq.NewInspector(opt)
	defer ins.Close()
	deleted, err := ins.DeleteAllPendingTasks(jobs.QueueSteps)
	if err != nil {
		return 0, fmt.Errorf("delete test tasks: %w", err)
	}
	if deleted != n+warm {
		return 0, fmt.Errorf("enqueued %d test tasks but deleted %d", n+warm, deleted)
	}
	return float64(total) / float64(n), nil
}

// enqueueSteps enqueues steps first .. first+n-1 from senders goroutines.
func enqueueSteps(ctx context.Context, q *jobs.Queue, senders int, first int64, n int) error {
	g, gctx := errgroup.WithContext(ctx)
	for w := range senders {
		g.Go(func() error {
			for i := w; i < n; i += senders {
				if err := q.EnqueueStep(gctx, pipeline.StepRef{ID: first + int64(i)}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("enqueue test tasks: %w", err)
	}
	return nil
}
