package pipeline

import "log/slog"

// AccountNumber is a bank account number that prints, logs and marshals
// masked to its last four characters ("****1234"), so a full number never
// reaches a log line, an alert or a screen by accident.
type AccountNumber string

// Masked returns the number with all but its last four characters hidden.
func (a AccountNumber) Masked() string {
	const keep = 4
	r := []rune(string(a))
	if len(r) <= keep {
		return "****"
	}
	return "****" + string(r[len(r)-keep:])
}

// String returns the masked number.
func (a AccountNumber) String() string { return a.Masked() }

// LogValue implements slog.LogValuer.
func (a AccountNumber) LogValue() slog.Value { return slog.StringValue(a.Masked()) }

// MarshalText returns the masked number.
func (a AccountNumber) MarshalText() ([]byte, error) { return []byte(a.Masked()), nil }

var _ slog.LogValuer = AccountNumber("")

// minAccountDigits is how many digits make a word of free text look like
// an account number (LooksLikeAccountNumber).
const minAccountDigits = 8

// LooksLikeAccountNumber reports whether a word of free text (a bank's
// message, an error, an alert's detail) may be an account number, to be
// masked: it holds at least minAccountDigits digits, unless it holds
// exactly that many split into groups, as a date does (2026-11-25).
//
// Eight is the only threshold that both masks a bare 12345678 in an
// alert's detail and leaves a date alone, in an alert or in a bank's
// message. Every word that the earlier rules of notify (eight digits in
// one piece, ten in hyphenated groups) and of the bank dialects' errors
// (nine anywhere in a word) masked is still masked; words with eight
// digits in one piece (20261125) or nine in groups are now masked too:
// more is hidden, never less.
func LooksLikeAccountNumber(word string) bool {
	digits, groups, inGroup := 0, 0, false
	for _, r := range word {
		isDigit := r >= '0' && r <= '9'
		if isDigit {
			digits++
			if !inGroup {
				groups++
			}
		}
		inGroup = isDigit
	}
	return digits > minAccountDigits || digits == minAccountDigits && groups == 1
}
