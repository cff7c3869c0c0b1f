// Package transport is how a bank adapter reaches its bank: the HTTP client,
// over mutual TLS when the provider has a client certificate, and the
// Authorization header of every call, a static bearer token or an OAuth 2.0
// client-credentials token (golang.org/x/oauth2) fetched, cached and
// refreshed before it expires. Both adapters, rest and openbanking, send
// through a Client, so the credentials are handled once.
//
// No error, log or panic of this package shows a token, a client secret or
// key material: token endpoint errors are rebuilt from their status and RFC
// 6749 error code, and certificate errors name the file.
package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/settle-dev/settle/pipeline"
)

// RefreshBefore is how long before its expiry a cached OAuth token is
// replaced. x/oauth2's ReuseTokenSource defaults to 10s, less than one bank
// call may take (providers[].timeout, 10s by default): a token could then
// expire in flight. A token issued for less than this is fetched anew for
// every call.
const RefreshBefore = time.Minute

// DefaultTimeout bounds one token request when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// OAuth is OAuth 2.0 client credentials (RFC 6749 section 4.4).
type OAuth struct {
	TokenURL     string   // the token endpoint, http(s)
	ClientID     string   // required
	ClientSecret string   // required; never logged nor put in an error
	Scopes       []string // sent space-separated as scope; none: no scope parameter
}

// TLS is mutual TLS: the client certificate the bank asks for and the CA
// that signed the bank's server certificate.
type TLS struct {
	CertFile   string // PEM client certificate (chain); with KeyFile
	KeyFile    string // PEM private key of CertFile
	CAFile     string // PEM CA bundle for the server certificate; "": the system's roots
	ServerName string // name to verify the server certificate against; "": the URL's host
}

// Config configures a Client. Exactly one of Token and OAuth is set.
type Config struct {
	Token string // static bearer token
	OAuth *OAuth
	TLS   *TLS // nil: TLS as the URL says, with the system's roots
	// HTTPClient sends the calls; nil means a pooled client of its own.
	// It cannot be combined with TLS, which builds its own transport.
	HTTPClient *http.Client
	Timeout    time.Duration // bounds one token request; 0 means DefaultTimeout
}

// Client sends a provider's requests with its credentials. It is safe for
// concurrent use.
type Client struct {
	http   *http.Client
	static string      // "Bearer <token>", or "" with oauth
	oauth  *tokenCache // nil with a static token
}

// New validates cfg, loads the TLS files, and returns a client. No token is
// fetched until the first call.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		if cfg.TLS != nil {
			tc, err := cfg.TLS.config()
			if err != nil {
				return nil, err
			}
			t.TLSClientConfig = tc
		}
		hc = &http.Client{Transport: t}
	}
	c := &Client{http: hc}
	if cfg.OAuth == nil {
		c.static = "Bearer " + cfg.Token
		return c, nil
	}
	c.oauth = newTokenCache(*cfg.OAuth, hc, cmp(cfg.Timeout, DefaultTimeout))
	return c, nil
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// printable reports whether s is non-empty and holds no spaces or control
// characters: a token or secret that can go into a header or form.
func printable(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

func (cfg Config) validate() error {
	switch {
	case cfg.OAuth != nil && cfg.Token != "":
		return errors.New("set Token or OAuth, not both")
	case cfg.OAuth == nil && !printable(cfg.Token):
		return errors.New("field Token must be set (or OAuth) and hold no spaces or control characters")
	case cfg.TLS != nil && cfg.HTTPClient != nil:
		return errors.New("set HTTPClient or TLS, not both: TLS builds the client's transport")
	case cfg.Timeout < 0:
		return fmt.Errorf("field Timeout must not be negative (got %s)", cfg.Timeout)
	}
	if o := cfg.OAuth; o != nil {
		switch {
		case !validURL(o.TokenURL):
			return errors.New("field OAuth.TokenURL must be an absolute http:// or https:// URL without credentials")
		case !printable(o.ClientID):
			return errors.New("field OAuth.ClientID must be set and hold no spaces or control characters")
		case !printable(o.ClientSecret):
			return errors.New("field OAuth.ClientSecret must be set and hold no spaces or control characters")
		}
	}
	return nil
}

// Do sends req with the provider's Authorization header. With OAuth, an
// answer of 401 drops the cached token, fetches a new one and sends req
// once more, once: the bank refused our credentials and did nothing, so the
// same request, with the same body and the same idempotency key (rest's
// Idempotency-Key, openbanking's bank_tran_id), can be sent again without
// risk of a second transfer; a bank that did act after all dedupes it by
// that key. The caller sends only requests of that kind. An error getting a
// token wraps pipeline.ErrUnauthorized (the endpoint refused our client
// credentials) or pipeline.ErrUnavailable (it could not be reached): either
// way nothing reached the bank.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	used, err := c.authorize(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || c.oauth == nil {
		return resp, err
	}
	again, err := resend(req)
	if err != nil {
		return resp, nil // cannot resend the body: the 401 stands
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c.oauth.drop(used)
	if _, err := c.authorize(again); err != nil {
		return nil, err
	}
	return c.http.Do(again)
}

