package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/notify/notifytest"
)

// Canaries: unique strings set as every secret; none may show up anywhere
// an operator, a log collector or Redis could see it.
const (
	canaryBankToken  = "CANARY-bank-token-5b9f0c"
	canarySlackToken = "xoxb-CANARY-slack-7d21ae"
	canaryDBPassword = "CANARY-db-password-3e88d1"
	canaryHookSecret = "CANARY-hook-secret-91aa4c"
)

var canaries = []string{canaryBankToken, canarySlackToken, canaryDBPassword, canaryHookSecret}

// TestSecretsNeverLeak runs a burst with failures and alerts while the bank
// token, the Slack token, the database password and the webhook secret are
// canary strings, then looks for them in the daemon's logs (at debug
// level), the Slack messages, every Redis key and value, the CLI's output
// and errors, and the effective configuration it prints.
func TestSecretsNeverLeak(t *testing.T) {
	logs := &testenv.Buffer{}
	slack := notifytest.NewServer(t, canarySlackToken, "/services/T0/B0/x")
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(app.Close)
	e := newEnvOpts(t, envOpts{
		bankToken: canaryBankToken, dbPassword: canaryDBPassword, log: logs,
		notify: fmt.Sprintf(`, slack: {bot_token: %q, channel: "#ops", api_url: %q}, customer_webhook: {url: %q, secret: %q}`,
			canarySlackToken, slack.APIURL(), app.URL, canaryHookSecret),
	})
	ctx := context.Background()
	s, cs := e.seeded(t, 20)
	for i, c := range cs {
		if i%4 == 0 { // some payouts fail: alerts go out
			if _, err := e.bank.SetState(ctx, c.Payout, banksim.StateFrozen, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Pay(ctx, c, 1_500_000); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.bank.SetFaults(ctx, banksim.Faults{ErrorRate: 0.2, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	e.startDaemon(t)
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		n, _ := e.db.StatusCounts(ctx)
		done := n["RUNNING"] == 0 && n["FAILED"]+n["SETTLED"] == 20 && n["FAILED"] >= 1
		return done && len(slack.Messages()) >= 1, fmt.Sprintf("statuses %v, %d Slack messages", n, len(slack.Messages()))
	})

	var seen []string
	seen = append(seen, logs.String())
	for _, m := range slack.Messages() {
		seen = append(seen, m.Text, m.Blocks)
	}
	seen = append(seen, redisContents(t, e.redis.Addr())...)
	clearSettleEnv(t)
	for _, args := range [][]string{
		{"config", "show"}, {"settlements", "list"}, {"settlements", "show", "1"}, {"verify", "--bank-journal"},
		{"audit", "list"}, {"customers", "show", cs[0].Ref}, {"reconcile"}, {"reconcile", "findings", "list"},
	} {
		out, msg, _ := runCLI(t, append(args, "--config", e.path)...)
		seen = append(seen, out, msg)
	}
	bad := writeConfig(t, strings.Replace(readFile(t, e.path), "max_in_flight", "max_in_fligt", 1)+"\nbogus: "+canaryBankToken+"\n")
	_, msg, _ := runCLI(t, "config", "check", "--config", bad)
	seen = append(seen, msg)
	all := strings.Join(seen, "\n")
	for _, c := range canaries {
		if i := strings.Index(all, c); i >= 0 {
			t.Errorf("secret %s leaked: …%s…", c, all[max(0, i-120):min(len(all), i+40)])
		}
	}
	if !strings.Contains(logs.String(), "settlement failed") || len(slack.Messages()) == 0 {
		t.Fatalf("the run produced no failures to look at; the test would prove nothing")
	}
}

// redisContents returns every key and value in Redis as text.
func redisContents(t *testing.T, addr string) []string {
	t.Helper()
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := append([]string(nil), keys...)
	for _, k := range keys {
		switch rc.Type(ctx, k).Val() {
		case "string":
			out = append(out, rc.Get(ctx, k).Val())
		case "hash":
			for f, v := range rc.HGetAll(ctx, k).Val() {
				out = append(out, f, v)
			}
		case "list":
			out = append(out, rc.LRange(ctx, k, 0, -1).Val()...)
		case "set":
			out = append(out, rc.SMembers(ctx, k).Val()...)
		case "zset":
			out = append(out, rc.ZRange(ctx, k, 0, -1).Val()...)
		}
	}
	if len(keys) == 0 {
		t.Fatal("Redis is empty; the test would prove nothing")
	}
	return out
}
