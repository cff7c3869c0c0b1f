package openbanking

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/pipeline"
)

// currency is the only currency of the dialect: it has no currency field.
const currency = "KRW"

// ErrRejected means the bank refused the request itself as invalid (HTTP 400
// and other unexpected 4xx) and did nothing we know of. It is a bug on one
// side; it classifies as an unknown outcome, so the engine asks again
// rather than sending a new attempt.
var ErrRejected = errors.New("bank rejected the request as invalid")

// layer is where in an answer a code sits.
type layer string

const (
	layerHTTP    layer = "HTTP"          // the HTTP status
	layerGateway layer = "rsp_code"      // the top-level rsp_code
	layerItem    layer = "bank_rsp_code" // the code of the one account or transfer
)

// call is a bitmask of the calls a bank_rsp_code may answer.
type call uint8

const (
	callTransfer  call = 1 << iota // POST /v2.0/transfer/deposit/acnt_num
	callResult                     // POST /v2.0/transfer/result
	callBalance                    // GET /v2.0/account/balance/acnt_num
	callAll       = callTransfer | callResult | callBalance
	callTransfers = callTransfer | callResult
)

// verdict is what a code means to settle.
type verdict struct {
	next    bool                   // read the next layer
	state   pipeline.TransferState // a receipt: succeeded, or pending (outcome unknown)
	refusal pipeline.RefusalCode   // a permanent refusal
	err     error                  // a sentinel the error wraps
	on      call                   // bank_rsp_codes: the calls that may answer it
}

// table is THE mapping from the dialect's codes to pipeline outcomes; every
// decision about an answer is a lookup here. Per layer, a code is looked up
// as itself, then as its class ("4xx"), then as "*".
var table = map[layer]map[string]verdict{
	layerHTTP: {
		"2xx": {next: true}, // the rsp_code says what happened
		"401": {err: pipeline.ErrUnauthorized},
		"403": {err: pipeline.ErrUnauthorized},
		"429": {err: pipeline.ErrRateLimited}, // with the Retry-After hint
		"4xx": {err: ErrRejected},             // outcome unknown
		"*":   {err: pipeline.ErrBadResponse}, // 5xx, 3xx, anything else: outcome unknown
	},
	layerGateway: {
		"A0000": {next: true},
		"*":     {err: pipeline.ErrUnavailable}, // A0001 gateway busy and the like: nothing done
	},
	layerItem: {
		"000": {state: pipeline.TransferSucceeded, on: callAll},
		"400": {state: pipeline.TransferPending, on: callTransfers},
		"412": {refusal: pipeline.RefusedNoSuchAccount, on: callAll},
		"415": {refusal: pipeline.RefusedAccountClosed, on: callAll},
		"420": {refusal: pipeline.RefusedAccountFrozen, on: callAll},
		"815": {refusal: pipeline.RefusedHolderNameMismatch, on: callTransfers},
		"551": {refusal: pipeline.RefusedInsufficientFunds, on: callTransfers},
		"A05": {err: pipeline.ErrKeyReused, on: callTransfer},
		"A04": {err: pipeline.ErrNotFound, on: callResult},
		"*":   {err: pipeline.ErrBadResponse}, // a code settle does not know: outcome unknown
	},
}

// lookup returns the verdict on code at layer l.
func lookup(l layer, code string) verdict {
	rows := table[l]
	if v, ok := rows[code]; ok {
		return v
	}
	if len(code) == 3 && code[0] >= '1' && code[0] <= '5' {
		if v, ok := rows[code[:1]+"xx"]; ok {
			return v
		}
	}
	return rows["*"]
}

// top is the top level of every answer.
type top struct {
	RspCode    string `json:"rsp_code"`
	RspMessage string `json:"rsp_message"`
}

