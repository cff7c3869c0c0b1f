package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settle-dev/settle/pipeline"
)

var _ pipeline.StepStore = (*DB)(nil)

// afterMoney is the SQL list of the step kinds that move no money
// ('NOTIFY'): they run after their settlement is SETTLED, and never fail it
// or keep it open (pipeline.Kind.MovesMoney).
var afterMoney = sqlKinds(func(k pipeline.Kind) bool { return !k.MovesMoney() })

// openStatuses is the SQL list of pipeline.OpenSettlementStatuses:
// 'RUNNING', 'FAILED', 'COMPENSATING'. A query that reads a customer's open
// settlement with "status IN (" + openStatuses + ")" matches the predicate
// of the index settlements_one_open_per_customer.
var openStatuses = sqlList(pipeline.OpenSettlementStatuses)

// inFlightStatuses is the SQL list of pipeline.InFlightSettlementStatuses:
// 'RUNNING', 'COMPENSATING'.
var inFlightStatuses = sqlList(pipeline.InFlightSettlementStatuses)

// sqlKinds is the SQL list of the step kinds that match.
func sqlKinds(match func(pipeline.Kind) bool) string {
	var out []pipeline.Kind
	for _, k := range append(slices.Clone(pipeline.Kinds), pipeline.KindReverse) {
		if match(k) {
			out = append(out, k)
		}
	}
	return sqlList(out)
}

// sqlList is the SQL list of the values as string literals: 'A', 'B'. The
// values are the program's own constants, never input.
func sqlList[T ~string](vs []T) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = "'" + string(v) + "'"
	}
	return strings.Join(out, ", ")
}

// claimColumns is what a claim returns about its step; the last is how
// many milliseconds ago its settlement became SETTLED (0 while it is not).
const claimColumns = `steps.id, steps.settlement_id, s.customer_id, steps.seq, steps.kind, steps.amount,
	steps.currency, steps.provider, steps.from_account, steps.to_account, steps.to_holder, steps.fence, steps.attempts,
	CASE WHEN s.status = 'SETTLED' THEN (EXTRACT(EPOCH FROM now() - s.finished_at) * 1000)::bigint ELSE 0 END AS settled_ms`

// claimWith builds the one statement that claims a batch of steps, $1,
// under a lease of $2 ms: each step that meets cond (on its row, st) is
// locked and takes a new fence and set, and it returns claimColumns. Each
// claimed step that moves money gets its transfer attempt: the live one
// (SENDING or UNKNOWN: its key was maybe sent, and sending it again is
// safe) or the next one with a new key, which is only reached once the
// previous attempt was refused. The key is pipeline.AttemptKey's. A step
// whose attempt already SUCCEEDED is never claimed. A step that is not
// claimable returns no row.
//
// Each step, and its attempts, are looked up on their own, by key alone
// (LATERAL; OFFSET 0 keeps the status test out of the lookup): the
// statement runs on a generic plan (see Open), and a status test the
// planner can match to a partial index on the status had it plan, when
// that index was small, a scan of the whole index (every READY step, every
// SUCCEEDED attempt of a payday) for a batch.
func claimWith(set, cond string) string {
	return `
	WITH input AS (SELECT DISTINCT unnest($1::bigint[]) AS id ORDER BY id),
	target AS (
		SELECT st.id FROM input i
		 CROSS JOIN LATERAL (
			SELECT id, status, next_run_at, lease_until FROM steps WHERE id = i.id OFFSET 0 FOR UPDATE) st
		 CROSS JOIN LATERAL (
			SELECT coalesce(bool_or(t.status = 'SUCCEEDED'), false) AS succeeded FROM transfers t WHERE t.step_id = i.id) a
		 WHERE ` + cond + ` AND NOT a.succeeded),
	claimed AS (
		UPDATE steps SET ` + set + `, fence = fence + 1, lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
		  FROM target, settlements s
		 WHERE steps.id = target.id AND s.id = steps.settlement_id
		RETURNING ` + claimColumns + `),
	last AS (
		SELECT l.* FROM input i CROSS JOIN LATERAL (
			SELECT t.step_id, t.id, t.attempt, t.idempotency_key, t.created_at, t.status FROM transfers t
			 WHERE t.step_id = i.id ORDER BY t.attempt DESC LIMIT 1) l),
	fresh AS (
		INSERT INTO transfers (step_id, attempt, idempotency_key, provider, amount, currency)
		SELECT c.id, n.no, 'settle-s' || c.id || '-a' || n.no, c.provider, c.amount, c.currency
		  FROM claimed c LEFT JOIN last l ON l.step_id = c.id,
		       LATERAL (SELECT coalesce(l.attempt, 0) + 1 AS no) n
		 WHERE c.kind NOT IN (` + afterMoney + `) AND l.status IS DISTINCT FROM 'SENDING' AND l.status IS DISTINCT FROM 'UNKNOWN'
		 ORDER BY c.id
		RETURNING step_id, id, attempt, idempotency_key, created_at),
	attempt AS (
		SELECT step_id, id, attempt, idempotency_key, created_at FROM last WHERE status IN ('SENDING', 'UNKNOWN')
		UNION ALL SELECT * FROM fresh)
	SELECT c.*, coalesce(a.id, 0), coalesce(a.attempt, 0), coalesce(a.idempotency_key, ''),
	       coalesce(a.created_at, 'epoch'::timestamptz),
	       coalesce((EXTRACT(EPOCH FROM now() - a.created_at) * 1000)::bigint, 0)
	  FROM claimed c LEFT JOIN attempt a ON a.step_id = c.id AND c.kind NOT IN (` + afterMoney + `)`
}

