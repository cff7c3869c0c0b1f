// Package store is settle's PostgreSQL adapter: it opens the database,
// applies the embedded migrations, and implements the persistence the
// pipeline needs with sqlx and lib/pq. PostgreSQL is the source of truth;
// every money rule that a constraint can hold is a constraint.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// DB is settle's database handle.
type DB struct {
	x    *sqlx.DB
	hook func(point string)
	// long is the statement timeout of the long reads (see readLong); 0
	// leaves the pool's.
	long time.Duration
	// stmts holds the prepared statements of the hot path, by query.
	stmts sync.Map
	// claims, reclaims and completes batch the claims and records of steps
	// made at the same time (see batcher).
	claims, reclaims *batcher[claimCall, claimed]
	completes        *batcher[completeCall, completed]
}

// batchMax is the most steps one claim or record statement carries, and
// batchSlots how many of each run at once; a call waits only while every
// slot is busy.
const (
	batchMax   = 64
	batchSlots = 2
)

// Options tune the connection pool.
type Options struct {
	MaxOpenConns int // default 20
	MaxIdleConns int // default MaxOpenConns
	// StatementTimeout and IdleInTransactionTimeout are set on every
	// connection of the pool (PostgreSQL's statement_timeout and
	// idle_in_transaction_session_timeout, sent as run-time parameters when
	// it connects), so that neither a runaway statement nor a process that
	// stalled inside a transaction holds locks and vacuum back for long.
	// 0 leaves the server's setting.
	StatementTimeout         time.Duration
	IdleInTransactionTimeout time.Duration
	// LongStatementTimeout replaces StatementTimeout for the reads that
	// cover every settlement or a whole day (reconciliation snapshots,
	// invariant checks); 0 leaves StatementTimeout.
	LongStatementTimeout time.Duration
	// Hook, when set, is called with "before_record_commit" just before a
	// batch of steps' successes is committed and with "after_settlements_commit" once
	// a poll's settlements are written; the fault-injection tests kill the
	// process there.
	Hook func(point string)
}

// Open connects to PostgreSQL and checks that it answers. Errors do not
// repeat the URL, so they never carry its password.
func Open(ctx context.Context, dsn string, opt Options) (*DB, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil { // its text may quote the URL, password included
		return nil, errors.New("database: the URL does not parse: fix database.url / SETTLE_DATABASE_URL")
	}
	setRuntime(cfg.Runtime, "statement_timeout", opt.StatementTimeout)
	setRuntime(cfg.Runtime, "idle_in_transaction_session_timeout", opt.IdleInTransactionTimeout)
	// The prepared statements (claims, records and new settlements, in
	// batches) take arrays: PostgreSQL would plan each run again for its
	// array's length, a quarter of its CPU on a payday. Their plans look
	// each row up by primary key whatever the length, so one generic plan
	// serves every run. Unprepared queries are planned each time anyway.
	cfg.Runtime["plan_cache_mode"] = "force_generic_plan"
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	x := sqlx.NewDb(sql.OpenDB(connector), "postgres")
	x.SetMaxOpenConns(cmpOr(opt.MaxOpenConns, 20))
	x.SetMaxIdleConns(cmpOr(opt.MaxIdleConns, cmpOr(opt.MaxOpenConns, 20)))
	x.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := x.PingContext(pingCtx); err != nil {
		_ = x.Close()
		return nil, connectError(err)
	}
	hook := opt.Hook
	if hook == nil {
		hook = func(string) {}
	}
	db := &DB{x: x, hook: hook, long: opt.LongStatementTimeout}
	db.claims, db.reclaims, db.completes = db.claimBatcher(claimQuery), db.claimBatcher(reclaimQuery), db.completeBatcher()
	return db, nil
}

