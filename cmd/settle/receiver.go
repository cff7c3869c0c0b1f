package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/web"
)

// newDemoReceiverCmd is the lender's app of the demo: it receives the NOTIFY
// step's events, checks their signature and prints them.
func newDemoReceiverCmd(g *globals) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "receiver",
		Short: "Receive the customer events the NOTIFY step sends, verify their signature and print them",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return oneLine(err)
			}
			secret := cfg.Notify.Customer.Secret.Reveal()
			if secret == "" {
				return errors.New("demo receiver: notify.customer_webhook.secret is not set in the configuration")
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("demo receiver: listen on %s: %w", addr, err)
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
			srv := web.NewServer(eventReceiver([]byte(secret), logger))
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			logger.Info("demo receiver listening", "url", "http://"+ln.Addr().String()+"/events")
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8282", "address to listen on (HOST:PORT); events arrive at /events")
	return cmd
}

// eventReceiver verifies and prints events, dropping the duplicates a retry
// may bring by their event ID, as a real receiver should.
func eventReceiver(secret []byte, logger *slog.Logger) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "POST a JSON event", http.StatusBadRequest)
			return
		}
		if err := notify.Verify(secret, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			logger.Warn("event refused: bad signature")
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev struct {
			ID   string          `json:"id"`
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		mu.Lock()
		dup := seen[ev.ID]
		seen[ev.ID] = true
		mu.Unlock()
		if dup {
			logger.Info("duplicate event dropped", "id", ev.ID)
		} else {
			logger.Info("customer event", "id", ev.ID, "type", ev.Type, "data", string(ev.Data))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
