package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// opFlags are the flags every state-changing command takes.
type opFlags struct {
	reason string
	actor  string
	dryRun bool
	asJSON bool
}

func (o *opFlags) register(cmd *cobra.Command, dryRun bool) {
	cmd.Flags().StringVar(&o.reason, "reason", "", "why (required; kept in the audit log)")
	cmd.Flags().StringVar(&o.actor, "actor", defaultActor(), "who runs the command, as the audit log records it beside the database user; "+
		"letters, digits and . _ - @ + : / \\ (e.g. kim.lee or kim@ops.example); defaults to the OS user")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the outcome as JSON")
	if dryRun {
		cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print exactly what would happen; change nothing and write no audit row")
	}
}

func (o *opFlags) audit(command string, args map[string]any) (store.Audit, error) {
	if strings.TrimSpace(o.reason) == "" {
		return store.Audit{}, &exitError{code: 2, err: errors.New("--reason is required: say why, it goes into the audit log")}
	}
	if err := store.CheckActor(o.actor); err != nil {
		return store.Audit{}, &exitError{code: 2, err: fmt.Errorf("--actor: %w; nothing was changed", err)}
	}
	return store.Audit{Actor: o.actor, Command: command, Args: args, Reason: o.reason}, nil
}

func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// settlementOp is replay, cancel or compensate of one settlement.
type settlementOp func(db *store.DB, ctx context.Context, id int64, a store.Audit, dryRun bool) (store.Outcome, error)

// opFor is the operator command to run with the configuration loaded.
type opFor func(cfg *config.Config) settlementOp

// withoutConfig is an operator command that reads nothing of the
// configuration.
func withoutConfig(op settlementOp) opFor { return func(*config.Config) settlementOp { return op } }

// settlementOps are settle replay, cancel and compensate, by name: the
// commands run them, and so do the Slack buttons (slackOps).
var settlementOps = map[string]opFor{
	store.CommandReplay:     replayWith,
	store.CommandCancel:     withoutConfig((*store.DB).Cancel),
	store.CommandCompensate: withoutConfig((*store.DB).Compensate),
}

func newReplayCmd(g *globals) *cobra.Command {
	var o opFlags
	var since, provider string
	cmd := &cobra.Command{
		Use:   "replay [SETTLEMENT_ID] --reason TEXT",
		Short: "Re-drive a FAILED settlement from its failed step (or many with --failed-since)",
		Long: "Re-drive a FAILED settlement from its failed step. DONE steps are never repeated and keep their\n" +
			"accounts; the failed step and the steps after it are routed again: engine accounts from the\n" +
			"configuration as it is now, the payout account from the customer's record (--dry-run shows old → new).\n" +
			"A step the bank refused, or never acted on but whose accounts changed, gets a new attempt with a new\n" +
			"key; one the bank never acted on is otherwise sent again with the same key. Refused while an attempt's\n" +
			"outcome is unknown, when the provider is no longer configured, or when the customer is CLOSED. A SETTLED settlement whose NOTIFY gave up sends its event to the lender's app again\n" +
			"(same event ID); it stays SETTLED. Replaying any other settlement that is not FAILED changes nothing\n" +
			"and says so.\n" +
			"With --failed-since TIME (RFC 3339 or a duration such as 2h) every FAILED settlement updated since\n" +
			"then is replayed, optionally only at --provider.",
		Example: "  # see what a replay would change, then replay\n" +
			"  settle replay 42 --dry-run --reason \"payout account fixed, ticket OPS-12\"\n" +
			"  settle replay 42 --reason \"payout account fixed, ticket OPS-12\"\n" +
			"  # every settlement that failed at one provider in the last two hours, listed first\n" +
			"  settle replay --failed-since 2h --provider sandbox --dry-run --reason \"bank outage over\"\n" +
			"  settle replay --failed-since 2026-12-07T09:00:00+09:00 --reason \"bank outage over\"",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (since != "") {
				return &exitError{code: 2, err: errors.New("replay: give either a SETTLEMENT_ID or --failed-since TIME, exactly one of them")}
			}
			a, err := o.audit("replay", map[string]any{"args": args, "failed_since": since, "provider": provider, "dry_run": o.dryRun})
			if err != nil {
				return err
			}
			if since != "" {
				return replayMany(cmd, g, o, a, since, provider)
			}
			id, err := parseID("SETTLEMENT_ID", args[0])
			if err != nil {
				return err
			}
			return runSettlementOp(cmd, g, o, a, id, settlementOps[store.CommandReplay])
		},
	}
	o.register(cmd, true)
	cmd.Flags().StringVar(&since, "failed-since", "", "replay every FAILED settlement updated since this time (RFC 3339) or duration ago (2h)")
	cmd.Flags().StringVar(&provider, "provider", "", "with --failed-since: only settlements at this provider")
	return cmd
}

