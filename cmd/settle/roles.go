package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/store"
)

// explainDenied wraps every command under c so that PostgreSQL refusing a
// privilege says which database role the command needs (docs/security.md).
func explainDenied(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return withRoleHint(cmd, run(cmd, args))
		}
	}
	for _, sub := range c.Commands() {
		explainDenied(sub)
	}
}

// withRoleHint adds to a refused privilege what to connect as instead.
func withRoleHint(cmd *cobra.Command, err error) error {
	if !store.PermissionDenied(err) {
		return err
	}
	if cmd.CommandPath() == "settle migrate" {
		return fmt.Errorf("%w: run settle migrate as the user that owns the schema, not a member of %s or %s (docs/security.md)",
			err, store.DaemonRole, store.OperatorRole)
	}
	return fmt.Errorf("%w: the user of database.url may not do this; commands that change state need a member of %s, %s only reads (docs/security.md)",
		err, store.DaemonRole, store.OperatorRole)
}
