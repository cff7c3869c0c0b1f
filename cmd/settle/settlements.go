package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

func newSettlementsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "settlements", Short: "List settlements or show one with its step timeline"}
	var status, customer, provider, from, to string
	var limit int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List settlements, newest first",
		Example: "  settle settlements list --status failed\n" +
			"  settle settlements list --customer cust-0042 --from 24h\n" +
			"  settle settlements list --provider sandbox --from 2026-12-07T00:00:00+09:00 --to 2026-12-08T00:00:00+09:00 --json",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := listFlags(status, pipeline.SettlementStatuses, limit)
			if err != nil {
				return err
			}
			cfg, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			f := store.SettlementFilter{Status: st, CustomerRef: customer, Provider: provider, Limit: limit}
			for _, d := range []struct {
				flag, value string
				dst         *time.Time
			}{{"--from", from, &f.From}, {"--to", to, &f.To}} {
				if d.value == "" {
					continue
				}
				t, err := parseSince(d.value)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("%s %q: use RFC 3339 (2026-11-25T09:00:00Z) or a duration ago (2h)", d.flag, d.value)}
				}
				*d.dst = t
			}
			rows, err := db.ListSettlements(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			return printSettlements(cmd.OutOrStdout(), rows, cfg.Location(), coloursFor(cmd.OutOrStdout()))
		},
	}
	list.Flags().StringVar(&status, "status", "", "only this status: "+joined(pipeline.SettlementStatuses))
	list.Flags().StringVar(&customer, "customer", "", "only this customer (external reference)")
	list.Flags().StringVar(&provider, "provider", "", "only settlements at this provider")
	list.Flags().StringVar(&from, "from", "", "created at or after (RFC 3339, or a duration ago such as 24h)")
	list.Flags().StringVar(&to, "to", "", "created before (RFC 3339, or a duration ago)")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many rows")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show SETTLEMENT_ID",
		Short: "Show a settlement, its steps and every transfer attempt",
		Example: "  settle settlements show 42\n" +
			"  settle settlements show 42 --json",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("SETTLEMENT_ID", args[0])
			if err != nil {
				return err
			}
			cfg, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			d, err := db.GetSettlement(cmd.Context(), id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("settlement %d does not exist: see 'settle settlements list'", id)
			}
			if err != nil {
				return err
			}
			keys := engineAccountKeys(cfg, d.Provider)
			if showJSON {
				return writeJSON(cmd.OutOrStdout(), maskDetail(d, keys))
			}
			return printSettlement(cmd.OutOrStdout(), d, keys, cfg.Location(), coloursFor(cmd.OutOrStdout()))
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	cmd.AddCommand(list, show)
	return cmd
}

func parseID(name, s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || id <= 0 {
		return 0, &exitError{code: 2, err: fmt.Errorf("%s %q is not a positive whole number", name, s)}
	}
	return id, nil
}

// listFlags checks a list command's --status, one of statuses in any case
// ("" for all), and its --limit, 1..100000.
func listFlags[T ~string](status string, statuses []T, limit int) (T, error) {
	st := T(strings.ToUpper(status))
	if st != "" && !slices.Contains(statuses, st) {
		return "", &exitError{code: 2, err: fmt.Errorf("--status %q: use one of %s", st, joined(statuses))}
	}
	if limit < 1 || limit > 100000 {
		return "", &exitError{code: 2, err: fmt.Errorf("--limit %d: use 1..100000", limit)}
	}
	return st, nil
}

// joined lists the values for a message: "A, B, C".
func joined[T ~string](vs []T) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printSettlements(w io.Writer, rows []store.SettlementRow, loc *time.Location, c colours) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tCUSTOMER\t%s\tNOTIFIED\tDEPOSIT\tREPAY\tHOLD\tFEE\tPAYOUT\tCREATED\tREASON\n", c.paint("STATUS"))
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.CustomerRef, c.paint(string(r.Status)), notified(r),
			pipeline.Money{Amount: r.Amount, Currency: r.Currency}, pipeline.Grouped(r.Repay), pipeline.Grouped(r.Hold),
			pipeline.Grouped(r.Fee), pipeline.Grouped(r.Payout), localTime(r.CreatedAt, loc), r.FailureReason)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no settlements)")
	}
	return tw.Flush()
}

// notified says where a settlement's notification to the lender's app
// stands, in a word.
func notified(r store.SettlementRow) string {
	switch r.Notify {
	case "":
		return "-"
	case pipeline.StepDone:
		return "yes"
	case pipeline.StepReady, pipeline.StepRunning:
		if r.Status == pipeline.SettlementSettled {
			return "retrying"
		}
		return "pending"
	case pipeline.StepDead:
		return "gave up"
	case pipeline.StepCancelled:
		return "no"
	}
	return "pending"
}

