package pipeline

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// SimConfig describes a simulated population of virtual accounts at one
// provider that answers one account per balance call (the openbanking
// dialect), and the month to simulate. SimulatePolling steps through it
// cycle by cycle with the poller's policy: no HTTP, no database.
type SimConfig struct {
	// VAs is the population: one VA per customer.
	VAs int
	// Policy is the poll schedule under test.
	Policy PollPolicy
	// Budget is the poll calls one cycle may make (0: no limit).
	Budget int
	// RateLimit is the calls a second the bank allows, shared by polls and
	// transfers: each cycle has RateLimit × Interval calls.
	RateLimit float64
	// CallsPerSettlement is the transfer calls a found deposit costs
	// (default 5: sweep, repay, hold, fee, payout).
	CallsPerSettlement int
	// Start and End bound the simulation; deposits arriving from Measure
	// to End are reported (the days before Measure warm the schedule up).
	// The simulation runs on after End until those are all found.
	Start, Measure, End time.Time
	// Paydays is the population's days of month; a Day of 0 spreads its
	// share over days 1..28.
	Paydays []PaydayShare
	// Unknown is the share of customers whose payday the engine does not
	// know (new customers: nothing set, nothing learned yet).
	Unknown float64
	// Extra is the share of customers who also get one deposit at a random
	// time of the month (a refund, a bonus).
	Extra float64
	// Seed makes the population and the arrivals repeatable.
	Seed uint64
}

// PaydayShare is the share of customers paid on a day of month.
type PaydayShare struct {
	Day   int
	Share float64
}

// SimReport is what a simulated month shows.
type SimReport struct {
	Cycles   int           `json:"cycles"`
	Interval time.Duration `json:"interval"`
	// Payday are the salary deposits of customers whose payday is known;
	// Unknown those of customers whose payday is not; Extra the deposits
	// outside payday.
	Payday  DelayStats `json:"payday"`
	Unknown DelayStats `json:"unknown_payday"`
	Extra   DelayStats `json:"extra"`
	// PollCalls and TransferCalls are the calls spent over the whole run;
	// MaxPollCalls the most poll calls of one cycle; MaxShare the largest
	// share of a cycle's RateLimit × Interval calls used by polls and
	// transfers together.
	PollCalls     int     `json:"poll_calls"`
	TransferCalls int     `json:"transfer_calls"`
	MaxPollCalls  int     `json:"max_poll_calls"`
	MaxShare      float64 `json:"max_share"`
	// PeakNear is the most VAs near payday in one cycle.
	PeakNear int `json:"peak_near"`
	// OldestUnpolled is the longest any eligible VA went unpolled.
	OldestUnpolled time.Duration `json:"oldest_unpolled"`
	// PeakBacklog is the most settlements waiting for transfer calls.
	PeakBacklog int `json:"peak_backlog"`
	// Missed counts measured deposits never found (a month after End).
	Missed int `json:"missed"`
}

