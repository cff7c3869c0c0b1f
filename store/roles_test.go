package store_test

import (
	"context"
	"database/sql"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/migrations"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// migratedAs migrates a fresh database as the test server's superuser and
// opens it again as a new LOGIN user, member of group.
func migratedAs(t *testing.T, group string) (admin, user *store.DB) {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	admin = open(t, url)
	if err := admin.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	return admin, open(t, testenv.LoginRole(t, url, group))
}

func open(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, store.Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// refused fails the test unless every statement is refused for want of a
// privilege, whatever the triggers would have said.
func refused(t *testing.T, db *store.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		_, err := db.SQL().ExecContext(context.Background(), q)
		if !store.PermissionDenied(err) {
			t.Errorf("%s: err = %v, want a permission refusal (42501)", q, err)
		}
	}
}

// A member of settle_daemon runs settlements: it creates customers and
// settlements and records every step, the ledger included. It may not
// rewrite the ledger or the audit log, nor touch the schema.
func TestDaemonRoleAppendsToTheLedgerOnly(t *testing.T) {
	t.Parallel()
	_, daemon := migratedAs(t, store.DaemonRole)
	ctx := context.Background()
	_, created := seedSettlement(t, daemon, "c1", 500_000, pipeline.Obligations{Outstanding: 100_000, FeeFixed: 1000})
	settleAll(t, daemon, created.HeadStepID)
	if d, err := daemon.GetSettlement(ctx, created.SettlementID); err != nil || d.Status != "SETTLED" {
		t.Fatalf("settlement as the daemon role: %+v %v", d, err)
	}
	if vs, err := daemon.Verify(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("verify as the daemon role: %v %v", vs, err)
	}
	if _, err := daemon.SQL().ExecContext(ctx, `DELETE FROM reconcile_cursors WHERE false`); err != nil {
		t.Errorf("reconciliation's cursor cleanup as the daemon role: %v", err)
	}
	refused(t, daemon,
		`UPDATE postings SET amount = amount + 1`,
		`DELETE FROM postings`,
		`TRUNCATE postings`,
		`UPDATE journals SET kind = 'transfer'`,
		`DELETE FROM journals`,
		`UPDATE audit_log SET reason = 'x'`,
		`DELETE FROM audit_log`,
		`UPDATE audit_chain SET seq = seq + 1`,
		`INSERT INTO audit_chain (only_row, seq, hash) VALUES (false, 0, '\x00')`,
		`DELETE FROM audit_chain`,
		`DELETE FROM settlements`,
		`DROP TABLE postings`,
		`ALTER TABLE postings DISABLE TRIGGER postings_append_only`,
		`CREATE TABLE scratch (id int)`,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, true)`,
	)
}

// A member of settle_operator reads every table and writes none.
func TestOperatorRoleOnlyReads(t *testing.T) {
	t.Parallel()
	admin, operator := migratedAs(t, store.OperatorRole)
	ctx := context.Background()
	_, created := seedSettlement(t, admin, "c1", 500_000, pipeline.Obligations{})
	var tables []string
	rows, err := admin.SQL().QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil || len(tables) < 10 {
		t.Fatalf("tables %v: %v", tables, err)
	}
	for _, name := range tables {
		if _, err := operator.SQL().ExecContext(ctx, `SELECT * FROM `+name+` LIMIT 1`); err != nil {
			t.Errorf("operator cannot read %s: %v", name, err)
		}
	}
	if d, err := operator.GetSettlement(ctx, created.SettlementID); err != nil || len(d.Steps) == 0 {
		t.Errorf("settlement as the operator role: %+v %v", d, err)
	}
	if _, err := operator.Verify(ctx); err != nil {
		t.Errorf("verify as the operator role: %v", err)
	}
	if _, err := operator.ClaimStep(ctx, created.HeadStepID, 0); !store.PermissionDenied(err) {
		t.Errorf("claim as the operator role: err = %v, want a permission refusal", err)
	}
	refused(t, operator,
		`INSERT INTO employers (ref, payday) VALUES ('acme', 25)`,
		`UPDATE customers SET status = 'CLOSED'`,
		`DELETE FROM alerts`,
		`SELECT nextval('customers_id_seq')`,
	)
}

// PostgreSQL before 15 lets every role create in the public schema, and a
// database made so keeps that grant: the migrations take it back, so the
// daemon role still cannot create anything. A migrating user that does not
// own the schema cannot take it back, and is told what the owner must run.
func TestDaemonCannotCreateEvenWhenPublicCould(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const grant = `GRANT CREATE ON SCHEMA public TO PUBLIC`
	t.Run("the migrating user owns the schema", func(t *testing.T) {
		url := testenv.PostgresURL(t)
		admin := open(t, url)
		if _, err := admin.SQL().ExecContext(ctx, grant); err != nil {
			t.Fatal(err)
		}
		if err := admin.Migrate(ctx, "up", io.Discard); err != nil {
			t.Fatal(err)
		}
		daemon := open(t, testenv.LoginRole(t, url, store.DaemonRole))
		refused(t, daemon,
			`CREATE TABLE public.scratch (id int)`,
			`CREATE VIEW public.scratch AS SELECT 1`,
			`CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS 'SELECT ''2000-01-01''::timestamptz'`,
		)
	})
	t.Run("the migrating user does not", func(t *testing.T) {
		daemon, operator := testenv.RoleName(t, "daemon"), testenv.RoleName(t, "operator")
		migrator := testenv.RoleName(t, "migrator")
		url := testenv.PostgresURL(t)
		testenv.AdminExec(t, `CREATE ROLE `+daemon+` NOLOGIN`, `CREATE ROLE `+operator+` NOLOGIN`,
			`CREATE ROLE `+migrator+` LOGIN PASSWORD 'migrator-password'`)
		admin := open(t, url)
		if _, err := admin.SQL().ExecContext(ctx, grant); err != nil {
			t.Fatal(err)
		}
		asMigrator, err := testenv.URLWithUser(url, migrator, "migrator-password")
		if err != nil {
			t.Fatal(err)
		}
		err = migrateUp(ctx, asMigrator, migrationsWithRoles(t, daemon, operator))
		if err == nil || !strings.Contains(err.Error(), `ask the owner of the schema to run "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"`) {
			t.Fatalf("migration by a user that cannot revoke CREATE: err = %v, want what the owner must run", err)
		}
		var can bool
		if err := admin.SQL().QueryRowContext(ctx, `SELECT has_schema_privilege($1, 'public', 'CREATE')`, daemon).Scan(&can); err != nil || !can {
			t.Fatalf("the test's premise: PUBLIC, so %s, may create: %v %v", daemon, can, err)
		}
		// The owner takes CREATE back from PUBLIC and gives it to the
		// migrating user alone, which creates the tables of the migrations
		// after 00017.
		if _, err := admin.SQL().ExecContext(ctx, `REVOKE CREATE ON SCHEMA public FROM PUBLIC`); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.SQL().ExecContext(ctx, `GRANT CREATE ON SCHEMA public TO `+migrator); err != nil {
			t.Fatal(err)
		}
		if err := migrateUp(ctx, asMigrator, migrationsWithRoles(t, daemon, operator)); err != nil {
			t.Fatalf("migration once the owner revoked CREATE: %v", err)
		}
	})
}

// Down takes this database's grants back and leaves the roles (they
// belong to the cluster); up grants again.
func TestMigrateDownRevokesRoleGrants(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	privileged := func() (n int) {
		t.Helper()
		err := db.SQL().QueryRowContext(ctx, `
			SELECT (SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = ANY($1))
			     + (SELECT count(*) FROM pg_default_acl d JOIN pg_roles r ON r.rolname = ANY($1)
			         WHERE array_to_string(d.defaclacl, ',') LIKE '%' || r.rolname || '=%')`,
			"{"+store.DaemonRole+","+store.OperatorRole+"}").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := privileged(); n == 0 {
		t.Fatal("no grants to the roles after up")
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names { // down past the roles migration
		v, _ := strconv.ParseInt(strings.SplitN(name, "_", 2)[0], 10, 64)
		if v < rolesVersion(t) {
			continue
		}
		if err := db.Migrate(ctx, "down", io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if n := privileged(); n != 0 {
		t.Fatalf("%d grants to the roles left after down", n)
	}
	var roles int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2) AND NOT rolcanlogin`,
		store.DaemonRole, store.OperatorRole).Scan(&roles); err != nil || roles != 2 {
		t.Fatalf("group roles after down: %d %v", roles, err)
	}
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	var can bool
	if err := db.SQL().QueryRowContext(ctx, `SELECT has_table_privilege($1, 'postings', 'INSERT')
		AND NOT has_table_privilege($1, 'postings', 'UPDATE')`, store.DaemonRole).Scan(&can); err != nil || !can {
		t.Fatalf("daemon may insert but not update postings after up again: %v %v", can, err)
	}
}

