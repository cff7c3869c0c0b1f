package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/internal/customercsv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

func newPlanCmd(g *globals) *cobra.Command {
	var ref, amount string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan --customer REF --amount AMOUNT",
		Short: "Preview the legs a deposit would produce for a customer; changes nothing",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := pipeline.ParseAmount(amount)
			if err != nil || ref == "" {
				return &exitError{code: 2, err: fmt.Errorf("plan: give --customer REF and --amount in minor units (%v)", err)}
			}
			cfg, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			c, err := db.GetCustomer(cmd.Context(), ref)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("customer %q does not exist: see 'settle customers import'", ref)
			}
			if err != nil {
				return err
			}
			p, err := pipeline.BuildPlan(pipeline.Money{Amount: n, Currency: c.Currency}, c.Obligations(),
				pipeline.Policy{MinDeposit: cfg.Poll.MinDeposit})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			w := cmd.OutOrStdout()
			money := func(n int64) pipeline.Money { return pipeline.Money{Amount: n, Currency: c.Currency} }
			fmt.Fprintf(w, "deposit %s for %s (outstanding %s, hold %s, fee %s + %d bps):\n", p.Deposit, c.Ref,
				money(c.Outstanding), money(c.Hold), money(c.FeeFixed), c.FeeBPS)
			for i, l := range p.Legs {
				fmt.Fprintf(w, "  %d. %-6s %s\n", i+1, l.Kind, money(l.Amount))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ref, "customer", "", "the customer's external reference")
	cmd.Flags().StringVar(&amount, "amount", "", "the deposit in minor units, e.g. 3000000")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCustomersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "customers", Short: "Import, list, show and update customers"}
	cmd.AddCommand(newCustomersImportCmd(g), newCustomersListCmd(g), newCustomersShowCmd(g), newCustomersUpdateCmd(g), newCustomersMigrateCmd(g), newCustomersPaydayCmd(g))
	return cmd
}

func newCustomersImportCmd(g *globals) *cobra.Command {
	var o opFlags
	cmd := &cobra.Command{
		Use:   "import FILE.csv --reason TEXT",
		Short: "Import customers from CSV: every row is checked; if any is bad, none is imported",
		Long: "Import customers from CSV with the header\n  " + strings.Join(customercsv.Columns, ",") + "\n" +
			"and no other column (configs/customers.sample.csv is an example). Every row is checked in one pass: its\n" +
			"fields, the provider (providers[]), the currency (the installation's currency only), repeats within the\n" +
			"file, and customers or virtual accounts registered already. Every bad row is reported with its line\n" +
			"number, and then nothing is imported.",
		Example: "  settle customers import configs/customers.sample.csv --reason \"onboarding, batch 3\"\n" +
			"  settle customers show cust-0042",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := o.audit("customers import", map[string]any{"file": args[0]})
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("customers import: %w", err)
			}
			defer f.Close()
			cfg, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			file, err := customercsv.Read(cmd.Context(), io.LimitReader(f, 1<<30), customercsv.Options{Providers: cfg.ProviderNames(), Currency: cfg.Currency}, db)
			if err != nil {
				return fmt.Errorf("customers import: %w; nothing was imported", err)
			}
			for _, b := range file.Bad {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", args[0], b)
			}
			if len(file.Bad) > 0 {
				return fmt.Errorf("customers import: %d bad rows in %s; nothing was imported: fix them and run again", len(file.Bad), args[0])
			}
			if i, err := db.ImportCustomers(cmd.Context(), file.Customers, a); err != nil {
				if i >= 0 {
					return fmt.Errorf("customers import: %s: line %d (customer %s): %w; nothing was imported",
						args[0], file.Lines[i], file.Customers[i].ExternalRef, err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d customers\n", len(file.Customers))
			return nil
		},
	}
	o.register(cmd, false)
	return cmd
}

func newCustomersListCmd(g *globals) *cobra.Command {
	var status, provider string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List customers, newest first, account numbers masked",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := listFlags(status, store.CustomerStatuses, limit)
			if err != nil {
				return err
			}
			_, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			rows, err := db.ListCustomers(cmd.Context(), store.CustomerFilter{Status: st, Provider: provider, Limit: limit})
			if err != nil {
				return err
			}
			for i := range rows {
				rows[i] = maskCustomer(rows[i])
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REF\tSTATUS\tPROVIDER\tVIRTUAL ACCOUNTS\tPAYOUT\tOUTSTANDING\tHOLD\tFEE")
			for _, c := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s + %d bps\n", c.Ref, c.Status, c.Provider, orDash(c.VANumbers),
					c.PayoutAccount, pipeline.Money{Amount: c.Outstanding, Currency: c.Currency}, pipeline.Grouped(c.Hold), pipeline.Grouped(c.FeeFixed), c.FeeBPS)
			}
			if len(rows) == 0 {
				fmt.Fprintln(tw, "(no customers)")
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only this status: "+joined(store.CustomerStatuses))
	cmd.Flags().StringVar(&provider, "provider", "", "only customers routed to this provider")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many rows")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCustomersShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show REF",
		Short: "Show a customer, their accounts (masked) and obligations",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			c, err := db.GetCustomer(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("customer %q does not exist", args[0])
			}
			if err != nil {
				return err
			}
			c = maskCustomer(c)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), c)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Customer %s (id %d) %s, %s, provider %s\n", c.Ref, c.ID, c.HolderName, c.Status, c.Provider)
			fmt.Fprintf(w, "Virtual accounts: %s\n", c.VANumbers)
			fmt.Fprintf(w, "Payout: %s (%s)\n", c.PayoutAccount, c.PayoutHolder)
			money := func(n int64) pipeline.Money { return pipeline.Money{Amount: n, Currency: c.Currency} }
			fmt.Fprintf(w, "Obligations: outstanding %s, hold %s, fee %s + %d bps; repaid so far %s, held so far %s\n",
				money(c.Outstanding), money(c.Hold), money(c.FeeFixed), c.FeeBPS, money(c.RepaidTotal), money(c.HeldTotal))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// maskCustomer hides the customer's account numbers but their last four
