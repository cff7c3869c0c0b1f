package notify

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// The alerts below are raised by settle's scheduled jobs and the daemon, and
// worded here, next to the renderer that shows them: a transfer stuck in an
// unknown outcome, a broken invariant, the daily summary, a provider's
// breaker that opened.

// Stuck is a step whose transfer's outcome the bank has not told for longer
// than the sweep waits before it alerts.
type Stuck struct {
	ProblemKey   string // one problem per step (store.StuckProblemKey)
	SettlementID int64
	Seq          int
	Kind         pipeline.Kind
	Attempt      int           // the attempt whose outcome is unknown
	Key          string        // its idempotency key
	Since        time.Time     // when its outcome became unknown
	For          time.Duration // how long ago that was, by the database's clock
}

// StuckAlert is the alert for a stuck step, severity warning. Its detail
// names the attempt and since when it is unknown, so it stays the same while
// the step stays stuck.
func StuckAlert(s Stuck) pipeline.Alert {
	return pipeline.Alert{
		ProblemKey: s.ProblemKey, Kind: pipeline.AlertKindStepStuck, Severity: pipeline.SeverityWarning, SettlementID: s.SettlementID,
		Summary: fmt.Sprintf("Settlement %d stuck at %s (step %d): outcome unknown for %s",
			s.SettlementID, s.Kind, s.Seq, span(roundSpan(s.For))),
		Detail: fmt.Sprintf("Attempt %d (key %s) has had no definite answer since %s.", s.Attempt, s.Key, clock(s.Since)),
		Action: fmt.Sprintf("settle settlements show %d", s.SettlementID),
	}
}

// BelowLedger is a virtual account whose balance at the bank is below what
// the ledger holds there (the deposit of a cancelled or compensated
// settlement, not yet taken over).
type BelowLedger struct {
	Provider string
	VAID     int64
	VA       string // the account number; masked in the alert
	Bank     pipeline.Money
	Ledger   int64
}

// BelowLedgerProblem is the problem key of a VA below its ledger balance.
func BelowLedgerProblem(provider string, vaID int64) string {
	return fmt.Sprintf("va_below_ledger:%s:%d", provider, vaID)
}

// BelowLedgerAlert says a VA is not settled because the bank shows less
// there than the ledger holds: money left it outside settle, or the ledger
// is wrong. Either way nothing is moved until someone looks.
func BelowLedgerAlert(b BelowLedger) pipeline.Alert {
	return pipeline.Alert{
		ProblemKey: BelowLedgerProblem(b.Provider, b.VAID), Kind: pipeline.AlertKindBelowLedger, Severity: pipeline.SeverityCritical,
		Summary: fmt.Sprintf("Virtual account %s at %s holds less than the ledger says: not settled",
			pipeline.AccountNumber(b.VA), b.Provider),
		Detail: fmt.Sprintf("The bank shows %d %s; the ledger holds %d %s there (the deposit of a cancelled or compensated "+
			"settlement). No settlement starts from this account until they agree.", b.Bank.Amount, b.Bank.Currency, b.Ledger, b.Bank.Currency),
		Action: fmt.Sprintf("settle reconcile --provider %s, then ask the bank where the money went", b.Provider),
	}
}

// roundSpan rounds a duration of a minute or more to the minute.
func roundSpan(d time.Duration) time.Duration {
	if d < time.Minute {
		return d
	}
	return d.Round(time.Minute)
}

// Unstuck is a step that was stuck, as it is now that its outcome is known.
type Unstuck struct {
	Seq      int
	Kind     pipeline.Kind
	Status   pipeline.StepStatus    // the step's status
	Attempt  int                    // its latest attempt
	Transfer pipeline.AttemptStatus // that attempt's status
}

