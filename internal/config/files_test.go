package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/settle-dev/settle/jobs/cronspec"
)

const (
	examplePath = "../../configs/settle.example.yaml"
	demoPath    = "../../configs/demo.yaml"
)

var demoEnv = []string{
	"SETTLE_DATABASE_URL=postgres://settle:" + dbSecret + "@127.0.0.1:5432/settle?sslmode=disable",
	"SETTLE_REDIS_URL=redis://127.0.0.1:6379/0",
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	cfg, err := Load(examplePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The example shows the defaults: loading it must give them.
	def := defaults()
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"redis.check_noeviction", cfg.Redis.CheckNoEviction, def.Redis.CheckNoEviction},
		{"database.max_open_conns", cfg.Database.MaxOpenConns, def.Database.MaxOpenConns},
		{"database.max_idle_conns", cfg.Database.MaxIdleConns, def.Database.MaxOpenConns},
		{"database.statement_timeout", cfg.Database.StatementTimeout, def.Database.StatementTimeout},
		{"database.idle_in_transaction_timeout", cfg.Database.IdleInTransactionTimeout, def.Database.IdleInTransactionTimeout},
		{"database.long_statement_timeout", cfg.Database.LongStatementTimeout, def.Database.LongStatementTimeout},
		{"scheduler", cfg.Scheduler, def.Scheduler},
		{"http", cfg.HTTP, def.HTTP},
		{"log", cfg.Log, def.Log},
		{"currency", cfg.Currency, def.Currency},
		{"poll", cfg.Poll, def.Poll},
		{"worker", cfg.Worker, def.Worker},
		{"relay", cfg.Relay, def.Relay},
		{"sweep", cfg.Sweep, def.Sweep},
		{"verify", cfg.Verify, def.Verify},
		{"reconcile", cfg.Reconcile, def.Reconcile},
		{"notify", cfg.Notify, def.Notify},
		{"providers[0].timeout", cfg.Providers[0].Timeout, def.Worker.BankTimeout},
		{"default_provider", cfg.DefaultProvider, cfg.Providers[0].Name},
		{"providers_check_at_start", cfg.ProvidersCheckAtStart, def.ProvidersCheckAtStart},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("example %s = %+v, but the default is %+v", c.key, c.got, c.want)
		}
	}
}

// TestExampleHasEveryKey checks that the example shows every key, each with a
// comment, so it stays the reference as keys are added.
func TestExampleHasEveryKey(t *testing.T) {
	t.Parallel()
	k := koanf.New(".")
	if err := k.Load(file.Provider(examplePath), yaml.Parser()); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	raw := k.Raw()
	for _, key := range keyPaths(configType, "") {
		if !has(raw, strings.Split(key, ".")) {
			t.Errorf("the example has no %s", key)
		}
	}
	item := raw["providers"].([]any)[0].(map[string]any)
	for _, key := range keyPaths(providerType, "") {
		if key == "token_file" { // shown commented out: token and token_file exclude each other
			if !bytes.Contains(text, []byte("# token_file: ")) {
				t.Errorf("the example does not show token_file")
			}
			continue
		}
		if !has(item, strings.Split(key, ".")) {
			t.Errorf("the example has no providers[0].%s", key)
		}
	}
	// Each key line is preceded by a comment line.
	lines := strings.Split(string(text), "\n")
	for i, line := range lines {
		trimmed := strings.TrimLeft(strings.TrimPrefix(strings.TrimSpace(line), "- "), " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasSuffix(trimmed, ":") {
			continue
		}
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("line %d %q has no comment above it", i+1, line)
		}
	}
}

func has(m map[string]any, path []string) bool {
	v, ok := m[path[0]]
	if !ok || len(path) == 1 {
		return ok
	}
	sub, ok := v.(map[string]any)
	return ok && has(sub, path[1:])
}

