package localsvc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// NewDatabaseName returns prefix followed by 16 random hex digits.
func NewDatabaseName(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// CreateDatabase creates the empty database name on the server of the
// connection string admin.
func CreateDatabase(ctx context.Context, admin, name string) error {
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	// CREATE DATABASE fails while someone else uses the template database; retry.
	for attempt := 1; ; attempt++ {
		_, err = db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name))
		if err == nil || attempt == 10 || !isObjectInUse(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
}

// DropDatabase drops the database name from the server of admin, after
// ending its remaining connections. It refuses a name that does not start
// with prefix: the one its creator gives every database it creates.
func DropDatabase(admin, prefix, name string) error {
	if !strings.HasPrefix(name, prefix) {
		return fmt.Errorf("refusing to drop %q: its name does not start with %q", name, prefix)
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

// isObjectInUse reports PostgreSQL's object_in_use (55006), e.g. "being
// accessed by other users".
func isObjectInUse(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == pqerror.ObjectInUse
}
