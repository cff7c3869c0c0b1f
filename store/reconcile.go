package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settle-dev/settle/pipeline"
)

// Reconciliation's persistence: what the engine's records say at one moment
// (ReconcileSnapshot), the findings and their operators' decisions, the runs,
// and the statement cursors. Nothing here writes the ledger or moves money.

// ErrReconcileBusy is returned by LockReconcile when another reconciliation
// runs.
var ErrReconcileBusy = errors.New("another reconciliation is running")

// reconcileLockKey is the advisory lock that serializes reconciliations
// (the daily job of any replica and the operator's command).
const reconcileLockKey = `hashtext('settle.reconcile')`

// LockReconcile takes the reconciliation lock for the caller's run; release
// gives it back. It returns ErrReconcileBusy when another run holds it.
func (db *DB) LockReconcile(ctx context.Context) (release func(), err error) {
	conn, err := db.x.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+reconcileLockKey+`)`).Scan(&ok); err != nil || !ok {
		_ = conn.Close()
		if err == nil {
			err = ErrReconcileBusy
		}
		return nil, fmt.Errorf("reconcile lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+reconcileLockKey+`)`)
		_ = conn.Close()
	}, nil
}

// ReconcileSnapshot is the engine's side of one provider, read in one
// consistent snapshot.
type ReconcileSnapshot struct {
	AsOf     time.Time                 // the database's clock when it was read
	Ledger   map[string]int64          // ledger balance by bank account
	Expected []pipeline.EngineTransfer // succeeded attempts created at or after the window's start
	VAs      []string                  // every virtual account at the provider
	Stored   map[string]int64          // effects of findings that happened before the window, by account
	Currency map[string]string         // the ledger's currency by account
}

// attemptColumns reads an attempt as a pipeline.EngineTransfer.
const attemptColumns = `t.idempotency_key AS key, st.from_account AS "from", st.to_account AS "to", t.amount, t.status,
	t.created_at, CASE WHEN t.status = 'SUCCEEDED' THEN t.updated_at END AS succeeded_at,
	st.settlement_id, st.id AS step_id`

type attemptRow struct {
	Key          string                 `db:"key"`
	From         string                 `db:"from"`
	To           string                 `db:"to"`
	Amount       int64                  `db:"amount"`
	Status       pipeline.AttemptStatus `db:"status"`
	CreatedAt    time.Time              `db:"created_at"`
	SucceededAt  sql.NullTime           `db:"succeeded_at"`
	SettlementID int64                  `db:"settlement_id"`
	StepID       int64                  `db:"step_id"`
}

func (r attemptRow) transfer() pipeline.EngineTransfer {
	return pipeline.EngineTransfer{Key: r.Key, From: r.From, To: r.To, Amount: r.Amount, Status: r.Status,
		CreatedAt: r.CreatedAt, SucceededAt: r.SucceededAt.Time, SettlementID: r.SettlementID, StepID: r.StepID}
}

