package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestAccountNumberIsMaskedEverywhere(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "****", "123": "****", "1234": "****", "12345": "****2345", "110-234-567890": "****7890", "계좌번호12345": "****2345"} {
		if got := AccountNumber(in).Masked(); got != want {
			t.Errorf("Masked(%q) = %q, want %q", in, got, want)
		}
	}
	a := AccountNumber("110234567890")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "account", a)
	js, _ := json.Marshal(map[string]AccountNumber{"a": a})
	for _, out := range []string{fmt.Sprint(a), fmt.Sprintf("%v %s", a, a), logged.String(), string(js)} {
		if strings.Contains(out, "110234") || !strings.Contains(out, "****7890") {
			t.Errorf("account number not masked in %q", out)
		}
	}
}

func TestLooksLikeAccountNumber(t *testing.T) {
	t.Parallel()
	for word, want := range map[string]bool{
		"":                     false,
		"tr_12":                false,
		"1234567":              false, // seven digits
		"12345678":             true,  // eight in one piece
		"acct:12345678,":       true,
		"2026-11-25":           false, // a date: eight in groups
		"2026-11-25,":          false,
		"123-456-789":          true, // nine in groups
		"110-234-567890":       true,
		"UNKNOWN-1234567":      false,
		"2026-11-25T09:00:12Z": true,
	} {
		if got := LooksLikeAccountNumber(word); got != want {
			t.Errorf("LooksLikeAccountNumber(%q) = %v, want %v", word, got, want)
		}
	}
}
