package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/lib/pq"

	"github.com/settle-dev/settle/pipeline"
)

// DueKey orders due virtual accounts within a poll cycle: a near-payday VA
// by when it was last polled, any other by its next idle poll; then by ID.
type DueKey struct {
	At   time.Time
	VAID int64
}

// DueTarget is a poll target that is due, with its place in the order.
type DueTarget struct {
	PollTarget
	Key  DueKey
	Near bool // selected as near payday
}

// DueQuery selects the due virtual accounts of one provider in one class.
type DueQuery struct {
	Provider string
	// Near selects VAs whose customer is near payday: their payday (day of
	// month) is one of Paydays, those whose window is open, and no deposit
	// was found in the VA since that window opened. Otherwise the others.
	Near    bool
	Paydays []pipeline.OpenPayday
	// CycleStart is the cycle's start by the database's clock (DB.Now). A VA
	// polled since is never due again in the same cycle.
	CycleStart time.Time
	// NearEvery is how long after its last poll a near-payday VA is due
	// again: half the poll interval, so it is due at every tick.
	NearEvery time.Duration
	// FromVA and ToVA bound the virtual-account IDs of the poll shard
	// (inclusive); ToVA 0 means no upper bound.
	FromVA, ToVA int64
	// After is the last key of the previous page; zero for the first.
	After DueKey
	Limit int
}

// vaRange returns the query's VA ID bounds, inclusive.
func (q DueQuery) vaRange() (int64, int64) {
	if q.ToVA == 0 {
		return q.FromVA, math.MaxInt64
	}
	return q.FromVA, q.ToVA
}

// customerOfVA looks up, for each virtual account va, what polling needs
// of its customer (x): the payout account and obligations, whether the VA
// is near payday (its customer's payday has an open window, $2[day] when
// it opened, and no deposit was found in the VA since: a settlement
// created from it, not cancelled), and
// whether its VAs are polled at all (an active customer with no open
// settlement, whose money is being moved). OFFSET 0 keeps it a lookup per
// VA through the primary keys, so a query costs what it reads of the
// shard, however many customers there are.
var customerOfVA = `
	LEFT JOIN LATERAL (
		SELECT c.payout_account, c.payout_holder_name, o.outstanding, o.hold_amount, o.fee_fixed, o.fee_bps,
		       coalesce(w.since IS NOT NULL AND NOT EXISTS (SELECT 1 FROM settlements f
		            WHERE f.customer_id = c.id AND f.created_at >= w.since AND f.va_id = va.id
		              AND f.status <> 'CANCELLED'), false) AS near,
		       c.status = 'ACTIVE' AND NOT EXISTS (SELECT 1 FROM settlements s
		            WHERE s.customer_id = c.id AND s.status IN (` + openStatuses + `)) AS polled
		  FROM customers c
		  JOIN obligations o ON o.customer_id = c.id
		  LEFT JOIN employers e ON e.ref = c.employer_ref
		 CROSS JOIN LATERAL (SELECT ($2::timestamptz[])[coalesce(c.payday, e.payday, c.learned_payday)] AS since) w
		 WHERE c.id = va.customer_id
		OFFSET 0) x ON true`

// shard reads the virtual accounts of one shard ($3..$4) by their IDs,
// first and on its own (MATERIALIZED), so that a query costs what the
// shard holds, however many VAs there are; the queries sort the shard's
// due VAs themselves (there is no index on the poll times: marking VAs
// polled then touches no index).
const shard = `WITH shard AS MATERIALIZED (
		SELECT id, customer_id, provider, number, currency, settle_version, active,
		       next_poll_at, last_polled_at, held_until, created_at
		  FROM virtual_accounts WHERE id BETWEEN $3 AND $4)`

// shardVAs is, of a shard's VAs (va), the active ones of one provider ($1)
// that are not held after a deposit (by $5, the cycle's start).
const shardVAs = `va.provider = $1 AND va.active
		   AND (va.held_until IS NULL OR va.held_until <= $5::timestamptz)`

// lastPolled orders near-payday VAs; never polled comes first.
const lastPolled = `coalesce(va.last_polled_at, 'epoch'::timestamptz)`

