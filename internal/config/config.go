// Package config is the configuration of the settle daemon: what it connects
// to, how fast it polls and works, and which bank providers it talks to.
//
// Load reads a YAML file with koanf, applies environment overrides, fills in
// defaults and validates the result. Every problem is reported at once, one
// per line, naming the key and what is allowed. Unknown keys are refused, so a
// typo never silently falls back to a default.
//
// # Environment overrides
//
// Every scalar key can be overridden by SETTLE_ followed by its path upper
// cased with dots as underscores: SETTLE_DATABASE_URL sets database.url,
// SETTLE_POLL_BATCH_SIZE sets poll.batch_size, SETTLE_WORKER_LEASE sets
// worker.lease. A provider's token and base URL are overridden by
// SETTLE_PROVIDERS_<NAME>_TOKEN, _CLIENT_SECRET and _BASE_URL, where
// NAME is the provider's name upper cased with '-' written as '_'; a token set
// or client secret set this way replaces its file, as
// SETTLE_NOTIFY_SLACK_INTERACTIVE_APP_TOKEN and _SIGNING_SECRET replace
// theirs. An empty value counts as unset.
//
// Any other SETTLE_ variable is refused, so that a misspelt override is not
// ignored, except the variables used by tooling rather than by the daemon:
// SETTLE_BANKSIM_TOKEN, SETTLE_CONFIG, and every name starting SETTLE_TEST_ or
// SETTLE_DEV_ (see nonConfigEnv).
//
// # Secrets
//
// Passwords and tokens are held as Secret, which prints, logs and marshals as
// "[redacted]". URLs that may carry a password are shown through RedactURL.
// No error returned by this package contains a secret.
package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// Config is the daemon's whole configuration. Each field's tag is its key;
// its comment gives the default and the allowed values, which Validate checks.
// configs/settle.example.yaml shows every key.
type Config struct {
	Database        DatabaseConfig   `koanf:"database"`
	Redis           RedisConfig      `koanf:"redis"`
	Scheduler       SchedulerConfig  `koanf:"scheduler"`
	HTTP            HTTPConfig       `koanf:"http"`
	Log             LogConfig        `koanf:"log"`
	Currency        string           `koanf:"currency"`  // ISO 4217 code; default "KRW"
	TimeZone        string           `koanf:"time_zone"` // IANA zone of paydays and maintenance windows; default "Asia/Seoul" (polling.go)
	Poll            PollConfig       `koanf:"poll"`
	Worker          WorkerConfig     `koanf:"worker"`
	Relay           RelayConfig      `koanf:"relay"`
	Sweep           SweepConfig      `koanf:"sweep"`
	Verify          VerifyConfig     `koanf:"verify"`
	Reconcile       ReconcileConfig  `koanf:"reconcile"`
	Notify          NotifyConfig     `koanf:"notify"`
	Providers       []ProviderConfig `koanf:"providers"`        // at least one
	DefaultProvider string           `koanf:"default_provider"` // default: the first provider
	// ProvidersCheckAtStart makes settle serve check every provider's
	// credentials and engine accounts against its bank before it starts
	// (settle providers check), and refuse to start on a failed check; a
	// bank that does not answer is logged and serve goes on. Default true.
	ProvidersCheckAtStart bool `koanf:"providers_check_at_start"`
}

// DatabaseConfig is the PostgreSQL connection.
type DatabaseConfig struct {
	URL          Secret `koanf:"url" redact:"url"` // postgres://user:password@host:port/db; required
	MaxOpenConns int    `koanf:"max_open_conns"`   // MinOpenConns..1000; default 20
	MaxIdleConns int    `koanf:"max_idle_conns"`   // 0..max_open_conns; default max_open_conns
	// Set on every connection settle opens: the longest a statement may
	// run, and the longest a session may sit idle inside a transaction
	// before PostgreSQL ends it (a process that stalled mid-transaction
	// then holds no locks and no vacuum back).
	StatementTimeout         time.Duration `koanf:"statement_timeout"`           // 1s..24h; default 30s
	IdleInTransactionTimeout time.Duration `koanf:"idle_in_transaction_timeout"` // 1s..24h; default 1m
	// LongStatementTimeout replaces statement_timeout for the work that
	// legitimately runs long: migrations, reconciliation snapshots and the
	// invariant checks; statement_timeout..24h; default 1h.
	LongStatementTimeout time.Duration `koanf:"long_statement_timeout"`
}

