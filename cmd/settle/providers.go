package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/provcheck"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

func newProvidersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "providers", Short: "Check the configured bank providers"}
	var provider string
	var asJSON bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Check each provider's token, engine accounts, time zone and limits against its bank; exit 3 on a failure",
		Long: "Check each configured provider against its bank, through the adapter settle serve uses: the token\n" +
			"works (a balance call answers without 401), every engine account (providers[].accounts) exists at\n" +
			"the bank in the installation's currency, time_zone loads, and burst and poll_budget fit within\n" +
			"rate_limit_rps. One line per check; a failure names the configuration key to fix. A bank that\n" +
			"does not answer is UNREACHABLE: nothing was checked there. Exit 3 when a check failed or a bank\n" +
			"could not be reached. settle serve runs the same check at start (providers_check_at_start).",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return oneLine(err)
			}
			logger := slog.New(slog.DiscardHandler)
			rs, err := checkProviders(cmd.Context(), cfg, provider, logger)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), rs); err != nil {
					return err
				}
			} else {
				printChecks(cmd.OutOrStdout(), rs, coloursFor(cmd.OutOrStdout()))
			}
			switch {
			case provcheck.AnyFailed(rs):
				return &exitError{code: 3, err: fmt.Errorf("providers check: %d checks failed: fix the keys named above", countStatus(rs, provcheck.Failed))}
			case provcheck.AnyUnreachable(rs):
				return &exitError{code: 3, err: fmt.Errorf("providers check: %d banks did not answer: run it again once they do", countStatus(rs, provcheck.Unreachable))}
			}
			return nil
		},
	}
	check.Flags().StringVar(&provider, "provider", "", "only this provider")
	check.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	cmd.AddCommand(check)
	return cmd
}

// checkProviders checks the configured providers (or only the one named)
// against their banks, each through the adapter, throttle and maintenance
// windows buildBanks gives it.
func checkProviders(ctx context.Context, cfg *config.Config, only string, logger *slog.Logger) ([]provcheck.Result, error) {
	names := cfg.ProviderNames()
	if only != "" && !slices.Contains(names, only) {
		return nil, &exitError{code: 2, err: fmt.Errorf("--provider %q: no such provider; configured: %s", only, strings.Join(names, ", "))}
	}
	banks, _, _, err := buildBanks(cfg, logger, nil, nil)
	if err != nil {
		return nil, err
	}
	return checkBanks(ctx, cfg, banks, only)
}

// checkBanks checks the configured providers (or only the one named) through
// banks, the adapters buildBanks built.
func checkBanks(ctx context.Context, cfg *config.Config, banks *bank.Router, only string) ([]provcheck.Result, error) {
	interval, err := jobs.ScheduleInterval(cfg.Poll.Schedule, time.Now())
	if err != nil {
		return nil, fmt.Errorf("poll.schedule: %w", err)
	}
	var out []provcheck.Result
	for i, p := range cfg.Providers {
		if only != "" && p.Name != only {
			continue
		}
		b, err := banks.Bank(p.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, provcheck.Check(ctx, checkedProvider(cfg, i, p, b, interval))...)
	}
	return out, nil
}

// checkedProvider is provider i of the configuration as provcheck checks it.
func checkedProvider(cfg *config.Config, i int, p config.ProviderConfig, b pipeline.Bank, interval time.Duration) provcheck.Provider {
	key := providerKey(i)
	tokenKey := key + ".token"
	if p.TokenFile != "" {
		tokenKey = key + ".token_file"
	}
	a := p.Accounts
	var accounts []provcheck.Account
	for _, acc := range []struct{ role, number string }{
		{"collection", a.Collection}, {"lender", a.Lender}, {"holding", a.Holding}, {"fee", a.Fee},
	} {
		accounts = append(accounts, provcheck.Account{Key: key + ".accounts." + acc.role, Number: acc.number})
	}
	return provcheck.Provider{
		Name: p.Name, Key: key, TokenKey: tokenKey, Bank: b, Accounts: accounts,
		Currency: cfg.Currency, TimeZone: p.TimeZone,
		RateLimitRPS: p.RateLimitRPS, Burst: p.Burst, PollBudget: p.PollBudget, PollInterval: interval,
	}
}

// printChecks prints one line per check, its status painted.
func printChecks(w io.Writer, rs []provcheck.Result, c colours) {
	for _, r := range rs {
		fmt.Fprintln(w, c.paint(string(r.Status))+strings.TrimPrefix(r.String(), string(r.Status)))
	}
}

func countStatus(rs []provcheck.Result, s provcheck.Status) int {
	n := 0
	for _, r := range rs {
		if r.Status == s {
			n++
		}
	}
	return n
}

// checkProvidersAtStart runs the providers check before serve starts
// anything, unless providers_check_at_start is false (the web role, which
// moves no money, builds no banks to check). The rule: a failed check
// refuses the start, naming every key to fix, since the engine would move
// money with a configuration the bank refuses; a bank that does not answer
// is logged and the start goes on, since a bank briefly down at deploy time
// must not keep the engine down (its steps wait for it as at any other
// time, and a refusal then names the key in its alert).
func (d *daemon) checkProvidersAtStart(ctx context.Context, banks *bank.Router) error {
	if !d.cfg.ProvidersCheckAtStart {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*d.cfg.Worker.BankTimeout)
	defer cancel()
	rs, err := checkBanks(ctx, d.cfg, banks, "")
	if err != nil {
		return err
	}
	var failed []string
	for _, r := range rs {
		switch r.Status {
		case provcheck.Failed:
			failed = append(failed, fmt.Sprintf("provider %s: %s: %s", r.Provider, r.Subject(), r.Message))
		case provcheck.Unreachable:
			d.logger.Warn("provider not checked at start: its bank did not answer; serve starts and its steps wait for the bank; "+
				"run settle providers check once it answers", "provider", r.Provider, "detail", r.Message)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("the bank refuses the configuration, so nothing was started (settle providers check shows every check; "+
			"providers_check_at_start: false skips it):\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}
