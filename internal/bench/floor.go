package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"
)

// Floor is what the same PostgreSQL and Redis do with the least work per
// operation: the ceiling the engine's steps/s is compared with.
type Floor struct {
	// PGConns connections (the worker concurrency) run single-row UPDATE
	// transactions (autocommit) on a 100,000-row scratch table, as
	// pgbench's simple protocol would: one round trip each.
	PGConns          int     `json:"pg_conns"`
	PGUpdateTxPerSec float64 `json:"pg_update_tx_per_sec"`
	// The same UPDATE with a parameter through lib/pq, as the engine sends
	// its statements: two round trips each.
	PGUpdateTxPerSecParams float64 `json:"pg_update_tx_per_sec_lib_pq_params"`
	// AsynqEnqueuePerSec is one client enqueueing no-op tasks on a scratch
	// queue; AsynqNoopTasksPerSec is one server at the worker concurrency
	// processing them.
	AsynqTasks           int     `json:"asynq_tasks"`
	AsynqEnqueuePerSec   float64 `json:"asynq_enqueue_per_sec"`
	AsynqNoopTasksPerSec float64 `json:"asynq_noop_tasks_per_sec"`
	// The engine's steady steps/s as a share of each.
	StepsPerPGUpdate  float64 `json:"engine_steps_per_pg_update_tx"`
	StepsPerAsynqTask float64 `json:"engine_steps_per_asynq_noop_task"`
	SecondsEach       float64 `json:"seconds_each"`
}

// measureFloor runs the floor measurements on the bench database and the
// run's Redis.
func measureFloor(ctx context.Context, dbURL string, redis asynq.RedisConnOpt, conns int, d time.Duration) (*Floor, error) {
	f := &Floor{PGConns: conns, SecondsEach: d.Seconds()}
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	for _, q := range []string{`CREATE TABLE bench_floor (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`,
		`INSERT INTO bench_floor (id) SELECT generate_series(1, 100000)`, `VACUUM ANALYZE bench_floor`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("floor: scratch table: %w", err)
		}
	}
	defer db.ExecContext(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_floor`)
	simple := func(c *sql.Conn, id int) error {
		_, err := c.ExecContext(ctx, "UPDATE bench_floor SET n = n + 1 WHERE id = "+strconv.Itoa(id))
		return err
	}
	params := func(c *sql.Conn, id int) error {
		_, err := c.ExecContext(ctx, "UPDATE bench_floor SET n = n + 1 WHERE id = $1", id)
		return err
	}
	if f.PGUpdateTxPerSec, err = pgLoop(ctx, db, conns, d, simple); err != nil {
		return nil, err
	}
	if f.PGUpdateTxPerSecParams, err = pgLoop(ctx, db, conns, d, params); err != nil {
		return nil, err
	}
	f.AsynqTasks = int(2000 * d.Seconds())
	if f.AsynqEnqueuePerSec, f.AsynqNoopTasksPerSec, err = asynqFloor(ctx, redis, conns, f.AsynqTasks); err != nil {
		return nil, err
	}
	return f, nil
}

// pgLoop runs op on conns connections for d and returns operations/s.
func pgLoop(ctx context.Context, db *sql.DB, conns int, d time.Duration, op func(*sql.Conn, int) error) (float64, error) {
	var n atomic.Int64
	deadline := time.Now().Add(d)
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for w := range conns {
		g.Go(func() error {
			c, err := db.Conn(gctx)
			if err != nil {
				return err
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(deadline) {
				if err := op(c, 1+rng.IntN(100000)); err != nil {
					return fmt.Errorf("floor: update: %w", err)
				}
				n.Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), err
}

// floorQueue is the scratch queue of the Asynq floor, deleted afterwards.
const floorQueue = "bench-floor"

// asynqFloor enqueues n no-op tasks from one client, then processes them
// with one server at the given concurrency.
func asynqFloor(ctx context.Context, redis asynq.RedisConnOpt, concurrency, n int) (enqueuePerSec, processPerSec float64, err error) {
	client := asynq.NewClient(redis)
	defer client.Close()
	start := time.Now()
	for i := range n {
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", []byte(strconv.Itoa(i))), asynq.Queue(floorQueue)); err != nil {
			return 0, 0, fmt.Errorf("floor: enqueue: %w", err)
		}
	}
	enqueuePerSec = float64(n) / time.Since(start).Seconds()

	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency: concurrency, Queues: map[string]int{floorQueue: 1},
		TaskCheckInterval: 20 * time.Millisecond, // as the engine's workers
		Logger:            discardLogger{}, LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	start = time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, 0, fmt.Errorf("floor: start server: %w", err)
	}
	select {
	case <-finished:
		processPerSec = float64(n) / time.Since(start).Seconds()
	case <-time.After(5 * time.Minute):
		err = fmt.Errorf("floor: only %d of %d no-op tasks processed in 5 minutes", done.Load(), n)
	case <-ctx.Done():
		err = ctx.Err()
	}
	srv.Shutdown()
	ins := asynq.NewInspector(redis)
	defer ins.Close()
	_ = ins.DeleteQueue(floorQueue, true)
	return enqueuePerSec, processPerSec, err
}

// discardLogger silences Asynq in the floor measurement.
type discardLogger struct{}

func (discardLogger) Debug(...any) {}
func (discardLogger) Info(...any)  {}
func (discardLogger) Warn(...any)  {}
func (discardLogger) Error(...any) {}
func (discardLogger) Fatal(...any) {}

var _ asynq.Logger = discardLogger{}
