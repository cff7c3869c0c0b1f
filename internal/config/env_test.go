package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	two := dbRedis + providers(provider(nil), provider(map[string]string{"name": "my-bank"}))
	tests := []struct {
		name  string
		yaml  string
		env   []string
		check func(*Config) bool
	}{
		{"database url", valid, []string{"SETTLE_DATABASE_URL=postgres://other@db2/settle"},
			func(c *Config) bool { return c.Database.URL == "postgres://other@db2/settle" }},
		{"redis url", valid, []string{"SETTLE_REDIS_URL=rediss://:pw@r2:6380/2"},
			func(c *Config) bool { return c.Redis.URL == "rediss://:pw@r2:6380/2" }},
		{"key with underscores", valid, []string{"SETTLE_POLL_BATCH_SIZE=50"},
			func(c *Config) bool { return c.Poll.BatchSize == 50 }},
		{"duration", valid, []string{"SETTLE_WORKER_LEASE=1m"},
			func(c *Config) bool { return c.Worker.Lease == time.Minute }},
		{"bool", valid, []string{"SETTLE_REDIS_CHECK_NOEVICTION=false"},
			func(c *Config) bool { return !c.Redis.CheckNoEviction }},
		{"int64", valid, []string{"SETTLE_POLL_MIN_DEPOSIT=10000"},
			func(c *Config) bool { return c.Poll.MinDeposit == 10000 }},
		{"top-level key", two, []string{"SETTLE_DEFAULT_PROVIDER=my-bank", "SETTLE_CURRENCY=USD"},
			func(c *Config) bool { return c.DefaultProvider == "my-bank" && c.Currency == "USD" }},
		{"overrides the file", valid + "log:\n  level: debug\n", []string{"SETTLE_LOG_LEVEL=warn"},
			func(c *Config) bool { return c.Log.Level == "warn" }},
		{"provider token", valid, []string{"SETTLE_PROVIDERS_SANDBOX_TOKEN=from-env"},
			func(c *Config) bool { return c.Providers[0].Token == "from-env" }},
		{"provider name with -", two, []string{"SETTLE_PROVIDERS_MY_BANK_TOKEN=t2", "SETTLE_PROVIDERS_MY_BANK_BASE_URL=https://bank.example/api"},
			func(c *Config) bool {
				return c.Providers[1].Token == "t2" && c.Providers[1].BaseURL == "https://bank.example/api" &&
					c.Providers[0].Token == tokenSecret
			}},
		{"provider token replaces token_file", dbRedis + providers(provider(map[string]string{"token": "-", "token_file": "/nonexistent/token"})),
			[]string{"SETTLE_PROVIDERS_SANDBOX_TOKEN=from-env"},
			func(c *Config) bool { return c.Providers[0].Token == "from-env" && c.Providers[0].TokenFile == "" }},
		{"empty value is unset", valid, []string{"SETTLE_POLL_BATCH_SIZE=", "SETTLE_NOT_A_KEY="},
			func(c *Config) bool { return c.Poll.BatchSize == 100 }},
		{"last value wins", valid, []string{"SETTLE_POLL_BATCH_SIZE=10", "SETTLE_POLL_BATCH_SIZE=20"},
			func(c *Config) bool { return c.Poll.BatchSize == 20 }},
		{"tooling variables allowed", valid, []string{
			"SETTLE_BANKSIM_TOKEN=x", "SETTLE_CONFIG=/etc/settle.yaml", "SETTLE_TEST_DATABASE_URL=x", "SETTLE_DEV_ANYTHING=1",
			"PATH=/usr/bin", "NOT_AN_ASSIGNMENT", "settle_poll_batch_size=3"},
			func(c *Config) bool { return c.Poll.BatchSize == 100 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tt.yaml, tt.env...)
			if err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
			if !tt.check(cfg) {
				t.Errorf("override not applied: %+v", *cfg)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"misspelt key", []string{"SETTLE_POLL_BACH_SIZE=5"},
			[]string{"config: unknown environment variable SETTLE_POLL_BACH_SIZE (did you mean SETTLE_POLL_BATCH_SIZE?)"}},
		{"not a key", []string{"SETTLE_COLOUR=blue"},
			[]string{"config: unknown environment variable SETTLE_COLOUR: SETTLE_ variables must name a config key"}},
		{"almost allowed", []string{"SETTLE_BANKSIM_TOKENS=x"}, []string{"unknown environment variable SETTLE_BANKSIM_TOKENS"}},
		{"bad value", []string{"SETTLE_WORKER_LEASE=5x"},
			[]string{`config: worker.lease "5x" (from SETTLE_WORKER_LEASE): not a duration such as 30s`}},
		{"bad int", []string{"SETTLE_POLL_BATCH_SIZE=lots"},
			[]string{`config: poll.batch_size "lots" (from SETTLE_POLL_BATCH_SIZE): not a whole number`}},
		{"invalid value", []string{"SETTLE_POLL_BATCH_SIZE=500"}, []string{"config: poll.batch_size 500: must be between 1 and 100"}},
		{"unknown provider", []string{"SETTLE_PROVIDERS_NOPE_TOKEN=" + tokenSecret},
			[]string{"config: environment variable SETTLE_PROVIDERS_NOPE_TOKEN: no provider in the file is named nope (providers: sandbox)"}},
		{"provider key not overridable", []string{"SETTLE_PROVIDERS_SANDBOX_TIMEOUT=1s"},
			[]string{"SETTLE_PROVIDERS_SANDBOX_TIMEOUT: only SETTLE_PROVIDERS_<NAME>_TOKEN, _CLIENT_SECRET and _BASE_URL"}},
		{"provider base_url invalid", []string{"SETTLE_PROVIDERS_SANDBOX_BASE_URL=ftp://bank"},
			[]string{`providers[0].base_url "ftp://bank": must be an absolute http:// or https:// URL`}},
		{"secret url invalid", []string{"SETTLE_DATABASE_URL=mysql://settle:" + dbSecret + "@db/x"},
			[]string{`database.url "mysql://settle:[redacted]@db/x": must be a URL`}},
		{"several", []string{"SETTLE_A=1", "SETTLE_B=2", "SETTLE_WORKER_LEASE=x"},
			[]string{"SETTLE_A", "SETTLE_B", "SETTLE_WORKER_LEASE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, valid, tt.env...)
			wantErrors(t, err, tt.want...)
		})
	}
}

func TestTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	abs := write("abs-token", tokenSecret+"\n")
	write("rel-token", tokenSecret+"\r\n")
	empty := write("empty-token", "\n")
	big := write("big-token", strings.Repeat("x", maxTokenFile+1))
	withFile := func(file string) string {
		return dbRedis + providers(provider(map[string]string{"token": "-", "token_file": file}))
	}
	tests := []struct {
		name string
		yaml string
		want string // an error, or "" for the token to be tokenSecret
	}{
		{"absolute path", withFile(abs), ""},
		{"relative to the config file", withFile("rel-token"), ""},
		{"both token and token_file", dbRedis + providers(provider(map[string]string{"token_file": abs})),
			"config: providers[0]: set token or token_file, not both"},
		{"missing file", withFile("missing-token"), `config: providers[0].token_file "missing-token": no such file or directory: fix the path (a relative one is read from the config file's directory)`},
		{"empty file", withFile(empty), `": is empty: write the secret into it`},
		{"file too big", withFile(big), `": is larger than 64 KiB: name the file that holds only the secret`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path, nil)
			if tt.want != "" {
				checkError(t, err)
				wantErrors(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Providers[0].Token.Reveal(); got != tokenSecret {
				t.Errorf("token = %q, want %q", got, tokenSecret)
			}
			out, err := cfg.Redacted()
			if err != nil {
				t.Fatal(err)
			}
			doc, err := yaml.Parser().Unmarshal(out)
			if err != nil {
				t.Fatal(err)
			}
			p := doc["providers"].([]any)[0].(map[string]any)
			if _, hasToken := p["token"]; p["token_file"] == nil || hasToken {
				t.Errorf("Redacted should show the token_file and not the token:\n%s", out)
			}
			assertNoSecret(t, "Redacted()", string(out))
		})
	}
}
