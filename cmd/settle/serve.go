package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/interact"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/crash"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
	"github.com/settle-dev/settle/web"
)

// Roles a `settle serve` process can take.
const (
	roleAll       = "all"       // everything: right for one machine
	roleScheduler = "scheduler" // the cron jobs (poll, relay, sweep, alerts, verify, daily_summary, reconcile)
	roleWorker    = "worker"    // the step workers, poll shards and the daily reconciliation
	roleWeb       = "web"       // the dashboard and status HTTP endpoints
)

var roles = []string{roleAll, roleScheduler, roleWorker, roleWeb}

func newServeCmd(g *globals) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: balance poller, step workers, relay, sweep and HTTP (status page, /monitoring, /metrics, /healthz)",
		Long: "Run the daemon. --role picks what this process does: all (default, right for one machine),\n" +
			"scheduler (the cron jobs: each tick runs on one replica), worker (the step workers: run as many as\n" +
			"you like), web (the status page, the dashboard and /metrics, once http.user and http.password or\n" +
			"http.token are set). Every role serves /healthz and /readyz on http.addr.\n" +
			"SIGTERM or SIGINT stops taking work, lets running steps finish within worker.shutdown_timeout and\n" +
			"exits; a second signal exits at once, leaving nothing the sweep cannot resolve.",
		Example: "  # everything in one process: poller, workers, scheduled jobs, status page\n" +
			"  settle serve --config /etc/settle/settle.yaml\n" +
			"  # or one process per part: the scheduler, as many workers as needed, the web pages\n" +
			"  settle serve --role scheduler\n" +
			"  settle serve --role worker\n" +
			"  settle serve --role web",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(roles, role) {
				return &exitError{code: 2, err: fmt.Errorf("--role %q: use one of %s", role, strings.Join(roles, ", "))}
			}
			// The web role calls no bank, and only the scheduler talks to
			// Slack: a role needs none of the secrets it does not use.
			cfg, err := g.loadConfigFor(config.Uses{NoBanks: role == roleWeb, NoSlack: role == roleWeb || role == roleWorker})
			if err != nil {
				return oneLine(err)
			}
			crashAt, err := crash.Parse(os.Getenv("SETTLE_TEST_CRASH"), os.Getenv("SETTLE_TEST_CRASH_SEED"))
			if err != nil {
				return err
			}
			logger := newLogger(cfg.Log, os.Stderr)
			d, err := newDaemon(cmd.Context(), cfg, logger, role, crashAt)
			if err != nil {
				return err
			}
			if err := d.start(); err != nil {
				d.stop(context.Background())
				return err
			}
			logger.Info("settle is running", d.startAttrs()...)
			<-cmd.Context().Done()
			exitOnSecondSignal(logger)
			logger.Info("shutting down: finishing running steps; a second signal exits at once", "grace", cfg.Worker.ShutdownTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Worker.ShutdownTimeout+5*time.Second)
			defer cancel()
			d.stop(ctx)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", roleAll, "what this process runs: "+strings.Join(roles, ", "))
	return cmd
}

// exitOnSecondSignal makes a second SIGINT/SIGTERM during shutdown exit at
// once. Steps cut off mid-call stay RUNNING with their attempt recorded, and
// the sweep resolves them with the bank's status call.
func exitOnSecondSignal(logger *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		logger.Warn("second signal: exiting now; the sweep resolves the steps that were running")
		os.Exit(1)
	}()
}

// daemon is everything `settle serve` runs, or the part its role asks for.
type daemon struct {
	role      string
	cfg       *config.Config
	logger    *slog.Logger
	db        *store.DB
	queue     *jobs.Queue
	worker    *asynq.Server
	mux       *asynq.ServeMux
	sched     *jobs.Scheduler
	monitor   *asynqmon.HTTPHandler
	inspector *asynq.Inspector
	// redisCheck checks Redis at start and on every /readyz, over one client.
	redisCheck *jobs.RedisCheck
	// throttles are the providers' throttles, for their breaker state.
	throttles map[string]*throttle.Bank
	listener  net.Listener
	http      *http.Server
	// metrics is what /metrics serves; nil when it is off.
	metrics *web.Metrics
	// crashAt is the fault-injection hook (internal/crash) the workers and
	// the poller call at their crash points; nil for none.
	crashAt func(point string)
	// interact handles clicks on the Slack alerts' buttons; nil when
	// notify.slack.interactive is off. stopSocket ends Socket Mode.
	interact   *interact.Handler
	stopSocket func()
}