// ReconcileSnapshot reads, in one repeatable-read transaction, the ledger
// balances of every account at the provider, the attempts recorded as
// succeeded there since from, its virtual accounts, and the effects of the
// findings stored before from. Its statements may run for the long
// statement timeout.
func (db *DB) ReconcileSnapshot(ctx context.Context, provider string, from time.Time) (ReconcileSnapshot, error) {
	s := ReconcileSnapshot{Ledger: map[string]int64{}, Stored: map[string]int64{}, Currency: map[string]string{}}
	err := db.readLong(ctx, true, func(tx *sqlx.Tx) error {
		for _, read := range []func(context.Context, *sqlx.Tx, string, time.Time, *ReconcileSnapshot) error{
			readAsOf, readLedger, readExpected, readVAs, readStored,
		} {
			if err := read(ctx, tx, provider, from, &s); err != nil {
				return fmt.Errorf("reconcile snapshot of %s: %w", provider, err)
			}
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	return s, nil
}

func readAsOf(ctx context.Context, tx *sqlx.Tx, _ string, _ time.Time, s *ReconcileSnapshot) error {
	return tx.QueryRowxContext(ctx, `SELECT now()`).Scan(&s.AsOf)
}

func readLedger(ctx context.Context, tx *sqlx.Tx, provider string, _ time.Time, s *ReconcileSnapshot) error {
	rows, err := tx.QueryxContext(ctx, `
		SELECT substr(account, length($1) + 2) AS account, sum(amount), min(currency)
		  FROM postings WHERE left(account, length($1) + 1) = $1 || ':'
		 GROUP BY account`, provider)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var acc, cur string
		var sum int64
		if err := rows.Scan(&acc, &sum, &cur); err != nil {
			return err
		}
		s.Ledger[acc], s.Currency[acc] = sum, cur
	}
	return rows.Err()
}

func readExpected(ctx context.Context, tx *sqlx.Tx, provider string, from time.Time, s *ReconcileSnapshot) error {
	var rows []attemptRow
	if err := tx.SelectContext(ctx, &rows, `
		SELECT `+attemptColumns+`
		  FROM transfers t JOIN steps st ON st.id = t.step_id
		 WHERE t.provider = $1 AND t.status = 'SUCCEEDED' AND t.created_at >= $2
		 ORDER BY t.id`, provider, from); err != nil {
		return err
	}
	for _, r := range rows {
		s.Expected = append(s.Expected, r.transfer())
	}
	return nil
}

func readVAs(ctx context.Context, tx *sqlx.Tx, provider string, _ time.Time, s *ReconcileSnapshot) error {
	return tx.SelectContext(ctx, &s.VAs, `SELECT number FROM virtual_accounts WHERE provider = $1 ORDER BY id`, provider)
}

func readStored(ctx context.Context, tx *sqlx.Tx, provider string, from time.Time, s *ReconcileSnapshot) error {
	rows, err := tx.QueryxContext(ctx, `
		SELECT e.key, sum(e.value::bigint)
		  FROM reconcile_findings f, jsonb_each_text(f.effects) e
		 WHERE f.provider = $1 AND f.kind <> 'balance_drift' AND f.occurred_at < $2
		 GROUP BY e.key`, provider, from)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var acc string
		var sum int64
		if err := rows.Scan(&acc, &sum); err != nil {
			return err
		}
		s.Stored[acc] = sum
	}
	return rows.Err()
}

// EngineAttempts returns the provider's attempts with the given keys, as
// they stand now, by key. Keys the engine has no attempt for are absent.
func (db *DB) EngineAttempts(ctx context.Context, provider string, keys []string) (map[string]pipeline.EngineTransfer, error) {
	out := make(map[string]pipeline.EngineTransfer, len(keys))
	for start := 0; start < len(keys); start += 5000 {
		var rows []attemptRow
		if err := db.x.SelectContext(ctx, &rows, `
			SELECT `+attemptColumns+`
			  FROM transfers t JOIN steps st ON st.id = t.step_id
			 WHERE t.provider = $1 AND t.idempotency_key = ANY($2)`,
			provider, pq.Array(keys[start:min(start+5000, len(keys))])); err != nil {
			return nil, fmt.Errorf("look up attempts at %s: %w", provider, err)
		}
		for _, r := range rows {
			out[r.Key] = r.transfer()
		}
	}
	return out, nil
}

// StatementMark is a page boundary of an account's statement: every line
// before Cursor is at or before LastAt.
type StatementMark struct {
	Account string
	Cursor  string
	LastAt  time.Time
}

// StatementCursor returns the latest saved cursor of the account's
// statement before which every line is older than before, or "" (the
// statement's start) when none is saved.
func (db *DB) StatementCursor(ctx context.Context, provider, account string, before time.Time) (string, error) {
	var cursor string
	err := db.x.GetContext(ctx, &cursor, `
		SELECT cursor FROM reconcile_cursors
		 WHERE provider = $1 AND account = $2 AND last_at < $3
		 ORDER BY last_at DESC LIMIT 1`, provider, account, before)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("statement cursor of %s: %w", pipeline.AccountNumber(account), err)
	}
	return cursor, nil
}

