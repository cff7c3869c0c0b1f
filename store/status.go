package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settle-dev/settle/pipeline"
)

// Gauges are the numbers an operator watches, read by the database's clock.
// The metrics endpoint reads them at every scrape and the status page shows
// them.
type Gauges struct {
	// ByStatus counts settlements in each status present in the database.
	ByStatus map[pipeline.SettlementStatus]int64
	// Open counts settlements in flight: RUNNING or COMPENSATING.
	Open int64
	// OldestOpen is how long the oldest open settlement has existed; zero
	// when none is open.
	OldestOpen time.Duration
	// DeadSteps counts steps that ran out of attempts and await an operator.
	DeadSteps int64
	// StuckRunning counts RUNNING steps whose lease has expired: their
	// worker died or paused, and the sweep has not resolved them yet.
	StuckRunning int64
	// StuckReady counts READY steps due for longer than the grace: no worker
	// picked them up (queue down, relay not running).
	StuckReady int64
	// AlertBacklog counts alerts not yet delivered.
	AlertBacklog int64
	// NotifyRetrying counts NOTIFY steps of SETTLED settlements that the
	// lender's app did not take yet and that retry on their own backoff;
	// NotifyGaveUp those that ran out of their window (DEAD; settle replay
	// sends them again). Their money moved: they fail nothing.
	NotifyRetrying, NotifyGaveUp int64
}

// gaugesQuery reads every gauge in one round trip. $1 is the READY grace in
// milliseconds.
//
// DEAD money steps live only in FAILED settlements (replay makes them
// READY, cancel and compensate make them CANCELLED), so they are counted
// through the settlements' status index rather than by scanning every
// step; a DEAD NOTIFY (its settlement SETTLED) through its own index.
var gaugesQuery = `
	SELECT
	  (SELECT COALESCE(json_object_agg(status, n), '{}')
	     FROM (SELECT status, count(*) AS n FROM settlements GROUP BY status) c) AS by_status,
	  (SELECT count(*) FROM settlements WHERE status IN (` + inFlightStatuses + `)) AS open,
	  (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)) * 1e9, 0)::bigint
	     FROM settlements WHERE status IN (` + inFlightStatuses + `)) AS oldest_open,
	  (SELECT count(*) FROM steps st JOIN settlements s ON s.id = st.settlement_id
	    WHERE s.status = 'FAILED' AND st.status = 'DEAD') AS dead_steps,
	  (SELECT count(*) FROM steps WHERE status = 'RUNNING' AND lease_until < now()) AS stuck_running,
	  (SELECT count(*) FROM steps WHERE status = 'READY'
	      AND next_run_at < now() - $1 * interval '1 millisecond') AS stuck_ready,
	  (SELECT count(*) FROM alerts WHERE delivered_at IS NULL) AS alert_backlog,
	  (SELECT count(*) FROM steps WHERE status IN ('READY', 'RUNNING') AND kind IN (` + afterMoney + `)
	      AND attempts > 0) AS notify_retrying,
	  (SELECT count(*) FROM steps WHERE status = 'DEAD' AND kind IN (` + afterMoney + `)) AS notify_gave_up`

// Gauges reads the gauges. A READY step due for longer than readyGrace
// counts as stuck.
func (db *DB) Gauges(ctx context.Context, readyGrace time.Duration) (Gauges, error) {
	return readGauges(ctx, db.x, readyGrace)
}

func readGauges(ctx context.Context, q sqlx.QueryerContext, readyGrace time.Duration) (Gauges, error) {
	var g Gauges
	var byStatus []byte
	err := q.QueryRowxContext(ctx, gaugesQuery, readyGrace.Milliseconds()).Scan(
		&byStatus, &g.Open, &g.OldestOpen, &g.DeadSteps, &g.StuckRunning, &g.StuckReady, &g.AlertBacklog,
		&g.NotifyRetrying, &g.NotifyGaveUp)
	if err != nil {
		return Gauges{}, fmt.Errorf("read gauges: %w", err)
	}
	if err := json.Unmarshal(byStatus, &g.ByStatus); err != nil {
		return Gauges{}, fmt.Errorf("read gauges: settlements by status: %w", err)
	}
	return g, nil
}

