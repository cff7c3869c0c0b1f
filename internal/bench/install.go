package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// benchAccounts are the engine's own accounts at the sandbox bank.
var benchAccounts = pipeline.Accounts{Collection: "BENCH-COLLECTION", Lender: "BENCH-LENDER", Holding: "BENCH-HOLDING", Fee: "BENCH-FEE"}

// providerName is the one provider of a bench installation.
const providerName = "sandbox"

// installation is one isolated settle installation: a fresh database, a
// private Redis, a sandbox bank and a configuration file naming them.
type installation struct {
	dir      string // temporary: config, logs, redis
	adminURL string
	dbName   string
	dbURL    string
	keepDB   bool
	redis    *redisServer
	bank     *bankServer
	cfgPath  string
	cfg      *config.Config
	db       *store.DB    // for seeding and the final checks
	monitor  *sql.DB      // one connection: progress and statistics
	own      atomic.Int64 // queries sent through monitor, left out of the statistics
	deposits []deposit    // the salaries of the payday, one per customer
	detected *bankMark    // the bank's counters once every deposit was detected
}

// install assembles the installation; on error, what was built is torn
// down.
func install(ctx context.Context, o Options) (_ *installation, err error) {
	in := &installation{adminURL: o.AdminURL, keepDB: o.KeepDB}
	defer func() {
		if err != nil {
			in.close()
		}
	}()
	if in.dir, err = os.MkdirTemp("", "settle-bench-"); err != nil {
		return nil, err
	}
	if in.dbName, in.dbURL, err = createDatabase(ctx, o.AdminURL, o.DBParams); err != nil {
		return nil, err
	}
	if in.redis, err = startRedis(ctx, in.dir); err != nil {
		return nil, err
	}
	if in.bank, err = startBank(o.Latency, o.Seed); err != nil {
		return nil, err
	}
	if err := in.writeConfig(o); err != nil {
		return nil, err
	}
	if in.db, err = store.Open(ctx, in.dbURL, store.Options{MaxOpenConns: 16}); err != nil {
		return nil, err
	}
	if err := in.db.Migrate(ctx, "up", io.Discard); err != nil {
		return nil, fmt.Errorf("migrate the bench database: %w", err)
	}
	if in.monitor, err = sql.Open("postgres", in.dbURL); err != nil {
		return nil, err
	}
	in.monitor.SetMaxOpenConns(1)
	in.monitor.SetMaxIdleConns(1)
	in.monitor.SetConnMaxIdleTime(0)
	return in, nil
}

// httpToken guards the engine's status page and metrics inside one run, as
// in any installation (without credentials the daemon warns and serves
// neither); it listens on a loopback port of its own.
const httpToken = "settle-bench-http-token"

