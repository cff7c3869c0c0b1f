package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/pipeline"
)

// BatchSize is the most accounts one balances call asks for; Balances splits
// longer lists into several calls.
const BatchSize = 100

// DefaultTimeout is the time limit of one call when Config.Timeout is 0.
const DefaultTimeout = bankhttp.DefaultTimeout

// ErrInvalidRequest means the adapter refused to send a request that the
// bank would refuse (an empty key, a non-positive amount): nothing was sent.
var ErrInvalidRequest = errors.New("request invalid, nothing sent")

// Config configures a Client: the connection to the provider, e.g. Name
// "acme-rest" and BaseURL "https://bank.example/api".
type Config = bankhttp.Config

// spec is the rest dialect's HTTP: the idempotency key is a header, and the
// bank says when it replayed a keyed request.
var spec = bankhttp.Spec{
	UserAgent: "settle-rest/1", BodyType: "application/json",
	KeyHeader: "Idempotency-Key", ReplayedHeader: "Idempotent-Replayed",
	ExampleName: "acme-rest", ExampleURL: "https://bank.example/api",
}

// Client speaks the rest dialect to one provider. It is safe for concurrent
// use.
type Client struct {
	name string
	http *bankhttp.Client
}

var _ pipeline.Bank = (*Client)(nil)

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	h, err := bankhttp.New(spec, cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("rest %s: config: %w", cfg.Name, err)
	}
	return &Client{name: cfg.Name, http: h}, nil
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
	a, err := c.http.Do(ctx, bankhttp.Request{Method: http.MethodPost, Path: "/v1/balances:batchGet", Body: body})
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
	a, err := c.http.Do(ctx, bankhttp.Request{Method: http.MethodPost, Path: "/v1/transfers", Body: body, Key: req.Key})
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
	if !bankhttp.PlausibleText(key, 1, 64) {
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
	a, err := c.http.Do(ctx, bankhttp.Request{Method: http.MethodGet, Path: "/v1/transfers?idempotency_key=" + url.QueryEscape(key)})
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
		return TransactionPage{}, fmt.Errorf("rest %s: transactions of %s: %w", c.name, bankhttp.MaskAccount(account), err)
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
	a, err := c.http.Do(ctx, bankhttp.Request{
		Method: http.MethodGet,
		Path:   "/v1/accounts/" + url.PathEscape(account) + "/transactions?" + q.Encode(),
		Shown:  "/v1/accounts/" + bankhttp.MaskAccount(account) + "/transactions",
	})
	if err != nil {
		return TransactionPage{}, err
	}
	return decodeTransactions(a)
}