// DelayStats summarizes detection delays: from a deposit's arrival to the
// poll that found it.
type DelayStats struct {
	Deposits int `json:"deposits"`
	// WithinTwo counts those found within two poll intervals.
	WithinTwo int           `json:"within_two_intervals"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
	Max       time.Duration `json:"max"`
	delays    []time.Duration
}

func (d *DelayStats) add(delay, interval time.Duration) {
	d.delays = append(d.delays, delay)
	if delay <= 2*interval {
		d.WithinTwo++
	}
}

func (d *DelayStats) finish() {
	d.Deposits = len(d.delays)
	if d.Deposits == 0 {
		return
	}
	slices.Sort(d.delays)
	at := func(q float64) time.Duration { return d.delays[int(q*float64(d.Deposits-1))] }
	d.P50, d.P99, d.Max = at(0.5), at(0.99), d.delays[d.Deposits-1]
	d.delays = nil
}

// deposit kinds
const (
	kindPayday = iota
	kindUnknown
	kindExtra
)

type simDeposit struct {
	at       time.Duration // since Start
	kind     int
	measured bool
}

// simVA is one virtual account's state; cycle numbers count from Start.
type simVA struct {
	payday     int // 0: unknown to the engine
	lastPolled int32
	nextPoll   int32
	found      int32 // the last cycle that found a deposit in it; -1: none
	busy       bool  // a settlement is moving its money: not polled
	deposits   []simDeposit
	next       int // the first deposit not found yet
}

// SimulatePolling runs cfg's month and reports detection delays and calls.
func SimulatePolling(cfg SimConfig) SimReport {
	s := newSim(cfg)
	for n := 0; s.running(n); n++ {
		s.cycle(n)
	}
	for _, d := range []*DelayStats{&s.rep.Payday, &s.rep.Unknown, &s.rep.Extra} {
		d.finish()
	}
	s.rep.Missed = s.pending
	return s.rep
}

type sim struct {
	cfg      SimConfig
	interval time.Duration
	idle     int32
	capacity int // calls a cycle
	vas      []simVA
	queue    []int // settlements waiting for transfer calls, FIFO
	queued   int   // transfer calls the head settlement still needs
	pending  int   // measured deposits not found yet
	rep      SimReport
	// scratch, reused by every cycle
	nearDue, idleDue, order []int
	keys                    []int32 // scratch: a sort key per VA
	counts                  []int
}

func newSim(cfg SimConfig) *sim {
	if cfg.CallsPerSettlement == 0 {
		cfg.CallsPerSettlement = 5
	}
	s := &sim{
		cfg: cfg, interval: cfg.Policy.Interval, idle: int32(max(cfg.Policy.IdleEvery, 1)),
		capacity: int(cfg.RateLimit * cfg.Policy.Interval.Seconds()),
		vas:      make([]simVA, cfg.VAs),
		keys:     make([]int32, cfg.VAs),
	}
	s.rep.Interval = s.interval
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9011))
	for i := range s.vas {
		s.vas[i] = s.newVA(rng)
		for _, d := range s.vas[i].deposits {
			if d.measured {
				s.pending++
			}
		}
	}
	return s
}

// newVA draws a customer: its payday, whether the engine knows it, and its
// deposits over the simulated span.
func (s *sim) newVA(rng *rand.Rand) simVA {
	cfg := s.cfg
	day := drawPayday(rng, cfg.Paydays)
	known := rng.Float64() >= cfg.Unknown
	v := simVA{lastPolled: -1, nextPoll: 0, found: -1}
	kind := kindPayday
	if known {
		v.payday = day
	} else {
		kind = kindUnknown
	}
	loc := cfg.Policy.TimeZone()
	start := cfg.Start.In(loc)
	for mo := -1; ; mo++ {
		e := ExpectedPayday(start.Year(), start.Month()+time.Month(mo), day, loc)
		if !e.Before(cfg.End) {
			break
		}
		v.addDeposit(s, payrollArrival(rng, e), kind)
	}
	if rng.Float64() < cfg.Extra {
		span := cfg.End.Sub(cfg.Start)
		v.addDeposit(s, cfg.Start.Add(time.Duration(rng.Int64N(int64(span)))), kindExtra)
	}
	slices.SortFunc(v.deposits, func(a, b simDeposit) int { return int(a.at - b.at) })
	return v
}

func (v *simVA) addDeposit(s *sim, at time.Time, kind int) {
	if at.Before(s.cfg.Start) || !at.Before(s.cfg.End) {
		return
	}
	v.deposits = append(v.deposits, simDeposit{at: at.Sub(s.cfg.Start), kind: kind, measured: !at.Before(s.cfg.Measure)})
}

// payrollArrival is when a salary due on expected (a local midnight)
// lands: mostly that day, some the day before, a few the day after.
func payrollArrival(rng *rand.Rand, expected time.Time) time.Time {
	hour := func(from, to int) time.Duration {
		return time.Duration(from)*time.Hour + time.Duration(rng.Int64N(int64(time.Duration(to-from)*time.Hour)))
	}
	switch r := rng.Float64(); {
	case r < 0.08:
		return expected.AddDate(0, 0, -1).Add(hour(9, 18))
	case r < 0.12:
		return expected.AddDate(0, 0, 1).Add(hour(0, 12))
	default:
		return expected.Add(hour(0, 18))
	}
}

func drawPayday(rng *rand.Rand, shares []PaydayShare) int {
	r := rng.Float64()
	for _, p := range shares {
		if r < p.Share {
			if p.Day == 0 {
				return 1 + rng.IntN(28)
			}
			return p.Day
		}
		r -= p.Share
	}
	return 1 + rng.IntN(28)
}

// running reports whether cycle n is to run: until End, then until every
// measured deposit is found (or a month more has passed, which would be a
// bug in the policy that the report shows).
func (s *sim) running(n int) bool {
	t := s.cfg.Start.Add(time.Duration(n) * s.interval)
	return t.Before(s.cfg.End) || s.pending > 0 && t.Before(s.cfg.End.AddDate(0, 1, 0))
}

// cycle runs cycle n: select the due VAs within the budget, in the
// policy's order; poll them; spend the rest of the cycle's calls on
// transfers.
func (s *sim) cycle(n int) {
	s.rep.Cycles++
	now := s.cfg.Start.Add(time.Duration(n) * s.interval)
	var near paydayCycles
	for _, p := range s.cfg.Policy.OpenPaydays(now) {
		near.open[p.Day] = true
		// The first cycle at or after the window opened.
		near.since[p.Day] = int32(math.Ceil(float64(p.Since.Sub(s.cfg.Start)) / float64(s.interval)))
	}
	s.collect(int32(n), &near)
	order := s.plan()
	polls := len(order)
	for j, i := range order {
		// Polls are spread over the whole interval, as if the budget took
		// all of it: a conservative model of when each call happens.
		at := time.Duration(n)*s.interval + time.Duration(float64(s.interval)*float64(j+1)/float64(max(s.cfg.Budget, polls)))
		s.poll(i, int32(n), at)
	}
	s.rep.PollCalls += polls
	s.rep.MaxPollCalls = max(s.rep.MaxPollCalls, polls)
	used := polls + s.transfers(s.capacity-polls)
	if s.capacity > 0 {
		s.rep.MaxShare = math.Max(s.rep.MaxShare, float64(used)/float64(s.capacity))
	}
}

// paydayCycles are the paydays whose window is open at a cycle (by day of
// month), with the first cycle of each window.
type paydayCycles struct {
	open  [32]bool
	since [32]int32
}

// near reports whether VA v is near payday: its payday's window is open
// and no deposit was found in it since the window opened.
func (p *paydayCycles) near(v *simVA) bool {
	return v.payday != 0 && p.open[v.payday] && v.found < p.since[v.payday]
}

// collect sorts the due VAs into near-payday ones (least recently polled
// first) and idle ones (most overdue first), each stable by ID, and
// measures the oldest poll.
func (s *sim) collect(n int32, near *paydayCycles) {
	s.nearDue, s.idleDue = s.nearDue[:0], s.idleDue[:0]
	var nearCount int
	var oldest int32
	for i := range s.vas {
		v := &s.vas[i]
		if v.busy {
			continue
		}
		oldest = max(oldest, n-v.lastPolled)
		if near.near(v) {
			nearCount++
			if v.lastPolled < n {
				s.nearDue = append(s.nearDue, i)
			}
		} else if v.nextPoll <= n {
			s.idleDue = append(s.idleDue, i)
		}
	}
	s.rep.PeakNear = max(s.rep.PeakNear, nearCount)
	s.rep.OldestUnpolled = max(s.rep.OldestUnpolled, time.Duration(oldest)*s.interval)
	for _, i := range s.nearDue {
		s.keys[i] = s.vas[i].lastPolled
	}
	s.sortBy(s.nearDue)
	for _, i := range s.idleDue {
		s.keys[i] = s.vas[i].nextPoll
	}
	s.sortBy(s.idleDue)
}

// sortBy sorts VAs by their keys, stable, with a counting sort: keys are
// cycle numbers, a small range.
func (s *sim) sortBy(ids []int) {
	if len(ids) < 2 {
		return
	}
	keys := s.keys
	lo, hi := keys[ids[0]], keys[ids[0]]
	for _, i := range ids {
		lo, hi = min(lo, keys[i]), max(hi, keys[i])
	}
	s.counts = slices.Grow(s.counts[:0], int(hi-lo)+2)[:int(hi-lo)+2]
	clear(s.counts)
	for _, i := range ids {
		s.counts[keys[i]-lo+1]++
	}
	for k := 1; k < len(s.counts); k++ {
		s.counts[k] += s.counts[k-1]
	}
	s.order = slices.Grow(s.order[:0], len(ids))[:len(ids)]
	for _, i := range ids {
		k := keys[i] - lo
		s.order[s.counts[k]] = i
		s.counts[k]++
	}
	copy(ids, s.order)
}

// plan applies the budget: idle VAs up to the reserve, then near-payday
// VAs, then idle VAs again.
func (s *sim) plan() []int {
	budget := s.cfg.Budget
	if budget <= 0 {
		budget = len(s.nearDue) + len(s.idleDue)
	}
	first := min(len(s.idleDue), s.cfg.Policy.Reserve(budget))
	out := make([]int, 0, min(budget, len(s.nearDue)+len(s.idleDue)))
	out = append(out, s.idleDue[:first]...)
	out = append(out, s.nearDue[:min(len(s.nearDue), budget-len(out))]...)
	out = append(out, s.idleDue[first:first+min(len(s.idleDue)-first, budget-len(out))]...)
	return out
}

// poll asks about VA i at offset at (since Start): every deposit arrived
// by then is found, and its settlement queued.
func (s *sim) poll(i int, n int32, at time.Duration) {
	v := &s.vas[i]
	v.lastPolled, v.nextPoll = n, n+s.idle
	found := false
	for ; v.next < len(v.deposits) && v.deposits[v.next].at <= at; v.next++ {
		d := v.deposits[v.next]
		found = true
		if !d.measured {
			continue
		}
		s.pending--
		delay := at - d.at
		switch d.kind {
		case kindPayday:
			s.rep.Payday.add(delay, s.interval)
		case kindUnknown:
			s.rep.Unknown.add(delay, s.interval)
		default:
			s.rep.Extra.add(delay, s.interval)
		}
	}
	if found {
		v.busy, v.found = true, n
		s.queue = append(s.queue, i)
	}
}

// transfers spends up to calls on queued settlements, first come first
// served, and returns the calls spent. A settlement done frees its VA.
func (s *sim) transfers(calls int) int {
	spent := 0
	s.rep.PeakBacklog = max(s.rep.PeakBacklog, len(s.queue))
	for len(s.queue) > 0 && spent < calls {
		if s.queued == 0 {
			s.queued = s.cfg.CallsPerSettlement
		}
		k := min(s.queued, calls-spent)
		s.queued -= k
		spent += k
		if s.queued == 0 {
			s.vas[s.queue[0]].busy = false
			s.queue = s.queue[1:]
		}
	}
	s.rep.TransferCalls += spent
	return spent
}

// Summary is the report in words, times in minutes.
func (r SimReport) Summary() string {
	line := func(name string, d DelayStats) string {
		return fmt.Sprintf("  %-15s %7d deposits, %7d within two intervals; delay p50 %5.1f min, p99 %5.1f min, max %5.1f min\n",
			name, d.Deposits, d.WithinTwo, d.P50.Minutes(), d.P99.Minutes(), d.Max.Minutes())
	}
	perCycle := 0
	if r.Cycles > 0 {
		perCycle = r.PollCalls / r.Cycles
	}
	return fmt.Sprintf("%d cycles of %s\n", r.Cycles, r.Interval) +
		line("payday known", r.Payday) + line("payday unknown", r.Unknown) + line("other deposits", r.Extra) +
		fmt.Sprintf("  poll calls %d (%d a cycle on average, at most %d), transfer calls %d; at most %.1f%% of the bank's calls in a cycle\n",
			r.PollCalls, perCycle, r.MaxPollCalls, r.TransferCalls, 100*r.MaxShare) +
		fmt.Sprintf("  peak VAs near payday %d, longest unpolled %s, peak settlements waiting %d, deposits never found %d\n",
			r.PeakNear, r.OldestUnpolled, r.PeakBacklog, r.Missed)
}
