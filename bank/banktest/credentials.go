package banktest

import (
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/transport"
	"github.com/settle-dev/settle/internal/testcert"
	"github.com/settle-dev/settle/pipeline"
)

// oauthConn is a Conn to ts's bank with OAuth client credentials.
func oauthConn(ts *TokenServer, secret string) Conn {
	return Conn{BaseURL: ts.BankURL, OAuth: &transport.OAuth{TokenURL: ts.URL, ClientID: ClientID,
		ClientSecret: secret, Scopes: []string{"inquiry", "transfer"}}}
}

// wantCounts fails unless the token endpoint issued fetches tokens and
// the bank saw bankCalls calls, refused of them with 401.
func wantCounts(e *env, what string, ts *TokenServer, fetches, bankCalls, refused int64) {
	e.t.Helper()
	if ts.Fetches() != fetches || ts.BankCalls() != bankCalls || ts.Refused() != refused {
		e.t.Fatalf("%s: %d token fetches, %d bank calls, %d refused; want %d, %d, %d",
			what, ts.Fetches(), ts.BankCalls(), ts.Refused(), fetches, bankCalls, refused)
	}
}

// oauthReuse: a token is fetched once and reused while it has more than
// transport.RefreshBefore to live; one closer to its expiry is replaced
// before the next call, while the bank would still take it.
func oauthReuse(e *env) {
	e.Open("A", "Kim", 100)
	ts := NewTokenServer(e.t, e.Sandbox)
	ts.IssueFor(transport.RefreshBefore / 2)
	bank := e.adapter(oauthConn(ts, ClientSecret))
	for i, want := range []int64{1, 2} {
		if _, err := bank.Balances(bg(), []string{"A"}); err != nil {
			e.t.Fatalf("balances %d: %v", i, err)
		}
		wantCounts(e, "a token about to expire", ts, want, want, 0)
	}
	if got := ts.Scope(); got != "inquiry transfer" {
		e.t.Fatalf("scope sent %q, want %q", got, "inquiry transfer")
	}
	ts.IssueFor(time.Hour)
	for i := range 3 {
		if _, err := bank.Balances(bg(), []string{"A"}); err != nil {
			e.t.Fatalf("balances %d: %v", i, err)
		}
	}
	wantCounts(e, "an hour-long token", ts, 3, 5, 0)
}

// oauthRefused: a token the bank no longer takes (401) is dropped, a new
// one fetched and the call sent once more; the transfer moves money once.
// A bank refusing the new token too gets no third try.
func oauthRefused(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	ts := NewTokenServer(e.t, e.Sandbox)
	bank := e.adapter(oauthConn(ts, ClientSecret))
	if _, err := bank.Balances(bg(), []string{"A"}); err != nil {
		e.t.Fatalf("balances: %v", err)
	}
	wantCounts(e, "first call", ts, 1, 1, 0)

	ts.RevokeAll()
	req := Transfer("settle-s1-a1", "A", "B", "", 300)
	r, err := bank.Transfer(bg(), req)
	WantClass(e.t, "transfer after the token was revoked", r, err, pipeline.ClassSuccess)
	wantCounts(e, "transfer after the token was revoked", ts, 2, 3, 1)
	e.wantJournal(req.Key)
	if got := e.Balance("B"); got != 300 {
		e.t.Fatalf("B has %d, want 300", got)
	}

	ts.RefuseAll(true)
	_, err = bank.Balances(bg(), []string{"A"})
	WantErr(e.t, "balances when every token is refused", err, pipeline.ErrUnauthorized)
	wantCounts(e, "balances when every token is refused", ts, 3, 5, 3)
}

// oauthWrongSecret: the token endpoint refuses the client; the call fails
// as unauthorized, nothing reaches the bank, and the error, though the
// endpoint echoes the secret, does not show it.
func oauthWrongSecret(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	ts := NewTokenServer(e.t, e.Sandbox)
	const wrong = "wrong-secret-71c0d5e9"
	bank := e.adapter(oauthConn(ts, wrong))
	r, err := bank.Transfer(bg(), Transfer("settle-s1-a1", "A", "B", "", 1))
	WantClass(e.t, "transfer", r, err, pipeline.ClassTransient)
	WantErr(e.t, "transfer", err, pipeline.ErrUnauthorized)
	if msg := err.Error(); strings.Contains(msg, wrong) || !strings.Contains(msg, "invalid_client") || !strings.Contains(msg, "client_secret") {
		e.t.Fatalf("error %q: want it to name invalid_client and client_secret, without the secret", msg)
	}
	wantCounts(e, "wrong secret", ts, 0, 0, 0)
	e.wantJournal()
}

// mutualTLS: a bank that requires a client certificate signed by its CA
// takes the configured one and refuses a client without one, or with one
// from another CA; nothing is transferred by the refused clients.
func mutualTLS(e *env) {
	ca := testcert.NewCA(e.t, "bank")
	server, client := ca.Server(), ca.Client("settle")
	stranger := testcert.NewCA(e.t, "stranger").Client("settle")
	srv := httptest.NewUnstartedServer(banksim.New(banksim.Options{Token: Token, Now: e.Clock.Now, Logger: slog.New(slog.DiscardHandler)}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool, Certificates: []tls.Certificate{server.TLS}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	e.t.Cleanup(srv.Close)
	e.Sim = banksim.NewClient(srv.URL, Token, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: ca.Pool, Certificates: []tls.Certificate{client.TLS}}}})
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)

	good := e.adapter(Conn{BaseURL: srv.URL, TLS: &transport.TLS{CertFile: client.CertFile, KeyFile: client.KeyFile, CAFile: ca.File}})
	req := Transfer("settle-s1-a1", "A", "B", "", 250)
	r, err := good.Transfer(bg(), req)
	WantClass(e.t, "transfer with the client certificate", r, err, pipeline.ClassSuccess)

	for what, tc := range map[string]*transport.TLS{
		"without a client certificate":      {CAFile: ca.File},
		"with another CA's certificate":     {CertFile: stranger.CertFile, KeyFile: stranger.KeyFile, CAFile: ca.File},
		"without the bank's CA (untrusted)": {CertFile: client.CertFile, KeyFile: client.KeyFile},
	} {
		bad := e.adapter(Conn{BaseURL: srv.URL, TLS: tc})
		if _, err := bad.Transfer(bg(), Transfer("settle-s2-a1", "A", "B", "", 1)); err == nil {
			e.t.Fatalf("transfer %s: no error", what)
		}
		if _, err := bad.Balances(bg(), []string{"A"}); err == nil {
			e.t.Fatalf("balances %s: no error", what)
		}
	}
	e.wantJournal(req.Key)
	if got := e.Balance("B"); got != 250 {
		e.t.Fatalf("B has %d, want 250", got)
	}
}
