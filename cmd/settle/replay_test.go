package main

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/store"
)

// setFeeAccount rewrites the provider's fee account in the env's
// configuration file and reloads it.
func (e *env) setFeeAccount(t *testing.T, from, to string) {
	t.Helper()
	body := readFile(t, e.path)
	if !strings.Contains(body, "fee: "+from+"}") {
		t.Fatalf("the configuration has no fee account %s:\n%s", from, body)
	}
	if err := os.WriteFile(e.path, []byte(strings.Replace(body, "fee: "+from+"}", "fee: "+to+"}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(e.path, nil)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	e.cfg = cfg
}

// appendConfig adds lines to the configuration and loads it again.
func (e *env) appendConfig(t *testing.T, lines string) {
	t.Helper()
	if err := os.WriteFile(e.path, []byte(readFile(t, e.path)+lines), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(e.path, nil)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	e.cfg = cfg
}

// The lender's first setup: the fee account is misspelt in the
// configuration, so the bank refuses the FEE leg (no such account) and the
// settlement FAILS after its SWEEP. Once the configuration is fixed, a
// replay re-reads the fee account: the dry run shows old → new, the replay
// sends a new key to the right account, the settlement settles, every
// transfer is once at the bank, and the audit row records the change.
func TestReplayAfterFixingAMisspeltFeeAccount(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	s, cs := e.seeded(t, 1)
	const typo = "E2E-FFE"
	e.setFeeAccount(t, testAccounts.Fee, typo)
	// settle serve checks the engine accounts at start and would refuse
	// this one (TestServeRefusesAMisspeltEngineAccount); an installation
	// that turned the check off, or whose account the bank closed after
	// the start, meets the refusal at the FEE leg instead.
	e.appendConfig(t, "providers_check_at_start: false\n")
	if err := s.Pay(ctx, cs[0], 3_000_000); err != nil {
		t.Fatal(err)
	}
	e.startDaemon(t)
	e.waitSettled(t, map[string]int64{"FAILED": 1})
	id := settlementID(t, e)
	var feeStep int64
	var code string
	if err := e.db.SQL().QueryRow(`
		SELECT st.id, t.bank_code FROM steps st JOIN transfers t ON t.step_id = st.id
		 WHERE st.settlement_id = $1 AND st.kind = 'FEE' AND st.status = 'FAILED' AND t.status = 'REFUSED'`, id).Scan(&feeStep, &code); err != nil {
		t.Fatalf("the FEE step was not refused: %v", err)
	}

	e.setFeeAccount(t, typo, testAccounts.Fee)
	dry := e.cli(t, 0, "replay", strconv.FormatInt(id, 10), "--dry-run", "--reason", "fee account fixed in the configuration")
	for _, want := range []string{"dry run", "accounts.fee", typo + " → " + testAccounts.Fee, "new key"} {
		if !strings.Contains(dry, want) {
			t.Errorf("the dry run does not say %q:\n%s", want, dry)
		}
	}
	// The dry run of many lists each settlement in a line, with what the
	// dry run of one says; off a terminal there is no progress bar.
	many := e.cli(t, 0, "replay", "--failed-since", "1h", "--dry-run", "--reason", "fee account fixed in the configuration")
	line := regexp.MustCompile(`(?m)^` + strconv.FormatInt(id, 10) + ` +` + regexp.QuoteMeta(cs[0].Ref) +
		` +FEE FAILED +bank refused the transfer: no_such_account.* +step [0-9]+ \(FEE, seq [0-9]+\): to accounts\.fee ` + typo + ` → ` +
		testAccounts.Fee + `; the bank refused attempt 1 \(no_such_account\): attempt 2 with the new key settle-s[0-9]+-a2 will be sent$`)
	if !line.MatchString(many) || !strings.Contains(many, "would replay 1 of 1 FAILED settlements since ") || strings.Contains(many, "\r") {
		t.Errorf("replay --failed-since --dry-run: want the line %s and the count, no progress bar:\n%q", line, many)
	}
	// The same with --json: one object, the settlement with its outcome.
	var manyJSON struct {
		DryRun      bool `json:"dry_run"`
		Failed      int  `json:"failed"`
		Replayed    int  `json:"replayed"`
		Settlements []struct {
			ID         int64  `json:"id"`
			Customer   string `json:"customer"`
			FailedStep string `json:"failed_step"`
			Outcome    string `json:"outcome"`
			Detail     string `json:"detail"`
		} `json:"settlements"`
	}
	raw := e.cli(t, 0, "replay", "--failed-since", "1h", "--dry-run", "--json", "--reason", "fee account fixed in the configuration")
	if err := json.Unmarshal([]byte(raw), &manyJSON); err != nil || !manyJSON.DryRun || manyJSON.Failed != 1 || manyJSON.Replayed != 1 ||
		len(manyJSON.Settlements) != 1 || manyJSON.Settlements[0].ID != id || manyJSON.Settlements[0].Customer != cs[0].Ref ||
		manyJSON.Settlements[0].FailedStep != "FEE FAILED" || manyJSON.Settlements[0].Outcome != "would_replay" ||
		!strings.Contains(manyJSON.Settlements[0].Detail, typo+" → "+testAccounts.Fee) {
		t.Errorf("replay --failed-since --dry-run --json: %+v (%v)\n%s", manyJSON, err, raw)
	}
	var to string
	if err := e.db.SQL().QueryRow(`SELECT to_account FROM steps WHERE id = $1`, feeStep).Scan(&to); err != nil || to != typo {
		t.Fatalf("a dry run changed the FEE step's account to %q (%v)", to, err)
	}

	e.cli(t, 0, "replay", strconv.FormatInt(id, 10), "--reason", "fee account fixed in the configuration", "--actor", "ops-kim")
	e.waitSettled(t, map[string]int64{"SETTLED": 1})
	var keys []string
	rows, err := e.db.SQL().Query(`SELECT idempotency_key || ':' || status FROM transfers WHERE step_id = $1 ORDER BY attempt`, feeStep)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if want := []string{"settle-s" + strconv.FormatInt(feeStep, 10) + "-a1:REFUSED", "settle-s" + strconv.FormatInt(feeStep, 10) + "-a2:SUCCEEDED"}; strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("FEE attempts %v, want %v", keys, want)
	}
	settletest.CheckMoney(t, e.db, e.bank, "sandbox", rest.AttemptKey)
	d, err := e.db.GetSettlement(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	checkBalance(t, e.bank, testAccounts.Fee, d.Fee)
	if out := e.cli(t, 0, "verify", "--bank-journal"); !strings.Contains(out, "all invariants hold") {
		t.Fatalf("verify after the replay:\n%s", out)
	}

	audit, err := e.db.ListAudit(ctx, "settlement:"+strconv.FormatInt(id, 10), 10)
	if err != nil || len(audit) != 1 {
		t.Fatalf("audit rows %+v (%v), want the replay's", audit, err)
	}
	if a := audit[0]; a.Outcome != store.AuditApplied || a.Actor != "ops-kim" ||
		!strings.Contains(feeTo(t, a.Before, feeStep), typo) || !strings.Contains(feeTo(t, a.After, feeStep), testAccounts.Fee) ||
		strings.Contains(feeTo(t, a.After, feeStep), typo) {
		t.Fatalf("the audit row does not record the fee account's change:\nbefore %s\nafter  %s", a.Before, a.After)
	}
}

// feeTo is the destination an audit state (before or after) records for
// the step.
func feeTo(t *testing.T, state json.RawMessage, step int64) string {
	t.Helper()
	var s struct {
		Steps []struct {
			ID int64  `json:"id"`
			To string `json:"to"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(state, &s); err != nil {
		t.Fatalf("audit state %s: %v", state, err)
	}
	for _, st := range s.Steps {
		if st.ID == step {
			return st.To
		}
	}
	return ""
}