// item is the one res_list item of a transfer or result answer. The echoes
// are optional; when present they must match.
type item struct {
	TranNo         string `json:"tran_no"`
	BankTranID     string `json:"bank_tran_id"`
	OrgBankTranID  string `json:"org_bank_tran_id"`
	BankRspCode    string `json:"bank_rsp_code"`
	BankRspMessage string `json:"bank_rsp_message"`
}

type listAnswer struct {
	top
	ResList []item `json:"res_list"`
}

type balanceAnswer struct {
	top
	BankTranID     string  `json:"bank_tran_id"`
	BankRspCode    string  `json:"bank_rsp_code"`
	BankRspMessage string  `json:"bank_rsp_message"`
	AccountNum     string  `json:"account_num"`
	AvailableAmt   *string `json:"available_amt"`
}

// decodeTransfer turns the answer to a deposit with bank_tran_id id into a
// receipt or a classified error.
func decodeTransfer(a bankhttp.Answer, id string) (pipeline.Receipt, error) {
	it, err := decodeItem(a)
	if err != nil {
		return pipeline.Receipt{}, err
	}
	if it.BankTranID != "" && it.BankTranID != id {
		return pipeline.Receipt{}, fmt.Errorf("%w: the answer is for another bank_tran_id", pipeline.ErrBadResponse)
	}
	return itemOutcome(it, callTransfer, id)
}

// decodeResult turns the answer to a result call about bank_tran_id id into
// a receipt or a classified error.
func decodeResult(a bankhttp.Answer, id string) (pipeline.Receipt, error) {
	it, err := decodeItem(a)
	if err != nil {
		return pipeline.Receipt{}, err
	}
	if it.OrgBankTranID != "" && it.OrgBankTranID != id {
		return pipeline.Receipt{}, fmt.Errorf("%w: the answer is for another org_bank_tran_id", pipeline.ErrBadResponse)
	}
	return itemOutcome(it, callResult, id)
}

// decodeBalance turns the answer to a balance call into the account's
// balance; known is false when the bank says it has no such account, or
// refuses it as closed or frozen.
func decodeBalance(a bankhttp.Answer, account string) (b pipeline.Balance, known bool, err error) {
	var ba balanceAnswer
	if err := decodeEnvelope(a, &ba, &ba.top); err != nil {
		return pipeline.Balance{}, false, err
	}
	if ba.AccountNum != "" && ba.AccountNum != account {
		return pipeline.Balance{}, false, fmt.Errorf("%w: the answer is for account %s", pipeline.ErrBadResponse, bankhttp.MaskAccount(ba.AccountNum))
	}
	v, err := itemVerdict(ba.BankRspCode, ba.BankRspMessage, callBalance)
	switch {
	case err != nil:
		return pipeline.Balance{}, false, err
	case v.refusal != "":
		return pipeline.Balance{}, false, nil
	}
	amount, err := parseAmount(ba.AvailableAmt)
	if err != nil {
		return pipeline.Balance{}, false, fmt.Errorf("%w: available_amt: %w", pipeline.ErrBadResponse, err)
	}
	return pipeline.Balance{Account: account, Available: pipeline.Money{Amount: amount, Currency: currency}}, true, nil
}

// decodeItem reads the HTTP and gateway layers and returns the one item.
func decodeItem(a bankhttp.Answer) (item, error) {
	var la listAnswer
	if err := decodeEnvelope(a, &la, &la.top); err != nil {
		return item{}, err
	}
	if len(la.ResList) != 1 {
		return item{}, fmt.Errorf("%w: res_list has %d items, want 1", pipeline.ErrBadResponse, len(la.ResList))
	}
	return la.ResList[0], nil
}

