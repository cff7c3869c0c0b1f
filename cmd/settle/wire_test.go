package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/bank/dialects"
	"github.com/settle-dev/settle/bank/throttle"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/pipeline"
)

// Inside a provider's maintenance window settle serve sends nothing to it:
// the transfer comes back as a wait (ErrUnavailable, with the time left),
// the bank is not called, and the breaker stays closed.
func TestServeHoldsTransfersInAMaintenanceWindow(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Seoul")
	now := time.Now().In(loc)
	window := fmt.Sprintf("%s-%s", now.Add(-10*time.Minute).Format("15:04"), now.Add(10*time.Minute).Format("15:04"))
	path := filepath.Join(t.TempDir(), "settle.yaml")
	yaml := fmt.Sprintf(`
database: {url: "postgres://unused@127.0.0.1:1/x"}
redis: {url: "redis://127.0.0.1:1/0"}
time_zone: Asia/Seoul
providers:
  - {name: sandbox, dialect: rest, base_url: "http://127.0.0.1:1", token: t, maintenance: %q, breaker_failures: 1,
     accounts: {collection: C, lender: L, holding: H, fee: F}}
`, window)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	banks, _, throttles, err := buildBanks(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := banks.Bank("sandbox")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err = b.Transfer(context.Background(), pipeline.TransferRequest{Key: "k", From: "C", To: "L",
			Amount: pipeline.Money{Amount: 1, Currency: "KRW"}})
		if !errors.Is(err, bank.ErrMaintenance) || !errors.Is(err, pipeline.ErrUnavailable) || pipeline.RetryAfter(err) <= 0 {
			t.Fatalf("a transfer in the window %s: %v; want a maintenance wait", window, err)
		}
	}
	if st := throttles["sandbox"].State(); st != throttle.Closed {
		t.Errorf("breaker %s after calls held for maintenance; nothing reached the bank, it must stay closed", st)
	}
}

// Configuration validates a provider's dialect against its own list, since
// it does not import the bank packages; the list must be the registry's, in
// the same order, so that what validation accepts is what settle can wire.
func TestDialectRegistryMatchesConfig(t *testing.T) {
	if got, want := dialects.Names(), config.SupportedDialects(); !slices.Equal(got, want) {
		t.Fatalf("registry has dialects %v, configuration accepts %v", got, want)
	}
}

// A provider that authenticates with OAuth client credentials reads its
// statements with them, like its other calls: reconciliation wires, and a
// statement call carries the token from the provider's token endpoint.
func TestReconcileStatementsUseTheProvidersCredentials(t *testing.T) {
	var auth atomic.Value
	bank := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/token" {
			_, _ = io.WriteString(w, `{"access_token":"oauth-token-1","token_type":"Bearer","expires_in":3600}`)
			return
		}
		auth.Store(r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, `{"transactions":[],"next_cursor":""}`)
	}))
	t.Cleanup(bank.Close)
	path := filepath.Join(t.TempDir(), "settle.yaml")
	yaml := fmt.Sprintf(`
database: {url: "postgres://unused@127.0.0.1:1/x"}
redis: {url: "redis://127.0.0.1:1/0"}
providers:
  - {name: oauth, dialect: rest, base_url: %q, token_url: %q, client_id: settle, client_secret: s3cret,
     accounts: {collection: C, lender: L, holding: H, fee: F}}
`, bank.URL, bank.URL+"/token")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, _, throttles, err := buildBanks(cfg, logger, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	listers, err := newStatementListers(cfg, throttles, logger)
	if err != nil {
		t.Fatalf("statement listers of an OAuth provider: %v", err)
	}
	if _, err := listers["oauth"].Transactions(context.Background(), "C", "", 10); err != nil {
		t.Fatal(err)
	}
	if got := auth.Load(); got != "Bearer oauth-token-1" {
		t.Fatalf("statement call sent Authorization %q, want the OAuth token", got)
	}
}
