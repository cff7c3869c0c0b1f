package banksim

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "test-token-123"

// clock is a manual clock for the server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sandbox is a sandbox bank served over real HTTP with a manual clock.
type sandbox struct {
	t      testing.TB
	url    string
	clock  *clock
	client *Client
	http   *http.Client
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	return newSandboxOpts(t, Options{})
}

// newSandboxOpts is newSandbox with more options; the token, clock and
// logger are the suite's.
func newSandboxOpts(t testing.TB, opts Options) *sandbox {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)}
	opts.Token, opts.Now, opts.Logger = testToken, clk.Now, slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(New(opts))
	t.Cleanup(srv.Close)
	return &sandbox{t: t, url: srv.URL, clock: clk, client: NewClient(srv.URL, testToken, srv.Client()), http: srv.Client()}
}

func ctx() context.Context { return context.Background() }

// open creates a KRW account.
func (s *sandbox) open(id, holder string, balance int64) {
	s.t.Helper()
	if _, err := s.client.CreateAccount(ctx(), Account{ID: id, HolderName: holder, Balance: balance, Currency: "KRW"}); err != nil {
		s.t.Fatalf("create %s: %v", id, err)
	}
}

func (s *sandbox) balance(id string) int64 {
	s.t.Helper()
	a, err := s.client.Account(ctx(), id)
	if err != nil {
		s.t.Fatalf("account %s: %v", id, err)
	}
	return a.Balance
}

func (s *sandbox) setFaults(f Faults) {
	s.t.Helper()
	if err := s.client.SetFaults(ctx(), f); err != nil {
		s.t.Fatalf("set faults: %v", err)
	}
}

func (s *sandbox) journal() []JournalEntry {
	s.t.Helper()
	j, err := s.client.Journal(ctx(), 0)
	if err != nil {
		s.t.Fatalf("journal: %v", err)
	}
	return j
}

// reply is one raw HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) transfer(t testing.TB) restTransfer {
	t.Helper()
	var tr restTransfer
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatalf("decode transfer %s: %v", r.body, err)
	}
	return tr
}

func (r reply) errorCode(t testing.TB) string {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Fatalf("decode error %s: %v", r.body, err)
	}
	return eb.Error.Code
}

// do sends a raw request with the test token unless headers say otherwise.
func (s *sandbox) do(method, path, body string, headers ...string) reply {
	s.t.Helper()
	r, err := s.try(s.http, method, path, body, headers...)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (s *sandbox) try(hc *http.Client, method, path, body string, headers ...string) (reply, error) {
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// send posts a rest transfer.
func (s *sandbox) send(key, from, to, holder string, amount int64) reply {
	s.t.Helper()
	body, _ := json.Marshal(restTransferRequest{FromAccount: from, ToAccount: to, ToHolderName: holder, Amount: amount, Currency: "KRW"})
	return s.do(http.MethodPost, "/v1/transfers", string(body), "Idempotency-Key", key)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
