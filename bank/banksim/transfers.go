package banksim

import "github.com/settle-dev/settle/pipeline"

// BankTransfers turns journal entries into the form pipeline.MatchJournal
// compares with the engine's records: each under the engine attempt key its
// idempotency key stands for, by attemptKey, the mapping of the dialect the
// provider speaks (rest.AttemptKey, openbanking.AttemptKey). Entries whose
// key maps to no attempt key are not the engine's and are left out.
func BankTransfers(entries []JournalEntry, attemptKey func(bankKey string) (string, bool)) []pipeline.BankTransfer {
	out := make([]pipeline.BankTransfer, 0, len(entries))
	for _, e := range entries {
		if key, ok := attemptKey(e.IdempotencyKey); ok {
			out = append(out, pipeline.BankTransfer{Key: key, From: e.From, To: e.To, Amount: e.Amount})
		}
	}
	return out
}
