package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/settle-dev/settle/internal/bench"
)

func TestBenchRefusesBadFlags(t *testing.T) {
	admin := os.Getenv("SETTLE_DATABASE_URL")
	tests := []struct {
		name string
		args []string
		env  string // SETTLE_DATABASE_URL
		want string
	}{
		{"unknown dialect", []string{"--dialect", "soap"}, admin, `--dialect "soap": the bench drives rest or openbanking`},
		{"png chart", []string{"--chart", "payday.png"}, admin, "only SVG"},
		{"latency upside down", []string{"--latency", "200,20"}, admin, "p99 must not be below p50"},
		{"no customers", []string{"--customers", "-5"}, admin, "--customers -5"},
		{"sub-second poll", []string{"--poll-every", "500ms"}, admin, "--poll-every"},
		{"error rate above 1", []string{"--error-rate", "1.5"}, admin, "--error-rate 1.5: must be 0..1"},
		{"negative drop rate", []string{"--apply-then-drop", "-0.1"}, admin, "--apply-then-drop -0.1: must be 0..1"},
		{"no database server", nil, "", "SETTLE_DATABASE_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SETTLE_DATABASE_URL", tc.env)
			_, msg, code := runCLI(t, append([]string{"bench", "--json-only"}, tc.args...)...)
			if code != 2 || !strings.Contains(msg, tc.want) {
				t.Fatalf("exit %d %q; want 2 and %q", code, msg, tc.want)
			}
		})
	}
}

// TestBenchSmallPayday runs the whole benchmark in-process on a small
// payday: every settlement ends SETTLED, the money adds up, every metric
// is filled in, and the chart is written.
func TestBenchSmallPayday(t *testing.T) {
	if os.Getenv("SETTLE_DATABASE_URL") == "" {
		t.Fatal(`SETTLE_DATABASE_URL is not set: run make test, or eval "$(scripts/devenv.sh up test)" first`)
	}
	chart := filepath.Join(t.TempDir(), "payday.svg")
	out, msg, code := runCLI(t, "bench", "--customers", "60", "--json-only", "--latency", "2,10", "--chart", chart)
	if code != 0 {
		t.Fatalf("settle bench: exit %d: %s\n%s", code, msg, out)
	}
	r := decodeResult(t, out)
	checkResult(t, r, 60)
	if r.Memory.Processes != 1 || !strings.Contains(r.Memory.Scope, "bench process") {
		t.Errorf("memory %+v: want the bench process", r.Memory)
	}
	svg, err := os.ReadFile(chart)
	if err != nil || !bytes.Contains(svg, []byte("<polyline")) {
		t.Fatalf("chart: %v\n%.300s", err, svg)
	}
}

// TestBenchOpenBankingPayday runs a small payday against the sandbox's
// openbanking dialect, one account per balance call, under a rate limit:
// the money adds up through the dialect's transfer IDs, and the result
// reports the dialect, how long detection took and what it cost.
func TestBenchOpenBankingPayday(t *testing.T) {
	if os.Getenv("SETTLE_DATABASE_URL") == "" {
		t.Fatal(`SETTLE_DATABASE_URL is not set: run make test, or eval "$(scripts/devenv.sh up test)" first`)
	}
	const customers = 40
	out, msg, code := runCLI(t, "bench", "--dialect", "openbanking", "--customers", "40", "--rate-limit", "100",
		"--poll-every", "2s", "--json-only")
	if code != 0 {
		t.Fatalf("settle bench --dialect openbanking: exit %d: %s\n%s", code, msg, out)
	}
	r := decodeResult(t, out)
	checkResult(t, r, customers)
	d := r.Detection
	if r.Dialect != "openbanking" || r.Params.Dialect != "openbanking" || d.AccountsPerCall != 1 {
		t.Errorf("dialect %q (params %q), %d accounts a call: want openbanking, 1", r.Dialect, r.Params.Dialect, d.AccountsPerCall)
	}
	if r.Bank.Calls["GET /v2.0/account/balance/acnt_num"] < customers || r.Bank.Calls["POST /v1/balances:batchGet"] != 0 {
		t.Errorf("bank calls %v: want a balance call per account, all in the openbanking dialect", r.Bank.Calls)
	}
	// Every VA was asked about once at least before its deposit was found;
	// the calls until then are within the whole run's.
	if d.BalanceCalls < customers || d.BalanceCalls > d.BalanceCallsRun || d.CallsPerDeposit < 1 {
		t.Errorf("detection %+v: want at least one balance call per deposit, within the run's", d)
	}
	if !(d.CreditP50MS > 0 && d.CreditP99MS >= d.CreditP50MS && d.Sec >= d.EngineSec && d.EngineSec > 0) {
		t.Errorf("detection %+v: want credit → detected p50 <= p99 and first credit → last detected >= engine start → last detected > 0", d)
	}
	if !(d.RateShare > 0 && d.RateShare <= 1.2 && d.PollShare > 0 && d.PollShare <= d.RateShare) {
		t.Errorf("detection %+v: want a share of the 100/s limit in use, polling's part of it", d)
	}
	if r.Bank.RateLimited != 0 {
		t.Errorf("the bank answered %d requests 429: the throttle should keep within its limit", r.Bank.RateLimited)
	}
}