// SaveStatementMarks keeps, per account and hour, the latest of the marks,
// and forgets marks older than 100 days.
func (db *DB) SaveStatementMarks(ctx context.Context, provider string, marks []StatementMark) error {
	if len(marks) == 0 {
		return nil
	}
	accounts, cursors, times := make([]string, len(marks)), make([]string, len(marks)), make([]time.Time, len(marks))
	for i, m := range marks {
		accounts[i], cursors[i], times[i] = m.Account, m.Cursor, m.LastAt
	}
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO reconcile_cursors AS c (provider, account, hour, cursor, last_at)
			SELECT DISTINCT ON (u.account, date_trunc('hour', u.last_at))
			       $1, u.account, date_trunc('hour', u.last_at), u.cursor, u.last_at
			  FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS u(account, cursor, last_at)
			 ORDER BY u.account, date_trunc('hour', u.last_at), u.last_at DESC
			ON CONFLICT (provider, account, hour) DO UPDATE SET cursor = EXCLUDED.cursor, last_at = EXCLUDED.last_at
			 WHERE c.last_at <= EXCLUDED.last_at`,
			provider, pq.Array(accounts), pq.Array(cursors), pq.Array(times)); err != nil {
			return fmt.Errorf("save statement cursors: %w", err)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM reconcile_cursors WHERE provider = $1 AND last_at < now() - interval '100 days'`, provider)
		return err
	})
}

// StartReconcileRun records the start of a run over provider ("" for all)
// from the window's start; daily marks a run of the daily job.
func (db *DB) StartReconcileRun(ctx context.Context, provider string, from time.Time, daily bool) (int64, error) {
	var id int64
	err := db.x.GetContext(ctx, &id, `
		INSERT INTO reconcile_runs (provider, window_from, daily) VALUES ($1, $2, $3) RETURNING id`, provider, from, daily)
	if err != nil {
		return 0, fmt.Errorf("start reconcile run: %w", err)
	}
	return id, nil
}

// LastDailyReconcile returns when the latest daily run that finished
// without an error began, and false when none did.
func (db *DB) LastDailyReconcile(ctx context.Context) (time.Time, bool, error) {
	var at sql.NullTime
	err := db.x.GetContext(ctx, &at, `
		SELECT max(started_at) FROM reconcile_runs WHERE daily AND finished_at IS NOT NULL AND error = ''`)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last daily reconciliation: %w", err)
	}
	return at.Time, at.Valid, nil
}

// FinishReconcileRun records a run's result and error (nil for none).
func (db *DB) FinishReconcileRun(ctx context.Context, id int64, result any, runErr error) error {
	b, err := json.Marshal(result)
	if err != nil {
		return fmt.Errorf("finish reconcile run %d: %w", id, err)
	}
	_, err = db.x.ExecContext(context.WithoutCancel(ctx), `
		UPDATE reconcile_runs SET finished_at = now(), result = $2, error = $3 WHERE id = $1`, id, b, errText(runErr))
	if err != nil {
		return fmt.Errorf("finish reconcile run %d: %w", id, err)
	}
	return nil
}

// RecordedFinding is what RecordFindings did with one finding.
type RecordedFinding struct {
	ID  int64
	New bool // stored (and alerted) now; false when an earlier run stored it
}

// FindingProblemKey is the alert problem key of a finding: one alert
// thread per finding.
func FindingProblemKey(id int64, kind pipeline.FindingKind) string {
	return fmt.Sprintf("reconcile:%d:%s", id, kind)
}

