package rest

import "github.com/settle-dev/settle/pipeline"

// AttemptKey returns the engine attempt key that a key in the bank's
// journal or statements stands for. The rest dialect sends the engine's
// key as the Idempotency-Key unchanged, so it is the key itself; it reports
// false for keys that are not attempt keys (not settle's).
// openbanking.AttemptKey is the same mapping for that dialect.
func AttemptKey(bankKey string) (string, bool) {
	return bankKey, pipeline.IsAttemptKey(bankKey)
}