// notifyLine is the settlement's notification in a sentence, for show;
// "" when it was delivered or has not come up.
func notifyLine(d store.SettlementDetail) string {
	var st *store.StepRow
	for i := range d.Steps {
		if !d.Steps[i].Kind.MovesMoney() {
			st = &d.Steps[i]
		}
	}
	if st == nil || d.Status != pipeline.SettlementSettled {
		return ""
	}
	switch st.Status {
	case pipeline.StepReady, pipeline.StepRunning:
		if st.Attempts == 0 {
			return ""
		}
		return fmt.Sprintf("Notification: not delivered yet, the lender's app did not take it on %d tries (last: %s); it retries on its own. "+
			"The money moved: nothing to compensate.", st.Attempts, st.LastError)
	case pipeline.StepDead:
		return fmt.Sprintf("Notification: gave up after %d tries (last: %s). The money moved: nothing to compensate; "+
			"settle replay %d sends the event again.", st.Attempts, st.LastError, d.ID)
	}
	return ""
}

// engineAccountKeys maps each engine account of the provider, as the
// configuration names it now, to its key: "providers[0].accounts.fee".
func engineAccountKeys(cfg *config.Config, provider string) map[string]string {
	for i, p := range cfg.Providers {
		if p.Name == provider {
			return accountsOf(p).ConfigKeys(providerKey(i))
		}
	}
	return nil
}

// stepAccount is one end of a step: the account and the role the step's
// kind gives it ("" for a REVERSE, which takes its accounts from the step it
// undoes).
type stepAccount struct {
	number string
	role   pipeline.Role
}

func stepAccounts(s store.StepRow) (from, to stepAccount) {
	fr, tr := s.Kind.Roles()
	return stepAccount{s.From, fr}, stepAccount{s.To, tr}
}

// engine reports whether the account is one of the engine's own: named by
// the configuration, or given an engine role by the step's kind (an account
// the configuration named when the step was written).
func (a stepAccount) engine(keys map[string]string) bool {
	return keys[a.number] != "" || a.role != "" && !a.role.Customer()
}

// shown is the account as JSON shows it: an engine account as it is
// configured, a customer's masked to its last four characters.
func (a stepAccount) shown(keys map[string]string) string {
	if a.number == "" || a.engine(keys) {
		return a.number
	}
	return pipeline.AccountNumber(a.number).Masked()
}

// label is the account as show prints it: an engine account the
// configuration names by its role and key, "collection
// (providers[0].accounts.collection)"; one it no longer names by its role
// and number, "fee E2E-FEEE"; a customer's masked to its last four
// characters.
func (a stepAccount) label(keys map[string]string) string {
	if key := keys[a.number]; key != "" {
		return key[strings.LastIndexByte(key, '.')+1:] + " (" + key + ")"
	}
	if a.engine(keys) {
		return string(a.role) + " " + a.number
	}
	return a.shown(keys)
}

// maskDetail hides customers' account numbers but their last four
// characters; the engine's own accounts stay as they are.
func maskDetail(d store.SettlementDetail, keys map[string]string) store.SettlementDetail {
	d.Steps = slices.Clone(d.Steps)
	for i := range d.Steps {
		from, to := stepAccounts(d.Steps[i])
		d.Steps[i].From, d.Steps[i].To = from.shown(keys), to.shown(keys)
	}
	return d
}

// printSettlement prints a settlement and its timeline: each step with the
// number of times a worker ran it (TRIES) and, under it, each transfer
// attempt (one idempotency key each) with what the bank answered.
func printSettlement(w io.Writer, d store.SettlementDetail, keys map[string]string, loc *time.Location, c colours) error {
	money := func(n int64) string { return pipeline.Money{Amount: n, Currency: d.Currency}.String() }
	fmt.Fprintf(w, "Settlement %d  customer %s (id %d)  provider %s  %s\n", d.ID, d.CustomerRef, d.CustomerID, d.Provider, c.paint(string(d.Status)))
	fmt.Fprintf(w, "Deposit %s = repay %s + hold %s + fee %s + payout %s\n", money(d.Amount), money(d.Repay), money(d.Hold), money(d.Fee), money(d.Payout))
	fmt.Fprintf(w, "Created %s", localTime(d.CreatedAt, loc))
	if d.FinishedAt != nil {
		fmt.Fprintf(w, ", finished %s (%s)", localTime(*d.FinishedAt, loc), d.FinishedAt.Sub(d.CreatedAt).Round(1e6))
	}
	fmt.Fprintln(w)
	if d.FailureReason != "" {
		fmt.Fprintf(w, "Failure: %s\n", d.FailureReason)
	}
	if line := notifyLine(d); line != "" {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SEQ\tSTEP\tKIND\tAMOUNT\tFROM\tTO\t%s\tTRIES\tLAST ERROR\n", c.paint("STATUS"))
	for _, s := range d.Steps {
		from, to := stepAccounts(s)
		amount := "-" // a NOTIFY moves no money
		if s.Kind.MovesMoney() {
			amount = money(s.Amount)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Seq, s.ID, s.Kind, amount, from.label(keys), to.label(keys),
			c.paint(string(s.Status)), s.Attempts, s.LastError)
		for _, a := range s.Transfers {
			answer := strings.TrimSpace(a.BankRef + " " + a.BankCode + " " + a.BankMessage)
			fmt.Fprintf(tw, "\t\t  attempt %d\t%s\t%s\t\t%s\t\t%s\n", a.Attempt, a.Key, localTime(a.CreatedAt, loc), c.paint(string(a.Status)), answer)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nTRIES: runs by a worker since the step was created or last replayed (worker.max_attempts bounds a money step's); "+
		"an attempt is one idempotency key, sent again unchanged after a timeout or a busy bank.")
	return err
}
