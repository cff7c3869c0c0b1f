package notify

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/settle-dev/settle/pipeline"
)

// digitRun matches a run of digits, possibly grouped with hyphens.
var digitRun = regexp.MustCompile(`\d+(?:-\d+)*`)

// scrub masks account numbers in free text from the engine or a bank: the
// alert's own accounts wherever they appear, and any run of digits that
// looks like an account number (pipeline.LooksLikeAccountNumber).
func scrub(a Alert, s string) string {
	if s == "" {
		return ""
	}
	for _, acct := range accountsOf(a) {
		if len(acct) >= 4 {
			s = strings.ReplaceAll(s, string(acct), acct.Masked())
		}
	}
	return digitRun.ReplaceAllStringFunc(s, func(m string) string {
		if !pipeline.LooksLikeAccountNumber(m) {
			return m
		}
		return pipeline.AccountNumber(m).Masked()
	})
}

// masked is the account number masked, or "" for none.
func masked(a pipeline.AccountNumber) string {
	if a == "" {
		return ""
	}
	return a.Masked()
}

func accountsOf(a Alert) []pipeline.AccountNumber {
	out := []pipeline.AccountNumber{a.PayoutAccount}
	if a.Step != nil {
		out = append(out, a.Step.From, a.Step.To)
	}
	return out
}

// clock formats a time for the plain-text fallback: UTC, to the second.
func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// slackDate is a date that Slack shows in each reader's own time zone, with
// the UTC time as its fallback.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", t.Unix(), clock(t))
}

// span formats a duration in words: "5 min", "2 h", "90 s", "1 h 30 min".
func span(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	var parts []string
	if h > 0 {
		parts = append(parts, fmt.Sprintf("%d h", h))
	}
	if m > 0 {
		parts = append(parts, fmt.Sprintf("%d min", m))
	}
	if s > 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d s", s))
	}
	return strings.Join(parts, " ")
}

// escape makes text safe inside Slack mrkdwn: a bank message or summary can
// neither mention @channel nor forge a link.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// cut shortens s to at most n characters, marking the cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