// TestBenchPacedArrivals spreads the deposits over time instead of paying
// everyone at once, and measures credit → settled.
func TestBenchPacedArrivals(t *testing.T) {
	if os.Getenv("SETTLE_DATABASE_URL") == "" {
		t.Fatal(`SETTLE_DATABASE_URL is not set: run make test, or eval "$(scripts/devenv.sh up test)" first`)
	}
	out, msg, code := runCLI(t, "bench", "--customers", "30", "--arrival-rate", "15", "--json-only")
	if code != 0 {
		t.Fatalf("settle bench --arrival-rate: exit %d: %s\n%s", code, msg, out)
	}
	r := decodeResult(t, out)
	checkResult(t, r, 30)
	if r.Params.ArrivalRate != 15 || !(r.DepositLatencyP99MS >= r.LatencyP99MS) || r.ElapsedSec < 1.5 {
		t.Errorf("arrival rate %v, credit → settled p99 %.0f ms, detection → settled p99 %.0f ms, %.1fs: "+
			"want the deposits spread over 2s and credit → settled to include detection",
			r.Params.ArrivalRate, r.DepositLatencyP99MS, r.LatencyP99MS, r.ElapsedSec)
	}
}

// TestBenchWorkerProcesses runs the engine as two `settle serve` processes.
func TestBenchWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the settle binary")
	}
	if os.Getenv("SETTLE_DATABASE_URL") == "" {
		t.Fatal(`SETTLE_DATABASE_URL is not set: run make test, or eval "$(scripts/devenv.sh up test)" first`)
	}
	bin := filepath.Join(t.TempDir(), "settle")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	cmd := exec.CommandContext(context.Background(), bin, "bench", "--customers", "40", "--processes", "2", "--json-only")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("settle bench --processes 2: %v\n%s", err, stderr.String())
	}
	r := decodeResult(t, string(out))
	checkResult(t, r, 40)
	if r.Memory.Processes != 2 || r.Params.Processes != 2 {
		t.Errorf("memory %+v, params %+v: want 2 worker processes", r.Memory, r.Params)
	}
}

func decodeResult(t *testing.T, out string) bench.Result {
	t.Helper()
	var r bench.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, out)
	}
	// The documented field names are there.
	var fields map[string]any
	_ = json.Unmarshal([]byte(out), &fields)
	for _, k := range []string{"settlements_per_sec", "steps_per_sec", "steady_settlements_per_sec", "steady_steps_per_sec",
		"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "bank_calls_per_settlement", "db_round_trips_per_settlement",
		"redis_bytes_per_queued_task", "peak_rss_bytes", "cpu_seconds_per_settlement", "verify_ok", "params", "machine"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("the JSON lacks %q", k)
		}
	}
	return r
}

func checkResult(t *testing.T, r bench.Result, customers int64) {
	t.Helper()
	if !r.VerifyOK || len(r.Violations) != 0 {
		t.Errorf("verify_ok %v: %v", r.VerifyOK, r.Violations)
	}
	if r.Settlements["SETTLED"] != customers {
		t.Errorf("settlements %v, want %d SETTLED", r.Settlements, customers)
	}
	positive := map[string]float64{
		"settlements_per_sec": r.SettlementsPerSec, "steps_per_sec": r.StepsPerSec, "latency_p99_ms": r.LatencyP99MS,
		"bank_calls_per_settlement": r.BankCallsPerSettlement, "db_round_trips_per_settlement": r.DBRoundTripsPerSettlement,
		"redis_bytes_per_queued_task": r.RedisBytesPerQueuedTask, "peak_rss_bytes": float64(r.PeakRSSBytes),
		"cpu_seconds_per_settlement": r.CPUSecondsPerSettlement,
	}
	for k, v := range positive {
		if !(v > 0) {
			t.Errorf("%s = %v, want more than 0", k, v)
		}
	}
	// every transfer is one bank call at least: SWEEP, FEE and PAYOUT at the least
	if r.BankCallsPerSettlement < 3 {
		t.Errorf("%.2f bank calls per settlement, want at least 3", r.BankCallsPerSettlement)
	}
	if r.Machine.CPUs < 1 || r.Machine.Postgres == "" || r.Machine.Redis == "" || r.Machine.GoVersion == "" {
		t.Errorf("machine %+v", r.Machine)
	}
	if r.EngineLog.Errors != 0 {
		t.Errorf("the engine logged %d errors: %s", r.EngineLog.Errors, r.EngineLog.FirstError)
	}
}
