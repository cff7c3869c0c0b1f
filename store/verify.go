package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/settle-dev/settle/pipeline"
)

// Violation is one broken invariant.
type Violation struct {
	Check        string `db:"check_name" json:"check"`
	SettlementID int64  `db:"settlement_id" json:"settlement_id,omitempty"`
	Detail       string `db:"detail" json:"detail"`
}

// invariants are SQL queries that each return the rows breaking one rule.
// Steps that move no money (afterMoney: NOTIFY) run after their settlement
// is SETTLED: a SETTLED settlement may have one READY, RUNNING or DEAD, and
// such a step neither keeps a settlement RUNNING nor fails it.
var invariants = []struct{ name, query string }{
	{"ledger_balanced", `
		SELECT 0::bigint AS settlement_id, 'ledger sums to ' || sum(amount) || ' ' || currency AS detail
		  FROM postings GROUP BY currency HAVING sum(amount) <> 0`},
	{"journal_balanced", `
		SELECT j.settlement_id, 'journal ' || j.id || ' sums to ' || sum(p.amount) AS detail
		  FROM journals j JOIN postings p ON p.journal_id = j.id
		 GROUP BY j.id, j.settlement_id HAVING sum(p.amount) <> 0`},
	{"va_ledger_mirrors_settlements", `
		WITH balance AS (SELECT account, currency, sum(amount) AS amount FROM postings GROUP BY account, currency),
		latest AS (SELECT DISTINCT ON (va_id) va_id, id, amount FROM settlements ORDER BY va_id, id DESC),
		va AS (
			SELECT va.id, va.provider || ':' || va.number AS account, va.currency, coalesce(b.amount, 0) AS held,
			       l.id AS settlement_id, coalesce(l.amount, 0) AS deposit
			  FROM virtual_accounts va
			  LEFT JOIN balance b ON b.account = va.provider || ':' || va.number AND b.currency = va.currency
			  LEFT JOIN latest l ON l.va_id = va.id),
		moved AS (
			SELECT va.id, coalesce(sum(p.amount), 0) AS amount
			  FROM va JOIN steps st ON st.settlement_id = va.settlement_id
			  JOIN journals j ON j.step_id = st.id JOIN postings p ON p.journal_id = j.id AND p.account = va.account
			 GROUP BY va.id)
		SELECT coalesce(va.settlement_id, 0) AS settlement_id,
		       'the ledger holds ' || va.held || ' ' || va.currency || ' in VA ' || va.id || ', but its latest settlement'
		       || CASE WHEN va.settlement_id IS NULL THEN ' (none) leaves 0'
		               ELSE ' found ' || va.deposit || ' there and moved ' || coalesce(m.amount, 0) END
		       || ': a deposit counted twice, or money the ledger lost' AS detail
		  FROM va LEFT JOIN moved m ON m.id = va.id
		 WHERE va.held <> va.deposit + coalesce(m.amount, 0)`},
	{"ledger_matches_movements", `
		WITH moved AS (
			SELECT st.provider || ':' || st.to_account AS account, st.currency, t.amount
			  FROM transfers t JOIN steps st ON st.id = t.step_id WHERE t.status = 'SUCCEEDED'
			UNION ALL
			SELECT st.provider || ':' || st.from_account, st.currency, -t.amount
			  FROM transfers t JOIN steps st ON st.id = t.step_id WHERE t.status = 'SUCCEEDED'
			UNION ALL
			SELECT s.provider || ':' || va.number, s.currency, s.amount - s.carried
			  FROM settlements s JOIN virtual_accounts va ON va.id = s.va_id WHERE s.amount > s.carried
			UNION ALL
			SELECT '` + pipeline.ExternalPayroll + `', s.currency, s.carried - s.amount FROM settlements s WHERE s.amount > s.carried),
		want AS (SELECT account, currency, sum(amount) AS amount FROM moved GROUP BY account, currency),
		have AS (SELECT account, currency, sum(amount) AS amount FROM postings GROUP BY account, currency)
		SELECT 0::bigint AS settlement_id,
		       'ledger account ' || split_part(coalesce(h.account, w.account), ':', 1) || ':****' || right(coalesce(h.account, w.account), 4)
		       || ' holds ' || coalesce(h.amount, 0) || ' ' || coalesce(h.currency, w.currency)
		       || ' but the transfers and deposits recorded for it sum to ' || coalesce(w.amount, 0) AS detail
		  FROM want w FULL JOIN have h ON h.account = w.account AND h.currency = w.currency
		 WHERE coalesce(h.amount, 0) <> coalesce(w.amount, 0)`},
	{"legs_sum_to_deposit", `
		SELECT s.id AS settlement_id,
		       'deposit ' || s.amount || ' but split legs sum to ' || coalesce(sum(st.amount) FILTER (WHERE st.kind NOT IN ('SWEEP', 'NOTIFY')), 0)
		       || ' and SWEEP moves ' || coalesce(sum(st.amount) FILTER (WHERE st.kind = 'SWEEP'), 0) AS detail
		  FROM settlements s JOIN steps st ON st.settlement_id = s.id AND st.kind <> 'REVERSE'
		 GROUP BY s.id, s.amount
		HAVING coalesce(sum(st.amount) FILTER (WHERE st.kind NOT IN ('SWEEP', 'NOTIFY')), 0) <> s.amount
		    OR coalesce(sum(st.amount) FILTER (WHERE st.kind = 'SWEEP'), 0) <> s.amount`},
	{"one_success_per_step", `
		SELECT st.settlement_id, 'step ' || st.id || ' has ' || count(*) || ' successful transfers' AS detail
		  FROM transfers t JOIN steps st ON st.id = t.step_id
		 WHERE t.status = 'SUCCEEDED' GROUP BY st.id, st.settlement_id HAVING count(*) > 1`},
	{"done_step_has_transfer_and_journal", `
		SELECT st.settlement_id, 'DONE step ' || st.id || ' (' || st.kind || ') has '
		       || (SELECT count(*) FROM transfers t WHERE t.step_id = st.id AND t.status = 'SUCCEEDED')
		       || ' successful transfers and ' || (SELECT count(*) FROM journals j WHERE j.step_id = st.id) || ' journals' AS detail
		  FROM steps st
		 WHERE st.kind <> 'NOTIFY' AND st.status = 'DONE'
		   AND ((SELECT count(*) FROM transfers t WHERE t.step_id = st.id AND t.status = 'SUCCEEDED') <> 1
		     OR (SELECT count(*) FROM journals j WHERE j.step_id = st.id) <> 1)`},
	{"no_money_without_done_step", `
		SELECT st.settlement_id, st.status || ' step ' || st.id || ' has a successful transfer or a journal' AS detail
		  FROM steps st
		 WHERE st.status <> 'DONE'
		   AND (EXISTS (SELECT 1 FROM transfers t WHERE t.step_id = st.id AND t.status = 'SUCCEEDED')
		     OR EXISTS (SELECT 1 FROM journals j WHERE j.step_id = st.id))`},
	{"steps_in_order", `
		SELECT a.settlement_id, 'step ' || a.seq || ' is DONE but step ' || b.seq || ' before it is ' || b.status AS detail
		  FROM steps a JOIN steps b ON b.settlement_id = a.settlement_id AND b.seq < a.seq AND (a.kind = 'REVERSE') = (b.kind = 'REVERSE')
		 WHERE a.status = 'DONE' AND b.status <> 'DONE'`},
	{"running_has_live_step", `
		SELECT s.id AS settlement_id, s.status || ' settlement has no READY or RUNNING step that moves money' AS detail
		  FROM settlements s
		 WHERE s.status IN (` + inFlightStatuses + `)
		   AND NOT EXISTS (SELECT 1 FROM steps st WHERE st.settlement_id = s.id AND st.status IN ('READY', 'RUNNING')
		                      AND st.kind NOT IN (` + afterMoney + `))`},
	{"settled_all_done", `
		SELECT s.id AS settlement_id, 'SETTLED settlement has ' || count(*) || ' steps not DONE: '
		       || string_agg(st.kind || ' ' || st.status, ', ' ORDER BY st.seq) AS detail
		  FROM settlements s JOIN steps st ON st.settlement_id = s.id
		 WHERE s.status = 'SETTLED' AND st.status <> 'DONE'
		   AND NOT (st.kind IN (` + afterMoney + `) AND st.status IN ('READY', 'RUNNING', 'DEAD'))
		 GROUP BY s.id`},
	{"compensated_all_reversed", `
		SELECT s.id AS settlement_id, 'COMPENSATED settlement left step ' || st.id || ' (' || st.kind || ') unreversed' AS detail
		  FROM settlements s JOIN steps st ON st.settlement_id = s.id
		 WHERE s.status = 'COMPENSATED' AND st.status = 'DONE' AND st.kind NOT IN ('NOTIFY', 'REVERSE')
		   AND NOT EXISTS (SELECT 1 FROM steps r WHERE r.reverses = st.id AND r.status = 'DONE')`},
	{"cancelled_moved_nothing", `
		SELECT s.id AS settlement_id, 'CANCELLED settlement has DONE step ' || st.id || ' (' || st.kind || ')' AS detail
		  FROM settlements s JOIN steps st ON st.settlement_id = s.id
		 WHERE s.status = 'CANCELLED' AND st.status = 'DONE' AND st.kind <> 'NOTIFY'`},
	{"failed_has_failed_step", `
		SELECT s.id AS settlement_id, 'FAILED settlement has no FAILED or DEAD step that moves money' AS detail
		  FROM settlements s
		 WHERE s.status = 'FAILED'
		   AND NOT EXISTS (SELECT 1 FROM steps st WHERE st.settlement_id = s.id AND st.status IN ('FAILED', 'DEAD')
		                      AND st.kind NOT IN (` + afterMoney + `))`},
	{pipeline.CheckAuditChain, auditChainQuery},
}

