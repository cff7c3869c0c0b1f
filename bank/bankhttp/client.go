// Package bankhttp is the HTTP core that the bank adapters (bank/rest,
// bank/openbanking) share: the connection settings and their validation, one
// round trip to the bank (request building, credentials through
// bank/transport, the time limit, the body limit, transport errors that show
// the URL with account numbers masked), the Answer the decoders read, and
// the helpers that keep bank-sent text safe for errors and logs.
//
// What a dialect says on the wire (paths, headers, fields, result codes) stays
// in its adapter; Spec carries the few HTTP conventions in which the dialects
// differ.
package bankhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/settle-dev/settle/bank/transport"
)

// DefaultTimeout is the time limit of one call when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Config is the connection to one provider, whatever its dialect.
type Config struct {
	// Name names the provider in errors and logs, e.g. "acme".
	// Required: 1 to 64 letters, digits, '-', '_' or '.'.
	Name string
	// BaseURL is the bank's API root, e.g. "https://bank.example/api".
	// Required: http or https, with no credentials, query or fragment.
	BaseURL string
	// Token is a static bearer token; or OAuth. It is never logged nor put
	// in an error.
	Token string
	// OAuth fetches bearer tokens with OAuth 2.0 client credentials instead
	// of Token; a 401 refreshes the token and resends the call once.
	OAuth *transport.OAuth
	// TLS adds a client certificate and the bank's CA (mutual TLS); nil
	// means plain TLS with the system's roots.
	TLS *transport.TLS
	// Timeout limits each HTTP call; 0 means DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the calls; nil means a client of its own with pooled
	// connections. Its own Timeout, if any, also applies. Not with TLS.
	HTTPClient *http.Client
	// Logger receives debug logs of each call; nil discards them. Account
	// numbers in logs are masked.
	Logger *slog.Logger
	// Now is the adapter's clock (Retry-After dates, and whatever the
	// dialect dates); nil means time.Now.
	Now func() time.Time
}

// Spec is how a dialect's HTTP differs from the others'.
type Spec struct {
	UserAgent string // the User-Agent header, "settle-rest/1"
	BodyType  string // the Content-Type of a request body
	// KeyHeader is the header that carries Request.Key, "" when the dialect
	// sends its idempotency key in the body.
	KeyHeader string
	// ReplayedHeader is the answer header that says "true" when the bank
	// replayed a keyed request; logged as "replayed" when set.
	ReplayedHeader string
	// ExampleName and ExampleURL are shown in errors about Config.Name and
	// Config.BaseURL.
	ExampleName, ExampleURL string
}

// Client sends an adapter's calls to its bank. It is safe for concurrent use.
type Client struct {
	spec    Spec
	name    string
	base    string // without a trailing slash
	timeout time.Duration
	http    *transport.Client
	log     *slog.Logger
	now     func() time.Time
}

