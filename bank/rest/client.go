package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/settle-dev/settle/bank/transport"
	"github.com/settle-dev/settle/pipeline"
)

// BatchSize is the most accounts one balances call asks for; Balances splits
// longer lists into several calls.
const BatchSize = 100

// DefaultTimeout is the time limit of one call when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// ErrInvalidRequest means the adapter refused to send a request that the
// bank would refuse (an empty key, a non-positive amount): nothing was sent.
var ErrInvalidRequest = errors.New("request invalid, nothing sent")

// Config configures a Client.
type Config struct {
	// Name names the provider in errors and logs, e.g. "acme-rest".
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
	// Logger receives debug logs of each call; nil discards them.
	Logger *slog.Logger
	// Now is the clock for Retry-After dates; nil means time.Now.
	Now func() time.Time
}

// Client speaks the rest dialect to one provider. It is safe for concurrent
// use.
type Client struct {
	name    string
	base    string // without a trailing slash
	timeout time.Duration
	http    *transport.Client
	log     *slog.Logger
	now     func() time.Time
}

var _ pipeline.Bank = (*Client)(nil)

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	base, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("rest %s: config: %w", cfg.Name, err)
	}
	c := &Client{name: cfg.Name, base: base, timeout: cfg.Timeout, log: cfg.Logger, now: cfg.Now}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	c.http, err = transport.New(transport.Config{Token: cfg.Token, OAuth: cfg.OAuth, TLS: cfg.TLS,
		HTTPClient: cfg.HTTPClient, Timeout: c.timeout})
	if err != nil {
		return nil, fmt.Errorf("rest %s: config: %w", cfg.Name, err)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// validate checks the config and returns the base URL without a trailing
// slash.
func (cfg Config) validate() (string, error) {
	if !validName(cfg.Name) {
		return "", errors.New(`field Name must be 1 to 64 letters, digits, '-', '_' or '.', such as "acme-rest"`)
	}
	if cfg.Timeout < 0 {
		return "", fmt.Errorf("field Timeout must not be negative (got %s); 0 means %s", cfg.Timeout, DefaultTimeout)
	}
	return validateBaseURL(cfg.BaseURL)
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

func validateBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", errors.New(`field BaseURL must be set, such as "https://bank.example/api"`)
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

// Balances returns the available balances of accounts, asking BatchSize
// accounts a call. Accounts the bank does not know are left out.
func (c *Client) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	var out []pipeline.Balance
	for start := 0; start < len(accounts); start += BatchSize {
		batch := accounts[start:min(start+BatchSize, len(accounts))]
		got, err := c.balanceBatch(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("rest %s: balances: %w", c.name, err)
		}
		out = append(out, got...)
	}
	return out, nil
}

func (c *Client) balanceBatch(ctx context.Context, batch []string) ([]pipeline.Balance, error) {
	body, err := json.Marshal(map[string][]string{"account_ids": batch})
	if err != nil {
		return nil, err
	}
	a, err := c.call(ctx, call{method: http.MethodPost, path: "/v1/balances:batchGet", body: body})
	if err != nil {
		return nil, err
	}
	return decodeBalances(a, batch)
}

// transferBody is the request body of POST /v1/transfers.
type transferBody struct {
	FromAccount  string `json:"from_account"`
	ToAccount    string `json:"to_account"`
	ToHolderName string `json:"to_holder_name,omitempty"`
	Amount       int64  `json:"amount"`
	Currency     string `json:"currency"`
	Memo         string `json:"memo,omitempty"`
}

// Transfer sends one transfer with req.Key as its Idempotency-Key.
func (c *Client) Transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	r, err := c.transfer(ctx, req)
	if err != nil {
		return pipeline.Receipt{}, fmt.Errorf("rest %s: transfer: %w", c.name, err)
	}
	return r, nil
}

func (c *Client) transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	if err := checkTransfer(req); err != nil {
		return pipeline.Receipt{}, err
	}
	body, err := json.Marshal(transferBody{
		FromAccount: req.From, ToAccount: req.To, ToHolderName: req.ToHolder,
		Amount: req.Amount.Amount, Currency: req.Amount.Currency, Memo: req.Memo,
	})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	a, err := c.call(ctx, call{method: http.MethodPost, path: "/v1/transfers", body: body, key: req.Key})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	return decodeTransfer(a, req.Key)
}

func checkTransfer(req pipeline.TransferRequest) error {
	if err := checkKey(req.Key); err != nil {
		return err
	}
	switch {
	case req.From == "" || req.To == "":
		return fmt.Errorf("%w: from and to accounts must be set", ErrInvalidRequest)
	case req.Amount.Amount <= 0:
		return fmt.Errorf("%w: %w: amount %d must be positive", ErrInvalidRequest, pipeline.ErrInvalidAmount, req.Amount.Amount)
	}
	if err := pipeline.ValidateCurrency(req.Amount.Currency); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return nil
}

func checkKey(key string) error {
	if !plausibleText(key, 1, 64) {
		return fmt.Errorf("%w: idempotency key must be 1 to 64 printable characters", ErrInvalidRequest)
	}
	return nil
}

// TransferStatus asks what became of the transfer sent with req.Key. It
// returns an error wrapping pipeline.ErrNotFound when the bank never saw the
// key.
func (c *Client) TransferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	r, err := c.transferStatus(ctx, req.Key)
	if err != nil {
		return pipeline.Receipt{}, fmt.Errorf("rest %s: transfer status: %w", c.name, err)
	}
	return r, nil
}

func (c *Client) transferStatus(ctx context.Context, key string) (pipeline.Receipt, error) {
	if err := checkKey(key); err != nil {
		return pipeline.Receipt{}, err
	}
	a, err := c.call(ctx, call{method: http.MethodGet, path: "/v1/transfers?idempotency_key=" + url.QueryEscape(key)})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	return decodeStatus(a, key)
}

// Transactions returns up to limit (1 to 500) lines of an account's
// statement after cursor ("" for the start).
func (c *Client) Transactions(ctx context.Context, account, cursor string, limit int) (TransactionPage, error) {
	p, err := c.transactions(ctx, account, cursor, limit)
	if err != nil {
		return TransactionPage{}, fmt.Errorf("rest %s: transactions of %s: %w", c.name, maskAccount(account), err)
	}
	return p, nil
}

func (c *Client) transactions(ctx context.Context, account, cursor string, limit int) (TransactionPage, error) {
	if account == "" || limit < 1 || limit > 500 {
		return TransactionPage{}, fmt.Errorf("%w: account must be set and limit between 1 and 500", ErrInvalidRequest)
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("after", cursor)
	}
	a, err := c.call(ctx, call{
		method: http.MethodGet,
		path:   "/v1/accounts/" + url.PathEscape(account) + "/transactions?" + q.Encode(),
		shown:  "/v1/accounts/" + maskAccount(account) + "/transactions",
	})
	if err != nil {
		return TransactionPage{}, err
	}
	return decodeTransactions(a)
}