// claimQuery moves READY, due steps to RUNNING under a new lease and
// fence, and counts the attempt.
var claimQuery = claimWith(`status = 'RUNNING', attempts = attempts + 1`,
	`st.status = 'READY' AND st.next_run_at <= now()`)

// reclaimQuery takes over RUNNING steps whose lease expired by the
// database's clock under a new lease and fence, counting no attempt.
var reclaimQuery = claimWith(`status = 'RUNNING'`, `st.status = 'RUNNING' AND st.lease_until < now()`)

// ClaimStep implements pipeline.StepStore. Claims made at the same time
// go to PostgreSQL together, as one statement (see batcher).
func (db *DB) ClaimStep(ctx context.Context, stepID int64, lease time.Duration) (pipeline.Claim, error) {
	return db.claim(ctx, db.claims, pipeline.StepReady, stepID, lease)
}

// ReclaimExpired implements pipeline.StepStore, batched as ClaimStep is.
func (db *DB) ReclaimExpired(ctx context.Context, stepID int64, lease time.Duration) (pipeline.Claim, error) {
	return db.claim(ctx, db.reclaims, pipeline.StepRunning, stepID, lease)
}

// claimCall is one step to claim; claimed is what came of it.
type claimCall struct {
	step  int64
	lease time.Duration
}

type claimed struct {
	c  pipeline.Claim
	ok bool
}

// claim claims a step through b; from is the status it claims from.
func (db *DB) claim(ctx context.Context, b *batcher[claimCall, claimed], from pipeline.StepStatus, stepID int64, lease time.Duration) (pipeline.Claim, error) {
	r, err := b.do(ctx, claimCall{step: stepID, lease: lease})
	if err != nil {
		return pipeline.Claim{}, err
	}
	if !r.ok {
		return pipeline.Claim{}, db.whyNotClaimable(ctx, from, stepID)
	}
	return r.c, nil
}

// claimBatcher batches the claims of query. The calls of one batch share
// the lease of its first: every caller asks for the executor's lease.
func (db *DB) claimBatcher(query string) *batcher[claimCall, claimed] {
	return &batcher[claimCall, claimed]{
		max: batchMax, slots: batchSlots,
		conflict: func(a, b claimCall) bool { return a.step == b.step || a.lease != b.lease },
		run: func(ctx context.Context, calls []claimCall) ([]claimed, error) {
			return db.claimMany(ctx, query, calls)
		},
	}
}

