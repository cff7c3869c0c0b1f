package chaos

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/testenv"
)

// TestReplicasKilledMidBurst runs a payday burst on three `settle serve`
// replicas sharing one PostgreSQL and Redis; mid-burst one is killed with
// SIGKILL and another stopped with SIGTERM, and both are restarted. Every
// settlement must end, the money must add up, no transfer may happen twice,
// and the job-run log must show every poll tick run once, by one replica,
// with polling carrying on across the kills.
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
	cs, err := h.seeder.Seed(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	if len(replicas) < 2 || afterKill < 0 || afterKill > 10*time.Second {
		t.Errorf("poll ticks ran on %d replicas %v, the first %s after the kills: polling should be shared and carry on",
			len(replicas), replicas, afterKill)
	}
	t.Logf("%d customers settled in %s on 3 replicas (one SIGKILLed, one SIGTERMed mid-burst); %d poll ticks, each once, on %d replicas; polling went on %s after the kills",
		s.customers, took.Round(time.Second), len(runs), len(replicas), afterKill.Round(time.Millisecond))
}
