package main

import (
	"fmt"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/dialects"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

// maintenanceOf returns a provider's maintenance windows in the configured
// time zone. buildBanks wraps the provider's bank with them
// (bank.WithMaintenance) and the poller skips the provider inside one.
func maintenanceOf(cfg *config.Config, p config.ProviderConfig) (bank.Maintenance, error) {
	m, err := bank.ParseMaintenance(p.MaintenanceWindows(), cfg.Location())
	if err != nil {
		return m, fmt.Errorf("providers %s: %w", p.Name, err)
	}
	return m, nil
}

// pollBudget is a provider's poll budget: poll_budget, or, when it is not
// set and the provider has a rate limit, half the calls the rate allows in
// one poll interval. Near-payday VAs are polled at every cycle; without a
// budget, polling could take every call the bank allows and leave none to
// the transfers that move the money it finds.
func pollBudget(p config.ProviderConfig, interval time.Duration) int {
	if p.PollBudget > 0 || p.RateLimitRPS <= 0 {
		return p.PollBudget
	}
	return max(int(float64(p.RateLimitRPS)*interval.Seconds()/2), 1)
}

// pollConfig is the balance poller's configuration: smart polling by
// payday, and each provider's budget, dialect and maintenance windows.
func pollConfig(cfg *config.Config, accounts map[string]pipeline.Accounts) (jobs.PollConfig, error) {
	interval, err := jobs.ScheduleInterval(cfg.Poll.Schedule, time.Now())
	if err != nil {
		return jobs.PollConfig{}, fmt.Errorf("poll.schedule: %w", err)
	}
	providers := make(map[string]jobs.ProviderPolling, len(cfg.Providers))
	for _, p := range cfg.Providers {
		m, err := maintenanceOf(cfg, p)
		if err != nil {
			return jobs.PollConfig{}, err
		}
		d, err := dialects.Lookup(p.Dialect)
		if err != nil {
			return jobs.PollConfig{}, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		pp := jobs.ProviderPolling{Budget: pollBudget(p, interval), AccountsPerCall: d.BatchSize}
		if len(m.Windows) > 0 {
			pp.Closed = m.Closed
		}
		providers[p.Name] = pp
	}
	return jobs.PollConfig{
		BatchSize: cfg.Poll.BatchSize,
		Policy:    pipeline.Policy{MinDeposit: cfg.Poll.MinDeposit},
		Accounts:  accounts,
		Schedule: jobs.PollPolicy{
			Interval: interval, IdleEvery: cfg.Poll.IdleEvery, PaydayWindow: cfg.Poll.PaydayWindow, Location: cfg.Location(),
		},
		Providers:   providers,
		Concurrency: cfg.Poll.Concurrency,
	}, nil
}
