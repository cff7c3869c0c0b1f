package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/pipeline"
)

func newDemoCmd(g *globals) *cobra.Command {
	var customers, perTick int
	var every time.Duration
	var seed uint64
	var once bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Create demo customers at the sandbox bank and pay them salaries in a stream",
		Long: "Create the engine's accounts and --customers demo customers (virtual account, payout\n" +
			"account, obligations) at the sandbox bank of the default provider and in the database,\n" +
			"freeze one customer's payout account so a failure shows up, then credit --per-tick salaries\n" +
			"every --every until interrupted, the frozen customer's first (or stop after seeding with --once).",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if customers < 1 || customers > 1_000_000 || perTick < 1 || every <= 0 {
				return &exitError{code: 2, err: fmt.Errorf("demo: --customers must be 1..1000000, --per-tick >= 1, --every > 0")}
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return oneLine(err)
			}
			db, err := openCurrentDB(cmd.Context(), cfg, nil)
			if err != nil {
				return err
			}
			defer db.Close()
			p := defaultProvider(cfg)
			bank := banksim.NewClient(p.BaseURL, p.Token.Reveal(), nil)
			seeder := demo.NewSeeder(db, bank, demo.Options{
				Provider: p.Name, Currency: cfg.Currency, Customers: customers, Prefix: "demo-", Seed: seed,
				Accounts: pipeline.Accounts{Collection: p.Accounts.Collection, Lender: p.Accounts.Lender,
					Holding: p.Accounts.Holding, Fee: p.Accounts.Fee},
			})
			logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
			cs, err := seeder.Seed(cmd.Context())
			if err != nil {
				return fmt.Errorf("demo: %w (is the sandbox bank running at %s?)", err, p.BaseURL)
			}
			frozen := cs[len(cs)/2]
			if _, err := bank.SetState(cmd.Context(), frozen.Payout, banksim.StateFrozen, ""); err != nil {
				return fmt.Errorf("demo: freeze a payout account: %w", err)
			}
			logger.Info("demo customers ready", "customers", len(cs), "frozen_payout_customer", frozen.Ref)
			if once {
				return nil
			}
			return payStream(cmd, seeder, cs, frozen, perTick, every, cfg.Currency, logger)
		},
	}
	cmd.AddCommand(newDemoReceiverCmd(g))
	cmd.Flags().IntVar(&customers, "customers", 50, "how many demo customers")
	cmd.Flags().IntVar(&perTick, "per-tick", 3, "salaries paid per tick")
	cmd.Flags().DurationVar(&every, "every", 4*time.Second, "time between ticks")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed for obligations and salaries")
	cmd.Flags().BoolVar(&once, "once", false, "create the customers and stop")
	return cmd
}

// payStream credits perTick salaries every tick until interrupted, and logs
// them in one line a tick. The first goes to the customer whose payout
// account is frozen, so that the demo's failed settlement shows up at once.
func payStream(cmd *cobra.Command, seeder *demo.Seeder, cs []demo.Customer, frozen demo.Customer, perTick int, every time.Duration,
	currency string, logger *slog.Logger) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	first := true
	for {
		refs := make([]string, 0, perTick)
		var total int64
		for range perTick {
			c := seeder.Pick(cs)
			if first {
				c, first = frozen, false
			}
			amount := seeder.Salary()
			if err := seeder.Pay(cmd.Context(), c, amount); err != nil {
				if cmd.Context().Err() != nil {
					return nil
				}
				return fmt.Errorf("demo: %w", err)
			}
			refs = append(refs, c.Ref)
			total += amount
		}
		logger.Info("payroll deposits", "customers", strings.Join(refs, ","), "total", pipeline.Money{Amount: total, Currency: currency}.String())
		select {
		case <-cmd.Context().Done():
			return nil
		case <-tick.C:
		}
	}
}

func defaultProvider(cfg *config.Config) config.ProviderConfig {
	for _, p := range cfg.Providers {
		if p.Name == cfg.DefaultProvider {
			return p
		}
	}
	return cfg.Providers[0]
}
