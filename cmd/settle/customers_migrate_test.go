package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// twoBanks is an installation with two providers, each its own sandbox
// bank: "legacy" speaks openbanking (one account per balance call),
// "modern" speaks rest.
type twoBanks struct {
	*env
	legacy, modern *banksim.Client
}

// legacyKeys are more keys of the legacy provider ("rate_limit_rps: 50, "),
// extra more top-level configuration.
func newTwoBanks(t *testing.T, legacyKeys, extra string) *twoBanks {
	t.Helper()
	pg := testenv.PostgresURL(t)
	redis := testenv.StartRedis(t)
	sims := make([]*httptest.Server, 2)
	for i := range sims {
		sims[i] = httptest.NewServer(banksim.New(banksim.Options{Token: bankToken}))
		t.Cleanup(sims[i].Close)
	}
	a := testAccounts
	path := filepath.Join(t.TempDir(), "settle.yaml")
	yaml := fmt.Sprintf(`
database: {url: %q, max_open_conns: 40}
redis: {url: %q}
http: {addr: "127.0.0.1:0", token: "polling-tests-token-0001"}
log: {level: warn, format: text}
time_zone: UTC
poll: {schedule: "@every 1s", idle_every: 3}
relay: {schedule: "@every 1s"}
sweep: {schedule: "@every 1s"}
worker: {concurrency: 64, lease: 6s, bank_timeout: 2s, shutdown_timeout: 4s, retry_base: 100ms, retry_max: 1s}
providers:
  - {name: legacy, dialect: openbanking, base_url: %q, token: %q, breaker_cooldown: 1s, %s
     accounts: {collection: %s, lender: %s, holding: %s, fee: %s}}
  - {name: modern, dialect: rest, base_url: %q, token: %q, breaker_cooldown: 1s,
     accounts: {collection: %s, lender: %s, holding: %s, fee: %s}}
notify: {delivery_schedule: "@every 1s"}
%s`, pg, redis.URL(), sims[0].URL, bankToken, legacyKeys, a.Collection, a.Lender, a.Holding, a.Fee,
		sims[1].URL, bankToken, a.Collection, a.Lender, a.Holding, a.Fee, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	clearSettleEnv(t) // the CLI reads this file, not the suite's servers
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	ctx := context.Background()
	db, err := openDB(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "up", io.Discard); err != nil {
		t.Fatal(err)
	}
	legacy, modern := banksim.NewClient(sims[0].URL, bankToken, nil), banksim.NewClient(sims[1].URL, bankToken, nil)
	for _, c := range []*banksim.Client{legacy, modern} {
		for _, id := range []string{a.Collection, a.Lender, a.Holding, a.Fee} {
			openAccount(t, c, id)
		}
	}
	return &twoBanks{env: &env{path: path, cfg: cfg, db: db, bank: legacy, redis: redis}, legacy: legacy, modern: modern}
}

func openAccount(t *testing.T, c *banksim.Client, id string) {
	t.Helper()
	if _, err := c.CreateAccount(context.Background(), banksim.Account{ID: id, HolderName: "Holder " + id, Currency: "KRW"}); err != nil {
		t.Fatal(err)
	}
}

// migrationCustomers is how many customers TestMigrationWhileDepositsArrive
// moves: SETTLE_TEST_MIGRATE_CUSTOMERS, default 200 (make test); the full
// run is 1000.
func migrationCustomers() int {
	if n, err := strconv.Atoi(os.Getenv("SETTLE_TEST_MIGRATE_CUSTOMERS")); err == nil && n > 0 {
		return n
	}
	return 200
}

// Customers move from the legacy provider to the modern one in batches
// while salaries keep arriving, into the old VAs and, once a customer has
// moved, into both: every deposit is settled exactly once, each through the
// provider of the VA it landed in, and both banks' journals match the
// engine's records.
func TestMigrationWhileDepositsArrive(t *testing.T) {
	n := migrationCustomers()
	e := newTwoBanks(t, "", "")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	today := time.Now().UTC().Day()
	for i := range n {
		ref, va, own := fmt.Sprintf("mig-%05d", i), fmt.Sprintf("VA%05d", i), fmt.Sprintf("OWN%05d", i)
		openAccount(t, e.legacy, va)
		openAccount(t, e.modern, "N"+va) // the new bank opened it: the command records it by the rule N{old}
		openAccount(t, e.legacy, own)    // the payout account, reachable from both banks
		openAccount(t, e.modern, own)
		ob := pipeline.Obligations{Outstanding: int64(rng.IntN(20)) * 50_000, FeeFixed: 500, FeeBPS: int64(rng.IntN(30))}
		if _, err := e.db.CreateCustomer(ctx, store.NewCustomer{
			ExternalRef: ref, HolderName: "Holder " + own, Payout: pipeline.Payee{Account: own, Holder: "Holder " + own},
			Provider: "legacy", VANumber: va, Currency: "KRW", Obligations: ob,
		}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // half are near payday, polled every cycle; the others every 3rd
			if _, err := e.db.SetCustomerPayday(ctx, ref, store.PaydayPatch{Payday: &today}, store.Audit{Actor: "t", Reason: "t"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.startDaemon(t)

	var mu sync.Mutex
	moved := make([]bool, n)
	deposited := map[string]int64{}
	var depositCount, intoOld, intoNew int
	pay := func(i int) {
		mu.Lock()
		va, client := fmt.Sprintf("VA%05d", i), e.legacy
		if moved[i] && rng.IntN(10) < 7 {
			va, client = "N"+va, e.modern
			intoNew++
		} else if moved[i] {
			intoOld++ // the employer still pays the old VA
		}
		amount := int64(rng.IntN(300)+20) * 10_000
		deposited[fmt.Sprintf("mig-%05d", i)] += amount
		depositCount++
		mu.Unlock()
		if _, err := client.Credit(ctx, va, amount, "ACME PAYROLL"); err != nil {
			t.Error(err)
		}
	}
	for i := range n { // payday: everyone is paid into the old VA
		pay(i)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt)
	wg.Go(func() { // more deposits keep arriving during the migration
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				mu.Lock()
				i := rng.IntN(n)
				mu.Unlock()
				pay(i)
			}
		}
	})

	batch := max(n/5, 1)
	var runs, skippedOpen int
	testenv.Eventually(t, 4*time.Minute, func() (bool, string) {
		runs++
		out := e.cli(t, 0, "customers", "migrate", "--to", "modern", "--batch", strconv.Itoa(batch),
			"--va-template", "N{old}", "--reason", "move to the modern bank", "--json")
		var res store.MigrateOutcome
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("migrate --json: %v: %s", err, out)
		}
		mu.Lock()
		for _, m := range res.Moved {
			i, _ := strconv.Atoi(strings.TrimPrefix(m.Ref, "mig-"))
			moved[i] = true
		}
		mu.Unlock()
		for _, s := range res.Skipped {
			if !strings.Contains(s.Reason, "is RUNNING") {
				t.Fatalf("customer %s skipped for another reason than an open settlement: %s", s.Ref, s.Reason)
			}
			skippedOpen++
		}
		if len(res.Moved) > batch {
			t.Fatalf("a batch of %d moved %d", batch, len(res.Moved))
		}
		return res.Remaining == 0, fmt.Sprintf("%d customers still to move", res.Remaining)
	})
	time.Sleep(time.Second) // deposits go on a little after the last batch
	halt()
	t.Logf("%d customers moved in %d runs of --batch %d (%d skips for an open settlement); %d deposits, %d into old VAs after the move, %d into new VAs",
		n, runs, batch, skippedOpen, depositCount, intoOld, intoNew)

	// Every deposit is settled once: per customer, the settled amounts add
	// up to what was deposited, and nothing is left open or failed.
	testenv.Eventually(t, 4*time.Minute, func() (bool, string) {
		got, err := settledPerCustomer(e.db)
		if err != nil {
			return false, err.Error()
		}
		for ref, want := range deposited {
			if got[ref] != want {
				return false, fmt.Sprintf("%s: settled %d of %d deposited", ref, got[ref], want)
			}
		}
		counts, err := e.db.StatusCounts(ctx)
		return err == nil && counts["RUNNING"] == 0 && counts["FAILED"] == 0, fmt.Sprintf("settlements by status %v", counts)
	})
	// Each bank applied exactly the transfers the engine recorded at its
	// provider, once.
	legacyN := settletest.CheckMoney(t, e.db, e.legacy, "legacy", openbanking.AttemptKey)
	modernN := settletest.CheckMoney(t, e.db, e.modern, "modern", rest.AttemptKey)
	for i := range n {
		checkBalance(t, e.legacy, fmt.Sprintf("VA%05d", i), 0)
		checkBalance(t, e.modern, fmt.Sprintf("NVA%05d", i), 0)
	}
	for _, c := range []*banksim.Client{e.legacy, e.modern} {
		checkBalance(t, c, testAccounts.Collection, 0)
	}
	var afterMove, total int
	if err := e.db.SQL().QueryRow(`
		SELECT count(*) FILTER (WHERE s.provider = 'legacy' AND c.provider = 'modern' AND s.created_at > va.superseded_at), count(*)
		  FROM settlements s JOIN customers c ON c.id = s.customer_id JOIN virtual_accounts va ON va.id = s.va_id`).Scan(&afterMove, &total); err != nil {
		t.Fatal(err)
	}
	if afterMove == 0 {
		t.Error("no deposit into an old VA was settled after its customer moved; the test did not test that")
	}
	var mismatched int
	if err := e.db.SQL().QueryRow(`
		SELECT count(*) FROM steps st JOIN settlements s ON s.id = st.settlement_id
		  JOIN virtual_accounts va ON va.id = s.va_id WHERE st.provider <> va.provider OR s.provider <> va.provider`).Scan(&mismatched); err != nil || mismatched != 0 {
		t.Errorf("%d steps moved money at another provider than their VA's (%v)", mismatched, err)
	}
	var audits int
	if err := e.db.SQL().QueryRow(`SELECT count(*) FROM audit_log WHERE command = 'customers migrate' AND outcome = 'applied'`).Scan(&audits); err != nil || audits != n {
		t.Errorf("%d audit rows for the migration, want one per customer (%d)", audits, n)
	}
	t.Logf("%d settlements (%d from an old VA after the move); %d transfers at legacy, %d at modern", total, afterMove, legacyN, modernN)
}

func settledPerCustomer(db *store.DB) (map[string]int64, error) {
	rows, err := db.SQL().Query(`
		SELECT c.external_ref, sum(s.amount) FROM settlements s JOIN customers c ON c.id = s.customer_id
		 WHERE s.status = 'SETTLED' GROUP BY c.external_ref`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var ref string
		var sum int64
		if err := rows.Scan(&ref, &sum); err != nil {
			return nil, err
		}
		out[ref] = sum
	}
	return out, rows.Err()
}

// The command's refusals and its dry run.
func TestCustomersMigrateCommand(t *testing.T) {
	e := newTwoBanks(t, "", "")
	ctx := context.Background()
	for i := range 3 {
		va, own := fmt.Sprintf("VA%05d", i), fmt.Sprintf("OWN%05d", i)
		openAccount(t, e.legacy, va)
		if i != 2 {
			openAccount(t, e.modern, "N"+va)
		}
		if _, err := e.db.CreateCustomer(ctx, store.NewCustomer{
			ExternalRef: fmt.Sprintf("cm-%d", i), HolderName: "H", Payout: pipeline.Payee{Account: own, Holder: "H"},
			Provider: "legacy", VANumber: va, Currency: "KRW",
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--to", "modern", "--va-template", "N{old}"}, 2, "--reason is required"},
		{[]string{"--to", "modern", "--reason", "r"}, 2, "give --va-map"},
		{[]string{"--to", "modern", "--reason", "r", "--va-template", "FIXED"}, 2, "names no customer"},
		{[]string{"--to", "nowhere", "--reason", "r", "--va-template", "N{old}"}, 2, "name configured providers (legacy, modern)"},
		{[]string{"--to", "modern", "--reason", "r", "--va-template", "N{old}", "--dry-run"}, 0, "dry run: would move 2 customers to modern, skipped 1; 3 still to move"},
		{[]string{"--to", "modern", "--reason", "r", "--va-template", "N{old}", "--batch", "1"}, 0, "moved 1 customers to modern, skipped 0; 2 still to move"},
	} {
		out := e.cli(t, c.code, append([]string{"customers", "migrate"}, c.args...)...)
		if !strings.Contains(out, c.want) {
			t.Errorf("migrate %v: %q does not say %q", c.args, out, c.want)
		}
	}
	out := e.cli(t, 0, "customers", "migrate", "--to", "modern", "--reason", "r", "--va-template", "N{old}")
	if !strings.Contains(out, "skipped cm-2: virtual account ****0002 is not open at modern") || strings.Contains(out, "VA00002") {
		t.Errorf("a VA the bank does not know: %s", out)
	}
	mapFile := filepath.Join(t.TempDir(), "map.csv")
	if err := os.WriteFile(mapFile, []byte("external_ref,va_number\ncm-2,NVA00002\ncm-2,X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := e.cli(t, 2, "customers", "migrate", "--to", "modern", "--reason", "r", "--va-map", mapFile); !strings.Contains(out, ":3: cm-2 or its number is listed twice") {
		t.Errorf("a bad map: %s", out)
	}
	if err := os.WriteFile(mapFile, []byte("external_ref,va_number\ncm-2,NVA00002\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openAccount(t, e.modern, "NVA00002")
	if out := e.cli(t, 0, "customers", "migrate", "--to", "modern", "--reason", "r", "--va-map", mapFile); !strings.Contains(out, "moved cm-2 from legacy to modern") {
		t.Errorf("with a map: %s", out)
	}
	if out := e.cli(t, 0, "customers", "payday", "--employer", "ACME", "--day", "25", "--reason", "r"); !strings.Contains(out, "employer ACME pays on day 25") {
		t.Errorf("employer payday: %s", out)
	}
	if out := e.cli(t, 0, "customers", "payday", "cm-1", "--employer", "ACME", "--reason", "r"); !strings.Contains(out, "payday 25 (employer)") {
		t.Errorf("customer's employer: %s", out)
	}
	if out := e.cli(t, 0, "customers", "payday", "cm-0"); !strings.Contains(out, "payday unknown") {
		t.Errorf("unknown payday: %s", out)
	}
}
