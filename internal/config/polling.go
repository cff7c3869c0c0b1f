package config

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time_zone works on a machine without a zone database
)

// Smart polling and maintenance windows (docs/polling.md):
//
//   - time_zone: where paydays and maintenance windows are counted.
//   - poll.idle_every, poll.payday_window, poll.concurrency: which virtual
//     accounts a poll cycle asks about, and how many requests at once.
//   - providers[].poll_budget: the most balance calls one poll cycle makes
//     at the provider.
//   - providers[].maintenance: daily windows in which nothing is sent to
//     the provider: no poll and no transfer; due steps wait for the end.

// Location returns time_zone's location. Load has checked it loads; a
// Config built by hand with a bad zone gets UTC.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil || c.TimeZone == "" {
		return time.UTC
	}
	return loc
}

// MaintenanceWindows returns the provider's windows ("23:30-00:30"), one
// per element.
func (pc *ProviderConfig) MaintenanceWindows() []string {
	var out []string
	for w := range strings.SplitSeq(pc.Maintenance, ",") {
		if w = strings.TrimSpace(w); w != "" {
			out = append(out, w)
		}
	}
	return out
}

func (c *Config) validatePolling(p *problems) {
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" || c.TimeZone == "Local" {
		p.add("time_zone %q: must be an IANA time zone such as Asia/Seoul or UTC", c.TimeZone)
	}
	p.between("poll.idle_every", int64(c.Poll.IdleEvery), 1, 1000)
	p.between("poll.payday_window", int64(c.Poll.PaydayWindow), 0, 7)
	p.between("poll.concurrency", int64(c.Poll.Concurrency), 1, 256)
	p.between("poll.shard_size", int64(c.Poll.ShardSize), 1, 1_000_000)
	for i := range c.Providers {
		c.Providers[i].validatePolling(p, providerKey(i))
	}
}

func providerKey(i int) string { return fmt.Sprintf("providers[%d]", i) }

func (pc *ProviderConfig) validatePolling(p *problems, key string) {
	p.between(key+".poll_budget", int64(pc.PollBudget), 0, 100_000_000)
	for _, w := range pc.MaintenanceWindows() {
		if !validWindow(w) {
			p.add("%s.maintenance %q: write daily windows as HH:MM-HH:MM separated by commas, such as \"23:30-00:30,04:00-04:10\"; the start and end differ", key, w)
		}
	}
}

// validWindow reports whether w is HH:MM-HH:MM with distinct ends (24:00
// only as the end) and is not the whole day. bank.ParseWindow parses it.
func validWindow(w string) bool {
	from, to, ok := strings.Cut(w, "-")
	f, okF := clock(from, false)
	t, okT := clock(to, true)
	return ok && okF && okT && f != t && !(f == 0 && t == 24*60)
}

func clock(s string, end bool) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, m := digits(s[:2]), digits(s[3:])
	switch {
	case h < 0 || m < 0:
		return 0, false
	case h == 24 && m == 0:
		return 24 * 60, end
	}
	return h*60 + m, h <= 23 && m <= 59
}

func digits(s string) int {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return -1
		}
		n = n*10 + int(r-'0')
	}
	return n
}
