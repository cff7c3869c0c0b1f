package pipeline

import "time"

// PollPolicy decides when each virtual account is polled. It is pure: the
// poller (jobs) applies it through the database, the poll simulator of this
// package's tests applies it to a population in memory, and both follow
// the same rules:
//
//   - A VA whose customer is near payday is due at every cycle: its payday
//     (day of month: set by an operator, per employer, or learned from past
//     deposits) has an open window (OpenPaydays), and no deposit was found
//     in the VA since that window opened.
//   - Any other VA is due every IdleEvery cycles: so is one whose deposit
//     was found in the open window, until the window closes (a second
//     deposit is still found, on the idle schedule).
//   - Within a provider's budget of calls per cycle, IdleReserve of the
//     budget goes first to due idle VAs (most overdue first), so they are
//     never starved; then near-payday VAs (least recently polled first);
//     then idle VAs again with whatever is left.
type PollPolicy struct {
	// Interval is the period of the poll schedule. 0 polls every eligible
	// VA at every cycle (IdleEvery is then ignored).
	Interval time.Duration
	// IdleEvery: VAs not near payday are polled every IdleEvery cycles; 0
	// or 1 means every cycle.
	IdleEvery int
	// PaydayWindow is the days before and after the expected payday that
	// count as near it (0: the expected day only).
	PaydayWindow int
	// Location is where days begin and end; nil means UTC.
	Location *time.Location
}

// IdleReserve is the share of a cycle's budget kept for due idle VAs.
const IdleReserve = 0.2

// Budget is a provider's poll budget: pollBudget, or, when it is not set
// and the provider has a rate limit, half the calls the rate allows in one
// Interval (at least one). Near-payday VAs are polled at every cycle;
// without a budget, polling could take every call the bank allows and
// leave none to the transfers that move the money it finds.
func (p PollPolicy) Budget(pollBudget, rateLimitRPS int) int {
	if pollBudget > 0 || rateLimitRPS <= 0 {
		return pollBudget
	}
	return max(int(float64(rateLimitRPS)*p.Interval.Seconds()/2), 1)
}

// NearEvery is how long after its last poll a near-payday VA is due again:
// half an interval, so that it is due at every tick however ticks jitter.
func (p PollPolicy) NearEvery() time.Duration { return p.Interval / 2 }

// IdleAfter is how long after a poll a VA's next idle poll is due:
// IdleEvery intervals less half a one, so that it falls due at the
// IdleEvery-th tick.
func (p PollPolicy) IdleAfter() time.Duration {
	k := max(p.IdleEvery, 1)
	return time.Duration(k)*p.Interval - p.Interval/2
}

// Reserve returns how many of budget's calls go first to idle VAs.
func (p PollPolicy) Reserve(budget int) int {
	return int(float64(budget) * IdleReserve)
}

// TimeZone is where the policy's days begin and end: Location, or UTC.
func (p PollPolicy) TimeZone() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// OpenPayday is a payday (day of month 1..31) whose window is open, and
// when the window opened: a VA in which a deposit was found since is not
// near payday any more.
type OpenPayday struct {
	Day   int
	Since time.Time
}

// OpenPaydays returns the paydays (days of month 1..31) whose window is
// open at now, each with when its window opened: the window of payday d
// runs over whole local days from PaydayWindow days before the expected
// payday to PaydayWindow days after it. The expected payday is day d of
// the month (its last day when the month is shorter), moved back to Friday
// when it falls on a weekend, as employers pay before a weekend; public
// holidays are not known, which PaydayWindow absorbs. Months before and
// after now's are considered, so a window may cross a month's end.
func (p PollPolicy) OpenPaydays(now time.Time) []OpenPayday {
	local := now.In(p.TimeZone())
	var out []OpenPayday
	for d := 1; d <= 31; d++ {
		for _, mo := range []int{-1, 0, 1} {
			open, close := p.window(local.Year(), local.Month()+time.Month(mo), d)
			if !now.Before(open) && now.Before(close) {
				out = append(out, OpenPayday{Day: d, Since: open})
				break
			}
		}
	}
	return out
}

// window returns when the window of payday d in a month opens and closes.
func (p PollPolicy) window(year int, month time.Month, d int) (open, close time.Time) {
	e := ExpectedPayday(year, month, d, p.TimeZone())
	return e.AddDate(0, 0, -p.PaydayWindow), e.AddDate(0, 0, p.PaydayWindow+1)
}

// ExpectedPayday is the local midnight starting the day a salary paid on
// day d (1..31) of a month is expected: day d, or the month's last day if it
// is shorter, moved back to Friday from a Saturday or Sunday. month may be
// out of range (13 is January of the next year).
func ExpectedPayday(year int, month time.Month, d int, loc *time.Location) time.Time {
	first := time.Date(year, month, 1, 0, 0, 0, 0, loc)
	last := first.AddDate(0, 1, -1).Day()
	e := time.Date(first.Year(), first.Month(), min(d, last), 0, 0, 0, 0, loc)
	switch e.Weekday() {
	case time.Saturday:
		e = e.AddDate(0, 0, -1)
	case time.Sunday:
		e = e.AddDate(0, 0, -2)
	}
	return e
}