func newCancelCmd(g *globals) *cobra.Command {
	var o opFlags
	cmd := &cobra.Command{
		Use:   "cancel SETTLEMENT_ID --reason TEXT",
		Short: "Stop a settlement before any money moved (the deposit stays in the virtual account)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("SETTLEMENT_ID", args[0])
			if err != nil {
				return err
			}
			a, err := o.audit("cancel", map[string]any{"settlement": id, "dry_run": o.dryRun})
			if err != nil {
				return err
			}
			return runSettlementOp(cmd, g, o, a, id, settlementOps[store.CommandCancel])
		},
	}
	o.register(cmd, true)
	return cmd
}

func newCompensateCmd(g *globals) *cobra.Command {
	var o opFlags
	cmd := &cobra.Command{
		Use:   "compensate SETTLEMENT_ID --reason TEXT",
		Short: "Reverse a FAILED settlement's completed legs: money back to the virtual account, obligation restored",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("SETTLEMENT_ID", args[0])
			if err != nil {
				return err
			}
			a, err := o.audit("compensate", map[string]any{"settlement": id, "dry_run": o.dryRun})
			if err != nil {
				return err
			}
			return runSettlementOp(cmd, g, o, a, id, settlementOps[store.CommandCompensate])
		},
	}
	o.register(cmd, true)
	return cmd
}

// replayWith replays a settlement, re-reading its engine accounts from
// the configuration the command loaded (see store.DB.Replay).
func replayWith(cfg *config.Config) settlementOp {
	return func(db *store.DB, ctx context.Context, id int64, a store.Audit, dryRun bool) (store.Outcome, error) {
		return db.Replay(ctx, id, engineAccounts(cfg), a, dryRun)
	}
}

// runSettlementOp runs one operator command, prints its outcome and wakes
// the step it made READY.
func runSettlementOp(cmd *cobra.Command, g *globals, o opFlags, a store.Audit, id int64, op opFor) error {
	cfg, db, err := g.openStore(cmd)
	if err != nil {
		return err
	}
	defer db.Close()
	out, err := op(cfg)(db, cmd.Context(), id, a, o.dryRun)
	if errors.Is(err, store.ErrNothingToDo) {
		printNothingToDo(cmd.OutOrStdout(), err)
		return nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("settlement %d does not exist: see 'settle settlements list'", id)
	}
	if err != nil {
		return err
	}
	if !o.dryRun && out.Enqueue.ID != 0 {
		out.Changes = append(out.Changes, wakeStep(cmd.Context(), cfg, out.Enqueue))
	}
	return printOutcome(cmd.OutOrStdout(), o.asJSON, out)
}

// printNothingToDo says why a command changed nothing (store.ErrNothingToDo).
func printNothingToDo(w io.Writer, err error) {
	line, _ := store.NothingToDoText(err)
	fmt.Fprint(w, line)
}

func printOutcome(w io.Writer, asJSON bool, out store.Outcome) error {
	if asJSON {
		return writeJSON(w, out)
	}
	_, err := io.WriteString(w, out.Text())
	return err
}

