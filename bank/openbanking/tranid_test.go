package openbanking

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func validTranID(id string) bool {
	if len(id) != TranIDLen {
		return false
	}
	for _, r := range id {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func TestBankTranIDExamples(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"settle-s42-a1":            "S0000000000042A00001",
		"settle-s0-a0":             "S0000000000000A00000",
		"settle-s9999999999999-a2": "S9999999999999A00002",
		"settle-s1-a99999":         "S0000000000001A99999",
	}
	for key, want := range cases {
		if got := BankTranID(key); got != want {
			t.Errorf("BankTranID(%q) = %q, want %q", key, got, want)
		}
		if back, ok := AttemptKey(want); !ok || back != key {
			t.Errorf("AttemptKey(%q) = %q %v, want %q", want, back, ok, key)
		}
	}
}

// TestBankTranIDOutsideTheEngineForm checks that keys the readable form
// cannot hold exactly take the digest form: never two keys on one ID.
func TestBankTranIDOutsideTheEngineForm(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		"settle-s042-a1", "settle-s42-a01", "settle-s10000000000000-a1", "settle-s1-a100000",
		"settle-s-1-a1", "settle-s1-a", "settle-s-a1", "settle-s1-a1x", "settle-s 1-a1", "k", "",
		"SETTLE-S42-A1", "settle-s٤٢-a1", "settle-s42-a1-a1",
	} {
		id := BankTranID(key)
		if !validTranID(id) || id[0] != 'H' {
			t.Errorf("BankTranID(%q) = %q, want the digest form", key, id)
		}
		if _, ok := AttemptKey(id); ok {
			t.Errorf("AttemptKey(%q) read a digest back", id)
		}
	}
	for _, id := range []string{"", "S0000000000042A0000", "S000000000004XA00001", "S0000000000042B00001", "H0000000000042A00001", "S0000000000042A-0001", "S+000000000042A00001"} {
		if key, ok := AttemptKey(id); ok {
			t.Errorf("AttemptKey(%q) = %q, want no key", id, key)
		}
	}
}

// TestBankTranIDIsUnique derives the IDs of a large range of engine keys
// and of other keys and checks that no two are equal, all are 20
// characters of [A-Z0-9], and every engine ID reads back to its key.
func TestBankTranIDIsUnique(t *testing.T) {
	t.Parallel()
	steps, attempts, others := 60_000, 3, 50_000
	if testing.Short() {
		steps, others = 10_000, 10_000
	}
	seen := make(map[string]string, steps*attempts+others)
	add := func(key string) string {
		id := BankTranID(key)
		if !validTranID(id) {
			t.Fatalf("BankTranID(%q) = %q: not 20 characters of [A-Z0-9]", key, id)
		}
		if prev, dup := seen[id]; dup && prev != key {
			t.Fatalf("keys %q and %q share bank_tran_id %q", prev, key, id)
		}
		seen[id] = key
		return id
	}
	for step := range steps {
		for a := 1; a <= attempts; a++ {
			key := fmt.Sprintf("settle-s%d-a%d", step*9973+1, a) // spread over the step range
			if back, ok := AttemptKey(add(key)); !ok || back != key {
				t.Fatalf("%q does not read back (%q)", key, back)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range others {
		add(fmt.Sprintf("settle-s0%d-a%d", i, rng.IntN(9)+1)) // non-canonical: digests
	}
	if len(seen) != steps*attempts+others {
		t.Fatalf("%d IDs for %d keys", len(seen), steps*attempts+others)
	}
}

func TestBankTranIDIsDeterministic(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"settle-s7-a3", "anything else"} {
		if BankTranID(key) != BankTranID(strings.Clone(key)) {
			t.Fatalf("BankTranID(%q) differs between calls", key)
		}
	}
}

func TestQueryTranIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 10_000 {
		id := queryTranID()
		if !validTranID(id) || id[0] != 'Q' || seen[id] {
			t.Fatalf("query bank_tran_id %q repeated or malformed", id)
		}
		seen[id] = true
	}
}

func FuzzBankTranID(f *testing.F) {
	for _, k := range []string{"settle-s42-a1", "settle-s042-a1", "", "settle-s9999999999999-a99999"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		id := BankTranID(key)
		if !validTranID(id) {
			t.Fatalf("BankTranID(%q) = %q", key, id)
		}
		if back, ok := AttemptKey(id); ok && back != key {
			t.Fatalf("BankTranID(%q) = %q reads back as %q", key, id, back)
		}
	})
}
