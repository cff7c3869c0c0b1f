package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
)

// The ways database round trips are counted.
const (
	methodStatements = "pg_stat_statements"
	methodDatabase   = "pg_stat_database"
)

// benchMarker is in every query the bench itself sends to the bench
// database, so that pg_stat_statements' counts of them can be left out.
const benchMarker = "/* settle-bench */"

// dbCounters is one snapshot of the bench database's statistics.
type dbCounters struct {
	method     string
	statements map[int64]stmtCounter // by queryid
	xacts      int64                 // commits + rollbacks
	tuples     tupleCounters
	own        int64 // the bench's own monitor queries so far
}

type stmtCounter struct {
	query   string
	calls   int64
	totalMS float64 // executing
	planMS  float64 // planning; 0 unless pg_stat_statements.track_planning is on
	rows    int64
}

type tupleCounters struct {
	Returned int64 `json:"returned"`
	Fetched  int64 `json:"fetched"`
	Inserted int64 `json:"inserted"`
	Updated  int64 `json:"updated"`
	Deleted  int64 `json:"deleted"`
	BlksHit  int64 `json:"blocks_hit"`
	BlksRead int64 `json:"blocks_read"`
}

// dbStats reads the bench database's statistics through the monitor
// connection, counting its own queries.
type dbStats struct {
	db     *sql.DB
	own    *atomic.Int64
	method string
}

// newDBStats uses pg_stat_statements when the server has it loaded (the
// extension is created in the bench database only), pg_stat_database
// otherwise.
func newDBStats(ctx context.Context, db *sql.DB, own *atomic.Int64) *dbStats {
	s := &dbStats{db: db, own: own, method: methodDatabase}
	own.Add(2)
	if _, err := db.ExecContext(ctx, benchMarker+` CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return s
	}
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT `+benchMarker+` count(*) FROM pg_stat_statements`).Scan(&n); err == nil {
		s.method = methodStatements
	}
	return s
}

func (s *dbStats) snapshot(ctx context.Context) (dbCounters, error) {
	c := dbCounters{method: s.method}
	s.own.Add(1)
	err := s.db.QueryRowContext(ctx, `SELECT `+benchMarker+` xact_commit + xact_rollback, tup_returned, tup_fetched,
		tup_inserted, tup_updated, tup_deleted, blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()`).
		Scan(&c.xacts, &c.tuples.Returned, &c.tuples.Fetched, &c.tuples.Inserted, &c.tuples.Updated, &c.tuples.Deleted,
			&c.tuples.BlksHit, &c.tuples.BlksRead)
	if err != nil {
		return c, fmt.Errorf("read pg_stat_database: %w", err)
	}
	if s.method == methodStatements {
		if c.statements, err = s.statements(ctx); err != nil {
			return c, err
		}
	}
	c.own = s.own.Load()
	return c, nil
}

