package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/provcheck"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
)

// variant writes e's configuration with old replaced by new and returns its
// path.
func (e *env) variant(t *testing.T, old, new string) string {
	t.Helper()
	body := readFile(t, e.path)
	if !strings.Contains(body, old) {
		t.Fatalf("configuration has no %q", old)
	}
	p := filepath.Join(t.TempDir(), "variant.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(body, old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// settle providers check against the sandbox bank over real HTTP: a good
// configuration passes with a line per check; a misspelt fee account and a
// wrong token each fail, exit 3, naming the key to fix; --json and
// --provider work.
func TestProvidersCheck(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	out, msg, code := runCLI(t, "providers", "check", "--config", e.path)
	if code != 0 || strings.Count(out, "\nok ") != 6 || !strings.HasPrefix(out, "ok ") {
		t.Fatalf("good configuration: exit %d %s\n%s", code, msg, out)
	}
	for _, key := range []string{"providers[0].token", "providers[0].time_zone", "providers[0].accounts.collection",
		"providers[0].accounts.lender", "providers[0].accounts.holding", "providers[0].accounts.fee"} {
		if !strings.Contains(out, " sandbox "+key) {
			t.Errorf("good configuration: no line for %s:\n%s", key, out)
		}
	}

	misspelt := e.variant(t, "fee: E2E-FEE", "fee: E2E-FEEE")
	out, msg, code = runCLI(t, "providers", "check", "--config", misspelt)
	if code != 3 || !strings.Contains(out, `FAILED      sandbox providers[0].accounts.fee "****FEEE": the bank has no such account in KRW`) ||
		strings.Count(out, "FAILED") != 1 || !strings.Contains(msg, "1 checks failed") {
		t.Fatalf("misspelt fee account: exit %d %s\n%s", code, msg, out)
	}

	wrongToken := e.variant(t, "token: \""+bankToken+"\"", "token: \"not-the-bank-token\"")
	out, msg, code = runCLI(t, "providers", "check", "--config", wrongToken)
	if code != 3 || !strings.Contains(out, "FAILED      sandbox providers[0].token: the bank refused the credentials") ||
		strings.Contains(out+msg, "not-the-bank-token") {
		t.Fatalf("wrong token: exit %d %s\n%s", code, msg, out)
	}

	out, msg, code = runCLI(t, "providers", "check", "--json", "--provider", "sandbox", "--config", misspelt)
	var rs []provcheck.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil || code != 3 {
		t.Fatalf("--json: exit %d %s %v\n%s", code, msg, err, out)
	}
	failed := 0
	for _, r := range rs {
		if r.Status == provcheck.Failed {
			failed++
			if r.Key != "providers[0].accounts.fee" || r.Account != "****FEEE" {
				t.Errorf("--json: failed %+v", r)
			}
		}
	}
	if failed != 1 {
		t.Errorf("--json: %d failed, want 1: %s", failed, out)
	}
	if _, msg, code = runCLI(t, "providers", "check", "--provider", "nope", "--config", e.path); code != 2 || !strings.Contains(msg, `--provider "nope": no such provider`) {
		t.Fatalf("--provider nope: exit %d %s", code, msg)
	}
}

// settle serve with a misspelt fee account refuses to start, naming the key,
// and moves no money although a deposit waits; a bank that is down at start
// is a warning, not a refusal; providers_check_at_start: false skips the
// check.
func TestServeRefusesAMisspeltEngineAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.paidCustomer(t, 1_000_000)
	clearSettleEnv(t)
	misspelt := e.variant(t, "fee: E2E-FEE", "fee: E2E-FEEE")
	_, msg, code := runCLI(t, "serve", "--config", misspelt)
	if code != 1 || !strings.Contains(msg, `provider sandbox: providers[0].accounts.fee "****FEEE": the bank has no such account in KRW`) ||
		!strings.Contains(msg, "nothing was started") {
		t.Fatalf("serve with a misspelt fee account: exit %d %q", code, msg)
	}
	if n, err := e.db.StatusCounts(ctx); err != nil || len(n) != 0 {
		t.Fatalf("settlements after a refused start: %v %v", n, err)
	}
	checkBalance(t, e.bank, c.VA, 1_000_000)
	checkBalance(t, e.bank, testAccounts.Collection, 0)

	// Off: the same configuration builds a daemon (nothing started here).
	cfg := e.cfg
	off := *cfg
	off.ProvidersCheckAtStart = false
	off.Providers = append(off.Providers[:0:0], cfg.Providers...)
	off.Providers[0].Accounts.Fee = "E2E-FEEE"
	d, err := newDaemon(ctx, &off, slog.New(slog.DiscardHandler), roleAll, nil)
	if err != nil {
		t.Fatalf("providers_check_at_start false: %v", err)
	}
	d.stop(ctx)

	// A bank that does not answer at start: a warning, and the daemon builds.
	down := *cfg
	down.Providers = append(down.Providers[:0:0], cfg.Providers...)
	down.Providers[0].BaseURL = "http://127.0.0.1:1"
	var log testenv.Buffer
	d, err = newDaemon(ctx, &down, slog.New(slog.NewJSONHandler(&log, nil)), roleAll, nil)
	if err != nil {
		t.Fatalf("bank down at start: %v", err)
	}
	d.stop(ctx)
	if !strings.Contains(log.String(), "provider not checked at start: its bank did not answer") {
		t.Fatalf("bank down at start: no warning in %s", log.String())
	}
}

// A fee account misspelt in the configuration, with the check at start
// off: the settlement fails at FEE with no_such_account, and its alert, as
// stored and as the notifier words it, names providers[0].accounts.fee and
// the command that checks it, not the customer.
func TestFeeRefusalAlertNamesTheConfigKey(t *testing.T) {
	var log testenv.Buffer
	e := newEnvOpts(t, envOpts{log: &log})
	e.paidCustomer(t, 3_000_000)
	e.cfg.ProvidersCheckAtStart = false
	e.cfg.Providers[0].Accounts.Fee = "E2E-FEEE"
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1})
	id := settlementID(t, e)

	summary, action, key, reason := e.failedAlert(t, id)
	if key != "providers[0].accounts.fee" || !strings.Contains(summary, "failed at FEE") ||
		!strings.Contains(summary, "no_such_account at the engine's own account providers[0].accounts.fee") ||
		action != "settle providers check --provider sandbox" || !strings.Contains(reason, "fix providers[0].accounts.fee") {
		t.Fatalf("alert: key %q summary %q action %q; failure reason %q", key, summary, action, reason)
	}
	want := fmt.Sprintf("Settlement %d failed at FEE: no such account at providers[0].accounts.fee", id)
	testenv.Eventually(t, time.Minute, func() (bool, string) { // delivered to the log notifier, worded
		return strings.Contains(log.String(), want), "no delivered alert says " + want
	})
}

