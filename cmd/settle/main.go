// Command settle is the settlement engine's daemon and operator tool:
// `settle serve` runs the poller, workers and HTTP endpoints; the other
// subcommands migrate the database, run the sandbox bank, and let operators
// see what happened.
//
// Exit codes: 0 success, 1 failure (the message says what to do), 2 bad
// usage, 3 a check failed (`settle verify`, `settle reconcile`, `settle
// bench`).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "settle:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// globals are the flags every subcommand shares.
type globals struct {
	configPath string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "settle",
		Short:         "Settlement engine: polls virtual accounts and settles payday deposits in ordered steps",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", os.Getenv("SETTLE_CONFIG"),
		"configuration file (YAML); default $SETTLE_CONFIG; SETTLE_* variables override its keys")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newServeCmd(g),
		newMigrateCmd(g),
		newConfigCmd(g),
		newSettlementsCmd(g),
		newVerifyCmd(g),
		newBanksimCmd(),
		newDemoCmd(g),
		newBenchCmd(),
		newReplayCmd(g),
		newCancelCmd(g),
		newCompensateCmd(g),
		newAuditCmd(g),
		newPlanCmd(g),
		newCustomersCmd(g),
		newReconcileCmd(g),
		newProvidersCmd(g),
		newVersionCmd(),
	)
	refuseUnknownCommands(root)
	explainDenied(root)
	return root
}

// refuseUnknownCommands makes every command that only groups others (settle,
// settle settlements, ...) refuse an unknown subcommand as bad usage, exit
// code 2, instead of printing its help and succeeding; alone, it prints its
// help.
func refuseUnknownCommands(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = unknownCommand
		c.SuggestionsMinimumDistance = 2 // cobra's own default, which SuggestionsFor does not apply
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		refuseUnknownCommands(sub)
	}
}

// unknownCommand refuses any argument of a command that only groups others,
// naming the subcommands it resembles.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if like := cmd.SuggestionsFor(args[0]); len(like) > 0 {
		msg += " (did you mean " + strings.Join(like, " or ") + "?)"
	}
	return &exitError{code: 2, err: fmt.Errorf("%s: see '%s --help'", msg, cmd.CommandPath())}
}

// usageArgs wraps cobra's argument checks so a wrong count exits 2.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%w (usage: %s)", err, cmd.UseLine())}
		}
		return nil
	}
}
