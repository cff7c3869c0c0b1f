package jobs_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/settletest"
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

// Eight replicas racing for the same tick: one takes the job's lease and
// the others see it held; once the run finished, the tick is never claimed
// again, the next tick is, and a month-old tick is pruned.
func TestJobTickRunsOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJobsDB(t)
	tick := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	claims := make([]store.JobClaim, 8)
	var wg sync.WaitGroup
	for i := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := db.ClaimJobTick(ctx, "poll", tick, "replica-"+string(rune('a'+i)), time.Minute)
			if err != nil {
				t.Error(err)
			}
			claims[i] = c
		}()
	}
	wg.Wait()
	var won *store.JobLease
	for _, c := range claims {
		switch {
		case c.Lease != nil && won != nil:
			t.Fatalf("two replicas hold the tick: %+v and %+v", *won, *c.Lease)
		case c.Lease != nil:
			won = c.Lease
		}
	}
	if won == nil {
		t.Fatalf("no replica took the tick: %+v", claims)
	}
	for _, c := range claims {
		if c.Lease == nil && c.Holder != won.Replica {
			t.Errorf("a losing claim names holder %q, want %q", c.Holder, won.Replica)
		}
	}
	if err := db.FinishJobRun(ctx, *won, map[string]int{"polled": 3}, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := db.ClaimJobTick(ctx, "poll", tick, "replica-z", time.Minute); err != nil || c != (store.JobClaim{}) {
		t.Fatalf("claim of a finished tick: %+v %v; want nothing to run", c, err)
	}
	next := claim(t, db, "poll", tick.Add(30*time.Second), "replica-a", time.Minute)
	if next.Fence <= won.Fence {
		t.Errorf("next tick's fence %d, want more than %d", next.Fence, won.Fence)
	}
	if err := db.FinishJobRun(ctx, next, nil, nil); err != nil {
		t.Fatal(err)
	}
	logged, err := db.JobRuns(ctx, "poll")
	if err != nil {
		t.Fatal(err)
	}
	if len(logged) != 2 || !logged[0].Finished || !logged[0].Tick.Equal(tick) || logged[0].Replica != won.Replica {
		t.Fatalf("log %+v; want each tick once, the first by %s", logged, won.Replica)
	}
	later := claim(t, db, "poll", tick.Add(store.JobRunsKept+time.Second), "replica-a", time.Minute)
	if err := db.FinishJobRun(ctx, later, nil, nil); err != nil {
		t.Fatal(err)
	}
	if logged, err := db.JobRuns(ctx, "poll"); err != nil || len(logged) != 2 || !logged[1].Tick.Equal(later.Tick) {
		t.Fatalf("log after %s: %+v %v; want the first tick pruned", store.JobRunsKept, logged, err)
	}
}

// claim claims a job's tick and fails the test unless it got the lease.
func claim(t *testing.T, db *store.DB, job string, tick time.Time, replica string, lease time.Duration) store.JobLease {
	t.Helper()
	c, err := db.ClaimJobTick(context.Background(), job, tick, replica, lease)
	if err != nil || c.Lease == nil {
		t.Fatalf("%s claiming %s %s: %+v %v; want the lease", replica, job, tick, c, err)
	}
	return *c.Lease
}

// A holder whose lease ran out by the database's clock loses its tick to
// the next claim, with a higher fence; from then on its renewals, its
// release and its late outcome are refused, and the tick is recorded as the
// new holder's run.
func TestExpiredJobLeaseIsTakenOverAndFenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJobsDB(t)
	tick := time.Date(2026, 11, 25, 0, 30, 0, 0, time.UTC)
	stalled := claim(t, db, "reconcile", tick, "replica-a", time.Second)
	if err := db.RenewJobLease(ctx, stalled, time.Second); err != nil {
		t.Fatalf("renewing a live lease: %v", err)
	}
	if c, err := db.ClaimJobTick(ctx, "reconcile", tick, "replica-b", time.Minute); err != nil || c.Lease != nil || c.Holder != "replica-a" {
		t.Fatalf("claim while replica-a's lease is live: %+v %v; want it held by replica-a", c, err)
	}
	var took store.JobClaim
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		c, err := db.ClaimJobTick(ctx, "reconcile", tick, "replica-b", time.Minute)
		if err != nil {
			return false, err.Error()
		}
		took = c
		return c.Lease != nil, fmt.Sprintf("replica-b's claim: %+v", c)
	})
	if took.TookOver != "replica-a" || took.Lease.Fence <= stalled.Fence {
		t.Fatalf("takeover %+v; want it to name replica-a and a fence above %d", took, stalled.Fence)
	}
	for name, write := range map[string]func() error{
		"renewal": func() error { return db.RenewJobLease(ctx, stalled, time.Minute) },
		"finish":  func() error { return db.FinishJobRun(ctx, stalled, "late", nil) },
		"release": func() error { return db.ReleaseJobLease(ctx, stalled) },
	} {
		if err := write(); !errors.Is(err, store.ErrJobLeaseLost) {
			t.Errorf("the stalled holder's late %s: %v; want ErrJobLeaseLost", name, err)
		}
	}
	if err := db.FinishJobRun(ctx, *took.Lease, "queued", nil); err != nil {
		t.Fatal(err)
	}
	runs, err := db.JobRuns(ctx, "reconcile")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !runs[0].Finished || runs[0].Replica != "replica-b" || runs[0].Fence != took.Lease.Fence {
		t.Fatalf("job-run log %+v; want the tick once, finished by replica-b under fence %d", runs, took.Lease.Fence)
	}
}

