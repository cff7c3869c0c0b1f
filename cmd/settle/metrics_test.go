package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
)

// series returns the value of the series written exactly as name{labels}
// in a Prometheus text exposition, and whether it is there.
func series(body, name string) (float64, bool) {
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// scrapeAuth reads a daemon's /metrics as the operator ops.
func scrapeAuth(t *testing.T, d *daemon, pass string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+d.httpAddr()+"/metrics", nil)
	req.SetBasicAuth("ops", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// labelName finds the label names of a series line.
var labelName = regexp.MustCompile(`[{,]([a-z_]+)="`)

// A real payday on a running daemon, then a real scrape: steps by kind and
// outcome, bank requests by provider, operation and outcome, poll cycles
// and their lag are all there, and no label names a customer or an account.
func TestMetricsAfterARealSettlement(t *testing.T) {
	const pass = "metrics-password-0123456789"
	e := newEnvOpts(t, envOpts{http: `, user: ops, password: "` + pass + `"`})
	ctx := context.Background()
	s, cs := e.seeded(t, 2)
	if _, err := e.bank.SetState(ctx, cs[0].Payout, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := s.Pay(ctx, c, 2_000_000); err != nil {
			t.Fatal(err)
		}
	}
	d := e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1, "SETTLED": 1})
	transfers := settletest.CheckMoney(t, e.db, e.bank, "sandbox", rest.AttemptKey)

	scrape := func() string { return scrapeAuth(t, d, pass) }

	want := map[string]float64{ // exactly
		`settle_step_duration_seconds_count{kind="SWEEP",outcome="done"}`:                       2,
		`settle_step_duration_seconds_count{kind="PAYOUT",outcome="failed"}`:                    1,
		`settle_step_duration_seconds_count{kind="NOTIFY",outcome="done"}`:                      1,
		`settle_bank_requests_total{operation="transfer",outcome="ok",provider="sandbox"}`:      float64(transfers),
		`settle_bank_requests_total{operation="transfer",outcome="refused",provider="sandbox"}`: 1,
		`settle_poll_deposits_found_total`:                                                      2,
		`settle_poll_cycles_failed_total`:                                                       0,
		`settle_settlements{status="FAILED"}`:                                                   1,
		`settle_bank_breaker_state{operation="transfers",provider="sandbox",state="closed"}`:    1,
		`settle_bank_breaker_state{operation="transfers",provider="sandbox",state="open"}`:      0,
		`settle_bank_breaker_state{operation="balances",provider="sandbox",state="half-open"}`:  0,
	}
	atLeastOne := []string{ // counts that grow with every poll
		`settle_bank_requests_total{operation="balances",outcome="ok",provider="sandbox"}`,
		`settle_bank_request_duration_seconds_count{operation="balances",provider="sandbox"}`,
		`settle_poll_cycle_duration_seconds_count`,
		`settle_poll_accounts_polled_total`,
		`settle_poll_last_cycle_timestamp_seconds`,
	}
	var body string
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		body = scrape()
		for name, v := range want {
			if got, ok := series(body, name); !ok || got != v {
				return false, fmt.Sprintf("%s = %v (present %v), want %v", name, got, ok, v)
			}
		}
		for _, name := range atLeastOne {
			if got, ok := series(body, name); !ok || got < 1 {
				return false, fmt.Sprintf("%s = %v (present %v), want at least 1", name, got, ok)
			}
		}
		return true, ""
	})
	if lag, ok := series(body, "settle_poll_lag_seconds"); !ok || lag < 0 || lag > 600 {
		t.Errorf("poll lag %v s (present %v), want the few seconds since the VAs were polled", lag, ok)
	}

	allowed := []string{"kind", "outcome", "provider", "operation", "status", "reason", "le", "queue", "state", "version"}
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, "settle_") && !strings.HasPrefix(line, "asynq_") {
			continue
		}
		for _, m := range labelName.FindAllStringSubmatch(line, -1) {
			if !slices.Contains(allowed, m[1]) {
				t.Errorf("label %q in %s", m[1], strings.TrimSpace(line))
			}
		}
	}
	for _, c := range cs {
		for _, secret := range []string{c.Ref, c.VA, c.Payout} {
			if strings.Contains(body, secret) {
				t.Errorf("/metrics names %q", secret)
			}
		}
	}

	// A worker process serves its own series; the database's come from the
	// web role.
	w, err := newDaemon(ctx, e.cfg, slog.New(slog.DiscardHandler), roleWorker, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop(context.Background()) })
	if body := scrapeAuth(t, w, pass); !strings.Contains(body, "\ngo_goroutines ") || !strings.Contains(body, "\nsettle_poll_cycles_failed_total 0") ||
		strings.Contains(body, "settle_database_up") {
		t.Errorf("a worker's /metrics:\n%.600s", body)
	}
}
