package banktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Client credentials the TokenServer accepts.
const (
	ClientID     = "settle-test-client"
	ClientSecret = "client-secret-3f9a1c77e2"
)

// TokenServer is an OAuth 2.0 token endpoint over real HTTP issuing
// client-credentials tokens, and a front to a sandbox bank that lets
// through only the calls carrying a token it issued and has not revoked,
// as a bank that takes OAuth tokens does. It counts token requests and the
// calls that reach the front.
type TokenServer struct {
	URL     string // the token endpoint
	BankURL string // the bank, behind the token check

	fetches, bankCalls, refused atomic.Int64

	mu       sync.Mutex
	lifetime time.Duration
	valid    map[string]bool
	n        int
	scope    string
	refuse   bool // refuse every token, even new ones
}

// NewTokenServer starts a token endpoint and a front to sb that stop when
// the test ends. Tokens are issued for an hour until IssueFor says else.
func NewTokenServer(t testing.TB, sb *Sandbox) *TokenServer {
	t.Helper()
	s := &TokenServer{lifetime: time.Hour, valid: map[string]bool{}}
	tokens := httptest.NewServer(http.HandlerFunc(s.token))
	t.Cleanup(tokens.Close)
	target, _ := url.Parse(sb.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.bankCalls.Add(1)
		if !s.accepts(r.Header.Get("Authorization")) {
			s.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"token expired or revoked"}}`))
			return
		}
		r.Header.Set("Authorization", "Bearer "+Token)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	s.URL, s.BankURL = tokens.URL+"/oauth/2.0/token", front.URL
	return s
}

// IssueFor sets the lifetime (expires_in) of the tokens issued from now on.
func (s *TokenServer) IssueFor(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// RefuseAll makes the bank refuse every token, those issued later too,
// until it is called with false.
func (s *TokenServer) RefuseAll(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = refuse
}

// RevokeAll makes the bank refuse every token issued so far.
func (s *TokenServer) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.valid)
}

// Fetches is how many token requests the endpoint answered with a token.
func (s *TokenServer) Fetches() int64 { return s.fetches.Load() }

// BankCalls is how many calls reached the bank's front, refused or not.
func (s *TokenServer) BankCalls() int64 { return s.bankCalls.Load() }

// Refused is how many calls the front refused with 401.
func (s *TokenServer) Refused() int64 { return s.refused.Load() }

// Scope is the scope parameter of the last token request.
func (s *TokenServer) Scope() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scope
}

func (s *TokenServer) accepts(auth string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := cutBearer(auth)
	return ok && s.valid[tok] && !s.refuse
}

func cutBearer(auth string) (string, bool) {
	const p = "Bearer "
	if len(auth) <= len(p) || auth[:len(p)] != p {
		return "", false
	}
	return auth[len(p):], true
}

// token answers a client-credentials request, the client authenticated by
// HTTP basic auth or by form parameters (RFC 6749 section 2.3.1). A wrong
// secret is refused with invalid_client, its description echoing the
// secret sent, as a careless endpoint might.
func (s *TokenServer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if r.PostForm.Get("grant_type") != "client_credentials" || id != ClientID || secret != ClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client",
			"error_description": fmt.Sprintf("client %s with secret %s unknown", id, secret)})
		return
	}
	s.mu.Lock()
	s.n++
	tok := fmt.Sprintf("access-%d-%d", s.n, time.Now().UnixNano())
	s.valid[tok], s.scope = true, r.PostForm.Get("scope")
	lifetime := s.lifetime
	s.mu.Unlock()
	s.fetches.Add(1)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer",
		"expires_in": int(lifetime / time.Second)})
}
