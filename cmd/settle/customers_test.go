package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/settle-dev/settle/internal/customercsv"
	"github.com/settle-dev/settle/store"
)

// The sample file imports; a file with a customer registered already, a
// currency the installation does not settle, an extra field and a repeated
// reference is refused with every one of them reported by line, and
// nothing imported; a header with an extra column is refused with the
// expected header. customers list filters and masks every account number.
func TestCustomersImportChecksEverythingThenList(t *testing.T) {
	e := newEnv(t)
	clearSettleEnv(t)
	ctx := context.Background()
	if out := e.cli(t, 0, "customers", "import", "../../configs/customers.sample.csv", "--reason", "sample"); !strings.Contains(out, "imported 3 customers") {
		t.Fatalf("import of the sample: %s", out)
	}

	header := strings.Join(customercsv.Columns, ",") + "\n"
	bad := writeConfig(t, header+
		"cust-0001,Kim Minji,sandbox,VA10000001,KRW,OWN20000001,Kim Minji,,0,0,0,0\n"+ // line 2: registered already
		"new-1,Jung,sandbox,VA30000001,USD,OWN30000001,Jung,,100000,0,0,0\n"+ // line 3: USD in a KRW installation
		"new-2,Yoon,sandbox,VA30000002,KRW,OWN30000002,Yoon,,0,0,0,0,note\n"+ // line 4: an extra field
		"new-3,Kang,sandbox,VA30000003,KRW,OWN30000003,Kang,,0,0,0,0\n"+ // line 5: good
		"new-3,Kang,sandbox,VA30000004,KRW,OWN30000004,Kang,,0,0,0,0\n"+ // line 6: repeats line 5
		"new-4,Han,sandbox,VA10000002,KRW,OWN30000005,Han,,0,0,0,0\n") // line 7: cust-0002's virtual account
	out := e.cli(t, 1, "customers", "import", bad, "--reason", "second batch")
	for _, want := range []string{
		`line 2: customer "cust-0001" exists already`,
		"line 3: currency USD: this installation settles KRW only",
		"line 4: 13 fields, but the header has 12 columns (" + strings.TrimSpace(header) + ")",
		`line 6: external_ref "new-3" repeats line 5`,
		"line 7: virtual account sandbox:****0002 belongs to customer cust-0002 already",
		"5 bad rows", "nothing was imported",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("import of a bad file does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "line 5:") {
		t.Errorf("the good row is reported:\n%s", out)
	}
	if _, err := e.db.GetCustomer(ctx, "new-3"); err == nil {
		t.Fatal("a refused import imported its good row")
	}
	extra := writeConfig(t, strings.TrimSpace(header)+",note\ncust-9,Kim,sandbox,VA9,KRW,OWN9,Kim,,0,0,0,0,hi\n")
	if out := e.cli(t, 1, "customers", "import", extra, "--reason", "x"); !strings.Contains(out, `line 1: unknown column "note": the header must name exactly the columns `+strings.TrimSpace(header)) {
		t.Errorf("a header with an extra column:\n%s", out)
	}
	if plan := e.cli(t, 0, "plan", "--customer", "cust-0001", "--amount", "100000"); !strings.Contains(plan, "deposit 100,000 KRW") {
		t.Errorf("plan of a sample customer:\n%s", plan)
	}

	e.cli(t, 0, "customers", "update", "cust-0002", "--status", "SUSPENDED", "--reason", "customer asked")
	list := e.cli(t, 0, "customers", "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "cust-0003") || !strings.HasPrefix(lines[3], "cust-0001") ||
		!strings.Contains(lines[3], "sandbox:****0001") || !strings.Contains(lines[3], "****0001") ||
		!strings.Contains(lines[3], "1,500,000 KRW") || !strings.Contains(lines[3], "500 + 10 bps") {
		t.Fatalf("customers list:\n%s", list)
	}
	for _, number := range []string{"VA1000000", "OWN2000000"} {
		if strings.Contains(list, number) {
			t.Errorf("customers list shows an account number unmasked (%s…):\n%s", number, list)
		}
	}
	if out := e.cli(t, 0, "customers", "list", "--status", "suspended"); !strings.Contains(out, "cust-0002") || strings.Count(out, "cust-") != 1 {
		t.Errorf("customers list --status suspended:\n%s", out)
	}
	if out := e.cli(t, 0, "customers", "list", "--provider", "elsewhere"); !strings.Contains(out, "(no customers)") {
		t.Errorf("customers list --provider elsewhere:\n%s", out)
	}
	var rows []store.CustomerView
	if err := json.Unmarshal([]byte(e.cli(t, 0, "customers", "list", "--limit", "1", "--json")), &rows); err != nil || len(rows) != 1 ||
		rows[0].Ref != "cust-0003" || rows[0].PayoutAccount != "****0003" || rows[0].VANumbers != "sandbox:****0003" {
		t.Fatalf("customers list --limit 1 --json: %+v %v", rows, err)
	}
	e.cli(t, 2, "customers", "list", "--status", "GONE")
	e.cli(t, 2, "customers", "list", "--limit", "0")
}
