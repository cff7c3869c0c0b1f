package banksim

import "github.com/settle-dev/settle/pipeline"

// BankTransfers turns journal entries into the form pipeline.MatchJournal
// compares with the engine's records.
func BankTransfers(entries []JournalEntry) []pipeline.BankTransfer {
	out := make([]pipeline.BankTransfer, len(entries))
	for i, e := range entries {
		out[i] = pipeline.BankTransfer{Key: e.IdempotencyKey, From: e.From, To: e.To, Amount: e.Amount}
	}
	return out
}
