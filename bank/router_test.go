package bank

import (
	"strings"
	"testing"

	"github.com/settle-dev/settle/pipeline"
)

func TestRouterNamesKnownProviders(t *testing.T) {
	t.Parallel()
	var b pipeline.Bank
	r := NewRouter(map[string]pipeline.Bank{"sandbox": b, "legacy": b})
	if _, err := r.Bank("sandbox"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Bank("nope")
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "legacy, sandbox") {
		t.Fatalf("err = %v, want it to name the provider and the configured ones", err)
	}
}
