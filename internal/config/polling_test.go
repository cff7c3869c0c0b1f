package config

import (
	"slices"
	"testing"
)

func TestPollingKeys(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, dbRedis+"time_zone: UTC\npoll: {idle_every: 3, payday_window: 2, concurrency: 8}\n"+
		providers(provider(map[string]string{"poll_budget": "3000", "maintenance": `"23:30-00:30, 04:00-04:10"`})))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Location().String() != "UTC" || cfg.Poll.IdleEvery != 3 || cfg.Poll.PaydayWindow != 2 || cfg.Poll.Concurrency != 8 {
		t.Errorf("poll = %+v, zone %s", cfg.Poll, cfg.Location())
	}
	pc := cfg.Providers[0]
	if pc.PollBudget != 3000 || !slices.Equal(pc.MaintenanceWindows(), []string{"23:30-00:30", "04:00-04:10"}) {
		t.Errorf("provider polling = %d %q", pc.PollBudget, pc.MaintenanceWindows())
	}
	cfg, err = load(t, valid, "SETTLE_TIME_ZONE=Europe/Berlin", "SETTLE_POLL_IDLE_EVERY=12")
	if err != nil || cfg.Location().String() != "Europe/Berlin" || cfg.Poll.IdleEvery != 12 {
		t.Fatalf("environment overrides: %v", err)
	}
	if d := defaults(); d.Location().String() != "Asia/Seoul" {
		t.Errorf("default zone %s", d.Location())
	}
}

func TestPollingKeysRefused(t *testing.T) {
	t.Parallel()
	_, err := load(t, dbRedis+"time_zone: Mars/Olympus\npoll: {idle_every: 0, payday_window: 8, concurrency: 0}\n"+
		providers(provider(map[string]string{"poll_budget": "-1", "maintenance": `"23:30-23:30,25:00-01:00,00:00-24:00,0:30-01:00,22:00-24:00"`})))
	wantErrors(t, err,
		`time_zone "Mars/Olympus"`, "poll.idle_every 0", "poll.payday_window 8", "poll.concurrency 0",
		"providers[0].poll_budget -1", `maintenance "23:30-23:30"`, `maintenance "25:00-01:00"`,
		`maintenance "00:00-24:00"`, `maintenance "0:30-01:00"`)
	_, err = load(t, valid+"    maintenance: [\"23:30-00:30\"]\n")
	wantErrors(t, err, "providers[0].maintenance: must be a string")
}
