package pipeline

import (
	"slices"
	"sort"
	"testing"
)

func TestMatchJournal(t *testing.T) {
	t.Parallel()
	k := func(step int64) string { return AttemptKey(step, 1) }
	ours := []BankTransfer{
		{k(1), "VA1", "COL", 100},
		{k(2), "COL", "OWN", 90},
		{k(3), "COL", "FEE", 10},
		{k(4), "COL", "LEND", 5},
	}
	bank := []BankTransfer{
		{k(1), "VA1", "COL", 100},
		{k(2), "COL", "OWN", 90}, {k(2), "COL", "OWN", 90}, // applied twice
		{k(3), "COL", "FEE", 11},                         // different amount
		{k(9), "COL", "OWN", 7},                          // the engine lost track of it
		{k(8), "COL", "OWN", 8}, {k(8), "COL", "OWN", 8}, // in flight, and applied twice
		{k(7), "COL", "OWN", 6}, // in flight
		// k(4) missing at the bank
	}
	inFlight := func(key string) bool { return key == k(7) || key == k(8) }
	got := map[string]string{}
	for _, m := range MatchJournal(ours, bank, inFlight) {
		got[m.Key] += m.Kind
	}
	want := map[string]string{k(2): "duplicate_at_bank", k(3): "different", k(4): "missing_at_bank", k(9): "unknown_to_engine",
		k(8): "duplicate_at_bank"}
	if len(got) != len(want) {
		t.Fatalf("mismatches %v, want %v", got, want)
	}
	for key, kind := range want {
		if got[key] != kind {
			t.Errorf("%s: %q, want %q", key, got[key], kind)
		}
	}
	kinds := map[string]bool{}
	for _, kind := range want {
		kinds[kind] = true
		if !slices.Contains(MismatchKinds, kind) {
			t.Errorf("MismatchKinds %v lacks %q", MismatchKinds, kind)
		}
	}
	if len(MismatchKinds) != len(kinds) {
		t.Errorf("MismatchKinds %v, want the %d kinds MatchJournal gives", MismatchKinds, len(kinds))
	}
	if m := MatchJournal(ours[:1], bank[:1], nil); len(m) != 0 {
		t.Errorf("matching sides gave %v", m)
	}
}

func TestIsAttemptKey(t *testing.T) {
	t.Parallel()
	keys := []string{AttemptKey(1, 1), AttemptKey(123456789, 12), "settle-s1-a1x", "settle-s01-a1", "other", ""}
	var ok []string
	for _, k := range keys {
		if IsAttemptKey(k) {
			ok = append(ok, k)
		}
	}
	sort.Strings(ok)
	if len(ok) != 2 {
		t.Fatalf("IsAttemptKey accepted %v", ok)
	}
}
