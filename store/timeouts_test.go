package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/store"
)

// Every connection of the pool carries the statement and idle-in-transaction
// timeouts, and PostgreSQL enforces them; the long reads (reconcile
// snapshots, invariant checks) run under the long statement timeout.
func TestPoolConnectionsCarryTimeouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.PostgresURL(t), store.Options{
		MaxOpenConns: 4, StatementTimeout: 300 * time.Millisecond,
		IdleInTransactionTimeout: 2 * time.Second, LongStatementTimeout: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for name, want := range map[string]string{"statement_timeout": "300ms", "idle_in_transaction_session_timeout": "2s"} {
		var got string
		if err := db.SQL().QueryRowContext(ctx, `SHOW `+name).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", name, got, err, want)
		}
	}
	var pqErr *pq.Error
	if _, err := db.SQL().ExecContext(ctx, `SELECT pg_sleep(5)`); !errors.As(err, &pqErr) || pqErr.Code != "57014" {
		t.Errorf("a 5s statement under a 300ms statement_timeout: %v; want it cancelled (57014)", err)
	}
	if got, err := db.LongStatementTimeout(ctx); err != nil || got != "1h" {
		t.Errorf("statement_timeout in a long read = %q (%v), want 1h", got, err)
	}
}

// A URL that does not parse is refused without repeating it: it may carry
// the password.
func TestOpenBadURLHidesPassword(t *testing.T) {
	t.Parallel()
	_, err := store.Open(context.Background(), "postgres://settle:hunter2-secret@db:notaport/settle", store.Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("Open with a bad URL: %v; want an error without the password", err)
	}
}