// RecordFindings stores a run's findings in one transaction: a finding
// seen before (same fingerprint; for a drift, while not resolved) is only
// marked seen again; a new one is stored with its alert in the outbox.
func (db *DB) RecordFindings(ctx context.Context, runID int64, fs []pipeline.Finding) ([]RecordedFinding, error) {
	out := make([]RecordedFinding, len(fs))
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		for i, f := range fs {
			r, err := recordFinding(ctx, tx, runID, f)
			if err != nil {
				return fmt.Errorf("finding %s: %w", f.Fingerprint, err)
			}
			out[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record findings: %w", err)
	}
	return out, nil
}

func recordFinding(ctx context.Context, tx *sqlx.Tx, runID int64, f pipeline.Finding) (RecordedFinding, error) {
	effects, err := json.Marshal(f.Effects)
	if err != nil || f.Effects == nil {
		effects = []byte("{}")
	}
	var occurred *time.Time
	if !f.OccurredAt.IsZero() {
		occurred = &f.OccurredAt
	}
	var id int64
	err = tx.GetContext(ctx, &id, `
		INSERT INTO reconcile_findings (provider, kind, fingerprint, account, idempotency_key, amount, bank_amount,
		                                settlement_id, step_id, occurred_at, effects, detail, first_run_id, last_run_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8::bigint, 0), NULLIF($9::bigint, 0), $10, $11, $12, $13, $13)
		ON CONFLICT DO NOTHING RETURNING id`,
		f.Provider, string(f.Kind), f.Fingerprint, f.Account, f.Key, f.Amount, f.BankAmount,
		f.SettlementID, f.StepID, occurred, effects, f.Detail, runID)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.GetContext(ctx, &id, `
			UPDATE reconcile_findings SET last_seen_at = now(), seen_count = seen_count + 1, last_run_id = $2
			 WHERE fingerprint = $1 AND (kind <> 'balance_drift' OR status <> 'RESOLVED') RETURNING id`, f.Fingerprint, runID)
		return RecordedFinding{ID: id}, err
	}
	if err != nil {
		return RecordedFinding{}, err
	}
	return RecordedFinding{ID: id, New: true}, insertAlert(ctx, tx, findingAlert(id, f))
}

func findingAlert(id int64, f pipeline.Finding) pipeline.Alert {
	return pipeline.Alert{
		ProblemKey: FindingProblemKey(id, f.Kind), Kind: pipeline.AlertKindReconcile, Severity: f.Kind.Severity(),
		SettlementID: f.SettlementID,
		Summary:      fmt.Sprintf("%s (finding %d)", f.Summary(), id),
		Detail:       f.Detail + ". Reconciliation never corrects money or the ledger by itself.",
		Action:       fmt.Sprintf("settle reconcile findings resolve %d --reason '<what was done>'  (or --ack to accept it as explained)", id),
	}
}

// FindingStatus is where operators are with a finding.
type FindingStatus string

// Finding statuses.
const (
	FindingOpen         FindingStatus = "OPEN"
	FindingAcknowledged FindingStatus = "ACKNOWLEDGED"
	FindingResolved     FindingStatus = "RESOLVED"
)

// FindingRow is a stored finding. Account numbers marshal masked.
type FindingRow struct {
	ID           int64                  `db:"id" json:"id"`
	Provider     string                 `db:"provider" json:"provider"`
	Kind         pipeline.FindingKind   `db:"kind" json:"kind"`
	Status       FindingStatus          `db:"status" json:"status"`
	Account      pipeline.AccountNumber `db:"account" json:"account,omitempty"`
	Key          string                 `db:"idempotency_key" json:"idempotency_key,omitempty"`
	Amount       int64                  `db:"amount" json:"amount"`
	BankAmount   int64                  `db:"bank_amount" json:"bank_amount"`
	SettlementID int64                  `db:"settlement_id" json:"settlement_id,omitempty"`
	StepID       int64                  `db:"step_id" json:"step_id,omitempty"`
	OccurredAt   *time.Time             `db:"occurred_at" json:"occurred_at,omitempty"`
	Detail       string                 `db:"detail" json:"detail"`
	SeenCount    int                    `db:"seen_count" json:"seen_count"`
	FirstSeenAt  time.Time              `db:"first_seen_at" json:"first_seen_at"`
	LastSeenAt   time.Time              `db:"last_seen_at" json:"last_seen_at"`
	ActedBy      string                 `db:"acted_by" json:"acted_by,omitempty"`
	ActedReason  string                 `db:"acted_reason" json:"acted_reason,omitempty"`
	ActedAt      *time.Time             `db:"acted_at" json:"acted_at,omitempty"`
}

