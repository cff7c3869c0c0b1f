package openbanking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/pipeline"
)

// BatchSize is the number of accounts one balance call asks about: the
// dialect has no batch call, so Balances makes one call per account. A
// throttle in front of the adapter should count balance calls in these units.
const BatchSize = 1

// DefaultTimeout is the time limit of one call when Config.Timeout is 0.
const DefaultTimeout = bankhttp.DefaultTimeout

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

// Config configures a Client: the connection settings every dialect has
// (Config.Name e.g. "acme-ob", Config.BaseURL e.g.
// "https://openapi.bank.example"; OAuth as the Korean open-banking API
// issues tokens; Now is also the clock for tran_dtime and for the date of a
// transfer whose request has no AttemptDay), and the dialect's own.
type Config struct {
	bankhttp.Config
	// BankCode is the bank_code_std of the accounts (three digits); ""
	// means DefaultBankCode.
	BankCode string
	// Location is the time zone of tran_dtime and of org_bank_tran_date:
	// the day a transfer is filed under at the bank. nil means Korea
	// Standard Time, as the Korean open-banking API uses.
	Location *time.Location
}

// spec is the openbanking dialect's HTTP: the idempotency key
// (bank_tran_id) travels in the body.
var spec = bankhttp.Spec{
	UserAgent: "settle-openbanking/1", BodyType: "application/json; charset=UTF-8",
	ExampleName: "acme-ob", ExampleURL: "https://openapi.bank.example",
}

// Client speaks the openbanking dialect to one provider. It is safe for
// concurrent use.
type Client struct {
	name     string
	bankCode string
	loc      *time.Location
	http     *bankhttp.Client
}

var _ pipeline.Bank = (*Client)(nil)

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	h, err := bankhttp.New(spec, cfg.Config, cfg.checkBankCode())
	if err != nil {
		return nil, fmt.Errorf("openbanking %s: config: %w", cfg.Name, err)
	}
	c := &Client{name: cfg.Name, bankCode: cfg.BankCode, loc: cfg.Location, http: h}
	if c.bankCode == "" {
		c.bankCode = DefaultBankCode
	}
	if c.loc == nil {
		c.loc = kst
	}
	return c, nil
}

// checkBankCode checks BankCode, the one setting that is the dialect's own.
func (cfg Config) checkBankCode() error {
	if cfg.BankCode != "" && (len(cfg.BankCode) != 3 || !allDigits(cfg.BankCode)) {
		return fmt.Errorf("field BankCode must be three digits such as %q", DefaultBankCode)
	}
	return nil
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
			return nil, fmt.Errorf("openbanking %s: balance of %s: %w", c.name, bankhttp.MaskAccount(account), err)
		}
		if known {
			out = append(out, b)
		}
	}
	return out, nil
}

func (c *Client) balance(ctx context.Context, account string) (pipeline.Balance, bool, error) {
	if !bankhttp.PlausibleText(account, 1, 64) {
		return pipeline.Balance{}, false, fmt.Errorf("%w: account number must be 1 to 64 printable characters", ErrInvalidRequest)
	}
	q := url.Values{
		"bank_code_std": {c.bankCode}, "account_num": {account},
		"bank_tran_id": {queryTranID()}, "tran_dtime": {c.http.Now().In(c.loc).Format(dtimeLayout)},
	}
	const path = "/v2.0/account/balance/acnt_num"
	a, err := c.http.Do(ctx, bankhttp.Request{Method: http.MethodGet, Path: path + "?" + q.Encode(), Shown: path + "?account_num=" + bankhttp.MaskAccount(account)})
	if err != nil {
		return pipeline.Balance{}, false, err
	}
	b, known, err := decodeBalance(a, account)
	if err == nil && !known {
		c.http.Logger().Debug("bank does not show the account's balance", "provider", c.name, "account", pipeline.AccountNumber(account))
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
	a, err := c.http.Do(ctx, bankhttp.Request{Method: http.MethodPost, Path: "/v2.0/transfer/deposit/acnt_num", Body: body})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	return decodeTransfer(a, id)
}

// tranTime is the time a transfer is dated by: its attempt's creation time,
// or now when the request has none, in the provider's zone.
func (c *Client) tranTime(req pipeline.TransferRequest) time.Time {
	if req.AttemptDay.IsZero() {
		return c.http.Now().In(c.loc)
	}
	return req.AttemptDay.In(c.loc)
}

func checkTransfer(req pipeline.TransferRequest) error {
	switch {
	case !bankhttp.PlausibleText(req.Key, 1, 64):
		return fmt.Errorf("%w: idempotency key must be 1 to 64 printable characters", ErrInvalidRequest)
	case !bankhttp.PlausibleText(req.From, 1, 64) || !bankhttp.PlausibleText(req.To, 1, 64):
		return fmt.Errorf("%w: from and to accounts must be 1 to 64 printable characters", ErrInvalidRequest)
	case !bankhttp.PlausibleText(req.ToHolder, 0, 100) || !bankhttp.PlausibleText(req.Memo, 0, 140):
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
		CheckType: "2", TranDtime: c.http.Now().In(c.loc).Format(dtimeLayout), ReqCnt: "1",
		ReqList: []resultItem{{
			TranNo: "1", OrgBankTranID: id, OrgBankTranDate: c.tranTime(req).Format(dateLayout),
			OrgTranAmt: strconv.FormatInt(req.Amount.Amount, 10),
		}},
	})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	a, err := c.http.Do(ctx, bankhttp.Request{Method: http.MethodPost, Path: "/v2.0/transfer/result", Body: body})
	if err != nil {
		return pipeline.Receipt{}, err
	}
	return decodeResult(a, id)
}
