package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/web"
)

func newMigrateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate up|down|status",
		Short: "Apply, roll back (one step) or list the database migrations",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a := args[0]; a != "up" && a != "down" && a != "status" {
				return &exitError{code: 2, err: fmt.Errorf("migrate: unknown action %q: use up, down or status", a)}
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return oneLine(err)
			}
			db, err := openDB(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Migrate(cmd.Context(), args[0], cmd.OutOrStdout())
		},
	}
	return cmd
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or show the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Load and validate the configuration; print every problem",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.loadConfig(); err != nil {
				return oneLine(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return nil
		},
	}, &cobra.Command{
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
