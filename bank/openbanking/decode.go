package openbanking

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// maxAnswer is the largest answer body the adapter reads; a larger one is a
// bad response.
const maxAnswer = 1 << 20

// maxPlausibleAmount is the largest amount the adapter believes a bank:
// 10^15 won. Anything above it is a bad response.
const maxPlausibleAmount = 1_000_000_000_000_000

// maxRetryAfter caps the wait a bank may ask for.
const maxRetryAfter = time.Hour

// currency is the only currency of the dialect: it has no currency field.
const currency = "KRW"

// ErrRejected means the bank refused the request itself as invalid (HTTP 400
// and other unexpected 4xx) and did nothing we know of. It is a bug on one
// side; it classifies as an unknown outcome, so the engine asks again
// rather than sending a new attempt.
var ErrRejected = errors.New("bank rejected the request as invalid")

// answer is one HTTP answer as the decoders see it: plain data, so decoding
// is a pure function.
type answer struct {
	status      int
	contentType string
	retryAfter  string // the Retry-After header
	body        []byte // at most maxAnswer bytes
	truncated   bool   // the body was larger than maxAnswer
	now         time.Time
}

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
func decodeTransfer(a answer, id string) (pipeline.Receipt, error) {
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
func decodeResult(a answer, id string) (pipeline.Receipt, error) {
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
func decodeBalance(a answer, account string) (b pipeline.Balance, known bool, err error) {
	var ba balanceAnswer
	if err := decodeEnvelope(a, &ba, &ba.top); err != nil {
		return pipeline.Balance{}, false, err
	}
	if ba.AccountNum != "" && ba.AccountNum != account {
		return pipeline.Balance{}, false, fmt.Errorf("%w: the answer is for account %s", pipeline.ErrBadResponse, maskAccount(ba.AccountNum))
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
func decodeItem(a answer) (item, error) {
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
func decodeEnvelope(a answer, v any, t *top) error {
	status := strconv.Itoa(a.status)
	if hv := lookup(layerHTTP, status); !hv.next {
		return httpError(a, hv.err)
	}
	if err := decodeJSON(a, v); err != nil {
		return err
	}
	if t.RspCode == "" {
		return fmt.Errorf("%w: rsp_code is missing", pipeline.ErrBadResponse)
	}
	if gv := lookup(layerGateway, t.RspCode); !gv.next {
		return fmt.Errorf("%w (rsp_code %s%s)", gv.err, quoted(t.RspCode), message(t.RspMessage))
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
		return pipeline.Receipt{}, &pipeline.RefusedError{Code: v.refusal, BankCode: it.BankRspCode, Message: scrub(it.BankRspMessage)}
	}
	return pipeline.Receipt{State: v.state, BankRef: ref}, nil
}

// itemVerdict looks a bank_rsp_code up for call c; a code the call may not
// answer, or a sentinel, is an error.
func itemVerdict(code, msg string, c call) (verdict, error) {
	v := lookup(layerItem, code)
	switch {
	case v.err == pipeline.ErrBadResponse:
		return verdict{}, fmt.Errorf("%w: bank_rsp_code %s is not one settle knows, outcome unknown%s", v.err, quoted(code), message(msg))
	case v.on&c == 0:
		return verdict{}, fmt.Errorf("%w: bank_rsp_code %s does not answer this call, outcome unknown%s", pipeline.ErrBadResponse, quoted(code), message(msg))
	case v.err != nil:
		return verdict{}, fmt.Errorf("%w (bank_rsp_code %s%s)", v.err, code, message(msg))
	}
	return v, nil
}

// httpError is the error of an HTTP status that is not 200.
func httpError(a answer, sentinel error) error {
	if sentinel == pipeline.ErrRateLimited {
		return &pipeline.RetryAfterError{Err: pipeline.ErrRateLimited, After: parseRetryAfter(a.retryAfter, a.now)}
	}
	if sentinel == pipeline.ErrBadResponse {
		return fmt.Errorf("%w: HTTP %d, outcome unknown%s", sentinel, a.status, a.detail())
	}
	return fmt.Errorf("%w (HTTP %d%s)", sentinel, a.status, a.detail())
}

// parseAmount reads a decimal-string amount of won: digits only.
func parseAmount(s *string) (int64, error) {
	switch {
	case s == nil:
		return 0, errors.New("missing")
	case *s == "" || len(*s) > 19 || !allDigits(*s):
		return 0, fmt.Errorf("%s is not a decimal string of digits", quoted(*s))
	}
	v, err := strconv.ParseInt(*s, 10, 64)
	if err != nil || v > maxPlausibleAmount {
		return 0, fmt.Errorf("%s is implausibly large", quoted(*s))
	}
	return v, nil
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; anything
// else, or nothing, is 0 (no hint). The wait is capped at an hour.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// decodeJSON decodes a complete JSON object answer into v.
func decodeJSON(a answer, v any) error {
	if a.truncated {
		return fmt.Errorf("%w: answer is larger than %d bytes", pipeline.ErrBadResponse, maxAnswer)
	}
	if !isJSON(a.contentType) {
		return fmt.Errorf("%w: answer has content type %s, not application/json", pipeline.ErrBadResponse, quoted(a.contentType))
	}
	if len(a.body) == 0 || a.body[0] != '{' {
		return fmt.Errorf("%w: answer body is not a JSON object", pipeline.ErrBadResponse)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("%w: %s", pipeline.ErrBadResponse, describeJSONError(err))
	}
	return nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func describeJSONError(err error) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s holds %s of the wrong type", quoted(typ.Field), scrub(typ.Value))
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	}
	return "invalid JSON"
}

// detail is what an error answer says, scrubbed, for an error text: the
// dialect's rsp_code and rsp_message, or the {"error":{…}} of the sandbox.
func (a answer) detail() string {
	var body struct {
		top
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if a.truncated || !isJSON(a.contentType) || json.Unmarshal(a.body, &body) != nil {
		return ""
	}
	switch {
	case body.Error.Code != "":
		return ": " + scrub(body.Error.Code) + message(body.Error.Message)
	case body.RspCode != "":
		return ": " + scrub(body.RspCode) + message(body.RspMessage)
	}
	return ""
}

// message is ": msg", scrubbed, or "" for no message.
func message(msg string) string {
	if msg = scrub(msg); msg == "" {
		return ""
	}
	return ": " + msg
}
