package provcheck_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/banktest"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/provcheck"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

// engine are the engine accounts the sandbox bank holds.
var engine = map[string]string{"collection": "SETTLE-COL", "lender": "SETTLE-LEND", "holding": "SETTLE-HOLD", "fee": "SETTLE-FEE"}

// dialects build each dialect's adapter against url with token.
var dialects = map[string]func(t *testing.T, url, token string) pipeline.Bank{
	"rest": func(t *testing.T, url, token string) pipeline.Bank {
		b, err := rest.New(rest.Config{Name: "acme", BaseURL: url, Token: token, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return b
	},
	"openbanking": func(t *testing.T, url, token string) pipeline.Bank {
		b, err := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "acme", BaseURL: url, Token: token, Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	},
}

// provider is the configured provider with its accounts, one of them
// changed by with (role → number).
func provider(b pipeline.Bank, with map[string]string) provcheck.Provider {
	p := provcheck.Provider{Name: "acme", Key: "providers[0]", TokenKey: "providers[0].token", Bank: b,
		Currency: "KRW", TimeZone: "Asia/Seoul", RateLimitRPS: 50, Burst: 1, PollInterval: time.Minute}
	for _, role := range []string{"collection", "lender", "holding", "fee"} {
		n := engine[role]
		if w, ok := with[role]; ok {
			n = w
		}
		p.Accounts = append(p.Accounts, provcheck.Account{Key: "providers[0].accounts." + role, Number: n})
	}
	return p
}

// failures are the failed results' lines.
func failures(rs []provcheck.Result) []string {
	var out []string
	for _, r := range rs {
		if r.Status != provcheck.OK {
			out = append(out, r.String())
		}
	}
	return out
}

// TestCheckAgainstTheSandboxBank runs the check over real HTTP against the
// sandbox bank in each dialect: a good configuration passes; a misspelt
// fee account, a wrong token, an account in another currency each fail
// naming the key to fix; a bank that is down is unreachable, not failed.
func TestCheckAgainstTheSandboxBank(t *testing.T) {
	for dialect, adapter := range dialects {
		t.Run(dialect, func(t *testing.T) {
			sb := banktest.NewSandbox(t)
			for _, n := range engine {
				sb.Open(n, "settle "+n, 0)
			}
			if _, err := sb.Sim.CreateAccount(context.Background(), banksim.Account{ID: "SETTLE-USD", HolderName: "settle", Currency: "USD"}); err != nil {
				t.Fatal(err)
			}
			good := adapter(t, sb.URL, banktest.Token)
			ctx := context.Background()

			rs := provcheck.Check(ctx, provider(good, nil))
			if f := failures(rs); len(f) > 0 || provcheck.AnyFailed(rs) || provcheck.AnyUnreachable(rs) {
				t.Fatalf("good configuration: %q", f)
			}
			if len(rs) != 7 { // time zone, limits, credentials, four accounts
				t.Fatalf("good configuration: %d results, want 7: %v", len(rs), rs)
			}

			rs = provcheck.Check(ctx, provider(good, map[string]string{"fee": "SETTLE-FEEE"}))
			f := failures(rs)
			if !provcheck.AnyFailed(rs) || len(f) != 1 || !strings.Contains(f[0], `providers[0].accounts.fee "****FEEE": the bank has no such account`) {
				t.Fatalf("misspelt fee account: %q", f)
			}

			rs = provcheck.Check(ctx, provider(adapter(t, sb.URL, "not-the-token"), nil))
			f = failures(rs)
			if !provcheck.AnyFailed(rs) || len(f) != 1 || !strings.Contains(f[0], "providers[0].token: the bank refused the credentials") {
				t.Fatalf("wrong token: %q", f)
			}

			rs = provcheck.Check(ctx, provider(good, map[string]string{"holding": "SETTLE-USD"}))
			f = failures(rs)
			wantUSD := map[string]string{"rest": "holds USD, the installation settles in KRW", "openbanking": "no such account in KRW"}[dialect]
			if !provcheck.AnyFailed(rs) || len(f) != 1 || !strings.Contains(f[0], "providers[0].accounts.holding") || !strings.Contains(f[0], wantUSD) {
				t.Fatalf("account in USD: %q", f)
			}

			down := httptest.NewServer(nil)
			down.Close()
			rs = provcheck.Check(ctx, provider(adapter(t, down.URL, banktest.Token), nil))
			f = failures(rs)
			if provcheck.AnyFailed(rs) || !provcheck.AnyUnreachable(rs) || len(f) != 1 || !strings.Contains(f[0], "did not answer") {
				t.Fatalf("bank down: %q", f)
			}
		})
	}
}

// TestLimitsAndTimeZone: a burst above the rate, a poll budget the rate
// cannot serve in one interval and a zone that does not load each fail
// naming their key; sane limits pass.
func TestLimitsAndTimeZone(t *testing.T) {
	sb := banktest.NewSandbox(t)
	for _, n := range engine {
		sb.Open(n, "settle "+n, 0)
	}
	b := dialects["rest"](t, sb.URL, banktest.Token)
	tests := []struct {
		name string
		set  func(*provcheck.Provider)
		want []string // keys that fail
	}{
		{"sane", func(p *provcheck.Provider) { p.PollBudget = 1500 }, nil},
		{"no rate limit", func(p *provcheck.Provider) { p.RateLimitRPS, p.Burst, p.PollBudget = 0, 0, 1_000_000 }, nil},
		{"burst above the rate", func(p *provcheck.Provider) { p.Burst = 51 }, []string{"providers[0].burst: 51 exceeds rate_limit_rps (50)"}},
		{"poll budget beyond the rate", func(p *provcheck.Provider) { p.PollBudget = 3001 },
			[]string{"providers[0].poll_budget: 3001 balance calls a cycle is more than rate_limit_rps 50 allows in one poll interval of 1m0s (3000 calls)"}},
		{"zone that does not load", func(p *provcheck.Provider) { p.TimeZone = "Asia/Seol" }, []string{`providers[0].time_zone: "Asia/Seol" does not load`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := provider(b, nil)
			tt.set(&p)
			f := failures(provcheck.Check(context.Background(), p))
			if len(f) != len(tt.want) {
				t.Fatalf("failures %q, want %q", f, tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(f[i], w) {
					t.Errorf("failure %q does not say %q", f[i], w)
				}
			}
		})
	}
}