// DefaultMaxOpenConns is database.max_open_conns when it is not set. The
// step workers share the pool: their claims and records go to PostgreSQL in
// batches, at most two statements of each kind at a time (store/batch.go), so
// the pool need not grow with worker.concurrency.
const DefaultMaxOpenConns = 20

// DefaultWorkerConcurrency is worker.concurrency when it is not set: steps
// under way at once in one process. Batched claims and records make more
// steps under way cheaper, not dearer: on two cores a payday settled about
// 30 % faster with 64 than with 20, where before batching the two were the
// same (docs/performance.md). It matches a provider's default
// max_in_flight.
const DefaultWorkerConcurrency = 64

// MinOpenConns is the smallest database.max_open_conns that works: a
// scheduled job's run and its lease renewal need a connection each at once,
// alert delivery keeps one across its Slack call, and the step workers and
// /readyz need one more.
const MinOpenConns = 4

// RedisConfig is the Redis connection used by the queue.
type RedisConfig struct {
	URL             Secret `koanf:"url" redact:"url"` // redis://[:password@]host:port/db or rediss://; required
	CheckNoEviction bool   `koanf:"check_noeviction"` // refuse to start unless maxmemory-policy is noeviction; default true
}

// HTTPConfig is the operator HTTP server (monitoring, metrics, health).
type HTTPConfig struct {
	Addr string `koanf:"addr"` // host:port; default "127.0.0.1:8080"
	// Credentials for the status page, the dashboard and /metrics: user and
	// password (basic auth), or token (bearer), or both. Without them only
	// /healthz and /readyz are served.
	User        string `koanf:"user"`         // basic auth user, no ':'
	Password    Secret `koanf:"password"`     // at least 16 characters; a secret
	Token       Secret `koanf:"token"`        // bearer token, at least 16 characters; a secret
	MetricsOpen bool   `koanf:"metrics_open"` // serve /metrics without credentials; default false
	// PrometheusURL is a Prometheus that scrapes settle; when set, the
	// dashboard at /monitoring charts the queues' history from it.
	PrometheusURL string `koanf:"prometheus_url"` // http(s)://host[:port][/path]; default none
}

// LogConfig is the daemon's logging.
type LogConfig struct {
	Level  string `koanf:"level"`  // debug, info, warn or error; default "info"
	Format string `koanf:"format"` // text or json; default "json"
}

// PollConfig is the balance poll job.
type PollConfig struct {
	Schedule   string `koanf:"schedule"`    // cron spec; default "@every 1m"
	BatchSize  int    `koanf:"batch_size"`  // VAs per bank balance call, 1..100; default 100
	MinDeposit int64  `koanf:"min_deposit"` // smallest balance, in minor units, that starts a settlement; default 1
	// Smart polling (polling.go, docs/polling.md).
	IdleEvery    int `koanf:"idle_every"`    // VAs not near payday are polled every this many cycles, 1..1000; default 6
	PaydayWindow int `koanf:"payday_window"` // days before and after the expected payday polled every cycle, 0..7; default 1
	Concurrency  int `koanf:"concurrency"`   // balance requests under way at once per provider and shard, 1..256; default 4
	ShardSize    int `koanf:"shard_size"`    // about how many VAs one poll shard task covers, 1..1000000; default 2000
}