// claimMany runs a claim statement over calls.
func (db *DB) claimMany(ctx context.Context, query string, calls []claimCall) ([]claimed, error) {
	ids := make([]int64, len(calls))
	for i, c := range calls {
		ids[i] = c.step
	}
	got := make(map[int64]pipeline.Claim, len(calls))
	err := db.runPrepared(ctx, query, func(stmt *sqlx.Stmt) error {
		clear(got)
		rows, err := stmt.QueryxContext(ctx, pq.Array(ids), calls[0].lease.Milliseconds())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c pipeline.Claim
			var kind string
			var settledMS, ageMS int64
			if err := rows.Scan(&c.StepID, &c.SettlementID, &c.CustomerID, &c.Seq, &kind, &c.Amount.Amount,
				&c.Amount.Currency, &c.Provider, &c.From, &c.To, &c.ToHolder, &c.Fence, &c.Attempts, &settledMS,
				&c.Transfer.ID, &c.Transfer.No, &c.Transfer.Key, &c.Transfer.CreatedAt, &ageMS); err != nil {
				return err
			}
			c.Kind = pipeline.Kind(kind)
			c.SettledFor = time.Duration(settledMS) * time.Millisecond
			c.Transfer.Age = time.Duration(ageMS) * time.Millisecond
			if !c.Kind.MovesMoney() {
				c.Transfer = pipeline.Attempt{}
			}
			got[c.StepID] = c
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]claimed, len(calls))
	for i, call := range calls {
		c, ok := got[call.step]
		out[i] = claimed{c: c, ok: ok}
	}
	return out, nil
}

// whyNotClaimable tells why a claim from status found nothing: a READY
// step waiting for its backoff or a RUNNING step whose lease has not ended
// (*pipeline.NotDueError, by the database's clock), a step whose attempt
// already succeeded while it is not DONE (a broken invariant, an error that
// says to run settle verify), or anything else (pipeline.ErrNotClaimable).
func (db *DB) whyNotClaimable(ctx context.Context, from pipeline.StepStatus, stepID int64) error {
	var status string
	var due time.Time
	var inMS int64
	var succeeded bool
	err := db.x.QueryRowxContext(ctx, `
		SELECT status, d.due, greatest(ceil(extract(epoch FROM d.due - now()) * 1000), 0)::bigint,
		       EXISTS (SELECT 1 FROM transfers t WHERE t.step_id = steps.id AND t.status = 'SUCCEEDED')
		  FROM steps, LATERAL (SELECT coalesce(CASE status WHEN 'RUNNING' THEN lease_until ELSE next_run_at END, now()) AS due) d
		 WHERE id = $1`, stepID).Scan(&status, &due, &inMS, &succeeded)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return pipeline.ErrNotClaimable
	case err != nil:
		return err
	case status != string(from):
		return pipeline.ErrNotClaimable
	case succeeded:
		return fmt.Errorf("step %d is %s but an attempt of it already SUCCEEDED: run settle verify", stepID, status)
	}
	return &pipeline.NotDueError{At: due, In: time.Duration(inMS) * time.Millisecond}
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

