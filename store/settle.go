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
	// Hold keeps the VA from being polled for this long after (see
	// virtual_accounts.held_until); 0 holds nothing.
	Hold time.Duration
}

// Created names a settlement just written and its first step.
type Created struct {
	SettlementID int64
	HeadStepID   int64
}

// createSettlementQuery writes a settlement in one statement: the VA's
// settle version moves ($1 VA, $2 version read with the balance: a moved
// version means the balance is stale and nothing is written), the
// settlement ($3.. its amounts), all its steps (the first READY, the rest
// PENDING) and the ledger journal of the deposit; the VA is held from
// polling for $20 ms. It returns the
// settlement and its first step, or no row when the read was stale.
var createSettlementQuery = `
	WITH va AS (
		UPDATE virtual_accounts SET settle_version = settle_version + 1,
		       held_until = now() + $20 * interval '1 millisecond'
		 WHERE id = $1 AND settle_version = $2 RETURNING id),
	settlement AS (
		INSERT INTO settlements (customer_id, va_id, provider, amount, currency, repay, hold, fee, payout)
		SELECT $3, va.id, $4, $5, $6, $7, $8, $9, $10 FROM va RETURNING id),
	step AS (` + insertStepsSQL("s.id", "$6", "$4", "settlement s,", 11) + `),
	journal AS (
		INSERT INTO journals (kind, settlement_id) SELECT 'deposit', s.id FROM settlement s RETURNING id),
	posted AS (
		INSERT INTO postings (journal_id, account, amount, currency)
		SELECT j.id, u.account, u.amount, $6 FROM journal j, unnest($18::text[], $19::bigint[]) AS u(account, amount))
	SELECT s.id, (SELECT id FROM step ORDER BY seq LIMIT 1) FROM settlement s`

// CreateSettlement writes the settlement, all its steps (the first READY,
// the rest PENDING) and the ledger journal of the deposit in one
// statement. It returns ErrStale when the VA was settled since it was read
// or the customer has an open settlement.
func (db *DB) CreateSettlement(ctx context.Context, ns NewSettlement) (Created, error) {
	t, p := ns.Target, ns.Plan
	var ledger postingArrays
	ledger.add(pipeline.DepositPostings(t.Provider, t.Number, p.Deposit.Amount))
	args := append([]any{t.VAID, t.SettleVersion,
		t.CustomerID, t.Provider, p.Deposit.Amount, p.Deposit.Currency, p.Repay, p.Hold, p.Fee, p.Payout},
		stepArrays(ns.Steps).args()...)
	var out Created
	err := db.scanPrepared(ctx, createSettlementQuery, append(args, pq.Array(ledger.accounts), pq.Array(ledger.amounts), ns.Hold.Milliseconds()),
		&out.SettlementID, &out.HeadStepID)
	if errors.Is(err, sql.ErrNoRows) || isUniqueViolation(err, "settlements_one_open_per_customer") {
		return Created{}, ErrStale
	}
	if err != nil {
		return Created{}, fmt.Errorf("create settlement for customer %d: %w", ns.Target.CustomerID, err)
	}
	return out, nil
}

// stepColumns are steps as the arrays a multi-row insert unnests.
type stepColumns struct {
	seqs, amounts, reverses    []int64
	kinds, froms, tos, holders []string
}

func stepArrays(steps []pipeline.StepSpec) stepColumns {
	var c stepColumns
	for _, s := range steps {
		c.seqs, c.kinds, c.amounts, c.reverses = append(c.seqs, int64(s.Seq)), append(c.kinds, string(s.Kind)),
			append(c.amounts, s.Amount), append(c.reverses, s.Reverses)
		c.froms, c.tos, c.holders = append(c.froms, s.From), append(c.tos, s.To), append(c.holders, s.ToHolder)
	}
	return c
}

// postingArrays are postings as the arrays a multi-row insert unnests.
type postingArrays struct {
	accounts []string
	amounts  []int64
}

func (a *postingArrays) add(ps []pipeline.Posting) {
	for _, p := range ps {
		a.accounts, a.amounts = append(a.accounts, p.Account), append(a.amounts, p.Amount)
	}
}

// insertStepsSQL inserts a settlement's steps from seven arrays, the
// parameters $p to $p+6 (stepColumns' seqs, kinds, amounts, froms, tos,
// holders, reverses): the first step READY, the others PENDING. The
// settlement, currency and provider are SQL expressions; from joins the
// settlement's row source, if any.
func insertStepsSQL(settlement, currency, provider, from string, p int) string {
	return fmt.Sprintf(`
		INSERT INTO steps (settlement_id, seq, kind, amount, currency, provider, from_account, to_account, to_holder, status, reverses)
		SELECT %s, u.seq, u.kind, u.amount, %s, %s, u.from_account, u.to_account, u.to_holder,
		       CASE WHEN u.n = 1 THEN 'READY' ELSE 'PENDING' END, NULLIF(u.reverses, 0)
		  FROM %s unnest($%d::smallint[], $%d::text[], $%d::bigint[], $%d::text[], $%d::text[], $%d::text[], $%d::bigint[])
		       WITH ORDINALITY AS u(seq, kind, amount, from_account, to_account, to_holder, reverses, n)
		RETURNING id, seq`, settlement, currency, provider, from, p, p+1, p+2, p+3, p+4, p+5, p+6)
}

// args are the arrays insertStepsSQL unnests.
func (c stepColumns) args() []any {
	return []any{pq.Array(c.seqs), pq.Array(c.kinds), pq.Array(c.amounts), pq.Array(c.froms), pq.Array(c.tos),
		pq.Array(c.holders), pq.Array(c.reverses)}
}

// insertSteps writes steps of a settlement in a transaction and returns the
// first one.
func insertSteps(ctx context.Context, tx *sqlx.Tx, settlementID int64, provider, currency string, steps []pipeline.StepSpec) (int64, error) {
	var head int64
	err := tx.QueryRowxContext(ctx, `WITH ins AS (`+insertStepsSQL("$1", "$2", "$3", "", 4)+`)
		SELECT id FROM ins ORDER BY seq LIMIT 1`,
		append([]any{settlementID, currency, provider}, stepArrays(steps).args()...)...).Scan(&head)
	return head, err
}