// StatusQuery says what Status reads. Zero fields take their defaults.
type StatusQuery struct {
	// TimeZone is the IANA zone whose calendar day SettledToday covers;
	// default "UTC".
	TimeZone string
	// ReadyGrace is how long a READY step may be due before it counts as
	// stuck; default 1m.
	ReadyGrace time.Duration
	// Limit bounds the Failed and Stuck lists; default 50.
	Limit int
	// WithNames fills in customers' holder names. Off by default: the
	// status page shows customer references only.
	WithNames bool
}

func (q StatusQuery) withDefaults() StatusQuery {
	if q.TimeZone == "" {
		q.TimeZone = "UTC"
	}
	if q.ReadyGrace <= 0 {
		q.ReadyGrace = time.Minute
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	return q
}

// Status is what the operator status page shows, read in one consistent
// snapshot.
type Status struct {
	Gauges
	// Now is the database's clock when the snapshot was taken.
	Now time.Time
	// DayStart is the start of today in the query's time zone.
	DayStart time.Time
	// SettledToday sums the settlements that became SETTLED since DayStart,
	// one row per currency.
	SettledToday []CurrencyTotal
	// Failed lists FAILED settlements, the most recent failure first, at
	// most Limit of them; Gauges.ByStatus[pipeline.SettlementFailed] says how many there are.
	Failed []FailedSettlement
	// Stuck lists stuck steps (see Gauges.StuckRunning and StuckReady), the
	// longest stuck first, at most Limit of them.
	Stuck []StuckStep
}

// CurrencyTotal is a count of settlements and the sum of their amounts in
// one currency.
type CurrencyTotal struct {
	Currency string `db:"currency"`
	Count    int64  `db:"n"`
	Amount   int64  `db:"amount"` // minor units
}

// FailedSettlement is a FAILED settlement and the step that failed it.
type FailedSettlement struct {
	ID          int64  `db:"id"`
	CustomerRef string `db:"external_ref"`
	// HolderName is empty unless the query asked WithNames.
	HolderName string `db:"holder_name"`
	Provider   string `db:"provider"`
	Amount     int64  `db:"amount"`
	Currency   string `db:"currency"`
	Reason     string `db:"failure_reason"`
	// FailedAt is when the settlement last changed, which for a FAILED one
	// is when it failed.
	FailedAt time.Time `db:"updated_at"`
	// Age is how long ago it failed, by the database's clock.
	Age time.Duration `db:"age"`
	// StepKind and StepStatus are the failed step's (FAILED or DEAD).
	StepKind   pipeline.Kind       `db:"step_kind"`
	StepStatus pipeline.StepStatus `db:"step_status"`
	// To is where the failed step was sending money.
	To pipeline.AccountNumber `db:"to_account"`
}

// StuckStep is a step that should be moving and is not.
type StuckStep struct {
	ID           int64               `db:"id"`
	SettlementID int64               `db:"settlement_id"`
	CustomerRef  string              `db:"external_ref"`
	Kind         pipeline.Kind       `db:"kind"`
	Status       pipeline.StepStatus `db:"status"` // RUNNING (lease expired) or READY (overdue)
	Attempts     int                 `db:"attempts"`
	LastError    string              `db:"last_error"`
	// Since is when it became stuck: its lease expired, or it became due.
	Since time.Time `db:"since"`
	// For is how long it has been stuck, by the database's clock.
	For time.Duration          `db:"stuck_for"`
	To  pipeline.AccountNumber `db:"to_account"`
}

// Status reads everything the status page shows in one read-only
// repeatable-read transaction, so its numbers agree with each other.
func (db *DB) Status(ctx context.Context, q StatusQuery) (Status, error) {
	q = q.withDefaults()
	var st Status
	tx, err := db.x.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if st.Gauges, err = readGauges(ctx, tx, q.ReadyGrace); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	for _, read := range []func(context.Context, *sqlx.Tx, StatusQuery, *Status) error{
		readSettledToday, readFailed, readStuck,
	} {
		if err := read(ctx, tx, q, &st); err != nil {
			return Status{}, fmt.Errorf("status: %w", err)
		}
	}
	return st, nil
}

// readSettledToday fills in Now, DayStart and SettledToday.
func readSettledToday(ctx context.Context, tx *sqlx.Tx, q StatusQuery, st *Status) error {
	err := tx.QueryRowxContext(ctx, `SELECT now(), date_trunc('day', now(), $1)`, q.TimeZone).Scan(&st.Now, &st.DayStart)
	if err != nil {
		return fmt.Errorf("start of today in %q: %w", q.TimeZone, err)
	}
	st.SettledToday = []CurrencyTotal{}
	err = tx.SelectContext(ctx, &st.SettledToday, `
		SELECT currency, count(*) AS n, sum(amount) AS amount FROM settlements
		 WHERE status = 'SETTLED' AND finished_at >= $1
		 GROUP BY currency ORDER BY currency`, st.DayStart)
	if err != nil {
		return fmt.Errorf("settled today: %w", err)
	}
	return nil
}

func readFailed(ctx context.Context, tx *sqlx.Tx, q StatusQuery, st *Status) error {
	st.Failed = []FailedSettlement{}
	err := tx.SelectContext(ctx, &st.Failed, `
		SELECT `+failedColumns+`, CASE WHEN $2 THEN c.holder_name ELSE '' END AS holder_name
		  FROM (SELECT * FROM settlements WHERE status = 'FAILED'
		         ORDER BY updated_at DESC, id DESC LIMIT $1) s
		  `+failedJoins+`
		 ORDER BY s.updated_at DESC, s.id DESC`, q.Limit, q.WithNames)
	if err != nil {
		return fmt.Errorf("failed settlements: %w", err)
	}
	return nil
}

// failedColumns and failedJoins read a FailedSettlement (but its
// HolderName) from settlements s.
const (
	failedColumns = `s.id, c.external_ref, s.provider, s.amount, s.currency, s.failure_reason, s.updated_at,
		(EXTRACT(EPOCH FROM now() - s.updated_at) * 1e9)::bigint AS age,
		COALESCE(f.kind, '') AS step_kind, COALESCE(f.status, '') AS step_status,
		COALESCE(f.to_account, '') AS to_account`
	failedJoins = `JOIN customers c ON c.id = s.customer_id
		  LEFT JOIN LATERAL (
		       SELECT kind, status, to_account FROM steps
		        WHERE settlement_id = s.id AND status IN ('FAILED', 'DEAD') ORDER BY seq LIMIT 1) f ON true`
)

func readStuck(ctx context.Context, tx *sqlx.Tx, q StatusQuery, st *Status) error {
	st.Stuck = []StuckStep{}
	err := tx.SelectContext(ctx, &st.Stuck, `
		SELECT st.id, st.settlement_id, c.external_ref, st.kind, st.status, st.attempts, st.last_error,
		       st.since, (EXTRACT(EPOCH FROM now() - st.since) * 1e9)::bigint AS stuck_for, st.to_account
		  FROM (SELECT id, settlement_id, kind, status, attempts, last_error, to_account, lease_until AS since
		          FROM steps WHERE status = 'RUNNING' AND lease_until < now()
		        UNION ALL
		        SELECT id, settlement_id, kind, status, attempts, last_error, to_account, next_run_at AS since
		          FROM steps WHERE status = 'READY' AND next_run_at < now() - $2 * interval '1 millisecond') st
		  JOIN settlements s ON s.id = st.settlement_id
		  JOIN customers c ON c.id = s.customer_id
		 ORDER BY st.since, st.id LIMIT $1`, q.Limit, q.ReadyGrace.Milliseconds())
	if err != nil {
		return fmt.Errorf("stuck steps: %w", err)
	}
	return nil
}

// ErrSchemaNotCurrent is Ready's error when the database answers but its
// schema is older than this binary.
var ErrSchemaNotCurrent = errors.New("schema is not current")

// Ready reports whether the database answers and its schema is the one
// this binary needs: the readiness check of the HTTP server.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.x.PingContext(ctx); err != nil {
		return fmt.Errorf("database not reachable: %w", err)
	}
	ok, have, want, err := db.SchemaCurrent(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: at version %d, this binary needs %d: run settle migrate up", ErrSchemaNotCurrent, have, want)
	}
	return nil
}
