package bankhttp

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/settle-dev/settle/pipeline"
)

// MaxDetail is the longest piece of bank-sent text put into an error.
const MaxDetail = 200

// MaskAccount shows only the last four characters of an account number.
func MaskAccount(account string) string { return pipeline.AccountNumber(account).Masked() }

// Scrub makes bank-sent text safe for an error or a log: control characters
// become spaces, a word that looks like an account number
// (pipeline.LooksLikeAccountNumber) is masked, and the text is cut to
// MaxDetail characters.
func Scrub(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	words := strings.Fields(s)
	for i, w := range words {
		if pipeline.LooksLikeAccountNumber(w) {
			words[i] = MaskAccount(w)
		}
	}
	s = strings.Join(words, " ")
	if r := []rune(s); len(r) > MaxDetail {
		s = string(r[:MaxDetail]) + "…"
	}
	return s
}

// Quoted quotes a bank-sent value for an error text, scrubbed and short.
func Quoted(s string) string { return strconv.Quote(Scrub(s)) }

// PlausibleText reports whether s is minLen to maxLen characters of UTF-8
// without control characters.
func PlausibleText(s string, minLen, maxLen int) bool {
	n := utf8.RuneCountInString(s)
	if n < minLen || n > maxLen || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
