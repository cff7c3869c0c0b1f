package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Attempt is one try to move a step's money, with its own idempotency key.
type Attempt struct {
	ID        int64
	No        int
	Key       string
	CreatedAt time.Time
	// Age is how long ago the attempt was made, by the database's clock,
	// as of its claim.
	Age time.Duration
}

// Same reports whether a and b are the same attempt, whenever each was
// read (their Age may differ).
func (a Attempt) Same(b Attempt) bool { return a.ID == b.ID && a.No == b.No && a.Key == b.Key }

// AttemptKey is the idempotency key of attempt no of a step: deterministic, so
// the same attempt always carries the same key, and a new attempt a new one.
func AttemptKey(stepID int64, no int) string {
	return fmt.Sprintf("settle-s%d-a%d", stepID, no)
}

// Claim is a step owned by one worker until its lease ends. Fence is the
// fencing token the store checks before it records a result.
type Claim struct {
	StepID       int64
	SettlementID int64
	CustomerID   int64
	Seq          int
	Kind         Kind
	Amount       Money
	Provider     string
	From         string
	To           string
	ToHolder     string
	Fence        int64
	Attempts     int
	Transfer     Attempt // zero for NOTIFY
	// SettledFor is how long ago the settlement became SETTLED, by the
	// database's clock; zero while it is not. A NOTIFY step's retry window
	// counts from then.
	SettledFor time.Duration
}

// Request is the bank request that carries out this claim's attempt.
func (c Claim) Request() TransferRequest {
	return TransferRequest{
		Key: c.Transfer.Key, From: c.From, To: c.To, ToHolder: c.ToHolder,
		Amount: c.Amount, Memo: fmt.Sprintf("settle %d %s", c.SettlementID, c.Kind),
		AttemptDay: c.Transfer.CreatedAt,
	}
}

// Alert is something an operator must be told, written to the alert outbox
// in the same transaction as the failure it reports.
type Alert struct {
	ProblemKey   string // one message per problem: repeats update it
	Kind         AlertKind
	Severity     Severity
	SettlementID int64
	Summary      string
	Detail       string
	Action       string // the command that fixes it
	// ConfigKey names the configuration key to fix when the problem is an
	// engine account the bank refused ("providers[0].accounts.fee"); ""
	// otherwise.
	ConfigKey string
}

// Store errors.
var (
	// ErrNotClaimable is returned by ClaimStep when the step is not READY (it
	// is done, owned by another worker, or waiting): the delivery is a
	// duplicate or late and must be dropped.
	ErrNotClaimable = errors.New("step is not claimable")
	// ErrLeaseLost is returned when recording a result whose fencing token no
	// longer matches: another worker owns the step now.
	ErrLeaseLost = errors.New("step lease lost to another owner")
)

// NotDueError is returned by ClaimStep for a READY step whose backoff has not
// ended, and by ReclaimExpired for a RUNNING step whose lease has not: At is
// when it ends, In how long that is from now, both by the database's clock. A worker waits In, never At minus its own clock, which
// may be minutes off the database's.
type NotDueError struct {
	At time.Time
	In time.Duration
}

func (e *NotDueError) Error() string { return "step not due before " + e.At.Format(time.RFC3339) }

