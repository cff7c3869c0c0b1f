package jobs_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// executorOn is an executor over db and the fixture's bank and queue.
func (f *fixture) executorOn(t *testing.T, db *store.DB, cfg pipeline.ExecutorConfig) *pipeline.Executor {
	t.Helper()
	adapter, _ := dialectAdapter(t, f.dialect, f.bankURL)
	return pipeline.NewExecutor(db, bank.NewRouter(map[string]pipeline.Bank{"sandbox": adapter}), f.queue, cfg,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// openStore opens the fixture's database at url with opt.
func openStore(t *testing.T, url string, opt store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The connection that records a step's success is terminated while its
// statement waits (a row lock held by the test keeps it there). Cut once,
// the driver reports a bad connection and database/sql runs the statement
// again on a new one: the step is DONE at once. Cut on every try, the
// worker's record fails: the step stays RUNNING and the sweep's status
// call records it. Either way the transfer is recorded once and reached
// the bank once.
func TestConnectionDroppedDuringTheRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		every bool // cut every try, not only the first
	}{{"once", false}, {"every_try", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := pipeline.ExecutorConfig{Lease: 2 * time.Second}
			f := newFixture(t, cfg)
			ctx := context.Background()
			f.payday(t, 2_000_000)
			head, _ := f.queue.Pop()

			var once sync.Once
			ran := make(chan struct{})
			terminated := make(chan error, 1)
			hook := func(point string) {
				if point != pipeline.PointBeforeRecordCommit {
					return
				}
				once.Do(func() {
					// The row is locked before the record is sent, so the
					// record always waits on it, however busy the machine.
					lock, err := lockStep(ctx, f.db, head)
					if err != nil {
						terminated <- err
						return
					}
					go func() { terminated <- cutWaiters(ctx, f.db, lock, tc.every, ran) }()
				})
			}
			recorder := openStore(t, f.pgURL, store.Options{MaxOpenConns: 4, Hook: hook})
			runErr := f.executorOn(t, recorder, cfg).Run(ctx, head)
			close(ran)
			if err := <-terminated; err != nil {
				t.Fatalf("terminate the recording connection: %v", err)
			}
			s := settlement(t, f.db).Steps[0]
			if tc.every {
				if runErr == nil || s.Status != "RUNNING" || s.Transfers[0].Status != "SENDING" {
					t.Fatalf("run: %v; head step %s, attempt %s: want an error and the step RUNNING, unrecorded",
						runErr, s.Status, s.Transfers[0].Status)
				}
				f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "DONE" })
			} else if runErr != nil || s.Status != "DONE" {
				t.Fatalf("run: %v; head step %s: want the record retried on a new connection, the step DONE", runErr, s.Status)
			}
			f.drain(t)
			if got := f.status(t); got["SETTLED"] != 1 {
				t.Fatalf("statuses %v", got)
			}
			if s := settlement(t, f.db).Steps[0]; len(s.Transfers) != 1 || s.Transfers[0].Status != "SUCCEEDED" {
				t.Fatalf("head step attempts %+v, want one SUCCEEDED", s.Transfers)
			}
			f.verify(t, 4)
			f.noKeySentTwice(t)
		})
	}
}

// lockStep locks step id's row in a transaction of its own.
func lockStep(ctx context.Context, db *store.DB, id int64) (*sql.Tx, error) {
	lock, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if _, err := lock.ExecContext(ctx, `SELECT 1 FROM steps WHERE id = $1 FOR UPDATE`, id); err != nil {
		_ = lock.Rollback()
		return nil, err
	}
	return lock, nil
}

// cutWaiters waits for a backend to wait on the lock and terminates it;
// with every, it goes on terminating each new waiter until done closes. It
// releases the lock before it returns.
func cutWaiters(ctx context.Context, db *store.DB, lock *sql.Tx, every bool, done <-chan struct{}) error {
	defer func() { _ = lock.Rollback() }()
	if err := terminateWaiting(ctx, db); err != nil || !every {
		return err
	}
	for {
		select {
		case <-done:
			return nil
		case <-time.After(5 * time.Millisecond):
			if _, err := db.SQL().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`); err != nil {
				return err
			}
		}
	}
}

// terminateWaiting waits, up to 10s, for a backend of this database to
// wait on a lock, and terminates it.
func terminateWaiting(ctx context.Context, db *store.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := db.SQL().QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil || n > 0 {
			return err
		}
		<-time.After(5 * time.Millisecond)
	}
	return errors.New("no backend waited on the lock within 10s")
}

// PostgreSQL unreachable (a TCP proxy in front of it stopped): a claim that
// cannot commit sends nothing to the bank; a step whose bank call succeeded
// while the database went away stays RUNNING, and once the database is
// back the sweep's status call records it. Nothing is missed or doubled.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	cfg := pipeline.ExecutorConfig{Lease: 300 * time.Millisecond}
	f := newFixture(t, cfg)
	ctx := context.Background()
	f.payday(t, 2_000_000)
	head, _ := f.queue.Pop()
	proxy := startProxy(t, f.pgURL)
	db := openStore(t, proxy.url, store.Options{MaxOpenConns: 4})

	proxy.stop()
	if err := f.executorOn(t, db, cfg).Run(ctx, head); err == nil {
		t.Fatal("a claim with PostgreSQL unreachable reported no error")
	}
	if n := f.transferPosts(t); n != 0 {
		t.Fatalf("%d transfer requests reached the bank without a committed claim", n)
	}
	if s := settlement(t, f.db).Steps[0]; s.Status != "READY" || s.Attempts != 0 {
		t.Fatalf("head step %s with %d claims after a failed claim, want READY with none", s.Status, s.Attempts)
	}

	proxy.start()
	cut := cfg
	cut.Hook = func(point string) { // the database goes away while the bank applies the transfer
		if point == pipeline.PointAfterBankOK {
			proxy.stop()
		}
	}
	if err := f.executorOn(t, db, cut).Run(ctx, head); err == nil {
		t.Fatal("a record with PostgreSQL unreachable reported no error")
	}
	if s := settlement(t, f.db).Steps[0]; s.Status != "RUNNING" || s.Transfers[0].Status != "SENDING" {
		t.Fatalf("head step %s, attempt %s: want RUNNING with its attempt unrecorded", s.Status, s.Transfers[0].Status)
	}
	proxy.start()
	f.sweepUntil(t, func(d store.SettlementDetail) bool { return d.Steps[0].Status == "DONE" })
	f.drain(t)
	if got := f.status(t); got["SETTLED"] != 1 {
		t.Fatalf("statuses %v", got)
	}
	f.verify(t, 4)
	if n := f.transferPosts(t); n != 4 {
		t.Errorf("%d transfer requests, want one per step (4)", n)
	}
	f.noKeySentTwice(t)
}

// tcpProxy forwards a port to PostgreSQL; stopped, it refuses connections
// and cuts those it carried.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	url    string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func startProxy(t *testing.T, pgURL string) *tcpProxy {
	t.Helper()
	u, err := url.Parse(pgURL)
	if err != nil || u.Host == "" {
		t.Fatalf("the proxy needs a URL-form SETTLE_DATABASE_URL: %v", err)
	}
	p := &tcpProxy{t: t, target: u.Host}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	u.Host = p.addr
	p.url = u.String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

// start listens again on the proxy's address.
func (p *tcpProxy) start() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

// stop closes the listener and every connection it carried.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}
