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

// deliveryTxTimeout bounds a delivery transaction, which holds its alerts'
// row locks while Slack is called.
const deliveryTxTimeout = 2 * time.Minute

// AlertRow is one alert of the outbox, with what the engine knows about its
// settlement when it is read: the customer, and the step that failed or is
// stuck with the bank's last answer. Those fields are empty when the alert
// names no settlement or no step is failed or stuck any more.
type AlertRow struct {
	ID           int64              `db:"id"`
	ProblemKey   string             `db:"problem_key"`
	Kind         pipeline.AlertKind `db:"kind"`
	Severity     pipeline.Severity  `db:"severity"`
	SettlementID int64              `db:"settlement_id"`
	Summary      string             `db:"summary"`
	Detail       string             `db:"detail"`
	Action       string             `db:"action"`
	ConfigKey    string             `db:"config_key"` // the engine account's configuration key, or ""
	CreatedAt    time.Time          `db:"created_at"`
	Attempts     int                `db:"attempts"` // delivery attempts that failed so far

	CustomerRef   string `db:"customer_ref"`
	PayoutAccount string `db:"payout_account"`
	Provider      string `db:"provider"`
	Deposit       int64  `db:"deposit"`
	Currency      string `db:"currency"`

	StepKind     pipeline.Kind       `db:"step_kind"`
	StepSeq      int                 `db:"step_seq"`
	StepStatus   pipeline.StepStatus `db:"step_status"`
	StepAmount   int64               `db:"step_amount"`
	StepFrom     string              `db:"step_from"`
	StepTo       string              `db:"step_to"`
	StepAttempts int                 `db:"step_attempts"`
	StepError    string              `db:"step_error"`
	FirstTry     *time.Time          `db:"first_try"` // the step's first transfer attempt
	BankCode     string              `db:"bank_code"` // of the step's latest attempt
	BankMessage  string              `db:"bank_message"`
}

// AlertProblem is what operators were already told about one problem. A
// problem with no delivered alert yet has only its Key set.
type AlertProblem struct {
	Key         string     `db:"problem_key"`
	Channel     string     `db:"channel"`    // where the first message went (bot mode)
	TS          string     `db:"message_ts"` // the first message's timestamp (bot mode)
	Occurrences int        `db:"occurrences"`
	FirstAt     time.Time  `db:"first_at"`
	LastAt      time.Time  `db:"last_at"`
	PostedAt    time.Time  `db:"posted_at"`
	RepliedAt   *time.Time `db:"replied_at"`
	ResolvedAt  *time.Time `db:"resolved_at"`
	Snapshot    []byte     `db:"snapshot"` // what the first message showed, as the deliverer wrote it
}

// Told reports whether a first message was sent for the problem.
func (p AlertProblem) Told() bool { return p.Occurrences > 0 }

// AlertBatch is the due alerts of one problem, locked for one delivery.
type AlertBatch struct {
	Now     time.Time // the database's clock
	Problem AlertProblem
	// Alerts are oldest first. A resolved alert comes alone; other batches
	// hold a problem's undelivered occurrences up to its next resolution.
	Alerts []AlertRow
}

// AlertOutcome is what a delivery did with a batch; the store records it
// in the transaction that holds the batch's locks.
type AlertOutcome struct {
	// Sent means the batch was delivered: its alerts are marked delivered
	// and Problem is written as the problem's new state.
	Sent    bool
	Problem AlertProblem
	// Otherwise Error (no secret in it) is kept as the alerts' last error,
	// their attempts are counted, and they are due again after RetryIn.
	Error   string
	RetryIn time.Duration
}

// StormGroup is a kind of alert at one provider ("" for alerts that name no
// settlement) with more alerts raised within the storm window than the
// threshold.
type StormGroup struct {
	Kind     pipeline.AlertKind `db:"kind"`
	Provider string             `db:"provider"`
	Count    int                `db:"n"`
}

// Key is the storm's problem key: "storm:<kind>:<provider>".
func (g StormGroup) Key() string {
	if g.Provider == "" {
		return "storm:" + string(g.Kind)
	}
	return "storm:" + string(g.Kind) + ":" + g.Provider
}

