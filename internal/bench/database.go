package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/settle-dev/settle/internal/config"
)

// dbPrefix starts the name of every database the bench creates; it drops
// nothing else.
const dbPrefix = "settle_bench_"

// createDatabase creates settle_bench_<random hex> on the server of admin
// and returns its name and a URL for it with params added.
func createDatabase(ctx context.Context, admin, params string) (name, dbURL string, err error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	name = dbPrefix + hex.EncodeToString(b[:])
	if dbURL, err = withDatabase(admin, name, params); err != nil {
		return "", "", fmt.Errorf("SETTLE_DATABASE_URL: %w", err)
	}
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return "", "", err
	}
	defer db.Close()
	// CREATE DATABASE fails while someone else uses the template database; retry.
	for attempt := 1; ; attempt++ {
		_, err = db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name))
		if err == nil || attempt == 10 || !isObjectInUse(err) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	if err != nil {
		return "", "", fmt.Errorf("create database %s on %s: %w (is the server up? eval \"$(scripts/devenv.sh up test)\")",
			name, config.RedactURL(admin), err)
	}
	return name, dbURL, nil
}

// withDatabase returns admin with its database replaced by name and params
// ("k=v&k2=v2") added. Only postgres:// URLs are accepted, as in the
// configuration.
func withDatabase(admin, name, params string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("not a postgres:// URL")
	}
	u.Path, u.RawPath = "/"+name, ""
	q := u.Query()
	q.Del("dbname")
	extra, err := url.ParseQuery(params)
	if err != nil {
		return "", fmt.Errorf("--db-params %q: %w", params, err)
	}
	for k, vs := range extra {
		for _, v := range vs {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// dropDatabase drops a database the bench created, after ending its
// remaining connections.
func dropDatabase(admin, name string) error {
	if !strings.HasPrefix(name, dbPrefix) {
		return fmt.Errorf("refusing to drop %q: not created by the bench", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	var version int
	if err := db.QueryRowContext(ctx, "SHOW server_version_num").Scan(&version); err != nil {
		return err
	}
	drop := "DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(name)
	if version >= 130000 {
		drop += " WITH (FORCE)"
	}
	for attempt := 1; ; attempt++ {
		_, err = db.ExecContext(ctx,
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
		if err == nil {
			_, err = db.ExecContext(ctx, drop)
		}
		if err == nil || attempt == 20 || !isObjectInUse(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// isObjectInUse reports PostgreSQL's object_in_use (55006).
func isObjectInUse(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "55006"
}
