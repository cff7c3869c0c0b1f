package pipeline

// SettlementStatus is the state of one settlement.
type SettlementStatus string

const (
	// SettlementRunning means the settlement's steps are being executed.
	SettlementRunning SettlementStatus = "RUNNING"
	// SettlementSettled means every step is DONE.
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
	// StepDead ran out of attempts; its settlement is FAILED.
	StepDead StepStatus = "DEAD"
	// StepCancelled will never run: its settlement was cancelled or
	// compensated.
	StepCancelled StepStatus = "CANCELLED"
)