// StormBatch is the due alerts of a storm group, locked to be summarized in
// one message.
type StormBatch struct {
	Now     time.Time
	Group   StormGroup
	Problem AlertProblem // the storm's own problem
	// Alerts hold only ID, ProblemKey, Kind, Severity, SettlementID,
	// CreatedAt and Attempts.
	Alerts []AlertRow
	Stats  StormStats
}

// StormStats describe a storm group's alerts raised within the window.
type StormStats struct {
	Count       int
	Causes      []CauseCount      // most first
	Severity    pipeline.Severity // the highest
	Settlements []int64           // up to five, newest first
	FirstAt     time.Time
}

// CauseCount is how many of a storm's alerts have one cause: the last
// ':'-separated part of their problem key, or their kind.
type CauseCount struct {
	Cause string `db:"cause"`
	Count int    `db:"n"`
}

// ErrNoProblem is returned by ResolveProblem when no alert carries the
// problem key.
var ErrNoProblem = errors.New("no alert has that problem key")

// deliveryTx runs fn in a transaction that the caller's cancellation does
// not roll back, so that a send that went through is recorded; it is bounded
// by deliveryTxTimeout, and PostgreSQL ends it should this process stall.
func (db *DB) deliveryTx(ctx context.Context, fn func(ctx context.Context, tx *sqlx.Tx) error) error {
	txCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliveryTxTimeout)
	defer cancel()
	return db.inTx(txCtx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(txCtx, `SET LOCAL idle_in_transaction_session_timeout = '150s'`); err != nil {
			return err
		}
		return fn(txCtx, tx)
	})
}

// DeliverNextAlert locks the oldest due undelivered alert whose problem has
// no older undelivered alert, skipping alerts other transactions hold (so
// two processes never send the same alert) and alerts of the storm groups in
// skip. With it come the problem's other undelivered alerts up to its next
// resolution, and the problem's state. fn sends them while the locks are
// held, and its outcome is recorded in the same transaction. It reports
// false when no alert is due.
func (db *DB) DeliverNextAlert(ctx context.Context, skip []StormGroup, fn func(context.Context, AlertBatch) AlertOutcome) (bool, error) {
	found := false
	err := db.deliveryTx(ctx, func(txCtx context.Context, tx *sqlx.Tx) error {
		ids, key, err := lockNextProblem(txCtx, tx, skip)
		if err != nil || len(ids) == 0 {
			return err
		}
		found = true
		b := AlertBatch{}
		if b.Alerts, err = loadAlerts(txCtx, tx, ids); err != nil {
			return err
		}
		if b.Now, b.Problem, err = lockProblem(txCtx, tx, key); err != nil {
			return err
		}
		return recordOutcome(txCtx, tx, ids, key, fn(ctx, b))
	})
	if err != nil {
		return found, fmt.Errorf("deliver alert: %w", err)
	}
	return found, nil
}

// lockNextProblem locks the next due alert and the rest of its batch.
func lockNextProblem(ctx context.Context, tx *sqlx.Tx, skip []StormGroup) ([]int64, string, error) {
	kinds, providers := make([]string, len(skip)), make([]string, len(skip))
	for i, g := range skip {
		kinds[i], providers[i] = string(g.Kind), g.Provider
	}
	var head struct {
		ID         int64              `db:"id"`
		ProblemKey string             `db:"problem_key"`
		Kind       pipeline.AlertKind `db:"kind"`
	}
	err := tx.QueryRowxContext(ctx, `
		SELECT a.id, a.problem_key, a.kind FROM alerts a
		 WHERE a.delivered_at IS NULL AND a.next_try_at <= now()
		   AND NOT EXISTS (SELECT 1 FROM alerts o
		                    WHERE o.problem_key = a.problem_key AND o.delivered_at IS NULL AND o.id < a.id)
		   AND NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS g(kind, provider)
		                    WHERE g.kind = a.kind
		                      AND g.provider = COALESCE((SELECT provider FROM settlements WHERE id = a.settlement_id), ''))
		 ORDER BY a.next_try_at, a.id
		 LIMIT 1
		   FOR UPDATE OF a SKIP LOCKED`, pq.Array(kinds), pq.Array(providers)).StructScan(&head)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	ids := []int64{head.ID}
	if head.Kind == pipeline.AlertKindResolved {
		return ids, head.ProblemKey, nil
	}
	var rest []int64
	err = tx.SelectContext(ctx, &rest, `
		SELECT id FROM alerts
		 WHERE problem_key = $1 AND delivered_at IS NULL AND id > $2 AND kind <> $3
		   AND id < COALESCE((SELECT min(id) FROM alerts
		                       WHERE problem_key = $1 AND delivered_at IS NULL AND id > $2 AND kind = $3),
		                     9223372036854775807)
		 ORDER BY id
		   FOR UPDATE SKIP LOCKED`, head.ProblemKey, head.ID, pipeline.AlertKindResolved)
	return append(ids, rest...), head.ProblemKey, err
}