// UnstuckNote says how a stuck step's outcome became known, for the
// resolved follow-up of its problem.
func UnstuckNote(u Unstuck) string {
	step := fmt.Sprintf("step %d (%s)", u.Seq, u.Kind)
	switch {
	case u.Status == pipeline.StepDone:
		return "the bank confirmed the transfer: " + step + " is DONE"
	case u.Transfer == pipeline.AttemptRefused:
		return "the bank refused the transfer: " + step + " is " + string(u.Status) + "; the settlement's failure alert says what to do"
	case u.Status == pipeline.StepFailed || u.Status == pipeline.StepDead:
		return step + " is " + string(u.Status) + "; the settlement's failure alert says what to do"
	case u.Transfer == pipeline.AttemptSending:
		return fmt.Sprintf("the bank never received attempt %d: %s is sent again with the same key", u.Attempt, step)
	}
	return step + " is " + string(u.Status)
}

// Violation is one broken invariant, as settle verify reports it.
type Violation struct {
	SettlementID int64 // 0 when the check names no settlement
	Detail       string
}

// InvariantProblemKey is the problem key of a verify check: one problem per
// check, "invariant:steps_in_order".
func InvariantProblemKey(check string) string { return "invariant:" + check }

// violationsShown is how many violations an invariant alert lists.
const violationsShown = 5

// InvariantAlert is the alert for a check that settle verify found broken,
// severity critical. It lists the first violations in a stable order, so
// the same violations give the same alert.
func InvariantAlert(check string, vs []Violation) pipeline.Alert {
	sorted := slices.Clone(vs)
	slices.SortFunc(sorted, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.SettlementID, b.SettlementID), strings.Compare(a.Detail, b.Detail))
	})
	var lines []string
	for _, v := range sorted[:min(len(sorted), violationsShown)] {
		line := v.Detail
		if v.SettlementID != 0 {
			line = fmt.Sprintf("settlement %d: %s", v.SettlementID, v.Detail)
		}
		lines = append(lines, "• "+line)
	}
	if more := len(sorted) - violationsShown; more > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more", more))
	}
	return pipeline.Alert{
		ProblemKey: InvariantProblemKey(check), Kind: pipeline.AlertKindInvariant, Severity: pipeline.SeverityCritical,
		Summary: fmt.Sprintf("Invariant broken: %s (%s)", check, pipeline.Counted(len(vs), "violation", "violations")),
		Detail:  strings.Join(lines, "\n"),
		Action:  "settle verify",
	}
}

// DailySummary is what the daily summary tells: the settlements of a
// period and the ones still open.
type DailySummary struct {
	From, To  time.Time       // the period
	Location  *time.Location  // the time zone its times are shown in
	Settled   []Settled       // settlements SETTLED within the period, per currency
	Failed    int             // settlements that failed within the period
	FailedNow int             // settlements FAILED now, waiting for an operator
	Open      int             // settlements not finished now: RUNNING, FAILED or COMPENSATING
	Oldest    *OpenSettlement // the oldest of them; nil when none is open
}

// Settled counts the settlements of one currency and adds up their deposits.
type Settled struct {
	Count int64
	Total pipeline.Money
}

// OpenSettlement is a settlement that has not finished.
type OpenSettlement struct {
	ID        int64
	Status    pipeline.SettlementStatus
	Customer  string // the customer's reference
	CreatedAt time.Time
}

// DailySummaryProblemKey is the daily summary's problem key: one per date,
// the date the period ends in its time zone ("daily_summary:2026-11-25").
func DailySummaryProblemKey(to time.Time, loc *time.Location) string {
	return "daily_summary:" + to.In(loc).Format(time.DateOnly)
}