// WorkerConfig is the step workers.
type WorkerConfig struct {
	Concurrency     int           `koanf:"concurrency"`      // steps run at once per process, 1..1000; default 64
	Lease           time.Duration `koanf:"lease"`            // how long a claimed step is owned; default 30s
	BankTimeout     time.Duration `koanf:"bank_timeout"`     // deadline of one bank call, < lease; default 10s
	MaxAttempts     int           `koanf:"max_attempts"`     // attempts before a step is DEAD, 1..100; default 5
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"` // wait for running steps on stop, > bank_timeout; default 15s
	RetryBase       time.Duration `koanf:"retry_base"`       // first retry backoff; default 1s
	RetryMax        time.Duration `koanf:"retry_max"`        // largest retry backoff, >= retry_base; default 5m
	// UnknownWait is how long a step whose bank outcome is unknown (a
	// timeout, a 5xx, "processing") waits before its resolve task asks the
	// bank's status call. More than 0s, at most lease; default 500ms.
	UnknownWait time.Duration `koanf:"unknown_wait"`
}

// SchedulerConfig is how the scheduled jobs (poll, relay, sweep, alerts,
// verify, daily_summary, reconcile) share their ticks across replicas: each
// job is led by a lease in the database, renewed while a run goes on.
type SchedulerConfig struct {
	// Lease is how long a job's lease lasts unless renewed: a replica that
	// dies or stalls mid-run holds its job back for about this long before
	// another takes the job over; 3s..10m; default 30s.
	Lease time.Duration `koanf:"lease"`
}

// RelayConfig is the READY relay job (the outbox).
type RelayConfig struct {
	Schedule string `koanf:"schedule"` // cron spec; default "@every 30s"
}

// SweepConfig is the reprocess sweep job.
type SweepConfig struct {
	Schedule string `koanf:"schedule"` // cron spec; default "@every 3m"
	// StuckAfter is how long a step may stay RUNNING with its transfer's
	// outcome unknown before operators are alerted (one alert per step,
	// resolved when the outcome is known); more than worker.lease, at most
	// 168h; default 15m.
	StuckAfter time.Duration `koanf:"stuck_after"`
}

// VerifyConfig is the scheduled run of settle verify's invariant checks:
// a broken invariant raises an alert, resolved when it holds again.
type VerifyConfig struct {
	Schedule string `koanf:"schedule"` // cron spec; default "@hourly"
}

// ReconcileConfig is the daily reconciliation against the banks
// (docs/reconciliation.md).
type ReconcileConfig struct {
	// Schedule is when the reconcile job queues a reconciliation: a cron
	// spec read in time_zone unless it names its own (CRON_TZ=…); default
	// "30 0 * * *", 00:30 every day.
	Schedule string `koanf:"schedule"`
}

// InTimeZone returns a cron spec to be read in time_zone, unless it names
// its own zone (CRON_TZ= or TZ=). "@every" specs are unaffected by zones.
func (c *Config) InTimeZone(spec string) string {
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") || c.TimeZone == "" {
		return spec
	}
	return "CRON_TZ=" + c.TimeZone + " " + spec
}

// NotifyConfig is how operators are told about problems: the alert outbox
// is delivered to Slack, through an incoming webhook or a bot token and
// channel, or, with neither set, written to the log. Alerts are never
// dropped, so there is no maximum of attempts: delivery backs off up to 10m.
type NotifyConfig struct {
	Slack            SlackConfig   `koanf:"slack"`
	Customer         WebhookConfig `koanf:"customer_webhook"`
	DeliverySchedule string        `koanf:"delivery_schedule"` // cron spec of the delivery job; default "@every 10s"
	StormThreshold   int           `koanf:"storm_threshold"`   // more alerts of one kind at one provider than this within storm_window make one summary, 1..100000; default 20
	StormWindow      time.Duration `koanf:"storm_window"`      // more than 0s, at most 24h; default 5m
	RepeatInterval   time.Duration `koanf:"repeat_interval"`   // least time between follow-ups about one problem, more than 0s, at most 24h; default 5m
	// DailySummary is when the daily summary (settled, failed, oldest open
	// settlement) is sent: a cron spec read in time_zone unless it starts
	// with CRON_TZ=; default "0 8 * * *" (see DailySummarySchedule).
	DailySummary string `koanf:"daily_summary"`
}

