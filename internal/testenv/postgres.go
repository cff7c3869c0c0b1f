package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/localsvc"
)

// DatabaseURLEnv names the variable that points at the PostgreSQL server for tests.
const DatabaseURLEnv = "SETTLE_DATABASE_URL"

// dbPrefix starts the name of every database PostgresURL creates.
const dbPrefix = "settle_t_"

// PostgresURL creates a new, empty database named settle_t_<random hex> on the
// server of SETTLE_DATABASE_URL and returns a URL (or connection string, in the
// form SETTLE_DATABASE_URL has) for it. The database is dropped when the test
// and its subtests end, after its remaining connections are terminated.
// Without SETTLE_DATABASE_URL the test fails, saying how to get one.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(DatabaseURLEnv)
	if admin == "" {
		t.Fatalf("%s is not set: run the tests with `make test`, or first "+
			`eval "$(scripts/devenv.sh up test)"`, DatabaseURLEnv)
	}
	name, err := localsvc.NewDatabaseName(dbPrefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("testenv: %s: %v", DatabaseURLEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := localsvc.CreateDatabase(ctx, admin, name); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v (is the server up? try `make test` "+
			`or eval "$(scripts/devenv.sh up test)")`, name, redactURL(admin), err)
	}
	t.Cleanup(func() {
		if err := localsvc.DropDatabase(admin, dbPrefix, name); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

// withDatabase returns the connection string admin with its database replaced by name.
func withDatabase(admin, name string) (string, error) {
	if strings.HasPrefix(admin, "postgres://") || strings.HasPrefix(admin, "postgresql://") {
		u, err := url.Parse(admin)
		if err != nil {
			return "", fmt.Errorf("not a URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		q := u.Query()
		if q.Has("dbname") {
			q.Set("dbname", name)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// key=value form: a later dbname wins.
	return admin + " dbname=" + name, nil
}

// redactURL hides the password of a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.Index(s, "password="); i >= 0 {
			j := strings.IndexAny(s[i:], " &")
			if j < 0 {
				return s[:i] + "password=***"
			}
			return s[:i] + "password=***" + s[i+j:]
		}
		return s
	}
	return u.Redacted()
}