// completeQuery records the success of a batch of steps in one statement,
// each only while its claim's fence holds. The steps come as arrays, an
// element each: $1 step, $2 fence, $3 the bank's reference, $4 attempt,
// $5 currency, $6 customer, $7 amount; their journals' postings as $8 step,
// $9 account, $10 amount. For each step whose fence held: the step DONE;
// for a step that moved money its attempt SUCCEEDED with the bank's
// reference and its journal, and for a REPAY or HOLD (or the REVERSE of
// one) the customer's obligation changed by the amount; for a NOTIFY the
// settlement.settled event and its notify_undelivered problem resolved;
// then the next step READY (returned), and after the last step that moves
// money the settlement SETTLED (or COMPENSATED), its VA no longer held
// from polling, and its failure problems resolved. A NOTIFY after it runs
// on its own (pipeline.Kind.MovesMoney). A batch holds no two steps of one
// customer, so no row is changed twice. It returns, for each step whose
// fence held, the step and its next step's ID and fence (0 when none).
var completeQuery = `
	WITH input AS (
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[])
		    AS i(step_id, fence, bank_ref, transfer_id, currency, customer_id, amount) ORDER BY step_id),
	target AS (
		-- Each step by primary key alone, as in claimWith.
		SELECT st.id FROM input i CROSS JOIN LATERAL (
			SELECT id, fence, status FROM steps WHERE id = i.step_id OFFSET 0 FOR UPDATE) st
		 WHERE st.fence = i.fence AND st.status = 'RUNNING'),
	done AS (
		UPDATE steps SET status = 'DONE', done_at = now(), lease_until = NULL, last_error = '', updated_at = now()
		  FROM target WHERE steps.id = target.id
		RETURNING steps.id, steps.settlement_id, steps.seq, steps.kind, steps.reverses),
	moved AS (
		UPDATE transfers t SET status = 'SUCCEEDED', bank_ref = i.bank_ref, updated_at = now()
		  FROM input i JOIN done d ON d.id = i.step_id
		 WHERE t.id = i.transfer_id AND t.step_id = i.step_id
		RETURNING t.step_id),
	journal AS (
		INSERT INTO journals (kind, settlement_id, step_id)
		SELECT 'transfer', d.settlement_id, d.id FROM done d JOIN moved m ON m.step_id = d.id ORDER BY d.id
		RETURNING id, step_id),
	posted AS (
		INSERT INTO postings (journal_id, account, amount, currency)
		SELECT j.id, p.account, p.amount, i.currency
		  FROM journal j JOIN input i ON i.step_id = j.step_id
		  JOIN unnest($8::bigint[], $9::text[], $10::bigint[]) WITH ORDINALITY AS p(step_id, account, amount, n) ON p.step_id = j.step_id
		 ORDER BY p.n),
	effect AS (
		SELECT i.customer_id, i.amount, coalesce(r.kind, d.kind) AS kind, d.kind = 'REVERSE' AS undo
		  FROM done d JOIN input i ON i.step_id = d.id LEFT JOIN steps r ON r.id = d.reverses),
	repaid AS (
		-- The money reached the lender: the debt shrinks by it (never below
		-- zero, should an operator have lowered it meanwhile); returned by
		-- the lender, it is owed again.
		UPDATE obligations o SET updated_at = now(),
		       outstanding = CASE WHEN e.undo THEN o.outstanding + e.amount ELSE GREATEST(o.outstanding - e.amount, 0) END,
		       repaid_total = o.repaid_total + CASE WHEN e.undo THEN -e.amount ELSE e.amount END
		  FROM effect e WHERE o.customer_id = e.customer_id AND e.kind = 'REPAY'),
	held AS (
		UPDATE obligations o SET updated_at = now(), held_total = o.held_total + CASE WHEN e.undo THEN -e.amount ELSE e.amount END
		  FROM effect e WHERE o.customer_id = e.customer_id AND e.kind = 'HOLD'),
	event AS (
		INSERT INTO customer_events (event_id, type, settlement_id, customer_id, payload)
		` + settledEventSelect(`ANY (SELECT settlement_id FROM done WHERE kind = 'NOTIFY')`) + `
		ON CONFLICT (event_id) DO NOTHING),
	next AS (
		UPDATE steps n SET status = 'READY', next_run_at = now(), updated_at = now()
		  FROM done d WHERE n.settlement_id = d.settlement_id AND n.seq = d.seq + 1 AND n.status = 'PENDING'
		RETURNING n.id, n.fence, n.kind, n.settlement_id),
	last_moved AS (
		-- The steps after which no money step follows.
		SELECT d.settlement_id FROM done d
		 WHERE NOT EXISTS (SELECT 1 FROM next WHERE next.settlement_id = d.settlement_id AND next.kind NOT IN (` + afterMoney + `))),
	closing AS (
		-- Each settlement by primary key alone, as in claimWith: a join on
		-- its status was planned as a scan of every open settlement.
		SELECT x.id FROM last_moved l CROSS JOIN LATERAL (
			SELECT id, status FROM settlements WHERE id = l.settlement_id OFFSET 0 FOR UPDATE) x
		 WHERE x.status IN (` + inFlightStatuses + `)),
	finished AS (
		UPDATE settlements s SET finished_at = now(), updated_at = now(),
		       status = CASE s.status WHEN 'COMPENSATING' THEN 'COMPENSATED' ELSE 'SETTLED' END
		  FROM closing c WHERE s.id = c.id
		RETURNING s.id, s.status, s.va_id),
	released AS (
		-- The VA was held from polling while its money moved.
		UPDATE virtual_accounts va SET held_until = NULL FROM finished f WHERE va.id = f.va_id),
	ended AS (
		-- The problems this record ends: a settlement that failed before
		-- and was replayed or compensated ends its failure problems; a
		-- NOTIFY done ends its undelivered-event problem.
		SELECT f.id AS settlement_id, '` + string(pipeline.AlertKindSettlementFailed) + `' AS kind,
		       'settlement ' || f.id || ' is ' || f.status ||
		       CASE f.status WHEN 'COMPENSATED' THEN ': its completed legs were reversed' ELSE '' END AS note
		  FROM finished f
		UNION ALL
		SELECT d.settlement_id, '` + string(pipeline.AlertKindNotifyUndelivered) + `',
		       'the lender''s app took the event of settlement ' || d.settlement_id || ': NOTIFY is DONE'
		  FROM done d WHERE d.kind IN (` + afterMoney + `)),
	resolved AS (
		-- A follow-up for each ended problem whose latest alert is not a
		-- resolution yet. Only the last money step and NOTIFY look, through
		-- the index on alerts (settlement_id).
		INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail)
		SELECT a.problem_key, '` + string(pipeline.AlertKindResolved) + `', 'info', e.settlement_id, 'Resolved: ' || a.summary, e.note
		  FROM ended e
		  JOIN LATERAL (SELECT DISTINCT ON (problem_key) problem_key, kind, summary FROM alerts
		                 WHERE settlement_id = e.settlement_id ORDER BY problem_key, id DESC) a ON true
		 WHERE a.problem_key IN (SELECT problem_key FROM alerts WHERE settlement_id = e.settlement_id AND kind = e.kind)
		   AND a.kind <> '` + string(pipeline.AlertKindResolved) + `')
	SELECT d.id, coalesce(n.id, 0), coalesce(n.fence, 0) FROM done d LEFT JOIN next n ON n.settlement_id = d.settlement_id`

