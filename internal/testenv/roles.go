package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settle-dev/settle/internal/localsvc"
)

// RoleName returns a PostgreSQL role name of the test's own,
// settle_t_<random hex>_<what>, and drops the role of that name, if there is
// one, when the test ends, after terminating its sessions. Roles belong to
// the whole server, not to a database: the random part keeps tests running
// at the same time apart.
//
// A role that is granted privileges in a test's database cannot be dropped
// while that database exists: call RoleName before PostgresURL, so that the
// database is dropped first (cleanups run last first).
func RoleName(t testing.TB, what string) string {
	t.Helper()
	admin := adminURL(t)
	name, err := localsvc.NewDatabaseName(dbPrefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	name += "_" + what
	t.Cleanup(func() {
		if err := dropRole(admin, name); err != nil {
			t.Errorf("testenv: drop role %s: %v", name, err)
		}
	})
	return name
}

// LoginRole creates a LOGIN role with a random password, a member of each
// of groups, and returns dbURL (as PostgresURL returned it) connecting as
// that role. The role is dropped when the test ends.
func LoginRole(t testing.TB, dbURL string, groups ...string) string {
	t.Helper()
	name := RoleName(t, "login")
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	password := hex.EncodeToString(b[:])
	stmt := "CREATE ROLE " + pq.QuoteIdentifier(name) + " LOGIN PASSWORD " + pq.QuoteLiteral(password)
	if len(groups) > 0 {
		quoted := make([]string, len(groups))
		for i, g := range groups {
			quoted[i] = pq.QuoteIdentifier(g)
		}
		stmt += " IN ROLE " + strings.Join(quoted, ", ")
	}
	if err := adminExec(adminURL(t), stmt); err != nil {
		t.Fatalf("testenv: create login role %s in %v: %v", name, groups, err)
	}
	u, err := URLWithUser(dbURL, name, password)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return u
}

// AdminExec runs statements on the server of SETTLE_DATABASE_URL as its
// user (the server's superuser in `make test`), for what only it may do,
// such as creating roles. Without SETTLE_DATABASE_URL the test fails.
func AdminExec(t testing.TB, stmts ...string) {
	t.Helper()
	if err := adminExec(adminURL(t), stmts...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// adminURL returns SETTLE_DATABASE_URL, or fails the test, saying how to
// set it.
func adminURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(DatabaseURLEnv)
	if admin == "" {
		t.Fatalf("%s is not set: run the tests with `make test`, or first "+
			`eval "$(scripts/devenv.sh up test)"`, DatabaseURLEnv)
	}
	return admin
}

func adminExec(admin string, stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// URLWithUser returns the connection string dbURL (a URL or key=value
// pairs) with its user and password replaced.
func URLWithUser(dbURL, user, password string) (string, error) {
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", fmt.Errorf("not a URL: %w", err)
		}
		u.User = url.UserPassword(user, password)
		return u.String(), nil
	}
	// key=value form: later keys win.
	return fmt.Sprintf("%s user=%s password=%s", dbURL, user, password), nil
}

func dropRole(admin, name string) error {
	if !strings.HasPrefix(name, dbPrefix) {
		return fmt.Errorf("refusing to drop %q: not created by testenv", name)
	}
	return adminExec(admin,
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = "+pq.QuoteLiteral(name),
		"DROP ROLE IF EXISTS "+pq.QuoteIdentifier(name),
	)
}
