package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/store"
)

// as returns the env's config file with database.url connecting as a new
// LOGIN user, member of group, and the env with that config.
func (e *env) as(t *testing.T, group string) (string, *env) {
	t.Helper()
	url := testenv.LoginRole(t, e.cfg.Database.URL.Reveal(), group)
	body := strings.Replace(readFile(t, e.path), strconv.Quote(e.cfg.Database.URL.Reveal()), strconv.Quote(url), 1)
	path := filepath.Join(t.TempDir(), group+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *e.cfg
	cfg.Database.URL = config.Secret(url)
	as := *e
	as.path, as.cfg = path, &cfg
	return path, &as
}

// The daemon runs as a member of settle_daemon, and so do the operator
// commands that change state; a member of settle_operator reads and is told
// which role a change needs; only the migrating user changes the schema.
func TestLeastPrivilegeRoles(t *testing.T) {
	e := newEnv(t) // migrated by the server's superuser
	ctx := context.Background()
	daemonCfg, daemon := e.as(t, store.DaemonRole)
	operatorCfg, _ := e.as(t, store.OperatorRole)
	clearSettleEnv(t) // the CLI reads the test's config files, not the suite's server
	s, cs := e.seeded(t, 2)
	if _, err := e.bank.SetState(ctx, cs[0].Payout, banksim.StateFrozen, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := s.Pay(ctx, c, 2_500_000); err != nil {
			t.Fatal(err)
		}
	}
	daemon.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1, "SETTLED": 1})
	id := strconv.FormatInt(settlementIDWith(t, e, "FAILED"), 10)

	run := func(cfg string, want int, args ...string) string {
		t.Helper()
		out, msg, code := runCLI(t, append(args, "--config", cfg)...)
		if code != want {
			t.Fatalf("settle %s as %s: exit %d, want %d: %s %s", strings.Join(args, " "), filepath.Base(cfg), code, want, msg, out)
		}
		return out + msg
	}
	for _, read := range [][]string{{"settlements", "list"}, {"settlements", "show", id}, {"verify"}, {"audit", "list"},
		{"customers", "show", cs[0].Ref}, {"plan", "--customer", cs[0].Ref, "--amount", "1000000"}, {"migrate", "status"}} {
		run(operatorCfg, 0, read...)
	}
	if out := run(operatorCfg, 1, "replay", id, "--reason", "try"); !strings.Contains(out, "permission denied") || !strings.Contains(out, "need a member of settle_daemon") {
		t.Fatalf("replay as the operator role does not say which role it needs: %s", out)
	}
	if st, _ := e.db.StatusCounts(ctx); st["FAILED"] != 1 {
		t.Fatalf("a refused replay changed something: %v", st)
	}

	if _, err := e.bank.SetState(ctx, cs[0].Payout, banksim.StateActive, ""); err != nil {
		t.Fatal(err)
	}
	run(daemonCfg, 0, "replay", id, "--reason", "payout account unfrozen", "--actor", "ops-kim")
	e.waitSettled(t, map[string]int64{"SETTLED": 2})
	settletest.CheckMoney(t, e.db, e.bank, "sandbox", rest.AttemptKey)
	if out := run(daemonCfg, 0, "audit", "list"); !strings.Contains(out, "ops-kim") {
		t.Fatalf("the replay is not audited:\n%s", out)
	}

	if out := run(daemonCfg, 1, "migrate", "down", "--reason", "try"); !strings.Contains(out, "owns the schema") {
		t.Fatalf("migrate down as the daemon role: %s", out)
	}
	if ok, _, _, err := e.db.SchemaCurrent(ctx); !ok || err != nil {
		t.Fatalf("a refused migrate down changed the schema: %v", err)
	}
	if rows, err := e.db.ListAudit(ctx, "schema", 10); err != nil || len(rows) != 1 || rows[0].Outcome != store.AuditRefused {
		t.Fatalf("the refused migrate down is not audited as refused: %+v %v", rows, err)
	}
}

// The web role calls no bank: it starts without any provider secret and as
// a member of settle_operator (it only reads), and serves the status page,
// /metrics and /readyz. settle migrate needs neither the banks' secrets nor
// Redis. A role that calls the banks still refuses to start without them.
func TestWebRoleNeedsNoBankSecret(t *testing.T) {
	const pass = "ops-password-0123456789"
	e := newEnvOpts(t, envOpts{http: `, user: ops, password: "` + pass + `"`})
	path, _ := e.as(t, store.OperatorRole)
	clearSettleEnv(t) // the CLI reads the test's config files, not the suite's server
	noToken := writeConfig(t, strings.Replace(readFile(t, path), strconv.Quote(bankToken), `""`, 1))
	if _, msg, code := runCLI(t, "serve", "--role", "worker", "--config", noToken); code != 1 || !strings.Contains(msg, "has no credentials") {
		t.Fatalf("a worker without the bank's token: exit %d %q", code, msg)
	}
	var lines []string // the owner's database URL alone: no Redis, no token
	for _, l := range strings.Split(strings.Replace(readFile(t, e.path), strconv.Quote(bankToken), `""`, 1), "\n") {
		if !strings.HasPrefix(l, "redis:") {
			lines = append(lines, l)
		}
	}
	if out, msg, code := runCLI(t, "migrate", "status", "--config", writeConfig(t, strings.Join(lines, "\n"))); code != 0 {
		t.Fatalf("migrate status without Redis and the bank's token: exit %d %s %s", code, msg, out)
	}

	cfg, err := config.LoadFor(noToken, nil, config.Uses{NoBanks: true})
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), roleWeb, nil)
	if err != nil {
		t.Fatalf("the web role without the bank's token, as settle_operator: %v", err)
	}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(context.Background()) })
	for path, want := range map[string]string{"/": "Not shown by this process", "/metrics": "settle_open_settlements", "/readyz": "ok"} {
		req, _ := http.NewRequest("GET", "http://"+d.httpAddr()+path, nil)
		req.SetBasicAuth("ops", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s from the web role: %d, want 200 with %q:\n%.300s", path, resp.StatusCode, want, b)
		}
	}
}