// migrationsWithRoles is the embedded migrations with the role names
// replaced by daemon and operator: the real SQL, with roles no other test
// has created yet.
func migrationsWithRoles(t *testing.T, daemon, operator string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	r := strings.NewReplacer(store.DaemonRole, daemon, store.OperatorRole, operator)
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		out[path] = &fstest.MapFile{Data: []byte(r.Replace(string(b)))}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func migrateUp(ctx context.Context, url string, fsys fs.FS) error {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// Roles belong to the cluster: migrations of several databases that all
// find them missing and create them at the same moment must all succeed.
func TestRoleCreationIsConcurrentSafe(t *testing.T) {
	t.Parallel()
	daemon, operator := testenv.RoleName(t, "daemon"), testenv.RoleName(t, "operator") // before the databases: dropped after them
	fsys := migrationsWithRoles(t, daemon, operator)
	const n = 6
	urls := make([]string, n)
	for i := range urls {
		urls[i] = testenv.PostgresURL(t)
	}
	ctx := context.Background()
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i, u := range urls {
		wg.Go(func() {
			start.Wait()
			errs[i] = migrateUp(ctx, u, fsys)
		})
	}
	start.Done()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d of %d at the same time: %v", i+1, n, err)
		}
	}
	for _, u := range urls {
		db := open(t, u)
		var ok bool
		if err := db.SQL().QueryRowContext(ctx, `SELECT has_table_privilege($1, 'steps', 'UPDATE')
			AND has_table_privilege($2, 'steps', 'SELECT') AND NOT has_table_privilege($2, 'steps', 'UPDATE')`,
			daemon, operator).Scan(&ok); err != nil || !ok {
			name, _, _ := strings.Cut(u[strings.LastIndex(u, "/")+1:], "?")
			t.Errorf("grants in %s: %v %v", name, ok, err)
		}
	}
}

