package notify_test

import (
	"strings"
	"testing"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
)

// A step halted because the bank holds another transfer under its key, or
// forgot a key it may have applied, says what settle did and that nothing
// more is sent, never "replay": its attempt stays UNKNOWN.
func TestHaltedKeyAlertsSayNothingMoreIsSent(t *testing.T) {
	for _, cause := range []string{pipeline.CauseKeyReused, pipeline.CauseKeyPastRetention} {
		a := engineAccountAlert()
		a.ProblemKey, a.ConfigKey = "settlement:44:"+cause, ""
		a.Step.Status, a.Step.BankCode, a.Step.BankMessage = "DEAD", "", ""
		m := notify.Render(notify.Notice{Alert: a, Occurrences: 1, FirstAt: a.CreatedAt})
		text := m.Text
		for _, want := range []string{"settle sends nothing more for this step", "settle halted"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: the alert does not say %q:\n%s", cause, want, text)
			}
		}
		if strings.Contains(text, "settle replay 44") {
			t.Errorf("%s: the alert offers a replay, which is refused:\n%s", cause, text)
		}
	}
}
