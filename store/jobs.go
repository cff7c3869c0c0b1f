package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

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

// JobLease is a replica's hold on one tick of a scheduled job. Its fence
// goes up by one each time the job's lease changes hands; every write of
// the run names it, and is refused once it is no longer the job's.
type JobLease struct {
	Job     string
	Tick    time.Time
	Replica string
	Fence   int64
}

// JobClaim is what ClaimJobTick found.
type JobClaim struct {
	// Lease is set when this replica now holds the tick and is to run it.
	Lease *JobLease
	// TookOver names the replica whose run of the same tick was taken
	// over because its lease had expired; "" when there was none.
	TookOver string
	// Holder names the replica whose live lease kept this one out: the
	// tick may still need running if that lease expires. "" with no Lease
	// means the tick needs nothing: it ran, or a later tick began.
	Holder string
}

// ErrJobLeaseLost is returned by the writes of a run whose lease expired or
// was taken over by another replica: the run's outcome is not recorded.
var ErrJobLeaseLost = errors.New("the job's lease expired or another replica took the job over; this run's writes are refused")

// errTickDone rolls back a claim whose tick already ran.
var errTickDone = errors.New("tick already ran")

// ClaimJobTick takes a scheduled job's lease for tick, for lease by the
// database's clock, in one short transaction, and records the tick in
// job_runs under the new fence. A job has one lease, so one run of a job
// goes at a time across replicas; a tick whose run finished is never
// claimed again, so a tick runs at most once to completion. The lease is
// free when it was released or has expired: a replica that died or stalled
// mid-run loses its tick to the next claim of the same tick, which takes
// its job_runs row over with a higher fence (TookOver). No transaction is
// left open: the run holds the lease by renewing it (RenewJobLease).
func (db *DB) ClaimJobTick(ctx context.Context, job string, tick time.Time, replica string, lease time.Duration) (JobClaim, error) {
	var c JobClaim
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO job_leases (job) VALUES ($1) ON CONFLICT DO NOTHING`, job); err != nil {
			return err
		}
		var cur struct {
			Holder string `db:"holder"`
			Live   bool   `db:"live"`
			Same   bool   `db:"same"`
			Later  bool   `db:"later"`
		}
		if err := tx.GetContext(ctx, &cur, `
			SELECT holder, lease_until > now() AS live, tick = $2 AS same, tick > $2 AS later
			  FROM job_leases WHERE job = $1 FOR UPDATE`, job, tick); err != nil {
			return err
		}
		switch {
		case cur.Later:
			return errTickDone // a later tick began: this one is over
		case cur.Live:
			c.Holder = cur.Holder
			return nil
		}
		l := JobLease{Job: job, Tick: tick, Replica: replica}
		if err := tx.GetContext(ctx, &l.Fence, `
			UPDATE job_leases SET holder = $2, fence = fence + 1, tick = $3,
			       lease_until = now() + $4 * interval '1 millisecond'
			 WHERE job = $1 RETURNING fence`, job, replica, tick, lease.Milliseconds()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO job_runs (job, tick, replica, fence) VALUES ($1, $2, $3, $4)
			ON CONFLICT (job, tick) DO UPDATE
			   SET replica = EXCLUDED.replica, fence = EXCLUDED.fence, started_at = now(), error = ''
			 WHERE job_runs.finished_at IS NULL`, job, tick, replica, l.Fence)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errTickDone
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM job_runs WHERE job = $1 AND tick < $2`, job, tick.Add(-JobRunsKept)); err != nil {
			return err
		}
		if cur.Same && cur.Holder != "" {
			c.TookOver = cur.Holder
		}
		c.Lease = &l
		return nil
	})
	if errors.Is(err, errTickDone) {
		return JobClaim{}, nil
	}
	return c, wrapJob(job, err)
}

// RenewJobLease extends l's lease to lease from now, by the database's
// clock. It returns ErrJobLeaseLost when the lease expired or changed hands:
// the run must stop.
func (db *DB) RenewJobLease(ctx context.Context, l JobLease, lease time.Duration) error {
	res, err := db.x.ExecContext(ctx, `
		UPDATE job_leases SET lease_until = now() + $3 * interval '1 millisecond'
		 WHERE job = $1 AND fence = $2 AND lease_until > now()`, l.Job, l.Fence, lease.Milliseconds())
	return leaseWrite(l, res, err)
}

// FinishJobRun records the outcome of l's run in job_runs and frees the
// job's lease, in one statement, only while l's lease is live: a run whose
// lease expired or was taken over gets ErrJobLeaseLost and records nothing
// (the tick is left to the replica that holds it now, or to the next claim
// of it). fn's result is stored as JSON.
func (db *DB) FinishJobRun(ctx context.Context, l JobLease, result any, runErr error) error {
	res, err := db.x.ExecContext(ctx, `
		WITH held AS (
		  UPDATE job_leases SET lease_until = now()
		   WHERE job = $1 AND fence = $2 AND lease_until > now() RETURNING job)
		UPDATE job_runs r SET finished_at = now(), result = $4, error = $5
		  FROM held WHERE r.job = held.job AND r.tick = $3 AND r.fence = $2`,
		l.Job, l.Fence, l.Tick, resultJSON(result), errText(runErr))
	return leaseWrite(l, res, err)
}

// ReleaseJobLease frees l's lease without finishing its tick, so that
// another replica may run the tick at once (a replica shutting down
// mid-run). It returns ErrJobLeaseLost when the lease was no longer l's.
func (db *DB) ReleaseJobLease(ctx context.Context, l JobLease) error {
	res, err := db.x.ExecContext(ctx, `
		UPDATE job_leases SET lease_until = now() WHERE job = $1 AND fence = $2 AND lease_until > now()`, l.Job, l.Fence)
	return leaseWrite(l, res, err)
}

// leaseWrite turns the outcome of a write guarded by a lease into an error.
func leaseWrite(l JobLease, res sql.Result, err error) error {
	if err != nil {
		return wrapJob(l.Job, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return wrapJob(l.Job, cmp.Or(err, ErrJobLeaseLost))
	}
	return nil
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
	Fence    int64     `db:"fence" json:"fence"`
	Error    string    `db:"error" json:"error,omitempty"`
	Finished bool      `db:"finished" json:"finished"`
}

// JobRuns lists a job's runs, oldest tick first.
func (db *DB) JobRuns(ctx context.Context, job string) ([]JobRun, error) {
	var out []JobRun
	err := db.x.SelectContext(ctx, &out, `
		SELECT job, tick, replica, fence, error, finished_at IS NOT NULL AS finished FROM job_runs WHERE job = $1 ORDER BY tick`, job)
	return out, err
}
