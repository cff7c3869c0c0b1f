package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/jobs/cronspec"
)

// The secrets used by the tests; none may appear in an error or a printout.
const (
	dbSecret    = "s3cret-db-pw"
	redisSecret = "s3cret-redis-pw"
	tokenSecret = "s3cret-token"
)

var secrets = []string{dbSecret, redisSecret, tokenSecret}

const dbRedis = `database:
  url: postgres://settle:` + dbSecret + `@db.internal:5432/settle?sslmode=disable
redis:
  url: redis://:` + redisSecret + `@redis.internal:6379/0
`

// provider returns one item of the providers list: a valid sandbox provider
// with the keys in over replaced ("-" leaves a key out) or added.
func provider(over map[string]string) string {
	fields := [][2]string{
		{"name", "sandbox"},
		{"dialect", "rest"},
		{"base_url", "http://127.0.0.1:8181"},
		{"token", tokenSecret},
		{"accounts", "{collection: C, lender: L, holding: H, fee: F}"},
	}
	for _, k := range sortedKeys(over) {
		if !slices.ContainsFunc(fields, func(f [2]string) bool { return f[0] == k }) {
			fields = append(fields, [2]string{k, over[k]})
		}
	}
	var b strings.Builder
	lead := "  - "
	for _, f := range fields {
		v := f[1]
		if o, ok := over[f[0]]; ok {
			v = o
		}
		if v == "-" {
			continue
		}
		b.WriteString(lead + f[0] + ": " + v + "\n")
		lead = "    "
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// providers returns a providers list of the given items.
func providers(items ...string) string {
	return "providers:\n" + strings.Join(items, "")
}

// valid is a minimal valid configuration.
var valid = dbRedis + providers(provider(nil))

// writeFile writes content to name in a new temporary directory and returns
// its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load writes yaml to a file and loads it with env.
func load(t *testing.T, yaml string, env ...string) (*Config, error) {
	t.Helper()
	cfg, err := Load(writeFile(t, "settle.yaml", yaml), env)
	if err != nil {
		checkError(t, err)
	}
	return cfg, err
}

// checkError fails the test if err shows a secret or a line not starting
// with "config: ".
func checkError(t *testing.T, err error) {
	t.Helper()
	assertNoSecret(t, "error", err.Error())
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if !strings.HasPrefix(line, "config: ") {
			t.Errorf("error line %q does not start with \"config: \"", line)
		}
	}
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the secret %q:\n%s", what, secret, s)
		}
	}
}

// wantErrors checks that err has exactly one line per wanted substring, each
// containing it, in any order.
func wantErrors(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %q", want)
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, w) }) {
			t.Errorf("no error line contains %q; got:\n%v", w, err)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("got %d error lines, want %d:\n%v", len(lines), len(want), err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, valid)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Database: DatabaseConfig{
			URL:                      Secret("postgres://settle:" + dbSecret + "@db.internal:5432/settle?sslmode=disable"),
			MaxOpenConns:             20,
			MaxIdleConns:             20,
			StatementTimeout:         30 * time.Second,
			IdleInTransactionTimeout: time.Minute,
			LongStatementTimeout:     time.Hour,
		},
		Redis:     RedisConfig{URL: Secret("redis://:" + redisSecret + "@redis.internal:6379/0"), CheckNoEviction: true},
		Scheduler: SchedulerConfig{Lease: 30 * time.Second},
		HTTP:      HTTPConfig{Addr: "127.0.0.1:8080"},
		Log:       LogConfig{Level: "info", Format: "json"},
		Currency:  "KRW",
		TimeZone:  "Asia/Seoul",
		Poll:      PollConfig{Schedule: "@every 1m", BatchSize: 100, MinDeposit: 1, IdleEvery: 6, PaydayWindow: 1, Concurrency: 4, ShardSize: 2000},
		Worker: WorkerConfig{
			Concurrency: 64, Lease: 30 * time.Second, BankTimeout: 10 * time.Second, MaxAttempts: 5,
			ShutdownTimeout: 15 * time.Second, RetryBase: time.Second, RetryMax: 5 * time.Minute, UnknownWait: 500 * time.Millisecond,
		},
		Relay:     RelayConfig{Schedule: "@every 30s"},
		Sweep:     SweepConfig{Schedule: "@every 3m", StuckAfter: 15 * time.Minute},
		Verify:    VerifyConfig{Schedule: "@hourly"},
		Reconcile: ReconcileConfig{Schedule: "30 0 * * *"},
		Notify: NotifyConfig{
			Slack: SlackConfig{APIURL: "https://slack.com/api/",
				Interactive: InteractiveConfig{Mode: "off", Path: "/slack/interactions", ApprovalWindow: 15 * time.Minute}},
			Customer: WebhookConfig{Timeout: 5 * time.Second, RetryBase: time.Minute, RetryMax: time.Hour,
				WarnAfter: 30 * time.Minute, GiveUpAfter: 72 * time.Hour},
			DeliverySchedule: "@every 10s", StormThreshold: 20, StormWindow: 5 * time.Minute, RepeatInterval: 5 * time.Minute,
			DailySummary: "0 8 * * *",
		},
		Providers: []ProviderConfig{{
			Name: "sandbox", Dialect: "rest", BaseURL: "http://127.0.0.1:8181", Token: tokenSecret,
			Timeout: 10 * time.Second, MaxInFlight: 64, BreakerFailures: 5, BreakerCooldown: 30 * time.Second, KeyRetention: 720 * time.Hour, TimeZone: "Asia/Seoul",
			Accounts: AccountsConfig{Collection: "C", Lender: "L", Holding: "H", Fee: "F"},
		}},
		DefaultProvider:       "sandbox",
		ProvidersCheckAtStart: true,
	}
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *cfg, want)
	}
}

func TestDerivedDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, `
database:
  url: postgres://settle@db/settle
  max_open_conns: 7
redis:
  url: redis://redis:6379
worker:
  bank_timeout: 4s
`+providers(provider(nil), provider(map[string]string{"name": "second", "timeout": "2s"})))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.MaxIdleConns != 7 {
		t.Errorf("max_idle_conns = %d, want max_open_conns 7", cfg.Database.MaxIdleConns)
	}
	if got := cfg.Providers[0].Timeout; got != 4*time.Second {
		t.Errorf("providers[0].timeout = %s, want worker.bank_timeout 4s", got)
	}
	if got := cfg.Providers[1].Timeout; got != 2*time.Second {
		t.Errorf("providers[1].timeout = %s, want the given 2s", got)
	}
	if cfg.DefaultProvider != "sandbox" {
		t.Errorf("default_provider = %q, want the first provider", cfg.DefaultProvider)
	}
	limited, err := load(t, dbRedis+providers(provider(map[string]string{"rate_limit_rps": "50"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := limited.Providers[0].Burst; got != 1 {
		t.Errorf("providers[0].burst = %d with rate_limit_rps 50, want 1: a burst of the rate let twice the limit through in a second", got)
	}
}

func TestLoadWithoutFile(t *testing.T) {
	t.Parallel()
	_, err := Load("", []string{"SETTLE_DATABASE_URL=postgres://settle:" + dbSecret + "@db/settle", "SETTLE_REDIS_URL=redis://r:6379/0"})
	checkError(t, err)
	wantErrors(t, err, "providers: at least one provider is required")
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	wantErrors(t, err, "nope.yaml")
}

func TestValidation(t *testing.T) {
	t.Parallel()
	p := func(over map[string]string) string { return dbRedis + providers(provider(over)) }
	redisOnly := "redis:\n  url: redis://r:6379\n"
	dbOnly := "database:\n  url: postgres://settle:" + dbSecret + "@db/settle\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"database url missing", redisOnly + providers(provider(nil)), []string{"database.url is required: set it in the file or in SETTLE_DATABASE_URL"}},
		{"database url scheme", redisOnly + "database:\n  url: mysql://settle:" + dbSecret + "@db/settle\n" + providers(provider(nil)),
			[]string{`database.url "mysql://settle:[redacted]@db/settle": must be a URL such as postgres://`}},
		{"database url not a URL", redisOnly + "database:\n  url: \"postgres://settle:" + dbSecret + "@db:port/x\"\n" + providers(provider(nil)),
			[]string{`database.url "[redacted]": must be a URL`}},
		{"redis url missing", dbOnly + providers(provider(nil)), []string{"redis.url is required: set it in the file or in SETTLE_REDIS_URL"}},
		{"redis url scheme", dbOnly + "redis:\n  url: http://:" + redisSecret + "@r:6379\n" + providers(provider(nil)),
			[]string{`redis.url "http://:[redacted]@r:6379": must be a URL such as redis://`}},
		{"redis url db", dbOnly + "redis:\n  url: redis://r:6379/zero\n" + providers(provider(nil)), []string{`redis.url "redis://r:6379/zero"`}},
		{"redis url host", dbOnly + "redis:\n  url: redis:///0\n" + providers(provider(nil)), []string{`redis.url "redis:///0"`}},
		{"http addr", valid + "http:\n  addr: \"8080\"\n", []string{`http.addr "8080": must be host:port, such as 127.0.0.1:8080`}},
		{"http port", valid + "http:\n  addr: \"localhost:99999\"\n", []string{`http.addr "localhost:99999"`}},
		{"log level", valid + "log:\n  level: verbose\n", []string{`log.level "verbose": must be one of debug, info, warn, error`}},
		{"log format", valid + "log:\n  format: xml\n", []string{`log.format "xml": must be one of text, json`}},
		{"currency lower case", valid + "currency: krw\n", []string{`currency "krw": must be an ISO 4217 code`}},
		{"currency long", valid + "currency: KRWW\n", []string{`currency "KRWW": must be an ISO 4217 code`}},
		{"poll schedule", valid + "poll:\n  schedule: every 5s\n", []string{`poll.schedule "every 5s": expected 5 to 6 fields, found 2: [every 5s]; use a cron spec such as "*/5 * * * *" or "@every 10s"`}},
		{"poll schedule below 1s", valid + "poll:\n  schedule: \"@every 500ms\"\n", []string{`poll.schedule "@every 500ms": the interval must be at least 1s`}},
		{"poll schedule bad TZ", valid + "poll:\n  schedule: TZ=UTC\n", []string{`poll.schedule "TZ=UTC": not a valid schedule`}},
		{"poll batch_size 0", valid + "poll:\n  batch_size: 0\n", []string{"poll.batch_size 0: must be between 1 and 100"}},
		{"poll batch_size 101", valid + "poll:\n  batch_size: 101\n", []string{"poll.batch_size 101: must be between 1 and 100"}},
		{"poll min_deposit", valid + "poll:\n  min_deposit: 0\n", []string{"poll.min_deposit 0: must be at least 1"}},
		{"worker concurrency 0", valid + "worker:\n  concurrency: 0\n", []string{"worker.concurrency 0: must be between 1 and 1000"}},
		{"worker concurrency 1001", valid + "worker:\n  concurrency: 1001\n", []string{"worker.concurrency 1001: must be between 1 and 1000"}},
		{"worker lease 0", valid + "worker:\n  lease: 0s\n", []string{"worker.lease 0s: must be more than 0s",
			"providers[0].timeout 10s: must be less than worker.lease (0s)"}},
		{"worker bank_timeout = lease", valid + "worker:\n  bank_timeout: 30s\n  shutdown_timeout: 40s\n",
			[]string{"worker.bank_timeout 30s: must be less than worker.lease (30s)", "providers[0].timeout 30s: must be less than worker.lease (30s)"}},
		{"worker bank_timeout 0", valid + "worker:\n  bank_timeout: 0s\n", []string{"worker.bank_timeout 0s: must be more than 0s",
			"providers[0].timeout 0s: must be more than 0s"}},
		{"worker max_attempts 0", valid + "worker:\n  max_attempts: 0\n", []string{"worker.max_attempts 0: must be between 1 and 100"}},
		{"worker max_attempts 101", valid + "worker:\n  max_attempts: 101\n", []string{"worker.max_attempts 101: must be between 1 and 100"}},
		{"worker shutdown_timeout", valid + "worker:\n  shutdown_timeout: 10s\n", []string{"worker.shutdown_timeout 10s: must be more than worker.bank_timeout (10s)"}},
		{"worker retry_base", valid + "worker:\n  retry_base: 0s\n", []string{"worker.retry_base 0s: must be more than 0s"}},
		{"worker retry_max", valid + "worker:\n  retry_max: 500ms\n", []string{"worker.retry_max 500ms: must be at least worker.retry_base (1s)"}},
		{"relay schedule", valid + "relay:\n  schedule: \"* * *\"\n", []string{`relay.schedule "* * *": `}},
		{"sweep schedule", valid + "sweep:\n  schedule: \"@fortnightly\"\n", []string{`sweep.schedule "@fortnightly": `}},
		{"sweep stuck_after 0", valid + "sweep:\n  stuck_after: 0s\n", []string{"sweep.stuck_after 0s: must be more than 0s"}},
		{"sweep stuck_after within a lease", valid + "sweep:\n  stuck_after: 30s\n",
			[]string{"sweep.stuck_after 30s: must be more than worker.lease (30s)"}},
		{"sweep stuck_after long", valid + "sweep:\n  stuck_after: 200h\n", []string{"sweep.stuck_after 200h0m0s: must be at most 168h"}},
		{"verify schedule", valid + "verify:\n  schedule: hourly\n", []string{`verify.schedule "hourly": `}},
		{"reconcile schedule", valid + "reconcile:\n  schedule: \"30 0 * *\"\n", []string{`reconcile.schedule "30 0 * *": `}},
		{"no providers", dbRedis, []string{"providers: at least one provider is required"}},
		{"empty providers", dbRedis + "providers: []\n", []string{"providers: at least one provider is required"}},
		{"provider name missing", p(map[string]string{"name": "-"}), []string{"providers[0].name is required"}},
		{"provider name form", p(map[string]string{"name": "Sand Box"}), []string{`providers[0].name "Sand Box": must be 1 to 32 of a-z, 0-9, _ and -`}},
		{"provider name long", p(map[string]string{"name": strings.Repeat("a", 33)}), []string{`providers[0].name "` + strings.Repeat("a", 33) + `": must be 1 to 32`}},
		{"provider name repeated", dbRedis + providers(provider(nil), provider(nil)), []string{`providers[1].name "sandbox": already used by providers[0]`}},
		{"provider env names clash", dbRedis + providers(provider(map[string]string{"name": "a-b"}), provider(map[string]string{"name": "a_b"})),
			[]string{`providers[1].name "a_b": its variables SETTLE_PROVIDERS_A_B_* are those of providers[0] too`}},
		{"dialect missing", p(map[string]string{"dialect": "-"}), []string{"providers[0].dialect is required: one of rest"}},
		{"max_in_flight zero", p(map[string]string{"max_in_flight": "0"}), []string{"providers[0].max_in_flight 0: must be from 1 to 10000"}},
		{"rate limit negative", p(map[string]string{"rate_limit_rps": "-1", "burst": "1"}), []string{"providers[0].rate_limit_rps -1: must be from 0 to 100000"}},
		{"provider time zone", p(map[string]string{"time_zone": "Mars/Olympus"}),
			[]string{`providers[0].time_zone "Mars/Olympus": must be an IANA time zone`}},
		{"unknown_wait above the lease", valid + "worker:\n  unknown_wait: 31s\n", []string{"worker.unknown_wait 31s: must be at most worker.lease (30s)"}},
		{"burst above the rate", p(map[string]string{"rate_limit_rps": "20", "burst": "21"}),
			[]string{"providers[0].burst 21: must not exceed rate_limit_rps (20)"}},
		{"breaker cooldown zero", p(map[string]string{"breaker_cooldown": "0s"}), []string{"providers[0].breaker_cooldown"}},
		{"key retention within the lease", p(map[string]string{"key_retention": "10s"}),
			[]string{"providers[0].key_retention 10s: must be more than worker.lease (30s)"}},
		{"dialect unknown", p(map[string]string{"dialect": "soap"}), []string{`providers[0].dialect "soap": must be one of rest`}},
		{"dialect unknown", p(map[string]string{"dialect": "swift"}), []string{`providers[0].dialect "swift"`}},
		{"base_url missing", p(map[string]string{"base_url": "-"}), []string{"providers[0].base_url is required"}},
		{"base_url scheme", p(map[string]string{"base_url": "ftp://bank"}), []string{`providers[0].base_url "ftp://bank": must be an absolute http:// or https:// URL`}},
		{"base_url relative", p(map[string]string{"base_url": "/api"}), []string{`providers[0].base_url "/api": must be an absolute`}},
		{"base_url password", p(map[string]string{"base_url": "https://u:" + tokenSecret + "@bank/"}),
			[]string{`providers[0].base_url "https://u:[redacted]@bank/": must not hold a user or password (set token)`}},
		{"token missing", p(map[string]string{"token": "-"}), []string{"providers[0] has no credentials: set token (or token_file, SETTLE_PROVIDERS_SANDBOX_TOKEN), or OAuth token_url, client_id and client_secret"}},
		{"timeout 0", p(map[string]string{"timeout": "0s"}), []string{"providers[0].timeout 0s: must be more than 0s"}},
		{"timeout >= lease", p(map[string]string{"timeout": "30s"}), []string{"providers[0].timeout 30s: must be less than worker.lease (30s)"}},
		{"account missing", p(map[string]string{"accounts": "{collection: C, lender: L, holding: H}"}), []string{"providers[0].accounts.fee is required"}},
		{"accounts missing", p(map[string]string{"accounts": "-"}), []string{
			"providers[0].accounts.collection is required", "providers[0].accounts.lender is required",
			"providers[0].accounts.holding is required", "providers[0].accounts.fee is required"}},
		{"account blank", p(map[string]string{"accounts": "{collection: ' ', lender: L, holding: H, fee: F}"}), []string{"providers[0].accounts.collection is required"}},
		{"scheduler lease short", valid + "scheduler:\n  lease: 1s\n", []string{"scheduler.lease 1s: must be from 3s to 10m0s"}},
		{"scheduler lease", valid + "scheduler:\n  lease: 5s\n", nil},
		{"default_provider", valid + "default_provider: nope\n", []string{`default_provider "nope": must be the name of a provider (sandbox)`}},
		{"default_provider second", dbRedis + providers(provider(nil), provider(map[string]string{"name": "b"})) + "default_provider: b\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			wantErrors(t, err, tt.want...)
		})
	}
}

func TestDatabaseConns(t *testing.T) {
	t.Parallel()
	base := "redis:\n  url: redis://r:6379\ndatabase:\n  url: postgres://db/settle\n"
	tests := []struct {
		conns string
		want  []string
	}{
		{"  max_open_conns: 0\n  max_idle_conns: 0\n", []string{"database.max_open_conns 0: too few to work, at least 4"}},
		// One connection deadlocked the first scheduled tick; too few
		// starve a job's lease renewal behind alert delivery and workers.
		{"  max_open_conns: 1\n", []string{"database.max_open_conns 1: too few to work, at least 4"}},
		{"  max_open_conns: 3\n", []string{"database.max_open_conns 3: too few to work, at least 4: a scheduled job and its lease renewal, alert delivery and the step workers each need a connection at once; set 20 (the default)"}},
		{"  max_open_conns: 4\n", nil},
		{"  max_open_conns: 1001\n", []string{"database.max_open_conns 1001: must be between 4 and 1000"}},
		{"  max_open_conns: 10\n  max_idle_conns: 11\n", []string{"database.max_idle_conns 11: must be between 0 and 10"}},
		{"  max_idle_conns: -1\n", []string{"database.max_idle_conns -1: must be between 0 and 20"}},
		{"  max_open_conns: 10\n  max_idle_conns: 0\n", nil},
		{"  statement_timeout: 0s\n", []string{"database.statement_timeout 0s: must be from 1s to 24h0m0s"}},
		{"  idle_in_transaction_timeout: 500ms\n", []string{"database.idle_in_transaction_timeout 500ms: must be from 1s to 24h0m0s"}},
		{"  statement_timeout: 2h\n", []string{"database.long_statement_timeout 1h0m0s: must be at least database.statement_timeout (2h0m0s)"}},
		{"  statement_timeout: 2h\n  long_statement_timeout: 3h\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.conns, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, base+tt.conns+providers(provider(nil)))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErrors(t, err, tt.want...)
		})
	}
}

