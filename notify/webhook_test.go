package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

func TestCustomerWebhookSignsAndRetriesAreDroppable(t *testing.T) {
	t.Parallel()
	secret := []byte("canary-webhook-secret")
	var seen atomic.Int32
	var fail atomic.Bool
	fail.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("receiver: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.Header.Get(HeaderEventID) != "evt_1" || !strings.Contains(string(body), `"payout":90`) {
			t.Errorf("event %s %s", r.Header.Get(HeaderEventID), body)
		}
		seen.Add(1)
		if fail.Load() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	w, err := NewCustomerWebhook(srv.URL, string(secret), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ev := pipeline.Event{ID: "evt_1", Type: "settlement.settled", Data: []byte(`{"deposit":100,"payout":90}`)}
	if err := w.Send(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a 503 must be an error: %v", err)
	}
	fail.Store(false)
	if err := w.Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 2 {
		t.Fatalf("receiver saw %d requests, want 2 (same event ID both times)", seen.Load())
	}
}

func TestVerifyRefusesForgeriesAndStaleEvents(t *testing.T) {
	t.Parallel()
	secret, body, now := []byte("s"), []byte(`{"id":"e"}`), time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	good := "v1=" + Sign(secret, ts, body)
	if err := Verify(secret, ts, good, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ ts, sig, body string }{
		"other body": {ts, good, `{"id":"x"}`},
		"other key":  {ts, "v1=" + Sign([]byte("t"), ts, body), string(body)},
		"stale":      {"1799990000", "v1=" + Sign(secret, "1799990000", body), string(body)},
		"no time":    {"", good, string(body)},
		"no scheme":  {ts, Sign(secret, ts, body), string(body)},
	} {
		if err := Verify(secret, c.ts, c.sig, []byte(c.body), now, time.Minute); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
