package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/pipeline"
)

// ErrRejected means the bank refused the request itself as invalid (HTTP 400
// and other unexpected 4xx) and did nothing. It is a bug on one side; it
// classifies as an unknown outcome, so the engine asks the status call.
var ErrRejected = errors.New("bank rejected the request as invalid, nothing done")

// restTransfer is the transfer object of the rest dialect.
type restTransfer struct {
	ID             string  `json:"id"`
	Status         string  `json:"status"`
	FailureCode    *string `json:"failure_code"`
	FailureMessage string  `json:"failure_message"`
	IdempotencyKey string  `json:"idempotency_key"`
}

// refusals maps the rest dialect's failure codes to settle's.
var refusals = map[string]pipeline.RefusalCode{
	"no_such_account":      pipeline.RefusedNoSuchAccount,
	"account_closed":       pipeline.RefusedAccountClosed,
	"account_frozen":       pipeline.RefusedAccountFrozen,
	"holder_name_mismatch": pipeline.RefusedHolderNameMismatch,
	"insufficient_funds":   pipeline.RefusedInsufficientFunds,
}

// decodeTransfer turns the answer to POST /v1/transfers into a receipt or a
// classified error.
func decodeTransfer(a bankhttp.Answer, key string) (pipeline.Receipt, error) {
	switch a.Status {
	case http.StatusOK, http.StatusCreated:
		return decodeTransferBody(a, key)
	case http.StatusUnprocessableEntity:
		return pipeline.Receipt{}, fmt.Errorf("%w (HTTP 422%s)", pipeline.ErrKeyReused, detail(a))
	}
	return pipeline.Receipt{}, statusError(a)
}

// decodeStatus turns the answer to GET /v1/transfers?idempotency_key= into a
// receipt or a classified error. A 404 means "never seen" only when the bank
// says so in JSON: a proxy's or a wrong path's 404 page must not let the
// engine send a second attempt.
func decodeStatus(a bankhttp.Answer, key string) (pipeline.Receipt, error) {
	switch a.Status {
	case http.StatusOK:
		return decodeTransferBody(a, key)
	case http.StatusNotFound:
		if err := bankhttp.RequireJSON(a); err != nil {
			return pipeline.Receipt{}, fmt.Errorf("HTTP 404 that is not the bank's answer: %w", err)
		}
		return pipeline.Receipt{}, pipeline.ErrNotFound
	}
	return pipeline.Receipt{}, statusError(a)
}

func decodeTransferBody(a bankhttp.Answer, key string) (pipeline.Receipt, error) {
	var t restTransfer
	if err := bankhttp.DecodeJSON(a, &t); err != nil {
		return pipeline.Receipt{}, err
	}
	if t.IdempotencyKey != "" && t.IdempotencyKey != key {
		return pipeline.Receipt{}, fmt.Errorf("%w: the answer is for another idempotency key", pipeline.ErrBadResponse)
	}
	if !bankhttp.PlausibleText(t.ID, 1, 128) {
		return pipeline.Receipt{}, fmt.Errorf("%w: transfer id is missing or malformed", pipeline.ErrBadResponse)
	}
	return transferOutcome(t)
}

func transferOutcome(t restTransfer) (pipeline.Receipt, error) {
	hasCode := t.FailureCode != nil && *t.FailureCode != ""
	switch {
	case t.Status == "succeeded" && !hasCode:
		return pipeline.Receipt{State: pipeline.TransferSucceeded, BankRef: t.ID}, nil
	case t.Status == "pending" && !hasCode:
		return pipeline.Receipt{State: pipeline.TransferPending, BankRef: t.ID}, nil
	case t.Status == "failed" && hasCode:
		return pipeline.Receipt{}, refusedError(*t.FailureCode, t.FailureMessage)
	}
	return pipeline.Receipt{}, fmt.Errorf("%w: status %s with failure_code %s", pipeline.ErrBadResponse,
		bankhttp.Quoted(t.Status), bankhttp.Quoted(deref(t.FailureCode)))
}

