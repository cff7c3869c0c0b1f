package web_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/web"
)

// The shipped dashboard and alerting rules ask only for series settle
// exports (or Prometheus's own `up`): a renamed metric fails here, not on
// an operator's empty panel. promtool checks the rules' syntax and their
// unit tests in make test.
func TestDashboardAndRulesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := exportedMetricNames(t)

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	raw, err := os.ReadFile("../docs/deploy/grafana/settle-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	panels := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			panels++
			checkNames(t, "dashboard panel "+p.Title, tg.Expr, exported)
		}
	}
	if panels < 10 {
		t.Fatalf("the dashboard has %d queries", panels)
	}

	rules, err := os.ReadFile("../docs/deploy/prometheus/settle-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exprs := 0
	for line := range strings.Lines(string(rules)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "expr:") || strings.Contains(line, "rate(") {
			exprs++
			checkNames(t, "rule", line, exported)
		}
	}
	if exprs < 10 {
		t.Fatalf("the rules have %d expressions", exprs)
	}
}

var metricName = regexp.MustCompile(`\b(settle|asynq)_[a-z_]+\b`)

func checkNames(t *testing.T, where, expr string, exported []string) {
	t.Helper()
	for _, name := range metricName.FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if trimmed, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(exported, trimmed) {
				base = trimmed
			}
		}
		if !slices.Contains(exported, base) {
			t.Errorf("%s asks for %s, which settle does not export", where, name)
		}
	}
}

// exportedMetricNames gathers every family a settle process can export,
// each with a value so that vectors show.
func exportedMetricNames(t *testing.T) []string {
	t.Helper()
	db := newDB(t)
	m, err := web.NewMetrics(web.MetricsConfig{Gauges: db,
		Breakers: func() []web.BreakerState {
			return []web.BreakerState{{Provider: "acme", Operation: "transfers", State: "closed", Rate: 100}}
		},
		Collectors: []prometheus.Collector{queueCollector(t)}})
	if err != nil {
		t.Fatal(err)
	}
	m.StepDone(pipeline.KindPayout, pipeline.OutcomeDone, time.Millisecond)
	m.ObserveBank("acme", "transfer", "ok", time.Millisecond)
	m.ObservePoll(web.PollCycle{Took: time.Second, Polled: 1, Found: 1})
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"up"}
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{"settle_settlements", "settle_bank_breaker_state", "asynq_queue_latency_seconds", "settle_step_duration_seconds"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%s is not gathered: %v", want, names)
		}
	}
	return names
}
