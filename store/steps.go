package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settle-dev/settle/pipeline"
)

var _ pipeline.StepStore = (*DB)(nil)

// claimColumns is what a claim returns about its step.
const claimColumns = `steps.id, steps.settlement_id, s.customer_id, steps.seq, steps.kind, steps.amount,
	steps.currency, steps.provider, steps.from_account, steps.to_account, steps.to_holder, steps.fence, steps.attempts`

func scanClaim(row *sqlx.Row) (pipeline.Claim, error) {
	var c pipeline.Claim
	var kind string
	err := row.Scan(&c.StepID, &c.SettlementID, &c.CustomerID, &c.Seq, &kind, &c.Amount.Amount,
		&c.Amount.Currency, &c.Provider, &c.From, &c.To, &c.ToHolder, &c.Fence, &c.Attempts)
	c.Kind = pipeline.Kind(kind)
	return c, err
}

// ClaimStep implements pipeline.StepStore.
func (db *DB) ClaimStep(ctx context.Context, stepID int64, lease time.Duration) (pipeline.Claim, error) {
	var c pipeline.Claim
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		c, err = scanClaim(tx.QueryRowxContext(ctx, `
			UPDATE steps SET status = 'RUNNING', fence = fence + 1, attempts = attempts + 1,
			       lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
			  FROM settlements s
			 WHERE steps.id = $1 AND s.id = steps.settlement_id
			   AND steps.status = 'READY' AND steps.next_run_at <= now()
			RETURNING `+claimColumns, stepID, lease.Milliseconds()))
		if errors.Is(err, sql.ErrNoRows) {
			return db.whyNotClaimable(ctx, tx, stepID)
		}
		if err != nil || !c.Kind.MovesMoney() {
			return err
		}
		c.Transfer, err = liveOrNewAttempt(ctx, tx, c)
		return err
	})
	if err != nil {
		return pipeline.Claim{}, err
	}
	return c, nil
}

// whyNotClaimable tells a READY step waiting for its backoff from anything
// else.
func (db *DB) whyNotClaimable(ctx context.Context, tx *sqlx.Tx, stepID int64) error {
	var status string
	var due time.Time
	err := tx.QueryRowxContext(ctx, `SELECT status, next_run_at FROM steps WHERE id = $1`, stepID).Scan(&status, &due)
	if errors.Is(err, sql.ErrNoRows) {
		return pipeline.ErrNotClaimable
	}
	if err != nil {
		return err
	}
	if status == string(pipeline.StepReady) {
		return &pipeline.NotDueError{At: due}
	}
	return pipeline.ErrNotClaimable
}

// liveOrNewAttempt reuses the step's live attempt (its key was maybe sent;
// sending it again is safe) or creates the next one with a new key, which is
// only reached once the previous attempt was refused.
func liveOrNewAttempt(ctx context.Context, tx *sqlx.Tx, c pipeline.Claim) (pipeline.Attempt, error) {
	var a pipeline.Attempt
	var status string
	err := tx.QueryRowxContext(ctx, `
		SELECT id, attempt, idempotency_key, created_at, status FROM transfers
		 WHERE step_id = $1 ORDER BY attempt DESC LIMIT 1`, c.StepID).
		Scan(&a.ID, &a.No, &a.Key, &a.CreatedAt, &status)
	switch {
	case err == nil && (status == "SENDING" || status == "UNKNOWN"):
		return a, nil
	case err == nil && status == "SUCCEEDED":
		return a, fmt.Errorf("step %d is READY but its attempt %d already SUCCEEDED: run settle verify", c.StepID, a.No)
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return a, err
	}
	a.No++
	a.Key = pipeline.AttemptKey(c.StepID, a.No)
	err = tx.QueryRowxContext(ctx, `
		INSERT INTO transfers (step_id, attempt, idempotency_key, provider, amount, currency)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at`,
		c.StepID, a.No, a.Key, c.Provider, c.Amount.Amount, c.Amount.Currency).Scan(&a.ID, &a.CreatedAt)
	return a, err
}

// ReclaimExpired implements pipeline.StepStore.
func (db *DB) ReclaimExpired(ctx context.Context, stepID int64, lease time.Duration) (pipeline.Claim, error) {
	var c pipeline.Claim
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		c, err = scanClaim(tx.QueryRowxContext(ctx, `
			UPDATE steps SET fence = fence + 1, lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
			  FROM settlements s
			 WHERE steps.id = $1 AND s.id = steps.settlement_id
			   AND steps.status = 'RUNNING' AND steps.lease_until < now()
			RETURNING `+claimColumns, stepID, lease.Milliseconds()))
		if errors.Is(err, sql.ErrNoRows) {
			return pipeline.ErrNotClaimable
		}
		if err != nil || !c.Kind.MovesMoney() {
			return err
		}
		c.Transfer, err = liveOrNewAttempt(ctx, tx, c)
		return err
	})
	if err != nil {
		return pipeline.Claim{}, err
	}
	return c, nil
}

