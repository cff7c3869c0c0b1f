package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// The hot path's statements are prepared once per connection (see
// store.DB's prepared): they must outlive the connections and the schema
// they were prepared on, and cost each connection one prepared statement
// per query.

// openWithAdmin opens the engine's pool on a fresh database and a second
// pool to the same database for what an administrator does to it.
func openWithAdmin(t *testing.T, conns int) (*store.DB, *sql.DB) {
	t.Helper()
	url := testenv.PostgresURL(t)
	db := settletest.OpenDB(t, url, conns)
	admin, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return db, admin
}

// settleEach runs the settlements' steps to the end, from one goroutine per
// settlement.
func settleEach(t *testing.T, db *store.DB, heads []int64) {
	t.Helper()
	var wg sync.WaitGroup
	for _, h := range heads {
		wg.Go(func() {
			ctx := context.Background()
			for id := h; id != 0; {
				c, err := db.ClaimStep(ctx, id, time.Minute)
				if err != nil {
					t.Errorf("claim step %d: %v", id, err)
					return
				}
				next, err := db.Complete(ctx, c, pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: "tr"})
				if err != nil {
					t.Errorf("complete step %d: %v", id, err)
					return
				}
				id = next.ID
			}
		})
	}
	wg.Wait()
}

func seedHeads(t *testing.T, db *store.DB, prefix string, n int) []int64 {
	t.Helper()
	var heads []int64
	for i := range n {
		_, created := seedSettlement(t, db, fmt.Sprintf("%s%d", prefix, i), 500_000, pipeline.Obligations{Outstanding: 100_000, Hold: 10_000})
		heads = append(heads, created.HeadStepID)
	}
	return heads
}

// Connections killed under the pool (a failover, an administrator's
// pg_terminate_backend) cost the hot path nothing: the statements are
// prepared again on new connections.
func TestPreparedStatementsSurviveKilledConnections(t *testing.T) {
	t.Parallel()
	db, admin := openWithAdmin(t, 4)
	ctx := context.Background()
	heads := seedHeads(t, db, "c", 16)
	settleEach(t, db, heads[:4]) // every connection prepares the statements
	for round := range 3 {
		var killed int
		if err := admin.QueryRowContext(ctx, `
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			 WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatalf("round %d: no connection to kill", round)
		}
		settleEach(t, db, heads[4+round*4:8+round*4])
	}
	if n := count(t, db, `SELECT count(*) FROM settlements WHERE status = 'SETTLED'`); n != 16 {
		t.Fatalf("%d settlements SETTLED, want 16", n)
	}
	mustVerify(t, db)
}

// A migration applied while the engine runs (settle migrate up before a
// rolling restart) may change the type of a column the hot statements
// return; the statements prepared before it keep working, as the
// unprepared queries they replaced did.
func TestPreparedStatementsFollowASchemaChange(t *testing.T) {
	t.Parallel()
	db, admin := openWithAdmin(t, 4)
	ctx := context.Background()
	heads := seedHeads(t, db, "c", 8)
	settleEach(t, db, heads[:4])
	for _, ddl := range []string{
		`ALTER TABLE steps ADD COLUMN note text NOT NULL DEFAULT ''`,
		`ALTER TABLE settlements ADD COLUMN note text NOT NULL DEFAULT ''`,
		`ALTER TABLE steps ALTER COLUMN to_holder TYPE varchar(128)`,
		`ALTER TABLE transfers ALTER COLUMN attempt TYPE bigint`,
	} {
		if _, err := admin.ExecContext(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	settleEach(t, db, heads[4:])
	more := seedHeads(t, db, "d", 4)
	settleEach(t, db, more)
	if n := count(t, db, `SELECT count(*) FROM settlements WHERE status = 'SETTLED'`); n != 12 {
		t.Fatalf("%d settlements SETTLED, want 12", n)
	}
	mustVerify(t, db)
}

// Many connections running the hot path at once each hold one prepared
// statement per query, however many times they ran it.
func TestPreparedStatementsDoNotLeak(t *testing.T) {
	t.Parallel()
	const conns = 8
	db, _ := openWithAdmin(t, conns)
	ctx := context.Background()
	settleEach(t, db, seedHeads(t, db, "c", 32))
	mustVerify(t, db)
	held := make([]*sql.Conn, 0, conns)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	total := 0
	for range conns {
		c, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		var n int
		if err := c.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_statements`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 3 { // claim, complete, create settlement
			t.Errorf("a connection holds %d prepared statements, want at most 3", n)
		}
		total += n
	}
	if total == 0 {
		t.Fatal("no connection holds a prepared statement")
	}
}
