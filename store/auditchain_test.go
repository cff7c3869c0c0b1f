package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// chainBreaks returns the details of verify's audit_chain_intact
// violations.
func chainBreaks(t *testing.T, db *store.DB) []string {
	t.Helper()
	var out []string
	for _, v := range verified(t, db) {
		if v.Check == "audit_chain_intact" {
			out = append(out, v.Detail)
		} else {
			t.Errorf("verify: unexpected violation %+v", v)
		}
	}
	return out
}

// appendAudits writes n audit rows, one applied command each.
func appendAudits(t *testing.T, db *store.DB, prefix string, n int) {
	t.Helper()
	for i := range n {
		a := store.Audit{Actor: "ops", Command: "customers payday", Reason: fmt.Sprintf("payday %d", i)}
		if _, err := db.SetEmployerPayday(context.Background(), fmt.Sprintf("%s-%d", prefix, i), 25, a); err != nil {
			t.Fatal(err)
		}
	}
}

// exec runs statements as db's user (the tests' owner of the schema).
func exec(t *testing.T, db *store.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.SQL().ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// idAt is the id of the audit row at seq.
func idAt(t *testing.T, db *store.DB, seq int) int {
	t.Helper()
	return count(t, db, `SELECT id::int FROM audit_log WHERE seq = $1`, seq)
}

// Rows appended from many goroutines at once, applied, refused and dry
// runs among them, form one chain: seq runs 1..n without a gap while the
// ids skip the values of the dry runs' rolled-back rows, and verify finds
// the chain intact.
func TestAuditChainHoldsUnderConcurrentAppends(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if got := chainBreaks(t, db); len(got) != 0 {
		t.Fatalf("an empty audit log: %v", got)
	}
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	const workers, each = 8, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				a := store.Audit{Actor: fmt.Sprintf("ops%d", w), Command: "test", Reason: fmt.Sprintf("round %d", i)}
				var err error
				switch i % 3 {
				case 0: // applied
					_, err = db.SetEmployerPayday(ctx, fmt.Sprintf("E%d-%d", w, i), 1+i, a)
				case 1: // refused, in a transaction of its own
					if _, err = db.SetEmployerPayday(ctx, "E", 40, a); errors.Is(err, store.ErrRefused) {
						err = nil
					}
				case 2: // a dry run writes its row and rolls it back
					_, err = db.Cancel(ctx, created.SettlementID, a, true)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rows := count(t, db, `SELECT count(*) FROM audit_log`)
	if want := workers * each * 2 / 3; rows != want {
		t.Fatalf("%d audit rows, want %d", rows, want)
	}
	if n := count(t, db, `SELECT count(DISTINCT seq) FROM audit_log WHERE seq BETWEEN 1 AND $1`, rows); n != rows {
		t.Fatalf("seq takes %d distinct values in 1..%d", n, rows)
	}
	if maxID := count(t, db, `SELECT max(id)::int FROM audit_log`); maxID <= rows {
		t.Fatalf("max id %d with %d rows: the dry runs were expected to leave gaps in id", maxID, rows)
	}
	if head := count(t, db, `SELECT seq::int FROM audit_chain`); head != rows {
		t.Fatalf("chain head at seq %d, want %d", head, rows)
	}
	if got := chainBreaks(t, db); len(got) != 0 {
		t.Fatalf("verify after concurrent appends: %v", got)
	}
	// The hash does not depend on the session computing it.
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	var differ int
	if _, err := tx.ExecContext(ctx, `SET LOCAL TimeZone = 'America/St_Johns'; SET LOCAL DateStyle = 'SQL, DMY'; SET LOCAL extra_float_digits = 0`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit_log a WHERE audit_log_hash(a) <> hash`).Scan(&differ); err != nil || differ != 0 {
		t.Fatalf("%d rows hash otherwise in another time zone and date style (%v)", differ, err)
	}
	listed, err := db.ListAudit(ctx, "", 3)
	if err != nil || len(listed) != 3 || listed[0].Seq != int64(rows) || listed[2].Seq != int64(rows-2) || len(listed[0].Hash) != 64 {
		t.Fatalf("newest audit rows %+v %v: want seq %d down, with their hashes", listed, err, rows)
	}
}

// Changing, removing or slipping in a row behind the append-only trigger's
// back (as the table's owner can) breaks the chain, and verify names the
// first row that does not match.
func TestAuditChainReportsTampering(t *testing.T) {
	t.Parallel()
	const disable = `ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`
	const enable = `ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, db *store.DB)
		want   func(t *testing.T, db *store.DB) string
	}{{
		name: "a reason changed",
		tamper: func(t *testing.T, db *store.DB) {
			exec(t, db, disable, `UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3`, enable)
		},
		want: func(t *testing.T, db *store.DB) string {
			return fmt.Sprintf("audit_log row %d (seq 3): its content does not match its hash", idAt(t, db, 3))
		},
	}, {
		name: "a click set on a row that answered none",
		tamper: func(t *testing.T, db *store.DB) {
			exec(t, db, disable, `UPDATE audit_log SET click = 'slack:T1:trigger:1.0' WHERE seq = 3`, enable)
		},
		want: func(t *testing.T, db *store.DB) string {
			return fmt.Sprintf("audit_log row %d (seq 3): its content does not match its hash", idAt(t, db, 3))
		},
	}, {
		name: "a row removed",
		tamper: func(t *testing.T, db *store.DB) {
			exec(t, db, disable, `DELETE FROM audit_log WHERE seq = 3`, enable)
		},
		want: func(t *testing.T, db *store.DB) string {
			return fmt.Sprintf("audit_log row %d (seq 4): seq 3 before it is missing", idAt(t, db, 4))
		},
	}, {
		name: "the newest row removed",
		tamper: func(t *testing.T, db *store.DB) {
			exec(t, db, disable, `DELETE FROM audit_log WHERE seq = 5`, enable)
		},
		want: func(t *testing.T, db *store.DB) string {
			return fmt.Sprintf("the chain head is at seq 5 but the last row is row %d (seq 4)", idAt(t, db, 4))
		},
	}, {
		name: "a row changed and its hash recomputed",
		tamper: func(t *testing.T, db *store.DB) {
			exec(t, db, disable, `UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2`,
				`UPDATE audit_log a SET hash = audit_log_hash(a) WHERE seq = 2`, enable)
		},
		want: func(t *testing.T, db *store.DB) string {
			return fmt.Sprintf("audit_log row %d (seq 3): its prev_hash is not the hash of the row before it (row %d)",
				idAt(t, db, 3), idAt(t, db, 2))
		},
	}, {
		name: "a row written outside the chain, with a hash of its content",
		tamper: func(t *testing.T, db *store.DB) {
			exec(t, db, `ALTER TABLE audit_log DISABLE TRIGGER audit_log_seal`,
				`INSERT INTO audit_log (actor, command, reason, outcome, seq, prev_hash, hash)
				 SELECT 'ops', 'forged', 'r', 'applied', seq + 1, hash, hash FROM audit_chain`,
				`ALTER TABLE audit_log ENABLE TRIGGER audit_log_seal`,
				disable, `UPDATE audit_log a SET hash = audit_log_hash(a) WHERE seq = 6`, enable)
		},
		want: func(t *testing.T, db *store.DB) string {
			return fmt.Sprintf("the rows after seq 5 (the chain head), up to row %d (seq 6), were written outside the chain", idAt(t, db, 6))
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := newDB(t)
			appendAudits(t, db, "E", 5)
			if got := chainBreaks(t, db); len(got) != 0 {
				t.Fatalf("before tampering: %v", got)
			}
			c.tamper(t, db)
			want := c.want(t, db)
			got := chainBreaks(t, db)
			if len(got) != 1 || !strings.Contains(got[0], want) {
				t.Fatalf("verify after tampering: %q, want one audit_chain_intact violation saying %q", got, want)
			}
		})
	}
}

// A client cannot write a row outside the chain: the seq, prev_hash and
// hash it gives are overwritten, and the daemon's role may not move the
// chain's head.
func TestAuditChainIsTheDatabases(t *testing.T) {
	t.Parallel()
	_, daemon := migratedAs(t, store.DaemonRole)
	appendAudits(t, daemon, "E", 2)
	exec(t, daemon, `INSERT INTO audit_log (actor, command, reason, outcome, seq, prev_hash, hash)
		VALUES ('x', 'forged', 'r', 'applied', 99, '\x01', '\x02')`)
	if n := count(t, daemon, `SELECT count(*) FROM audit_log WHERE command = 'forged' AND seq = 3 AND length(hash) = 32`); n != 1 {
		t.Fatalf("a row with a seq and hash of the client's: %d rows chained as seq 3", n)
	}
	if got := chainBreaks(t, daemon); len(got) != 0 {
		t.Fatalf("verify: %v", got)
	}
	refused(t, daemon, `UPDATE audit_chain SET seq = 0`, `DELETE FROM audit_chain`)
}

// The migration that brings the chain chains the rows written before it in
// id order, and a rollback of it keeps the rows.
func TestAuditChainMigrationChainsExistingRows(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	appendAudits(t, db, "before", 2)
	if _, err := db.MigrateDown(ctx, store.Audit{Actor: "ops", Command: "migrate down", Reason: "test"}, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	appendAudits(t, db, "unchained", 3)
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	rows := count(t, db, `SELECT count(*) FROM audit_log`)
	if rows != 6 || count(t, db, `
		SELECT count(*) FROM (SELECT seq, row_number() OVER (ORDER BY id) AS n FROM audit_log) r WHERE seq = n`) != rows {
		t.Fatalf("%d rows, not chained in id order", rows)
	}
	if got := chainBreaks(t, db); len(got) != 0 {
		t.Fatalf("verify after the migration: %v", got)
	}
	appendAudits(t, db, "after", 1)
	if got := chainBreaks(t, db); len(got) != 0 || count(t, db, `SELECT seq::int FROM audit_chain`) != 7 {
		t.Fatalf("verify after one more row: %v", got)
	}
}

// An actor that is empty, too long, or holds spaces, control or invisible
// characters is refused before anything is read: nothing changes and no
// audit row is written.
func TestAuditRefusesABadActor(t *testing.T) {
	t.Parallel()
	for _, good := range []string{"kim.lee", "kim@ops.example", `CORP\kim`, "slack:U024BE7LH", "slack:T024BE7LG/U024BE7LH", "김철수", "svc_settle-2", strings.Repeat("a", 128)} {
		if err := store.CheckActor(good); err != nil {
			t.Errorf("actor %q refused: %v", good, err)
		}
	}
	bad := []string{"", " ", "kim lee", "kim\n", "kim\x1b[31m", "\u202ekim", "kim\u200b", "-kim", "@kim", "/kim", strings.Repeat("a", 129), "\xff"}
	for _, b := range bad {
		if err := store.CheckActor(b); err == nil {
			t.Errorf("actor %q accepted", b)
		}
	}
	db := newDB(t)
	ctx := context.Background()
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	before := snapshot(t, db, created.SettlementID)
	for _, b := range bad {
		_, err := db.Cancel(ctx, created.SettlementID, store.Audit{Actor: b, Command: "cancel", Reason: "r"}, false)
		if !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), "--actor") {
			t.Errorf("cancel as %q: %v, want a refusal naming --actor", b, err)
		}
	}
	if after := snapshot(t, db, created.SettlementID); after != before || lastAudit(t, db) != 0 {
		t.Fatalf("a refused actor changed the settlement or wrote audit rows (last id %d)", lastAudit(t, db))
	}
}

