// Package provcheck checks a provider's configuration against its bank
// before any money moves: the credentials work, every engine account exists
// at the bank in the installation's currency, the provider's time zone
// loads and its limits fit together. `settle providers check` prints its
// results and `settle serve` refuses to start on a failed one.
//
// Each result names the configuration key to fix. A bank that cannot be
// reached (down, busy, in a maintenance window, an answer that cannot be
// read) proves nothing either way: its result is Unreachable, not Failed.
//
// Neither dialect's balance call says whether an account is active: both
// show the balance of a frozen or closed account. An engine account frozen
// or closed at the bank shows at its first refused transfer, whose alert
// names the account's configuration key (pipeline.Failure.ConfigKey).
package provcheck

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// Account is one engine account as the configuration names it.
type Account struct {
	Key    string // its configuration key, "providers[0].accounts.fee"
	Number string
}

// Provider is one configured provider and the adapter that talks to it,
// built as the engine builds it.
type Provider struct {
	Name     string
	Key      string // its configuration key, "providers[0]"
	TokenKey string // the key that holds its credentials: "providers[0].token" or ".token_file"
	Bank     pipeline.Bank
	Accounts []Account
	// Currency is the installation's currency, which every engine account
	// must hold.
	Currency string
	// TimeZone is providers[].time_zone.
	TimeZone string
	// RateLimitRPS, Burst and PollBudget are the provider's limits;
	// PollInterval is how often a poll cycle starts.
	RateLimitRPS, Burst, PollBudget int
	PollInterval                    time.Duration
}

// Status is how one check came out.
type Status string

// The statuses of a check.
const (
	OK          Status = "ok"
	Failed      Status = "FAILED"
	Unreachable Status = "UNREACHABLE" // the bank did not answer: nothing was proven
)

// Result is one check of one provider.
type Result struct {
	Provider string `json:"provider"`
	Check    string `json:"check"` // credentials, account, time_zone, limits
	Key      string `json:"key"`   // the configuration key it is about
	// Account is the engine account an account check is about, masked.
	Account pipeline.AccountNumber `json:"account,omitempty"`
	Status  Status                 `json:"status"`
	Message string                 `json:"message"`
}

// String is the result's line: status, provider, key and what was found.
func (r Result) String() string {
	return fmt.Sprintf("%-11s %s %s: %s", r.Status, r.Provider, r.Subject(), r.Message)
}

// Subject is what the result is about: its key, and the account (masked)
// for an account check.
func (r Result) Subject() string {
	if r.Account != "" {
		return fmt.Sprintf("%s %q", r.Key, r.Account)
	}
	return r.Key
}

// Check runs every check of p; the bank is asked once for the balances of
// all its engine accounts.
func Check(ctx context.Context, p Provider) []Result {
	out := p.limits()
	return append(out, p.atBank(ctx)...)
}

// AnyFailed reports whether a result failed.
func AnyFailed(rs []Result) bool { return has(rs, Failed) }

// AnyUnreachable reports whether a bank could not be reached.
func AnyUnreachable(rs []Result) bool { return has(rs, Unreachable) }

func has(rs []Result, s Status) bool {
	for _, r := range rs {
		if r.Status == s {
			return true
		}
	}
	return false
}

// result is a result of p's.
func (p Provider) result(check, key string, s Status, format string, args ...any) Result {
	return Result{Provider: p.Name, Check: check, Key: key, Status: s, Message: fmt.Sprintf(format, args...)}
}

// limits checks the time zone and that the limits fit together; it needs
// no bank.
func (p Provider) limits() []Result {
	out := []Result{}
	if _, err := time.LoadLocation(p.TimeZone); err != nil || p.TimeZone == "" {
		out = append(out, p.result("time_zone", p.Key+".time_zone", Failed, "%q does not load: use an IANA zone such as Asia/Seoul", p.TimeZone))
	} else {
		out = append(out, p.result("time_zone", p.Key+".time_zone", OK, "%s loads", p.TimeZone))
	}
	if p.RateLimitRPS <= 0 {
		return append(out, p.result("limits", p.Key+".rate_limit_rps", OK, "no rate limit: nothing to check against"))
	}
	if p.Burst > p.RateLimitRPS {
		out = append(out, p.result("limits", p.Key+".burst", Failed,
			"%d exceeds rate_limit_rps (%d): a second could see more calls than the bank allows; set burst to at most %d",
			p.Burst, p.RateLimitRPS, p.RateLimitRPS))
	}
	perCycle := int(float64(p.RateLimitRPS) * p.PollInterval.Seconds())
	if p.PollBudget > perCycle {
		out = append(out, p.result("limits", p.Key+".poll_budget", Failed,
			"%d balance calls a cycle is more than rate_limit_rps %d allows in one poll interval of %s (%d calls), "+
				"leaving no call for the transfers; set it to at most %d, or 0 for half of what the rate allows",
			p.PollBudget, p.RateLimitRPS, p.PollInterval, perCycle, perCycle/2))
	}
	if len(out) == 1 {
		out = append(out, p.result("limits", p.Key+".rate_limit_rps", OK,
			"%d a second with burst %d; polling takes at most %d of the %d calls a poll interval allows",
			p.RateLimitRPS, p.Burst, budgetUsed(p, perCycle), perCycle))
	}
	return out
}

// budgetUsed is how many calls a poll cycle may take: poll_budget, or half
// of the calls a cycle allows when it is 0 (as settle serve sets it).
func budgetUsed(p Provider, perCycle int) int {
	if p.PollBudget > 0 {
		return p.PollBudget
	}
	return max(perCycle/2, 1)
}

// atBank asks the bank for the balances of the engine accounts: the answer
// proves the credentials, and an account it leaves out does not exist (in
// this currency) at the bank.
func (p Provider) atBank(ctx context.Context) []Result {
	numbers := make([]string, 0, len(p.Accounts))
	seen := map[string]bool{}
	for _, a := range p.Accounts {
		if !seen[a.Number] {
			seen[a.Number] = true
			numbers = append(numbers, a.Number)
		}
	}
	balances, err := p.Bank.Balances(ctx, numbers)
	switch {
	case errors.Is(err, pipeline.ErrUnauthorized):
		return []Result{p.result("credentials", p.TokenKey, Failed,
			"the bank refused the credentials (HTTP 401): set the provider's API token the bank issued")}
	case err != nil:
		return []Result{p.result("credentials", p.TokenKey, Unreachable,
			"the bank did not answer a balance call, so nothing was checked: %v; run settle providers check once it answers", err)}
	}
	out := []Result{p.result("credentials", p.TokenKey, OK, "the bank answered a balance call")}
	held := make(map[string]pipeline.Money, len(balances))
	for _, b := range balances {
		held[b.Account] = b.Available
	}
	for _, a := range p.Accounts {
		out = append(out, p.account(a, held))
	}
	return out
}

// account is the result of one engine account, given what the bank showed.
func (p Provider) account(a Account, held map[string]pipeline.Money) Result {
	r := Result{Provider: p.Name, Check: "account", Key: a.Key, Account: pipeline.AccountNumber(a.Number), Status: Failed}
	m, ok := held[a.Number]
	switch {
	case !ok:
		r.Message = fmt.Sprintf("the bank has no such account in %s (or will not show it): correct the number in the configuration, "+
			"or open the account at the bank", p.Currency)
	case m.Currency != p.Currency:
		r.Message = fmt.Sprintf("the account holds %s, the installation settles in %s: name an account in %s", m.Currency, p.Currency, p.Currency)
	default:
		r.Status, r.Message = OK, "exists at the bank in "+p.Currency
	}
	return r
}