func refusedError(code, message string) error {
	mapped, ok := refusals[code]
	if !ok {
		return fmt.Errorf("%w: transfer failed with unknown failure_code %s, outcome unknown", pipeline.ErrBadResponse, bankhttp.Quoted(code))
	}
	return &pipeline.RefusedError{Code: mapped, BankCode: code, Message: bankhttp.Scrub(message)}
}

// restBalances is the answer of POST /v1/balances:batchGet.
type restBalances struct {
	Balances []struct {
		AccountID string `json:"account_id"`
		Available *int64 `json:"available"`
		Currency  string `json:"currency"`
	} `json:"balances"`
	Missing []string `json:"missing"`
}

// decodeBalances turns the answer to one batch into balances of the
// accounts asked for; accounts the bank lists as missing are left out. Every
// account asked must come back once, in balances or in missing: an answer
// that leaves one out is not understood.
func decodeBalances(a bankhttp.Answer, asked []string) ([]pipeline.Balance, error) {
	if a.Status != http.StatusOK {
		return nil, statusError(a)
	}
	var rb restBalances
	if err := bankhttp.DecodeJSON(a, &rb); err != nil {
		return nil, err
	}
	open := make(map[string]bool, len(asked)) // asked and not answered yet
	for _, id := range asked {
		open[id] = true
	}
	out := make([]pipeline.Balance, 0, len(rb.Balances))
	for _, b := range rb.Balances {
		if err := answered(open, b.AccountID); err != nil {
			return nil, err
		}
		m, err := plausibleMoney(b.Available, b.Currency)
		if err != nil {
			return nil, fmt.Errorf("%w: balance of %s: %w", pipeline.ErrBadResponse, bankhttp.MaskAccount(b.AccountID), err)
		}
		out = append(out, pipeline.Balance{Account: b.AccountID, Available: m})
	}
	for _, id := range rb.Missing {
		if err := answered(open, id); err != nil {
			return nil, err
		}
	}
	for _, id := range asked {
		if open[id] {
			return nil, fmt.Errorf("%w: neither a balance nor missing for %s", pipeline.ErrBadResponse, bankhttp.MaskAccount(id))
		}
	}
	return out, nil
}

// answered marks id as answered; it is an error unless id was asked for and
// not answered yet.
func answered(open map[string]bool, id string) error {
	if !open[id] {
		return fmt.Errorf("%w: an answer about %s, which was not asked for or came twice", pipeline.ErrBadResponse, bankhttp.MaskAccount(id))
	}
	open[id] = false
	return nil
}

func plausibleMoney(amount *int64, currency string) (pipeline.Money, error) {
	if amount == nil {
		return pipeline.Money{}, errors.New("amount is missing")
	}
	if *amount > bankhttp.MaxPlausibleAmount {
		return pipeline.Money{}, fmt.Errorf("amount %d is implausibly large", *amount)
	}
	return pipeline.NewMoney(*amount, currency)
}

// Direction says whether a transaction brought money in or took it out.
type Direction string

// The directions of a transaction.
const (
	Credit Direction = "credit"
	Debit  Direction = "debit"
)

// Transaction is one line of an account's statement at the bank.
type Transaction struct {
	ID             string
	Amount         int64 // positive minor units
	Direction      Direction
	Counterparty   string
	IdempotencyKey string // empty for money that did not come from a keyed transfer
	CreatedAt      time.Time
}

// TransactionPage is one page of an account's statement. NextCursor is where
// to resume, now or later. HasMore says whether more lines follow already:
// the bank's has_more when it sends one; has_more is not part of the
// documented answer, so without it a page with lines and a next_cursor
// counts as followed by more, and the statement ends with an empty page or
// with a page whose next_cursor is empty or absent (docs/bank-api.md).
type TransactionPage struct {
	Transactions []Transaction
	NextCursor   string
	HasMore      bool
}