// New validates cfg and returns the core of an adapter of the dialect s
// describes. own is the outcome of the dialect's checks of its own settings:
// it is returned after the checks of Name and Timeout and before the one of
// BaseURL.
func New(s Spec, cfg Config, own error) (*Client, error) {
	base, err := cfg.validate(s, own)
	if err != nil {
		return nil, err
	}
	c := &Client{spec: s, name: cfg.Name, base: base, timeout: cfg.Timeout, log: cfg.Logger, now: cfg.Now}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	c.http, err = transport.New(transport.Config{Token: cfg.Token, OAuth: cfg.OAuth, TLS: cfg.TLS,
		HTTPClient: cfg.HTTPClient, Timeout: c.timeout})
	if err != nil {
		return nil, err
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Now is the time by the client's clock.
func (c *Client) Now() time.Time { return c.now() }

// Logger is where the client logs.
func (c *Client) Logger() *slog.Logger { return c.log }

// validate checks the config and returns the base URL without a trailing
// slash.
func (cfg Config) validate(s Spec, own error) (string, error) {
	switch {
	case !validName(cfg.Name):
		return "", fmt.Errorf(`field Name must be 1 to 64 letters, digits, '-', '_' or '.', such as %q`, s.ExampleName)
	case cfg.Timeout < 0:
		return "", fmt.Errorf("field Timeout must not be negative (got %s); 0 means %s", cfg.Timeout, DefaultTimeout)
	case own != nil:
		return "", own
	}
	return validateBaseURL(cfg.BaseURL, s.ExampleURL)
}

func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func validateBaseURL(raw, example string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", fmt.Errorf("field BaseURL must be set, such as %q", example)
	case err != nil:
		return "", errors.New("field BaseURL is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New(`field BaseURL must start with http:// or https://`)
	case u.Host == "":
		return "", errors.New("field BaseURL has no host")
	case u.User != nil:
		return "", errors.New("field BaseURL must not carry credentials; put the token in Token")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", errors.New("field BaseURL must not have a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Request is one HTTP call to the bank.
type Request struct {
	Method string
	Path   string // below the base URL, with its query
	Shown  string // the path as errors and logs show it, when Path holds an account
	Body   []byte // JSON, or nil
	Key    string // sent in Spec.KeyHeader, or ""
}

func (rq Request) shownPath() string {
	if rq.Shown != "" {
		return rq.Shown
	}
	return rq.Path
}

// Do sends rq and reads the answer, at most MaxAnswer bytes of it. Errors
// are transport errors (*url.Error), with the URL as it may be shown.
//
// The transport sets the credentials and, with OAuth, resends the request
// once after a 401 with a fresh token: an adapter sends through Do only
// calls that are safe to send twice. A 401 means the bank did nothing,
// reads change nothing, and a transfer carries its idempotency key (a
// header, or a field of the body) in the copy sent again.
func (c *Client) Do(ctx context.Context, rq Request) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, rq)
	if err != nil {
		return Answer{}, err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{}, c.transportError(rq, err)
	}
	defer resp.Body.Close()
	a, err := c.readAnswer(resp)
	if err != nil {
		return Answer{}, c.transportError(rq, err)
	}
	attrs := []any{"provider", c.name, "method", rq.Method, "path", rq.shownPath(), "status", a.Status}
	if c.spec.ReplayedHeader != "" {
		attrs = append(attrs, "replayed", resp.Header.Get(c.spec.ReplayedHeader) == "true")
	}
	c.log.Debug("bank call", append(attrs, "duration", time.Since(start))...)
	return a, nil
}

func (c *Client) newRequest(ctx context.Context, rq Request) (*http.Request, error) {
	var body io.Reader
	if rq.Body != nil {
		body = bytes.NewReader(rq.Body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.Method, c.base+rq.Path, body)
	if err != nil {
		return nil, errors.New("cannot build the request for " + rq.shownPath())
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.spec.UserAgent)
	if rq.Body != nil {
		req.Header.Set("Content-Type", c.spec.BodyType)
	}
	if rq.Key != "" && c.spec.KeyHeader != "" {
		req.Header.Set(c.spec.KeyHeader, rq.Key)
	}
	return req, nil
}

func (c *Client) readAnswer(resp *http.Response) (Answer, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return Answer{}, err
	}
	a := Answer{
		Status:      resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		RetryAfter:  resp.Header.Get("Retry-After"),
		Body:        body,
		Now:         c.now(),
	}
	if len(body) > MaxAnswer {
		a.Body, a.Truncated = body[:MaxAnswer], true
	}
	// A bank that echoes our token must not put it into our errors.
	a.Body = c.http.Redact(a.Body)
	return a, nil
}

// transportError rewrites a *url.Error so that it shows the masked path; the
// cause (timeout, reset) is kept for errors.Is and errors.As.
func (c *Client) transportError(rq Request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: c.base + rq.shownPath(), Err: ue.Err}
	}
	return &url.Error{Op: rq.Method, URL: c.base + rq.shownPath(), Err: err}
}
