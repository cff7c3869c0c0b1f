package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/store"
	"github.com/settle-dev/settle/web"
)

func newMigrateCmd(g *globals) *cobra.Command {
	var o opFlags
	cmd := &cobra.Command{
		Use:   "migrate up|down|status",
		Short: "Apply, roll back (one step) or list the database migrations",
		Long: "Apply every pending migration (up), roll back the newest one (down) or list them (status, --json).\n" +
			"down changes the schema like any operator command changes state: it needs --reason, takes --actor and\n" +
			"--dry-run, and writes its audit row (subject \"schema\") before it rolls back, applied or refused.",
		Example: "  settle migrate status\n" +
			"  settle migrate status --json\n" +
			"  settle migrate up\n" +
			"  settle migrate down --dry-run --reason \"back to the schema of the release before\"",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			action := args[0]
			if action != "up" && action != "down" && action != "status" {
				return &exitError{code: 2, err: fmt.Errorf("migrate: unknown action %q: use up, down or status", action)}
			}
			if action != "down" {
				for _, f := range []string{"reason", "actor", "dry-run", "json"} {
					if cmd.Flags().Changed(f) && (f != "json" || action != "status") {
						return usageErr("migrate %s: --%s is for migrate down", action, f)
					}
				}
			}
			var a store.Audit
			if action == "down" {
				var err error
				if a, err = o.audit("migrate down", map[string]any{"dry_run": o.dryRun}); err != nil {
					return err
				}
			}
			cfg, err := g.loadConfigFor(config.Uses{NoRedis: true, NoBanks: true, NoSlack: true}) // the database alone
			if err != nil {
				return oneLine(err)
			}
			db, err := openDB(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			switch action {
			case "down":
				return migrateDown(cmd, db, o, a)
			case "status":
				return migrateStatus(cmd, db, cfg, o.asJSON)
			}
			return db.Migrate(cmd.Context(), action, cmd.OutOrStdout())
		},
	}
	o.register(cmd, true)
	return cmd
}

// migrateStatus lists the migrations, applied (when, in time_zone) or
// pending.
func migrateStatus(cmd *cobra.Command, db *store.DB, cfg *config.Config, asJSON bool) error {
	ms, err := db.Migrations(cmd.Context())
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), ms)
	}
	for _, m := range ms {
		state := "pending"
		switch {
		case m.AppliedAt != nil:
			state = "applied " + localTime(*m.AppliedAt, cfg.Location())
		case m.Applied:
			state = "applied"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%-24s %s\n", m.File, state)
	}
	return nil
}

// migrateDown rolls back the newest migration (store.DB.MigrateDown) and
// says what it did.
func migrateDown(cmd *cobra.Command, db *store.DB, o opFlags, a store.Audit) error {
	w := cmd.OutOrStdout()
	steps := w
	if o.asJSON {
		steps = io.Discard
	}
	rb, err := db.MigrateDown(cmd.Context(), a, o.dryRun, steps)
	if errors.Is(err, store.ErrNothingToDo) {
		printNothingToDo(w, err)
		return nil
	}
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(w, rb)
	}
	if rb.DryRun {
		fmt.Fprintf(w, "dry run: would roll back %s, the schema from version %d to %d; nothing was changed\n", rb.Migration, rb.From, rb.To)
		return nil
	}
	fmt.Fprintf(w, "rolled back %s: the schema is at version %d; settle serve of this binary refuses it until settle migrate up\n", rb.Migration, rb.To)
	return nil
}

// configCheck is what settle config check --json prints.
type configCheck struct {
	Valid    bool     `json:"valid"`
	Problems []string `json:"problems"` // one per line of the text output
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or show the configuration"}
	var asJSON bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Load and validate the configuration; print every problem",
		Example: "  settle config check --config /etc/settle/settle.yaml\n" +
			"  settle config check --json",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := g.loadConfig()
			if asJSON {
				res := configCheck{Valid: err == nil, Problems: []string{}}
				if err != nil {
					res.Problems = strings.Split(err.Error(), "\n")
				}
				if werr := writeJSON(cmd.OutOrStdout(), res); werr != nil {
					return werr
				}
			}
			if err != nil {
				return oneLine(err)
			}
			if !asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			}
			return nil
		},
	}
	check.Flags().BoolVar(&asJSON, "json", false, "print the outcome as JSON: valid, and every problem")
	cmd.AddCommand(check, &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration with secrets redacted",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return oneLine(err)
			}
			out, err := cfg.Redacted()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})
	return cmd
}

func newBanksimCmd() *cobra.Command {
	var addr, token string
	cmd := &cobra.Command{
		Use:   "banksim",
		Short: "Run the sandbox bank (rest and openbanking dialects plus /sandbox endpoints) for demos and tests",
		Long: "Run the sandbox bank: an in-memory bank speaking both dialects of docs/bank-api.md (rest and openbanking),\n" +
			"with /sandbox endpoints to create accounts, credit them, inject faults and read the journal.\n" +
			"The bearer token comes from --token or SETTLE_BANKSIM_TOKEN.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv("SETTLE_BANKSIM_TOKEN")
			}
			if token == "" {
				return &exitError{code: 2, err: errors.New("banksim: no token: pass --token or set SETTLE_BANKSIM_TOKEN")}
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("banksim: listen on %s: %w: pick a free address with --addr", addr, err)
			}
			srv := web.NewServer(banksim.New(banksim.Options{Token: token, Logger: logger}))
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			logger.Info("sandbox bank listening", "url", "http://"+ln.Addr().String())
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("banksim: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8181", "address to listen on (HOST:PORT)")
	cmd.Flags().StringVar(&token, "token", "", "bearer token clients must send (default $SETTLE_BANKSIM_TOKEN)")
	return cmd
}