func TestWrongTypes(t *testing.T) {
	t.Parallel()
	p := func(over map[string]string) string { return dbRedis + providers(provider(over)) }
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"int from word", valid + "poll:\n  batch_size: abc\n", []string{`poll.batch_size "abc": not a whole number`}},
		{"int from float", valid + "poll:\n  batch_size: 1.5\n", []string{`poll.batch_size 1.5: not a whole number`}},
		{"int64 overflow", valid + "poll:\n  min_deposit: 99999999999999999999\n", []string{`poll.min_deposit 1e+20: not a whole number`}},
		{"duration", valid + "worker:\n  lease: 5x\n", []string{`worker.lease "5x": not a duration such as 30s`}},
		{"duration without unit", valid + "worker:\n  lease: 30\n", []string{`worker.lease 30: not a duration such as 30s`}},
		{"bool", "database:\n  url: postgres://db/s\nredis:\n  url: redis://r\n  check_noeviction: yes\n" + providers(provider(nil)), []string{`redis.check_noeviction "yes": not true or false`}},
		{"string from number", valid + "currency: 410\n", []string{`currency: must be a string (quote it), not a number`}},
		{"section scalar", valid + "poll: 5\n", []string{`poll: must be a mapping of keys, not a number`}},
		{"section list", valid + "worker: [1]\n", []string{`worker: must be a mapping of keys, not a list`}},
		{"providers mapping", dbRedis + "providers:\n  sandbox: {dialect: rest}\n", []string{
			`providers: must be a list (each item starts with -), not a mapping`, "providers: at least one provider is required"}},
		{"provider scalar", dbRedis + "providers:\n  - sandbox\n", []string{`providers[0]: must be a mapping of keys, not a string`,
			"providers[0].name is required", "providers[0].dialect is required", "providers[0].base_url is required",
			"providers[0] has no credentials", "accounts.collection", "accounts.lender", "accounts.holding", "accounts.fee"}},
		{"secret not a string", p(map[string]string{"token": "123456"}), []string{"providers[0].token: must be a string (quote it), not a number",
			"providers[0] has no credentials"}},
		{"accounts scalar", p(map[string]string{"accounts": "x"}), []string{`providers[0].accounts: must be a mapping of keys, not a string`,
			"accounts.collection", "accounts.lender", "accounts.holding", "accounts.fee"}},
		{"secret at the wrong level", "database: postgres://settle:" + dbSecret + "@db/settle\nredis: {url: redis://r}\n" + providers(provider(nil)),
			[]string{"database: must be a mapping of keys, not a string", "database.url is required"}},
		{"null values keep defaults", valid + "poll:\n  batch_size:\nworker:\n", nil},
		{"quoted number", valid + "poll:\n  batch_size: \"50\"\n", nil},
		{"not YAML", "database: [\n", []string{"settle.yaml: yaml: line 1: did not find expected node content"}},
		{"not a mapping", "- a\n- b\n", []string{"settle.yaml: yaml: unmarshal errors: line 1: cannot unmarshal !!seq into map[string]interface {}"}},
		{"repeated key", valid + "database:\n  max_open_conns: 3\n", []string{`yaml: unmarshal errors: line 11: mapping key "database" already defined at line 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			wantErrors(t, err, tt.want...)
		})
	}
}

func TestAllProblemsReported(t *testing.T) {
	t.Parallel()
	_, err := load(t, dbRedis+`
poll:
  batch_size: 0
  bach_size: 3
worker:
  lease: 5x
log:
  level: loud
`+providers(provider(map[string]string{"dialect": "soap", "tokn": "x"})))
	wantErrors(t, err,
		`unknown key "poll.bach_size"`,
		`unknown key "providers[0].tokn"`,
		`worker.lease "5x": not a duration such as 30s`,
		`poll.batch_size 0: must be between 1 and 100`,
		`log.level "loud"`,
		`providers[0].dialect "soap"`,
	)
}

func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"top level", valid + "curency: KRW\n", `unknown key "curency" in %s (did you mean "currency"?)`},
		{"top level, no suggestion", valid + "colour: blue\n", `unknown key "colour" in %s`},
		{"key at the wrong level", valid + "batch_size: 10\n", `unknown key "batch_size" in %s (did you mean "poll.batch_size"?)`},
		{"nested", valid + "poll:\n  bach_size: 10\n", `unknown key "poll.bach_size" in %s (did you mean "poll.batch_size"?)`},
		{"nested section", valid + "worker:\n  retry:\n    base: 1s\n", `unknown key "worker.retry" in %s`},
		{"in a provider", dbRedis + providers(provider(map[string]string{"tokn": "x"})), `unknown key "providers[0].tokn" in %s (did you mean "providers[0].token"?)`},
		{"in a provider's accounts", dbRedis + providers(provider(nil), provider(map[string]string{"name": "b", "accounts": "{collection: C, lender: L, holding: H, fee: F, fees: G}"})),
			`unknown key "providers[1].accounts.fees" in %s (did you mean "providers[1].accounts.fee"?)`},
		{"dotted key", valid + "poll.batch_size: 10\n", `unknown key "poll.batch_size" in %s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "x.yaml", tt.yaml)
			_, err := Load(path, nil)
			want := strings.Replace(tt.want, "%s", path, 1)
			wantErrors(t, err, want)
			if !strings.Contains(err.Error(), "config: "+want) {
				t.Errorf("error %q does not read %q", err, "config: "+want)
			}
		})
	}
}