// loadAlerts reads the alerts with what is known about their settlements.
func loadAlerts(ctx context.Context, tx *sqlx.Tx, ids []int64) ([]AlertRow, error) {
	var rows []AlertRow
	err := tx.SelectContext(ctx, &rows, `
		SELECT a.id, a.problem_key, a.kind, a.severity, COALESCE(a.settlement_id, 0) AS settlement_id,
		       a.summary, a.detail, a.action, a.config_key, a.created_at, a.attempts,
		       COALESCE(c.external_ref, '') AS customer_ref, COALESCE(c.payout_account, '') AS payout_account,
		       COALESCE(s.provider, '') AS provider, COALESCE(s.amount, 0) AS deposit, COALESCE(s.currency, '') AS currency,
		       COALESCE(st.kind, '') AS step_kind, COALESCE(st.seq, 0) AS step_seq, COALESCE(st.status, '') AS step_status,
		       COALESCE(st.amount, 0) AS step_amount, COALESCE(st.from_account, '') AS step_from,
		       COALESCE(st.to_account, '') AS step_to, COALESCE(st.attempts, 0) AS step_attempts,
		       COALESCE(st.last_error, '') AS step_error,
		       t.first_try, COALESCE(t.bank_code, '') AS bank_code, COALESCE(t.bank_message, '') AS bank_message
		  FROM alerts a
		  LEFT JOIN settlements s ON s.id = a.settlement_id
		  LEFT JOIN customers c ON c.id = s.customer_id
		  LEFT JOIN LATERAL (
		        SELECT id, kind, seq, status, amount, from_account, to_account, attempts, last_error FROM steps
		         WHERE settlement_id = s.id AND status IN ('READY', 'RUNNING', 'FAILED', 'DEAD')
		         ORDER BY seq LIMIT 1) st ON true
		  LEFT JOIN LATERAL (
		        SELECT min(created_at) OVER () AS first_try, bank_code, bank_message FROM transfers
		         WHERE step_id = st.id ORDER BY attempt DESC LIMIT 1) t ON true
		 WHERE a.id = ANY($1)
		 ORDER BY a.id`, pq.Array(ids))
	return rows, err
}

// lockProblem locks the problem's row, if it has one, and reads the
// database's clock.
func lockProblem(ctx context.Context, tx *sqlx.Tx, key string) (time.Time, AlertProblem, error) {
	var now time.Time
	if err := tx.QueryRowxContext(ctx, `SELECT now()`).Scan(&now); err != nil {
		return now, AlertProblem{}, err
	}
	var p AlertProblem
	err := tx.QueryRowxContext(ctx, `
		SELECT problem_key, channel, message_ts, occurrences, first_at, last_at, posted_at, replied_at, resolved_at, snapshot
		  FROM alert_problems WHERE problem_key = $1 FOR UPDATE`, key).StructScan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return now, AlertProblem{Key: key}, nil
	}
	return now, p, err
}