// DailySummaryAlert is the daily summary as an alert, severity info. Its
// detail is one "label: value" line per fact, shown as fields.
func DailySummaryAlert(s DailySummary) pipeline.Alert {
	loc := cmp.Or(s.Location, time.UTC)
	local := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04 MST") }
	var count int64
	for _, st := range s.Settled {
		count += st.Count
	}
	a := pipeline.Alert{
		ProblemKey: DailySummaryProblemKey(s.To, loc), Kind: pipeline.AlertKindDailySummary, Severity: pipeline.SeverityInfo,
		Summary: fmt.Sprintf("Daily summary, %s to %s: %s settled, %s failed",
			span(s.To.Sub(s.From)), local(s.To), pipeline.Grouped(count), pipeline.Grouped(int64(s.Failed))),
		Detail: strings.Join([]string{
			"Settled: " + settledLine(s.Settled),
			fmt.Sprintf("Failed: %s in the period; %s FAILED now, waiting for an operator", noneOr(s.Failed), noneOr(s.FailedNow)),
			"Open: " + openLine(s, local),
			"Period: " + local(s.From) + " – " + local(s.To),
		}, "\n"),
	}
	if s.FailedNow > 0 {
		a.Action = "settle settlements list --status FAILED"
	}
	return a
}

func settledLine(ss []Settled) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, pipeline.Counted(s.Count, "settlement", "settlements")+", "+s.Total.String())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func openLine(s DailySummary, local func(time.Time) string) string {
	o := s.Oldest
	if s.Open == 0 || o == nil {
		return "none"
	}
	return fmt.Sprintf("%s; the oldest, %d, is %s (customer %s, created %s)",
		pipeline.Counted(s.Open, "settlement", "settlements"), o.ID, o.Status, o.Customer, local(o.CreatedAt))
}

func noneOr(n int) string {
	if n == 0 {
		return "none"
	}
	return pipeline.Grouped(int64(n))
}

// summaryFields splits a daily summary's detail into its label/value lines.
func summaryFields(detail string) [][2]string {
	var out [][2]string
	for line := range strings.SplitSeq(detail, "\n") {
		if label, value, ok := strings.Cut(line, ": "); ok {
			out = append(out, [2]string{label, value})
		}
	}
	return out
}

// Breaker is one operation of one provider whose circuit breaker changed
// state.
type Breaker struct {
	Provider  string
	Operation string // balances, transfers, status or statements
	// Reconciliation is set when the operation is reconciliation's
	// statement reads: transfers go on while they are paused.
	Reconciliation bool
	Failures       int    // failures among its recent calls
	Cause          string // the failure that opened it; "" when none was given
}

// BreakerProblemKey is the problem key of a provider's breaker: one problem
// per provider and operation, "provider:<name>:breaker:<operation>".
func BreakerProblemKey(b Breaker) string {
	return "provider:" + b.Provider + ":breaker:" + b.Operation
}

// BreakerAlert is the alert for a breaker that opened
// (pipeline.AlertKindProviderBreaker): critical when steps wait on it, a
// warning when only reconciliation does. Its closing resolves it
// (BreakerClosedNote).
func BreakerAlert(b Breaker) pipeline.Alert {
	severity, effect := pipeline.SeverityCritical, "steps wait, none fail"
	if b.Reconciliation {
		severity, effect = pipeline.SeverityWarning, "reconciliation waits; transfers go on"
	}
	cause := b.Cause
	if cause == "" {
		cause = "failures"
	}
	return pipeline.Alert{
		ProblemKey: BreakerProblemKey(b), Kind: pipeline.AlertKindProviderBreaker, Severity: severity,
		Summary: fmt.Sprintf("Bank provider %s is failing its %s calls: they are paused; %s", b.Provider, b.Operation, effect),
		Detail:  fmt.Sprintf("%d of its recent calls failed, the last: %s. A probe call goes through every breaker_cooldown.", b.Failures, cause),
		Action:  "check the provider's status; settle resumes by itself when a probe succeeds",
	}
}

// BreakerClosedNote says a breaker closed again, for the resolved follow-up
// of its problem.
func BreakerClosedNote(b Breaker) string {
	return "provider " + b.Provider + " answers its " + b.Operation + " calls again; they resumed"
}
