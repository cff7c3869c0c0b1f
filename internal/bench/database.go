package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/localsvc"
)

// dbPrefix starts the name of every database the bench creates; it drops
// nothing else.
const dbPrefix = "settle_bench_"

// createDatabase creates settle_bench_<random hex> on the server of admin
// and returns its name and a URL for it with params added.
func createDatabase(ctx context.Context, admin, params string) (name, dbURL string, err error) {
	if name, err = localsvc.NewDatabaseName(dbPrefix); err != nil {
		return "", "", err
	}
	if dbURL, err = withDatabase(admin, name, params); err != nil {
		return "", "", fmt.Errorf("SETTLE_DATABASE_URL: %w", err)
	}
	if err := localsvc.CreateDatabase(ctx, admin, name); err != nil {
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
func dropDatabase(admin, name string) error { return localsvc.DropDatabase(admin, dbPrefix, name) }