// recordOutcome marks the alerts delivered via the problem key and writes
// the problem's state, or counts a failed attempt and schedules the next.
func recordOutcome(ctx context.Context, tx *sqlx.Tx, ids []int64, via string, o AlertOutcome) error {
	if !o.Sent {
		_, err := tx.ExecContext(ctx, `
			UPDATE alerts SET attempts = attempts + 1, last_error = $2,
			       next_try_at = clock_timestamp() + $3 * interval '1 millisecond'
			 WHERE id = ANY($1)`, pq.Array(ids), o.Error, o.RetryIn.Milliseconds())
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE alerts SET delivered_at = clock_timestamp(), delivered_via = $2, last_error = ''
		 WHERE id = ANY($1)`, pq.Array(ids), via); err != nil {
		return err
	}
	return saveProblem(ctx, tx, via, o.Problem)
}

func saveProblem(ctx context.Context, tx *sqlx.Tx, key string, p AlertProblem) error {
	snapshot := string(p.Snapshot)
	if snapshot == "" {
		snapshot = "{}"
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO alert_problems (problem_key, channel, message_ts, occurrences, first_at, last_at, posted_at,
		                            replied_at, resolved_at, snapshot)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
		ON CONFLICT (problem_key) DO UPDATE SET
		       channel = EXCLUDED.channel, message_ts = EXCLUDED.message_ts, occurrences = EXCLUDED.occurrences,
		       first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at, posted_at = EXCLUDED.posted_at,
		       replied_at = EXCLUDED.replied_at, resolved_at = EXCLUDED.resolved_at, snapshot = EXCLUDED.snapshot`,
		key, p.Channel, p.TS, max(p.Occurrences, 1), p.FirstAt, p.LastAt, p.PostedAt, p.RepliedAt, p.ResolvedAt, snapshot)
	return err
}

// AlertStorms returns the groups of alerts (kind and provider) with more
// than threshold alerts raised within window, by the database's clock, that
// have an undelivered alert due.
func (db *DB) AlertStorms(ctx context.Context, threshold int, window time.Duration) ([]StormGroup, error) {
	var out []StormGroup
	err := db.x.SelectContext(ctx, &out, `
		SELECT a.kind, COALESCE(s.provider, '') AS provider, count(*) AS n
		  FROM alerts a LEFT JOIN settlements s ON s.id = a.settlement_id
		 WHERE a.created_at > now() - $1 * interval '1 millisecond'
		 GROUP BY 1, 2
		HAVING count(*) > $2 AND bool_or(a.delivered_at IS NULL AND a.next_try_at <= now())
		 ORDER BY 1, 2`, window.Milliseconds(), threshold)
	if err != nil {
		return nil, fmt.Errorf("find alert storms: %w", err)
	}
	return out, nil
}

// DeliverStorm locks up to limit due undelivered alerts of the storm group
// (skipping alerts other transactions hold, and alerts whose problem has an
// older undelivered alert), with the storm's own problem, and calls fn to
// send one summary of them while the locks are held. A sent summary marks
// them all delivered, via the storm's key. It returns how many alerts the
// batch held; 0 means none was due.
func (db *DB) DeliverStorm(ctx context.Context, g StormGroup, window time.Duration, limit int, fn func(context.Context, StormBatch) AlertOutcome) (int, error) {
	n := 0
	err := db.deliveryTx(ctx, func(txCtx context.Context, tx *sqlx.Tx) error {
		b := StormBatch{Group: g}
		err := tx.SelectContext(txCtx, &b.Alerts, `
			SELECT a.id, a.problem_key, a.kind, a.severity, COALESCE(a.settlement_id, 0) AS settlement_id,
			       a.created_at, a.attempts
			  FROM alerts a LEFT JOIN settlements s ON s.id = a.settlement_id
			 WHERE a.delivered_at IS NULL AND a.next_try_at <= now() AND a.kind = $1 AND COALESCE(s.provider, '') = $2
			   AND NOT EXISTS (SELECT 1 FROM alerts o
			                    WHERE o.problem_key = a.problem_key AND o.delivered_at IS NULL AND o.id < a.id)
			 ORDER BY a.id
			 LIMIT $3
			   FOR UPDATE OF a SKIP LOCKED`, g.Kind, g.Provider, limit)
		if err != nil || len(b.Alerts) == 0 {
			return err
		}
		n = len(b.Alerts)
		if b.Stats, err = stormStats(txCtx, tx, g, window); err != nil {
			return err
		}
		if b.Now, b.Problem, err = lockProblem(txCtx, tx, g.Key()); err != nil {
			return err
		}
		ids := make([]int64, n)
		for i, a := range b.Alerts {
			ids[i] = a.ID
		}
		return recordOutcome(txCtx, tx, ids, g.Key(), fn(ctx, b))
	})
	if err != nil {
		return n, fmt.Errorf("deliver storm %s: %w", g.Key(), err)
	}
	return n, nil
}

