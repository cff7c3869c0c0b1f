package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// StuckProblemKey is the alert problem key of a stuck step: one problem per
// step, "settlement:<settlement>:step:<step>:stuck". UnstuckProblems reads
// the step back from it.
func StuckProblemKey(settlementID, stepID int64) string {
	return fmt.Sprintf("settlement:%d:step:%d:stuck", settlementID, stepID)
}

// UnknownStep is a RUNNING step whose latest transfer attempt has had an
// UNKNOWN outcome for a while.
type UnknownStep struct {
	StepID       int64         `db:"step_id"`
	SettlementID int64         `db:"settlement_id"`
	Seq          int           `db:"seq"`
	Kind         pipeline.Kind `db:"kind"`
	Attempt      int           `db:"attempt"`
	Key          string        `db:"idempotency_key"` // the attempt's
	Since        time.Time     `db:"since"`           // when its outcome became unknown
	// For is how long ago that was, by the database's clock.
	For time.Duration `db:"unknown_for"`
}

// UnknownSteps returns the RUNNING steps whose latest transfer attempt has
// been UNKNOWN for at least after, judged by the database's clock, longest
// first: the steps stuck in an unknown outcome.
func (db *DB) UnknownSteps(ctx context.Context, after time.Duration, limit int) ([]UnknownStep, error) {
	var out []UnknownStep
	err := db.x.SelectContext(ctx, &out, `
		SELECT st.id AS step_id, st.settlement_id, st.seq, st.kind, t.attempt, t.idempotency_key, t.updated_at AS since,
		       (EXTRACT(EPOCH FROM now() - t.updated_at) * 1e9)::bigint AS unknown_for
		  FROM steps st
		  JOIN LATERAL (SELECT attempt, idempotency_key, status, updated_at FROM transfers
		                 WHERE step_id = st.id ORDER BY attempt DESC LIMIT 1) t ON true
		 WHERE st.status = 'RUNNING' AND t.status = 'UNKNOWN'
		   AND t.updated_at <= now() - $1 * interval '1 millisecond'
		 ORDER BY t.updated_at, st.id
		 LIMIT $2`, after.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("list steps stuck in an unknown outcome: %w", err)
	}
	return out, nil
}

// UnstuckProblem is an open stuck-step problem whose step is no longer
// stuck: the outcome of its attempt is known.
type UnstuckProblem struct {
	ProblemKey string                 `db:"problem_key"`
	Seq        int                    `db:"seq"`
	Kind       pipeline.Kind          `db:"kind"`
	Status     pipeline.StepStatus    `db:"status"`          // the step's status now
	Attempt    int                    `db:"attempt"`         // its latest attempt
	Transfer   pipeline.AttemptStatus `db:"transfer_status"` // that attempt's status
}

// UnstuckProblems returns the stuck-step problems that are not resolved
// yet although their step is no longer RUNNING with an UNKNOWN attempt,
// oldest first.
func (db *DB) UnstuckProblems(ctx context.Context, limit int) ([]UnstuckProblem, error) {
	var out []UnstuckProblem
	err := db.x.SelectContext(ctx, &out, `
		SELECT o.problem_key, st.seq, st.kind, st.status,
		       COALESCE(t.attempt, 0) AS attempt, COALESCE(t.status, '') AS transfer_status
		  FROM (SELECT DISTINCT ON (problem_key) problem_key, id FROM alerts
		         WHERE kind = $1 AND problem_key ~ '^settlement:[0-9]{1,18}:step:[0-9]{1,18}:stuck$'
		         ORDER BY problem_key, id DESC) o
		  JOIN steps st ON st.id = split_part(o.problem_key, ':', 4)::bigint
		  LEFT JOIN LATERAL (SELECT attempt, status FROM transfers
		                      WHERE step_id = st.id ORDER BY attempt DESC LIMIT 1) t ON true
		 WHERE NOT EXISTS (SELECT 1 FROM alerts r
		                    WHERE r.problem_key = o.problem_key AND r.id > o.id AND r.kind = $2)
		   AND NOT (st.status = 'RUNNING' AND COALESCE(t.status, '') = 'UNKNOWN')
		 ORDER BY o.id
		 LIMIT $3`, pipeline.AlertKindStepStuck, pipeline.AlertKindResolved, limit)
	if err != nil {
		return nil, fmt.Errorf("list unstuck problems: %w", err)
	}
	return out, nil
}

// DaySummary is what happened to settlements within a period, and what is
// still open.
type DaySummary struct {
	Settled   []CurrencyTotal // SETTLED within the period, per currency
	Failed    int             // settlements that failed within the period (their failure alert was raised in it)
	FailedNow int             // settlements FAILED now
	Open      int             // settlements RUNNING, FAILED or COMPENSATING now
	Oldest    *OpenSettlement // the oldest of those; nil when none
}

// OpenSettlement is a settlement that has not finished.
type OpenSettlement struct {
	ID          int64                     `db:"id"`
	Status      pipeline.SettlementStatus `db:"status"`
	CustomerRef string                    `db:"customer_ref"`
	CreatedAt   time.Time                 `db:"created_at"`
}

// DaySummary reports the settlements SETTLED and failed within [from, to),
// and the ones open now.
func (db *DB) DaySummary(ctx context.Context, from, to time.Time) (DaySummary, error) {
	var s DaySummary
	if err := db.x.SelectContext(ctx, &s.Settled, `
		SELECT currency, count(*) AS n, sum(amount) AS amount FROM settlements
		 WHERE status = 'SETTLED' AND finished_at >= $1 AND finished_at < $2
		 GROUP BY currency ORDER BY currency`, from, to); err != nil {
		return s, fmt.Errorf("day summary: settled: %w", err)
	}
	if err := db.x.QueryRowxContext(ctx, `
		SELECT (SELECT count(DISTINCT settlement_id) FROM alerts
		         WHERE kind = $3 AND created_at >= $1 AND created_at < $2),
		       count(*) FILTER (WHERE status = 'FAILED'), count(*)
		  FROM settlements WHERE status IN (`+openStatuses+`)`,
		from, to, pipeline.AlertKindSettlementFailed).Scan(&s.Failed, &s.FailedNow, &s.Open); err != nil {
		return s, fmt.Errorf("day summary: failed and open: %w", err)
	}
	if s.Open == 0 {
		return s, nil
	}
	var o OpenSettlement
	err := db.x.GetContext(ctx, &o, `
		SELECT s.id, s.status, c.external_ref AS customer_ref, s.created_at
		  FROM settlements s JOIN customers c ON c.id = s.customer_id
		 WHERE s.status IN (`+openStatuses+`)
		 ORDER BY s.created_at, s.id LIMIT 1`)
	switch {
	case errors.Is(err, sql.ErrNoRows): // it finished meanwhile
		return s, nil
	case err != nil:
		return s, fmt.Errorf("day summary: oldest open settlement: %w", err)
	}
	s.Oldest = &o
	return s, nil
}
