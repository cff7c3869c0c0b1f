package pipeline

import "fmt"

// BankTransfer is one transfer as either side records it: the engine (an
// attempt it recorded as succeeded) or the bank (an entry of its journal).
type BankTransfer struct {
	Key    string
	From   string
	To     string
	Amount int64
}

// MismatchKinds lists every Kind a Mismatch may have.
var MismatchKinds = []string{"duplicate_at_bank", "missing_at_bank", "unknown_to_engine", "different"}

// Mismatch is one way the engine's record and the bank's journal disagree.
type Mismatch struct {
	Kind   string // duplicate_at_bank, missing_at_bank, unknown_to_engine, different
	Key    string
	Detail string
}

// MatchJournal compares the transfers the engine recorded as succeeded with
// the transfers a bank applied, by attempt key: bank holds the bank's
// journal with each key already read back into the engine's attempt key by
// the mapping of the bank's dialect, and without entries that map to none
// (see banksim.BankTransfers). Every key must appear once on each side with
// the same accounts and amount. A key the bank applied twice is always a
// duplicate; a key the bank applied once that the engine does not record is
// unknown to the engine unless inFlight says its attempt may still be being
// recorded (nil: none is).
func MatchJournal(ours, bank []BankTransfer, inFlight func(key string) bool) []Mismatch {
	var out []Mismatch
	applied := make(map[string]BankTransfer, len(bank))
	for _, b := range bank {
		if _, dup := applied[b.Key]; dup {
			out = append(out, Mismatch{Kind: "duplicate_at_bank", Key: b.Key, Detail: "the bank applied this key more than once"})
			continue
		}
		applied[b.Key] = b
	}
	for _, o := range ours {
		b, ok := applied[o.Key]
		delete(applied, o.Key)
		switch {
		case !ok:
			out = append(out, Mismatch{Kind: "missing_at_bank", Key: o.Key, Detail: "recorded as succeeded; the bank has no such transfer"})
		case b != o:
			out = append(out, Mismatch{Kind: "different", Key: o.Key, Detail: fmt.Sprintf(
				"engine %d from %s to %s; bank %d from %s to %s", o.Amount, AccountNumber(o.From), AccountNumber(o.To),
				b.Amount, AccountNumber(b.From), AccountNumber(b.To))})
		}
	}
	for key := range applied {
		if inFlight == nil || !inFlight(key) {
			out = append(out, Mismatch{Kind: "unknown_to_engine", Key: key, Detail: "the bank applied it; the engine does not record it as succeeded"})
		}
	}
	return out
}

// IsAttemptKey reports whether key has the shape of AttemptKey.
func IsAttemptKey(key string) bool {
	var step int64
	var no int
	_, err := fmt.Sscanf(key, "settle-s%d-a%d", &step, &no)
	return err == nil && AttemptKey(step, no) == key
}
