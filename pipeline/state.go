package pipeline

// SettlementStatus is the state of one settlement.
type SettlementStatus string

const (
	// SettlementRunning means the settlement's steps are being executed.
	SettlementRunning SettlementStatus = "RUNNING"
	// SettlementSettled means every step that moves money is DONE. Its
	// NOTIFY step may still be READY or RUNNING (the lender's app has not
	// taken the event yet) or DEAD (it gave up): see Kind.MovesMoney.
	SettlementSettled SettlementStatus = "SETTLED"
	// SettlementFailed means a step failed for good; an operator must replay,
	// cancel or compensate it. A FAILED settlement still blocks new
	// settlements for its customer, so the same money is never settled twice.
	SettlementFailed SettlementStatus = "FAILED"
	// SettlementCancelled means an operator stopped it before money moved.
	SettlementCancelled SettlementStatus = "CANCELLED"
	// SettlementCompensating means its completed legs are being reversed.
	SettlementCompensating SettlementStatus = "COMPENSATING"
	// SettlementCompensated means an operator reversed its completed legs:
	// the money is back in the virtual account, the obligation restored.
	SettlementCompensated SettlementStatus = "COMPENSATED"
)

// SettlementStatuses lists every settlement status.
var SettlementStatuses = []SettlementStatus{SettlementRunning, SettlementSettled, SettlementFailed,
	SettlementCancelled, SettlementCompensating, SettlementCompensated}

// OpenSettlementStatuses are the statuses of a settlement that is not over:
// RUNNING, FAILED (until an operator replays, cancels or compensates it) and
// COMPENSATING. A customer has at most one open settlement, and none starts
// for a customer who has one, so the same money is never settled twice; the
// customer's virtual accounts are not polled meanwhile. The database's index
// settlements_one_open_per_customer holds the same list.
var OpenSettlementStatuses = []SettlementStatus{SettlementRunning, SettlementFailed, SettlementCompensating}

// InFlightSettlementStatuses are the statuses of a settlement whose steps
// are under way: RUNNING and COMPENSATING (the open ones but FAILED, which
// waits for an operator).
var InFlightSettlementStatuses = []SettlementStatus{SettlementRunning, SettlementCompensating}

// StepStatus is the state of one step.
type StepStatus string

const (
	// StepPending waits for the step before it.
	StepPending StepStatus = "PENDING"
	// StepReady may be claimed by a worker once its next_run_at has passed.
	StepReady StepStatus = "READY"
	// StepRunning is owned by a worker (or waits for an unknown bank outcome)
	// until its lease expires.
	StepRunning StepStatus = "RUNNING"
	// StepDone completed; its ledger postings are written.
	StepDone StepStatus = "DONE"
	// StepFailed was refused for good by the bank; its settlement is FAILED.
	StepFailed StepStatus = "FAILED"
	// StepDead ran out of attempts; its settlement is FAILED. A NOTIFY step
	// is DEAD once its retry window ended: its settlement stays SETTLED.
	StepDead StepStatus = "DEAD"
	// StepCancelled will never run: its settlement was cancelled or
	// compensated.
	StepCancelled StepStatus = "CANCELLED"
)

// AttemptStatus is the state of one transfer attempt of a step, as the
// store records it (transfers.status).
type AttemptStatus string

const (
	// AttemptSending is written before the bank is called: the bank may or
	// may not have the transfer.
	AttemptSending AttemptStatus = "SENDING"
	// AttemptUnknown: the bank gave no definite answer; the engine asks its
	// status call and never sends another key for the step meanwhile.
	AttemptUnknown AttemptStatus = "UNKNOWN"
	// AttemptSucceeded: the bank applied the transfer.
	AttemptSucceeded AttemptStatus = "SUCCEEDED"
	// AttemptRefused: the bank refused it for good; it moved no money.
	AttemptRefused AttemptStatus = "REFUSED"
	// AttemptSuperseded is an attempt the bank never acted on whose step a
	// replay sent to other accounts: its key is never sent again.
	AttemptSuperseded AttemptStatus = "SUPERSEDED"
)

// Outcome is how one run of a claimed step ended, as a StepObserver hears
// it.
type Outcome string

const (
	// OutcomeDone: the step is DONE.
	OutcomeDone Outcome = "done"
	// OutcomeRetry: a transient error; the step is READY again after a
	// backoff, and the claim counted as an attempt.
	OutcomeRetry Outcome = "retry"
	// OutcomeWaiting: the bank rate-limited us or was down (its breaker
	// open); the step waits and the claim did not count as an attempt.
	OutcomeWaiting Outcome = "waiting"
	// OutcomeUnknown: the bank gave no definite answer; the step stays
	// RUNNING until the sweep asks the bank.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeFailed: the bank refused the transfer for good; the step and
	// its settlement are FAILED.
	OutcomeFailed Outcome = "failed"
	// OutcomeDead: out of attempts, or a key reused with other content; the
	// step is DEAD and its settlement FAILED.
	OutcomeDead Outcome = "dead"
	// OutcomeLeaseLost: another owner took the step over; nothing was
	// recorded by this run.
	OutcomeLeaseLost Outcome = "lease_lost"
	// OutcomeError: the result could not be recorded; the lease expiring
	// hands the step to the sweep.
	OutcomeError Outcome = "error"
)
