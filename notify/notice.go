package notify

import (
	"context"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// Alert is one alert of the outbox as operators read it: the row itself and
// what the engine knew about its settlement when it was delivered. It
// marshals to JSON with account numbers masked.
type Alert struct {
	ID           int64              `json:"id"`
	ProblemKey   string             `json:"problem_key"`
	Kind         pipeline.AlertKind `json:"kind"`
	Severity     pipeline.Severity  `json:"severity"`
	SettlementID int64              `json:"settlement_id,omitempty"`
	Summary      string             `json:"summary"`
	Detail       string             `json:"detail,omitempty"`
	Action       string             `json:"action,omitempty"` // the command that fixes it
	// ConfigKey is the configuration key of the engine account the bank
	// refused ("providers[0].accounts.fee"): the configuration is at
	// fault, not the customer. "" otherwise.
	ConfigKey string    `json:"config_key,omitempty"`
	CreatedAt time.Time `json:"created_at"`

	// About the settlement; empty when the alert names none.
	Customer      string                 `json:"customer,omitempty"` // the customer's external reference
	PayoutAccount pipeline.AccountNumber `json:"payout_account,omitempty"`
	Provider      string                 `json:"provider,omitempty"`
	Deposit       pipeline.Money         `json:"deposit"`
	Step          *Step                  `json:"step,omitempty"` // the step that failed or is stuck
}

// Step is the step of a settlement that failed or is stuck, with what the
// bank last said about it.
type Step struct {
	Kind        pipeline.Kind          `json:"kind"`
	Seq         int                    `json:"seq"`
	Status      pipeline.StepStatus    `json:"status"`
	Amount      pipeline.Money         `json:"amount"`
	From        pipeline.AccountNumber `json:"from,omitempty"`
	To          pipeline.AccountNumber `json:"to,omitempty"`
	Attempts    int                    `json:"attempts"`           // tries the engine made
	FirstTry    time.Time              `json:"first_try,omitzero"` // when the first try was sent
	LastError   string                 `json:"last_error,omitempty"`
	BankCode    string                 `json:"bank_code,omitempty"` // as the bank sent it
	BankMessage string                 `json:"bank_message,omitempty"`
}

// Cause is the last part of a problem key ("settlement:42:account_frozen"
// gives "account_frozen"), or the kind when the key has no parts.
func (a Alert) Cause() string { return CauseOf(a.ProblemKey, string(a.Kind)) }

// CauseOf returns the last ':'-separated part of a problem key, or kind when
// the key has none.
func CauseOf(problemKey, kind string) string {
	for i := len(problemKey) - 1; i >= 0; i-- {
		if problemKey[i] == ':' {
			if c := problemKey[i+1:]; c != "" {
				return c
			}
			break
		}
	}
	return kind
}

// Notice is one thing to tell operators about a problem: its latest alert
// and what they were told before, or a storm summary.
type Notice struct {
	// Alert is the problem's latest alert: for a first message or an update,
	// the latest occurrence; for a follow-up, the alert followed up (a repeat
	// or the resolved alert). Zero for a storm.
	Alert Alert
	// Occurrences counts the problem's alerts so far, this one included.
	Occurrences int
	// FirstAt is when the problem was first raised.
	FirstAt time.Time
	// Resolved is set once the problem is resolved.
	Resolved *Resolution
	// Storm is set for a storm summary.
	Storm *Storm
	// Actions are the buttons a problem's first message shows, in bot mode
	// with notify.slack.interactive on: those its settlement's state
	// allows. None once it is resolved.
	Actions []Action
}

// Resolution is when and how a problem was resolved.
type Resolution struct {
	At   time.Time
	Note string
}

// Storm summarizes many alerts of one kind at one provider, sent instead of
// each of them.
type Storm struct {
	Key         string             // the storm's problem key
	Kind        pipeline.AlertKind // the kind of the alerts
	Provider    string             // "" when the alerts name no settlement
	Count       int                // alerts of this kind and provider raised within Window
	Window      time.Duration      // the storm window
	Threshold   int                // more than this many within Window make a storm
	Causes      []CauseCount       // Count by cause, most first
	Severity    pipeline.Severity  // the highest severity among them
	Settlements []int64            // a few of the settlements, newest first
	Folded      int                // alerts folded into this storm's message so far
	Since       time.Time          // when the first of them was raised
	Action      string             // the command to start with
}

// CauseCount is how many alerts of a storm have one cause.
type CauseCount struct {
	Cause string
	Count int
}

// Ref is where a problem's first message went, so follow-ups can thread
// under it and updates rewrite it. It is zero for notifiers that cannot
// thread (webhook, log).
type Ref struct {
	Channel string // channel ID
	TS      string // the message's timestamp
}

// Notifier delivers notices. Every method returns nil only when the notice
// was accepted; errors are *RateLimitedError (wait that long), wrap
// ErrUnavailable (the service could not be reached or failed; try later), or
// *RefusedError (the service refused this message). No error carries a
// secret.
type Notifier interface {
	// Post sends the first message of a problem (or storm) and returns where
	// it went.
	Post(ctx context.Context, n Notice) (Ref, error)
	// Update rewrites the problem's first message to show n (bot mode). It
	// does nothing when ref is zero or the notifier cannot edit messages.
	Update(ctx context.Context, ref Ref, n Notice) error
	// Reply sends a follow-up: in the thread of ref (bot mode), or as a
	// message of its own (webhook, log, or a zero ref).
	Reply(ctx context.Context, ref Ref, n Notice) error
}
