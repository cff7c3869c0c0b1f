package pipeline

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// A provider with a rate limit and no poll_budget gets half the calls the
// rate allows in one poll interval, so polling leaves the rest to the
// transfers; an explicit poll_budget wins, and no rate limit means no
// budget.
func TestPollBudgetDefaultsToHalfTheRate(t *testing.T) {
	t.Parallel()
	policy := PollPolicy{Interval: 2 * time.Second}
	for _, c := range []struct {
		name            string
		pollBudget, rps int
		want            int
	}{
		{"limited", 0, 50, 50},
		{"slow", 0, 1, 1},
		{"explicit", 7, 50, 7},
		{"open", 0, 0, 0},
	} {
		if got := policy.Budget(c.pollBudget, c.rps); got != c.want {
			t.Errorf("provider %s: poll budget %d per 2s cycle, want %d", c.name, got, c.want)
		}
	}
}

// monthConfig is the month of docs/polling.md: 100,000 VAs at an
// openbanking provider (one account per balance call) allowing 50 calls a
// second, polled every 30 minutes with a budget of 60,000 poll calls a
// cycle (two thirds of the 90,000 the bank allows in 30 minutes; the rest
// is for transfers). October 2026 in Seoul: the 10th and the 25th fall on a
// weekend, so their salaries come on Friday the 9th and the 23rd.
func monthConfig(vas int) SimConfig {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		panic(err)
	}
	scale := float64(vas) / 100_000
	return SimConfig{
		VAs:       vas,
		Policy:    PollPolicy{Interval: 30 * time.Minute, IdleEvery: 6, PaydayWindow: 1, Location: seoul},
		Budget:    int(60_000 * scale),
		RateLimit: 50 * scale,
		Start:     time.Date(2026, 9, 24, 0, 0, 0, 0, seoul),
		Measure:   time.Date(2026, 10, 1, 0, 0, 0, 0, seoul),
		End:       time.Date(2026, 11, 1, 0, 0, 0, 0, seoul),
		Paydays: []PaydayShare{
			{Day: 25, Share: 0.35}, {Day: 10, Share: 0.20}, {Day: 15, Share: 0.10}, {Day: 21, Share: 0.05},
			{Day: 31, Share: 0.10}, {Day: 1, Share: 0.05}, {Day: 0, Share: 0.15},
		},
		Unknown: 0.05,
		Extra:   0.02,
		Seed:    2026,
	}
}

// TestSimulatedMonth steps the poll policy through a month for a
// population of VAs: the salaries of customers whose payday is known are
// found within two poll intervals (but those after another deposit found
// in the window, within the idle schedule), and no cycle spends more calls than its
// budget or than the bank allows. SETTLE_TEST_SIM_VAS sets the population
// (default 100,000, or 20,000 under the race detector; the budget and the
// bank's rate scale with it);
// SETTLE_TEST_SIM_COMPARE=1 also runs every VA at every cycle for
// comparison.
func TestSimulatedMonth(t *testing.T) {
	t.Parallel()
	vas := 100_000
	if raceEnabled {
		vas = 20_000
	}
	if v, err := strconv.Atoi(os.Getenv("SETTLE_TEST_SIM_VAS")); err == nil && v > 0 {
		vas = v
	}
	cfg := monthConfig(vas)
	rep := SimulatePolling(cfg)
	t.Logf("smart polling, %d VAs, budget %d calls a cycle, bank %.0f calls/s:\n%s", vas, cfg.Budget, cfg.RateLimit, rep.Summary())
	if rep.Missed != 0 {
		t.Errorf("%d deposits were never found", rep.Missed)
	}
	// A salary whose VA had another deposit found earlier in its window
	// (2% of customers get one) waits for the idle schedule: the VA counts
	// as paid. Every other one is found within two intervals.
	if rep.Payday.Deposits < vas*9/10 || rep.Payday.WithinTwo < rep.Payday.Deposits*999/1000 {
		t.Errorf("%d of %d payday deposits found within two intervals (%s); want 99.9%%", rep.Payday.WithinTwo, rep.Payday.Deposits, 2*rep.Interval)
	}
	if idle := time.Duration(cfg.Policy.IdleEvery) * rep.Interval; rep.Payday.Max > idle {
		t.Errorf("a payday deposit waited %s; want within the idle schedule's %s", rep.Payday.Max, idle)
	}
	if rep.MaxPollCalls > cfg.Budget || rep.MaxShare > 1 {
		t.Errorf("a cycle spent %d poll calls (budget %d), %.0f%% of the bank's calls", rep.MaxPollCalls, cfg.Budget, 100*rep.MaxShare)
	}
	if rep.Unknown.Max > 7*rep.Interval || rep.Extra.Max > 7*rep.Interval {
		t.Errorf("deposits of customers not near payday waited up to %s / %s; want within %s",
			rep.Unknown.Max, rep.Extra.Max, 7*rep.Interval)
	}

	if os.Getenv("SETTLE_TEST_SIM_COMPARE") == "" {
		return
	}
	// For comparison: every VA at every cycle within the same budget.
	naive := cfg
	naive.Policy.IdleEvery = 1
	naive.Policy.PaydayWindow = 0
	t.Logf("every VA every cycle, same budget:\n%s", SimulatePolling(naive).Summary())
}

func TestPaydays(t *testing.T) {
	t.Parallel()
	seoul, _ := time.LoadLocation("Asia/Seoul")
	p := PollPolicy{PaydayWindow: 1, Location: seoul}
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, seoul)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	has := func(ps []OpenPayday, d int) bool {
		for _, x := range ps {
			if x.Day == d {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		now  string
		day  int
		near bool
		why  string
	}{
		{"2026-10-22 00:00", 25, true, "Sunday the 25th pays Friday the 23rd: its window opens Thursday"},
		{"2026-10-21 23:59", 25, false, "before the window"},
		{"2026-10-24 23:59", 25, true, "the day after Friday"},
		{"2026-10-25 00:00", 25, false, "the window closed with Saturday"},
		{"2026-11-24 12:00", 25, true, "Wednesday the 25th: Tuesday is in"},
		{"2026-11-26 23:00", 25, true, "Thursday is in"},
		{"2026-11-27 00:00", 25, false, "Friday is out"},
		{"2026-02-27 10:00", 31, true, "the 31st in February is the 27th (the 28th is a Saturday)"},
		{"2026-02-27 10:00", 30, true, "and so is the 30th"},
		{"2026-04-30 15:00", 1, true, "the 1st of May opens on the 30th of April"},
		{"2026-10-25 00:00", 1, false, "far from the 1st"},
	} {
		if got := has(p.OpenPaydays(at(c.now)), c.day); got != c.near {
			t.Errorf("%s: payday %d near = %v, want %v (%s)", c.now, c.day, got, c.near, c.why)
		}
	}
	for _, o := range p.OpenPaydays(at("2026-10-24 12:00")) {
		if o.Day == 25 && !o.Since.Equal(at("2026-10-22 00:00")) {
			t.Errorf("the window of the 25th (paid Friday the 23rd) opened %s, want Thursday the 22nd", o.Since)
		}
	}
	pol := PollPolicy{Interval: time.Minute, IdleEvery: 6}
	if pol.NearEvery() != 30*time.Second || pol.IdleAfter() != 330*time.Second || pol.Reserve(1000) != 200 {
		t.Errorf("near every %s, idle after %s, reserve %d", pol.NearEvery(), pol.IdleAfter(), pol.Reserve(1000))
	}
}
