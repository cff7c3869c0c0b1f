package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/bank/dialects"
	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// newStatementListers builds a statement lister per provider whose dialect
// has one, behind the provider's throttle so that its calls share the rate
// limit, slots and breaker with settlement's; a provider whose dialect cannot
// list statements gets balance checks only.
func newStatementListers(cfg *config.Config, throttles map[string]*throttle.Bank, logger *slog.Logger) (map[string]pipeline.Statements, error) {
	out := map[string]pipeline.Statements{}
	for _, p := range cfg.Providers {
		d, err := dialects.Lookup(p.Dialect)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		if d.Statements == nil {
			continue
		}
		s, err := d.Statements(providerOptions(p, logger))
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		out[p.Name] = throttles[p.Name].Statements(s)
	}
	return out, nil
}

// newReconciler wires the reconciler over the throttled banks and the
// engine's accounts, as buildBanks returns them.
func newReconciler(db *store.DB, banks pipeline.Banks, accounts map[string]pipeline.Accounts, throttles map[string]*throttle.Bank,
	cfg *config.Config, logger *slog.Logger) (*jobs.Reconciler, error) {
	listers, err := newStatementListers(cfg, throttles, logger)
	if err != nil {
		return nil, err
	}
	return jobs.NewReconciler(db, banks, jobs.ReconcileConfig{
		Accounts: accounts, Statements: listers, Location: cfg.Location(),
	}, logger), nil
}

func newReconcileCmd(g *globals) *cobra.Command {
	var date, provider string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reconcile [--date YYYY-MM-DD] [--provider P] [--json]",
		Short: "Compare the ledger and transfers with each bank's balances and statements; exit 3 on a difference",
		Long: "Compare every account settle moves money through at each provider (virtual accounts, collection,\n" +
			"lender, holding, fee) with the bank: balances as they are now, and the bank's statements from the\n" +
			"start of --date (default: yesterday; days are those of time_zone) matched with settle's transfers by\n" +
			"idempotency key, then amount and date. Each difference is stored once as a finding and alerted once;\n" +
			"nothing is ever corrected automatically. See 'settle reconcile findings'. Exit 3 when a difference\n" +
			"was seen.",
		Example: "  # from the start of yesterday in time_zone, every provider\n" +
			"  settle reconcile\n" +
			"  settle reconcile --date 2026-12-06 --provider sandbox\n" +
			"  settle reconcile findings list --open",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return oneLine(err)
			}
			opt, err := reconcileOptions(cfg, date, provider, time.Now())
			if err != nil {
				return err
			}
			return runReconcile(cmd, cfg, opt, asJSON)
		},
	}
	cmd.Flags().StringVar(&date, "date", "", "reconcile from the start of this day (YYYY-MM-DD, in time_zone); default yesterday")
	cmd.Flags().StringVar(&provider, "provider", "", "only this provider")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(newFindingsCmd(g))
	return cmd
}

// reconcileOptions checks --date (a day up to today in time_zone) and
// --provider (a configured provider) before anything is opened.
func reconcileOptions(cfg *config.Config, date, provider string, now time.Time) (jobs.ReconcileOptions, error) {
	opt := jobs.ReconcileOptions{Provider: provider}
	names := cfg.ProviderNames()
	if provider != "" && !slices.Contains(names, provider) {
		return opt, &exitError{code: 2, err: fmt.Errorf("--provider %q: no such provider; configured: %s", provider, strings.Join(names, ", "))}
	}
	if date == "" {
		return opt, nil
	}
	day, err := time.ParseInLocation(time.DateOnly, date, cfg.Location())
	if err != nil {
		return opt, &exitError{code: 2, err: fmt.Errorf("--date %q: use YYYY-MM-DD, such as 2026-11-25", date)}
	}
	if day.After(now) {
		return opt, &exitError{code: 2, err: fmt.Errorf("--date %s is in the future in %s: give a day up to today", date, cfg.TimeZone)}
	}
	opt.Since = day
	return opt, nil
}