// groupWhere selects a storm group's alerts raised within the window.
const groupWhere = `FROM alerts a LEFT JOIN settlements s ON s.id = a.settlement_id
	WHERE a.kind = $1 AND COALESCE(s.provider, '') = $2 AND a.created_at > now() - $3 * interval '1 millisecond'`

func stormStats(ctx context.Context, tx *sqlx.Tx, g StormGroup, window time.Duration) (StormStats, error) {
	var st StormStats
	args := []any{g.Kind, g.Provider, window.Milliseconds()}
	err := tx.QueryRowxContext(ctx, `
		SELECT count(*), COALESCE(min(a.created_at), now()),
		       CASE max(CASE a.severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END)
		            WHEN 3 THEN 'critical' WHEN 2 THEN 'warning' ELSE 'info' END
		`+groupWhere, args...).Scan(&st.Count, &st.FirstAt, &st.Severity)
	if err != nil {
		return st, err
	}
	if err := tx.SelectContext(ctx, &st.Causes, `
		SELECT CASE WHEN strpos(a.problem_key, ':') > 0
		            THEN COALESCE(NULLIF(regexp_replace(a.problem_key, '^.*:', ''), ''), a.kind)
		            ELSE a.kind END AS cause,
		       count(*) AS n
		`+groupWhere+` GROUP BY 1 ORDER BY 2 DESC, 1`, args...); err != nil {
		return st, err
	}
	err = tx.SelectContext(ctx, &st.Settlements, `
		SELECT a.settlement_id `+groupWhere+` AND a.settlement_id IS NOT NULL
		 GROUP BY a.settlement_id ORDER BY max(a.id) DESC LIMIT 5`, args...)
	return st, err
}

// DeferAlerts makes every undelivered alert wait at least d, without
// counting an attempt: what a rate limit asks of all of them. Alerts that
// another transaction holds are left to it.
func (db *DB) DeferAlerts(ctx context.Context, d time.Duration) error {
	_, err := db.x.ExecContext(ctx, `
		UPDATE alerts SET next_try_at = clock_timestamp() + $1 * interval '1 millisecond'
		 WHERE id IN (SELECT id FROM alerts
		               WHERE delivered_at IS NULL AND next_try_at < clock_timestamp() + $1 * interval '1 millisecond'
		                 FOR UPDATE SKIP LOCKED)`, d.Milliseconds())
	if err != nil {
		return fmt.Errorf("defer alerts: %w", err)
	}
	return nil
}

// ResolveProblem queues a "resolved" alert (severity info) for the problem,
// which the delivery job threads under the problem's first message. note
// says what resolved it. It returns false, queueing nothing, when the
// problem's latest alert is already a resolution, and ErrNoProblem when no
// alert has the key. Concurrent calls for one problem queue one alert.
func (db *DB) ResolveProblem(ctx context.Context, key, note string) (bool, error) {
	queued := false
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		queued, err = resolveProblem(ctx, tx, key, note)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("resolve problem %s: %w", key, err)
	}
	return queued, nil
}

// ResolveSettlement resolves, in one transaction, every problem of the
// settlement that is not resolved yet (see ResolveProblem), and returns how
// many it resolved.
func (db *DB) ResolveSettlement(ctx context.Context, settlementID int64, note string) (int, error) {
	n := 0
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		n, err = resolveSettlement(ctx, tx, settlementID, note)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("resolve settlement %d: %w", settlementID, err)
	}
	return n, nil
}