// EngineAmount is what the engine's records say of the finding: the amount
// of its transfer or, for a balance drift (whose Amount is the part nothing
// explains), the balance the ledger and the known differences account for.
func (r FindingRow) EngineAmount() int64 {
	if r.Kind == pipeline.FindingBalanceDrift {
		return r.BankAmount - r.Amount
	}
	return r.Amount
}

const findingColumns = `id, provider, kind, status, account, idempotency_key, amount, bank_amount,
	COALESCE(settlement_id, 0) AS settlement_id, COALESCE(step_id, 0) AS step_id, occurred_at, detail,
	seen_count, first_seen_at, last_seen_at, acted_by, acted_reason, acted_at`

// FindingFilter selects findings.
type FindingFilter struct {
	Open     bool   // only findings not resolved (OPEN or ACKNOWLEDGED)
	Provider string // "" for all
	Limit    int    // default 100
}

// ListFindings returns findings, newest first.
func (db *DB) ListFindings(ctx context.Context, f FindingFilter) ([]FindingRow, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	out := []FindingRow{}
	err := db.x.SelectContext(ctx, &out, `
		SELECT `+findingColumns+` FROM reconcile_findings
		 WHERE (NOT $1 OR status <> 'RESOLVED') AND ($2 = '' OR provider = $2)
		 ORDER BY id DESC LIMIT $3`, f.Open, f.Provider, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list findings: %w", err)
	}
	return out, nil
}

// ActOnFinding acknowledges (ack) or resolves a finding, with the audit
// row of the operator's command in the same transaction. Resolving queues
// the alert problem's "resolved" follow-up. It returns ErrNotFound, or
// ErrNothingToDo when the finding is already where the command would take
// it (or resolved, for an acknowledgement); both are audited (see audited).
func (db *DB) ActOnFinding(ctx context.Context, id int64, ack bool, a Audit) (FindingRow, error) {
	to := FindingResolved
	if ack {
		to = FindingAcknowledged
	}
	var after FindingRow
	err := db.audited(ctx, a, fmt.Sprintf("reconcile_finding:%d", id), false, func(tx *sqlx.Tx, rec *auditRecord) error {
		var before FindingRow
		err := tx.GetContext(ctx, &before, `SELECT `+findingColumns+` FROM reconcile_findings WHERE id = $1 FOR UPDATE`, id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("finding %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		rec.before = before
		if before.Status == to || before.Status == FindingResolved {
			return fmt.Errorf("%w: finding %d is already %s", ErrNothingToDo, id, before.Status)
		}
		if err := tx.GetContext(ctx, &after, `
			UPDATE reconcile_findings SET status = $2, acted_by = $3, acted_reason = $4, acted_at = now()
			 WHERE id = $1 RETURNING `+findingColumns, id, to, a.Actor, a.Reason); err != nil {
			return err
		}
		rec.after = after
		if ack {
			return nil
		}
		_, err = resolveProblem(ctx, tx, FindingProblemKey(id, before.Kind),
			fmt.Sprintf("resolved by %s: %s", a.Actor, a.Reason))
		if errors.Is(err, ErrNoProblem) {
			return nil
		}
		return err
	})
	if err != nil {
		return FindingRow{}, err
	}
	return after, nil
}

// SettlementsOfSteps returns the settlement of each step that exists, by
// step ID: what a finding about an attempt the engine lost track of names.
func (db *DB) SettlementsOfSteps(ctx context.Context, steps []int64) (map[int64]int64, error) {
	var rows []struct {
		Step       int64 `db:"id"`
		Settlement int64 `db:"settlement_id"`
	}
	if err := db.x.SelectContext(ctx, &rows, `SELECT id, settlement_id FROM steps WHERE id = ANY($1)`, pq.Array(steps)); err != nil {
		return nil, fmt.Errorf("settlements of steps: %w", err)
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.Step] = r.Settlement
	}
	return out, nil
}
