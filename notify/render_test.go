package notify_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
)

// Free text from a bank or another part of the engine can neither ping the
// channel nor show an account number.
func TestFreeTextIsEscapedAndMasked(t *testing.T) {
	t.Parallel()
	a := notify.Alert{
		ID: 1, ProblemKey: "reconcile:2026-11-25", Kind: "reconcile_difference", Severity: pipeline.SeverityWarning,
		Summary:   "<!channel> ledger and bank differ for 110-234-567890 on 2026-11-25",
		Detail:    "account 12345678 & <https://evil.example|click>",
		Action:    "settle verify",
		CreatedAt: t0,
	}
	m := notify.Render(notify.Notice{Alert: a, Occurrences: 1, FirstAt: t0})
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	var payload struct {
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &payload); err != nil {
		t.Fatal(err)
	}
	for _, bl := range payload.Blocks {
		if bl.Text.Type == "mrkdwn" {
			sections = append(sections, bl.Text.Text)
		}
	}
	for what, s := range map[string]string{"fallback": m.Text, "mrkdwn": strings.Join(sections, "\n")} {
		for _, bad := range []string{"<!channel>", "<https://evil", "110-234-567890", "12345678"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q:\n%s", what, bad, s)
			}
		}
	}
	for _, want := range []string{"&lt;!channel&gt;", "****7890", "****5678", "on 2026-11-25", "Fix: settle verify"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("fallback lacks %q:\n%s", want, m.Text)
		}
	}
}

func TestCauseOf(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"settlement:42:account_frozen": "account_frozen",
		"settlement:42:":               "k",
		"plain":                        "k",
		"":                             "k",
	} {
		if got := notify.CauseOf(key, "k"); got != want {
			t.Errorf("CauseOf(%q) = %q, want %q", key, got, want)
		}
	}
}