// openJobsDB opens a fresh, migrated database for the scheduler tests.
func openJobsDB(t *testing.T) *store.DB {
	t.Helper()
	return openJobsDBAt(t, testenv.PostgresURL(t))
}

// openJobsDBAt opens the database at url and migrates it.
func openJobsDBAt(t *testing.T, url string) *store.DB {
	t.Helper()
	return settletest.OpenDB(t, url, 16)
}

// stalledReplicaDB, set in the environment, makes this test binary the
// replica that stalls in TestStalledReplicaDoesNotStopTheJob.
const stalledReplicaDB = "SETTLE_TEST_STALLED_REPLICA_DB"

// A replica that takes a job's tick and then stalls (a separate process,
// SIGSTOPped mid-run) must not stop the job: within about a lease another
// replica runs the job's next ticks; when the stalled one resumes, its run
// is cancelled and its late outcome refused.
func TestStalledReplicaDoesNotStopTheJob(t *testing.T) {
	if url := os.Getenv(stalledReplicaDB); url != "" {
		runStalledReplica(t, url)
		return
	}
	t.Parallel()
	url := testenv.PostgresURL(t)
	db := openJobsDBAt(t, url)
	a, running, logs := startStalledReplica(t, url)
	select {
	case <-running:
	case <-time.After(30 * time.Second):
		t.Fatalf("replica-a never ran the job; its log:\n%s", logs)
	}
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	b, err := jobs.NewScheduler(db, []jobs.Job{{Name: "relay", Schedule: "@every 1s", Run: func(context.Context, time.Time) (any, error) {
		ran.Add(1)
		return "b", nil
	}}}, jobs.SchedulerConfig{Replica: "replica-b", Lease: 2 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Stop)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return ran.Load() >= 2, fmt.Sprintf("replica-b ran %d ticks while replica-a stalled holding one", ran.Load())
	})
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(logs.String(), "outcome not recorded"), "waiting for replica-a's late outcome to be refused; its log:\n" + logs.String()
	})
	if err := a.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("replica-a: %v; its log:\n%s", err, logs)
	}
	var late int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM job_runs WHERE result = '"stalled"'`).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if late != 0 {
		t.Errorf("the stalled run's late outcome was recorded after its lease was taken over")
	}
}

// startStalledReplica starts this test binary as replica-a on the
// database at url. running
// is closed once its run is under way; logs is what it writes to stderr.
func startStalledReplica(t *testing.T, url string) (*exec.Cmd, <-chan struct{}, *testenv.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStalledReplicaDoesNotStopTheJob$", "-test.count=1")
	cmd.Env = append(os.Environ(), stalledReplicaDB+"="+url)
	logs := &testenv.Buffer{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	running := make(chan struct{})
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if lines.Text() == "running" {
				close(running)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	return cmd, running, logs
}

// runStalledReplica is replica-a: its first run of the job says "running"
// and then waits for its context, as a run cut off from the world would;
// it stops on SIGTERM.
func runStalledReplica(t *testing.T, url string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	db, err := store.Open(ctx, url, store.Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var first atomic.Bool
	s, err := jobs.NewScheduler(db, []jobs.Job{{Name: "relay", Schedule: "@every 1s", Run: func(ctx context.Context, _ time.Time) (any, error) {
		if !first.CompareAndSwap(false, true) {
			return "a", nil
		}
		fmt.Println("running")
		<-ctx.Done()
		return "stalled", nil
	}}}, jobs.SchedulerConfig{Replica: "replica-a", Lease: 2 * time.Second}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	<-ctx.Done()
	s.Stop()
}

// While a scheduled job runs (the relay calls Redis, the sweep the bank),
// no transaction of the pool is open: a replica that stalls mid-run holds
// back neither vacuum nor the other replicas.
func TestNoTransactionOpenWhileAJobRuns(t *testing.T) {
	t.Parallel()
	db := openJobsDB(t)
	type seen struct {
		open int
		err  error
	}
	got := make(chan seen, 1)
	s, err := jobs.NewScheduler(db, []jobs.Job{{Name: "sweep", Schedule: "@every 1s", Run: func(ctx context.Context, _ time.Time) (any, error) {
		var n int
		err := db.SQL().QueryRowContext(ctx, `
			SELECT count(*) FROM pg_stat_activity
			 WHERE datname = current_database() AND backend_type = 'client backend'
			   AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`).Scan(&n)
		select {
		case got <- seen{n, err}:
		default:
		}
		return nil, err
	}}}, jobs.SchedulerConfig{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Stop)
	var r seen
	select {
	case r = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the job never ran")
	}
	if r.err != nil || r.open != 0 {
		t.Fatalf("while the job ran, %d other transactions of the database were open (%v); want none", r.open, r.err)
	}
}
