package rest

import (
	"testing"

	"github.com/settle-dev/settle/pipeline"
)

// A rest journal carries the engine's key as it was sent; any other key is
// not settle's.
func TestAttemptKeyIsTheKeyItself(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		key string
		ok  bool
	}{
		{pipeline.AttemptKey(42, 1), true},
		{"S0000000000042A00001", false}, // an openbanking bank_tran_id
		{"payroll-77", false},
		{"", false},
	} {
		got, ok := AttemptKey(c.key)
		if ok != c.ok || (ok && got != c.key) {
			t.Errorf("AttemptKey(%q) = %q %v, want %v", c.key, got, ok, c.ok)
		}
	}
}
