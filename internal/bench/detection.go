package bench

import (
	"context"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/dialects"
)

// Detection is how long the poll took to find the run's deposits, and
// what it spent at the bank to find them.
type Detection struct {
	// Sec is the first deposit credited (the bench's clock) → the last
	// settlement created (the database's clock, on the same machine). On a
	// payday it includes the wait for the engine's first poll tick.
	Sec float64 `json:"first_credit_to_last_detected_sec"`
	// EngineSec is the engine's start → the last settlement created.
	EngineSec float64 `json:"engine_start_to_last_detected_sec"`
	// CreditP*MS are credit → detected per deposit: from the bank
	// confirming the salary to its settlement's creation.
	CreditP50MS float64 `json:"credit_to_detected_p50_ms"`
	CreditP99MS float64 `json:"credit_to_detected_p99_ms"`
	// AccountsPerCall is how many accounts one balance call of the
	// dialect asks about (openbanking 1, rest 100).
	AccountsPerCall int `json:"accounts_per_balance_call"`
	// BalanceCalls are the balance calls the bank answered from the
	// engine's start until every deposit was detected (read by the
	// progress loop every 2 s, so up to 2 s late); BalanceCallsRun over
	// the whole run, the polls of VAs already settled included.
	BalanceCalls    int64   `json:"balance_calls"`
	BalanceCallsRun int64   `json:"balance_calls_whole_run"`
	CallsPerDeposit float64 `json:"balance_calls_per_deposit"`
	// RateShare is the share of the bank's rate limit that the engine's
	// calls (balances and transfers) used from its start until every
	// deposit was detected; PollShare the balance calls' part. Both are 0
	// without a rate limit.
	RateShare float64 `json:"rate_limit_share,omitempty"`
	PollShare float64 `json:"poll_rate_limit_share,omitempty"`
}

// bankMark is the sandbox's counters when the progress loop first saw
// every deposit detected.
type bankMark struct {
	at    time.Time
	stats banksim.Stats
}

// dialect is the registry's entry of a dialect the bench drives (Options
// are checked to name one of Dialects, which the registry holds).
func dialect(name string) dialects.Dialect {
	d, _ := dialects.Lookup(name)
	return d
}

// measureDetection fills r.Detection: per-deposit credit → detected from
// the settlements' creation times, and the bank's counters from before the
// engine started (before), when every deposit was detected (mark, nil if
// never seen) and at the end (after).
func measureDetection(ctx context.Context, in *installation, o Options, start time.Time, before, after banksim.Stats, mark *bankMark, r *Result) error {
	found, err := detectedAt(ctx, in)
	if err != nil {
		return err
	}
	d := Detection{AccountsPerCall: dialect(o.Dialect).BatchSize}
	var firstCredit, lastFound time.Time
	var ms []float64
	for _, dep := range in.deposits {
		if !dep.paidAt.IsZero() && (firstCredit.IsZero() || dep.paidAt.Before(firstCredit)) {
			firstCredit = dep.paidAt
		}
		at, ok := found[dep.customer.ID]
		if !ok {
			continue
		}
		if at.After(lastFound) {
			lastFound = at
		}
		if !dep.paidAt.IsZero() {
			ms = append(ms, float64(at.Sub(dep.paidAt))/float64(time.Millisecond))
		}
	}
	if !lastFound.IsZero() {
		d.Sec, d.EngineSec = lastFound.Sub(firstCredit).Seconds(), lastFound.Sub(start).Seconds()
	}
	d.CreditP50MS, d.CreditP99MS = percentile(ms, 0.5), percentile(ms, 0.99)
	d.BalanceCallsRun = after.BalanceCalls() - before.BalanceCalls()
	if mark != nil {
		d.BalanceCalls = mark.stats.BalanceCalls() - before.BalanceCalls()
		if secs := mark.at.Sub(start).Seconds(); o.RateLimit > 0 && secs > 0 {
			d.RateShare = ratio(float64(mark.stats.DialectCalls()-before.DialectCalls()), o.RateLimit*secs)
			d.PollShare = ratio(float64(d.BalanceCalls), o.RateLimit*secs)
		}
	}
	d.CallsPerDeposit = ratio(float64(d.BalanceCalls), float64(len(found)))
	r.Detection = d
	return nil
}

// detectedAt is when each customer's first settlement of the run was
// created: when the poll found its deposit.
func detectedAt(ctx context.Context, in *installation) (map[int64]time.Time, error) {
	rows, err := in.db.SQL().QueryContext(ctx, `SELECT customer_id, min(created_at) FROM settlements GROUP BY customer_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = at
	}
	return out, rows.Err()
}
