package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/internal/customercsv"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

func newCustomersMigrateCmd(g *globals) *cobra.Command {
	var o opFlags
	var to, from, vaMap, template string
	var batch int
	var noBankCheck bool
	cmd := &cobra.Command{
		Use:   "migrate --to PROVIDER --reason TEXT (--va-map FILE.csv | --va-template T) [--batch N] [--from PROVIDER] [--dry-run]",
		Short: "Move customers to another provider, a batch at a time (audited)",
		Long: `Move up to --batch customers (in customer order) to the provider --to: each gets its virtual
account there, recorded from --va-map or --va-template, and its route. Its old virtual account
stays polled, so a salary still paid into it is settled, once, through the old provider.
A customer with an open settlement is skipped and moves in a later batch; so is one whose new
virtual account the bank at --to does not know (checked with a balance call unless
--no-bank-check). Run it again until nothing remains. Each customer moved gets an audit row.

--va-map FILE.csv has the header external_ref,va_number. --va-template builds the number from
{ref} (the external reference), {id} (the customer ID) and {old} (the current VA number),
e.g. "N{old}".`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := o.audit("customers migrate", map[string]any{
				"to": to, "from": from, "batch": batch, "va_map": vaMap, "va_template": template, "dry_run": o.dryRun,
			})
			if err != nil {
				return err
			}
			newVA, err := vaRule(vaMap, template)
			if err != nil {
				return err
			}
			if batch < 1 || batch > 100_000 {
				return usageErr("--batch %d: move 1 to 100000 customers at a time", batch)
			}
			cfg, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			names := cfg.ProviderNames()
			if !slices.Contains(names, to) || from != "" && !slices.Contains(names, from) {
				return usageErr("--to %q / --from %q: name configured providers (%s)", to, from, strings.Join(names, ", "))
			}
			req := store.MigrateRequest{To: to, From: from, Batch: batch, NewVA: newVA, DryRun: o.dryRun, Audit: a}
			if !noBankCheck {
				if req.Opened, err = openedAt(cmd, cfg, to); err != nil {
					return err
				}
			}
			out, err := db.MigrateCustomers(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("customers migrate: %w", err)
			}
			return printMigration(cmd.OutOrStdout(), out, to, o.asJSON)
		},
	}
	o.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the provider to move customers to (required)")
	f.StringVar(&from, "from", "", "only customers routed to this provider (default: any other)")
	f.IntVar(&batch, "batch", 100, "most customers moved by this run")
	f.StringVar(&vaMap, "va-map", "", "CSV of external_ref,va_number: each customer's VA at --to")
	f.StringVar(&template, "va-template", "", "rule for the VA number at --to, from {ref}, {id} and {old}")
	f.BoolVar(&noBankCheck, "no-bank-check", false, "do not ask the bank at --to whether the new VAs exist")
	return cmd
}

func usageErr(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// vaRule returns how a customer's new VA number is named.
func vaRule(vaMap, template string) (func(store.MigrationCandidate) (string, error), error) {
	switch {
	case (vaMap == "") == (template == ""):
		return nil, usageErr("customers migrate: give --va-map FILE.csv or --va-template (such as \"N{old}\"), one of them")
	case template != "":
		if !strings.Contains(template, "{ref}") && !strings.Contains(template, "{id}") && !strings.Contains(template, "{old}") {
			return nil, usageErr("--va-template %q names no customer: use {ref}, {id} or {old}", template)
		}
		return func(c store.MigrationCandidate) (string, error) {
			if c.VANumber == "" && strings.Contains(template, "{old}") {
				return "", errors.New("no current virtual account to build {old} from")
			}
			return strings.NewReplacer("{ref}", c.Ref, "{id}", strconv.FormatInt(c.ID, 10), "{old}", c.VANumber).Replace(template), nil
		}, nil
	}
	m, err := readVAMap(vaMap)
	if err != nil {
		return nil, err
	}
	return func(c store.MigrationCandidate) (string, error) {
		if n, ok := m[c.Ref]; ok {
			return n, nil
		}
		return "", fmt.Errorf("no virtual account for %s in %s", c.Ref, vaMap)
	}, nil
}

// readVAMap reads the --va-map file; every bad row is reported.
func readVAMap(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--va-map: %w", err)
	}
	defer f.Close()
	m, bad, err := customercsv.ParseVAMap(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, usageErr("%s: %v", path, err)
	}
	if len(bad) > 0 {
		rows := make([]string, len(bad))
		for i, b := range bad {
			rows[i] = fmt.Sprintf("%s:%d: %s", path, b.Line, b.Msg)
		}
		return nil, usageErr("%d bad rows; nothing was moved:\n  %s", len(bad), strings.Join(rows, "\n  "))
	}
	return m, nil
}