// DuePage is one page of due virtual accounts.
type DuePage struct {
	// Targets are the page's VAs of the query's class that are polled.
	Targets []DueTarget
	// Scanned is how many due VAs the page read (of any class, polled or
	// not), and Last the key of the last one: the next page starts after
	// it, and a page that read fewer than the limit is the last.
	Scanned int
	Last    DueKey
}

// DuePollTargets returns the next page of due virtual accounts of one
// provider, shard and class, in due order: near-payday VAs not polled for
// NearEvery, least recently polled first, or other VAs whose next idle
// poll has come, most overdue first. A page reads up to q.Limit due VAs of
// the shard in key order and keeps those of the class that are polled.
func (db *DB) DuePollTargets(ctx context.Context, q DueQuery) (DuePage, error) {
	due, key := `va.next_poll_at <= $5::timestamptz`, `va.next_poll_at`
	from, to := q.vaRange()
	args := []any{q.Provider, paydayArray(q.Paydays), from, to, q.CycleStart, q.After.At, q.After.VAID, q.Limit, q.Near}
	if q.Near {
		due = lastPolled + ` <= $5::timestamptz - $10 * interval '1 millisecond'`
		key = lastPolled
		args = append(args, q.NearEvery.Milliseconds())
	}
	var rows []struct {
		PollTarget
		DueAt    time.Time `db:"due_at"`
		Eligible bool      `db:"eligible"`
	}
	err := db.x.SelectContext(ctx, &rows, shard+`
		SELECT va.id AS va_id, va.customer_id, va.provider, va.number, va.currency, va.settle_version,
		       coalesce(x.payout_account, '') AS payout_account, coalesce(x.payout_holder_name, '') AS payout_holder_name,
		       coalesce(x.outstanding, 0) AS outstanding, coalesce(x.hold_amount, 0) AS hold_amount,
		       coalesce(x.fee_fixed, 0) AS fee_fixed, coalesce(x.fee_bps, 0) AS fee_bps,
		       va.due_at, coalesce(x.polled AND x.near = $9, false) AS eligible
		  FROM (SELECT va.*, `+key+` AS due_at FROM shard va
		         WHERE `+shardVAs+` AND `+due+`
		           AND (`+key+`, va.id) > ($6::timestamptz, $7::bigint)
		         ORDER BY `+key+`, va.id
		         LIMIT $8) va
		`+customerOfVA+`
		 ORDER BY va.due_at, va.id`, args...)
	if err != nil {
		return DuePage{}, fmt.Errorf("list due poll targets at %s: %w", q.Provider, err)
	}
	page := DuePage{Scanned: len(rows)}
	for _, r := range rows {
		page.Last = DueKey{At: r.DueAt, VAID: r.VAID}
		if r.Eligible {
			page.Targets = append(page.Targets, DueTarget{PollTarget: r.PollTarget, Key: page.Last, Near: q.Near})
		}
	}
	return page, nil
}

// paydayArray is, for days of month 1..31 (the array's indexes), when the
// window of each open payday opened; NULL for the others.
func paydayArray(ps []pipeline.OpenPayday) pq.GenericArray {
	out := make([]sql.NullString, 31)
	for _, p := range ps {
		if p.Day >= 1 && p.Day <= 31 {
			out[p.Day-1] = sql.NullString{String: p.Since.Format(time.RFC3339Nano), Valid: true}
		}
	}
	return pq.GenericArray{A: out}
}

// MarkPolled records that the bank is being asked about the virtual
// accounts: last polled now, next idle poll after idle. A VA marked is not
// due again in the same cycle.
func (db *DB) MarkPolled(ctx context.Context, vaIDs []int64, idle time.Duration) error {
	_, err := db.x.ExecContext(ctx, `
		UPDATE virtual_accounts SET last_polled_at = now(), next_poll_at = now() + $2 * interval '1 millisecond'
		 WHERE id = ANY($1)`, pq.Array(vaIDs), idle.Milliseconds())
	if err != nil {
		return fmt.Errorf("mark %d virtual accounts polled: %w", len(vaIDs), err)
	}
	return nil
}

