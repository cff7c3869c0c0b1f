package web

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// BreakerState is one circuit breaker of a bank provider: one per
// operation (balances, transfers, status, statements).
type BreakerState struct {
	Provider, Operation string
	// State is "closed", "half-open" or "open".
	State string
	// Rate is the calls a second the provider's throttle lets through
	// now: below the configured limit while the bank says it is busy;
	// +Inf (no series) when the provider has no limit.
	Rate float64
}

// breakerStates are the states a breaker's series always has, so that an
// alert rule can ask for state="open" == 1 and a dashboard can show the
// state as the one series at 1.
var breakerStates = []string{"closed", "half-open", "open"}

var (
	breakerDesc = desc("bank_breaker_state",
		"Circuit breaker of a bank provider's operation: 1 for the state it is in (closed: healthy; half-open: probing; open: calls held until the cool-down ends), 0 for the others.",
		"provider", "operation", "state")
	rateDesc = desc("bank_rate_limit_per_second",
		"Calls a second the provider's throttle lets through now: the configured limit, less while the bank says it is busy.", "provider")
)

// breakerCollector reads the breakers at scrape time.
type breakerCollector func() []BreakerState

func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- breakerDesc
	ch <- rateDesc
}

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	rated := map[string]bool{}
	for _, b := range c() {
		for _, s := range breakerStates {
			v := 0.0
			if s == b.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, b.Provider, b.Operation, s)
		}
		if !rated[b.Provider] && !math.IsInf(b.Rate, 1) {
			rated[b.Provider] = true
			ch <- prometheus.MustNewConstMetric(rateDesc, prometheus.GaugeValue, b.Rate, b.Provider)
		}
	}
}
