package store

import (
	"context"

	"github.com/jmoiron/sqlx"
)

// LongStatementTimeout is the statement_timeout in force in a long read.
func (db *DB) LongStatementTimeout(ctx context.Context) (string, error) {
	var shown string
	err := db.readLong(ctx, true, func(tx *sqlx.Tx) error {
		return tx.GetContext(ctx, &shown, `SHOW statement_timeout`)
	})
	return shown, err
}
