package customercsv

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/settle-dev/settle/internal/settletest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

var opts = Options{Providers: []string{"sandbox"}, Currency: "KRW"}

const header = "external_ref,holder_name,provider,va_number,currency,payout_account,payout_holder_name,payout_bank_code,outstanding,hold,fee_fixed,fee_bps\n"

func TestParseGoodFile(t *testing.T) {
	t.Parallel()
	in := header +
		"c-1,Kim Minji,sandbox,VA0001,KRW,OWN0001,Kim Minji,097,\"1,500,000\",0,500,10\n" +
		"c-2,Lee Jun,sandbox,VA0002,KRW,OWN0002,Lee Jun,,0,20000,0,0\n"
	f := Parse(strings.NewReader(in), opts)
	if len(f.Bad) != 0 || len(f.Customers) != 2 || f.Lines[0] != 2 || f.Lines[1] != 3 {
		t.Fatalf("customers %d at lines %v, errors %v", len(f.Customers), f.Lines, f.Bad)
	}
	if c := f.Customers[0]; c.ExternalRef != "c-1" || c.Obligations.Outstanding != 1_500_000 || c.Obligations.FeeBPS != 10 || c.PayoutBank != "097" {
		t.Fatalf("row 1 = %+v", c)
	}
}

// checkBad fails the test unless bad names exactly the lines of want, each
// message saying every text listed for its line.
func checkBad(t *testing.T, bad []RowError, want map[int][]string) {
	t.Helper()
	seen := map[int]bool{}
	for _, b := range bad {
		ws, ok := want[b.Line]
		if !ok {
			t.Errorf("line %d reported: %s", b.Line, b.Msg)
		}
		for _, w := range ws {
			if !strings.Contains(b.Msg, w) {
				t.Errorf("line %d: %q does not mention %q", b.Line, b.Msg, w)
			}
		}
		seen[b.Line] = true
	}
	for line := range want {
		if !seen[line] {
			t.Errorf("no error reported for line %d", line)
		}
	}
}

func TestParseReportsEveryBadRowWithItsLine(t *testing.T) {
	t.Parallel()
	in := header +
		"c-1,Kim,sandbox,VA0001,KRW,OWN0001,Kim,,100,0,0,0\n" + // line 2: good
		"c-2,Lee,nowhere,VA0002,krw,OWN0002,Lee,,-5,0,0,10001\n" + // line 3: provider, currency, amount, bps
		"c-1,Park,sandbox,VA0001,KRW,OWN 3456,Park,,0,0,0,0\n" + // line 4: repeats, bad account
		"c-4,,sandbox,VA0004,KRW,OWN0004,Choi,,0,1.5,0,0\n" + // line 5: empty holder, decimal
		"c-5,Jung,sandbox,VA0005,USD,OWN0005,Jung,,100000,0,0,0\n" + // line 6: a currency the installation does not settle
		"c-6,Yoon,sandbox,VA0006,KRW,OWN0006,Yoon,,0,0,0,0,extra\n" + // line 7: an extra field
		"c-7,Kang, Min,sandbox,VA0007,KRW,OWN0007,Kang,,0,0,0,0\n" + // line 8: an unquoted comma
		"c-8,Han,sandbox,VA0008,KRW,OWN0008,Han,,0,0,0\n" // line 9: a field short
	f := Parse(strings.NewReader(in), opts)
	checkBad(t, f.Bad, map[int][]string{
		3: {"provider \"nowhere\"", "currency", "outstanding", "fee_bps"},
		4: {"external_ref \"c-1\" repeats line 2", "va_number repeats line 2", "payout_account ****3456 may hold only"},
		5: {"holder_name is empty", "hold"},
		6: {"currency USD: this installation settles KRW only"},
		7: {"13 fields, but the header has 12 columns (" + strings.Join(Columns, ",") + ")"},
		8: {"13 fields, but the header has 12 columns"},
		9: {"11 fields, but the header has 12 columns"},
	})
	for _, b := range f.Bad {
		if strings.Contains(b.Msg, "OWN 3456") {
			t.Errorf("line %d shows an account number unmasked: %s", b.Line, b.Msg)
		}
	}
	if len(f.Customers) != 1 || f.Lines[0] != 2 {
		t.Fatalf("good rows: %d at %v", len(f.Customers), f.Lines)
	}
}

