package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Shards are contiguous ID ranges that cover every ID, however the IDs and
// the shard size fall; their budget shares add up to the budget.
func TestPlanPollShards(t *testing.T) {
	tick := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		r    store.VARange
		size int
		want int
	}{
		{store.VARange{}, 100, 0},
		{store.VARange{From: 7, To: 7, Count: 1}, 100, 1},
		{store.VARange{From: 1, To: 250, Count: 250}, 40, 7},
		{store.VARange{From: 1, To: 100_000, Count: 100_000}, 2000, 50},
		{store.VARange{From: 1, To: 10_000_000, Count: 1_000_000}, 1, jobs.MaxPollShards},
		{store.VARange{From: 5, To: 7, Count: 3}, 1, 3},
		{store.VARange{From: 10, To: 13, Count: 4}, 1, 4},
		{store.VARange{From: 1, To: 1000, Count: 10}, 1, 10}, // sparse IDs
	} {
		t.Run(fmt.Sprintf("%d-%d/%d", tc.r.From, tc.r.To, tc.size), func(t *testing.T) {
			shards := jobs.PlanPollShards(tick, tc.r, tc.size)
			if len(shards) != tc.want {
				t.Fatalf("%d shards, want %d: %+v", len(shards), tc.want, shards)
			}
			if tc.want == 0 {
				return
			}
			if shards[0].FromVA != 0 || shards[len(shards)-1].ToVA != 0 {
				t.Errorf("the first shard must start at 0 and the last be open-ended: %+v", shards)
			}
			for i, s := range shards {
				if s.Index != i || s.Count != len(shards) || !s.Tick.Equal(tick) {
					t.Errorf("shard %d: %+v", i, s)
				}
				if i > 0 && s.FromVA != shards[i-1].ToVA+1 {
					t.Errorf("shard %d starts at %d, the one before ends at %d", i, s.FromVA, shards[i-1].ToVA)
				}
				if i < len(shards)-1 && s.ToVA < s.FromVA {
					t.Errorf("shard %d is empty: %+v", i, s)
				}
			}
			for _, budget := range []int{0, 1, 12, 999, 60_000} {
				sum, zero := 0, 0
				for _, s := range shards {
					share := s.BudgetShare(budget)
					sum += share
					if share == 0 {
						zero++
					}
				}
				if budget > 0 && sum != budget {
					t.Errorf("budget %d: shares add up to %d", budget, sum)
				}
				if budget == 0 && zero != len(shards) {
					t.Errorf("no budget must stay no budget in every shard")
				}
			}
		})
	}
}

// barrierBank holds balance calls until two are under way at once: two
// shards polling at the same time. It gives up after a while, so a broken
// dispatch fails the test instead of hanging it.
type barrierBank struct {
	pipeline.Bank
	mu      sync.Mutex
	waiting int
	open    chan struct{}
}

func (b *barrierBank) Balances(ctx context.Context, numbers []string) ([]pipeline.Balance, error) {
	b.mu.Lock()
	b.waiting++
	if b.waiting == 2 {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
	case <-time.After(20 * time.Second):
	}
	return b.Bank.Balances(ctx, numbers)
}

