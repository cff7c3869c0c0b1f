package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/dialects"
	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/bank/transport"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// loadConfig loads the configuration; when that fails and no file was given,
// it also says how to give one.
func (g *globals) loadConfig() (*config.Config, error) {
	return g.loadConfigFor(config.Uses{})
}

// loadConfigFor loads the configuration for a command that does without
// some of it (config.Uses), and so without its secrets.
func (g *globals) loadConfigFor(u config.Uses) (*config.Config, error) {
	cfg, err := config.LoadFor(g.configPath, os.Environ(), u)
	if err != nil && g.configPath == "" {
		err = errors.Join(err, errNoConfigFile)
	}
	return cfg, err
}

var errNoConfigFile = errors.New("config: no configuration file was read: pass --config FILE or set SETTLE_CONFIG " +
	"(configs/settle.example.yaml documents every key; make run prints the export line of its demo)")

func newLogger(cfg config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openDB opens the database for `settle migrate` (and the tests' setup): a
// migration's statements may run for database.long_statement_timeout.
func openDB(ctx context.Context, cfg *config.Config) (*store.DB, error) {
	opt := storeOptions(cfg, nil)
	opt.StatementTimeout = cfg.Database.LongStatementTimeout
	return open(ctx, cfg, opt)
}

func openDBWithHook(ctx context.Context, cfg *config.Config, hook func(string)) (*store.DB, error) {
	return open(ctx, cfg, storeOptions(cfg, hook))
}

// storeOptions are the pool settings of the database section.
func storeOptions(cfg *config.Config, hook func(string)) store.Options {
	d := cfg.Database
	return store.Options{
		MaxOpenConns: d.MaxOpenConns, MaxIdleConns: d.MaxIdleConns,
		StatementTimeout: d.StatementTimeout, IdleInTransactionTimeout: d.IdleInTransactionTimeout,
		LongStatementTimeout: d.LongStatementTimeout,
		Hook:                 hook,
	}
}

func open(ctx context.Context, cfg *config.Config, opt store.Options) (*store.DB, error) {
	db, err := store.Open(ctx, cfg.Database.URL.Reveal(), opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", config.RedactURL(cfg.Database.URL.Reveal()), err)
	}
	return db, nil
}

// openCurrentDB opens the database and refuses a schema older than the binary.
func openCurrentDB(ctx context.Context, cfg *config.Config, hook func(string)) (*store.DB, error) {
	db, err := openDBWithHook(ctx, cfg, hook)
	if err != nil {
		return nil, err
	}
	ok, have, want, err := db.SchemaCurrent(ctx)
	if err != nil || !ok {
		db.Close()
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("read schema version: %w (has 'settle migrate up' run on this database?)", err)
		}
		return nil, fmt.Errorf("database schema is at version %d, this binary needs %d: run 'settle migrate up'", have, want)
	}
	return db, nil
}

func redisOpt(cfg *config.Config) (asynq.RedisConnOpt, error) {
	opt, err := jobs.ParseRedisURL(cfg.Redis.URL.Reveal())
	if err != nil {
		return nil, fmt.Errorf("redis.url %s: %w", config.RedactURL(cfg.Redis.URL.Reveal()), err)
	}
	return opt, nil
}

func checkRedis(ctx context.Context, cfg *config.Config, check *jobs.RedisCheck) error {
	if err := check.Check(ctx, cfg.Redis.CheckNoEviction); err != nil {
		return fmt.Errorf("redis %s: %w", config.RedactURL(cfg.Redis.URL.Reveal()), err)
	}
	return nil
}

// buildBanks builds an adapter per configured provider, each behind its
// throttle (rate limit, calls in flight, breaker) and its maintenance
// windows (nothing is sent inside one), and the engine's accounts at each. onBreaker hears every breaker transition, and obs (when not nil)
// every request that reaches a bank.
func buildBanks(cfg *config.Config, logger *slog.Logger, onBreaker func(throttle.Transition), obs bank.Observer) (*bank.Router, map[string]pipeline.Accounts, map[string]*throttle.Bank, error) {
	banks := map[string]pipeline.Bank{}
	throttles := map[string]*throttle.Bank{}
	for _, p := range cfg.Providers {
		adapter, batch, err := newAdapter(p, logger)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		rps := float64(p.RateLimitRPS)
		if rps == 0 {
			rps = math.Inf(1)
		}
		t, err := throttle.Wrap(bank.Instrument(adapter, p.Name, obs), throttle.Config{
			Name: p.Name, RPS: rps, Burst: p.Burst, MaxInFlight: p.MaxInFlight,
			FailureThreshold: p.BreakerFailures, CoolDown: p.BreakerCooldown, BalanceBatch: batch,
			OnStateChange: onBreaker, Logger: logger,
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		m, err := maintenanceOf(cfg, p)
		if err != nil {
			return nil, nil, nil, err
		}
		// Outside the throttle: a call held for a window is not a failure
		// of the bank's, so it never opens the breaker.
		banks[p.Name], throttles[p.Name] = bank.WithMaintenance(t, p.Name, m, nil), t
	}
	return bank.NewRouter(banks), engineAccounts(cfg), throttles, nil
}

// engineAccounts are the engine's accounts at each configured provider.
func engineAccounts(cfg *config.Config) map[string]pipeline.Accounts {
	out := make(map[string]pipeline.Accounts, len(cfg.Providers))
	for _, p := range cfg.Providers {
		out[p.Name] = accountsOf(p)
	}
	return out
}

// accountsOf returns the engine's accounts at a provider.
func accountsOf(p config.ProviderConfig) pipeline.Accounts {
	a := p.Accounts
	return pipeline.Accounts{Collection: a.Collection, Lender: a.Lender, Holding: a.Holding, Fee: a.Fee}
}

// providerKey is the configuration key of provider i, "providers[0]".
func providerKey(i int) string { return fmt.Sprintf("providers[%d]", i) }

// providerOptions are the settings of a provider's adapter: its connection,
// credentials (static token or OAuth client credentials, and mutual TLS
// files) and the zone its bank dates transfers in.
func providerOptions(p config.ProviderConfig, logger *slog.Logger) dialects.Options {
	o := dialects.Options{Location: p.Location(),
		Config: bankhttp.Config{Name: p.Name, BaseURL: p.BaseURL, Token: p.Token.Reveal(), Timeout: p.Timeout, Logger: logger}}
	if p.OAuth() {
		o.OAuth = &transport.OAuth{TokenURL: p.TokenURL, ClientID: p.ClientID, ClientSecret: p.ClientSecret.Reveal(),
			Scopes: strings.Fields(p.Scopes)}
	}
	if p.HasTLS() {
		t := p.TLS
		o.TLS = &transport.TLS{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile, ServerName: t.ServerName}
	}
	return o
}

// newAdapter builds the adapter of a provider's dialect and says how many
// accounts one balance call of it asks for.
func newAdapter(p config.ProviderConfig, logger *slog.Logger) (pipeline.Bank, int, error) {
	d, err := dialects.Lookup(p.Dialect)
	if err != nil {
		return nil, 0, err
	}
	b, err := d.New(providerOptions(p, logger))
	if err != nil {
		return nil, 0, err
	}
	return b, d.BatchSize, nil
}

func executorConfig(cfg *config.Config, hook func(string)) pipeline.ExecutorConfig {
	w, n := cfg.Worker, cfg.Notify.Customer
	retention := map[string]time.Duration{}
	accountKeys := map[string]map[string]string{}
	for i, p := range cfg.Providers {
		retention[p.Name] = p.KeyRetention
		accountKeys[p.Name] = accountsOf(p).ConfigKeys(providerKey(i))
	}
	return pipeline.ExecutorConfig{
		Lease: w.Lease, BankTimeout: w.BankTimeout, MaxAttempts: w.MaxAttempts,
		RetryBase: w.RetryBase, RetryMax: w.RetryMax, UnknownWait: w.UnknownWait, Hook: hook, KeyRetention: retention,
		AccountKeys: accountKeys,
		Notify:      pipeline.NotifyConfig{RetryBase: n.RetryBase, RetryMax: n.RetryMax, WarnAfter: n.WarnAfter, GiveUpAfter: n.GiveUpAfter},
	}
}

// oneLine keeps multi-line errors (config problems) readable after "settle:".
func oneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return fmt.Errorf("%d problems:\n  %s", strings.Count(err.Error(), "\n")+1, strings.ReplaceAll(err.Error(), "\n", "\n  "))
}