func TestRedisSentinelURL(t *testing.T) {
	t.Parallel()
	base := "database: {url: postgres://u@h/db}\nproviders: [{name: s, dialect: rest, base_url: 'http://x', token: t, accounts: {collection: C, lender: L, holding: H, fee: F}}]\n"
	for url, ok := range map[string]bool{
		"redis-sentinel://:pw@s1:26379,s2:26379/0?master=mymaster": true,
		"redis-sentinel://s1:26379/0":                              false,
		"redis://h:6379/0":                                         true,
		"memcached://h:1":                                          false,
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(base+"redis: {url: '"+url+"'}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, nil)
		if (err == nil) != ok {
			t.Errorf("redis.url %s: err %v, want ok=%v", url, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), ":pw@") {
			t.Errorf("the password leaked: %v", err)
		}
	}
}

// reconcile.schedule is read in time_zone unless it names its own zone.
func TestInTimeZone(t *testing.T) {
	t.Parallel()
	c := &Config{TimeZone: "Asia/Seoul"}
	for spec, want := range map[string]string{
		"0 30 0 * * *":          "CRON_TZ=Asia/Seoul 0 30 0 * * *",
		"@every 1h":             "CRON_TZ=Asia/Seoul @every 1h",
		"CRON_TZ=UTC 0 0 * * *": "CRON_TZ=UTC 0 0 * * *",
		"TZ=UTC 0 0 * * *":      "TZ=UTC 0 0 * * *",
	} {
		if got := c.InTimeZone(spec); got != want {
			t.Errorf("InTimeZone(%q) = %q, want %q", spec, got, want)
		}
	}
	sched, err := cronspec.Parse(c.InTimeZone(defaults().Reconcile.Schedule))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	if next := sched.Next(from); !next.Equal(time.Date(2026, 11, 25, 15, 30, 0, 0, time.UTC)) {
		t.Fatalf("default reconcile.schedule fires at %s after %s, want 00:30 in Seoul (15:30 UTC)", next, from)
	}
}

// http.prometheus_url takes an http(s) URL without credentials, query or
// fragment, from the file or SETTLE_HTTP_PROMETHEUS_URL.
func TestPrometheusURL(t *testing.T) {
	cfg, err := load(t, valid+"http: {prometheus_url: \"http://prometheus:9090\"}\n")
	if err != nil || cfg.HTTP.PrometheusURL != "http://prometheus:9090" {
		t.Fatalf("a good URL: %v, %+v", err, cfg)
	}
	cfg, err = load(t, valid, "SETTLE_HTTP_PROMETHEUS_URL=https://prom.internal/prometheus")
	if err != nil || cfg.HTTP.PrometheusURL != "https://prom.internal/prometheus" {
		t.Fatalf("from the environment: %v", err)
	}
	for bad, want := range map[string]string{
		"prometheus:9090":                      "must be an http or https URL",
		"ftp://prometheus:9090":                "must be an http or https URL",
		"http://admin:hunter2@prometheus:9090": "must not carry credentials",
		"http://prometheus:9090/?query=up":     "no query or fragment",
	} {
		_, err := load(t, valid+"http: {prometheus_url: \""+bad+"\"}\n")
		if err == nil || !strings.Contains(err.Error(), "http.prometheus_url") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", bad, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