// WebhookConfig is where the NOTIFY step tells the lender's app that a
// settlement settled: a signed JSON POST. Without url NOTIFY only records
// the event. NOTIFY runs after its settlement is SETTLED: an app that does
// not take the event is retried on its own backoff, warned about, and given
// up on, and never fails the settlement (docs/architecture.md).
type WebhookConfig struct {
	URL     Secret        `koanf:"url" redact:"url"` // http(s) URL of the lender's app; a secret (it may carry a token); default none
	Secret  Secret        `koanf:"secret"`           // shared HMAC-SHA256 key, at least 16 characters; required with url
	Timeout time.Duration `koanf:"timeout"`          // one POST, more than 0s, at most 1m; default 5s
	// Retries of an event the app did not take, counted from when the
	// settlement settled (by the database's clock).
	RetryBase   time.Duration `koanf:"retry_base"`    // first backoff, more than 0s; default 1m
	RetryMax    time.Duration `koanf:"retry_max"`     // longest backoff, at least retry_base, at most 24h; default 1h
	WarnAfter   time.Duration `koanf:"warn_after"`    // still failing this long: one warning per settlement, less than give_up_after; default 30m
	GiveUpAfter time.Duration `koanf:"give_up_after"` // still failing this long: NOTIFY DEAD, a warning, the settlement stays SETTLED; at most 720h; default 72h
}

// SlackConfig is where alerts go in Slack: webhook_url, or bot_token and
// channel, or none of them (alerts are logged).
type SlackConfig struct {
	WebhookURL  Secret            `koanf:"webhook_url"` // incoming webhook, https://hooks.slack.com/services/…; a secret
	BotToken    Secret            `koanf:"bot_token"`   // bot token with chat:write, xoxb-…; a secret
	Channel     string            `koanf:"channel"`     // channel ID (C0123456789) or name (#settle-alerts); required with bot_token
	APIURL      string            `koanf:"api_url"`     // Slack Web API base URL, for tests and proxies; default "https://slack.com/api/"
	Interactive InteractiveConfig `koanf:"interactive"`
}

// InteractiveConfig lets operators act on a failed settlement from its
// alert in Slack (bot mode): buttons for a dry run, a request for replay,
// cancel or compensate, and its approval by a second operator
// (docs/slack-app.md). Off by default.
type InteractiveConfig struct {
	// Mode is how Slack delivers clicks: "off" (default), "socket"
	// (Socket Mode: settle opens a WebSocket to Slack, no inbound port) or
	// "http" (Slack POSTs to path on http.addr, signed with
	// signing_secret).
	Mode              string `koanf:"mode"`
	AppToken          Secret `koanf:"app_token"`           // socket: app-level token with connections:write, xapp-…; a secret
	AppTokenFile      string `koanf:"app_token_file"`      // or the file holding it, read at load; relative to the config file
	SigningSecret     Secret `koanf:"signing_secret"`      // http: the app's signing secret; a secret
	SigningSecretFile string `koanf:"signing_secret_file"` // or the file holding it
	Path              string `koanf:"path"`                // http: the interactivity request URL's path on http.addr; default "/slack/interactions"
	TeamID            string `koanf:"team_id"`             // the workspace's ID (T0123456789); clicks from any other are refused; required
	// ApprovalWindow is how long a request may be approved, by the
	// database's clock; 1m..24h; default 15m.
	ApprovalWindow time.Duration `koanf:"approval_window"`
	// Users are the Slack users who may act, and how far; anyone else is
	// refused. At least one approver.
	Users []SlackUser `koanf:"users"`
}

// Interactive modes.
const (
	InteractiveOff    = "off"
	InteractiveSocket = "socket"
	InteractiveHTTP   = "http"
)

// On reports whether operators may act from Slack.
func (c InteractiveConfig) On() bool { return c.Mode != InteractiveOff }

