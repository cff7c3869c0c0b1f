package openbanking

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

// BatchSize is the number of accounts one balance call asks about: the
// dialect has no batch call, so Balances makes one call per account. A
// throttle in front of the adapter should count balance calls in these units.
const BatchSize = 1

// DefaultTimeout is the time limit of one call when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// DefaultBankCode is the bank_code_std sent when Config.BankCode is "".
const DefaultBankCode = "097"

// Layouts of the dialect's times, in Korea Standard Time.
const (
	dtimeLayout = "20060102150405"
	dateLayout  = "20060102"
)

// kst is Korea Standard Time, which has no daylight saving.
var kst = time.FixedZone("KST", 9*60*60)

// ErrInvalidRequest means the adapter refused to send a request that the
// bank would refuse (an empty key, a non-positive amount, a currency other
// than KRW): nothing was sent.
var ErrInvalidRequest = errors.New("request invalid, nothing sent")

// Config configures a Client.
type Config struct {
	// Name names the provider in errors and logs, e.g. "acme-ob".
	// Required: 1 to 64 letters, digits, '-', '_' or '.'.
	Name string
	// BaseURL is the bank's API root, e.g. "https://openapi.bank.example".
	// Required: http or https, with no credentials, query or fragment.
	BaseURL string
	// Token is a static bearer token; or OAuth. It is never logged nor put
	// in an error.
	Token string
	// OAuth fetches bearer tokens with OAuth 2.0 client credentials instead
	// of Token, as the Korean open-banking API issues them; a 401 refreshes
	// the token and resends the call once.
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
	// Now is the clock for tran_dtime, for the date of a transfer whose
	// request has no AttemptDay and for Retry-After dates; nil means
	// time.Now.
	Now func() time.Time
	// BankCode is the bank_code_std of the accounts (three digits); ""
	// means DefaultBankCode.
	BankCode string
	// Location is the time zone of tran_dtime and of org_bank_tran_date:
	// the day a transfer is filed under at the bank. nil means Korea
	// Standard Time, as the Korean open-banking API uses.
	Location *time.Location
}

// Client speaks the openbanking dialect to one provider. It is safe for
// concurrent use.
type Client struct {
	name     string
	base     string // without a trailing slash
	timeout  time.Duration
	bankCode string
	http     *transport.Client
	log      *slog.Logger
	now      func() time.Time
	loc      *time.Location
}

var _ pipeline.Bank = (*Client)(nil)

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	base, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("openbanking %s: config: %w", cfg.Name, err)
	}
	c := &Client{name: cfg.Name, base: base,
		timeout: cmp(cfg.Timeout, DefaultTimeout), bankCode: cmp(cfg.BankCode, DefaultBankCode),
		log: cfg.Logger, now: cfg.Now, loc: cfg.Location}
	if c.loc == nil {
		c.loc = kst
	}
	c.http, err = transport.New(transport.Config{Token: cfg.Token, OAuth: cfg.OAuth, TLS: cfg.TLS,
		HTTPClient: cfg.HTTPClient, Timeout: c.timeout})
	if err != nil {
		return nil, fmt.Errorf("openbanking %s: config: %w", cfg.Name, err)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// cmp returns v, or def when v is the zero value.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// validate checks the config and returns the base URL without a trailing
// slash.
func (cfg Config) validate() (string, error) {
	switch {
	case !validName(cfg.Name):
		return "", errors.New(`field Name must be 1 to 64 letters, digits, '-', '_' or '.', such as "acme-ob"`)
	case cfg.Timeout < 0:
		return "", fmt.Errorf("field Timeout must not be negative (got %s); 0 means %s", cfg.Timeout, DefaultTimeout)
	case cfg.BankCode != "" && (len(cfg.BankCode) != 3 || !allDigits(cfg.BankCode)):
		return "", fmt.Errorf("field BankCode must be three digits such as %q", DefaultBankCode)
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
		return "", errors.New(`field BaseURL must be set, such as "https://openapi.bank.example"`)
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

// Balances returns the available balances of accounts, one call per
// account (repeats are asked once). Accounts the bank does not know, or
// refuses to show as closed or frozen, are left out. It stops at the first
// error and when ctx ends.
func (c *Client) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	var out []pipeline.Balance
	seen := make(map[string]bool, len(accounts))
	for _, account := range accounts {
		if seen[account] {
			continue
		}
		seen[account] = true
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("openbanking %s: balances: %w", c.name, err)
		}
		b, known, err := c.balance(ctx, account)
		if err != nil {
			return nil, fmt.Errorf("openbanking %s: balance of %s: %w", c.name, maskAccount(account), err)
		}
		if known {
			out = append(out, b)
		}
	}
	return out, nil
}

func (c *Client) balance(ctx context.Context, account string) (pipeline.Balance, bool, error) {
	if !plausibleText(account, 1, 64) {
		return pipeline.Balance{}, false, fmt.Errorf("%w: account number must be 1 to 64 printable characters", ErrInvalidRequest)
	}
	q := url.Values{
		"bank_code_std": {c.bankCode}, "account_num": {account},
		"bank_tran_id": {queryTranID()}, "tran_dtime": {c.now().In(c.loc).Format(dtimeLayout)},
	}
	const path = "/v2.0/account/balance/acnt_num"
	a, err := c.do(ctx, request{method: http.MethodGet, path: path + "?" + q.Encode(), shown: path + "?account_num=" + maskAccount(account)})
	if err != nil {
		return pipeline.Balance{}, false, err
	}
	b, known, err := decodeBalance(a, account)
	if err == nil && !known {
		c.log.Debug("bank does not show the account's balance", "provider", c.name, "account", pipeline.AccountNumber(account))
	}
	return b, known, err
}

// depositBody is the request body of POST /v2.0/transfer/deposit/acnt_num.
type depositBody struct {
	CntrAccountNum string        `json:"cntr_account_num"`
	TranDtime      string        `json:"tran_dtime"`
	ReqCnt         string        `json:"req_cnt"`
	ReqList        []depositItem `json:"req_list"`
}

type depositItem struct {
	TranNo            string `json:"tran_no"`
	BankTranID        string `json:"bank_tran_id"`
	BankCodeStd       string `json:"bank_code_std"`
	AccountNum        string `json:"account_num"`
	AccountHolderName string `json:"account_holder_name"`
	TranAmt           string `json:"tran_amt"`
	PrintContent      string `json:"print_content"`
	NameCheckOption   string `json:"name_check_option"`
}

// Transfer sends one deposit with BankTranID(req.Key) as its bank_tran_id.
// Its tran_dtime is req.AttemptDay (now if zero), so that every send of an
// attempt carries the date the result call names.
func (c *Client) Transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	r, err := c.transfer(ctx, req)
	if err != nil {
		return pipeline.Receipt{}, fmt.Errorf("openbanking %s: transfer %s: %w", c.name, req.Key, err)
	}
	return r, nil
}

