package dialects_test

import (
	"testing"

	"github.com/settle-dev/settle/bank/dialects"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

func TestEveryDialectIsComplete(t *testing.T) {
	key := pipeline.AttemptKey(42, 1)
	bankKeys := map[string]string{"rest": key, "openbanking": openbanking.BankTranID(key)}
	sizes := map[string]int{"rest": rest.BatchSize, "openbanking": openbanking.BatchSize}
	lists := map[string]bool{"rest": true, "openbanking": false}
	for _, name := range dialects.Names() {
		d, err := dialects.Lookup(name)
		if err != nil || d.Name != name || d.New == nil || d.AttemptKey == nil {
			t.Fatalf("%s: %+v, %v", name, d, err)
		}
		if d.BatchSize != sizes[name] || (d.Statements != nil) != lists[name] {
			t.Errorf("%s: batch %d, lists statements %v", name, d.BatchSize, d.Statements != nil)
		}
		if got, ok := d.AttemptKey(bankKeys[name]); !ok || got != key {
			t.Errorf("%s: journal key %q reads back as %q, %v; want %q", name, bankKeys[name], got, ok, key)
		}
		o := dialects.Options{}
		o.Name, o.BaseURL, o.Token = "acme", "https://bank.example", "t0ken"
		if b, err := d.New(o); err != nil || b == nil {
			t.Errorf("%s: adapter %v, %v", name, b, err)
		}
	}
}

func TestUnknownDialectNamesTheSupportedOnes(t *testing.T) {
	_, err := dialects.Lookup("soap")
	if err == nil || err.Error() != `dialect "soap" is not supported (supported: rest, openbanking)` {
		t.Fatalf("%v", err)
	}
}