// resolveSettlement resolves the settlement's open problems inside tx, so a
// change of state (a settlement becoming SETTLED) and its resolution can
// commit together.
func resolveSettlement(ctx context.Context, tx *sqlx.Tx, settlementID int64, note string) (int, error) {
	var keys []string
	err := tx.SelectContext(ctx, &keys, `
		SELECT DISTINCT problem_key FROM alerts WHERE settlement_id = $1 ORDER BY problem_key`, settlementID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		ok, err := resolveProblem(ctx, tx, k, note)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// lockProblemKey serializes, until tx ends, everything that raises or
// resolves the problem.
func lockProblemKey(ctx context.Context, tx *sqlx.Tx, key string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('settle.alert'), hashtext($1))`, key)
	return err
}

func resolveProblem(ctx context.Context, tx *sqlx.Tx, key, note string) (bool, error) {
	if err := lockProblemKey(ctx, tx, key); err != nil {
		return false, err
	}
	var last struct {
		Kind         pipeline.AlertKind `db:"kind"`
		SettlementID sql.NullInt64      `db:"settlement_id"`
		Summary      string             `db:"summary"`
	}
	err := tx.QueryRowxContext(ctx, `
		SELECT kind, settlement_id, summary FROM alerts WHERE problem_key = $1 ORDER BY id DESC LIMIT 1`, key).StructScan(&last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, ErrNoProblem
	case err != nil || last.Kind == pipeline.AlertKindResolved:
		return false, err
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO alerts (problem_key, kind, severity, settlement_id, summary, detail)
		VALUES ($1, $2, 'info', $3, $4, $5)`, key, pipeline.AlertKindResolved, last.SettlementID, "Resolved: "+last.Summary, note)
	return err == nil, err
}

// RaiseAlertOnce writes the alert unless its problem is open (raised and
// not resolved since) with the same detail, and reports whether it wrote
// it: a check that finds the same problem again raises nothing, one that
// finds it changed raises a repeat, and one that finds it after its
// resolution opens it again. Concurrent calls for one problem write one
// alert.
func (db *DB) RaiseAlertOnce(ctx context.Context, a pipeline.Alert) (bool, error) {
	raised := false
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		raised, err = raiseOnce(ctx, tx, a)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("raise alert %s: %w", a.ProblemKey, err)
	}
	return raised, nil
}

// raiseOnce is RaiseAlertOnce inside tx.
func raiseOnce(ctx context.Context, tx *sqlx.Tx, a pipeline.Alert) (bool, error) {
	if err := lockProblemKey(ctx, tx, a.ProblemKey); err != nil {
		return false, err
	}
	var last struct {
		Kind   pipeline.AlertKind `db:"kind"`
		Detail string             `db:"detail"`
	}
	err := tx.QueryRowxContext(ctx, `
		SELECT kind, detail FROM alerts WHERE problem_key = $1 ORDER BY id DESC LIMIT 1`, a.ProblemKey).StructScan(&last)
	switch {
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return false, err
	case err == nil && last.Kind != pipeline.AlertKindResolved && last.Detail == a.Detail:
		return false, nil
	}
	return true, insertAlert(ctx, tx, a)
}

// AlertBacklog is the undelivered part of the alert outbox.
type AlertBacklog struct {
	Undelivered int        `db:"undelivered"`
	Oldest      *time.Time `db:"oldest"` // when the oldest undelivered alert was raised
	MaxAttempts int        `db:"max_attempts"`
	LastError   string     `db:"last_error"` // of the most tried undelivered alert
}

// AlertBacklog reports how many alerts wait for delivery, for health checks
// and the status page: a backlog that grows means Slack is unreachable or
// refuses settle's messages (LastError says why).
func (db *DB) AlertBacklog(ctx context.Context) (AlertBacklog, error) {
	var b AlertBacklog
	err := db.x.QueryRowxContext(ctx, `
		SELECT count(*) AS undelivered, min(created_at) AS oldest, COALESCE(max(attempts), 0) AS max_attempts,
		       COALESCE((SELECT last_error FROM alerts WHERE delivered_at IS NULL
		                  ORDER BY attempts DESC, id LIMIT 1), '') AS last_error
		  FROM alerts WHERE delivered_at IS NULL`).StructScan(&b)
	if err != nil {
		return b, fmt.Errorf("alert backlog: %w", err)
	}
	return b, nil
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
