// Package cronspec reads the cron specs of settle's scheduled jobs. It is
// their one parser: the scheduler (package jobs) runs what Parse returns, and
// the configuration (internal/config) accepts only what Check accepts, so a
// spec that passes `settle config check` is one the scheduler runs. With
// package jobs it owns the robfig/cron library; the configuration reaches it
// only through this package, which imports nothing else of settle.
package cronspec

import (
	"errors"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser accepts five fields, an optional leading seconds field, or a
// descriptor such as "@every 10s".
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses spec as the scheduler runs it. Check it first: cron v3
// panics on some malformed TZ= prefixes, which Check turns into an error.
func Parse(spec string) (cron.Schedule, error) { return parser.Parse(spec) }

// Check reports why spec is not a schedule settle runs: it does not parse,
// or it is an "@every" interval under 1s.
func Check(spec string) (err error) {
	defer func() {
		if recover() != nil { // cron v3 panics on some malformed TZ= prefixes
			err = errors.New("not a valid schedule")
		}
	}()
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && d < time.Second {
			return errors.New("the interval must be at least 1s")
		}
	}
	_, err = parser.Parse(spec)
	return err
}
