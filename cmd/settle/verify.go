package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/dialects"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var asJSON, withJournal bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the money invariants; exit 3 on any violation",
		Long: "Check that the ledger balances, each VA and each account in the ledger holds what was recorded\n" +
			"moving through it (a deposit is counted once), every settlement's legs add up to its deposit, no step has\n" +
			"more than one successful transfer, DONE steps have exactly one transfer and journal, steps\n" +
			"completed in order, no settlement is open without a live step, and the audit log's hash chain is\n" +
			"intact (audit_chain_intact names the first entry changed, removed or written outside it). With --bank-journal, also\n" +
			"check that each provider's journal holds exactly the transfers recorded as succeeded, each\n" +
			"once (for banks that can list their journal, such as the sandbox bank).\n" +
			"Each broken check also raises an alert (one per check; the same violations raise nothing new),\n" +
			"and a check that holds again resolves its alert. settle serve runs the same checks on\n" +
			"verify.schedule.",
		Example: "  settle verify\n" +
			"  # also compare each bank's journal with the transfers recorded (the sandbox bank can list it)\n" +
			"  settle verify --bank-journal --json",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return oneLine(err)
			}
			db, err := openCurrentDB(cmd.Context(), cfg, nil)
			if err != nil {
				return err
			}
			defer db.Close()
			vs, err := db.Verify(cmd.Context())
			if err != nil {
				return err
			}
			if withJournal {
				more, err := verifyJournals(cmd.Context(), cmd.ErrOrStderr(), cfg, db)
				if err != nil {
					return err
				}
				vs = append(vs, more...)
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), vs); err != nil {
					return err
				}
			} else {
				printViolations(cmd.OutOrStdout(), vs, coloursFor(cmd.OutOrStdout()))
			}
			reportViolations(cmd.Context(), cmd.ErrOrStderr(), db, vs, withJournal)
			if len(vs) > 0 {
				return &exitError{code: 3, err: fmt.Errorf("verify: %d violations", len(vs))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print violations as JSON")
	cmd.Flags().BoolVar(&withJournal, "bank-journal", false, "also compare each provider's journal with the recorded transfers")
	return cmd
}

// verifyJournals compares each provider's journal, where it can list one,
// with the transfers recorded as succeeded there (jobs.VerifyJournal),
// each journal key read back into the engine's attempt key by the mapping
// of the provider's dialect.
func verifyJournals(ctx context.Context, notes io.Writer, cfg *config.Config, db *store.DB) ([]store.Violation, error) {
	var out []store.Violation
	for _, p := range cfg.Providers {
		d, err := dialects.Lookup(p.Dialect)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		client := banksim.NewClient(p.BaseURL, p.Token.Reveal(), nil)
		vs, err := jobs.VerifyJournal(ctx, db, p.Name, func(ctx context.Context) ([]pipeline.BankTransfer, error) {
			journal, err := client.Journal(ctx, 0)
			return banksim.BankTransfers(journal, d.AttemptKey), err
		})
		var apiErr *banksim.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
			fmt.Fprintf(notes, "provider %s cannot list its journal; not compared\n", p.Name)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

// reportViolations raises an alert for every broken check and resolves the
// alerts of the checks that hold again, saying so on notes. A failure to
// reach the outbox is noted and does not change the exit code, which
// reports the invariants.
func reportViolations(ctx context.Context, notes io.Writer, db *store.DB, vs []store.Violation, withJournal bool) {
	checked := store.InvariantChecks()
	if withJournal {
		checked = append(checked, jobs.JournalChecks()...)
	}
	res, err := jobs.ReportViolations(ctx, db, vs, checked)
	if err != nil {
		fmt.Fprintf(notes, "could not update the alert outbox (%v); the violations above stand\n", err)
	}
	if len(res.Raised) > 0 {
		fmt.Fprintf(notes, "alert raised for %s; settle serve delivers it\n", strings.Join(res.Raised, ", "))
	}
	if len(res.Resolved) > 0 {
		fmt.Fprintf(notes, "alert resolved for %s: it holds again\n", strings.Join(res.Resolved, ", "))
	}
}

func printViolations(w io.Writer, vs []store.Violation, c colours) {
	for _, v := range vs {
		fmt.Fprintf(w, "%s %s settlement=%d: %s\n", c.paint("VIOLATION"), v.Check, v.SettlementID, v.Detail)
	}
	if len(vs) == 0 {
		fmt.Fprintln(w, "all invariants hold")
	}
}
