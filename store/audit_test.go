package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// auditedRow is one audit_log row as a test reads it, the database's view
// of the connection included.
type auditedRow struct {
	Actor, Command, Args, Reason, Outcome, Detail, DBUser, Client string
	After                                                         *string
}

// newAudit fails the test unless exactly one audit row about subject was
// written since the row with ID after, and returns it.
func newAudit(t *testing.T, db *store.DB, subject string, after int64) auditedRow {
	t.Helper()
	ctx := context.Background()
	if n := count(t, db, `SELECT count(*) FROM audit_log WHERE subject = $1 AND id > $2`, subject, after); n != 1 {
		t.Fatalf("%d new audit rows about %s, want 1", n, subject)
	}
	var r auditedRow
	if err := db.SQL().QueryRowContext(ctx, `
		SELECT actor, command, args::text, reason, outcome, detail, coalesce(db_user, ''),
		       coalesce(host(client_addr), 'local'), after::text
		  FROM audit_log WHERE subject = $1 AND id > $2`, subject, after).
		Scan(&r.Actor, &r.Command, &r.Args, &r.Reason, &r.Outcome, &r.Detail, &r.DBUser, &r.Client, &r.After); err != nil {
		t.Fatal(err)
	}
	return r
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// lastAudit is the ID of the newest audit row (0 for none).
func lastAudit(t *testing.T, db *store.DB) int64 {
	t.Helper()
	return int64(count(t, db, `SELECT coalesce(max(id), 0)::int FROM audit_log`))
}

// snapshot is everything about a settlement an operator command may change:
// its row, its steps, their attempts and journals, its alerts and its VA.
func snapshot(t *testing.T, db *store.DB, id int64) string {
	t.Helper()
	var s string
	if err := db.SQL().QueryRowContext(context.Background(), `
		SELECT jsonb_build_object(
		  'settlement', (SELECT to_jsonb(s) FROM settlements s WHERE id = $1),
		  'steps', (SELECT jsonb_agg(to_jsonb(st) ORDER BY id) FROM steps st WHERE settlement_id = $1),
		  'transfers', (SELECT jsonb_agg(to_jsonb(t) ORDER BY t.id) FROM transfers t JOIN steps st ON st.id = t.step_id WHERE st.settlement_id = $1),
		  'journals', (SELECT count(*) FROM journals j JOIN steps st ON st.id = j.step_id WHERE st.settlement_id = $1),
		  'alerts', (SELECT jsonb_agg(to_jsonb(a) ORDER BY id) FROM alerts a WHERE settlement_id = $1),
		  'va', (SELECT to_jsonb(va) FROM virtual_accounts va JOIN settlements s ON s.va_id = va.id WHERE s.id = $1))::text`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// connection is who PostgreSQL sees on db's connections: its session user
// and client host ("local" for a Unix socket).
func connection(t *testing.T, db *store.DB) (user, client string) {
	t.Helper()
	if err := db.SQL().QueryRowContext(context.Background(),
		`SELECT session_user, coalesce(host(inet_client_addr()), 'local')`).Scan(&user, &client); err != nil {
		t.Fatal(err)
	}
	return user, client
}

// A settlement command that is refused, or has nothing to do, changes
// nothing but leaves exactly one audit row: what was asked, by whom (as
// claimed and as the database saw the connection), the outcome and why. Its
// dry run writes nothing.
func TestRefusedAndNoOpSettlementCommandsAreAudited(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	user, client := connection(t, db)

	_, moved := seedSettlement(t, db, "moved", 500_000, pipeline.Obligations{})
	completeStep(t, db, claimStep(t, db, moved.HeadStepID, time.Minute)) // the SWEEP moved money
	_, settled := seedSettlement(t, db, "settled", 500_000, pipeline.Obligations{})
	settleAll(t, db, settled.HeadStepID)
	_, cancelled := seedSettlement(t, db, "cancelled", 500_000, pipeline.Obligations{})
	if _, err := db.Cancel(ctx, cancelled.SettlementID, store.Audit{Actor: "ops", Command: "cancel", Reason: "first"}, false); err != nil {
		t.Fatal(err)
	}

	type op func(context.Context, int64, store.Audit, bool) (store.Outcome, error)
	for _, c := range []struct {
		name    string
		id      int64
		command string
		run     op
		want    error
		outcome string
		why     string
	}{
		{"cancel after money moved", moved.SettlementID, "cancel", db.Cancel, store.ErrRefused, "refused", "money may have moved"},
		{"compensate a RUNNING settlement", moved.SettlementID, "compensate", db.Compensate, store.ErrRefused, "refused", "only a FAILED settlement is compensated"},
		{"replay a SETTLED settlement", settled.SettlementID, "replay", replayer(db), store.ErrNothingToDo, "nothing_to_do", "is SETTLED"},
		{"cancel a CANCELLED settlement", cancelled.SettlementID, "cancel", db.Cancel, store.ErrNothingToDo, "nothing_to_do", "already CANCELLED"},
		{"cancel a settlement that does not exist", 999_999, "cancel", db.Cancel, store.ErrNotFound, "refused", "not found"},
	} {
		subject := "settlement:" + itoa(c.id)
		a := store.Audit{Actor: "alice", Command: c.command, Args: map[string]any{"settlement": c.id}, Reason: "try " + c.name}
		before, mark := snapshot(t, db, c.id), lastAudit(t, db)
		if _, err := c.run(ctx, c.id, a, true); !errors.Is(err, c.want) {
			t.Fatalf("%s, dry run: err = %v, want %v", c.name, err, c.want)
		}
		if n := lastAudit(t, db); n != mark {
			t.Fatalf("%s: a dry run wrote audit rows (last ID %d, was %d)", c.name, n, mark)
		}
		_, err := c.run(ctx, c.id, a, false)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if after := snapshot(t, db, c.id); after != before {
			t.Fatalf("%s changed the settlement:\nbefore %s\nafter  %s", c.name, before, after)
		}
		r := newAudit(t, db, subject, mark)
		want := auditedRow{Actor: "alice", Command: c.command, Reason: a.Reason, Outcome: c.outcome, DBUser: user, Client: client}
		if r.Actor != want.Actor || r.Command != want.Command || r.Reason != want.Reason || r.Outcome != want.Outcome ||
			r.DBUser != want.DBUser || r.Client != want.Client {
			t.Errorf("%s: audit row %+v, want %+v", c.name, r, want)
		}
		if r.Detail != err.Error() || !strings.Contains(r.Detail, c.why) {
			t.Errorf("%s: audit detail %q, want the command's error %q (naming %q)", c.name, r.Detail, err, c.why)
		}
		if !strings.Contains(r.Args, itoa(c.id)) || r.After != nil {
			t.Errorf("%s: audit args %s, after %v: want what was asked and no state after", c.name, r.Args, r.After)
		}
	}
	mark := lastAudit(t, db)
	if _, err := db.Cancel(ctx, moved.SettlementID, store.Audit{Actor: "alice", Command: "cancel"}, false); !errors.Is(err, store.ErrRefused) {
		t.Fatalf("cancel without a reason: %v", err)
	}
	if n := lastAudit(t, db); n != mark {
		t.Fatalf("a command without a reason wrote an audit row")
	}
}

// An applied command's audit row says so, with no refusal text.
func TestAppliedCommandIsAuditedAsApplied(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	user, client := connection(t, db)
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	mark := lastAudit(t, db)
	if _, err := db.Cancel(ctx, created.SettlementID, store.Audit{Actor: "ops", Command: "cancel", Reason: "customer left"}, false); err != nil {
		t.Fatal(err)
	}
	r := newAudit(t, db, "settlement:"+itoa(created.SettlementID), mark)
	if r.Outcome != "applied" || r.Detail != "" || r.After == nil || !strings.Contains(*r.After, "CANCELLED") ||
		r.DBUser != user || r.Client != client {
		t.Fatalf("audit row of an applied cancel: %+v", r)
	}
}

// Every state-changing command outside the settlement ones audits its
// refusals the same way: customers update, payday, import and migrate, and
// resolving a reconciliation finding.
func TestRefusedCustomerAndFindingCommandsAreAudited(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	seedSettlement(t, db, "open", 500_000, pipeline.Obligations{}) // an open settlement: not migrated
	addCustomer(t, db, "c1", "sandbox")
	a := func(command string) store.Audit {
		return store.Audit{Actor: "alice", Command: command, Args: map[string]any{"x": 1}, Reason: "try " + command}
	}
	check := func(name, subject string, mark int64, err, want error, outcome string) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: err = %v, want %v", name, err, want)
		}
		r := newAudit(t, db, subject, mark)
		if r.Outcome != outcome || r.Actor != "alice" || r.Reason == "" || r.Detail == "" || !strings.Contains(err.Error(), r.Detail) || r.DBUser == "" {
			t.Errorf("%s: audit row %+v, want %s with why", name, r, outcome)
		}
	}

	neg := int64(-1)
	before, _ := db.GetCustomer(ctx, "c1")
	mark := lastAudit(t, db)
	_, err := db.UpdateCustomer(ctx, "c1", store.CustomerPatch{Outstanding: &neg}, a("customers update"))
	check("customers update with a negative debt", "customer:c1", mark, err, store.ErrRefused, "refused")
	if after, _ := db.GetCustomer(ctx, "c1"); after != before {
		t.Errorf("a refused update changed the customer: %+v, was %+v", after, before)
	}

	mark = lastAudit(t, db)
	bad := 32
	_, err = db.SetCustomerPayday(ctx, "c1", store.PaydayPatch{Payday: &bad}, a("customers payday"))
	check("customer payday 32", "customer:c1", mark, err, store.ErrRefused, "refused")

	mark = lastAudit(t, db)
	_, err = db.SetEmployerPayday(ctx, "ACME", 0, a("customers payday"))
	check("employer payday 0", "employer:ACME", mark, err, store.ErrRefused, "refused")

	mark = lastAudit(t, db)
	_, err = db.ImportCustomers(ctx, []store.NewCustomer{{ExternalRef: "c1", HolderName: "Kim", Provider: "sandbox",
		VANumber: "VA-other", Currency: "KRW", Payout: pipeline.Payee{Account: "OWN", Holder: "Kim"}}}, a("customers import"))
	check("import of an existing customer", "customers", mark, err, store.ErrRefused, "refused")

	mark = lastAudit(t, db)
	req := store.MigrateRequest{To: "modern", Batch: 10, NewVA: newVA, Audit: a("customers migrate")}
	out, err := db.MigrateCustomers(ctx, req)
	if err != nil || refs(out.Moved) != "c1" || len(out.Skipped) != 1 {
		t.Fatalf("migrate: %+v %v", out, err)
	}
	if r := newAudit(t, db, "customer:open", mark); r.Outcome != "refused" || r.Detail != out.Skipped[0].Reason || r.Command != "customers migrate" {
		t.Errorf("audit row of the customer a migration skipped: %+v, want refused: %s", r, out.Skipped[0].Reason)
	}

	run, _ := db.StartReconcileRun(ctx, "sandbox", time.Now(), false)
	rec, err := db.RecordFindings(ctx, run, []pipeline.Finding{{Provider: "sandbox", Kind: pipeline.FindingMissingAtBank,
		Fingerprint: "f1", Account: "VA00001234", Key: "k1", Amount: 10, OccurredAt: time.Now(), Detail: "missing"}})
	if err != nil {
		t.Fatal(err)
	}
	id := rec[0].ID
	if _, err := db.ActOnFinding(ctx, id, false, a("reconcile findings resolve")); err != nil {
		t.Fatal(err)
	}
	mark = lastAudit(t, db)
	_, err = db.ActOnFinding(ctx, id, false, a("reconcile findings resolve"))
	check("resolve a resolved finding", "reconcile_finding:"+itoa(id), mark, err, store.ErrNothingToDo, "nothing_to_do")
	mark = lastAudit(t, db)
	_, err = db.ActOnFinding(ctx, 999_999, false, a("reconcile findings resolve"))
	check("resolve a finding that does not exist", "reconcile_finding:999999", mark, err, store.ErrNotFound, "refused")
}

// The audit row names the database user and client host PostgreSQL saw,
// whatever the actor claims and whatever a client writes into those
// columns; the audit log stays append-only for the daemon's role.
func TestAuditRecordsTheDatabaseUserNotTheClaim(t *testing.T) {
	t.Parallel()
	admin, daemon := migratedAs(t, store.DaemonRole)
	ctx := context.Background()
	user, client := connection(t, daemon)
	if owner, _ := connection(t, admin); owner == user {
		t.Fatalf("the daemon's login user %s is the schema owner: the test shows nothing", user)
	}
	_, created := seedSettlement(t, daemon, "c1", 500_000, pipeline.Obligations{})
	settleAll(t, daemon, created.HeadStepID)
	mark := lastAudit(t, daemon)
	if _, err := daemon.Cancel(ctx, created.SettlementID, store.Audit{Actor: "postgres", Command: "cancel", Reason: "pretend"}, false); !errors.Is(err, store.ErrRefused) {
		t.Fatalf("cancel of a SETTLED settlement: %v", err)
	}
	if r := newAudit(t, daemon, "settlement:"+itoa(created.SettlementID), mark); r.Actor != "postgres" || r.DBUser != user || r.Client != client {
		t.Fatalf("audit row %+v: want the claimed actor beside the database user %s at %s", r, user, client)
	}
	if _, err := daemon.SQL().ExecContext(ctx, `
		INSERT INTO audit_log (actor, command, reason, outcome, db_user, client_addr)
		VALUES ('x', 'forged', 'r', 'applied', 'postgres', '10.9.8.7')`); err != nil {
		t.Fatal(err)
	}
	var gotUser, gotClient string
	if err := daemon.SQL().QueryRowContext(ctx, `
		SELECT db_user, coalesce(host(client_addr), 'local') FROM audit_log WHERE command = 'forged'`).Scan(&gotUser, &gotClient); err != nil ||
		gotUser != user || gotClient != client {
		t.Fatalf("a forged row records %s at %s (%v), want %s at %s", gotUser, gotClient, err, user, client)
	}
	refused(t, daemon, `UPDATE audit_log SET db_user = 'x'`, `DELETE FROM audit_log`)
}

// The audit list shows each row's outcome, why, the connection's user
// and host, and what an applied command changed.
func TestListAuditShowsOutcomeAndConnection(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	user, client := connection(t, db)
	_, created := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{})
	a := store.Audit{Actor: "ops", Command: "cancel", Reason: "customer left"}
	if _, err := db.Cancel(ctx, created.SettlementID, a, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Cancel(ctx, created.SettlementID, a, false); !errors.Is(err, store.ErrNothingToDo) {
		t.Fatal(err)
	}
	rows, err := db.ListAudit(ctx, "settlement:"+itoa(created.SettlementID), 10)
	if err != nil || len(rows) != 2 {
		t.Fatalf("audit: %+v %v", rows, err)
	}
	if r := rows[0]; r.Outcome != store.AuditNothingToDo || !strings.Contains(r.Detail, "already CANCELLED") ||
		r.DBUser != user || r.Client != client || string(r.After) != "null" {
		t.Errorf("no-op row %+v", r)
	}
	if r := rows[1]; r.Outcome != store.AuditApplied || r.Detail != "" || r.DBUser != user || r.Client != client {
		t.Errorf("applied row %+v", r)
	}
	if got := rows[0].Changes(); got != nil {
		t.Errorf("changes of a no-op cancel: %q, want none", got)
	}
	got := rows[1].Changes()
	for _, w := range []string{"status: RUNNING → CANCELLED", "steps[0].status: READY → CANCELLED", "steps[1].status: PENDING → CANCELLED"} {
		if !slices.Contains(got, w) {
			t.Errorf("changes of a cancel %q lack %q", got, w)
		}
	}
	b, _ := json.Marshal(rows[0])
	for _, k := range []string{`"outcome":"nothing_to_do"`, `"db_user":`, `"client":`, `"detail":`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("audit JSON %s lacks %s", b, k)
		}
	}
}

