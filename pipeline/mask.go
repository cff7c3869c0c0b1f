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