func runReconcile(cmd *cobra.Command, cfg *config.Config, opt jobs.ReconcileOptions, asJSON bool) error {
	db, err := openCurrentDB(cmd.Context(), cfg, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	logger := newLogger(cfg.Log, cmd.ErrOrStderr())
	banks, accounts, throttles, err := buildBanks(cfg, logger, nil, nil)
	if err != nil {
		return err
	}
	rec, err := newReconciler(db, banks, accounts, throttles, cfg, logger)
	if err != nil {
		return err
	}
	res, runErr := rec.Run(cmd.Context(), opt)
	if errors.Is(runErr, store.ErrReconcileBusy) {
		return fmt.Errorf("%w: wait for it to finish (the daily job, or another 'settle reconcile')", runErr)
	}
	if res.RunID == 0 && runErr != nil {
		return runErr
	}
	if asJSON {
		err = writeJSON(cmd.OutOrStdout(), res)
	} else {
		err = printReconcile(cmd.OutOrStdout(), res, cfg.Location(), coloursFor(cmd.OutOrStdout()))
	}
	switch {
	case err != nil:
		return err
	case runErr != nil:
		return fmt.Errorf("%w (the providers that could be read were reconciled; run again later)", runErr)
	case res.Findings > 0:
		return &exitError{code: 3, err: fmt.Errorf("reconcile: %d differences (%d new): see 'settle reconcile findings list --open'", res.Findings, res.New)}
	}
	return nil
}

func printReconcile(w io.Writer, res jobs.ReconcileResult, loc *time.Location, c colours) error {
	fmt.Fprintf(w, "reconciliation run %d: transactions from %s, balances as of now\n", res.RunID, localTime(res.From, loc))
	for _, p := range res.Providers {
		lists := fmt.Sprintf("%d statement lines, %d matched by key, %d by amount and date, %d in flight",
			p.Lines, p.Matched, p.MatchedByAmount, p.InFlight)
		if !p.Statements {
			lists = "no statements (its dialect cannot list them): balances only"
		}
		fmt.Fprintf(w, "%s: %d accounts; %s; %d credits not settled yet (%s)\n", p.Provider, p.Accounts, lists, p.PendingCredits, pipeline.Grouped(p.PendingAmount))
		if p.Error != "" {
			fmt.Fprintf(w, "  %s %s\n", c.paint("ERROR"), p.Error)
		}
		for _, f := range p.Findings {
			state := "seen before"
			if f.New {
				state = "NEW"
			}
			fmt.Fprintf(w, "  finding %d %s (%s): %s\n", f.ID, f.Kind, c.paint(state), f.Detail)
		}
	}
	switch unread := slices.ContainsFunc(res.Providers, func(p jobs.ProviderReconcile) bool { return p.Error != "" }); {
	case res.Findings == 0 && unread:
		fmt.Fprintln(w, "no differences at the providers that could be read")
	case res.Findings == 0:
		fmt.Fprintln(w, "no differences")
	}
	return nil
}

func newFindingsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "findings", Short: "List reconciliation findings; acknowledge or resolve one"}
	cmd.AddCommand(newFindingsListCmd(g), newFindingsResolveCmd(g))
	return cmd
}

func newFindingsListCmd(g *globals) *cobra.Command {
	var f store.FindingFilter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--open] [--json]",
		Short: "List findings, newest first",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Limit < 1 || f.Limit > 100000 {
				return &exitError{code: 2, err: fmt.Errorf("--limit %d: use 1..100000", f.Limit)}
			}
			_, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			rows, err := db.ListFindings(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			return printFindings(cmd.OutOrStdout(), rows, coloursFor(cmd.OutOrStdout()))
		},
	}
	cmd.Flags().BoolVar(&f.Open, "open", false, "only findings not resolved (OPEN or ACKNOWLEDGED)")
	cmd.Flags().StringVar(&f.Provider, "provider", "", "only this provider")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printFindings(w io.Writer, rows []store.FindingRow, c colours) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\t"+c.paint("STATUS")+"\tPROVIDER\tKIND\tACCOUNT\tKEY\tENGINE\tBANK\tSEEN\tDETAIL")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d×\t%s\n", r.ID, c.paint(string(r.Status)), r.Provider, r.Kind, r.Account,
			orDash(r.Key), pipeline.Grouped(r.EngineAmount()), pipeline.Grouped(r.BankAmount), r.SeenCount, r.Detail)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no findings)")
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newFindingsResolveCmd(g *globals) *cobra.Command {
	var o opFlags
	var ack bool
	cmd := &cobra.Command{
		Use:   "resolve FINDING_ID --reason TEXT [--ack]",
		Short: "Resolve a finding (or acknowledge it with --ack), with the reason in the audit log",
		Long: "Resolve a finding once what it reports was dealt with, or acknowledge it (--ack) to accept it as\n" +
			"explained while it stays listed with --open. Both are audited. Neither moves money nor writes the\n" +
			"ledger: a correction is made at the bank or with settle's own commands, and shows up in the next run.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("FINDING_ID", args[0])
			if err != nil {
				return err
			}
			a, err := o.audit("reconcile findings resolve", map[string]any{"finding": id, "ack": ack})
			if err != nil {
				return err
			}
			_, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			row, err := db.ActOnFinding(cmd.Context(), id, ack, a)
			switch {
			case errors.Is(err, store.ErrNothingToDo):
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to do:", err)
				return nil
			case errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("finding %d does not exist: see 'settle reconcile findings list'", id)
			case err != nil:
				return err
			}
			if o.asJSON {
				return writeJSON(cmd.OutOrStdout(), row)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "finding %d is %s by %s: %s\n", row.ID, row.Status, row.ActedBy, row.ActedReason)
			return nil
		},
	}
	o.register(cmd, false)
	cmd.Flags().BoolVar(&ack, "ack", false, "acknowledge instead of resolving")
	return cmd
}