// wakeStep enqueues a step an operator made READY. If Redis cannot be
// reached the READY relay enqueues it on its next run, so this never fails
// the command.
func wakeStep(ctx context.Context, cfg *config.Config, ref pipeline.StepRef) string {
	opt, err := redisOpt(cfg)
	if err != nil {
		return notQueued(ref, err)
	}
	q := jobs.NewQueue(opt, cfg.Worker.BankTimeout+20*time.Second)
	defer q.Close()
	return wakeOn(ctx, q, ref)
}

// wakeOn enqueues a step an operator made READY on q and says so, or why
// the READY relay will.
func wakeOn(ctx context.Context, q *jobs.Queue, ref pipeline.StepRef) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := q.EnqueueStep(ctx, ref); err != nil {
		return notQueued(ref, err)
	}
	return fmt.Sprintf("step %d is queued for a worker", ref.ID)
}

func notQueued(ref pipeline.StepRef, err error) string {
	return fmt.Sprintf("step %d is READY; it could not be queued now (%v), the READY relay queues it on its next run", ref.ID, err)
}

// replayManyRow is one settlement of replay --failed-since, in --json.
type replayManyRow struct {
	ID         int64  `json:"id"`
	Customer   string `json:"customer"`
	FailedStep string `json:"failed_step"`
	Reason     string `json:"reason"`
	// Outcome is replayed (would_replay in a dry run), nothing_to_do or
	// refused; Detail says what the replay does, or why not.
	Outcome string `json:"outcome"`
	Detail  string `json:"detail"`
}

func replayMany(cmd *cobra.Command, g *globals, o opFlags, a store.Audit, since, provider string) error {
	from, err := parseSince(since)
	if err != nil {
		return err
	}
	cfg, db, err := g.openStore(cmd)
	if err != nil {
		return err
	}
	defer db.Close()
	failed, err := db.FailedSettlements(cmd.Context(), from, provider)
	if err != nil {
		return err
	}
	bar := newProgress(cmd.ErrOrStderr(), len(failed), "replay")
	var replayed, refused int
	rows := make([]replayManyRow, 0, len(failed))
	for _, f := range failed {
		out, err := db.Replay(cmd.Context(), f.ID, engineAccounts(cfg), a, o.dryRun)
		row := replayManyRow{ID: f.ID, Customer: f.CustomerRef, FailedStep: strings.TrimSpace(string(f.StepKind) + " " + string(f.StepStatus)), Reason: f.Reason}
		switch {
		case errors.Is(err, store.ErrNothingToDo):
			row.Outcome, row.Detail = "nothing_to_do", err.Error()
		case err != nil:
			refused++
			row.Outcome, row.Detail = "refused", err.Error()
			if !o.dryRun {
				bar.note(fmt.Sprintf("settlement %d: %v", f.ID, err))
			}
		default:
			replayed++
			row.Outcome = "replayed"
			if o.dryRun {
				row.Outcome = "would_replay"
			}
			row.Detail = strings.Join(out.Changes[min(2, len(out.Changes)):], "; ") // the first two say FAILED → RUNNING, and the step → READY
			if !o.dryRun && out.Enqueue.ID != 0 {
				wakeStep(cmd.Context(), cfg, out.Enqueue)
			}
		}
		rows = append(rows, row)
		bar.step()
	}
	bar.done()
	if err := printReplayMany(cmd.OutOrStdout(), o, rows, replayed, refused, localTime(from, cfg.Location()), from); err != nil {
		return err
	}
	if refused > 0 {
		return fmt.Errorf("replay: %d settlements refused (see above)", refused)
	}
	return nil
}

// printReplayMany prints what replay --failed-since did or would do: with
// --json one object; in a dry run a line per settlement (what replay ID
// --dry-run says of each), then the count.
func printReplayMany(w io.Writer, o opFlags, rows []replayManyRow, replayed, refused int, sinceText string, since time.Time) error {
	if o.asJSON {
		return writeJSON(w, map[string]any{"since": since, "dry_run": o.dryRun, "failed": len(rows),
			"replayed": replayed, "refused": refused, "settlements": rows})
	}
	verb := "replayed"
	if o.dryRun {
		verb = "would replay"
		if len(rows) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCUSTOMER\tFAILED STEP\tREASON\tWHAT REPLAY DOES")
			for _, r := range rows {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.ID, r.Customer, r.FailedStep, r.Reason, r.Detail)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	_, err := fmt.Fprintf(w, "%s %d of %d FAILED settlements since %s; %d refused\n", verb, replayed, len(rows), sinceText, refused)
	return err
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &exitError{code: 2, err: fmt.Errorf("--failed-since %q: use RFC 3339 (2026-11-25T09:00:00Z) or a duration (2h)", s)}
	}
	return t, nil
}

