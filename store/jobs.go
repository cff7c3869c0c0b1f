package store

import (
	"context"
	"fmt"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// DueReadySteps returns READY steps that are due and have been READY for at
// least minAge (so a step enqueued a moment ago is left alone), oldest first.
// The READY relay enqueues them again.
func (db *DB) DueReadySteps(ctx context.Context, minAge time.Duration, limit int) ([]pipeline.StepRef, error) {
	var refs []pipeline.StepRef
	err := db.x.SelectContext(ctx, &refs, `
		SELECT id AS "id", fence AS "fence" FROM steps
		 WHERE status = 'READY' AND next_run_at <= now()
		   AND updated_at <= now() - $1 * interval '1 millisecond'
		 ORDER BY next_run_at LIMIT $2`, minAge.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("list due READY steps: %w", err)
	}
	return refs, nil
}

// ExpiredSteps returns RUNNING steps whose lease has expired by the
// database's clock, oldest lease first. The sweep resolves them.
func (db *DB) ExpiredSteps(ctx context.Context, limit int) ([]int64, error) {
	var ids []int64
	err := db.x.SelectContext(ctx, &ids, `
		SELECT id FROM steps WHERE status = 'RUNNING' AND lease_until < now()
		 ORDER BY lease_until LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list expired steps: %w", err)
	}
	return ids, nil
}

// TryJobLock takes a transaction-scoped advisory lock for one run of a
// scheduled job and runs fn while holding it. It reports false, without
// running fn, when another process holds the lock. The lock is freed when fn
// returns or the connection dies.
func (db *DB) TryJobLock(ctx context.Context, job string, fn func(context.Context) error) (bool, error) {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("job %s: lock: %w", job, err)
	}
	defer func() { _ = tx.Rollback() }()
	var got bool
	if err := tx.QueryRowxContext(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('settle.job'), hashtext($1))`, job).Scan(&got); err != nil {
		return false, fmt.Errorf("job %s: lock: %w", job, err)
	}
	if !got {
		return false, nil
	}
	return true, fn(ctx)
}
