package store_test

import (
	"context"
	"errors"
	"net/url"
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

// A server that answers and refuses is not "not reachable": the error says
// what it refused and what to fix.
func TestOpenRefusedSaysWhy(t *testing.T) {
	t.Parallel()
	dsn := testenv.PostgresURL(t)
	with := func(edit func(u *url.URL)) string {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		edit(u)
		return u.String()
	}
	param := func(k, v string) string {
		return with(func(u *url.URL) {
			q := u.Query()
			q.Set(k, v)
			u.RawQuery = q.Encode()
		})
	}
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"unknown parameter", param("settle_no_such_setting", "1"),
			[]string{"refused a connection parameter", "settle_no_such_setting", "remove or fix it in database.url"}},
		{"bad parameter value", param("statement_timeout", "soon"),
			[]string{"refused a connection parameter", "statement_timeout", "database.url"}},
		{"no such database", with(func(u *url.URL) { u.Path = "/settle_no_such_database" }),
			[]string{"settle_no_such_database", "create the database or fix its name in database.url"}},
	} {
		_, err := store.Open(context.Background(), tc.url, store.Options{})
		if err == nil {
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want it to say %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "not reachable") {
			t.Errorf("%s: %v; the server answered, so it is reachable", tc.name, err)
		}
	}
}
