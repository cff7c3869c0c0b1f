package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settle-dev/settle/pipeline"
)

// LongStatementTimeout is the statement_timeout in force in a long read.
func (db *DB) LongStatementTimeout(ctx context.Context) (string, error) {
	var shown string
	err := db.readLong(ctx, true, func(tx *sqlx.Tx) error {
		return tx.GetContext(ctx, &shown, `SHOW statement_timeout`)
	})
	return shown, err
}

// ClaimBatch claims steps in one statement, as a batch of ClaimStep calls
// would: the claims of the steps that were claimable, by step.
func (db *DB) ClaimBatch(ctx context.Context, steps []int64, lease time.Duration) (map[int64]pipeline.Claim, error) {
	calls := make([]claimCall, len(steps))
	for i, s := range steps {
		calls[i] = claimCall{step: s, lease: lease}
	}
	rs, err := db.claimMany(ctx, claimQuery, calls)
	if err != nil {
		return nil, err
	}
	out := map[int64]pipeline.Claim{}
	for _, r := range rs {
		if r.ok {
			out[r.c.StepID] = r.c
		}
	}
	return out, nil
}

// CompleteBatch records the successes of claims in one statement, as a
// batch of Complete calls would: the next step of each claim whose fence
// held, by step.
func (db *DB) CompleteBatch(ctx context.Context, claims []pipeline.Claim) (map[int64]pipeline.StepRef, error) {
	calls := make([]completeCall, len(claims))
	for i, c := range claims {
		calls[i] = completeCall{claim: c, ref: fmt.Sprintf("tr_%d", c.StepID)}
	}
	rs, err := db.completeMany(ctx, calls)
	if err != nil {
		return nil, err
	}
	out := map[int64]pipeline.StepRef{}
	for i, r := range rs {
		if r.held {
			out[claims[i].StepID] = r.next
		}
	}
	return out, nil
}
