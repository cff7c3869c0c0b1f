package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
		                    WHERE s.customer_id = va.customer_id AND s.status IN (`+openStatuses+`))
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

// ErrBelowLedger is returned by CreateSettlement when the bank shows less
// in the VA than the ledger holds there (the deposit of a cancelled or
// compensated settlement): money left the VA outside settle, or the ledger
// is wrong. Nothing is written; settle reconcile shows the difference.
var ErrBelowLedger = errors.New("the virtual account's balance is below what the ledger holds there")

// NewSettlement is a settlement about to be written with all its steps.
type NewSettlement struct {
	Target PollTarget
	Plan   pipeline.Plan
	Steps  []pipeline.StepSpec
	// Hold keeps the VA from being polled for this long after (see
	// virtual_accounts.held_until); 0 holds nothing.
	Hold time.Duration
}

// Created names a settlement just written and its first step. A zero
// SettlementID is a balance not settled: stale, or, when LedgerHolds is
// more than the balance, a VA whose bank balance is below what the ledger
// holds there.
type Created struct {
	SettlementID int64
	HeadStepID   int64
	// LedgerHolds is what the ledger already held in the VA: money of a
	// cancelled or compensated settlement, which this one took over (its
	// deposit journal posts only the rest).
	LedgerHolds int64
}

// BelowLedger reports whether the balance was not settled because the bank
// holds less in the VA than the ledger says: money left the VA outside
// settle, or the ledger is wrong. Nothing was written.
func (c Created) BelowLedger() bool { return c.SettlementID == 0 && c.LedgerHolds > 0 }

// createSettlementsQuery writes a batch of settlements in one statement.
// Each settlement's VA settle version moves ($1 VAs, $2 versions read with
// the balances: a moved version means the balance is stale) unless the
// customer has an open settlement or the ledger holds more in the VA ($21
// its ledger account) than the balance; for each VA that moved, the
// settlement ($3..$10 its customer and amounts; what the ledger holds in
// the VA is carried over), its steps ($12..$20: the batch position they
// belong to, stepColumns' arrays and which one is first, READY; the rest
// PENDING) and, for the money new to the ledger, the journal of its
// deposit from $22 are written, and the VA is held from polling for its $11
// ms. It returns a row for each settlement written: its position in the
// batch (from 1), its ID, its first step's and what it carried over; and a
// row with zero IDs for each balance below what the ledger holds.
var createSettlementsQuery = `
	WITH input AS (
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[],
		                     $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $21::text[])
		       WITH ORDINALITY AS i(va_id, version, customer_id, provider, amount, currency, repay, hold, fee, payout, hold_ms,
		                            va_account, n)),
	ledger AS (
		SELECT i.n, coalesce((SELECT sum(p.amount) FROM postings p WHERE p.account = i.va_account AND p.currency = i.currency), 0)
		       AS holds
		  FROM input i),
	va AS (
		UPDATE virtual_accounts v SET settle_version = v.settle_version + 1,
		       held_until = now() + i.hold_ms * interval '1 millisecond'
		  FROM input i JOIN ledger l ON l.n = i.n
		 WHERE v.id = i.va_id AND v.settle_version = i.version AND l.holds <= i.amount
		   AND NOT EXISTS (SELECT 1 FROM settlements o WHERE o.customer_id = i.customer_id
		                   AND o.status IN (` + openStatuses + `))
		RETURNING v.id),
	settlement AS (
		INSERT INTO settlements (customer_id, va_id, provider, amount, currency, repay, hold, fee, payout, carried)
		SELECT i.customer_id, i.va_id, i.provider, i.amount, i.currency, i.repay, i.hold, i.fee, i.payout, l.holds
		  FROM input i JOIN va ON va.id = i.va_id JOIN ledger l ON l.n = i.n ORDER BY i.n
		RETURNING id, va_id, provider, currency, carried, amount - carried AS fresh),
	made AS (
		SELECT s.id, s.provider, s.currency, s.carried, s.fresh, i.va_account, i.n
		  FROM settlement s JOIN input i ON i.va_id = s.va_id),
	step AS (
		INSERT INTO steps (settlement_id, seq, kind, amount, currency, provider, from_account, to_account, to_holder, status, reverses)
		SELECT m.id, u.seq, u.kind, u.amount, m.currency, m.provider, u.from_account, u.to_account, u.to_holder,
		       CASE WHEN u.first THEN 'READY' ELSE 'PENDING' END, NULLIF(u.reverses, 0)
		  FROM unnest($12::int[], $13::smallint[], $14::text[], $15::bigint[], $16::text[], $17::text[], $18::text[],
		              $19::bigint[], $20::bool[])
		       AS u(owner, seq, kind, amount, from_account, to_account, to_holder, reverses, first)
		  JOIN made m ON m.n = u.owner
		RETURNING id, settlement_id, status),
	journal AS (
		INSERT INTO journals (kind, settlement_id) SELECT 'deposit', m.id FROM made m WHERE m.fresh > 0
		RETURNING id, settlement_id),
	posted AS (
		INSERT INTO postings (journal_id, account, amount, currency)
		SELECT j.id, p.account, p.amount, m.currency
		  FROM made m JOIN journal j ON j.settlement_id = m.id
		 CROSS JOIN LATERAL (VALUES ($22::text, -m.fresh), (m.va_account, m.fresh)) AS p(account, amount))
	SELECT m.n, m.id, st.id, m.carried FROM made m JOIN step st ON st.settlement_id = m.id AND st.status = 'READY'
	UNION ALL
	SELECT i.n, 0, 0, l.holds FROM input i JOIN ledger l ON l.n = i.n WHERE l.holds > i.amount`

