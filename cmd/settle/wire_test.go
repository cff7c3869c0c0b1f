package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
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