func (c *Client) transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	if err := checkTransfer(req); err != nil {
		return pipeline.Receipt{}, err
	}
	id := BankTranID(req.Key)
	check := "on"
	if req.ToHolder == "" {
		check = "off"
	}
	body, err := json.Marshal(depositBody{
		CntrAccountNum: req.From, TranDtime: c.tranTime(req).Format(dtimeLayout), ReqCnt: "1",
		ReqList: []depositItem{{
			TranNo: "1", BankTranID: id, BankCodeStd: c.bankCode, AccountNum: req.To, AccountHolderName: req.ToHolder,
			TranAmt: strconv.FormatInt(req.Amount.Amount, 10), PrintContent: req.Memo, NameCheckOption: check,
		}},
	})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	a, err := c.do(ctx, request{method: http.MethodPost, path: "/v2.0/transfer/deposit/acnt_num", body: body})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	return decodeTransfer(a, id)
}

// tranTime is the time a transfer is dated by: its attempt's creation time,
// or now when the request has none, in the provider's zone.
func (c *Client) tranTime(req pipeline.TransferRequest) time.Time {
	if req.AttemptDay.IsZero() {
		return c.now().In(c.loc)
	}
	return req.AttemptDay.In(c.loc)
}

func checkTransfer(req pipeline.TransferRequest) error {
	switch {
	case !plausibleText(req.Key, 1, 64):
		return fmt.Errorf("%w: idempotency key must be 1 to 64 printable characters", ErrInvalidRequest)
	case !plausibleText(req.From, 1, 64) || !plausibleText(req.To, 1, 64):
		return fmt.Errorf("%w: from and to accounts must be 1 to 64 printable characters", ErrInvalidRequest)
	case !plausibleText(req.ToHolder, 0, 100) || !plausibleText(req.Memo, 0, 140):
		return fmt.Errorf("%w: holder name and memo must be printable text (at most 100 and 140 characters)", ErrInvalidRequest)
	case req.Amount.Amount <= 0:
		return fmt.Errorf("%w: %w: amount %d must be positive", ErrInvalidRequest, pipeline.ErrInvalidAmount, req.Amount.Amount)
	case req.Amount.Currency != currency:
		return fmt.Errorf("%w: %w: the openbanking dialect moves only %s, not %q", ErrInvalidRequest, pipeline.ErrInvalidCurrency, currency, req.Amount.Currency)
	}
	return nil
}

// resultBody is the request body of POST /v2.0/transfer/result.
type resultBody struct {
	CheckType string       `json:"check_type"`
	TranDtime string       `json:"tran_dtime"`
	ReqCnt    string       `json:"req_cnt"`
	ReqList   []resultItem `json:"req_list"`
}

type resultItem struct {
	TranNo          string `json:"tran_no"`
	OrgBankTranID   string `json:"org_bank_tran_id"`
	OrgBankTranDate string `json:"org_bank_tran_date"`
	OrgTranAmt      string `json:"org_tran_amt"`
}

// TransferStatus asks the result call what became of the transfer sent
// with req.Key, naming its date (req.AttemptDay, or today when zero) and
// amount. It returns an error wrapping pipeline.ErrNotFound only when the
// bank answers A04.
func (c *Client) TransferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	r, err := c.transferStatus(ctx, req)
	if err != nil {
		return pipeline.Receipt{}, fmt.Errorf("openbanking %s: transfer status %s: %w", c.name, req.Key, err)
	}
	return r, nil
}

func (c *Client) transferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	if err := checkTransfer(req); err != nil {
		return pipeline.Receipt{}, err
	}
	id := BankTranID(req.Key)
	body, err := json.Marshal(resultBody{
		CheckType: "2", TranDtime: c.now().In(c.loc).Format(dtimeLayout), ReqCnt: "1",
		ReqList: []resultItem{{
			TranNo: "1", OrgBankTranID: id, OrgBankTranDate: c.tranTime(req).Format(dateLayout),
			OrgTranAmt: strconv.FormatInt(req.Amount.Amount, 10),
		}},
	})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	a, err := c.do(ctx, request{method: http.MethodPost, path: "/v2.0/transfer/result", body: body})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	return decodeResult(a, id)
}
