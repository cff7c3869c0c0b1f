package openbanking

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// TranIDLen is the length of a bank_tran_id.
const TranIDLen = 20

// The bank_tran_id scheme (see the package documentation):
//
//	S<13 decimal digits: step><A><5 decimal digits: attempt>   engine keys
//	H<19 base-36 digits of SHA-256(key)>                        any other key
//	Q<19 random base-36 digits>                                 balance calls
//
// The first letter keeps the three kinds apart, so they never collide.
const (
	stepDigits    = 13
	attemptDigits = 5
	digestDigits  = TranIDLen - 1
	enginePrefix  = "settle-s"
)

// BankTranID returns the bank_tran_id of a transfer with idempotency key
// key. It is deterministic, so a retry and the result call carry the same
// ID, and injective over the engine's keys, so it is unique for as long as
// the keys are (forever), well beyond the 30 days the dialect asks for.
//
// An engine key "settle-s<step>-a<attempt>" (canonical decimals, step below
// 10^13, attempt below 10^5) is written readably and reversibly:
// "settle-s42-a1" → "S0000000000042A00001". Any other key becomes "H" and
// 19 base-36 digits of its SHA-256 (about 98 bits: no collision in practice).
func BankTranID(key string) string {
	if step, attempt, ok := parseEngineKey(key); ok {
		return fmt.Sprintf("S%0*dA%0*d", stepDigits, step, attemptDigits, attempt)
	}
	sum := sha256.Sum256([]byte(key))
	return "H" + base36(sum[:12], digestDigits)
}

// AttemptKey returns the engine key a bank_tran_id made by BankTranID
// stands for, such as "settle-s42-a1" for "S0000000000042A00001". It
// reports false for IDs that are digests or not ours: only the engine's keys
// can be read back.
func AttemptKey(tranID string) (string, bool) {
	if len(tranID) != TranIDLen || tranID[0] != 'S' || tranID[1+stepDigits] != 'A' {
		return "", false
	}
	step, err1 := strconv.ParseUint(tranID[1:1+stepDigits], 10, 64)
	attempt, err2 := strconv.ParseUint(tranID[2+stepDigits:], 10, 64)
	if err1 != nil || err2 != nil || !allDigits(tranID[1:1+stepDigits]) || !allDigits(tranID[2+stepDigits:]) {
		return "", false
	}
	return fmt.Sprintf("%s%d-a%d", enginePrefix, step, attempt), true
}

// parseEngineKey reads "settle-s<step>-a<attempt>" with canonical decimal
// numbers that fit the scheme's digits. Non-canonical forms ("s042") are not
// engine keys: reading them would map two keys to one ID.
func parseEngineKey(key string) (step, attempt uint64, ok bool) {
	rest, found := strings.CutPrefix(key, enginePrefix)
	if !found {
		return 0, 0, false
	}
	s, a, found := strings.Cut(rest, "-a")
	if !found || !canonical(s, stepDigits) || !canonical(a, attemptDigits) {
		return 0, 0, false
	}
	step, _ = strconv.ParseUint(s, 10, 64)
	attempt, _ = strconv.ParseUint(a, 10, 64)
	return step, attempt, true
}

// canonical reports whether s is a decimal number of at most maxDigits
// digits without leading zeros.
func canonical(s string, maxDigits int) bool {
	return s != "" && len(s) <= maxDigits && allDigits(s) && (s == "0" || s[0] != '0')
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// queryTranID returns a fresh random bank_tran_id for a balance call, which
// moves no money and is never asked about again.
func queryTranID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "Q" + base36(b, digestDigits)
}

// base36 writes b as an upper-case base-36 number of exactly width digits,
// keeping the low digits; 12 bytes (96 bits) fit in 19 digits.
func base36(b []byte, width int) string {
	s := strings.ToUpper(new(big.Int).SetBytes(b).Text(36))
	if len(s) >= width {
		return s[len(s)-width:]
	}
	return strings.Repeat("0", width-len(s)) + s
}