func TestDemoFile(t *testing.T) {
	t.Parallel()
	cfg, err := Load(demoPath, demoEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []ProviderConfig{{
		Name: "sandbox", Dialect: "rest", BaseURL: "http://127.0.0.1:8181", Token: "demo-sandbox-token",
		Timeout: defaults().Worker.BankTimeout, MaxInFlight: 64, BreakerFailures: 5, BreakerCooldown: 30 * time.Second, KeyRetention: 720 * time.Hour, TimeZone: "Asia/Seoul",
		Accounts: AccountsConfig{
			Collection: "SETTLE-COLLECTION", Lender: "SETTLE-LENDER", Holding: "SETTLE-HOLDING", Fee: "SETTLE-FEE",
		},
	}}
	if !reflect.DeepEqual(cfg.Providers, want) {
		t.Errorf("demo providers = %+v, want %+v", cfg.Providers, want)
	}
	if cfg.HTTP.Addr != "127.0.0.1:8080" || cfg.Log.Format != "text" || cfg.Poll.Schedule != "@every 5s" {
		t.Errorf("demo http/log/poll = %+v %+v %+v", cfg.HTTP, cfg.Log, cfg.Poll)
	}
	if cfg.Database.URL.Reveal() != strings.TrimPrefix(demoEnv[0], "SETTLE_DATABASE_URL=") {
		t.Errorf("demo database.url not taken from SETTLE_DATABASE_URL")
	}

	_, err = Load(demoPath, nil)
	wantErrors(t, err, "database.url is required", "redis.url is required")
}

func FuzzLoad(f *testing.F) {
	for _, path := range []string{examplePath, demoPath} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, seed := range []string{
		valid,
		"",
		"{",
		"- a\n- b\n",
		"~",
		"providers: [1, {name: 2}, [x], ~]\n",
		"providers: {a: 1}\n",
		"poll: {schedule: TZ=UTC, batch_size: 1e3}\n",
		"poll:\n  schedule: 'CRON_TZ=Nowhere/Never * * * * *'\n",
		"? [a, b]\n: c\n1: 2\n",
		"a.b.c: 1\na: {b: 2}\n",
		"worker: {lease: -1s, bank_timeout: 9999999999h}\n",
		"database: {url: {nested: true}}\nredis: {url: [1]}\n",
		"poll: {min_deposit: 18446744073709551615}\n",
		"providers:\n  - {name: sandbox, token_file: /dev/null}\n",
		"anchors: &a {x: *a}\n",
		"\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	env := []string{"SETTLE_PROVIDERS_SANDBOX_TOKEN=fuzz-s3cret", "SETTLE_DEV_X=1"}
	// One file for the whole run: the fuzz function is not run in parallel,
	// and a temporary directory per input makes fuzzing crawl.
	path := filepath.Join(f.TempDir(), "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, env)
		if err != nil {
			if strings.Contains(err.Error(), "fuzz-s3cret") && !bytes.Contains(data, []byte("fuzz-s3cret")) {
				t.Fatalf("error shows the secret: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load returned a config that does not validate: %v", err)
		}
		out, err := cfg.Redacted()
		if err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		if bytes.Contains(out, []byte("fuzz-s3cret")) {
			t.Fatalf("Redacted shows the secret:\n%s", out)
		}
	})
}

// Every cron spec the README and the example file show is one settle runs
// (jobs/cronspec), written in five fields, so that they read alike: the
// six-field form with seconds is accepted but never shown.
func TestDocumentedSchedulesAreFiveFields(t *testing.T) {
	t.Parallel()
	spec := regexp.MustCompile("[`\"]((?:CRON_TZ=\\S+ )?[0-9*][0-9*/,-]*(?: [0-9*?][0-9A-Za-z*/,?-]*){3,5})[`\"]")
	for _, path := range []string{"../../README.md", examplePath} {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		found := spec.FindAllStringSubmatch(string(text), -1)
		if len(found) < 3 {
			t.Fatalf("%s: only %d cron specs found: %q", path, len(found), found)
		}
		for _, m := range found {
			s := m[1]
			if err := cronspec.Check(s); err != nil {
				t.Errorf("%s: %q is not a schedule settle runs: %v", path, s, err)
			}
			fields := strings.Fields(s)
			if strings.HasPrefix(s, "CRON_TZ=") {
				fields = fields[1:]
			}
			if len(fields) != 5 {
				t.Errorf("%s: %q has %d fields, not five", path, s, len(fields))
			}
		}
	}
}