// decodeEnvelope reads the HTTP layer, decodes the body into v and reads
// the gateway layer from t (a part of v).
func decodeEnvelope(a bankhttp.Answer, v any, t *top) error {
	status := strconv.Itoa(a.Status)
	if hv := lookup(layerHTTP, status); !hv.next {
		return httpError(a, hv.err)
	}
	if err := bankhttp.DecodeJSON(a, v); err != nil {
		return err
	}
	if t.RspCode == "" {
		return fmt.Errorf("%w: rsp_code is missing", pipeline.ErrBadResponse)
	}
	if gv := lookup(layerGateway, t.RspCode); !gv.next {
		return fmt.Errorf("%w (rsp_code %s%s)", gv.err, bankhttp.Quoted(t.RspCode), message(t.RspMessage))
	}
	return nil
}

// itemOutcome turns a transfer or result item into a receipt or an error;
// ref is the receipt's bank reference.
func itemOutcome(it item, c call, ref string) (pipeline.Receipt, error) {
	v, err := itemVerdict(it.BankRspCode, it.BankRspMessage, c)
	switch {
	case err != nil:
		return pipeline.Receipt{}, err
	case v.refusal != "":
		return pipeline.Receipt{}, &pipeline.RefusedError{Code: v.refusal, BankCode: it.BankRspCode, Message: bankhttp.Scrub(it.BankRspMessage)}
	}
	return pipeline.Receipt{State: v.state, BankRef: ref}, nil
}

// itemVerdict looks a bank_rsp_code up for call c; a code the call may not
// answer, or a sentinel, is an error.
func itemVerdict(code, msg string, c call) (verdict, error) {
	v := lookup(layerItem, code)
	switch {
	case v.err == pipeline.ErrBadResponse:
		return verdict{}, fmt.Errorf("%w: bank_rsp_code %s is not one settle knows, outcome unknown%s", v.err, bankhttp.Quoted(code), message(msg))
	case v.on&c == 0:
		return verdict{}, fmt.Errorf("%w: bank_rsp_code %s does not answer this call, outcome unknown%s", pipeline.ErrBadResponse, bankhttp.Quoted(code), message(msg))
	case v.err != nil:
		return verdict{}, fmt.Errorf("%w (bank_rsp_code %s%s)", v.err, code, message(msg))
	}
	return v, nil
}

// httpError is the error of an HTTP status that is not 200.
func httpError(a bankhttp.Answer, sentinel error) error {
	if sentinel == pipeline.ErrRateLimited {
		return a.RateLimited()
	}
	if sentinel == pipeline.ErrBadResponse {
		return fmt.Errorf("%w: HTTP %d, outcome unknown%s", sentinel, a.Status, detail(a))
	}
	return fmt.Errorf("%w (HTTP %d%s)", sentinel, a.Status, detail(a))
}

// parseAmount reads a decimal-string amount of won: digits only.
func parseAmount(s *string) (int64, error) {
	switch {
	case s == nil:
		return 0, errors.New("missing")
	case *s == "" || len(*s) > 19 || !allDigits(*s):
		return 0, fmt.Errorf("%s is not a decimal string of digits", bankhttp.Quoted(*s))
	}
	v, err := strconv.ParseInt(*s, 10, 64)
	if err != nil || v > bankhttp.MaxPlausibleAmount {
		return 0, fmt.Errorf("%s is implausibly large", bankhttp.Quoted(*s))
	}
	return v, nil
}

// detail is what an error answer says, scrubbed, for an error text: the
// dialect's rsp_code and rsp_message, or the {"error":{…}} of the sandbox.
func detail(a bankhttp.Answer) string {
	var body struct {
		top
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if bankhttp.RequireJSON(a) != nil || json.Unmarshal(a.Body, &body) != nil {
		return ""
	}
	switch {
	case body.Error.Code != "":
		return ": " + bankhttp.Scrub(body.Error.Code) + message(body.Error.Message)
	case body.RspCode != "":
		return ": " + bankhttp.Scrub(body.RspCode) + message(body.RspMessage)
	}
	return ""
}

// message is ": msg", scrubbed, or "" for no message.
func message(msg string) string {
	if msg = bankhttp.Scrub(msg); msg == "" {
		return ""
	}
	return ": " + msg
}
