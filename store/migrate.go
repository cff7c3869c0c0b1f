package store

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/settle-dev/settle/migrations"
)

func (db *DB) migrator() (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectPostgres, db.x.DB, migrations.FS)
}

// Migrate applies ("up") or rolls back the last ("down") of the embedded
// migrations, writing one line per migration to out.
func (db *DB) Migrate(ctx context.Context, command string, out io.Writer) error {
	p, err := db.migrator()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var results []*goose.MigrationResult
	switch command {
	case "up":
		results, err = p.Up(ctx)
	case "down":
		var r *goose.MigrationResult
		if r, err = p.Down(ctx); r != nil {
			results = append(results, r)
		}
	default:
		return fmt.Errorf("migrate: unknown command %q: use up or down", command)
	}
	for _, r := range results {
		fmt.Fprintf(out, "%-4s %s (%s)\n", r.Direction, r.Source.Path, r.Duration.Round(1e6))
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", command, err)
	}
	if len(results) == 0 {
		fmt.Fprintln(out, "nothing to do: the schema is current")
	}
	return nil
}

// Rollback is what `settle migrate down` did, or with DryRun would do.
type Rollback struct {
	Migration string `json:"migration"`    // the file rolled back
	From      int64  `json:"from_version"` // the schema's version before
	To        int64  `json:"to_version"`   // and after
	DryRun    bool   `json:"dry_run"`
}

// migrationSubject is the audit subject of migrate down.
const migrationSubject = "schema"

// MigrateDown rolls back the newest applied migration, audited like every
// operator command that changes state:
//   - none applied: ErrNothingToDo, unaudited (there is no audit log);
//   - the connection's user may not change the schema (it may not delete
//     the migration's row from goose_db_version: a member of settle_daemon
//     or settle_operator): ErrRefused, audited as refused;
//   - otherwise the applied row is committed before the rollback, because
//     the rollback may change the audit log itself: below
//     00012_audit_outcome.sql the row loses its outcome and connection
//     columns (an older audit log's rows all read as applied), and
//     00003_operator.sql's Down drops the table, this row with it; below
//     that there is no audit log and the rollback goes unaudited. If the
//     rollback then fails (a migration's Down refusing, the database
//     failing), it changed nothing, each migration running in one
//     transaction, and a second row, refused, says why.
//
// A dry run reads only, and writes no audit row.
func (db *DB) MigrateDown(ctx context.Context, a Audit, dryRun bool, out io.Writer) (Rollback, error) {
	if err := a.validate(); err != nil {
		return Rollback{}, err
	}
	p, err := db.migrator()
	if err != nil {
		return Rollback{}, fmt.Errorf("migrate: %w", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return Rollback{}, fmt.Errorf("migrate down: %w", err)
	}
	rb := Rollback{DryRun: dryRun}
	for _, s := range st {
		if s.State == goose.StateApplied {
			rb.To, rb.From, rb.Migration = rb.From, s.Source.Version, filepath.Base(s.Source.Path)
		}
	}
	if rb.From == 0 {
		return rb, fmt.Errorf("%w: no migration is applied", ErrNothingToDo)
	}
	var logExists, logHasOutcome, mayChange bool
	err = db.x.QueryRowContext(ctx, `
		SELECT to_regclass('audit_log') IS NOT NULL,
		       EXISTS (SELECT 1 FROM information_schema.columns
		                WHERE table_schema = current_schema() AND table_name = 'audit_log' AND column_name = 'outcome'),
		       has_table_privilege('goose_db_version', 'DELETE')`).Scan(&logExists, &logHasOutcome, &mayChange)
	if err != nil || dryRun {
		return rb, err
	}
	before := map[string]any{"version": rb.From, "migration": rb.Migration}
	if !mayChange {
		err := fmt.Errorf("%w: the user of database.url may not change the schema: run settle migrate as the user that owns the schema (docs/security.md)", ErrRefused)
		if !logHasOutcome {
			return rb, err
		}
		return rb, db.auditRefusal(ctx, a, migrationSubject, err, before)
	}
	audit := func(outcome, detail string, after any) error {
		return db.inTx(ctx, func(tx *sqlx.Tx) error {
			return insertAudit(ctx, tx, a, migrationSubject, outcome, detail, before, after)
		})
	}
	if logExists {
		outcome := AuditApplied
		if !logHasOutcome {
			outcome = ""
		}
		if err := audit(outcome, "", map[string]any{"version": rb.To}); err != nil {
			return rb, fmt.Errorf("migrate down: write its audit row: %w; nothing was rolled back", err)
		}
	}
	if err := db.Migrate(ctx, "down", out); err != nil {
		if logHasOutcome {
			if aerr := audit(AuditRefused, fmt.Sprintf("the rollback failed; the schema stays at version %d: %v", rb.From, err), nil); aerr != nil {
				return rb, fmt.Errorf("%w; its audit row could not be written: %v", err, aerr)
			}
		}
		return rb, err
	}
	return rb, nil
}

// Migration is one embedded migration and whether the database has it.
type Migration struct {
	Version int64  `json:"version"`
	File    string `json:"file"`
	Applied bool   `json:"applied"`
	// AppliedAt is when it was applied; nil while it is pending.
	AppliedAt *time.Time `json:"applied_at,omitempty"`
}

// Migrations lists the embedded migrations, oldest first, each applied or
// pending.
func (db *DB) Migrations(ctx context.Context) ([]Migration, error) {
	p, err := db.migrator()
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	// goose keeps when it applied a migration as a timestamp without time
	// zone, in the session's zone: read back as an instant in that zone.
	var at []struct {
		Version int64     `db:"version_id"`
		At      time.Time `db:"at"`
	}
	if err := db.x.SelectContext(ctx, &at, `
		SELECT version_id, max(tstamp) AT TIME ZONE current_setting('TimeZone') AS at
		  FROM goose_db_version WHERE is_applied GROUP BY version_id`); err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	applied := make(map[int64]time.Time, len(at))
	for _, a := range at {
		applied[a.Version] = a.At
	}
	out := make([]Migration, 0, len(st))
	for _, s := range st {
		m := Migration{Version: s.Source.Version, File: s.Source.Path, Applied: s.State == goose.StateApplied}
		if t, ok := applied[m.Version]; ok && m.Applied {
			m.AppliedAt = &t
		}
		out = append(out, m)
	}
	return out, nil
}

// SchemaCurrent reports whether every embedded migration is applied, with
// the database's version and the binary's.
func (db *DB) SchemaCurrent(ctx context.Context) (current bool, have, want int64, err error) {
	p, err := db.migrator()
	if err != nil {
		return false, 0, 0, err
	}
	if have, err = p.GetDBVersion(ctx); err != nil {
		return false, 0, 0, err
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		want = srcs[len(srcs)-1].Version
	}
	return have >= want, have, want, nil
}
