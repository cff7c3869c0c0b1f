package notify

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/settle-dev/settle/pipeline"
)

// refusal is how a bank's permanent refusal reads to an operator.
type refusal struct {
	short string // for the title: "account frozen"
	why   string // a sentence; %s is the account concerned
	// payoutFix is how a refused PAYOUT is put right: a customers update
	// flag that takes the right value; "" when the customer must act at
	// their bank.
	payoutFix string
}

// refusals words the refusal codes of pipeline.
var refusals = map[string]refusal{
	string(pipeline.RefusedAccountFrozen): {
		short: "account frozen",
		why:   "The bank refused the transfer: account %s is frozen (suspended by the bank or by an order).",
	},
	string(pipeline.RefusedAccountClosed): {
		short:     "account closed",
		why:       "The bank refused the transfer: account %s is closed.",
		payoutFix: "--payout-account NUMBER",
	},
	string(pipeline.RefusedNoSuchAccount): {
		short:     "no such account",
		why:       "The bank refused the transfer: it has no account %s in this currency (a wrong number, or the wrong bank).",
		payoutFix: "--payout-account NUMBER",
	},
	string(pipeline.RefusedHolderNameMismatch): {
		short:     "holder name mismatch",
		why:       "The bank refused the transfer: the holder name on file does not match the holder of account %s.",
		payoutFix: "--payout-holder NAME",
	},
	string(pipeline.RefusedInsufficientFunds): {
		short: "insufficient funds",
		why:   "The bank refused the transfer: there is not enough money in the sending account %s.",
	},
}

// shortCause is a cause in a few words, for titles and storm lines.
func shortCause(cause string) string {
	if r, ok := refusals[cause]; ok {
		return r.short
	}
	if cause == pipeline.CauseOutOfAttempts {
		return "out of attempts"
	}
	return strings.ReplaceAll(cause, "_", " ")
}

// title is the one-line headline of an alert.
func title(a Alert) string {
	switch a.Kind {
	case pipeline.AlertKindSettlementFailed:
		if a.ConfigKey != "" {
			return fmt.Sprintf("Settlement %d failed%s: %s at %s", a.SettlementID, atStep(a), shortCause(a.Cause()), a.ConfigKey)
		}
		return fmt.Sprintf("Settlement %d failed%s: %s", a.SettlementID, atStep(a), shortCause(a.Cause()))
	case pipeline.AlertKindStepStuck:
		return fmt.Sprintf("Settlement %d stuck%s: the bank has not said whether the money moved", a.SettlementID, atStep(a))
	}
	return scrub(a, a.Summary)
}

func atStep(a Alert) string {
	if a.Step == nil {
		return ""
	}
	return " at " + string(a.Step.Kind)
}

// whyLabel heads the section that why fills.
func whyLabel(a Alert) string {
	if a.Kind == pipeline.AlertKindInvariant {
		return "What settle verify found"
	}
	return "Why"
}

// why explains the cause in plain words, with the bank's own code and
// message. Kinds notify has no words for show their detail as written.
func why(a Alert) string {
	var b strings.Builder
	cause := a.Cause()
	switch r, refused := refusals[cause]; {
	case a.Kind == pipeline.AlertKindSettlementFailed && refused:
		fmt.Fprintf(&b, r.why, refusedAccount(a, cause))
		if a.ConfigKey != "" {
			b.WriteString(" It is the engine's own account, not the customer's: the configuration names it, so fix the configuration.")
		}
	case a.Kind == pipeline.AlertKindSettlementFailed && cause == pipeline.CauseOutOfAttempts:
		b.WriteString("The transfer did not go through on any try, and the bank never refused it outright: it was unavailable, rate-limited, or gave answers that could not be used.")
	case a.Kind == pipeline.AlertKindStepStuck:
		b.WriteString("The bank took the transfer but has not said whether it completed: the money may or may not have moved.")
		if d := sentence(scrub(a, a.Detail)); d != "" {
			b.WriteString(" " + d)
		}
	default:
		b.WriteString(sentence(scrub(a, a.Detail)))
	}
	if s := a.Step; s != nil && s.BankCode != "" {
		fmt.Fprintf(&b, " Bank code %s", s.BankCode)
		if s.BankMessage != "" {
			fmt.Fprintf(&b, "; the bank said: “%s”", scrub(a, s.BankMessage))
		}
		b.WriteString(".")
	}
	return strings.TrimSpace(b.String())
}

// refusedAccount is the account a refusal is about: the configuration key
// of an engine account, else the step's source for insufficient funds or
// its destination, masked; a PAYOUT's destination is named as the
// customer's payout account.
func refusedAccount(a Alert, cause string) string {
	if a.ConfigKey != "" {
		return a.ConfigKey
	}
	if a.Step == nil {
		return "(unknown)"
	}
	if cause == string(pipeline.RefusedInsufficientFunds) {
		return cmp.Or(masked(a.Step.From), "(unknown)")
	}
	acct := cmp.Or(masked(a.Step.To), "(unknown)")
	if a.Step.Kind == pipeline.KindPayout {
		acct += " (the customer's payout account)"
	}
	return acct
}