// openedAt asks the provider's bank which of the numbers it knows.
func openedAt(cmd *cobra.Command, cfg *config.Config, provider string) (func(context.Context, []string) (map[string]bool, error), error) {
	router, _, _, err := buildBanks(cfg, newLogger(cfg.Log, cmd.ErrOrStderr()), nil, nil)
	if err != nil {
		return nil, err
	}
	b, err := router.Bank(provider)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, numbers []string) (map[string]bool, error) {
		open := make(map[string]bool, len(numbers))
		for chunk := range slices.Chunk(numbers, 100) {
			balances, err := b.Balances(ctx, chunk)
			if err != nil {
				return nil, fmt.Errorf("%w (use --no-bank-check to skip the check)", err)
			}
			for _, bal := range balances {
				open[bal.Account] = true
			}
		}
		return open, nil
	}, nil
}

func printMigration(w io.Writer, out store.MigrateOutcome, to string, asJSON bool) error {
	for i := range out.Moved {
		m := &out.Moved[i]
		m.OldVA, m.NewVA = pipeline.AccountNumber(m.OldVA).Masked(), pipeline.AccountNumber(m.NewVA).Masked()
	}
	if asJSON {
		return writeJSON(w, out)
	}
	verb := "moved"
	if out.DryRun {
		verb = "dry run: would move"
	}
	for _, m := range out.Moved {
		fmt.Fprintf(w, "%s %s from %s to %s: new VA %s; old VA %s still polled\n", verb, m.Ref, m.From, m.To, m.NewVA, m.OldVA)
	}
	for _, s := range out.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.Ref, s.Reason)
	}
	fmt.Fprintf(w, "%s %d customers to %s, skipped %d; %d still to move\n", verb, len(out.Moved), to, len(out.Skipped), out.Remaining)
	return nil
}

func newCustomersPaydayCmd(g *globals) *cobra.Command {
	var o opFlags
	var day int
	var employer string
	cmd := &cobra.Command{
		Use:   "payday (REF [--day N] [--employer NAME] | --employer NAME --day N) [--reason TEXT]",
		Short: "Show or set when a customer or an employer pays salaries (the poller watches paydays closely)",
		Long: `With REF alone: show the customer's payday and where it comes from. With REF and --day N
(0 clears it) or --employer NAME ("" clears it): set the customer's own payday or employer.
With --employer NAME --day N and no REF: set the employer's payday for every customer naming it.
A customer's payday is the first of: its own, its employer's, the one learned from its deposits.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			changed := cmd.Flags().Changed
			_, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			ctx := cmd.Context()
			switch {
			case len(args) == 0:
				if !changed("employer") || !changed("day") || employer == "" {
					return usageErr("customers payday: give REF, or --employer NAME --day N")
				}
				a, err := o.audit("customers payday", map[string]any{"employer": employer, "day": day})
				if err != nil {
					return err
				}
				n, err := db.SetEmployerPayday(ctx, employer, day, a)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "employer %s pays on day %d; %d customers name it\n", employer, day, n)
				return nil
			case !changed("day") && !changed("employer"):
				p, err := db.GetCustomerPayday(ctx, args[0])
				if err != nil {
					return err
				}
				return printPayday(cmd.OutOrStdout(), p, o.asJSON)
			}
			var patch store.PaydayPatch
			if changed("day") {
				patch.Payday = &day
			}
			if changed("employer") {
				patch.Employer = &employer
			}
			a, err := o.audit("customers payday", map[string]any{"customer": args[0], "day": patch.Payday, "employer": patch.Employer})
			if err != nil {
				return err
			}
			p, err := db.SetCustomerPayday(ctx, args[0], patch, a)
			if err != nil {
				return err
			}
			return printPayday(cmd.OutOrStdout(), p, o.asJSON)
		},
	}
	o.register(cmd, false)
	cmd.Flags().IntVar(&day, "day", 0, "day of month 1..31 (a shorter month uses its last day); 0 clears a customer's")
	cmd.Flags().StringVar(&employer, "employer", "", "employer reference")
	return cmd
}

func printPayday(w io.Writer, p store.CustomerPayday, asJSON bool) error {
	if asJSON {
		return writeJSON(w, p)
	}
	if p.Effective == 0 {
		_, err := fmt.Fprintf(w, "customer %s: payday unknown (polled on the idle schedule until a deposit teaches it)\n", p.Ref)
		return err
	}
	_, err := fmt.Fprintf(w, "customer %s: payday %d (%s)\n", p.Ref, p.Effective, p.Source)
	return err
}