// SlackUser is one Slack user and what they may do from an alert.
type SlackUser struct {
	ID   string `koanf:"id"`   // the member ID, U0123456789 (W… in Enterprise Grid)
	Role string `koanf:"role"` // viewer (dry run), operator (and acknowledge and request), approver (and approve others' requests)
	Name string `koanf:"name"` // who it is, for readers of this file; optional
}

// Slack roles, each allowing what the one before allows and more.
const (
	SlackViewer   = "viewer"
	SlackOperator = "operator"
	SlackApprover = "approver"
)

// ProviderConfig is one bank provider the router can send a customer to.
type ProviderConfig struct {
	Name      string `koanf:"name"`       // [a-z0-9_-]{1,32}, unique
	Dialect   string `koanf:"dialect"`    // bank API dialect; see dialects
	BaseURL   string `koanf:"base_url"`   // absolute http(s) URL
	Token     Secret `koanf:"token"`      // static bearer token; or token_file; or the OAuth keys below, not both
	TokenFile string `koanf:"token_file"` // file holding the token, read at load; relative to the config file
	// OAuth 2.0 client credentials, instead of token: a bearer token is
	// fetched from token_url, cached, refreshed a minute before it expires
	// and after a 401 (bank/transport).
	TokenURL         string        `koanf:"token_url"`          // token endpoint, https:// (http:// only to this machine); default none
	ClientID         string        `koanf:"client_id"`          // required with token_url
	ClientSecret     Secret        `koanf:"client_secret"`      // required with token_url; or client_secret_file; a secret
	ClientSecretFile string        `koanf:"client_secret_file"` // file holding client_secret, read at load; relative to the config file
	Scopes           string        `koanf:"scopes"`             // scope names separated by spaces, as sent; default none
	TLS              ProviderTLS   `koanf:"tls"`
	Timeout          time.Duration `koanf:"timeout"` // HTTP timeout of one call, < worker.lease; default worker.bank_timeout
	// Throttling of every call to this bank: a token bucket, a cap on calls
	// in flight, and a breaker per operation that pauses its calls once most
	// of its recent calls failed.
	RateLimitRPS    int            `koanf:"rate_limit_rps"`   // calls a second, 0 = no limit, up to 100000; default 0
	Burst           int            `koanf:"burst"`            // calls allowed at once after a quiet spell, 0..rate_limit_rps; default 1
	MaxInFlight     int            `koanf:"max_in_flight"`    // calls under way at once, 1..10000; default 64
	BreakerFailures int            `koanf:"breaker_failures"` // fewest failures among an operation's last 10× this many calls that open its breaker, once more than 3 in 5 of them; 1..1000; default 5
	BreakerCooldown time.Duration  `koanf:"breaker_cooldown"` // how long it stays open before a probe, >0; default 30s
	Accounts        AccountsConfig `koanf:"accounts"`
	PollBudget      int            `koanf:"poll_budget"` // balance calls per poll cycle, 0 = no limit; default 0 (polling.go)
	// KeyRetention is how long the bank keeps an idempotency key; an
	// attempt older than this that the bank says it never saw is halted,
	// not sent again (> worker.lease; default 720h, ADR 0002).
	KeyRetention time.Duration `koanf:"key_retention"`
	Maintenance  string        `koanf:"maintenance"` // daily windows in time_zone, "23:30-00:30,04:00-04:10"; default none (polling.go)
	// TimeZone is the IANA zone the bank dates transfers in: the day of an
	// openbanking transfer's tran_dtime and of its result call's
	// org_bank_tran_date. Default "Asia/Seoul", as the Korean open-banking
	// API uses.
	TimeZone string `koanf:"time_zone"`
}