// newDaemon builds the parts of settle serve that role runs. crashAt is the
// crash hook of SETTLE_TEST_CRASH, nil outside fault-injection runs.
func newDaemon(ctx context.Context, cfg *config.Config, logger *slog.Logger, role string, crashAt func(point string)) (*daemon, error) {
	if !loopback(cfg.HTTP.Addr) {
		logger.Warn("http.addr is reachable beyond this machine: serve it behind a TLS proxy, basic auth and tokens travel in clear", "addr", cfg.HTTP.Addr)
	}
	d := &daemon{cfg: cfg, logger: logger, role: role, crashAt: crashAt}
	if err := d.build(ctx); err != nil {
		d.stop(context.Background())
		return nil, err
	}
	return d, nil
}

// build connects and assembles the parts; on error, what was built is left
// for stop to close.
func (d *daemon) build(ctx context.Context) (err error) {
	cfg := d.cfg
	if d.db, err = openCurrentDB(ctx, cfg, d.crashAt); err != nil {
		return err
	}
	redis, err := redisOpt(cfg)
	if err != nil {
		return err
	}
	if d.redisCheck, err = jobs.NewRedisCheck(redis); err != nil {
		return err
	}
	if err := checkRedis(ctx, cfg, d.redisCheck); err != nil {
		return err
	}
	if err := d.newMetrics(redis); err != nil {
		return err
	}
	// A step task may run for the bank timeout plus two short transactions.
	d.queue = jobs.NewQueue(redis, cfg.Worker.BankTimeout+20*time.Second)
	if d.runs(roleWorker) || d.runs(roleScheduler) { // the web role calls no bank
		if err := d.buildEngine(ctx, redis); err != nil {
			return err
		}
	}
	if d.runs(roleWeb) {
		d.monitor = asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: redis, ReadOnly: true, PrometheusAddress: cfg.HTTP.PrometheusURL})
	}
	if d.listener, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
		return fmt.Errorf("http.addr %s: %w: pick a free address", cfg.HTTP.Addr, err)
	}
	handler, err := d.routes()
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	d.http = web.NewServer(d.slackRoutes(handler))
	return nil
}

// buildEngine assembles what calls the banks: the adapters behind their
// throttles, checked at start, the executor and the poller, and the workers
// or the scheduler that run them, as the role asks.
func (d *daemon) buildEngine(ctx context.Context, redis asynq.RedisConnOpt) error {
	cfg, logger := d.cfg, d.logger
	banks, accounts, throttles, err := buildBanks(cfg, logger, d.breakerAlert, d.bankObserver())
	if err != nil {
		return err
	}
	d.throttles = throttles
	if err := d.checkProvidersAtStart(ctx, banks); err != nil {
		return err
	}
	execCfg := executorConfig(cfg, d.crashAt)
	execCfg.Observer = d.stepObserver()
	exec := pipeline.NewExecutor(d.db, banks, d.queue, execCfg, logger)
	if w := cfg.Notify.Customer; w.URL != "" {
		sink, err := notify.NewCustomerWebhook(w.URL.Reveal(), w.Secret.Reveal(), w.Timeout)
		if err != nil {
			return err
		}
		exec.WithEvents(sink)
	}
	d.newInteract()
	pollCfg, err := pollConfig(cfg, accounts)
	if err != nil {
		return err
	}
	pollCfg.OnCycle = d.pollObserver()
	poller := jobs.NewPoller(d.db, banks, d.queue, pollCfg, logger)
	if d.runs(roleWorker) {
		d.worker, d.mux = jobs.NewWorker(redis, exec, poller, jobs.WorkerConfig{
			Concurrency: cfg.Worker.Concurrency, ShutdownTimeout: cfg.Worker.ShutdownTimeout,
		}, logger)
		rec, err := newReconciler(d.db, banks, accounts, throttles, cfg, logger)
		if err != nil {
			return err
		}
		d.mux.Handle(jobs.TypeReconcile, jobs.ReconcileHandler(rec))
	}
	if d.runs(roleScheduler) {
		if d.sched, err = d.newScheduler(pollCfg.Schedule.Interval, exec); err != nil {
			return err
		}
	}
	return nil
}