// fenced updates the claimed step only while the claim's fence holds.
func fenced(ctx context.Context, tx *sqlx.Tx, c pipeline.Claim, set string, args ...any) error {
	q := `UPDATE steps SET ` + set + `, updated_at = now() WHERE id = $1 AND fence = $2 AND status = 'RUNNING'`
	res, err := tx.ExecContext(ctx, q, append([]any{c.StepID, c.Fence}, args...)...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return pipeline.ErrLeaseLost
	}
	return nil
}

// Complete implements pipeline.StepStore.
func (db *DB) Complete(ctx context.Context, c pipeline.Claim, r pipeline.Receipt) (pipeline.StepRef, error) {
	var next pipeline.StepRef
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := fenced(ctx, tx, c, `status = 'DONE', done_at = now(), lease_until = NULL, last_error = ''`); err != nil {
			return err
		}
		if err := applyEffects(ctx, tx, c, r); err != nil {
			return err
		}
		err := tx.QueryRowxContext(ctx, `
			UPDATE steps SET status = 'READY', next_run_at = now(), updated_at = now()
			 WHERE settlement_id = $1 AND seq = $2 AND status = 'PENDING' RETURNING id, fence`,
			c.SettlementID, c.Seq+1).Scan(&next.ID, &next.Fence)
		if errors.Is(err, sql.ErrNoRows) { // the last step: the settlement is done
			err = finishSettlement(ctx, tx, c.SettlementID)
		}
		if err == nil {
			db.hook(pipeline.PointBeforeRecordCommit)
		}
		return err
	})
	if err != nil {
		return pipeline.StepRef{}, err
	}
	return next, nil
}

// finishSettlement marks the settlement SETTLED (COMPENSATED when it was
// compensating) and resolves its failure alerts, which it has only if it
// failed before and was replayed or compensated. The same statement finds
// them through an index, so finishing a settlement that never failed costs
// no extra round trip, and no step but the last looks at alerts.
func finishSettlement(ctx context.Context, tx *sqlx.Tx, settlementID int64) error {
	var status string
	var keys pq.StringArray
	err := tx.QueryRowxContext(ctx, `
		WITH s AS (
		     UPDATE settlements SET finished_at = now(), updated_at = now(),
		            status = CASE status WHEN 'COMPENSATING' THEN 'COMPENSATED' ELSE 'SETTLED' END
		      WHERE id = $1 AND status IN ('RUNNING', 'COMPENSATING')
		     RETURNING id, status)
		SELECT s.status, ARRAY(SELECT DISTINCT a.problem_key FROM alerts a
		                        WHERE a.settlement_id = s.id AND a.kind = $2 ORDER BY 1)
		  FROM s`, settlementID, AlertKindSettlementFailed).Scan(&status, &keys)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	note := fmt.Sprintf("settlement %d is %s", settlementID, status)
	if status == string(pipeline.SettlementCompensated) {
		note += ": its completed legs were reversed"
	}
	_, err = resolveProblems(ctx, tx, keys, note)
	return err
}

