package bank

import (
	"context"
	"errors"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// Observer hears every request to a bank provider: the provider's name,
// the operation (OpBalances, OpTransfer, OpTransferStatus), the outcome
// (see Outcome) and how long the bank took. Metrics implement it. It is
// called from many goroutines at once and must not block.
type Observer interface {
	ObserveBank(provider, operation, outcome string, took time.Duration)
}

// The operations an Observer hears of.
const (
	OpBalances       = "balances"
	OpTransfer       = "transfer"
	OpTransferStatus = "transfer_status"
)

// Instrument returns inner reporting each call to obs. Only the provider's
// name, the operation, a fixed outcome word and the latency are reported:
// never an account number, key or amount. With a nil obs it returns inner.
func Instrument(inner pipeline.Bank, provider string, obs Observer) pipeline.Bank {
	if obs == nil {
		return inner
	}
	return &instrumented{inner: inner, provider: provider, obs: obs}
}

type instrumented struct {
	inner    pipeline.Bank
	provider string
	obs      Observer
}

func (b *instrumented) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	start := time.Now()
	out, err := b.inner.Balances(ctx, accounts)
	b.obs.ObserveBank(b.provider, OpBalances, outcome(err), time.Since(start))
	return out, err
}

func (b *instrumented) Transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	start := time.Now()
	r, err := b.inner.Transfer(ctx, req)
	b.obs.ObserveBank(b.provider, OpTransfer, Outcome(r, err), time.Since(start))
	return r, err
}

func (b *instrumented) TransferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	start := time.Now()
	r, err := b.inner.TransferStatus(ctx, req)
	b.obs.ObserveBank(b.provider, OpTransferStatus, Outcome(r, err), time.Since(start))
	return r, err
}

// Outcome names the result of a transfer or status call in one of a fixed
// set of words: ok, pending (accepted, still processing), refused,
// rate_limited, unavailable, unauthorized, not_found, key_reused,
// bad_response, timeout, canceled, or error (any other failure: the outcome
// of a transfer is unknown).
func Outcome(r pipeline.Receipt, err error) string {
	switch {
	case err == nil && r.State == pipeline.TransferSucceeded:
		return "ok"
	case err == nil:
		return "pending"
	}
	return outcome(err)
}

// outcome is the word for a call that returned err, "ok" for nil.
func outcome(err error) string {
	var refused *pipeline.RefusedError
	var timeout interface{ Timeout() bool }
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &refused):
		return "refused"
	case errors.Is(err, pipeline.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, pipeline.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, pipeline.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, pipeline.ErrNotFound):
		return "not_found"
	case errors.Is(err, pipeline.ErrKeyReused):
		return "key_reused"
	case errors.Is(err, pipeline.ErrBadResponse):
		return "bad_response"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &timeout) && timeout.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "error"
	}
}
