package customercsv

import (
	"strings"
	"testing"
)

var providers = []string{"sandbox"}

const header = "external_ref,holder_name,provider,va_number,currency,payout_account,payout_holder_name,payout_bank_code,outstanding,hold,fee_fixed,fee_bps\n"

func TestParseGoodFile(t *testing.T) {
	t.Parallel()
	in := header +
		"c-1,Kim Minji,sandbox,VA0001,KRW,OWN0001,Kim Minji,097,\"1,500,000\",0,500,10\n" +
		"c-2,Lee Jun,sandbox,VA0002,KRW,OWN0002,Lee Jun,,0,20000,0,0\n"
	cs, bad := Parse(strings.NewReader(in), providers)
	if len(bad) != 0 || len(cs) != 2 {
		t.Fatalf("customers %d, errors %v", len(cs), bad)
	}
	if c := cs[0]; c.ExternalRef != "c-1" || c.Obligations.Outstanding != 1_500_000 || c.Obligations.FeeBPS != 10 || c.PayoutBank != "097" {
		t.Fatalf("row 1 = %+v", c)
	}
}

func TestParseReportsEveryBadRowWithItsLine(t *testing.T) {
	t.Parallel()
	in := header +
		"c-1,Kim,sandbox,VA0001,KRW,OWN0001,Kim,,100,0,0,0\n" + // line 2: good
		"c-2,Lee,nowhere,VA0002,krw,OWN0002,Lee,,-5,0,0,10001\n" + // line 3: provider, currency, amount, bps
		"c-1,Park,sandbox,VA0001,KRW,OWN 3,Park,,0,0,0,0\n" + // line 4: repeats, bad account
		"c-4,,sandbox,VA0004,KRW,OWN0004,Choi,,0,1.5,0,0\n" // line 5: empty holder, decimal
	cs, bad := Parse(strings.NewReader(in), providers)
	if len(bad) != 3 {
		t.Fatalf("errors %v, want 3 bad rows", bad)
	}
	want := map[int][]string{
		3: {"provider \"nowhere\"", "currency", "outstanding", "fee_bps"},
		4: {"external_ref \"c-1\" repeats line 2", "va_number repeats line 2", "payout_account"},
		5: {"holder_name is empty", "hold"},
	}
	for _, b := range bad {
		for _, w := range want[b.Line] {
			if !strings.Contains(b.Msg, w) {
				t.Errorf("line %d: %q does not mention %q", b.Line, b.Msg, w)
			}
		}
		delete(want, b.Line)
	}
	if len(want) != 0 {
		t.Errorf("no error reported for lines %v", want)
	}
	_ = cs
}

func TestParseRefusesBadHeaders(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":          "",
		"unknown column": strings.Replace(header, "hold,", "hodl,", 1),
		"missing column": strings.Replace(header, ",fee_bps", "", 1),
		"no rows":        header,
	} {
		if _, bad := Parse(strings.NewReader(in), providers); len(bad) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(header + "c-1,Kim,sandbox,VA0001,KRW,OWN0001,Kim,,100,0,0,0\n")
	f.Add(header + "\"unterminated,\n")
	f.Add("\ufeff" + header + "c,,,,,,,,,,,\n")
	f.Fuzz(func(t *testing.T, in string) {
		cs, bad := Parse(strings.NewReader(in), providers)
		if len(bad) == 0 && len(cs) == 0 {
			t.Fatal("neither customers nor errors")
		}
		for _, c := range cs {
			if c.Obligations.Validate() != nil || c.ExternalRef == "" || c.VANumber == "" {
				t.Fatalf("accepted an invalid customer %+v", c)
			}
		}
	})
}