// MarkDue makes virtual accounts whose poll failed due at the next cycle.
func (db *DB) MarkDue(ctx context.Context, vaIDs []int64) error {
	if _, err := db.x.ExecContext(ctx, `UPDATE virtual_accounts SET next_poll_at = now() WHERE id = ANY($1)`, pq.Array(vaIDs)); err != nil {
		return fmt.Errorf("make %d virtual accounts due again: %w", len(vaIDs), err)
	}
	return nil
}

// LearnPaydays learns the payday of each customer from its deposits: the
// most frequent day of month, in the time zone tz, of its last six
// settlements (a tie keeps the payday learned before, else takes the
// latest). The poller calls it for the customers whose deposit it found.
func (db *DB) LearnPaydays(ctx context.Context, customerIDs []int64, tz string) error {
	_, err := db.x.ExecContext(ctx, `
		UPDATE customers c SET learned_payday = coalesce((
			SELECT x.d FROM (
				SELECT extract(day FROM s.created_at AT TIME ZONE $2)::int AS d, s.created_at
				  FROM settlements s WHERE s.customer_id = c.id AND s.status <> 'CANCELLED'
				 ORDER BY s.created_at DESC LIMIT 6) x
			 GROUP BY x.d
			 ORDER BY count(*) DESC, (x.d = c.learned_payday) DESC, max(x.created_at) DESC
			 LIMIT 1), c.learned_payday)
		 WHERE c.id = ANY($1)`, pq.Array(customerIDs), tz)
	if err != nil {
		return fmt.Errorf("learn the paydays of %d customers: %w", len(customerIDs), err)
	}
	return nil
}

// PollBacklog is what one provider's poll cycle left behind.
type PollBacklog struct {
	// Due counts the VAs still due at the cycle's start (over budget, cut
	// short, or paused).
	Due int `db:"due"`
	// Oldest is how long ago the least recently polled of them was polled
	// (or created, if never); 0 when none is due.
	Oldest time.Duration
}

// PollBacklog measures, after a cycle that may have left some, how many of
// a provider's VAs in the query's shard are still due and how long the
// oldest of them has waited. Only VAs due by their own poll times are
// looked up. q.After and q.Limit are ignored; q.Near does not matter.
func (db *DB) PollBacklog(ctx context.Context, q DueQuery) (PollBacklog, error) {
	from, to := q.vaRange()
	nearDue := lastPolled + ` <= $5::timestamptz - $6 * interval '1 millisecond'`
	var row struct {
		Due    int     `db:"due"`
		Oldest float64 `db:"oldest"`
	}
	err := db.x.GetContext(ctx, &row, shard+`
		SELECT count(*) AS due,
		       coalesce(extract(epoch FROM now() - min(coalesce(va.last_polled_at, va.created_at))), 0)::float8 AS oldest
		  FROM (SELECT va.* FROM shard va
		         WHERE `+shardVAs+` AND (va.next_poll_at <= $5::timestamptz OR `+nearDue+`)) va
		  `+customerOfVA+`
		 WHERE x.polled AND CASE WHEN x.near THEN `+nearDue+` ELSE va.next_poll_at <= $5::timestamptz END`,
		q.Provider, paydayArray(q.Paydays), from, to, q.CycleStart, q.NearEvery.Milliseconds())
	if err != nil {
		return PollBacklog{}, fmt.Errorf("poll backlog at %s: %w", q.Provider, err)
	}
	return PollBacklog{Due: row.Due, Oldest: time.Duration(row.Oldest * float64(time.Second)).Round(time.Second)}, nil
}