// InvariantChecks names the checks Verify runs, in its order.
func InvariantChecks() []string {
	names := make([]string, len(invariants))
	for i, inv := range invariants {
		names[i] = inv.name
	}
	return names
}

// Verify checks every invariant the database can check on its own and
// returns each violation found. An empty result means all hold. The checks
// read every settlement: they may run for the long statement timeout.
func (db *DB) Verify(ctx context.Context) ([]Violation, error) {
	out := []Violation{}
	err := db.readLong(ctx, false, func(tx *sqlx.Tx) error {
		for _, inv := range invariants {
			var vs []Violation
			if err := tx.SelectContext(ctx, &vs, `SELECT '`+inv.name+`' AS check_name, q.* FROM (`+inv.query+`) q`); err != nil {
				return fmt.Errorf("verify %s: %w", inv.name, err)
			}
			out = append(out, vs...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LiveTransferKeys returns the idempotency keys of the attempts at the
// provider that may have moved money: SENDING, UNKNOWN or SUCCEEDED.
func (db *DB) LiveTransferKeys(ctx context.Context, provider string) (map[string]bool, error) {
	var keys []string
	if err := db.x.SelectContext(ctx, &keys, `
		SELECT idempotency_key FROM transfers WHERE provider = $1 AND status IN ('SENDING', 'UNKNOWN', 'SUCCEEDED')`,
		provider); err != nil {
		return nil, fmt.Errorf("list live transfers: %w", err)
	}
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[k] = true
	}
	return out, nil
}

// SucceededTransfers lists every transfer attempt at a provider recorded as
// SUCCEEDED, for comparison with the bank's journal.
func (db *DB) SucceededTransfers(ctx context.Context, provider string) ([]pipeline.BankTransfer, error) {
	var out []pipeline.BankTransfer
	err := db.x.SelectContext(ctx, &out, `
		SELECT t.idempotency_key AS "key", st.from_account AS "from", st.to_account AS "to", t.amount AS "amount"
		  FROM transfers t JOIN steps st ON st.id = t.step_id
		 WHERE t.status = 'SUCCEEDED' AND t.provider = $1 ORDER BY t.id`, provider)
	if err != nil {
		return nil, fmt.Errorf("list succeeded transfers: %w", err)
	}
	return out, nil
}