// CreateSettlement writes one settlement as CreateSettlements does. It
// returns ErrStale when the VA was settled since it was read or the
// customer has an open settlement, and ErrBelowLedger when the balance is
// below what the ledger holds in the VA.
func (db *DB) CreateSettlement(ctx context.Context, ns NewSettlement) (Created, error) {
	out, err := db.CreateSettlements(ctx, []NewSettlement{ns})
	switch {
	case err != nil:
		return Created{}, err
	case out[0].BelowLedger():
		return out[0], fmt.Errorf("%w: the bank shows %d, the ledger holds %d", ErrBelowLedger, ns.Plan.Deposit.Amount, out[0].LedgerHolds)
	case out[0].SettlementID == 0:
		return Created{}, ErrStale
	}
	return out[0], nil
}

// CreateSettlements writes a batch of settlements, each with all its steps
// (the first READY, the rest PENDING) and the ledger journal of its
// deposit, in one statement. Each settles the VA's whole balance and takes
// over what the ledger already holds in the VA; its deposit journal posts
// only the rest, so a deposit is counted once (ADR 0005). The result has an
// entry for each of the batch, in its order; an entry without a settlement
// is not written: a stale balance read (its VA was settled since it was
// read or its customer has an open settlement), or one below what the
// ledger holds (BelowLedger). Each VA may appear once in a batch.
//
// Two settlements for one customer racing in (one from each of the
// customer's VAs, during a migration between providers) break the one open
// settlement per customer rule and fail the whole statement; the batch is
// then written one settlement at a time, and the one that comes second is
// stale.
func (db *DB) CreateSettlements(ctx context.Context, batch []NewSettlement) ([]Created, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	args, err := settlementArgs(batch)
	if err != nil {
		return nil, err
	}
	out := make([]Created, len(batch))
	err = db.runPrepared(ctx, createSettlementsQuery, func(stmt *sqlx.Stmt) error {
		clear(out)
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n int
			var c Created
			if err := rows.Scan(&n, &c.SettlementID, &c.HeadStepID, &c.LedgerHolds); err != nil {
				return err
			}
			out[n-1] = c
		}
		return rows.Err()
	})
	switch {
	case err == nil:
		if slices.ContainsFunc(out, func(c Created) bool { return c.SettlementID != 0 }) {
			db.hook(pipeline.PointAfterSettlementsCommit)
		}
		return out, nil
	case !isUniqueViolation(err, "settlements_one_open_per_customer"):
		return nil, fmt.Errorf("create %d settlements (the first for customer %d): %w", len(batch), batch[0].Target.CustomerID, err)
	case len(batch) == 1:
		return []Created{{}}, nil // the customer's other settlement came first
	}
	for i := range batch {
		one, err := db.CreateSettlements(ctx, batch[i:i+1])
		if err != nil {
			return nil, err
		}
		out[i] = one[0]
	}
	return out, nil
}