// Complete implements pipeline.StepStore. Records made at the same time go
// to PostgreSQL together, as one statement and one commit (see batcher).
func (db *DB) Complete(ctx context.Context, c pipeline.Claim, r pipeline.Receipt) (pipeline.StepRef, error) {
	done, err := db.completes.do(ctx, completeCall{claim: c, ref: r.BankRef})
	if err != nil {
		return pipeline.StepRef{}, err
	}
	if !done.held {
		return pipeline.StepRef{}, pipeline.ErrLeaseLost
	}
	return done.next, nil
}

// completeCall is one step's success to record; completed is what came of
// it: whether its fence held, and its next step.
type completeCall struct {
	claim pipeline.Claim
	ref   string
}

type completed struct {
	held bool
	next pipeline.StepRef
}

// completeBatcher batches Complete. Two steps of one customer never share
// a batch: they would change the same obligation row twice in one
// statement.
func (db *DB) completeBatcher() *batcher[completeCall, completed] {
	return &batcher[completeCall, completed]{
		max: batchMax, slots: batchSlots,
		conflict: func(a, b completeCall) bool {
			return a.claim.StepID == b.claim.StepID || a.claim.CustomerID == b.claim.CustomerID
		},
		run: db.completeMany,
	}
}

// completeMany records calls in one statement, its commit the batch's.
func (db *DB) completeMany(ctx context.Context, calls []completeCall) ([]completed, error) {
	var steps, fences, transfers, customers, amounts, postingSteps []int64
	var refs, currencies []string
	var ledger postingArrays
	for _, call := range calls {
		c := call.claim
		steps, fences, refs = append(steps, c.StepID), append(fences, c.Fence), append(refs, call.ref)
		transfers, currencies = append(transfers, c.Transfer.ID), append(currencies, c.Amount.Currency)
		customers, amounts = append(customers, c.CustomerID), append(amounts, c.Amount.Amount)
		if c.Kind.MovesMoney() {
			ps := pipeline.TransferPostings(c.Provider, c.From, c.To, c.Amount.Amount)
			ledger.add(ps)
			for range ps {
				postingSteps = append(postingSteps, c.StepID)
			}
		}
	}
	db.hook(pipeline.PointBeforeRecordCommit)
	got := make(map[int64]pipeline.StepRef, len(calls))
	err := db.runPrepared(ctx, completeQuery, func(stmt *sqlx.Stmt) error {
		clear(got)
		rows, err := stmt.QueryxContext(ctx, pq.Array(steps), pq.Array(fences), pq.Array(refs), pq.Array(transfers),
			pq.Array(currencies), pq.Array(customers), pq.Array(amounts),
			pq.Array(postingSteps), pq.Array(ledger.accounts), pq.Array(ledger.amounts))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var step int64
			var next pipeline.StepRef
			if err := rows.Scan(&step, &next.ID, &next.Fence); err != nil {
				return err
			}
			got[step] = next
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]completed, len(calls))
	for i, call := range calls {
		next, held := got[call.claim.StepID]
		out[i] = completed{held: held, next: next}
	}
	return out, nil
}

