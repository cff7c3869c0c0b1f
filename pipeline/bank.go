package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Balance is the available balance of one account at a bank.
type Balance struct {
	Account   string
	Available Money
}

// TransferRequest asks a bank to move money. Key is the idempotency key of
// the attempt: the bank applies a key at most once.
type TransferRequest struct {
	Key        string
	From       string
	To         string
	ToHolder   string
	Amount     Money
	Memo       string
	AttemptDay time.Time // the attempt's creation time, for dialects that key by date
}

// TransferState is what a bank says about a transfer it accepted.
type TransferState string

const (
	// TransferSucceeded means the money moved.
	TransferSucceeded TransferState = "succeeded"
	// TransferPending means the bank accepted it and is still processing: the
	// outcome is unknown until the status call says otherwise.
	TransferPending TransferState = "pending"
)

// Receipt is a bank's positive answer to a transfer or status call.
type Receipt struct {
	State   TransferState
	BankRef string
}

// Bank is one provider's API as the engine needs it. Every method honours ctx.
// Errors are classified by Classify: a *RefusedError is permanent,
// ErrRateLimited and ErrUnavailable mean nothing was done, ErrNotFound (status
// only) means the bank never saw the key, ErrKeyReused means the key was used
// with other content, and anything else is an unknown outcome.
type Bank interface {
	// Balances returns the available balances of up to the adapter's batch
	// size of accounts. Accounts the bank does not know are left out.
	Balances(ctx context.Context, accounts []string) ([]Balance, error)
	// Transfer sends one transfer with req.Key as its idempotency key.
	Transfer(ctx context.Context, req TransferRequest) (Receipt, error)
	// TransferStatus asks what became of the transfer sent with req.Key.
	// It returns ErrNotFound when the bank never saw the key.
	TransferStatus(ctx context.Context, req TransferRequest) (Receipt, error)
}

// Sentinel errors a Bank returns; match them with errors.Is.
var (
	// ErrRateLimited means the bank refused the call for its rate limit and did
	// nothing. Wrap it in a *RetryAfterError to pass the bank's hint.
	ErrRateLimited = errors.New("bank rate limit hit")
	// ErrUnavailable means the bank said it did nothing (gateway busy,
	// maintenance); try again later.
	ErrUnavailable = errors.New("bank unavailable, nothing done")
	// ErrNotFound means the bank has no transfer with that key: only then may a
	// new attempt with a new key be sent.
	ErrNotFound = errors.New("bank has no transfer with that key")
	// ErrKeyReused means the idempotency key was already used with different
	// content. It is a bug, never retried with a fresh key automatically.
	ErrKeyReused = errors.New("idempotency key reused with different content")
	// ErrUnauthorized means the bank refused our credentials and did nothing;
	// an operator must fix the provider's token.
	ErrUnauthorized = errors.New("bank refused our credentials, nothing done")
	// ErrBadResponse means the bank's answer could not be understood. The
	// outcome of a transfer is then unknown.
	ErrBadResponse = errors.New("bank response not understood")
)

// RefusalCode is a bank's permanent refusal, in settle's own words.
type RefusalCode string

// The permanent refusals both dialects map to.
const (
	RefusedNoSuchAccount      RefusalCode = "no_such_account"
	RefusedAccountClosed      RefusalCode = "account_closed"
	RefusedAccountFrozen      RefusalCode = "account_frozen"
	RefusedHolderNameMismatch RefusalCode = "holder_name_mismatch"
	RefusedInsufficientFunds  RefusalCode = "insufficient_funds"
)

// RefusedError is a bank's permanent refusal of a transfer: no money moved
// and sending it again will not help.
type RefusedError struct {
	Code     RefusalCode
	BankCode string // the code as the bank sent it
	Message  string
}

func (e *RefusedError) Error() string {
	msg := "bank refused the transfer: " + string(e.Code)
	if e.BankCode != "" && e.BankCode != string(e.Code) {
		msg += " (bank code " + e.BankCode + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// RetryAfterError carries the delay a bank asked for with a transient error.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return fmt.Sprintf("%v (retry after %s)", e.Err, e.After) }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Class is what the engine does with a bank call's result.
type Class int

const (
	// ClassSuccess: the money moved.
	ClassSuccess Class = iota
	// ClassRefused: permanently refused; the settlement fails and an operator
	// is told.
	ClassRefused
	// ClassTransient: nothing was done; try the same attempt again later.
	ClassTransient
	// ClassUnknown: the bank may or may not have moved the money; ask the
	// status call before anything else.
	ClassUnknown
	// ClassAbsent: the bank says it never saw the attempt; it may be sent
	// again, with the same key.
	ClassAbsent
	// ClassKeyConflict: the key was reused with other content; halt and alert.
	ClassKeyConflict
)

var classNames = [...]string{"success", "refused", "transient", "unknown", "absent", "key_conflict"}

func (c Class) String() string { return classNames[c] }

// Classify maps a bank call's receipt and error to a Class. It is the one
// place where bank outcomes turn into engine decisions.
func Classify(r Receipt, err error) Class {
	var refused *RefusedError
	switch {
	case err == nil && r.State == TransferSucceeded:
		return ClassSuccess
	case err == nil:
		return ClassUnknown // pending, or a state we do not know
	case errors.As(err, &refused):
		return ClassRefused
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrUnavailable), errors.Is(err, ErrUnauthorized):
		return ClassTransient
	case errors.Is(err, ErrNotFound):
		return ClassAbsent
	case errors.Is(err, ErrKeyReused):
		return ClassKeyConflict
	default:
		return ClassUnknown
	}
}

// RetryAfter returns the delay a bank asked for, or 0.
func RetryAfter(err error) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.After
	}
	return 0
}