func (g *globals) openStore(cmd *cobra.Command) (*config.Config, *store.DB, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, nil, oneLine(err)
	}
	db, err := openCurrentDB(cmd.Context(), cfg, nil)
	return cfg, db, err
}

func newAuditCmd(g *globals) *cobra.Command {
	var subject string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{Use: "audit", Short: "What operators asked for and what came of it: who, when, what, why and the outcome"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit log entries, newest first: applied, refused and no-op commands, with the database user and host",
		Long: "List audit log entries, newest first: who (the actor as claimed, and the database user and client host\n" +
			"PostgreSQL saw), what, why, the outcome, and for an applied command what it changed (field: before → after;\n" +
			"--json has the whole state before and after).\n\n" +
			"SEQ is the entry's place in the audit log's hash chain and runs 1, 2, 3, ... without gaps; each entry\n" +
			"carries the hash of the one before it, and settle verify (audit_chain_intact) reports an entry changed,\n" +
			"removed or written outside the chain. ID comes from a sequence that skips a value whenever an insert is\n" +
			"rolled back (a dry run writes its entry and rolls it back): a gap in ID is not a deletion, a gap in SEQ would be.",
		Example: "  settle audit list\n" +
			"  settle audit list --subject settlement:42\n" +
			"  settle audit list --subject customer:cust-0042 --json",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, db, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			rows, err := db.ListAudit(cmd.Context(), subject, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tID\tTIME\tACTOR\tDB USER\tCLIENT\tCOMMAND\tSUBJECT\tREASON\tOUTCOME\tCHANGES")
			for _, r := range rows {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.ID, localTime(r.CreatedAt, cfg.Location()), r.Actor,
					orDash(r.DBUser), orDash(r.Client), r.Command, r.Subject, r.Reason, auditOutcome(r), orDash(strings.Join(r.Changes(), "; ")))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&subject, "subject", "", "only entries about this subject, e.g. settlement:12 or customer:c-7")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many entries")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the state before and after)")
	cmd.AddCommand(list)
	return cmd
}

// auditOutcome is what an audited command did: "applied", or "refused: "
// or "nothing to do: " and why.
func auditOutcome(r store.AuditRow) string {
	label := strings.ReplaceAll(r.Outcome, "_", " ")
	if r.Outcome == store.AuditApplied {
		return label
	}
	return label + ": " + strings.TrimPrefix(r.Detail, label+": ")
}

// progress is a one-line progress bar, redrawn at every tenth of the way,
// on a terminal; it writes nothing anywhere else (a file, a pipe).
type progress struct {
	w          io.Writer
	on         bool
	total, n   int
	label      string
	lastTenths int
}

func newProgress(w io.Writer, total int, label string) *progress {
	return &progress{w: w, on: isTerminal(w) && total > 0, total: total, label: label, lastTenths: -1}
}

func (p *progress) step() {
	p.n++
	if !p.on {
		return
	}
	tenths := p.n * 10 / p.total
	if tenths == p.lastTenths && p.n != p.total {
		return
	}
	p.lastTenths = tenths
	fill := p.n * 30 / p.total
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", p.label, strings.Repeat("#", fill), strings.Repeat(".", 30-fill), p.n, p.total)
}

// note writes a line to the bar's writer, below the bar drawn so far.
func (p *progress) note(line string) {
	if p.on && p.lastTenths >= 0 {
		fmt.Fprintln(p.w)
		p.lastTenths = -1 // redraw the bar below the note
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done() {
	if p.on && p.lastTenths >= 0 {
		fmt.Fprintln(p.w)
	}
}