// StepStore is the persistence the executor needs. Every method is one short
// transaction; none is open while a bank is called.
type StepStore interface {
	// ClaimStep moves a READY, due step to RUNNING under a new lease and a new
	// fencing token, counts the attempt, and creates its transfer attempt (or
	// reuses the live one). It returns ErrNotClaimable or *NotDueError.
	ClaimStep(ctx context.Context, stepID int64, lease time.Duration) (Claim, error)
	// ReclaimExpired takes over a RUNNING step whose lease has expired (by the
	// database's clock) under a new lease and fencing token, without counting
	// an attempt. It returns ErrNotClaimable when the step is not RUNNING, and
	// *NotDueError when its lease is still valid.
	ReclaimExpired(ctx context.Context, stepID int64, lease time.Duration) (Claim, error)
	// Complete records success: the step is DONE, its attempt SUCCEEDED, its
	// ledger journal and obligation changes written, and the next step READY
	// (returned) or the settlement SETTLED (next.ID is 0). ErrLeaseLost if the
	// fence moved.
	Complete(ctx context.Context, c Claim, r Receipt) (next StepRef, err error)
	// Fail records a permanent failure: the step FAILED (or DEAD when dead),
	// the attempt REFUSED when refused, the settlement FAILED, and the alert.
	Fail(ctx context.Context, c Claim, f Failure) error
	// Retry puts the step back to READY, due after w.After; the live attempt
	// is kept, so the retry reuses its key. With w.Refund the claim does not
	// count as an attempt (the bank asked us to wait and did nothing). With
	// w.Alert it raises the alert in the same transaction, unless its
	// problem is open with the same detail already.
	Retry(ctx context.Context, c Claim, w Wait) error
	// Unknown marks the attempt's outcome unknown; the step stays RUNNING with
	// its lease extended by wait, until a resolve task (or the sweep) asks the
	// bank.
	Unknown(ctx context.Context, c Claim, wait time.Duration, reason string) error
	// SettledEvent returns the event the claim's NOTIFY step sends.
	SettledEvent(ctx context.Context, c Claim) (Event, error)
	// Absent records that the bank never saw the attempt: the step is READY
	// now and its next claim sends the same attempt, with the same key, again.
	// Keeping the key means a worker that was paused before it sent the
	// attempt and sends it late is deduplicated by the bank.
	Absent(ctx context.Context, c Claim) error
}

// Wait is how a claimed step goes back to READY to be tried again.
type Wait struct {
	After  time.Duration
	Reason string
	Refund bool   // the claim does not count as an attempt
	Alert  *Alert // raised once per open problem; nil for none
}

// Event is what the NOTIFY step tells the customer's lender app. ID is
// stable, so a receiver drops the duplicates a retry may bring.
type Event struct {
	ID   string
	Type string
	// Data is the event's JSON object (the settlement and its legs).
	Data []byte
}

// EventSink delivers events to the lender's app. An error means it was not
// (known to be) delivered; the NOTIFY step retries on its own backoff
// (ExecutorConfig.Notify), its settlement SETTLED all the while.
type EventSink interface {
	Send(ctx context.Context, e Event) error
}

// Failure describes why a step failed for good.
type Failure struct {
	Dead    bool // out of attempts or halted, rather than refused by the bank
	Refused *RefusedError
	// Cause names why a step halted, in its alert (default out_of_attempts);
	// a refusal names its code instead.
	Cause  string
	Reason string
	// Unresolved: the bank may have applied the attempt; it is kept UNKNOWN
	// so that nothing, a replay included, sends its key again.
	Unresolved bool
	// Detail, when set, is the alert's detail instead of Reason.
	Detail string
	// ConfigKey is the configuration key of the engine account a refusal
	// is about (ExecutorConfig.AccountKeys), "" when it is not about one.
	ConfigKey string
	Alert     Alert
}

// StepRef names a step as it stands: its ID and its fencing token. The token
// tells queue deliveries for the same step apart once the step was claimed
// again, so a delivery stuck with a dead worker never blocks a new one.
type StepRef struct {
	ID    int64
	Fence int64
	// First marks a settlement's first step: it waits until the steps of
	// the settlements under way have run, so that those finish first.
	First bool
}

// Queue wakes a worker for a step. The task carries only the step ID.
type Queue interface {
	// EnqueueStep asks a worker to run the step. Enqueueing a step that is
	// already queued with the same fence is not an error.
	EnqueueStep(ctx context.Context, step StepRef) error
	// EnqueueResolve asks a worker to resolve the step's unknown outcome
	// (Executor.Resolve) after the delay, when its lease ends. Enqueueing a
	// resolve already scheduled with the same fence is not an error.
	EnqueueResolve(ctx context.Context, step StepRef, after time.Duration) error
}

// StepObserver hears how each run of a claimed step ended: the step's
// kind, the outcome and the time from the claim to the record. Metrics
// implement it. It is called from every worker at once and must not block.
type StepObserver interface {
	StepDone(kind Kind, outcome Outcome, took time.Duration)
}

// Banks gives the Bank adapter for a provider name.
type Banks interface {
	Bank(provider string) (Bank, error)
}