// connectError says why the first connection failed and what to do. A
// server that answered and refused is reachable: its error code says why
// (the pq error names no password).
func connectError(err error) error {
	const fix = "database.url / SETTLE_DATABASE_URL"
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		return fmt.Errorf("database is not reachable (%w): start PostgreSQL or fix %s", err, fix)
	}
	switch {
	case pqErr.Code == pqerror.UndefinedObject && strings.Contains(pqErr.Message, `"plan_cache_mode"`):
		// Every connection asks for plan_cache_mode (see Open), which came in 12.
		return fmt.Errorf("database: the server does not know plan_cache_mode (%w): settle needs PostgreSQL 12 or later", err)
	case pqErr.Code == pqerror.UndefinedObject || pqErr.Code == pqerror.InvalidParameterValue:
		return fmt.Errorf("database refused a connection parameter (%w): remove or fix it in %s", err, fix)
	case pqErr.Code == pqerror.InvalidCatalogName:
		return fmt.Errorf("database refused the connection (%w): create the database or fix its name in %s", err, fix)
	case pqErr.Code.Class() == pqerror.ClassInvalidAuthorizationSpecification:
		return fmt.Errorf("database refused the login (%w): fix the user or password in %s", err, fix)
	}
	return fmt.Errorf("database refused the connection (%w): fix %s or the server", err, fix)
}

// setRuntime sets a run-time parameter, in milliseconds, that lib/pq sends
// PostgreSQL when it connects; d <= 0 leaves it as it is.
func setRuntime(params map[string]string, name string, d time.Duration) {
	if d > 0 {
		params[name] = strconv.FormatInt(d.Milliseconds(), 10)
	}
}

// readLong runs fn in a read-only transaction (repeatable read when
// snapshot) whose statements may run for the long statement timeout.
func (db *DB) readLong(ctx context.Context, snapshot bool, fn func(tx *sqlx.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if snapshot {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.x.BeginTxx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if db.long > 0 {
		if _, err := tx.ExecContext(ctx, `SELECT set_config('statement_timeout', $1, true)`,
			strconv.FormatInt(db.long.Milliseconds(), 10)); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Close closes the prepared statements and the pool.
func (db *DB) Close() error {
	db.stmts.Range(func(_, s any) bool {
		_ = s.(*sqlx.Stmt).Close()
		return true
	})
	return db.x.Close()
}

// SQL exposes the underlying pool for migrations and tests.
func (db *DB) SQL() *sql.DB { return db.x.DB }

func cmpOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// inTx runs fn in a transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUniqueViolation reports whether err is a unique violation of the named
// constraint or index.
func isUniqueViolation(err error, name string) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == pqerror.UniqueViolation && pqErr.Constraint == name
}

// runPrepared runs query as a statement prepared once per connection (see
// prepared) through run. After a migration changes the type of a column a
// prepared statement returns, PostgreSQL refuses to run it ("cached plan
// must not change result type", SQLSTATE 0A000) on every connection that
// prepared it, for as long as the connection lives: such a statement is
// forgotten, prepared again and run once more, and so is a run that failed
// on a statement a concurrent caller forgot (and closed) meanwhile. Each
// query is one statement in its own transaction, so a run that failed
// changed nothing; run must leave nothing behind when it fails, as it may
// be called again.
func (db *DB) runPrepared(ctx context.Context, query string, run func(*sqlx.Stmt) error) error {
	for retried := false; ; retried = true {
		stmt, err := db.prepared(ctx, query)
		if err != nil {
			return err
		}
		err = run(stmt)
		if isStalePlan(err) {
			db.forget(query, stmt)
		}
		if err == nil || errors.Is(err, sql.ErrNoRows) || retried || !db.replaced(query, stmt) {
			return err
		}
	}
}

// isStalePlan reports whether err is PostgreSQL refusing a prepared
// statement whose result type a schema change altered.
func isStalePlan(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == pqerror.FeatureNotSupported
}

// forget drops stmt, if it is still query's statement, and closes it once
// the runs in flight on it end.
func (db *DB) forget(query string, stmt *sqlx.Stmt) {
	if db.stmts.CompareAndDelete(query, stmt) {
		_ = stmt.Close()
	}
}

// replaced reports whether stmt is no longer query's statement.
func (db *DB) replaced(query string, stmt *sqlx.Stmt) bool {
	s, ok := db.stmts.Load(query)
	return !ok || s != stmt
}

// prepared returns query as a statement prepared on first use. The pool
// prepares it once per connection; after that each run is one round trip
// (an unprepared query with arguments costs lib/pq two).
func (db *DB) prepared(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if s, ok := db.stmts.Load(query); ok {
		return s.(*sqlx.Stmt), nil
	}
	s, err := db.x.PreparexContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, s); loaded {
		_ = s.Close()
		return prev.(*sqlx.Stmt), nil
	}
	return s, nil
}
