package crash

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	if h, err := Parse("", ""); h != nil || err != nil {
		t.Fatalf("empty spec: %v %v, want no hook", h != nil, err)
	}
	h, err := Parse("after_claim=0, after_bank_ok=0", "7")
	if err != nil || h == nil {
		t.Fatalf("valid spec: %v", err)
	}
	h("after_claim") // probability 0: must return
	for _, bad := range []string{"after_lunch=0.1", "after_claim", "after_claim=2", "after_claim=x"} {
		if _, err := Parse(bad, "1"); err == nil || !strings.Contains(err.Error(), "SETTLE_TEST_CRASH") {
			t.Errorf("Parse(%q) err = %v, want a refusal naming the variable", bad, err)
		}
	}
	if _, err := Parse("after_claim=0.5", "nope"); err == nil {
		t.Error("a bad seed was accepted")
	}
}
