package pipeline

// AlertKind is what an alert is about. The alert outbox stores it
// (alerts.kind); notify words the kinds it knows specially and shows any
// other with its summary and detail as written.
type AlertKind string

// The kinds of alert settle raises.
const (
	// AlertKindSettlementFailed is a settlement that failed for good
	// (FailureAlert): refused by the bank, or out of attempts. A settlement
	// that settles after a replay resolves its problems.
	AlertKindSettlementFailed AlertKind = "settlement_failed"
	// AlertKindStepStuck is a transfer whose outcome the bank has not told
	// for longer than it should: the step stays RUNNING and the engine keeps
	// asking the bank's status call.
	AlertKindStepStuck AlertKind = "step_stuck"
	// AlertKindResolved follows up a problem that an operator or the engine
	// has resolved (store.ResolveProblem). Its problem key is the problem's.
	AlertKindResolved AlertKind = "resolved"
	// AlertKindInvariant is a money invariant that settle verify (or its
	// scheduled run) found broken: one problem per check.
	AlertKindInvariant AlertKind = "invariant_violation"
	// AlertKindDailySummary is the daily summary: what settled, what
	// failed, the oldest open settlement.
	AlertKindDailySummary AlertKind = "daily_summary"
	// AlertKindBelowLedger is a virtual account whose bank balance is below
	// what the ledger holds there: it is not settled until the two agree.
	AlertKindBelowLedger AlertKind = "va_below_ledger"
	// AlertKindNotifyUndelivered is a SETTLED settlement whose event the
	// lender's app has not taken (NotifyAlert), severity warning: the money
	// moved; NOTIFY retries on its own, and gives up after its window. Its
	// delivery resolves it.
	AlertKindNotifyUndelivered AlertKind = "notify_undelivered"
	// AlertKindReconcile is a difference reconciliation found between the
	// engine's records and a bank's (one problem per finding), or a
	// statement it could not read.
	AlertKindReconcile AlertKind = "reconcile"
	// AlertKindProviderBreaker is a provider whose calls the circuit
	// breaker stopped.
	AlertKindProviderBreaker AlertKind = "provider_breaker"
)

// Severity is how urgent an alert is, as the alerts table allows it.
type Severity string

// The severities, least urgent first.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Causes of a failed settlement's alert that are not a bank's refusal
// code: the last part of its problem key ("settlement:42:out_of_attempts").
const (
	// CauseOutOfAttempts is a settlement that failed without a refusal
	// from the bank: its step ran out of attempts.
	CauseOutOfAttempts = "out_of_attempts"
	// CauseKeyReused is a step halted because the bank holds another
	// transfer under its key: its attempt stays UNKNOWN.
	CauseKeyReused = "key_reused"
	// CauseKeyPastRetention is a step halted because the bank no longer
	// knows a key it may have applied: its attempt stays UNKNOWN.
	CauseKeyPastRetention = "key_past_retention"
)

// CheckAuditChain is the check of settle verify that the audit log's hash
// chain holds: when it breaks, the log was changed, not a settlement.
const CheckAuditChain = "audit_chain_intact"