// Migrating down past the audit outcome refuses while a refused command's
// row exists: without its outcome the row would read as applied. The failed
// rollback changes nothing, and a second audit row, refused, says so beside
// the one written before it.
func TestMigrateDownKeepsRefusalsReadable(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if _, err := db.Cancel(ctx, 999, store.Audit{Actor: "ops", Command: "cancel", Reason: "wrong id"}, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel of an unknown settlement: %v", err)
	}
	hasOutcome := func() bool {
		return count(t, db, `SELECT count(*) FROM information_schema.columns
		                      WHERE table_schema = current_schema() AND table_name = 'audit_log' AND column_name = 'outcome'`) == 1
	}
	a := store.Audit{Actor: "ops", Command: "migrate down", Reason: "back before the audit outcome"}
	for hasOutcome() { // down from the newest migration until it is the audit outcome's
		rb, err := db.MigrateDown(ctx, a, false, io.Discard)
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "keep this migration") || !hasOutcome() {
			t.Fatalf("migrate down: %v", err)
		}
		if _, have, _, _ := db.SchemaCurrent(ctx); have != rb.From {
			t.Fatalf("a failed rollback moved the schema from %d to %d", rb.From, have)
		}
		// The audit log of schema 12, read as it is there (ListAudit reads the current one).
		var rows []struct{ Outcome, Detail string }
		q, err := db.SQL().QueryContext(ctx, `SELECT outcome, detail FROM audit_log WHERE subject = 'schema' ORDER BY id DESC LIMIT 2`)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		for err == nil && q.Next() {
			rows = append(rows, struct{ Outcome, Detail string }{})
			err = q.Scan(&rows[len(rows)-1].Outcome, &rows[len(rows)-1].Detail)
		}
		if err == nil {
			err = q.Err()
		}
		want := "the rollback failed; the schema stays at version " + strconv.FormatInt(rb.From, 10)
		if err != nil || len(rows) != 2 || rows[0].Outcome != store.AuditRefused || !strings.Contains(rows[0].Detail, want) ||
			rows[1].Outcome != store.AuditApplied {
			t.Fatalf("after a failed rollback: %+v %v, want a refused row saying %q after the applied one", rows, err, want)
		}
		return
	}
	t.Fatal("migrate down dropped the outcome of a refused command's audit row")
}