// characters.
func maskCustomer(c store.CustomerView) store.CustomerView {
	c.PayoutAccount = pipeline.AccountNumber(c.PayoutAccount).Masked()
	c.VANumbers = maskList(c.VANumbers)
	return c
}

// maskList masks every account of a "provider:number,..." list.
func maskList(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if prov, num, ok := strings.Cut(p, ":"); ok {
			parts[i] = prov + ":" + pipeline.AccountNumber(num).Masked()
		}
	}
	return strings.Join(parts, ",")
}

func newCustomersUpdateCmd(g *globals) *cobra.Command {
	var o opFlags
	var payout, holder, status, outstanding, hold, feeFixed string
	var feeBPS int64
	cmd := &cobra.Command{
		Use:   "update REF --reason TEXT [--payout-account N] [--payout-holder NAME] [--status S] [--outstanding A] ...",
		Short: "Change a customer's payout account, status or obligations (audited)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := o.audit("customers update", map[string]any{"customer": args[0], "flags": changedFlags(cmd)})
			if err != nil {
				return err
			}
			var p store.CustomerPatch
			if err := buildPatch(cmd, &p, payout, holder, status, outstanding, hold, feeFixed, feeBPS); err != nil {
				return err
			}
			_, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			c, err := db.UpdateCustomer(cmd.Context(), args[0], p, a)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("customer %q does not exist", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "customer %s updated: payout %s, %s, outstanding %d, hold %d, fee %d + %d bps\n",
				c.Ref, pipeline.AccountNumber(c.PayoutAccount), c.Status, c.Outstanding, c.Hold, c.FeeFixed, c.FeeBPS)
			return nil
		},
	}
	o.register(cmd, false)
	f := cmd.Flags()
	f.StringVar(&payout, "payout-account", "", "new payout account number")
	f.StringVar(&holder, "payout-holder", "", "new payout account holder name")
	f.StringVar(&status, "status", "", "ACTIVE, SUSPENDED (not polled) or CLOSED")
	f.StringVar(&outstanding, "outstanding", "", "loan balance still to repay, minor units")
	f.StringVar(&hold, "hold", "", "amount withheld from each deposit, minor units")
	f.StringVar(&feeFixed, "fee-fixed", "", "flat fee per settlement, minor units")
	f.Int64Var(&feeBPS, "fee-bps", 0, "fee in basis points of the deposit, 0..10000")
	return cmd
}

func changedFlags(cmd *cobra.Command) []string {
	var out []string
	for _, n := range []string{"payout-account", "payout-holder", "status", "outstanding", "hold", "fee-fixed", "fee-bps"} {
		if cmd.Flags().Changed(n) {
			out = append(out, n)
		}
	}
	return out
}

// buildPatch turns the changed flags into a patch, refusing bad values.
func buildPatch(cmd *cobra.Command, p *store.CustomerPatch, payout, holder, status, outstanding, hold, feeFixed string, feeBPS int64) error {
	changed := cmd.Flags().Changed
	bad := func(format string, a ...any) error { return &exitError{code: 2, err: fmt.Errorf(format, a...)} }
	if changed("payout-account") {
		if payout == "" || len(payout) > 64 {
			return bad("--payout-account must be 1 to 64 characters")
		}
		p.PayoutAccount = &payout
	}
	if changed("payout-holder") {
		if holder == "" || len(holder) > 128 {
			return bad("--payout-holder must be 1 to 128 characters")
		}
		p.PayoutHolder = &holder
	}
	if changed("status") {
		st := store.CustomerStatus(strings.ToUpper(status))
		if !slices.Contains(store.CustomerStatuses, st) {
			return bad("--status %q: use ACTIVE, SUSPENDED or CLOSED", st)
		}
		p.Status = &st
	}
	for _, a := range []struct {
		flag, value string
		dst         **int64
	}{{"outstanding", outstanding, &p.Outstanding}, {"hold", hold, &p.Hold}, {"fee-fixed", feeFixed, &p.FeeFixed}} {
		if !changed(a.flag) {
			continue
		}
		v, err := pipeline.ParseAmount(a.value)
		if err != nil {
			return bad("--%s: %v", a.flag, err)
		}
		*a.dst = &v
	}
	if changed("fee-bps") {
		if feeBPS < 0 || feeBPS > 10000 {
			return bad("--fee-bps %d: use 0..10000", feeBPS)
		}
		p.FeeBPS = &feeBPS
	}
	if *p == (store.CustomerPatch{}) {
		return bad("customers update: nothing to change: give at least one of %s", "--payout-account, --payout-holder, --status, --outstanding, --hold, --fee-fixed, --fee-bps")
	}
	return nil
}
