package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/store"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the money invariants in the database; exit 3 on any violation",
		Long: "Check that the ledger balances, every settlement's legs add up to its deposit, no step has\n" +
			"more than one successful transfer, DONE steps have exactly one transfer and journal, steps\n" +
			"completed in order, and no settlement is open without a live step.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := g.openForRead(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			vs, err := db.Verify(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), vs); err != nil {
					return err
				}
			} else {
				printViolations(cmd.OutOrStdout(), vs)
			}
			if len(vs) > 0 {
				return &exitError{code: 3, err: fmt.Errorf("verify: %d violations", len(vs))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print violations as JSON")
	return cmd
}

func printViolations(w io.Writer, vs []store.Violation) {
	for _, v := range vs {
		fmt.Fprintf(w, "VIOLATION %s settlement=%d: %s\n", v.Check, v.SettlementID, v.Detail)
	}
	if len(vs) == 0 {
		fmt.Fprintln(w, "all invariants hold")
	}
}