// rolesVersion is the version of the migration that creates the roles.
func rolesVersion(t *testing.T) int64 {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "*_roles.sql")
	if err != nil || len(names) != 1 {
		t.Fatalf("the roles migration: %v %v", names, err)
	}
	v, err := strconv.ParseInt(strings.SplitN(names[0], "_", 2)[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// On a managed server the migrating user may not be allowed to create
// roles: the migration says what a DBA must run and changes nothing; once
// the roles exist, it runs as that user.
func TestMigratorWithoutCreateRole(t *testing.T) {
	t.Parallel()
	// Named before the database is made, so they are dropped after it.
	daemon, operator := testenv.RoleName(t, "daemon"), testenv.RoleName(t, "operator")
	migrator := testenv.RoleName(t, "migrator")
	fsys := migrationsWithRoles(t, daemon, operator)
	url := testenv.PostgresURL(t)
	testenv.AdminExec(t, `CREATE ROLE `+migrator+` LOGIN PASSWORD 'migrator-password'`)
	admin := open(t, url)
	ctx := context.Background()
	if _, err := admin.SQL().ExecContext(ctx, `GRANT CREATE ON SCHEMA public TO `+migrator); err != nil {
		t.Fatal(err)
	}
	asMigrator, err := testenv.URLWithUser(url, migrator, "migrator-password")
	if err != nil {
		t.Fatal(err)
	}
	err = migrateUp(ctx, asMigrator, fsys)
	if err == nil || !strings.Contains(err.Error(), "ask a DBA to run") || !strings.Contains(err.Error(), "CREATE ROLE "+daemon+" NOLOGIN") {
		t.Fatalf("migration by a user that may not create roles: err = %v, want what a DBA must run", err)
	}
	var applied, roles int
	if err := admin.SQL().QueryRowContext(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = $1`, rolesVersion(t)).Scan(&applied); err != nil || applied != 0 {
		t.Fatalf("the refused migration is recorded as applied: %d %v", applied, err)
	}
	if err := admin.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2)`, daemon, operator).Scan(&roles); err != nil || roles != 0 {
		t.Fatalf("roles after the refused migration: %d %v", roles, err)
	}

	testenv.AdminExec(t, `CREATE ROLE `+daemon+` NOLOGIN`, `CREATE ROLE `+operator+` NOLOGIN`)
	if err := migrateUp(ctx, asMigrator, fsys); err != nil {
		t.Fatalf("migration once a DBA created the roles: %v", err)
	}
	var ok bool
	if err := admin.SQL().QueryRowContext(ctx, `SELECT has_table_privilege($1, 'postings', 'INSERT')
		AND NOT has_table_privilege($1, 'postings', 'UPDATE') AND has_table_privilege($2, 'postings', 'SELECT')`,
		daemon, operator).Scan(&ok); err != nil || !ok {
		t.Fatalf("grants after the DBA created the roles: %v %v", ok, err)
	}
}
