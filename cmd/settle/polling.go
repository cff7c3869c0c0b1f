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

// pollConfig is the balance poller's configuration: smart polling by
// payday, and each provider's budget, dialect and maintenance windows.
func pollConfig(cfg *config.Config, accounts map[string]pipeline.Accounts) (jobs.PollConfig, error) {
	interval, err := jobs.ScheduleInterval(cfg.Poll.Schedule, time.Now())
	if err != nil {
		return jobs.PollConfig{}, fmt.Errorf("poll.schedule: %w", err)
	}
	schedule := pipeline.PollPolicy{
		Interval: interval, IdleEvery: cfg.Poll.IdleEvery, PaydayWindow: cfg.Poll.PaydayWindow, Location: cfg.Location(),
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
		pp := jobs.ProviderPolling{Budget: schedule.Budget(p.PollBudget, p.RateLimitRPS), AccountsPerCall: d.BatchSize}
		if len(m.Windows) > 0 {
			pp.Closed = m.Closed
		}
		providers[p.Name] = pp
	}
	return jobs.PollConfig{
		BatchSize:   cfg.Poll.BatchSize,
		Policy:      pipeline.Policy{MinDeposit: cfg.Poll.MinDeposit},
		Accounts:    accounts,
		Schedule:    schedule,
		Providers:   providers,
		Concurrency: cfg.Poll.Concurrency,
	}, nil
}
