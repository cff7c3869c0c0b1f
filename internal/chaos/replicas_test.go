package chaos

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/store"
)

// TestReplicasKilledMidBurst runs a payday burst on three `settle serve`
// replicas sharing one PostgreSQL and Redis; mid-burst one is killed with
// SIGKILL and another stopped with SIGTERM, and both are restarted. Every
// settlement must end, the money must add up, no transfer may happen twice,
// the job-run log must show every poll tick run once, by one replica, and
// the poll-shard log each tick's shards run by the replicas' workers, with
// polling carrying on across the kills.
func TestReplicasKilledMidBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("replica run skipped with -short")
	}
	s := settings{seed: 8, customers: 400, workers: 3}
	if v := os.Getenv("SETTLE_TEST_REPLICAS_CUSTOMERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("SETTLE_TEST_REPLICAS_CUSTOMERS %q: %v", v, err)
		}
		s.customers = n
	}
	h := newHarness(t, s)
	ctx := context.Background()
	cs := h.seed(t)
	deposits := h.payAll(t, cs)
	start := time.Now()
	h.startWorkers(t, false)

	testenv.Eventually(t, 5*time.Minute, func() (bool, string) {
		n, err := h.db.StatusCounts(ctx)
		if err != nil {
			return false, err.Error()
		}
		return n["SETTLED"] >= int64(s.customers/3), "waiting for a third of the burst to settle"
	})
	killedAt := time.Now()
	h.signal(0, syscall.SIGKILL)
	h.signal(1, syscall.SIGTERM)
	h.waitQuiet(t, deposits)
	took := time.Since(start)
	h.stopWorkers(t)
	h.check(t, cs, deposits)

	runs, err := h.db.JobRuns(ctx, "poll")
	if err != nil {
		t.Fatal(err)
	}
	replicas := map[string]int{}
	var afterKill time.Duration = -1
	for i, r := range runs {
		replicas[r.Replica]++
		if i > 0 && !r.Tick.After(runs[i-1].Tick) {
			t.Errorf("poll tick %s ran twice", r.Tick)
		}
		if afterKill < 0 && r.Tick.After(killedAt) {
			afterKill = r.Tick.Sub(killedAt)
		}
	}
	if afterKill < 0 || afterKill > 10*time.Second {
		t.Errorf("the first poll tick after the kills came %s after them: polling should carry on", afterKill)
	}
	pollers := checkShards(t, h, runs, killedAt)
	t.Logf("%d customers settled in %s on 3 replicas (one SIGKILLed, one SIGTERMed mid-burst); %d poll ticks, each once, on %d replicas; shards run by %v; polling went on %s after the kills",
		s.customers, took.Round(time.Second), len(runs), len(replicas), pollers, afterKill.Round(time.Millisecond))
}

// checkShards checks the poll-shard log against the job-run log: every
// shard belongs to a tick that ran, a tick's shards agree on their count,
// shards of the ticks after the kills ran to the end, and the
// shards ran on more than one replica (over this many ticks, each shard
// taken by whichever worker is free, one replica taking them all would
// mean the workers do not share the polling). It returns how many shards
// each replica ran.
func checkShards(t *testing.T, h *harness, ticks []store.JobRun, killedAt time.Time) map[string]int {
	t.Helper()
	shards, err := h.db.PollShardRuns(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ran := map[time.Time]bool{}
	for _, r := range ticks {
		ran[r.Tick.UTC()] = true
	}
	type tally struct{ finished, of int }
	perTick := map[time.Time]*tally{}
	pollers := map[string]int{}
	for _, s := range shards {
		tick := s.Tick.UTC()
		if !ran[tick] {
			t.Errorf("shard %d of tick %s, which is not in the job-run log", s.Shard, tick)
		}
		if perTick[tick] == nil {
			perTick[tick] = &tally{of: s.Shards}
		}
		tl := perTick[tick]
		if s.Finished {
			tl.finished++
		}
		if s.Shards != tl.of {
			t.Errorf("tick %s: shard %d says %d shards, another %d", tick, s.Shard, s.Shards, tl.of)
		}
		pollers[s.Replica]++
	}
	finished := 0
	for tick, tl := range perTick {
		if tick.After(killedAt) {
			finished += tl.finished
		}
	}
	if finished == 0 {
		t.Errorf("no poll shard ran to its end after the kills: %d shard runs in all", len(shards))
	}
	if len(pollers) < 2 {
		t.Errorf("every shard ran on one replica %v: polling should be shared", pollers)
	}
	return pollers
}