// newScheduler returns the cron jobs. The poll job only divides the
// virtual accounts into shards: the workers poll them.
func (d *daemon) newScheduler(pollInterval time.Duration, exec *pipeline.Executor) (*jobs.Scheduler, error) {
	poll := jobs.NewPollDispatcher(d.db, d.queue, d.cfg.Poll.ShardSize, pollInterval, d.logger)
	relay := jobs.NewRelay(d.db, d.queue, 10*time.Second, d.logger)
	sweep := jobs.NewSweep(d.db, exec, d.logger)
	sweep.WithStuckAfter(d.cfg.Sweep.StuckAfter)
	verifier := jobs.NewVerifier(d.db, d.logger)
	summary := jobs.NewDailySummary(d.db, jobs.DailySummaryConfig{Location: d.cfg.Location()}, d.logger)
	n := d.cfg.Notify
	notifier, err := notify.New(notify.Config{
		WebhookURL: n.Slack.WebhookURL.Reveal(), BotToken: n.Slack.BotToken.Reveal(),
		Channel: n.Slack.Channel, APIURL: n.Slack.APIURL,
	}, d.logger)
	if err != nil {
		return nil, err
	}
	alerts := jobs.NewAlertDelivery(d.db, notifier, jobs.AlertDeliveryConfig{
		StormThreshold: n.StormThreshold, StormWindow: n.StormWindow, RepeatInterval: n.RepeatInterval,
		Actions: d.alertActions(),
	}, d.logger)
	return jobs.NewScheduler(d.db, []jobs.Job{
		{Name: "poll", Schedule: d.cfg.Poll.Schedule, Run: func(ctx context.Context, tick time.Time) (any, error) { return poll.RunOnce(ctx, tick) }},
		{Name: "relay", Schedule: d.cfg.Relay.Schedule, Run: anyTick(relay.RunOnce)},
		{Name: "sweep", Schedule: d.cfg.Sweep.Schedule, Run: anyTick(sweep.RunOnce)},
		{Name: "alerts", Schedule: n.DeliverySchedule, Run: anyTick(alerts.RunOnce)},
		{Name: "verify", Schedule: d.cfg.Verify.Schedule, Run: anyTick(verifier.RunOnce)},
		{Name: "daily_summary", Schedule: d.cfg.DailySummarySchedule(), Run: func(ctx context.Context, tick time.Time) (any, error) { return summary.RunOnce(ctx, tick) }},
		{Name: "reconcile", Schedule: d.cfg.InTimeZone(d.cfg.Reconcile.Schedule), Run: func(ctx context.Context, tick time.Time) (any, error) {
			return d.queue.QueueDailyReconcile(ctx, tick, d.cfg.Location())
		}},
	}, jobs.SchedulerConfig{Lease: d.cfg.Scheduler.Lease}, d.logger)
}

// anyTick makes a job's run that does the same at every tick.
func anyTick[T any](run func(context.Context) (T, error)) func(context.Context, time.Time) (any, error) {
	return func(ctx context.Context, _ time.Time) (any, error) { return run(ctx) }
}

// breakerAlert tells operators when a provider's breaker opens (its calls
// pause; steps wait) and when it closes again.
func (d *daemon) breakerAlert(tr throttle.Transition) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := notify.Breaker{Provider: tr.Provider, Operation: string(tr.Operation),
		Reconciliation: tr.Operation == throttle.OpStatements, Failures: tr.Failures}
	switch tr.To {
	case throttle.Open:
		if tr.From == throttle.HalfOpen {
			return // a failed probe: the problem goes on, already reported
		}
		if tr.Err != nil {
			b.Cause = tr.Err.Error()
		}
		if err := d.db.RaiseAlert(ctx, notify.BreakerAlert(b)); err != nil {
			d.logger.Error("could not record the breaker alert", "provider", tr.Provider, "err", err)
		}
	case throttle.Closed:
		if _, err := d.db.ResolveProblem(ctx, notify.BreakerProblemKey(b), notify.BreakerClosedNote(b)); err != nil {
			d.logger.Error("could not resolve the breaker alert", "provider", tr.Provider, "err", err)
		}
	}
}