// settledEventSelect selects the settlement.settled event of each
// settlement s with s.id = idExpr (a value, or ANY of a subquery): the
// amount of every leg; its event ID is stable so receivers can drop
// duplicates.
func settledEventSelect(idExpr string) string {

	return `
	SELECT 'evt_settlement_' || s.id || '_settled' AS event_id, 'settlement.settled' AS type, s.id AS settlement_id,
	       s.customer_id, jsonb_build_object('settlement_id', s.id, 'customer_ref', c.external_ref, 'currency', s.currency,
	                          'deposit', s.amount, 'repay', s.repay, 'hold', s.hold, 'fee', s.fee, 'payout', s.payout) AS payload
	  FROM settlements s JOIN customers c ON c.id = s.customer_id
	 WHERE s.id = ` + idExpr
}

// SettledEvent implements pipeline.StepStore.
func (db *DB) SettledEvent(ctx context.Context, c pipeline.Claim) (pipeline.Event, error) {
	var ev pipeline.Event
	var settlement, customer int64
	err := db.x.QueryRowxContext(ctx, settledEventSelect("$1"), c.SettlementID).Scan(&ev.ID, &ev.Type, &settlement, &customer, &ev.Data)
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
		if f.Unresolved { // the bank may have applied it: nothing sends its key again
			if _, err := tx.ExecContext(ctx, `
				UPDATE transfers SET status = 'UNKNOWN', updated_at = now() WHERE id = $1 AND status = 'SENDING'`,
				c.Transfer.ID); err != nil {
				return err
			}
		}
		if c.Kind.MovesMoney() { // a NOTIFY that gives up leaves its settlement SETTLED
			if _, err := tx.ExecContext(ctx, `
				UPDATE settlements SET status = 'FAILED', failure_reason = $2, updated_at = now()
				 WHERE id = $1 AND status IN (`+inFlightStatuses+`)`, c.SettlementID, f.Reason); err != nil {
				return err
			}
		}
		return insertAlert(ctx, tx, f.Alert)
	})
}

func insertAlert(ctx context.Context, tx *sqlx.Tx, a pipeline.Alert) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail, action, config_key)
		VALUES ($1, $2, $3, NULLIF($4::bigint, 0), $5, $6, $7, $8)`,
		a.ProblemKey, a.Kind, a.Severity, a.SettlementID, a.Summary, a.Detail, a.Action, a.ConfigKey)
	return err
}

// Retry implements pipeline.StepStore.
func (db *DB) Retry(ctx context.Context, c pipeline.Claim, w pipeline.Wait) error {
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := fenced(ctx, tx, c, `status = 'READY', lease_until = NULL,
			next_run_at = now() + $3 * interval '1 millisecond', last_error = $4,
			attempts = attempts - CASE WHEN $5 THEN 1 ELSE 0 END`, w.After.Milliseconds(), w.Reason, w.Refund); err != nil {
			return err
		}
		if w.Alert == nil {
			return nil
		}
		_, err := raiseOnce(ctx, tx, *w.Alert)
		return err
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