// Rolling the schema back one migration at a time to nothing: each step's
// audit row is written before its rollback, so it stays as long as the audit
// log does, in the columns that log has (below the audit outcome's migration
// the row has none, as every row of that older log); the migration that
// creates the log drops it, its last row with it; below it nothing is
// audited; with nothing applied there is nothing to do.
func TestMigrateDownAuditsEveryStep(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	a := store.Audit{Actor: "ops", Command: "migrate down", Reason: "back to an empty database"}
	logHas := func(column string) bool {
		return count(t, db, `SELECT count(*) FROM information_schema.columns
		                      WHERE table_schema = current_schema() AND table_name = 'audit_log' AND column_name = $1`, column) == 1
	}
	for {
		_, from, _, err := db.SchemaCurrent(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := db.MigrateDown(ctx, a, false, io.Discard)
		if from == 0 {
			if !errors.Is(err, store.ErrNothingToDo) {
				t.Fatalf("migrate down of an empty schema: %v", err)
			}
			return
		}
		if err != nil || rb.From != from || rb.To >= from {
			t.Fatalf("migrate down from %d: %+v %v", from, rb, err)
		}
		if !logHas("id") {
			continue // below the audit log's migration, or its own rollback
		}
		var version int64
		q := `SELECT (before->>'version')::bigint FROM audit_log WHERE command = 'migrate down' ORDER BY id DESC LIMIT 1`
		if logHas("outcome") {
			q = strings.Replace(q, "WHERE", "WHERE outcome = 'applied' AND", 1)
		}
		if err := db.SQL().QueryRowContext(ctx, q).Scan(&version); err != nil || version != from {
			t.Fatalf("the audit row of the rollback from %d: version %d %v", from, version, err)
		}
	}
}