func (s *dbStats) statements(ctx context.Context) (map[int64]stmtCounter, error) {
	s.own.Add(1)
	rows, err := s.db.QueryContext(ctx, `SELECT `+benchMarker+` queryid, query, calls, total_exec_time, total_plan_time, rows
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND queryid IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	out := map[int64]stmtCounter{}
	for rows.Next() {
		var id int64
		var st stmtCounter
		if err := rows.Scan(&id, &st.query, &st.calls, &st.totalMS, &st.planMS, &st.rows); err != nil {
			return nil, err
		}
		if strings.Contains(st.query, "settle-bench") {
			continue
		}
		prev := out[id] // one queryid may show under several users
		st.calls += prev.calls
		st.totalMS += prev.totalMS
		st.planMS += prev.planMS
		st.rows += prev.rows
		out[id] = st
	}
	return out, rows.Err()
}

// DBUsage is what the engine asked of PostgreSQL during the run.
type DBUsage struct {
	// Method says how round trips were counted.
	Method string `json:"method"`
	// RoundTripsPerSettlement: with pg_stat_statements, every BEGIN,
	// COMMIT and ROLLBACK counts one round trip and every other statement
	// two (lib/pq sends a statement with parameters as Parse+Describe, then
	// Bind+Execute; one with binary_parameters=yes). With pg_stat_database
	// it is the transactions per settlement, a lower bound.
	RoundTripsPerSettlement float64 `json:"round_trips_per_settlement"`
	StatementsPerSettlement float64 `json:"statements_per_settlement,omitempty"`
	XactsPerSettlement      float64 `json:"transactions_per_settlement"`
	// ExecMSPerSettlement is the server's execution time per settlement;
	// PlanMSPerSettlement its planning time (lib/pq plans every statement
	// again), when pg_stat_statements.track_planning is on.
	ExecMSPerSettlement float64       `json:"exec_ms_per_settlement,omitempty"`
	PlanMSPerSettlement float64       `json:"plan_ms_per_settlement,omitempty"`
	Tuples              tupleCounters `json:"tuples"`
	// LongestWriteTxSec is the oldest open writing transaction seen during
	// the run (sampled every second): while it is open, VACUUM cannot
	// remove the row versions the steps leave behind.
	LongestWriteTxSec float64 `json:"longest_write_transaction_sec"`
	// Tables are the dead row versions and (HOT) updates at the end of the
	// run of the tables every step updates.
	Tables map[string]int64 `json:"tables,omitempty"`
	Top    []StmtUsage      `json:"top_statements,omitempty"`
}

// StmtUsage is one statement's share.
type StmtUsage struct {
	Query          string  `json:"query"`
	Calls          int64   `json:"calls"`
	PerSettlement  float64 `json:"per_settlement"`
	MeanMS         float64 `json:"mean_ms"`
	MeanPlanMS     float64 `json:"mean_plan_ms,omitempty"`
	TotalMS        float64 `json:"total_ms"`
	RowsPerCall    float64 `json:"rows_per_call"`
	ShareOfExecPct float64 `json:"share_of_exec_pct"`
	// ServerSide marks a trigger's statement: not sent by the engine, not a
	// round trip.
	ServerSide bool `json:"server_side,omitempty"`
}

// usage turns two snapshots into the engine's database usage for
// settlements settlements.
func dbUsage(before, after dbCounters, settlements int64, dsn string) DBUsage {
	n := float64(max(settlements, 1))
	own := after.own - before.own
	u := DBUsage{Method: after.method, XactsPerSettlement: float64(after.xacts-before.xacts-own) / n}
	u.Tuples = tupleCounters{
		Returned: after.tuples.Returned - before.tuples.Returned, Fetched: after.tuples.Fetched - before.tuples.Fetched,
		Inserted: after.tuples.Inserted - before.tuples.Inserted, Updated: after.tuples.Updated - before.tuples.Updated,
		Deleted: after.tuples.Deleted - before.tuples.Deleted, BlksHit: after.tuples.BlksHit - before.tuples.BlksHit,
		BlksRead: after.tuples.BlksRead - before.tuples.BlksRead,
	}
	if after.method != methodStatements {
		u.RoundTripsPerSettlement = u.XactsPerSettlement
		return u
	}
	perStatement := 2.0
	if binaryParameters(dsn) {
		perStatement = 1
	}
	var calls, trips int64
	var total, plan float64
	for id, a := range after.statements {
		b := before.statements[id]
		d := StmtUsage{Query: oneLine(a.query), Calls: a.calls - b.calls, TotalMS: a.totalMS - b.totalMS}
		if d.Calls <= 0 {
			continue
		}
		plan += a.planMS - b.planMS
		d.MeanPlanMS = (a.planMS - b.planMS) / float64(d.Calls)
		total += d.TotalMS
		switch {
		case isTriggerStatement(a.query):
			d.ServerSide = true
		case isUtility(a.query):
			calls += d.Calls
			trips += d.Calls
		default:
			calls += d.Calls
			trips += int64(perStatement * float64(d.Calls))
		}
		d.PerSettlement = float64(d.Calls) / n
		d.MeanMS = d.TotalMS / float64(d.Calls)
		d.RowsPerCall = float64(a.rows-b.rows) / float64(d.Calls)
		u.Top = append(u.Top, d)
	}
	for i := range u.Top {
		if total > 0 {
			u.Top[i].ShareOfExecPct = 100 * u.Top[i].TotalMS / total
		}
	}
	sort.Slice(u.Top, func(i, j int) bool { return u.Top[i].Calls > u.Top[j].Calls })
	if len(u.Top) > 20 {
		u.Top = u.Top[:20]
	}
	u.StatementsPerSettlement = float64(calls) / n
	u.RoundTripsPerSettlement = float64(trips) / n
	u.ExecMSPerSettlement = total / n
	u.PlanMSPerSettlement = plan / n
	return u
}

// isUtility reports transaction control, which lib/pq sends as one simple
// query: one round trip.
func isUtility(q string) bool {
	f := strings.Fields(strings.ToUpper(q))
	if len(f) == 0 {
		return false
	}
	switch strings.TrimSuffix(f[0], ";") {
	case "BEGIN", "COMMIT", "ROLLBACK", "START", "END", "SAVEPOINT", "RELEASE":
		return true
	}
	return false
}

// isTriggerStatement reports a statement run by a trigger function (it
// names NEW or OLD): a deferred constraint trigger fires at COMMIT, at the
// top level, so pg_stat_statements lists it, but no client sent it.
func isTriggerStatement(q string) bool {
	return strings.Contains(q, "NEW.") || strings.Contains(q, "OLD.")
}

func binaryParameters(dsn string) bool {
	u, err := url.Parse(dsn)
	return err == nil && u.Query().Get("binary_parameters") == "yes"
}

// oneLine squeezes a query's white space.
func oneLine(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 240 {
		q = q[:240] + "…"
	}
	return q
}