// resend returns a copy of req with a fresh body.
func resend(req *http.Request) (*http.Request, error) {
	again := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return again, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("body cannot be read again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	again.Body = body
	return again, nil
}

// authorize sets req's Authorization header and returns the token source
// the token came from (nil for a static token).
func (c *Client) authorize(req *http.Request) (oauth2.TokenSource, error) {
	if c.oauth == nil {
		req.Header.Set("Authorization", c.static)
		return nil, nil
	}
	tok, src, err := c.oauth.token()
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return src, nil
}

// Redact replaces in b every credential the client has sent or holds: the
// static token, the OAuth tokens and the client secret. A bank that echoes
// them must not put them into our errors.
func (c *Client) Redact(b []byte) []byte {
	if c.oauth == nil {
		return bytes.ReplaceAll(b, []byte(strings.TrimPrefix(c.static, "Bearer ")), []byte("[redacted]"))
	}
	for _, s := range c.oauth.secrets() {
		b = bytes.ReplaceAll(b, []byte(s), []byte("[redacted]"))
	}
	return b
}

// tokenCache holds a ReuseTokenSource over the client-credentials fetch; a
// 401 replaces it, dropping the token it cached.
type tokenCache struct {
	conf   *clientcredentials.Config
	ctx    context.Context // carries the HTTP client of the token requests
	mu     sync.Mutex
	src    oauth2.TokenSource
	issued []string // tokens handed out, the newest last, for Redact
}

func newTokenCache(o OAuth, hc *http.Client, timeout time.Duration) *tokenCache {
	// The token endpoint is reached through the provider's own transport
	// (its client certificate too), each request bounded by timeout.
	th := &http.Client{Transport: hc.Transport, Timeout: timeout}
	tc := &tokenCache{
		conf: &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes},
		ctx:  context.WithValue(context.Background(), oauth2.HTTPClient, th),
	}
	tc.src = tc.fresh()
	return tc
}

// fresh returns a source that caches one token and fetches the next
// RefreshBefore before it expires.
func (tc *tokenCache) fresh() oauth2.TokenSource {
	return oauth2.ReuseTokenSourceWithExpiry(nil, fetcher{tc}, RefreshBefore)
}

// fetcher asks the token endpoint for a new token on every call; the
// ReuseTokenSource around it decides when.
type fetcher struct{ tc *tokenCache }

func (f fetcher) Token() (*oauth2.Token, error) {
	tok, err := f.tc.conf.Token(f.tc.ctx)
	if err != nil {
		return nil, f.tc.tokenError(err)
	}
	f.tc.mu.Lock()
	f.tc.issued = append(f.tc.issued[max(0, len(f.tc.issued)-1):], tok.AccessToken)
	f.tc.mu.Unlock()
	return tok, nil
}

// token returns a valid access token and the source it came from.
func (tc *tokenCache) token() (string, oauth2.TokenSource, error) {
	tc.mu.Lock()
	src := tc.src
	tc.mu.Unlock()
	tok, err := src.Token()
	if err != nil {
		return "", nil, err
	}
	if !printable(tok.AccessToken) {
		return "", nil, fmt.Errorf("%w: the token endpoint %s issued an access token with spaces or control characters", pipeline.ErrUnauthorized, tc.conf.TokenURL)
	}
	return tok.AccessToken, src, nil
}

// drop forgets the token of used, unless another call already did: many
// calls refused at once fetch one new token, not one each.
func (tc *tokenCache) drop(used oauth2.TokenSource) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.src == used {
		tc.src = tc.fresh()
	}
}

func (tc *tokenCache) secrets() []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]string{tc.conf.ClientSecret}, tc.issued...)
}

// tokenError rebuilds an error of the token endpoint from its status and
// RFC 6749 error code only: its body, which may echo the client secret, is
// not shown.
func (tc *tokenCache) tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		msg := strings.ReplaceAll(err.Error(), tc.conf.ClientSecret, "[redacted]")
		return fmt.Errorf("%w: OAuth token from %s: %s", pipeline.ErrUnavailable, tc.conf.TokenURL, msg)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	code := ""
	if printable(re.ErrorCode) && len(re.ErrorCode) <= 64 && !strings.Contains(re.ErrorCode, tc.conf.ClientSecret) {
		code = ", error " + re.ErrorCode
	}
	if status == http.StatusTooManyRequests || status >= 500 {
		return fmt.Errorf("%w: the token endpoint %s answered HTTP %d%s; will try again", pipeline.ErrUnavailable, tc.conf.TokenURL, status, code)
	}
	return fmt.Errorf("%w: the token endpoint %s refused the client credentials (HTTP %d%s): check the provider's client_id and client_secret",
		pipeline.ErrUnauthorized, tc.conf.TokenURL, status, code)
}
