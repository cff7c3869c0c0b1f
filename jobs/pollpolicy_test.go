package jobs_test

import (
	"testing"
	"time"

	"github.com/settle-dev/settle/jobs"
)

// A provider with a rate limit and no poll_budget gets half the calls the
// rate allows in one poll interval, so polling leaves the rest to the
// transfers; an explicit poll_budget wins, and no rate limit means no
// budget.
func TestPollBudgetDefaultsToHalfTheRate(t *testing.T) {
	t.Parallel()
	policy := jobs.PollPolicy{Interval: 2 * time.Second}
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
