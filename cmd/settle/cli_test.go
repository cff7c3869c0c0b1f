package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/store"
)

// runCLI runs settle in-process with args and returns its output, error
// text and exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return out.String(), msg, exitCodeQuiet(err)
}

func exitCodeQuiet(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	return 1
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodProvider = `
providers:
  - name: sandbox
    dialect: rest
    base_url: http://127.0.0.1:1
    token: canary-bank-token-0001
    accounts: {collection: C, lender: L, holding: H, fee: F}
`

func clearSettleEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SETTLE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestBadInputIsRefusedClearly(t *testing.T) {
	clearSettleEnv(t)
	const dbPass = "canary-db-password-0001"
	badKey := writeConfig(t, "database: {url: postgres://u:"+dbPass+"@127.0.0.1:1/x}\nredis: {url: redis://127.0.0.1:1/0}\npoll: {bach_size: 5}\n"+goodProvider)
	unreachable := writeConfig(t, "database: {url: \"postgres://u:"+dbPass+"@127.0.0.1:1/x?sslmode=disable&connect_timeout=2\"}\nredis: {url: redis://127.0.0.1:1/0}\n"+goodProvider)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"unknown config key", []string{"config", "check", "--config", badKey}, 1, []string{`poll.bach_size`}},
		{"unreachable database", []string{"serve", "--config", unreachable}, 1, []string{"not reachable", "SETTLE_DATABASE_URL"}},
		{"migrate with a bad action", []string{"migrate", "sideways", "--config", unreachable}, 2, []string{"up, down or status"}},
		{"show with a bad ID", []string{"settlements", "show", "12x", "--config", unreachable}, 2, []string{`"12x" is not a positive whole number`}},
		{"list with a bad status", []string{"settlements", "list", "--status", "DONE", "--config", unreachable}, 2, []string{"use one of RUNNING"}},
		{"unknown flag", []string{"settlements", "list", "--colour"}, 2, []string{"unknown flag"}},
		{"reconcile an unknown provider", []string{"reconcile", "--provider", "nope", "--config", unreachable}, 2, []string{`--provider "nope": no such provider; configured: `}},
		{"reconcile a malformed day", []string{"reconcile", "--date", "yesterday", "--config", unreachable}, 2, []string{"use YYYY-MM-DD"}},
		{"reconcile a day to come", []string{"reconcile", "--date", "2999-01-01", "--config", unreachable}, 2, []string{"is in the future"}},
		{"findings with a bad limit", []string{"reconcile", "findings", "list", "--limit", "0", "--config", unreachable}, 2, []string{"--limit 0: use 1..100000"}},
		{"banksim without a token", []string{"banksim"}, 2, []string{"SETTLE_BANKSIM_TOKEN"}},
		{"unknown command", []string{"settlemnts", "list"}, 2, []string{`unknown command "settlemnts"`, "did you mean settlements?"}},
		{"unknown subcommand", []string{"settlements", "lsit"}, 2, []string{`"lsit" for "settle settlements"`, "did you mean list?"}},
		{"replay of nothing", []string{"replay", "--reason", "r", "--config", unreachable}, 2, []string{"either a SETTLEMENT_ID or --failed-since"}},
		{"an actor with a space", []string{"cancel", "12", "--reason", "r", "--actor", "kim lee", "--config", unreachable}, 2, []string{`--actor: actor "kim lee": use letters, digits`, "nothing was changed"}},
		{"list COMPENSATING settlements", []string{"settlements", "list", "--status", "compensating", "--config", unreachable}, 1, []string{"not reachable"}},
		{"no configuration file", []string{"config", "check"}, 1, []string{"database.url is required", "pass --config FILE or set SETTLE_CONFIG"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, msg, code := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (err %q)", code, tt.code, msg)
			}
			for _, c := range tt.contains {
				if !strings.Contains(msg, c) {
					t.Errorf("error %q does not say %q", msg, c)
				}
			}
			for _, secret := range []string{dbPass, "canary-bank-token-0001"} {
				if strings.Contains(msg+out, secret) {
					t.Errorf("secret %q leaked: %q %q", secret, msg, out)
				}
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:80": true, "[::1]:9": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.5:80": false, "nonsense": false} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// serve against a migrated database but an unreachable Redis stops with one
// line that names Redis and what to do, and leaves nothing behind.
func TestServeRefusesUnreachableRedis(t *testing.T) {
	pg := testenv.PostgresURL(t)
	clearSettleEnv(t)
	path := writeConfig(t, "database: {url: \""+pg+"\"}\nredis: {url: redis://"+testenv.UnreachableRedis(t)+"/0}\n"+goodProvider)
	if _, msg, code := runCLI(t, "migrate", "up", "--config", path); code != 0 {
		t.Fatalf("migrate up: %s", msg)
	}
	_, msg, code := runCLI(t, "serve", "--config", path)
	if code != 1 || !strings.Contains(msg, "redis") || !strings.Contains(msg, "not reachable") || strings.Contains(msg, "\n") {
		t.Fatalf("serve with Redis down: exit %d %q", code, msg)
	}
	_, msg, code = runCLI(t, "migrate", "status", "--config", path)
	if code != 0 {
		t.Fatalf("migrate status: %s", msg)
	}
}

// settle serve reads its crash points (SETTLE_TEST_CRASH) before it
// connects to anything: a bad spec is refused, naming the points it takes.
func TestServeRefusesABadCrashSpec(t *testing.T) {
	clearSettleEnv(t)
	t.Setenv("SETTLE_TEST_CRASH", "after_lunch=1")
	path := writeConfig(t, "database: {url: \"postgres://u:p@127.0.0.1:1/x?sslmode=disable&connect_timeout=2\"}\nredis: {url: redis://127.0.0.1:1/0}\n"+goodProvider)
	_, msg, code := runCLI(t, "serve", "--config", path)
	if code != 1 || !strings.Contains(msg, `SETTLE_TEST_CRASH item "after_lunch=1"`) || !strings.Contains(msg, "after_claim") {
		t.Fatalf("serve with a bad crash spec: exit %d %q", code, msg)
	}
}

// Each role builds only its part; a wrong role is a usage error.
func TestServeRoles(t *testing.T) {
	e := newEnv(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for role, want := range map[string][3]bool{ // worker, scheduler, web
		roleAll: {true, true, true}, roleWorker: {true, false, false},
		roleScheduler: {false, true, false}, roleWeb: {false, false, true},
	} {
		d, err := newDaemon(context.Background(), e.cfg, logger, role, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := [3]bool{d.worker != nil, d.sched != nil, d.monitor != nil}
		if h := d.http; h.ReadHeaderTimeout <= 0 || h.ReadTimeout <= 0 || h.WriteTimeout <= 0 || h.IdleTimeout <= 0 {
			t.Errorf("role %s: the HTTP server lacks a timeout: header %s, read %s, write %s, idle %s",
				role, h.ReadHeaderTimeout, h.ReadTimeout, h.WriteTimeout, h.IdleTimeout)
		}
		d.stop(context.Background())
		if got != want {
			t.Errorf("role %s runs worker/scheduler/web %v, want %v", role, got, want)
		}
	}
	clearSettleEnv(t)
	if _, msg, code := runCLI(t, "serve", "--role", "everything", "--config", e.path); code != 2 || !strings.Contains(msg, "use one of") {
		t.Fatalf("serve --role everything: exit %d %q", code, msg)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// settle version names the build and the Go that made it, as text and as
// JSON.
func TestVersion(t *testing.T) {
	out, msg, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "settle ") || !strings.Contains(out, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) ||
		strings.Count(out, "\n") != 1 {
		t.Fatalf("settle version: exit %d %s\n%q", code, msg, out)
	}
	out, msg, code = runCLI(t, "version", "--json")
	var v buildVersion
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Go != runtime.Version() || v.Version == "" {
		t.Fatalf("settle version --json: exit %d %s %v\n%s", code, msg, err, out)
	}
	if s := (buildVersion{Version: "(devel)", Revision: "372d20ac424deb1e32889d73cdf46f33ba8bd6da", Modified: true, Go: "go1.26.8",
		Platform: "linux/amd64"}).String(); s != "settle (devel) 372d20ac424d+modified go1.26.8 linux/amd64" {
		t.Errorf("a build from a modified checkout reads %q", s)
	}
	if s := (buildVersion{Version: "v0.0.0-20261207060239-372d20ac424d+dirty", Revision: "372d20ac424deb1e32889d73cdf46f33ba8bd6da",
		Modified: true, Go: "go1.26.8", Platform: "linux/amd64"}).String(); s != "settle v0.0.0-20261207060239-372d20ac424d+dirty go1.26.8 linux/amd64" {
		t.Errorf("a build whose pseudo-version names its commit reads %q", s)
	}
}

// The main commands' help shows examples, and every example is a command
// line settle accepts: the command exists, its flags parse and its
// arguments fit.
func TestHelpExamplesParse(t *testing.T) {
	root := newRootCmd()
	for _, path := range []string{"serve", "replay", "settlements list", "settlements show", "verify", "reconcile",
		"customers import", "audit list", "migrate", "version"} {
		c, _, err := root.Find(strings.Fields(path))
		if err != nil || c.Example == "" {
			t.Errorf("settle %s --help shows no example (%v)", path, err)
		}
	}
	var examples []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for line := range strings.SplitSeq(c.Example, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				examples = append(examples, line)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, ex := range examples {
		words := shellWords(t, ex)
		if words[0] != "settle" {
			t.Errorf("example %q does not start with settle", ex)
			continue
		}
		c, rest, err := newRootCmd().Find(words[1:])
		if err != nil || !c.Runnable() {
			t.Errorf("example %q: no such command (%v)", ex, err)
			continue
		}
		if err := c.ParseFlags(rest); err != nil {
			t.Errorf("example %q: %v", ex, err)
			continue
		}
		if err := c.ValidateArgs(c.Flags().Args()); err != nil {
			t.Errorf("example %q: %v", ex, err)
		}
	}
	if len(examples) < 20 {
		t.Fatalf("only %d examples found", len(examples))
	}
}

// shellWords splits a command line into words as a shell does for the
// examples: on blanks, keeping "double-quoted" words whole.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	for i, part := range strings.Split(line, `"`) {
		if i%2 == 1 {
			words = append(words, part)
		} else {
			words = append(words, strings.Fields(part)...)
		}
	}
	if strings.Count(line, `"`)%2 != 0 {
		t.Fatalf("unbalanced quotes in %q", line)
	}
	return words
}

// config check and migrate status say the same as JSON: valid and the
// problems; each migration pending or applied, and when (the moment it
// was applied, whatever the server's zone, shown in time_zone).
func TestConfigCheckAndMigrateStatusJSON(t *testing.T) {
	pg := testenv.PostgresURL(t)
	clearSettleEnv(t)
	bad := writeConfig(t, "database: {url: \""+pg+"\"}\nredis: {url: redis://127.0.0.1:1/0}\npoll: {bach_size: 5}\n"+goodProvider)
	// Sessions in New York: goose records the time it applied a migration
	// as a timestamp without zone, in the session's.
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("timezone", "America/New_York")
	u.RawQuery = q.Encode()
	path := writeConfig(t, "database: {url: \""+u.String()+"\"}\nredis: {url: redis://127.0.0.1:1/0}\n"+goodProvider)
	var check configCheck
	out, msg, code := runCLI(t, "config", "check", "--json", "--config", path)
	if err := json.Unmarshal([]byte(out), &check); code != 0 || err != nil || !check.Valid || check.Problems == nil || len(check.Problems) != 0 {
		t.Fatalf("config check --json of a good file: exit %d %s %v\n%s", code, msg, err, out)
	}
	out, msg, code = runCLI(t, "config", "check", "--json", "--config", bad)
	if err := json.Unmarshal([]byte(out), &check); code != 1 || err != nil || check.Valid || len(check.Problems) != 1 ||
		!strings.Contains(check.Problems[0], "poll.bach_size") {
		t.Fatalf("config check --json of a bad file: exit %d %s %v\n%s", code, msg, err, out)
	}

	status := func() []store.Migration {
		t.Helper()
		out, msg, code := runCLI(t, "migrate", "status", "--json", "--config", path)
		var ms []store.Migration
		if err := json.Unmarshal([]byte(out), &ms); code != 0 || err != nil || len(ms) == 0 {
			t.Fatalf("migrate status --json: exit %d %s %v\n%s", code, msg, err, out)
		}
		return ms
	}
	for _, m := range status() {
		if m.Applied || m.AppliedAt != nil || m.File == "" || m.Version == 0 {
			t.Fatalf("before migrate up: %+v", m)
		}
	}
	if _, msg, code := runCLI(t, "migrate", "up", "--json", "--config", path); code != 2 || !strings.Contains(msg, "--json is for migrate down") {
		t.Fatalf("migrate up --json: exit %d %q", code, msg)
	}
	if _, msg, code := runCLI(t, "migrate", "up", "--config", path); code != 0 {
		t.Fatalf("migrate up: %s", msg)
	}
	for _, m := range status() {
		if !m.Applied || m.AppliedAt == nil || time.Since(*m.AppliedAt).Abs() > time.Minute {
			t.Fatalf("after migrate up: %+v, want applied within the minute", m)
		}
	}
	out, _, _ = runCLI(t, "migrate", "status", "--config", path)
	if !regexp.MustCompile(`(?m)^00001_\S+ +applied 20[0-9-]{8} [0-9:]{8} \+09:00$`).MatchString(out) {
		t.Fatalf("migrate status: want each migration applied at a time in Asia/Seoul:\n%s", out)
	}
}
