package store

import (
	"context"
	"fmt"
	"io"

	"github.com/pressly/goose/v3"

	"github.com/settle-dev/settle/migrations"
)

func (db *DB) migrator() (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectPostgres, db.x.DB, migrations.FS)
}

// Migrate applies ("up"), rolls back the last ("down") or reports ("status")
// the embedded migrations, writing one line per migration to out.
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
	case "status":
		return db.printStatus(ctx, p, out)
	default:
		return fmt.Errorf("migrate: unknown command %q: use up, down or status", command)
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

func (db *DB) printStatus(ctx context.Context, p *goose.Provider, out io.Writer) error {
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	for _, s := range st {
		at := "pending"
		if s.State == goose.StateApplied {
			at = "applied " + s.AppliedAt.Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(out, "%-24s %s\n", s.Source.Path, at)
	}
	return nil
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