// writeConfig writes the configuration every engine of the run loads.
// Anything not named keeps the daemon's default (relay every 30s, sweep
// every 3m, lease 30s, bank timeout 10s).
func (in *installation) writeConfig(o Options) error {
	in.cfgPath = filepath.Join(in.dir, "settle.yaml")
	a := benchAccounts
	yaml := fmt.Sprintf(`# settle bench: one isolated installation
database: {url: %q, max_open_conns: %d}
redis: {url: %q}
http: {addr: "127.0.0.1:0", token: %q}
log: {level: warn, format: text}
poll: {schedule: "@every %s", batch_size: 100}
worker: {concurrency: %d}
providers:
  - name: %s
    dialect: %s
    base_url: %q
    token: %q
    accounts: {collection: %s, lender: %s, holding: %s, fee: %s}
%s`, in.dbURL, o.DBConns, in.redis.url(), httpToken, o.PollEvery, o.Concurrency, providerName, o.Dialect, in.bank.url, bankToken,
		a.Collection, a.Lender, a.Holding, a.Fee, throttleYAML(o.RateLimit))
	if err := os.WriteFile(in.cfgPath, []byte(yaml), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(in.cfgPath, nil) // the file only: no SETTLE_ overrides
	if err != nil {
		return fmt.Errorf("bench configuration: %w", err)
	}
	in.cfg = cfg
	return nil
}

// throttleYAML sets the provider's throttle to the bank's rate limit, as an
// operator would, with a burst of a tenth of a second's calls: enough to
// make up for a worker late to its token, well within the bank's bucket.
func throttleYAML(limit float64) string {
	if limit <= 0 {
		return ""
	}
	rps := max(int(limit), 1)
	return fmt.Sprintf("    rate_limit_rps: %d\n    burst: %d\n", rps, max(rps/10, 1))
}

// close tears everything down; the database survives with KeepDB.
func (in *installation) close() {
	if in.monitor != nil {
		_ = in.monitor.Close()
	}
	if in.db != nil {
		_ = in.db.Close()
	}
	in.bank.close()
	in.redis.stop()
	switch {
	case in.dbName != "" && in.keepDB:
		fmt.Fprintf(os.Stderr, "settle bench: kept database %s (drop it when done)\n", in.dbName)
	case in.dbName != "":
		if err := dropDatabase(in.adminURL, in.dbName); err != nil {
			fmt.Fprintf(os.Stderr, "settle bench: drop database %s: %v (drop it by hand)\n", in.dbName, err)
		}
	}
	if in.dir != "" {
		_ = os.RemoveAll(in.dir)
	}
}

// dbNow is the database's clock: the run's times are all the database's.
func (in *installation) dbNow(ctx context.Context) (time.Time, error) {
	var t time.Time
	in.own.Add(1)
	err := in.monitor.QueryRowContext(ctx, `SELECT /* settle-bench */ clock_timestamp()`).Scan(&t)
	return t, err
}

// progressCounts counts settlements that ended and that failed.
func (in *installation) progressCounts(ctx context.Context) (ended, failed, created, journals int64, err error) {
	in.own.Add(1)
	err = in.monitor.QueryRowContext(ctx, `SELECT /* settle-bench */
		count(*) FILTER (WHERE status IN ('SETTLED', 'FAILED', 'CANCELLED', 'COMPENSATED')),
		count(*) FILTER (WHERE status = 'FAILED'), count(*),
		coalesce((SELECT max(id) FROM journals), 0) FROM settlements`).Scan(&ended, &failed, &created, &journals)
	return ended, failed, created, journals, err
}

// oldestWriteTx is the age of the oldest open transaction that has
// written (holds a transaction ID) in the bench database: while it is
// open, VACUUM keeps every row version that died after it began.
func (in *installation) oldestWriteTx(ctx context.Context) (float64, error) {
	var age sql.NullFloat64
	in.own.Add(1)
	err := in.monitor.QueryRowContext(ctx, `SELECT /* settle-bench */ max(extract(epoch FROM clock_timestamp() - xact_start))
		FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL`).Scan(&age)
	return age.Float64, err
}

// deadTuples counts the dead row versions of the tables a step updates.
func (in *installation) deadTuples(ctx context.Context) (map[string]int64, error) {
	in.own.Add(1)
	rows, err := in.monitor.QueryContext(ctx, `SELECT /* settle-bench */ relname, n_dead_tup, n_tup_upd, n_tup_hot_upd
		FROM pg_stat_user_tables WHERE relname IN ('steps', 'transfers', 'settlements')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var dead, upd, hot int64
		if err := rows.Scan(&name, &dead, &upd, &hot); err != nil {
			return nil, err
		}
		out[name+"_dead"], out[name+"_updates"], out[name+"_hot_updates"] = dead, upd, hot
	}
	return out, rows.Err()
}

// customerCount counts the customers seeded so far.
func (in *installation) customerCount(ctx context.Context) (int64, error) {
	var n int64
	in.own.Add(1)
	err := in.monitor.QueryRowContext(ctx, `SELECT /* settle-bench */ count(*) FROM customers`).Scan(&n)
	return n, err
}

var errStalled = errors.New("no settlement ended for too long")

// markDetected keeps the bank's counters at the moment every deposit was
// seen detected; a failed read leaves the mark unset (the detection's
// calls are then not reported).
func (in *installation) markDetected(ctx context.Context) {
	st, err := in.bank.client.Stats(ctx)
	if err == nil {
		in.detected = &bankMark{at: time.Now(), stats: st}
	}
}