// PollProviders lists the providers that hold active virtual accounts.
func (db *DB) PollProviders(ctx context.Context) ([]string, error) {
	var out []string
	// A skip scan of the index that leads with the provider: one probe per
	// provider, however many VAs there are.
	err := db.x.SelectContext(ctx, &out, `
		WITH RECURSIVE p AS (
			(SELECT provider FROM virtual_accounts WHERE active ORDER BY provider LIMIT 1)
			UNION ALL
			SELECT (SELECT va.provider FROM virtual_accounts va WHERE va.active AND va.provider > p.provider
			         ORDER BY va.provider LIMIT 1)
			  FROM p WHERE p.provider IS NOT NULL)
		SELECT provider FROM p WHERE provider IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list providers to poll: %w", err)
	}
	return out, nil
}

// Now returns the database's clock, which judges when a poll is due.
func (db *DB) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := db.x.QueryRowxContext(ctx, `SELECT now()`).Scan(&now); err != nil {
		return now, fmt.Errorf("read the database clock: %w", err)
	}
	return now, nil
}

// VARange is the span of active virtual-account IDs and their count,
// which the poll job divides into shards.
type VARange struct {
	From  int64 `db:"from_va"`
	To    int64 `db:"to_va"`
	Count int   `db:"count"`
}

// ActiveVARange returns the lowest and highest ID of the active virtual
// accounts and how many there are (all zero when there are none).
func (db *DB) ActiveVARange(ctx context.Context) (VARange, error) {
	var r VARange
	err := db.x.GetContext(ctx, &r, `
		SELECT coalesce(min(id), 0) AS from_va, coalesce(max(id), 0) AS to_va, count(*) AS count
		  FROM virtual_accounts WHERE active`)
	if err != nil {
		return r, fmt.Errorf("measure the active virtual accounts: %w", err)
	}
	return r, nil
}

// PollShardRun is one shard of one poll tick, as the poll_shard_runs log
// records it.
type PollShardRun struct {
	Tick     time.Time `db:"tick" json:"tick"`
	Shard    int       `db:"shard" json:"shard"`
	Shards   int       `db:"shards" json:"shards"`
	FromVA   int64     `db:"from_va" json:"from_va"`
	ToVA     int64     `db:"to_va" json:"to_va"`
	Replica  string    `db:"replica" json:"replica"`
	Error    string    `db:"error" json:"error,omitempty"`
	Finished bool      `db:"finished" json:"finished"`
}

// StartPollShard records that replica starts a shard of a tick. It reports
// false, recording nothing, when the shard of that tick was started
// already: a shard runs at most once per tick, however often its task is
// delivered.
func (db *DB) StartPollShard(ctx context.Context, r PollShardRun) (bool, error) {
	res, err := db.x.ExecContext(ctx, `
		INSERT INTO poll_shard_runs (tick, shard, shards, from_va, to_va, replica)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		r.Tick, r.Shard, r.Shards, r.FromVA, r.ToVA, r.Replica)
	if err != nil {
		return false, fmt.Errorf("start poll shard %d/%d of %s: %w", r.Shard, r.Shards, r.Tick.Format(time.RFC3339), err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishPollShard records a shard's result (stored as JSON) and error.
func (db *DB) FinishPollShard(ctx context.Context, tick time.Time, shard int, result any, runErr error) error {
	if _, err := db.x.ExecContext(ctx, `
		UPDATE poll_shard_runs SET finished_at = now(), result = $3, error = $4 WHERE tick = $1 AND shard = $2`,
		tick, shard, resultJSON(result), errText(runErr)); err != nil {
		return fmt.Errorf("finish poll shard %d of %s: %w", shard, tick.Format(time.RFC3339), err)
	}
	return nil
}

// PollShardRunsKept is how long the poll-shard log keeps a tick's shards.
const PollShardRunsKept = 7 * 24 * time.Hour

// PrunePollShardRuns deletes the poll-shard log of the ticks older than
// PollShardRunsKept before tick.
func (db *DB) PrunePollShardRuns(ctx context.Context, tick time.Time) error {
	if _, err := db.x.ExecContext(ctx, `DELETE FROM poll_shard_runs WHERE tick < $1`, tick.Add(-PollShardRunsKept)); err != nil {
		return fmt.Errorf("prune the poll-shard log: %w", err)
	}
	return nil
}

// PollShardRuns lists the shard runs of the ticks at or after since, by
// tick and shard.
func (db *DB) PollShardRuns(ctx context.Context, since time.Time) ([]PollShardRun, error) {
	var out []PollShardRun
	err := db.x.SelectContext(ctx, &out, `
		SELECT tick, shard, shards, from_va, to_va, replica, error, finished_at IS NOT NULL AS finished
		  FROM poll_shard_runs WHERE tick >= $1 ORDER BY tick, shard`, since)
	if err != nil {
		return nil, fmt.Errorf("list poll shard runs: %w", err)
	}
	return out, nil
}
