package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/store"
)

// settle migrate down is an operator command like the others: without a
// reason it is refused and changes nothing; a dry run says what it would
// roll back; with a reason it rolls back the newest migration only, and its
// audit row, written before the rollback, names who, why and the versions.
// The audit flags are refused with up and status.
func TestMigrateDownIsAudited(t *testing.T) {
	pg := testenv.PostgresURL(t)
	clearSettleEnv(t)
	path := writeConfig(t, "database: {url: \""+pg+"\"}\nredis: {url: redis://"+testenv.UnreachableRedis(t)+"/0}\n"+goodProvider)
	run := func(want int, args ...string) string {
		t.Helper()
		out, msg, code := runCLI(t, append(args, "--config", path)...)
		if code != want {
			t.Fatalf("settle %s: exit %d, want %d: %s %s", strings.Join(args, " "), code, want, msg, out)
		}
		return out + msg
	}
	run(0, "migrate", "up")
	db, err := store.Open(context.Background(), pg, store.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	version := func() int64 {
		t.Helper()
		_, have, _, err := db.SchemaCurrent(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return have
	}
	audited := func() []store.AuditRow {
		t.Helper()
		rows, err := db.ListAudit(ctx, "schema", 10)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	newest := version()

	if out := run(2, "migrate", "down"); !strings.Contains(out, "--reason is required") {
		t.Fatalf("migrate down without a reason: %s", out)
	}
	if out := run(0, "migrate", "down", "--reason", "try", "--dry-run"); !strings.Contains(out, "dry run: would roll back") {
		t.Fatalf("migrate down --dry-run: %s", out)
	}
	if v, rows := version(), audited(); v != newest || len(rows) != 0 {
		t.Fatalf("a refused and a dry migrate down: version %d (was %d), %d audit rows", v, newest, len(rows))
	}
	if out := run(2, "migrate", "up", "--reason", "x"); !strings.Contains(out, "--reason is for migrate down") {
		t.Fatalf("migrate up --reason: %s", out)
	}

	out := run(0, "migrate", "down", "--reason", "the newest migration breaks the reports", "--actor", "ops-kim")
	if v := version(); v != newest-1 || !strings.Contains(out, "rolled back") {
		t.Fatalf("migrate down: version %d, want %d: %s", v, newest-1, out)
	}
	run(0, "migrate", "up")
	if v := version(); v != newest {
		t.Fatalf("migrate up after down: version %d, want %d", v, newest)
	}
	rows := audited() // ListAudit reads the newest schema: the row written before the rollback stays, chained again
	if len(rows) != 1 {
		t.Fatalf("%d audit rows after migrate down, want 1", len(rows))
	}
	r := rows[0]
	var before, after struct{ Version int64 }
	if err := json.Unmarshal(r.Before, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.After, &after); err != nil {
		t.Fatal(err)
	}
	if r.Command != "migrate down" || r.Actor != "ops-kim" || r.Outcome != store.AuditApplied ||
		r.Reason != "the newest migration breaks the reports" || before.Version != newest || after.Version != newest-1 {
		t.Fatalf("audit row %+v (before %s, after %s)", r, r.Before, r.After)
	}
}
