package notify_test

import (
	"strings"
	"testing"

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
