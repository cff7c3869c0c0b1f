package jobs_test

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/store"
)

func TestTickIsTheLatestActivation(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec, now, want string
	}{
		{"@every 30s", "2026-11-25T09:00:31.2Z", "2026-11-25T09:00:30Z"},
		{"@every 1m", "2026-11-25T09:00:00.001Z", "2026-11-25T09:00:00Z"},
		{"0 3 * * *", "2026-11-25T09:00:00Z", "2026-11-25T03:00:00Z"},
		{"*/5 * * * * *", "2026-11-25T09:00:07Z", "2026-11-25T09:00:05Z"},
	}
	for _, tt := range tests {
		sched, err := jobs.ParseSchedule(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := jobs.Tick(sched, at(tt.now)).UTC(); !got.Equal(at(tt.want)) {
			t.Errorf("Tick(%q, %s) = %s, want %s", tt.spec, tt.now, got, tt.want)
		}
	}
	sched, _ := jobs.ParseSchedule("@every 30s")
	if next := sched.Next(at("2026-11-25T09:00:31Z")); !next.Equal(at("2026-11-25T09:01:00Z")) {
		t.Errorf("aligned @every 30s after 09:00:31 fires at %s, want 09:01:00", next)
	}
	if _, err := jobs.ParseSchedule("every now and then"); err == nil {
		t.Error("a bad spec was accepted")
	}
}

// Eight replicas racing for the same tick: it runs once and is logged once;
// the next tick runs again.
func TestJobTickRunsOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.PostgresURL(t), store.Options{MaxOpenConns: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	tick := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.RunJobTick(ctx, "poll", tick, "replica-"+string(rune('a'+i)), func(context.Context) (any, error) {
				runs.Add(1)
				return map[string]int{"polled": 3}, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, err := db.RunJobTick(ctx, "poll", tick.Add(30*time.Second), "replica-a", func(context.Context) (any, error) {
		runs.Add(1)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	logged, err := db.JobRuns(ctx, "poll")
	if err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 2 || len(logged) != 2 || !logged[0].Finished || !logged[0].Tick.Equal(tick) {
		t.Fatalf("runs %d, log %+v; want each tick once", runs.Load(), logged)
	}
	later := tick.Add(store.JobRunsKept + time.Second)
	if _, err := db.RunJobTick(ctx, "poll", later, "replica-a", func(context.Context) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if logged, err := db.JobRuns(ctx, "poll"); err != nil || len(logged) != 2 || !logged[1].Tick.Equal(later) {
		t.Fatalf("log after %s: %+v %v; want the first tick pruned", store.JobRunsKept, logged, err)
	}
}