// resolveProblems resolves each problem (see ResolveProblem) inside tx and
// returns how many were open.
func resolveProblems(ctx context.Context, tx *sqlx.Tx, keys []string, note string) (int, error) {
	n := 0
	for _, key := range keys {
		ok, err := resolveProblem(ctx, tx, key, note)
		if err != nil {
			return n, fmt.Errorf("resolve %s: %w", key, err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// applyEffects writes what a completed step changes besides its own row: the
// attempt, the ledger journal, the obligation, or the customer event.
func applyEffects(ctx context.Context, tx *sqlx.Tx, c pipeline.Claim, r pipeline.Receipt) error {
	if c.Kind == pipeline.KindNotify {
		return insertSettledEvent(ctx, tx, c)
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE transfers SET status = 'SUCCEEDED', bank_ref = $2, updated_at = now() WHERE id = $1`,
		c.Transfer.ID, r.BankRef); err != nil {
		return err
	}
	if err := insertJournal(ctx, tx, "transfer", c.SettlementID, c.StepID, c.Amount.Currency,
		pipeline.TransferPostings(c.Provider, c.From, c.To, c.Amount.Amount)); err != nil {
		return err
	}
	kind := c.Kind
	undo := kind == pipeline.KindReverse
	if undo {
		if err := tx.QueryRowxContext(ctx, `SELECT r.kind FROM steps s JOIN steps r ON r.id = s.reverses WHERE s.id = $1`,
			c.StepID).Scan(&kind); err != nil {
			return fmt.Errorf("step %d reverses which step: %w", c.StepID, err)
		}
	}
	var q string
	switch {
	case kind == pipeline.KindRepay && undo:
		// The lender returned the money: the debt is owed again.
		q = `UPDATE obligations SET outstanding = outstanding + $2, repaid_total = repaid_total - $2,
		            updated_at = now() WHERE customer_id = $1`
	case kind == pipeline.KindHold && undo:
		q = `UPDATE obligations SET held_total = held_total - $2, updated_at = now() WHERE customer_id = $1`
	case kind == pipeline.KindRepay:
		// The money reached the lender: the debt shrinks by it (never below
		// zero, should an operator have lowered it meanwhile).
		q = `UPDATE obligations SET outstanding = GREATEST(outstanding - $2, 0), repaid_total = repaid_total + $2,
		            updated_at = now() WHERE customer_id = $1`
	case kind == pipeline.KindHold:
		q = `UPDATE obligations SET held_total = held_total + $2, updated_at = now() WHERE customer_id = $1`
	default:
		return nil
	}
	_, err := tx.ExecContext(ctx, q, c.CustomerID, c.Amount.Amount)
	return err
}

// settledEventQuery builds the settlement.settled event of settlement $1:
// the amount of every leg; its event ID is stable so receivers can drop
// duplicates.
const settledEventQuery = `
	SELECT 'evt_settlement_' || s.id || '_settled' AS event_id, 'settlement.settled' AS type, s.id AS settlement_id,
	       s.customer_id, jsonb_build_object('settlement_id', s.id, 'customer_ref', c.external_ref, 'currency', s.currency,
	                          'deposit', s.amount, 'repay', s.repay, 'hold', s.hold, 'fee', s.fee, 'payout', s.payout) AS payload
	  FROM settlements s JOIN customers c ON c.id = s.customer_id
	 WHERE s.id = $1`

// insertSettledEvent records the settlement.settled event.
func insertSettledEvent(ctx context.Context, tx *sqlx.Tx, c pipeline.Claim) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO customer_events (event_id, type, settlement_id, customer_id, payload)
		`+settledEventQuery+`
		ON CONFLICT (event_id) DO NOTHING`, c.SettlementID)
	return err
}

// SettledEvent implements pipeline.StepStore.
func (db *DB) SettledEvent(ctx context.Context, c pipeline.Claim) (pipeline.Event, error) {
	var ev pipeline.Event
	var settlement, customer int64
	err := db.x.QueryRowxContext(ctx, settledEventQuery, c.SettlementID).Scan(&ev.ID, &ev.Type, &settlement, &customer, &ev.Data)
	return ev, err
}

// Fail implements pipeline.StepStore.
func (db *DB) Fail(ctx context.Context, c pipeline.Claim, f pipeline.Failure) error {
	status := pipeline.StepFailed
	if f.Dead {
		status = pipeline.StepDead
	}
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := fenced(ctx, tx, c, `status = $3, lease_until = NULL, last_error = $4`, string(status), f.Reason); err != nil {
			return err
		}
		if f.Refused != nil {
			if _, err := tx.ExecContext(ctx, `
				UPDATE transfers SET status = 'REFUSED', bank_code = $2, bank_message = $3, updated_at = now()
				 WHERE id = $1`, c.Transfer.ID, f.Refused.BankCode, f.Refused.Error()); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE settlements SET status = 'FAILED', failure_reason = $2, updated_at = now()
			 WHERE id = $1 AND status IN ('RUNNING', 'COMPENSATING')`, c.SettlementID, f.Reason); err != nil {
			return err
		}
		return insertAlert(ctx, tx, f.Alert)
	})
}

func insertAlert(ctx context.Context, tx *sqlx.Tx, a pipeline.Alert) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail, action)
		VALUES ($1, $2, $3, NULLIF($4::bigint, 0), $5, $6, $7)`,
		a.ProblemKey, a.Kind, a.Severity, a.SettlementID, a.Summary, a.Detail, a.Action)
	return err
}

// Retry implements pipeline.StepStore.
func (db *DB) Retry(ctx context.Context, c pipeline.Claim, after time.Duration, reason string, refund bool) error {
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		return fenced(ctx, tx, c, `status = 'READY', lease_until = NULL,
			next_run_at = now() + $3 * interval '1 millisecond', last_error = $4,
			attempts = attempts - CASE WHEN $5 THEN 1 ELSE 0 END`, after.Milliseconds(), reason, refund)
	})
}

// Unknown implements pipeline.StepStore.
func (db *DB) Unknown(ctx context.Context, c pipeline.Claim, wait time.Duration, reason string) error {
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := fenced(ctx, tx, c, `lease_until = now() + $3 * interval '1 millisecond', last_error = $4`,
			wait.Milliseconds(), "outcome unknown: "+reason); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			UPDATE transfers SET status = 'UNKNOWN', updated_at = now() WHERE id = $1 AND status = 'SENDING'`, c.Transfer.ID)
		return err
	})
}

// Absent implements pipeline.StepStore.
func (db *DB) Absent(ctx context.Context, c pipeline.Claim) error {
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := fenced(ctx, tx, c, `status = 'READY', lease_until = NULL, next_run_at = now(),
			last_error = 'the bank never saw attempt; sending the same key again'`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			UPDATE transfers SET status = 'SENDING', updated_at = now() WHERE id = $1 AND status = 'UNKNOWN'`,
			c.Transfer.ID)
		return err
	})
}

// RaiseAlert writes an alert to the outbox on its own, for problems that are
// not a step's (a provider failing, an invariant broken).
func (db *DB) RaiseAlert(ctx context.Context, a pipeline.Alert) error {
	return db.inTx(ctx, func(tx *sqlx.Tx) error { return insertAlert(ctx, tx, a) })
}