// A customer's payout account frozen at the bank: the settlement fails at
// PAYOUT, and neither its failure reason nor its alert blames the engine's
// collection account, the PAYOUT's source; the alert, as the notifier words
// it, names the customer's payout account, masked, and tells the operator to
// have the customer lift the freeze or give a new payout account.
func TestFrozenPayoutAlertBlamesTheCustomer(t *testing.T) {
	var log testenv.Buffer
	e := newEnvOpts(t, envOpts{log: &log})
	c, id := e.frozenPayoutFailed(t, 3_000_000)

	summary, action, key, reason := e.failedAlert(t, id)
	if key != "" || !strings.Contains(summary, "failed at PAYOUT") || !strings.Contains(summary, "account_frozen") ||
		strings.Contains(summary+reason, "engine's own") || strings.Contains(summary+reason, "accounts.collection") ||
		action != fmt.Sprintf("settle settlements show %d", id) {
		t.Fatalf("alert: key %q summary %q action %q; failure reason %q", key, summary, action, reason)
	}
	masked := pipeline.AccountNumber(c.Payout).Masked()
	want := []string{
		fmt.Sprintf("Settlement %d failed at PAYOUT: account frozen", id),
		"account " + masked + " (the customer's payout account) is frozen",
		"Have the customer get the freeze lifted, or take a new payout account with `settle customers update " + c.Ref,
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) { // delivered to the log notifier, worded
		for _, w := range want {
			if !strings.Contains(log.String(), w) {
				return false, "no delivered alert says " + w
			}
		}
		return true, ""
	})
	if strings.Contains(log.String(), c.Payout) || strings.Contains(log.String(), "accounts.collection") {
		t.Fatalf("the log shows the payout account unmasked or blames the collection account:\n%s", log.String())
	}
}
