package main

import (
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/web"
)

var _ bank.Observer = (*web.Metrics)(nil)

// credentials protect the operator HTTP server; none configured means no
// status page, dashboard or /metrics.
func (d *daemon) credentials() web.Credentials {
	h := d.cfg.HTTP
	return web.Credentials{User: h.User, Password: h.Password.Reveal(), Token: h.Token.Reveal()}
}

// newMetrics builds what /metrics serves, when the HTTP server has
// credentials. Every role's carries what its process does (steps run, bank
// requests, poll cycles); the web role's also the database gauges and the
// queue's, which are the same whichever process reads them.
func (d *daemon) newMetrics(redis asynq.RedisConnOpt) (err error) {
	if d.credentials() == (web.Credentials{}) {
		return nil
	}
	cfg := web.MetricsConfig{Logger: d.logger, Breakers: d.breakerStates}
	if d.runs(roleWeb) {
		d.inspector = asynq.NewInspector(redis)
		cfg.Gauges = d.db
		cfg.Collectors = []prometheus.Collector{metrics.NewQueueMetricsCollector(d.inspector)}
	}
	d.metrics, err = web.NewMetrics(cfg)
	return err
}

// breakerStates reads the providers' breakers for /metrics; none in a
// process that calls no bank.
func (d *daemon) breakerStates() []web.BreakerState {
	var out []web.BreakerState
	for name, t := range d.throttles {
		for _, op := range throttle.Operations {
			out = append(out, web.BreakerState{Provider: name, Operation: string(op), State: string(t.StateOf(op)), Rate: t.Rate()})
		}
	}
	return out
}

// stepObserver feeds step durations to /metrics; nil when it is off.
func (d *daemon) stepObserver() pipeline.StepObserver {
	if d.metrics == nil {
		return nil
	}
	return d.metrics
}

// bankObserver feeds bank requests to /metrics; nil when it is off.
func (d *daemon) bankObserver() bank.Observer {
	if d.metrics == nil {
		return nil
	}
	return d.metrics
}

// pollObserver feeds poll cycles to /metrics; nil when it is off.
func (d *daemon) pollObserver() func(time.Duration, jobs.PollResult, error) {
	if d.metrics == nil {
		return nil
	}
	return func(took time.Duration, res jobs.PollResult, err error) {
		d.metrics.ObservePoll(web.PollCycle{
			Took: took, Polled: res.Polled, Found: res.Found, Lag: res.OldestUnpolled, Failed: err != nil,
		})
	}
}