// tried tells what the engine already did about the problem.
func tried(a Alert) string {
	if a.Kind == pipeline.AlertKindInvariant {
		return "Nothing: settle never changes money or the ledger to make an invariant hold, and goes on settling. " +
			"The next check that finds the invariant holding resolves this alert."
	}
	s := a.Step
	if s == nil || a.Kind != pipeline.AlertKindSettlementFailed && a.Kind != pipeline.AlertKindStepStuck {
		return ""
	}
	var b strings.Builder
	_, refused := refusals[a.Cause()]
	switch {
	case a.Kind == pipeline.AlertKindStepStuck:
		fmt.Fprintf(&b, "Sent the transfer %s, and has asked the bank for its status since. It will not send it again on its own, so the money cannot move twice.", times(s))
	case refused:
		fmt.Fprintf(&b, "Sent the transfer %s; the bank refused it for good, so settle stopped: sending it again unchanged would not help. No money moved in this step.", times(s))
	case a.Cause() == pipeline.CauseKeyReused:
		b.WriteString("Sent the transfer; the bank answered that its idempotency key was already used with other content. " +
			"settle halted the step and minted no new key: the bank may hold a transfer under that key.")
	case a.Cause() == pipeline.CauseKeyPastRetention:
		b.WriteString("Asked the bank about the transfer; it no longer knows the key, which is older than the provider's key_retention. " +
			"settle halted rather than send it again: the bank may have applied it and forgotten the key.")
	default:
		fmt.Fprintf(&b, "Tried %s with backoff, then gave up. Every try used the same idempotency key, so the bank applies the transfer at most once.", times(s))
	}
	if s.LastError != "" && !refused {
		fmt.Fprintf(&b, " Last answer: %s", sentence(scrub(a, s.LastError)))
	}
	if s.Seq > 1 {
		fmt.Fprintf(&b, " Steps 1–%d are done and in the ledger.", s.Seq-1)
	}
	return b.String()
}

// times is "once" or "5 times, the first at …".
func times(s *Step) string {
	if s.Attempts <= 1 {
		return "once"
	}
	out := fmt.Sprintf("%d times", s.Attempts)
	if !s.FirstTry.IsZero() {
		out += " (the first at " + clock(s.FirstTry) + ")"
	}
	return out
}

// fixHint says what to do before the alert's command helps, with the
// commands that do it.
func fixHint(a Alert) string {
	if a.Kind == pipeline.AlertKindStepStuck {
		return "Ask the bank what became of that attempt; settle finishes the step by itself as soon as the bank's status call answers. " +
			"Do not move the money by other means: it may already have moved."
	}
	if a.Kind == pipeline.AlertKindInvariant && a.ProblemKey == InvariantProblemKey(pipeline.CheckAuditChain) {
		return "Someone changed the audit log outside settle: a row altered, removed or written around the chain. Do not repair it: " +
			"keep the database as it is, compare the row named with the newest `seq` and `hash` noted outside the database " +
			"(docs/security.md, Audit log), and find who held the schema owner's rights; `settle audit list` shows the rows."
	}
	if a.Kind == pipeline.AlertKindInvariant {
		return "Look at each settlement named (`settle settlements show ID`, `settle audit list --subject settlement:ID`) and put it right; " +
			"`settle verify` then says all invariants hold."
	}
	if a.Kind != pipeline.AlertKindSettlementFailed || a.SettlementID == 0 {
		return ""
	}
	replay := fmt.Sprintf("`settle replay %d --reason \"…\"`", a.SettlementID)
	cause := a.Cause()
	r, refused := refusals[cause]
	payout := a.Step != nil && a.Step.Kind == pipeline.KindPayout && a.Customer != ""
	switch {
	case refused && a.ConfigKey != "":
		return fmt.Sprintf("Correct %s in the configuration (or the account at the bank) and confirm with the command above; "+
			"restart settle serve, then %s.", a.ConfigKey, replay)
	case cause == pipeline.CauseOutOfAttempts:
		return "Check the provider's status; once it answers again, " + replay + ": it sends the same key again, so nothing moves twice."
	case cause == pipeline.CauseKeyReused || cause == pipeline.CauseKeyPastRetention:
		return fmt.Sprintf("Find the attempt's key (`settle settlements show %d`) in the bank's statement (`settle reconcile` compares "+
			"statements with the ledger) and ask the bank what became of it. settle sends nothing more for this step: replay, cancel and "+
			"compensate refuse it while its outcome is unknown.", a.SettlementID)
	case refused && payout && cause == string(pipeline.RefusedAccountFrozen):
		return fmt.Sprintf("Have the customer get the freeze lifted, or take a new payout account with `settle customers update %s --payout-account NUMBER --reason \"…\"`; then %s.", a.Customer, replay)
	case refused && payout && r.payoutFix != "":
		return fmt.Sprintf("Take the right value from the customer with `settle customers update %s %s --reason \"…\"`; then %s.", a.Customer, r.payoutFix, replay)
	case refused && !payout:
		return "Put the account right at the bank, or, if the configuration names the wrong account, correct the provider's " +
			"accounts (providers[].accounts) in it; then " + replay + ": it reads the configured accounts again and sends to them with a new key."
	case refused:
		return "Put the account right at the bank; then " + replay + "."
	}
	return ""
}

// stormNoun names many alerts of a kind: "settlements failed".
func stormNoun(kind pipeline.AlertKind) string {
	switch kind {
	case pipeline.AlertKindSettlementFailed:
		return "settlements failed"
	case pipeline.AlertKindStepStuck:
		return "transfers stuck"
	case pipeline.AlertKindResolved:
		return "problems resolved"
	case pipeline.AlertKindInvariant:
		return "invariants broken"
	case pipeline.AlertKindNotifyUndelivered:
		return "settled events not taken by the lender's app"
	}
	return strings.ReplaceAll(string(kind), "_", " ") + " alerts"
}

// sentence ends s with a full stop unless it ends with punctuation.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s[len(s)-1:], ".!?") {
		return s
	}
	return s + "."
}
