package rest_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

const token = "s3cret-token-value"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// env is the rest adapter talking to a real sandbox bank over HTTP.
type env struct {
	t    *testing.T
	url  string
	sim  *banksim.Client
	bank *rest.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, banksim.Options{})
}

// newEnvWith is newEnv with the sandbox's switches of opts.
func newEnvWith(t *testing.T, opts banksim.Options) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)}
	opts.Token, opts.Now, opts.Logger = token, clk.Now, slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(banksim.New(opts))
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL, sim: banksim.NewClient(srv.URL, token, srv.Client())}
	e.bank = e.adapter(rest.Config{})
	return e
}

// adapter returns a rest client for the env's bank; cfg's zero fields are
// filled in.
func (e *env) adapter(cfg rest.Config) *rest.Client {
	e.t.Helper()
	if cfg.Name == "" {
		cfg.Name = "sandbox"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = e.url
	}
	if cfg.Token == "" {
		cfg.Token = token
	}
	c, err := rest.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func ctx() context.Context { return context.Background() }

func (e *env) open(id, holder string, balance int64) {
	e.t.Helper()
	if _, err := e.sim.CreateAccount(ctx(), banksim.Account{ID: id, HolderName: holder, Balance: balance, Currency: "KRW"}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) faults(f banksim.Faults) {
	e.t.Helper()
	if err := e.sim.SetFaults(ctx(), f); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) journal() []banksim.JournalEntry {
	e.t.Helper()
	j, err := e.sim.Journal(ctx(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

func (e *env) balance(id string) int64 {
	e.t.Helper()
	a, err := e.sim.Account(ctx(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Balance
}

func transfer(key, from, to, holder string, amount int64) pipeline.TransferRequest {
	return pipeline.TransferRequest{Key: key, From: from, To: to, ToHolder: holder,
		Amount: pipeline.Money{Amount: amount, Currency: "KRW"}, Memo: "settle " + key}
}

// wantClass fails the test unless the result lands in class want.
func wantClass(t *testing.T, what string, r pipeline.Receipt, err error, want pipeline.Class) {
	t.Helper()
	if got := pipeline.Classify(r, err); got != want {
		t.Fatalf("%s: class %s (receipt %+v, err %v), want %s", what, got, r, err, want)
	}
	if err != nil && strings.Contains(err.Error(), token) {
		t.Fatalf("%s: error shows the token: %v", what, err)
	}
}

// fakeBank is a tiny HTTP server that answers every request the same way.
func fakeBank(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
