// Command settle is the settlement engine's daemon and operator tool:
// `settle serve` runs the poller, workers and HTTP endpoints; the other
// subcommands migrate the database, run the sandbox bank, and let operators
// see what happened.
//
// Exit codes: 0 success, 1 failure (the message says what to do), 2 bad
// usage, 3 `settle verify` found violations or `settle reconcile` found
// differences.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
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
	)
	explainDenied(root)
	return root
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