// settlementArgs are a batch as the arrays createSettlementsQuery unnests.
func settlementArgs(batch []NewSettlement) ([]any, error) {
	n := len(batch)
	vas, versions, customers := make([]int64, n), make([]int64, n), make([]int64, n)
	providers, currencies := make([]string, n), make([]string, n)
	amounts, repays, holds, fees, payouts := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	var steps stepColumns
	var stepOwners []int64
	var firsts []bool
	vaAccounts, holdMS := make([]string, n), make([]int64, n)
	seen := make(map[int64]bool, n)
	for i, ns := range batch {
		t, p := ns.Target, ns.Plan
		if seen[t.VAID] {
			return nil, fmt.Errorf("VA %d appears twice in one batch of settlements", t.VAID)
		}
		if len(ns.Steps) == 0 {
			return nil, fmt.Errorf("the settlement of VA %d has no steps; a deposit moves through one at least", t.VAID)
		}
		seen[t.VAID] = true
		vas[i], versions[i], customers[i], providers[i] = t.VAID, t.SettleVersion, t.CustomerID, t.Provider
		amounts[i], currencies[i], repays[i], holds[i], fees[i], payouts[i] = p.Deposit.Amount, p.Deposit.Currency, p.Repay, p.Hold, p.Fee, p.Payout
		holdMS[i] = ns.Hold.Milliseconds()
		for k, s := range ns.Steps {
			steps.add(s)
			stepOwners, firsts = append(stepOwners, int64(i+1)), append(firsts, k == 0)
		}
		vaAccounts[i] = pipeline.LedgerAccount(t.Provider, t.Number)
	}
	args := []any{pq.Array(vas), pq.Array(versions), pq.Array(customers), pq.Array(providers), pq.Array(amounts),
		pq.Array(currencies), pq.Array(repays), pq.Array(holds), pq.Array(fees), pq.Array(payouts), pq.Array(holdMS),
		pq.Array(stepOwners)}
	args = append(args, steps.args()...)
	return append(args, pq.Array(firsts), pq.Array(vaAccounts), pipeline.ExternalPayroll), nil
}

// stepColumns are steps as the arrays a multi-row insert unnests.
type stepColumns struct {
	seqs, amounts, reverses    []int64
	kinds, froms, tos, holders []string
}

func stepArrays(steps []pipeline.StepSpec) stepColumns {
	var c stepColumns
	for _, s := range steps {
		c.add(s)
	}
	return c
}

func (c *stepColumns) add(s pipeline.StepSpec) {
	c.seqs, c.kinds, c.amounts, c.reverses = append(c.seqs, int64(s.Seq)), append(c.kinds, string(s.Kind)),
		append(c.amounts, s.Amount), append(c.reverses, s.Reverses)
	c.froms, c.tos, c.holders = append(c.froms, s.From), append(c.tos, s.To), append(c.holders, s.ToHolder)
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

// args are the arrays insertStepsQuery and createSettlementsQuery unnest.
func (c stepColumns) args() []any {
	return []any{pq.Array(c.seqs), pq.Array(c.kinds), pq.Array(c.amounts), pq.Array(c.froms), pq.Array(c.tos),
		pq.Array(c.holders), pq.Array(c.reverses)}
}

// insertStepsQuery inserts steps of settlement $1 (currency $2, provider
// $3) from stepColumns' arrays ($4..$10): the first READY, the others
// PENDING. It returns the first.
const insertStepsQuery = `
	WITH ins AS (
		INSERT INTO steps (settlement_id, seq, kind, amount, currency, provider, from_account, to_account, to_holder, status, reverses)
		SELECT $1, u.seq, u.kind, u.amount, $2, $3, u.from_account, u.to_account, u.to_holder,
		       CASE WHEN u.n = 1 THEN 'READY' ELSE 'PENDING' END, NULLIF(u.reverses, 0)
		  FROM unnest($4::smallint[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[])
		       WITH ORDINALITY AS u(seq, kind, amount, from_account, to_account, to_holder, reverses, n)
		RETURNING id, seq)
	SELECT id FROM ins ORDER BY seq LIMIT 1`

// insertSteps writes steps of a settlement in a transaction and returns the
// first one.
func insertSteps(ctx context.Context, tx *sqlx.Tx, settlementID int64, provider, currency string, steps []pipeline.StepSpec) (int64, error) {
	var head int64
	err := tx.QueryRowxContext(ctx, insertStepsQuery,
		append([]any{settlementID, currency, provider}, stepArrays(steps).args()...)...).Scan(&head)
	return head, err
}