type restTransactions struct {
	Transactions []struct {
		ID             string    `json:"id"`
		Amount         *int64    `json:"amount"`
		Direction      string    `json:"direction"`
		Counterparty   string    `json:"counterparty"`
		IdempotencyKey string    `json:"idempotency_key"`
		CreatedAt      time.Time `json:"created_at"`
	} `json:"transactions"`
	NextCursor string `json:"next_cursor"`
	HasMore    *bool  `json:"has_more"`
}

// decodeTransactions turns the answer of GET /v1/accounts/<id>/transactions
// into a page.
func decodeTransactions(a bankhttp.Answer) (TransactionPage, error) {
	if a.Status != http.StatusOK {
		return TransactionPage{}, statusError(a)
	}
	var rt restTransactions
	if err := bankhttp.DecodeJSON(a, &rt); err != nil {
		return TransactionPage{}, err
	}
	page := TransactionPage{NextCursor: rt.NextCursor, HasMore: len(rt.Transactions) > 0 && rt.NextCursor != ""}
	if rt.HasMore != nil {
		page.HasMore = *rt.HasMore
	}
	for i, t := range rt.Transactions {
		if err := checkTransaction(t.ID, t.Amount, t.Direction); err != nil {
			return TransactionPage{}, fmt.Errorf("%w: transaction %d: %w", pipeline.ErrBadResponse, i, err)
		}
		page.Transactions = append(page.Transactions, Transaction{
			ID: t.ID, Amount: *t.Amount, Direction: Direction(t.Direction), Counterparty: t.Counterparty,
			IdempotencyKey: t.IdempotencyKey, CreatedAt: t.CreatedAt,
		})
	}
	if page.HasMore && !bankhttp.PlausibleText(page.NextCursor, 1, 256) {
		return TransactionPage{}, fmt.Errorf("%w: more lines follow but next_cursor is missing or malformed", pipeline.ErrBadResponse)
	}
	return page, nil
}

func checkTransaction(id string, amount *int64, dir string) error {
	switch {
	case !bankhttp.PlausibleText(id, 1, 128):
		return errors.New("id is missing or malformed")
	case amount == nil || *amount <= 0 || *amount > bankhttp.MaxPlausibleAmount:
		return errors.New("amount is missing, not positive or implausibly large")
	case dir != string(Credit) && dir != string(Debit):
		return fmt.Errorf("direction %s is neither credit nor debit", bankhttp.Quoted(dir))
	}
	return nil
}

// statusError classifies an HTTP status that is not a success of the call.
func statusError(a bankhttp.Answer) error {
	switch {
	case a.Status == http.StatusUnauthorized || a.Status == http.StatusForbidden:
		return fmt.Errorf("%w (HTTP %d%s)", pipeline.ErrUnauthorized, a.Status, detail(a))
	case a.Status == http.StatusTooManyRequests:
		return a.RateLimited()
	case a.Status >= 500:
		return fmt.Errorf("%w: HTTP %d, outcome unknown%s", pipeline.ErrBadResponse, a.Status, detail(a))
	case a.Status >= 400:
		return fmt.Errorf("%w (HTTP %d%s)", ErrRejected, a.Status, detail(a))
	}
	return fmt.Errorf("%w: unexpected HTTP %d%s", pipeline.ErrBadResponse, a.Status, detail(a))
}

// detail is the bank's error code and message, scrubbed, for an error text.
func detail(a bankhttp.Answer) string {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if bankhttp.RequireJSON(a) != nil || json.Unmarshal(a.Body, &eb) != nil || eb.Error.Code == "" {
		return ""
	}
	if eb.Error.Message == "" {
		return ": " + bankhttp.Scrub(eb.Error.Code)
	}
	return ": " + bankhttp.Scrub(eb.Error.Code) + ": " + bankhttp.Scrub(eb.Error.Message)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
