package pipeline

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Money is an amount in minor units of a currency (KRW has none, so 1 = 1 won).
// No floating point ever touches an amount.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// ErrInvalidAmount is returned when an amount is negative, overflows int64 or
// cannot be parsed.
var ErrInvalidAmount = errors.New("invalid amount")

// ErrInvalidCurrency is returned for a currency that is not three upper-case
// letters (ISO 4217 alphabetic code).
var ErrInvalidCurrency = errors.New("invalid currency")

// NewMoney returns amount minor units of currency. It refuses negative amounts
// and malformed currency codes.
func NewMoney(amount int64, currency string) (Money, error) {
	if amount < 0 {
		return Money{}, fmt.Errorf("%w: %d is negative", ErrInvalidAmount, amount)
	}
	if err := ValidateCurrency(currency); err != nil {
		return Money{}, err
	}
	return Money{Amount: amount, Currency: currency}, nil
}

// ValidateCurrency checks that code looks like an ISO 4217 alphabetic code.
func ValidateCurrency(code string) error {
	if len(code) != 3 {
		return fmt.Errorf("%w: %q must be three upper-case letters such as KRW", ErrInvalidCurrency, code)
	}
	for _, r := range code {
		if r < 'A' || r > 'Z' {
			return fmt.Errorf("%w: %q must be three upper-case letters such as KRW", ErrInvalidCurrency, code)
		}
	}
	return nil
}

// ParseAmount parses a non-negative decimal integer of minor units, as typed
// by a person or sent by a bank ("2500000", "2_500_000" and "2,500,000" are
// accepted). Signs, decimals and exponents are refused.
func ParseAmount(s string) (int64, error) {
	clean := strings.NewReplacer("_", "", ",", "").Replace(strings.TrimSpace(s))
	if clean == "" {
		return 0, fmt.Errorf("%w: empty; give a whole number of minor units such as 2500000", ErrInvalidAmount)
	}
	for _, r := range clean {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%w: %q is not a whole number of minor units (no signs, decimals or exponents)", ErrInvalidAmount, s)
		}
	}
	v, err := strconv.ParseInt(clean, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is larger than %d", ErrInvalidAmount, s, int64(math.MaxInt64))
	}
	return v, nil
}

// String renders the amount as people read it, its digits grouped in
// thousands, with its currency: "2,500,000 KRW". Minor units are shown as
// they are stored (KRW has none). The command line, the status page and the
// alerts all print money with it.
func (m Money) String() string {
	return strings.TrimSpace(Grouped(m.Amount) + " " + m.Currency)
}

// Grouped writes n with thousands separators: 1,200,000.
func Grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Counted writes n with its noun, singular for one: "1 settlement",
// "1,200 settlements".
func Counted[N int | int64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Grouped(int64(n)) + " " + many
}

// mulDiv returns a*b/d rounded down, for non-negative inputs, without
// overflowing for any a < 2^63 and b <= 10000.
func mulDiv(a, b, d int64) int64 {
	q, r := a/d, a%d
	return q*b + r*b/d
}
