package notify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
)

// A breaker on the money path is critical; one on reconciliation's
// statement reads is a warning. Both keep one problem per provider and
// operation, which the breaker's closing resolves.
func TestBreakerAlert(t *testing.T) {
	t.Parallel()
	transfers := notify.Breaker{Provider: "hana", Operation: "transfers", Failures: 5, Cause: "HTTP 503"}
	a := notify.BreakerAlert(transfers)
	if a.ProblemKey != "provider:hana:breaker:transfers" || a.Kind != pipeline.AlertKindProviderBreaker || a.Severity != pipeline.SeverityCritical {
		t.Errorf("transfers breaker: key %q, kind %q, severity %q", a.ProblemKey, a.Kind, a.Severity)
	}
	if !strings.Contains(a.Summary, "steps wait, none fail") || !strings.Contains(a.Detail, "5 of its recent calls failed, the last: HTTP 503.") {
		t.Errorf("transfers breaker reads:\n%s\n%s", a.Summary, a.Detail)
	}
	statements := notify.Breaker{Provider: "hana", Operation: "statements", Reconciliation: true, Failures: 3}
	a = notify.BreakerAlert(statements)
	if a.ProblemKey != "provider:hana:breaker:statements" || a.Severity != pipeline.SeverityWarning {
		t.Errorf("statements breaker: key %q, severity %q", a.ProblemKey, a.Severity)
	}
	if !strings.Contains(a.Summary, "reconciliation waits; transfers go on") || !strings.Contains(a.Detail, "the last: failures.") {
		t.Errorf("statements breaker reads:\n%s\n%s", a.Summary, a.Detail)
	}
	if got, want := notify.BreakerClosedNote(statements), "provider hana answers its statements calls again; they resumed"; got != want {
		t.Errorf("closed note %q, want %q", got, want)
	}
}

// A broken audit chain is the log changed outside settle, not a
// settlement to put right: its alert says so and what to keep.
func TestAuditChainAlertSaysTheLogWasChanged(t *testing.T) {
	raised := notify.InvariantAlert(pipeline.CheckAuditChain, []notify.Violation{{Detail: "audit_log row 7 (seq 3): its content does not match its hash"}})
	a := notify.Alert{ID: 1, ProblemKey: raised.ProblemKey, Kind: raised.Kind, Severity: raised.Severity,
		Summary: raised.Summary, Detail: raised.Detail, Action: raised.Action, CreatedAt: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	text := notify.Render(notify.Notice{Alert: a, Occurrences: 1, FirstAt: a.CreatedAt}).Text
	for _, want := range []string{"Someone changed the audit log outside settle", "Do not repair it", "audit_log row 7 (seq 3)"} {
		if !strings.Contains(text, want) {
			t.Errorf("the alert lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Look at each settlement named") {
		t.Errorf("the alert sends the operator to settlements:\n%s", text)
	}
}
