package throttle

import (
	"context"

	"github.com/settle-dev/settle/pipeline"
)

// Statements returns the provider's statement lister behind this throttle:
// its calls take the same rate-limit tokens and in-flight slots as every
// other call to the provider and wait out the same pauses, so reading
// statements never pushes the bank past the limit that settlement's
// transfers rely on; they pass a breaker of their own (OpStatements), so a
// statement the bank cannot serve never pauses transfers.
func (b *Bank) Statements(inner pipeline.Statements) pipeline.Statements {
	return statements{b: b, inner: inner}
}

type statements struct {
	b     *Bank
	inner pipeline.Statements
}

// Transactions lists one page of the account's statement through the
// throttle.
func (s statements) Transactions(ctx context.Context, account, cursor string, limit int) (pipeline.StatementPage, error) {
	return throttled(s.b, ctx, OpStatements, func(ctx context.Context) (pipeline.StatementPage, error) {
		return s.inner.Transactions(ctx, account, cursor, limit)
	})
}
