package store

import (
	"context"
	"encoding/json"
	"errors"
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

// JobRunsKept is how long the job-run log keeps a job's ticks; each run
// deletes its job's older rows.
const JobRunsKept = 30 * 24 * time.Hour

// RunJobTick runs fn as the one run of a scheduled job's tick across all
// replicas. It takes a transaction-scoped advisory lock for the job, so one
// run of a job goes at a time, and records the tick in job_runs in the same
// transaction, so a tick runs at most once; it reports false, without
// running fn, when a run of the job is still going elsewhere or the tick
// already ran. A replica that dies mid-run rolls its transaction back,
// freeing the job. fn's result is stored as JSON.
func (db *DB) RunJobTick(ctx context.Context, job string, tick time.Time, replica string, fn func(context.Context) (any, error)) (bool, error) {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("job %s: %w", job, err)
	}
	defer func() { _ = tx.Rollback() }()
	var got bool
	if err := tx.QueryRowxContext(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('settle.job'), hashtext($1))`,
		job).Scan(&got); err != nil || !got {
		return false, wrapJob(job, err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO job_runs (job, tick, replica) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		job, tick, replica)
	if err != nil {
		return false, wrapJob(job, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil // this tick already ran
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM job_runs WHERE job = $1 AND tick < $2`, job, tick.Add(-JobRunsKept)); err != nil {
		return false, wrapJob(job, err)
	}
	result, runErr := fn(ctx)
	if _, err := tx.ExecContext(context.WithoutCancel(ctx), `
		UPDATE job_runs SET finished_at = now(), result = $3, error = $4 WHERE job = $1 AND tick = $2`,
		job, tick, resultJSON(result), errText(runErr)); err != nil {
		return true, wrapJob(job, err)
	}
	return true, errors.Join(runErr, wrapJob(job, tx.Commit()))
}

func wrapJob(job string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("job %s: %w", job, err)
}

// resultJSON is a job's result as stored in a log: JSON, or null when it
// does not marshal.
func resultJSON(result any) []byte {
	out, err := json.Marshal(result)
	if err != nil {
		return []byte("null")
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// JobRun is one row of the job-run log.
type JobRun struct {
	Job      string    `db:"job" json:"job"`
	Tick     time.Time `db:"tick" json:"tick"`
	Replica  string    `db:"replica" json:"replica"`
	Error    string    `db:"error" json:"error,omitempty"`
	Finished bool      `db:"finished" json:"finished"`
}

// JobRuns lists a job's runs, oldest tick first.
func (db *DB) JobRuns(ctx context.Context, job string) ([]JobRun, error) {
	var out []JobRun
	err := db.x.SelectContext(ctx, &out, `
		SELECT job, tick, replica, error, finished_at IS NOT NULL AS finished FROM job_runs WHERE job = $1 ORDER BY tick`, job)
	return out, err
}
