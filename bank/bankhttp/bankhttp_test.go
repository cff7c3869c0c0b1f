package bankhttp

import (
	"strings"
	"testing"
	"time"
)

var seedTime = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	cases := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 0 ":                           0,
		"-1":                            0,
		"1.5":                           0,
		"soon":                          0,
		"999999":                        time.Hour,
		"Wed, 25 Nov 2026 09:30:10 GMT": 10 * time.Second,
		"Wed, 25 Nov 2026 09:29:00 GMT": 0,
	}
	for in, want := range cases {
		if got := ParseRetryAfter(in, seedTime); got != want {
			t.Errorf("Retry-After %q: %s, want %s", in, got, want)
		}
	}
}

func TestScrubAndMask(t *testing.T) {
	cases := map[string]string{
		"":                            "",
		"abc":                         "abc",
		"to 110-234-567890 refused":   "to ****7890 refused",
		"line\nbreak\x1b[31m":         "line break [31m",
		strings.Repeat("a", 300):      strings.Repeat("a", MaxDetail) + "…",
		"tr_12 and 2026-11-25":        "tr_12 and 2026-11-25",
		"\xff\xfe invalid utf8 bytes": "? invalid utf8 bytes",
	}
	for in, want := range cases {
		if got := Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"": "****", "123": "****", "1234": "****", "12345": "****2345", "계좌번호12345": "****2345"} {
		if got := MaskAccount(in); got != want {
			t.Errorf("MaskAccount(%q) = %q, want %q", in, got, want)
		}
	}
}
