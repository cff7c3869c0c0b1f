package settletest

import (
	"context"
	"io"
	"testing"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/store"
)

// NewDB opens a store on a fresh database of the test's own, migrated up,
// with at most conns connections; it is closed when the test ends.
func NewDB(t testing.TB, conns int) *store.DB {
	t.Helper()
	return OpenDB(t, testenv.PostgresURL(t), conns)
}

// OpenDB opens a store on the database at url, migrated up, with at most
// conns connections; it is closed when the test ends.
func OpenDB(t testing.TB, url string, conns int) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url, store.Options{MaxOpenConns: conns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	return db
}