// routes serves /healthz and /readyz always, and the status page, the
// read-only dashboard and /metrics behind authentication when credentials
// are configured: there is no default password.
func (d *daemon) routes() (http.Handler, error) {
	ready := []web.Check{
		{Name: "database", Fn: d.db.Ready},
		{Name: "redis", Fn: func(ctx context.Context) error { return d.redisCheck.Check(ctx, false) }},
	}
	h := d.cfg.HTTP
	creds := d.credentials()
	if !d.servesPages() {
		if d.runs(roleWeb) {
			d.logger.Warn("no http.user/http.password or http.token: the status page, the dashboard and /metrics are off")
		}
		if d.metrics != nil { // a worker's or scheduler's own series
			return web.WithMetrics(web.Health(nil, ready, d.logger), d.metrics, creds, h.MetricsOpen)
		}
		return web.Health(nil, ready, d.logger), nil
	}
	var providers func() []web.ProviderHealth
	if d.throttles != nil { // the web role alone calls no bank: it has no breakers to show
		providers = d.providerHealth
	}
	return web.New(web.Config{
		Credentials: creds,
		Status:      d.db,
		Page: web.PageConfig{TimeZone: d.cfg.TimeZone, Logger: d.logger, QueueLatency: d.queue.Latency,
			Providers: providers},
		Dashboard: d.monitor, DashboardPath: d.monitor.RootPath(),
		Metrics: d.metrics, MetricsOpen: h.MetricsOpen,
		Ready:  ready,
		Logger: d.logger,
	})
}

// providerHealth is each provider's breaker state, for the status page.
func (d *daemon) providerHealth() []web.ProviderHealth {
	out := make([]web.ProviderHealth, 0, len(d.throttles))
	for name, t := range d.throttles {
		out = append(out, web.ProviderHealth{Name: name, State: string(t.State())})
	}
	slices.SortFunc(out, func(a, b web.ProviderHealth) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// servesPages reports whether this process serves the status page, the
// dashboard and the database gauges: the web role, with credentials set.
func (d *daemon) servesPages() bool {
	return d.runs(roleWeb) && d.credentials() != (web.Credentials{})
}

// startAttrs are the role and the URLs the start-up log line names: the
// dashboard's only when this process serves it.
func (d *daemon) startAttrs() []any {
	base := "http://" + d.httpAddr()
	attrs := []any{"role", d.role, "http", base}
	if d.servesPages() {
		attrs = append(attrs, "monitoring", base+"/monitoring/")
	}
	return append(attrs, d.slackAttrs()...)
}

// runs reports whether this process's role includes part.
func (d *daemon) runs(part string) bool { return d.role == roleAll || d.role == part }

func (d *daemon) httpAddr() string { return d.listener.Addr().String() }

func (d *daemon) start() error {
	if d.worker != nil {
		if err := d.worker.Start(d.mux); err != nil {
			return fmt.Errorf("start workers: %w", err)
		}
	}
	if d.sched != nil {
		d.sched.Start()
	}
	go func() {
		if err := d.http.Serve(d.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logger.Error("http server stopped", "err", err)
		}
	}()
	d.startSocketMode()
	return nil
}

// stop stops taking work, lets running steps finish within the shutdown
// timeout, and closes every connection. Safe on a half-built daemon.
func (d *daemon) stop(ctx context.Context) {
	if d.sched != nil {
		d.sched.Stop()
	}
	if d.worker != nil {
		d.worker.Stop()
		d.worker.Shutdown()
	}
	if d.http != nil {
		_ = d.http.Shutdown(ctx)
	} else if d.listener != nil {
		_ = d.listener.Close()
	}
	d.stopSlack(ctx)
	if d.monitor != nil {
		_ = d.monitor.Close()
	}
	if d.inspector != nil {
		_ = d.inspector.Close()
	}
	if d.queue != nil {
		_ = d.queue.Close()
	}
	if d.redisCheck != nil {
		_ = d.redisCheck.Close()
	}
	if d.db != nil {
		_ = d.db.Close()
	}
}

// loopback reports whether addr (host:port, validated by the config) only
// listens on this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "localhost" {
		return err == nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