func TestParseRefusesBadHeaders(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":          "",
		"unknown column": strings.Replace(header, "hold,", "hodl,", 1),
		"extra column":   strings.Replace(header, ",fee_bps", ",fee_bps,note", 1),
		"trailing comma": strings.Replace(header, ",fee_bps", ",fee_bps,", 1),
		"missing column": strings.Replace(header, ",fee_bps", "", 1),
		"no rows":        header,
	} {
		f := Parse(strings.NewReader(in), opts)
		if len(f.Bad) == 0 {
			t.Errorf("%s: accepted", name)
		}
		if strings.Contains(name, "column") && !strings.Contains(f.Bad[0].Msg, strings.Join(Columns, ",")) {
			t.Errorf("%s: %q does not give the expected header", name, f.Bad[0].Msg)
		}
	}
}

// Read reports the rows whose customer or virtual account is registered
// already with their lines, beside every other bad row, in one pass, and
// writes nothing.
func TestReadReportsRegisteredCustomersWithTheOtherBadRows(t *testing.T) {
	t.Parallel()
	db := settletest.NewDB(t, 4)
	ctx := context.Background()
	if _, err := db.CreateCustomer(ctx, store.NewCustomer{ExternalRef: "c-1", HolderName: "Kim", Provider: "sandbox",
		VANumber: "VA0001", Currency: "KRW", Payout: pipeline.Payee{Account: "OWN0001", Holder: "Kim"}}); err != nil {
		t.Fatal(err)
	}
	in := header +
		"c-2,Lee,sandbox,VA0002,KRW,OWN0002,Lee,,0,0,0,0\n" + // line 2: good
		"c-1,Kim,sandbox,VA0001,KRW,OWN0001,Kim,,0,0,0,0\n" + // line 3: registered already
		"c-3,Park,sandbox,VA0001,KRW,OWN0003,Park,,0,0,0,0\n" + // line 4: another customer's virtual account
		"c-1,Kim,sandbox,VA0009,USD,OWN0009,Kim,,-1,0,0,0\n" + // line 5: registered, and wrong besides
		"c-4,Choi,sandbox,VA0004,KRW,OWN0004,Choi,,0,0,0,0,x\n" + // line 6: an extra field
		"c-2,Lee,sandbox,VA0012,KRW,OWN0012,Lee,,0,0,0,0\n" // line 7: repeats line 2
	f, err := Read(ctx, strings.NewReader(in), opts, db)
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, f.Bad, map[int][]string{
		3: {`customer "c-1" exists already`},
		4: {"virtual account sandbox:****0001 belongs to customer c-1 already"},
		5: {`customer "c-1" exists already`, "currency USD", "outstanding"},
		6: {"13 fields"},
		7: {`external_ref "c-2" repeats line 2`},
	})
	if len(f.Customers) != 1 || f.Customers[0].ExternalRef != "c-2" || f.Lines[0] != 2 {
		t.Fatalf("good rows %+v at %v", f.Customers, f.Lines)
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM customers`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d customers after a read (%v), want the 1 registered", n, err)
	}
}

// The sample file the README points to reads without a bad row.
func TestSampleFileReads(t *testing.T) {
	t.Parallel()
	in, err := os.Open("../../configs/customers.sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f, err := Read(context.Background(), in, opts, settletest.NewDB(t, 4))
	if err != nil || len(f.Bad) != 0 || len(f.Customers) == 0 {
		t.Fatalf("sample: %d customers, bad rows %v, %v", len(f.Customers), f.Bad, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(header + "c-1,Kim,sandbox,VA0001,KRW,OWN0001,Kim,,100,0,0,0\n")
	f.Add(header + "\"unterminated,\n")
	f.Add("\ufeff" + header + "c,,,,,,,,,,,\n")
	f.Add(header + "c-1,Kim,sandbox,VA0001,USD,OWN0001,Kim,,100,0,0,0,extra\n")
	f.Fuzz(func(t *testing.T, in string) {
		file := Parse(strings.NewReader(in), opts)
		if len(file.Bad) == 0 && len(file.Customers) == 0 {
			t.Fatal("neither customers nor errors")
		}
		if len(file.Lines) != len(file.Customers) {
			t.Fatalf("%d lines for %d customers", len(file.Lines), len(file.Customers))
		}
		for _, c := range file.Customers {
			if c.Obligations.Validate() != nil || c.ExternalRef == "" || c.VANumber == "" || c.Currency != opts.Currency {
				t.Fatalf("accepted an invalid customer %+v", c)
			}
		}
	})
}
