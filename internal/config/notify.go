package config

import (
	"strings"
	"time"

	"github.com/settle-dev/settle/jobs/cronspec"
)

// DailySummarySchedule is notify.daily_summary as the scheduler runs it:
// read in time_zone, unless it names its own zone (CRON_TZ=…) or is an
// @every interval, which no zone changes.
func (c *Config) DailySummarySchedule() string {
	spec := strings.TrimSpace(c.Notify.DailySummary)
	_, err := time.LoadLocation(c.TimeZone)
	if err != nil || c.TimeZone == "" || strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") ||
		strings.HasPrefix(spec, "@every ") {
		return spec
	}
	return "CRON_TZ=" + c.TimeZone + " " + spec
}

func (c *Config) validateDailySummary(p *problems) {
	if err := cronspec.Check(c.DailySummarySchedule()); err != nil {
		p.add("notify.daily_summary %q: %v; use a cron spec such as \"0 8 * * *\" (08:00 every day in time_zone)", c.Notify.DailySummary, err)
	}
}
