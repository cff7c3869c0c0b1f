package rest

import (
	"context"

	"github.com/settle-dev/settle/pipeline"
)

// Statements returns the client's statement lists in the form
// reconciliation reads them.
func (c *Client) Statements() pipeline.Statements { return statements{c} }

type statements struct{ c *Client }

// Transactions implements pipeline.Statements.
func (s statements) Transactions(ctx context.Context, account, cursor string, limit int) (pipeline.StatementPage, error) {
	p, err := s.c.Transactions(ctx, account, cursor, limit)
	if err != nil {
		return pipeline.StatementPage{}, err
	}
	out := pipeline.StatementPage{Next: p.NextCursor, More: p.HasMore, Lines: make([]pipeline.StatementLine, len(p.Transactions))}
	for i, t := range p.Transactions {
		out.Lines[i] = pipeline.StatementLine{ID: t.ID, Account: account, Direction: pipeline.Direction(t.Direction),
			Amount: t.Amount, Counterparty: t.Counterparty, Key: t.IdempotencyKey, At: t.CreatedAt}
	}
	return out, nil
}
