package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Point is one second of the run, for the chart: what was detected and
// settled in it, and the latency of the settlements that ended in it.
type Point struct {
	T        float64 // seconds since the engine started
	Detected int64   // settlements created (deposits detected)
	Settled  int64
	Steps    int64   // steps DONE
	P50MS    float64 // of the settlements that settled in this second; 0 if none
	P99MS    float64
}

// throughput is what the database says about the run.
type throughput struct {
	statuses   map[string]int64
	ended      int64
	stepsDone  int64
	elapsed    time.Duration // engine start → last settlement ended
	lat        [4]float64    // p50, p95, p99, max (ms), SETTLED only
	steady     steadyWindow
	series     []Point
	detectP99  float64 // engine start → detection, p99 ms (how long the poll took to find a deposit)
	firstFound float64 // seconds from engine start to the first detection
}

// steadyWindow is the middle 80% of the run: from the 10th to the 90th
// percentile of settlement end times.
type steadyWindow struct {
	from, to    time.Time
	settlements int64
	steps       int64
	p99MS       float64
}

func analyze(ctx context.Context, db *sql.DB, start time.Time) (throughput, error) {
	var t throughput
	var err error
	if t.statuses, err = statusCounts(ctx, db); err != nil {
		return t, err
	}
	for _, s := range []string{"SETTLED", "FAILED", "CANCELLED", "COMPENSATED"} {
		t.ended += t.statuses[s]
	}
	var end sql.NullTime
	err = db.QueryRowContext(ctx, `SELECT max(coalesce(finished_at, updated_at)) FROM settlements
		WHERE status IN ('SETTLED', 'FAILED', 'CANCELLED', 'COMPENSATED')`).Scan(&end)
	if err != nil {
		return t, fmt.Errorf("run end: %w", err)
	}
	if end.Valid {
		t.elapsed = end.Time.Sub(start)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM steps WHERE status = 'DONE'`).Scan(&t.stepsDone); err != nil {
		return t, err
	}
	var lat [4]sql.NullFloat64 // p50, p95, p99, max
	var firstFound, detectP99 sql.NullFloat64
	err = db.QueryRowContext(ctx, `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
		  FROM (SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms FROM settlements WHERE status = 'SETTLED') s`,
	).Scan(&lat[0], &lat[1], &lat[2], &lat[3])
	if err != nil {
		return t, fmt.Errorf("latency: %w", err)
	}
	for i, l := range lat {
		t.lat[i] = l.Float64
	}
	err = db.QueryRowContext(ctx, `
		SELECT extract(epoch FROM min(created_at) - $1), percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - $1) * 1000)
		  FROM settlements`, start).Scan(&firstFound, &detectP99)
	if err != nil {
		return t, fmt.Errorf("detection: %w", err)
	}
	t.firstFound, t.detectP99 = firstFound.Float64, detectP99.Float64
	if t.steady, err = steady(ctx, db); err != nil {
		return t, err
	}
	t.series, err = series(ctx, db, start)
	return t, err
}

func statusCounts(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT status, count(*) FROM settlements GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

func steady(ctx context.Context, db *sql.DB) (steadyWindow, error) {
	var w steadyWindow
	var from, to sql.NullTime
	err := db.QueryRowContext(ctx, `
		SELECT percentile_disc(0.1) WITHIN GROUP (ORDER BY finished_at), percentile_disc(0.9) WITHIN GROUP (ORDER BY finished_at)
		  FROM settlements WHERE status = 'SETTLED'`).Scan(&from, &to)
	if err != nil || !from.Valid || !to.Time.After(from.Time) {
		return w, err
	}
	w.from, w.to = from.Time, to.Time
	var p99 sql.NullFloat64
	err = db.QueryRowContext(ctx, `
		SELECT count(*), percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000)
		  FROM settlements WHERE status = 'SETTLED' AND finished_at > $1 AND finished_at <= $2`, w.from, w.to).Scan(&w.settlements, &p99)
	if err != nil {
		return w, fmt.Errorf("steady window: %w", err)
	}
	w.p99MS = p99.Float64
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM steps WHERE status = 'DONE' AND done_at > $1 AND done_at <= $2`,
		w.from, w.to).Scan(&w.steps)
	return w, err
}

// series buckets the run by second since start.
func series(ctx context.Context, db *sql.DB, start time.Time) ([]Point, error) {
	rows, err := db.QueryContext(ctx, `
		WITH settled AS (
			SELECT floor(extract(epoch FROM finished_at - $1))::int AS sec, count(*) AS n,
			       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000) AS p50,
			       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000) AS p99
			  FROM settlements WHERE status = 'SETTLED' GROUP BY 1),
		detected AS (SELECT floor(extract(epoch FROM created_at - $1))::int AS sec, count(*) AS n FROM settlements GROUP BY 1),
		done AS (SELECT floor(extract(epoch FROM done_at - $1))::int AS sec, count(*) AS n FROM steps WHERE status = 'DONE' GROUP BY 1),
		secs AS (SELECT sec FROM settled UNION SELECT sec FROM detected UNION SELECT sec FROM done)
		SELECT secs.sec, coalesce(detected.n, 0), coalesce(settled.n, 0), coalesce(done.n, 0),
		       coalesce(settled.p50, 0), coalesce(settled.p99, 0)
		  FROM secs LEFT JOIN settled USING (sec) LEFT JOIN detected USING (sec) LEFT JOIN done USING (sec)
		 WHERE secs.sec >= 0 ORDER BY secs.sec`, start)
	if err != nil {
		return nil, fmt.Errorf("series: %w", err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var p Point
		var sec int64
		if err := rows.Scan(&sec, &p.Detected, &p.Settled, &p.Steps, &p.P50MS, &p.P99MS); err != nil {
			return nil, err
		}
		p.T = float64(sec)
		out = append(out, p)
	}
	return out, rows.Err()
}