// ProviderTLS is mutual TLS to a provider: the client certificate the bank
// asks for and the CA of its server certificate. Paths are relative to the
// config file; Load checks that they read, that the key is the
// certificate's and that the CA parses.
type ProviderTLS struct {
	CertFile   string `koanf:"cert_file"`   // PEM client certificate (chain); with key_file; default none
	KeyFile    string `koanf:"key_file"`    // PEM private key of cert_file; default none
	CAFile     string `koanf:"ca_file"`     // PEM CA bundle for the bank's certificate; default the system's roots
	ServerName string `koanf:"server_name"` // name the bank's certificate must carry; default base_url's host
}

// OAuth reports whether the provider uses OAuth client credentials.
func (pc ProviderConfig) OAuth() bool { return pc.TokenURL != "" }

// HasTLS reports whether any tls key is set.
func (pc ProviderConfig) HasTLS() bool { return pc.TLS != ProviderTLS{} }

// Location returns the provider's time zone. Load has checked it loads.
func (pc ProviderConfig) Location() *time.Location {
	loc, err := time.LoadLocation(pc.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// AccountsConfig names the settle-owned accounts at a provider that the legs
// of a settlement move money to. All are required.
type AccountsConfig struct {
	Collection string `koanf:"collection"` // where SWEEP moves a VA's balance
	Lender     string `koanf:"lender"`     // where REPAY pays the lender
	Holding    string `koanf:"holding"`    // where HOLD keeps withheld money
	Fee        string `koanf:"fee"`        // where FEE takes the fee
}

// dialect is a bank API dialect a provider may name.
type dialect struct {
	name      string
	supported bool // false: known by name, not spoken by this build yet
}

// dialects lists every dialect a provider may name, in the order messages show
// them. Adding a dialect, or enabling one, is changing this list and the
// registry (bank/dialects).
var dialects = []dialect{
	{name: "rest", supported: true},
	{name: "openbanking", supported: true},
}

// SupportedDialects are the names of the dialects this build speaks, in the
// order messages show them: those of the registry in bank/dialects, which
// configuration does not import (cmd/settle's tests check that they agree).
func SupportedDialects() []string {
	var names []string
	for _, d := range dialects {
		if d.supported {
			names = append(names, d.name)
		}
	}
	return names
}

var providerName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// defaults returns the configuration used for every key that is not set.
// Keys whose default depends on another key are filled in by fillDerived.
func defaults() Config {
	return Config{
		Database: DatabaseConfig{
			MaxOpenConns:             DefaultMaxOpenConns,
			StatementTimeout:         30 * time.Second,
			IdleInTransactionTimeout: time.Minute,
			LongStatementTimeout:     time.Hour,
		},
		Scheduler:             SchedulerConfig{Lease: 30 * time.Second},
		Redis:                 RedisConfig{CheckNoEviction: true},
		HTTP:                  HTTPConfig{Addr: "127.0.0.1:8080"},
		Log:                   LogConfig{Level: "info", Format: "json"},
		Currency:              "KRW",
		TimeZone:              "Asia/Seoul",
		ProvidersCheckAtStart: true,
		Poll:                  PollConfig{Schedule: "@every 1m", BatchSize: 100, MinDeposit: 1, IdleEvery: 6, PaydayWindow: 1, Concurrency: 4, ShardSize: 2000},
		Worker: WorkerConfig{
			Concurrency:     DefaultWorkerConcurrency,
			Lease:           30 * time.Second,
			BankTimeout:     10 * time.Second,
			MaxAttempts:     5,
			ShutdownTimeout: 15 * time.Second,
			RetryBase:       time.Second,
			RetryMax:        5 * time.Minute,
			UnknownWait:     500 * time.Millisecond,
		},
		Relay:     RelayConfig{Schedule: "@every 30s"},
		Sweep:     SweepConfig{Schedule: "@every 3m", StuckAfter: 15 * time.Minute},
		Verify:    VerifyConfig{Schedule: "@hourly"},
		Reconcile: ReconcileConfig{Schedule: "30 0 * * *"},
		Notify: NotifyConfig{
			Slack: SlackConfig{APIURL: "https://slack.com/api/", Interactive: InteractiveConfig{
				Mode: InteractiveOff, Path: "/slack/interactions", ApprovalWindow: 15 * time.Minute}},
			Customer: WebhookConfig{Timeout: 5 * time.Second, RetryBase: time.Minute, RetryMax: time.Hour,
				WarnAfter: 30 * time.Minute, GiveUpAfter: 72 * time.Hour},
			DeliverySchedule: "@every 10s",
			StormThreshold:   20,
			StormWindow:      5 * time.Minute,
			RepeatInterval:   5 * time.Minute,
			DailySummary:     "0 8 * * *",
		},
	}
}

// Load reads the YAML file at path (none if path is ""), applies the SETTLE_
// overrides found in environ (as from os.Environ), fills in defaults, reads
// token files and validates. It returns every problem found, one per line.
func Load(path string, environ []string) (*Config, error) {
	return LoadFor(path, environ, Uses{})
}

// Uses says what a command does without, so that it needs none of the
// secrets for it: each component of a deployment gets only its own. The
// zero value is a command that needs everything.
type Uses struct {
	// NoRedis: the command never connects to Redis (settle migrate), so
	// redis.url may be missing.
	NoRedis bool
	// NoBanks: the command never calls a bank (settle migrate, serve --role
	// web), so providers may have no token or client secret, and their
	// token, client secret and TLS files are not read. The rest of each
	// provider is still checked.
	NoBanks bool
	// NoSlack: the command never talks to Slack (settle migrate, serve
	// --role worker or web: alerts reach Slack from the scheduler), so the
	// Slack secrets may be missing (bot_token, and the interactive
	// app_token and signing_secret, whose files are not read). The rest of
	// notify.slack is still checked.
	NoSlack bool
}

// LoadFor is Load for a command that uses less than everything (see Uses).
func LoadFor(path string, environ []string, u Uses) (*Config, error) {
	k := koanf.New(".")
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config: read %s: %s", path, cleanYAMLError(err))
		}
	}
	origin := make(map[string]string)
	errs := applyEnv(k, environ, origin)

	cfg := defaults()
	d := decoder{file: path, origin: origin, set: make(map[string]bool)}
	d.decodeStruct(k.Raw(), "", reflect.ValueOf(&cfg).Elem())
	errs = append(errs, d.errs...)
	cfg.fillDerived(d.set)
	// The banks' and the Slack app's secrets: their files need not be there
	// for a command that uses neither.
	errs = append(errs, readSecretFiles(cfg.secretFiles(!u.NoBanks, !u.NoSlack), filepath.Dir(path))...)
	if !u.NoBanks {
		errs = append(errs, cfg.checkTLSFiles(filepath.Dir(path))...)
	}
	errs = append(errs, cfg.validate(u)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

// fillDerived sets the defaults that depend on other keys, for the keys in
// set that were not given.
func (c *Config) fillDerived(set map[string]bool) {
	if !set["database.max_idle_conns"] {
		c.Database.MaxIdleConns = c.Database.MaxOpenConns
	}
	for i := range c.Providers {
		pc, key := &c.Providers[i], fmt.Sprintf("providers[%d].", i)
		if !set[key+"timeout"] {
			pc.Timeout = c.Worker.BankTimeout
		}
		if !set[key+"burst"] && pc.RateLimitRPS > 0 {
			pc.Burst = 1
		}
		if !set[key+"max_in_flight"] {
			pc.MaxInFlight = 64
		}
		if !set[key+"time_zone"] {
			pc.TimeZone = "Asia/Seoul"
		}
		if !set[key+"breaker_failures"] {
			pc.BreakerFailures = 5
		}
		if !set[key+"key_retention"] {
			pc.KeyRetention = 30 * 24 * time.Hour
		}
		if !set[key+"breaker_cooldown"] {
			pc.BreakerCooldown = 30 * time.Second
		}
	}
	if c.DefaultProvider == "" && len(c.Providers) > 0 {
		c.DefaultProvider = c.Providers[0].Name
	}
}