// A tick's shards are tasks that any worker runs: two workers, each
// running one task at a time, and a bank that answers no balance call
// until two are under way, so the tick completes only if both workers
// poll. Every VA is polled once, every deposit found once, and the
// poll-shard log names both workers.
func TestPollShardsAreSharedByWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "sh-", 9, 0)
	for _, va := range vas {
		sb.credit(t, va, 1_000_000)
	}
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": &barrierBank{Bank: adapter, open: make(chan struct{})}})
	r := testenv.StartRedis(t)
	opt, err := jobs.ParseRedisURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	queue := jobs.NewQueue(opt, time.Minute)
	t.Cleanup(func() { queue.Close() })
	logger := quiet()
	for _, name := range []string{"worker-a", "worker-b"} {
		poller := jobs.NewPoller(db, banks, &settletest.Queue{}, jobs.PollConfig{
			Accounts: map[string]pipeline.Accounts{"sandbox": accounts}, Replica: name,
			Schedule: pipeline.PollPolicy{Interval: time.Hour},
		}, logger)
		exec := pipeline.NewExecutor(db, banks, queue, pipeline.ExecutorConfig{}, logger)
		srv, mux := jobs.NewWorker(opt, exec, poller, jobs.WorkerConfig{Concurrency: 1, ShutdownTimeout: 5 * time.Second}, logger)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
	tick := time.Now().Truncate(time.Second)
	res, err := jobs.NewPollDispatcher(db, queue, 3, time.Hour, logger).RunOnce(ctx, tick)
	if err != nil || res.Shards != 3 || res.VAs != 9 {
		t.Fatalf("dispatch: %+v %v", res, err)
	}
	var runs []store.PollShardRun
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		runs, err = db.PollShardRuns(ctx, tick)
		done := 0
		for _, r := range runs {
			if r.Finished {
				done++
			}
		}
		return err == nil && done == 3, fmt.Sprintf("shard runs: %+v %v", runs, err)
	})
	replicas := map[string]int{}
	for _, r := range runs {
		replicas[r.Replica]++
		if r.Error != "" {
			t.Errorf("shard %d: %s", r.Shard, r.Error)
		}
	}
	if replicas["worker-a"] == 0 || replicas["worker-b"] == 0 {
		t.Errorf("shards ran on %v: both workers must have polled", replicas)
	}
	var polled, settlements int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM virtual_accounts WHERE last_polled_at IS NOT NULL`).Scan(&polled); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRow(`SELECT count(*) FROM settlements`).Scan(&settlements); err != nil {
		t.Fatal(err)
	}
	if polled != 9 || settlements != 9 {
		t.Errorf("%d VAs polled and %d settlements created, want 9 and 9", polled, settlements)
	}
	var sum int
	for _, r := range runs {
		var got jobs.PollResult
		if err := db.SQL().QueryRow(`SELECT result FROM poll_shard_runs WHERE tick = $1 AND shard = $2`, r.Tick, r.Shard).Scan(jsonOf(&got)); err != nil {
			t.Fatal(err)
		}
		sum += got.Polled
	}
	if sum != 9 {
		t.Errorf("the shards' results count %d VAs polled, want 9", sum)
	}
}

// A shard delivered twice runs once; a shard that waited in the queue past
// its tick's deadline makes no call.
func TestPollShardRunsOnceAndNotLate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "once-", 4, 0)
	sb.credit(t, vas[2], 1_000_000)
	adapter, _ := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	now := time.Now().Truncate(time.Second)
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, jobs.PollConfig{
		Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
		Schedule: pipeline.PollPolicy{Interval: time.Minute},
		Now:      func() time.Time { return now },
	}, quiet())
	r, err := db.ActiveVARange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	late := jobs.PlanPollShards(now.Add(-55*time.Second), r, 10)[0]
	poller.RunShardOnce(ctx, late)
	if n := sb.balanceCalls(t); n != 0 {
		t.Fatalf("a shard started after its deadline made %d balance calls", n)
	}
	shard := jobs.PlanPollShards(now, r, 10)[0]
	poller.RunShardOnce(ctx, shard)
	poller.RunShardOnce(ctx, shard)
	if n := sb.balanceCalls(t); n != 1 {
		t.Errorf("a shard delivered twice made %d balance calls, want 1", n)
	}
	runs, err := db.PollShardRuns(ctx, late.Tick)
	if err != nil || len(runs) != 1 || !runs[0].Tick.Equal(shard.Tick) || !runs[0].Finished {
		t.Fatalf("poll-shard log: %+v %v", runs, err)
	}
	var got jobs.PollResult
	if err := db.SQL().QueryRow(`SELECT result FROM poll_shard_runs`).Scan(jsonOf(&got)); err != nil {
		t.Fatal(err)
	}
	if got.Polled != 4 || got.Found != 1 || got.Calls != 1 {
		t.Errorf("shard result %+v: want 4 polled, 1 found, 1 call", got)
	}
	if err := db.PrunePollShardRuns(ctx, shard.Tick.Add(store.PollShardRunsKept)); err != nil {
		t.Fatal(err)
	}
	if runs, err := db.PollShardRuns(ctx, time.Time{}); err != nil || len(runs) != 1 {
		t.Fatalf("a shard run exactly %s old is kept: %+v %v", store.PollShardRunsKept, runs, err)
	}
	if err := db.PrunePollShardRuns(ctx, shard.Tick.Add(store.PollShardRunsKept+time.Second)); err != nil {
		t.Fatal(err)
	}
	if runs, err := db.PollShardRuns(ctx, time.Time{}); err != nil || len(runs) != 0 {
		t.Fatalf("a shard run older than %s is pruned: %+v %v", store.PollShardRunsKept, runs, err)
	}
}

// jsonScanner scans a JSON column into v.
type jsonScanner struct{ v any }

func (j jsonScanner) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok {
		return fmt.Errorf("JSON column is %T", src)
	}
	return json.Unmarshal(b, j.v)
}

func jsonOf(v any) jsonScanner { return jsonScanner{v} }

// VAs are marked polled before the bank is asked, so no overlapping cycle
// asks about them meanwhile; those whose balance request failed are due
// again at the next cycle, not at their next idle poll.
func TestFailedPollIsDueAtTheNextCycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "fail-", 3, 0)
	sb.credit(t, vas[1], 1_000_000)
	adapter, _ := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, jobs.PollConfig{
		Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
		Schedule: pipeline.PollPolicy{Interval: time.Minute, IdleEvery: 6},
	}, quiet())
	if err := sb.client.SetFaults(ctx, banksim.Faults{ErrorRate: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if res, err := poller.RunOnce(ctx); err != nil || res.Errors == 0 || res.Found != 0 {
		t.Fatalf("a cycle against a failing bank: %+v %v", res, err)
	}
	if err := sb.client.SetFaults(ctx, banksim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if res, err := poller.RunOnce(ctx); err != nil || res.Polled != 3 || res.Found != 1 {
		t.Fatalf("the next cycle must poll the 3 VAs again and find the deposit: %+v %v", res, err)
	}
	if res, err := poller.RunOnce(ctx); err != nil || res.Polled != 0 {
		t.Fatalf("polled VAs are not due again before their idle poll: %+v %v", res, err)
	}
}

// A VA in which a deposit was found is held from polling while its
// settlement is open, and released when the settlement ends, by its last
// step or by a cancel: a payday burst does not re-read, at every tick, the
// VAs whose money is being moved.
func TestFoundDepositHoldsItsVA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	vas := addCustomers(t, db, sb, "sandbox", "hold-", 2, time.Now().UTC().Day())
	sb.credit(t, vas[0], 1_000_000)
	adapter, _ := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	poller := jobs.NewPoller(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), &settletest.Queue{}, jobs.PollConfig{
		Accounts: map[string]pipeline.Accounts{"sandbox": accounts},
		Schedule: pipeline.PollPolicy{Interval: time.Minute, IdleEvery: 6, PaydayWindow: 1},
	}, quiet())
	held := func() int {
		t.Helper()
		var n int
		if err := db.SQL().QueryRow(`SELECT count(*) FROM virtual_accounts WHERE held_until > now() + interval '50 minutes'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	found := func(step string, wantPolled, wantFound int) {
		t.Helper()
		ageRows(t, db, time.Minute) // both near-payday VAs are due again by their poll times
		if res, err := poller.RunOnce(ctx); err != nil || res.Polled != wantPolled || res.Found != wantFound {
			t.Fatalf("%s: %+v %v, want %d polled and %d found", step, res, err, wantPolled, wantFound)
		}
	}
	found("payday", 2, 1)
	if n := held(); n != 1 {
		t.Fatalf("%d VAs held after a deposit was found, want 1", n)
	}
	found("while its settlement is open", 1, 0)
	var id, head int64
	if err := db.SQL().QueryRow(`SELECT s.id, st.id FROM settlements s JOIN steps st ON st.settlement_id = s.id AND st.status = 'READY'`).Scan(&id, &head); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Cancel(ctx, id, testAudit, false); err != nil {
		t.Fatal(err)
	}
	if n := held(); n != 0 {
		t.Fatalf("%d VAs held after the settlement was cancelled, want 0", n)
	}
	found("after the cancel the deposit is found again", 2, 1)
	if err := db.SQL().QueryRow(`SELECT st.id FROM steps st JOIN settlements s ON s.id = st.settlement_id
		WHERE s.status = 'RUNNING' AND st.status = 'READY'`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	settleAll(t, db, head)
	if n := held(); n != 0 {
		t.Fatalf("%d VAs held after the settlement SETTLED, want 0", n)
	}
	// The steps were recorded without moving the money: the balance is
	// still there. The released VA was paid this payday, so it waits for
	// the idle schedule (docs/polling.md), and then shows it again.
	found("after it settled, the paid VA waits for the idle schedule", 1, 0)
	ageRows(t, db, 6*time.Minute)
	if res, err := poller.RunOnce(ctx); err != nil || res.Polled != 2 || res.Found != 1 {
		t.Fatalf("on the idle schedule: %+v %v, want 2 polled and 1 found", res, err)
	}
}

