package settletest

import (
	"context"
	"io"
	"testing"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/store"
)

// NewDB opens a database of the test's own on the test PostgreSQL
// (testenv.PostgresURL) with OpenDB.
func NewDB(t testing.TB, maxOpenConns int) *store.DB {
	t.Helper()
	return OpenDB(t, testenv.PostgresURL(t), maxOpenConns)
}

// OpenDB opens the database at url with a pool of at most maxOpenConns
// connections, applies every migration, and closes it when the test ends.
func OpenDB(t testing.TB, url string, maxOpenConns int) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url, store.Options{MaxOpenConns: maxOpenConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	return db
}
