package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settle-dev/settle/pipeline"
)

// PollTarget is a virtual account whose customer has no open settlement,
// with what is needed to plan a settlement for it.
type PollTarget struct {
	VAID          int64  `db:"va_id"`
	CustomerID    int64  `db:"customer_id"`
	Provider      string `db:"provider"`
	Number        string `db:"number"`
	Currency      string `db:"currency"`
	SettleVersion int64  `db:"settle_version"`
	PayoutAccount string `db:"payout_account"`
	PayoutHolder  string `db:"payout_holder_name"`
	Outstanding   int64  `db:"outstanding"`
	Hold          int64  `db:"hold_amount"`
	FeeFixed      int64  `db:"fee_fixed"`
	FeeBPS        int64  `db:"fee_bps"`
}

// Obligations returns the target's obligations for planning.
func (t PollTarget) Obligations() pipeline.Obligations {
	return pipeline.Obligations{Outstanding: t.Outstanding, Hold: t.Hold, FeeFixed: t.FeeFixed, FeeBPS: t.FeeBPS}
}

// Payee returns where the target's customer is paid.
func (t PollTarget) Payee() pipeline.Payee {
	return pipeline.Payee{Account: t.PayoutAccount, Holder: t.PayoutHolder}
}

// PollTargets pages through active virtual accounts of active customers with
// no open settlement, by ascending VA ID after afterID.
func (db *DB) PollTargets(ctx context.Context, afterID int64, limit int) ([]PollTarget, error) {
	var out []PollTarget
	err := db.x.SelectContext(ctx, &out, `
		SELECT va.id AS va_id, va.customer_id, va.provider, va.number, va.currency, va.settle_version,
		       c.payout_account, c.payout_holder_name,
		       o.outstanding, o.hold_amount, o.fee_fixed, o.fee_bps
		  FROM virtual_accounts va
		  JOIN customers c ON c.id = va.customer_id
		  JOIN obligations o ON o.customer_id = va.customer_id
		 WHERE va.id > $1 AND va.active AND c.status = 'ACTIVE'
		   AND NOT EXISTS (SELECT 1 FROM settlements s
		                    WHERE s.customer_id = va.customer_id AND s.status IN ('RUNNING', 'FAILED', 'COMPENSATING'))
		 ORDER BY va.id
		 LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list poll targets: %w", err)
	}
	return out, nil
}

// ErrStale is returned by CreateSettlement when the VA's settle version
// moved since it was read (another poll settled it) or the customer already
// has an open settlement: the balance read is stale and must be dropped.
var ErrStale = errors.New("balance read is stale: the virtual account was settled meanwhile")

// NewSettlement is a settlement about to be written with all its steps.
type NewSettlement struct {
	Target PollTarget
	Plan   pipeline.Plan
	Steps  []pipeline.StepSpec
}

// Created names a settlement just written and its first step.
type Created struct {
	SettlementID int64
	HeadStepID   int64
}

// CreateSettlement writes the settlement, all its steps (the first READY,
// the rest PENDING) and the ledger journal of the deposit in one
// transaction. It returns ErrStale when the VA was settled since it was read.
func (db *DB) CreateSettlement(ctx context.Context, ns NewSettlement) (Created, error) {
	var out Created
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		t, p := ns.Target, ns.Plan
		res, err := tx.ExecContext(ctx, `
			UPDATE virtual_accounts SET settle_version = settle_version + 1
			 WHERE id = $1 AND settle_version = $2`, t.VAID, t.SettleVersion)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrStale
		}
		err = tx.QueryRowxContext(ctx, `
			INSERT INTO settlements (customer_id, va_id, provider, amount, currency, repay, hold, fee, payout)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
			t.CustomerID, t.VAID, t.Provider, p.Deposit.Amount, p.Deposit.Currency, p.Repay, p.Hold, p.Fee, p.Payout).
			Scan(&out.SettlementID)
		if isUniqueViolation(err, "settlements_one_open_per_customer") {
			return ErrStale
		}
		if err != nil {
			return err
		}
		if out.HeadStepID, err = insertSteps(ctx, tx, out.SettlementID, t.Provider, p.Deposit.Currency, ns.Steps); err != nil {
			return err
		}
		return insertJournal(ctx, tx, "deposit", out.SettlementID, 0, p.Deposit.Currency,
			pipeline.DepositPostings(t.Provider, t.Number, p.Deposit.Amount))
	})
	if errors.Is(err, ErrStale) {
		return Created{}, err
	}
	if err != nil {
		return Created{}, fmt.Errorf("create settlement for customer %d: %w", ns.Target.CustomerID, err)
	}
	return out, nil
}

// insertSteps writes the steps in one statement and returns the head's ID.
func insertSteps(ctx context.Context, tx *sqlx.Tx, settlementID int64, provider, currency string, steps []pipeline.StepSpec) (int64, error) {
	n := len(steps)
	seqs, kinds, amounts, reverses := make([]int64, n), make([]string, n), make([]int64, n), make([]int64, n)
	froms, tos, holders, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, s := range steps {
		seqs[i], kinds[i], amounts[i], reverses[i] = int64(s.Seq), string(s.Kind), s.Amount, s.Reverses
		froms[i], tos[i], holders[i] = s.From, s.To, s.ToHolder
		statuses[i] = string(pipeline.StepPending)
		if i == 0 {
			statuses[i] = string(pipeline.StepReady)
		}
	}
	var head int64
	err := tx.QueryRowxContext(ctx, `
		WITH ins AS (
			INSERT INTO steps (settlement_id, seq, kind, amount, currency, provider, from_account, to_account, to_holder, status, reverses)
			SELECT $1, u.seq, u.kind, u.amount, $2, $3, u.from_account, u.to_account, u.to_holder, u.status, NULLIF(u.reverses, 0)
			  FROM unnest($4::smallint[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[])
			       AS u(seq, kind, amount, from_account, to_account, to_holder, status, reverses)
			RETURNING id, seq)
		SELECT id FROM ins ORDER BY seq LIMIT 1`,
		settlementID, currency, provider, pq.Array(seqs), pq.Array(kinds), pq.Array(amounts),
		pq.Array(froms), pq.Array(tos), pq.Array(holders), pq.Array(statuses), pq.Array(reverses)).Scan(&head)
	return head, err
}

// insertJournal writes one balanced journal; the database checks the
// balance at commit.
func insertJournal(ctx context.Context, tx *sqlx.Tx, kind string, settlementID, stepID int64, currency string, ps []pipeline.Posting) error {
	accounts, amounts := make([]string, len(ps)), make([]int64, len(ps))
	for i, p := range ps {
		accounts[i], amounts[i] = p.Account, p.Amount
	}
	_, err := tx.ExecContext(ctx, `
		WITH j AS (INSERT INTO journals (kind, settlement_id, step_id) VALUES ($1, $2, NULLIF($3::bigint, 0)) RETURNING id)
		INSERT INTO postings (journal_id, account, amount, currency)
		SELECT j.id, u.account, u.amount, $4 FROM j, unnest($5::text[], $6::bigint[]) AS u(account, amount)`,
		kind, settlementID, stepID, currency, pq.Array(accounts), pq.Array(amounts))
	return err
}