// A worker finishes the settlements under way before it starts a new one:
// with one worker and two new settlements, every step of the one it
// starts first is done before the first step of the other. On a payday
// burst customers are paid one after another, not all at the end.
func TestSettlementsUnderWayFinishFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sb := openDB(t), newSandbox(t)
	for _, va := range addCustomers(t, db, sb, "sandbox", "depth-", 3, 0) {
		sb.credit(t, va, 1_000_000)
	}
	adapter, err := rest.New(rest.Config{Name: "sandbox", BaseURL: sb.url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	banks := bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter})
	r := testenv.StartRedis(t)
	opt, err := jobs.ParseRedisURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	queue := jobs.NewQueue(opt, time.Minute)
	t.Cleanup(func() { queue.Close() })
	poller := jobs.NewPoller(db, banks, queue, jobs.PollConfig{Accounts: map[string]pipeline.Accounts{"sandbox": accounts}}, quiet())
	if res, err := poller.RunOnce(ctx); err != nil || res.Found != 3 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	exec := pipeline.NewExecutor(db, banks, queue, pipeline.ExecutorConfig{}, quiet())
	srv, mux := jobs.NewWorker(opt, exec, poller, jobs.WorkerConfig{Concurrency: 1, ShutdownTimeout: 5 * time.Second}, quiet())
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n, err := db.StatusCounts(ctx)
		return err == nil && n["SETTLED"] == 3, fmt.Sprintf("%v %v", n, err)
	})
	rows, err := db.SQL().Query(`SELECT settlement_id, min(done_at), max(done_at) FROM steps GROUP BY 1 ORDER BY 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prevLast time.Time
	for rows.Next() {
		var id int64
		var first, last time.Time
		if err := rows.Scan(&id, &first, &last); err != nil {
			t.Fatal(err)
		}
		if first.Before(prevLast) {
			t.Errorf("settlement %d started at %s, before the one started before it ended at %s: settlements interleaved",
				id, first.Format(time.StampMicro), prevLast.Format(time.StampMicro))
		}
		prevLast = last
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