// Changes shows what a command changed, field by field, from the before
// and after its row keeps (the rows of a cancel: TestListAuditShowsOutcomeAndConnection).
func TestAuditChangesShowBeforeAndAfter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		before, after string
		want          []string
	}{
		{`null`, `{"imported": 3}`, []string{"imported: (none) → 3"}},
		{`{"version": 18, "migration": "00018_audit_chain.sql"}`, `{"version": 17}`,
			[]string{"migration: 00018_audit_chain.sql → (none)", "version: 18 → 17"}},
		{`{"payday": null}`, `{"payday": 25}`, []string{"payday: null → 25"}},
		{`{"a": [1, 2]}`, `{"a": [1, 2, {"k": "v"}]}`, []string{`a[2]: (none) → {"k":"v"}`}},
		{`{"holder": "Kim"}`, `{"holder": ""}`, []string{`holder: Kim → ""`}},
		{`{"x": 1}`, `{"x": 1}`, nil},
		{`{"x": 1}`, `null`, nil}, // refused: nothing changed
	} {
		r := store.AuditRow{Before: []byte(c.before), After: []byte(c.after)}
		if got := r.Changes(); !slices.Equal(got, c.want) {
			t.Errorf("changes %s → %s: %q, want %q", c.before, c.after, got, c.want)
		}
	}
}
