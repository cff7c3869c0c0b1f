package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// SettlementRow is one settlement as operators see it.
type SettlementRow struct {
	ID            int64                     `db:"id" json:"id"`
	CustomerID    int64                     `db:"customer_id" json:"customer_id"`
	CustomerRef   string                    `db:"external_ref" json:"customer_ref"`
	Provider      string                    `db:"provider" json:"provider"`
	Amount        int64                     `db:"amount" json:"amount"`
	Currency      string                    `db:"currency" json:"currency"`
	Repay         int64                     `db:"repay" json:"repay"`
	Hold          int64                     `db:"hold" json:"hold"`
	Fee           int64                     `db:"fee" json:"fee"`
	Payout        int64                     `db:"payout" json:"payout"`
	Status        pipeline.SettlementStatus `db:"status" json:"status"`
	FailureReason string                    `db:"failure_reason" json:"failure_reason,omitempty"`
	CreatedAt     time.Time                 `db:"created_at" json:"created_at"`
	FinishedAt    *time.Time                `db:"finished_at" json:"finished_at,omitempty"`
	// Notify is its NOTIFY step's status: PENDING until the money moved,
	// READY or RUNNING while the lender's app has not taken the event, DONE
	// once it has, DEAD when it gave up, CANCELLED; "" without one.
	Notify pipeline.StepStatus `db:"notify" json:"notify,omitempty"`
}

// settlementColumns is what a SettlementRow reads, from settlements s
// joined with customers c.
var settlementColumns = `s.id, s.customer_id, c.external_ref, s.provider, s.amount, s.currency, s.repay, s.hold, s.fee,
	s.payout, s.status, s.failure_reason, s.created_at, s.finished_at,
	COALESCE((SELECT st.status FROM steps st WHERE st.settlement_id = s.id AND st.kind IN (` + afterMoney + `)
	           ORDER BY st.seq DESC LIMIT 1), '') AS notify`

// SettlementFilter narrows ListSettlements. Zero fields match everything.
type SettlementFilter struct {
	Status      pipeline.SettlementStatus
	CustomerRef string
	Provider    string
	From, To    time.Time // created in [From, To); zero means open-ended
	Limit       int
}

// ListSettlements returns settlements, newest first.
func (db *DB) ListSettlements(ctx context.Context, f SettlementFilter) ([]SettlementRow, error) {
	out := []SettlementRow{}
	err := db.x.SelectContext(ctx, &out, `
		SELECT `+settlementColumns+`
		  FROM settlements s JOIN customers c ON c.id = s.customer_id
		 WHERE ($1 = '' OR s.status = $1) AND ($3 = '' OR c.external_ref = $3) AND ($4 = '' OR s.provider = $4)
		   AND ($5::timestamptz IS NULL OR s.created_at >= $5) AND ($6::timestamptz IS NULL OR s.created_at < $6)
		 ORDER BY s.id DESC LIMIT $2`, f.Status, max(f.Limit, 1), f.CustomerRef, f.Provider, nullTime(f.From), nullTime(f.To))
	if err != nil {
		return nil, fmt.Errorf("list settlements: %w", err)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// StepRow is one step with its attempts.
type StepRow struct {
	ID        int64               `db:"id" json:"id"`
	Seq       int                 `db:"seq" json:"seq"`
	Kind      pipeline.Kind       `db:"kind" json:"kind"`
	Amount    int64               `db:"amount" json:"amount"`
	From      string              `db:"from_account" json:"from_account"`
	To        string              `db:"to_account" json:"to_account"`
	Status    pipeline.StepStatus `db:"status" json:"status"`
	Attempts  int                 `db:"attempts" json:"attempts"`
	LastError string              `db:"last_error" json:"last_error,omitempty"`
	UpdatedAt time.Time           `db:"updated_at" json:"updated_at"`
	DoneAt    *time.Time          `db:"done_at" json:"done_at,omitempty"`
	Transfers []AttemptRow        `db:"-" json:"transfers"`
}

// AttemptRow is one transfer attempt and what the bank answered.
type AttemptRow struct {
	StepID      int64                  `db:"step_id" json:"-"`
	Attempt     int                    `db:"attempt" json:"attempt"`
	Key         string                 `db:"idempotency_key" json:"idempotency_key"`
	Status      pipeline.AttemptStatus `db:"status" json:"status"`
	BankRef     string                 `db:"bank_ref" json:"bank_ref,omitempty"`
	BankCode    string                 `db:"bank_code" json:"bank_code,omitempty"`
	BankMessage string                 `db:"bank_message" json:"bank_message,omitempty"`
	CreatedAt   time.Time              `db:"created_at" json:"created_at"`
}

// SettlementDetail is a settlement with its step timeline.
type SettlementDetail struct {
	SettlementRow
	Steps []StepRow `json:"steps"`
}

// ErrNotFound is returned when a row asked for by ID does not exist.
var ErrNotFound = errors.New("not found")

// GetSettlement returns one settlement with its steps and attempts.
func (db *DB) GetSettlement(ctx context.Context, id int64) (SettlementDetail, error) {
	var d SettlementDetail
	err := db.x.GetContext(ctx, &d.SettlementRow, `
		SELECT `+settlementColumns+`
		  FROM settlements s JOIN customers c ON c.id = s.customer_id WHERE s.id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("settlement %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("settlement %d: %w", id, err)
	}
	if err := db.x.SelectContext(ctx, &d.Steps, `
		SELECT id, seq, kind, amount, from_account, to_account, status, attempts, last_error, updated_at, done_at
		  FROM steps WHERE settlement_id = $1 ORDER BY seq`, id); err != nil {
		return d, fmt.Errorf("settlement %d: steps: %w", id, err)
	}
	var attempts []AttemptRow
	if err := db.x.SelectContext(ctx, &attempts, `
		SELECT t.step_id, t.attempt, t.idempotency_key, t.status, t.bank_ref, t.bank_code, t.bank_message, t.created_at
		  FROM transfers t JOIN steps st ON st.id = t.step_id
		 WHERE st.settlement_id = $1 ORDER BY t.step_id, t.attempt`, id); err != nil {
		return d, fmt.Errorf("settlement %d: transfers: %w", id, err)
	}
	for i := range d.Steps {
		d.Steps[i].Transfers = []AttemptRow{}
		for _, a := range attempts {
			if a.StepID == d.Steps[i].ID {
				d.Steps[i].Transfers = append(d.Steps[i].Transfers, a)
			}
		}
	}
	return d, nil
}

// StatusCounts returns how many settlements are in each status.
func (db *DB) StatusCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := db.x.QueryxContext(ctx, `SELECT status, count(*) FROM settlements GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count settlements: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}
