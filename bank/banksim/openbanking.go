package banksim

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// dialectOpenBanking is the name of the openbanking dialect in the journal.
const dialectOpenBanking = "openbanking"

// Codes and names of the openbanking dialect.
const (
	obBankCode     = "097" // the sandbox's bank_code_std
	obCurrency     = "KRW" // the dialect has no currency field: everything is won
	obTranIDLen    = 20
	obRspOK        = "A0000" // top level: the request was processed
	obRspBusy      = "A0001" // top level: gateway busy, nothing done
	obDone         = "000"
	obProcessing   = "400"
	obNoSuchTran   = "A04"
	obTranIDReused = "A05"
	obCheckDeposit = "2" // check_type of a deposit's result
	obDtimeLayout  = "20060102150405"
	obDateLayout   = "20060102"
)

// obRefusals maps the core's refusals to bank_rsp_codes.
var obRefusals = map[refusal]string{
	refusedNoSuchAccount:      "412",
	refusedAccountClosed:      "415",
	refusedAccountFrozen:      "420",
	refusedHolderNameMismatch: "815",
	refusedInsufficientFunds:  "551",
}

// openBankingIdempotency binds a bank_tran_id to the destination account,
// the amount and the holder name, as BANK_API.md says: the source account
// and print_content are not part of it. A pending transfer stays pending
// until due, however often it is asked about.
var openBankingIdempotency = idempotency{same: sameDeposit, settleOnAsk: false}

func sameDeposit(first, req transferRequest) bool {
	return first.To == req.To && first.Amount == req.Amount && first.Holder == req.Holder && first.Currency == req.Currency
}

func (s *Server) registerOpenBanking() {
	s.handleDialectFailing("GET /v2.0/account/balance/acnt_num", s.obGatewayBusy, s.obBalance)
	s.handleDialectFailing("POST /v2.0/transfer/deposit/acnt_num", s.obGatewayBusy, s.obDeposit)
	s.handleDialectFailing("POST /v2.0/transfer/result", s.obGatewayBusy, s.obResult)
}

// obTop is the top level of every openbanking answer.
type obTop struct {
	RspCode    string `json:"rsp_code"`
	RspMessage string `json:"rsp_message"`
}

// obGatewayBusy is the openbanking answer to the error fault: HTTP 200 with
// rsp_code A0001, nothing done.
func (s *Server) obGatewayBusy(w http.ResponseWriter) {
	s.stats.gatewayBusy.Add(1)
	writeJSON(w, http.StatusOK, obTop{RspCode: obRspBusy, RspMessage: "gateway busy: nothing was done, try again later"})
}

type obBalanceAnswer struct {
	obTop
	BankTranID     string `json:"bank_tran_id"`
	BankRspCode    string `json:"bank_rsp_code"`
	BankRspMessage string `json:"bank_rsp_message"`
	AccountNum     string `json:"account_num"`
	BalanceAmt     string `json:"balance_amt,omitempty"`
	AvailableAmt   string `json:"available_amt,omitempty"`
}

// obBalance serves GET /v2.0/account/balance/acnt_num: one account a call.
// An account the bank does not know, or not in won, is bank_rsp_code 412.
func (s *Server) obBalance(w http.ResponseWriter, r *http.Request, _ decision) {
	q := r.URL.Query()
	if e := obCheckBalanceQuery(q.Get("bank_code_std"), q.Get("account_num"), q.Get("bank_tran_id"), q.Get("tran_dtime")); e != nil {
		s.fail(w, e)
		return
	}
	ans := obBalanceAnswer{obTop: obTop{RspCode: obRspOK}, BankTranID: q.Get("bank_tran_id"), AccountNum: q.Get("account_num")}
	found, _ := s.core.balances([]string{ans.AccountNum})
	if len(found) == 0 || found[0].Currency != obCurrency {
		ans.BankRspCode, ans.BankRspMessage = obRefusals[refusedNoSuchAccount], "no such account"
		writeJSON(w, http.StatusOK, ans)
		return
	}
	amt := strconv.FormatInt(found[0].Balance, 10)
	ans.BankRspCode, ans.BalanceAmt, ans.AvailableAmt = obDone, amt, amt
	writeJSON(w, http.StatusOK, ans)
}

func obCheckBalanceQuery(bankCode, account, tranID, dtime string) *requestError {
	switch {
	case bankCode != obBankCode:
		return badRequest("bank_code_std must be %s, the sandbox's bank code", obBankCode)
	case validateAccountID("account_num", account) != nil:
		return badRequest("account_num must be 1 to 64 letters, digits, '-', '_' or '.'")
	}
	return obCheckTran(tranID, dtime)
}

func obCheckTran(tranID, dtime string) *requestError {
	if !obValidTranID(tranID) {
		return badRequest("bank_tran_id must be %d characters A-Z or 0-9", obTranIDLen)
	}
	if _, err := time.Parse(obDtimeLayout, dtime); err != nil || len(dtime) != len(obDtimeLayout) {
		return badRequest("tran_dtime must be YYYYMMDDhhmmss")
	}
	return nil
}

func obValidTranID(id string) bool {
	if len(id) != obTranIDLen {
		return false
	}
	for i := range len(id) {
		if !isUpper(id[i]) && (id[i] < '0' || id[i] > '9') {
			return false
		}
	}
	return true
}

// obAmount parses a decimal-string amount: digits only, positive, within
// int64.
func obAmount(field, s string) (int64, *requestError) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || s[0] == '+' {
		return 0, badRequest("%s must be a positive whole number of won in a decimal string, such as \"2500000\"", field)
	}
	return v, nil
}

type obDepositRequest struct {
	CntrAccountNum string          `json:"cntr_account_num"`
	TranDtime      string          `json:"tran_dtime"`
	ReqCnt         string          `json:"req_cnt"`
	ReqList        []obDepositItem `json:"req_list"`
}

type obDepositItem struct {
	TranNo            string `json:"tran_no"`
	BankTranID        string `json:"bank_tran_id"`
	BankCodeStd       string `json:"bank_code_std"`
	AccountNum        string `json:"account_num"`
	AccountHolderName string `json:"account_holder_name"`
	TranAmt           string `json:"tran_amt"`
	PrintContent      string `json:"print_content"`
	NameCheckOption   string `json:"name_check_option"`
}

type obDepositAnswer struct {
	obTop
	ResCnt  string           `json:"res_cnt"`
	ResList []obDepositReply `json:"res_list"`
}

type obDepositReply struct {
	TranNo         string `json:"tran_no"`
	BankTranID     string `json:"bank_tran_id"`
	BankTranDate   string `json:"bank_tran_date"`
	AccountNum     string `json:"account_num"`
	TranAmt        string `json:"tran_amt"`
	BankRspCode    string `json:"bank_rsp_code"`
	BankRspMessage string `json:"bank_rsp_message"`
}

// obDeposit serves POST /v2.0/transfer/deposit/acnt_num. Every processed
// request is HTTP 200 with rsp_code A0000; the outcome is the item's
// bank_rsp_code.
func (s *Server) obDeposit(w http.ResponseWriter, r *http.Request, d decision) {
	var body obDepositRequest
	if e := decodeBody(w, r, &body); e != nil {
		s.fail(w, e)
		return
	}
	req, e := body.toCore()
	if e != nil {
		s.fail(w, e)
		return
	}
	item := body.ReqList[0]
	t, replayed, err := s.core.transfer(req, s.pendingUntil(d))
	switch {
	case errors.Is(err, errKeyConflict):
		s.obAnswerDeposit(w, item, req.Day, obTranIDReused, "bank_tran_id already used with a different account, amount or holder name")
		return
	case err != nil:
		s.coreError(w, err)
		return
	}
	if d.dropAfterApply {
		s.dropConnection(w)
		return
	}
	if !replayed && t.Status == statusPending {
		s.stats.pending.Add(1)
	}
	code, msg := obOutcome(t)
	s.obAnswerDeposit(w, item, t.Req.Day, code, msg)
}

func (s *Server) obAnswerDeposit(w http.ResponseWriter, item obDepositItem, day, code, msg string) {
	writeJSON(w, http.StatusOK, obDepositAnswer{obTop: obTop{RspCode: obRspOK}, ResCnt: "1", ResList: []obDepositReply{{
		TranNo: item.TranNo, BankTranID: item.BankTranID, BankTranDate: day, AccountNum: item.AccountNum,
		TranAmt: item.TranAmt, BankRspCode: code, BankRspMessage: msg,
	}}})
}

// toCore checks the request and turns it into the core's transfer. With
// name_check_option "off" the holder name is neither checked nor bound.
func (b obDepositRequest) toCore() (transferRequest, *requestError) {
	if b.ReqCnt != "1" || len(b.ReqList) != 1 {
		return transferRequest{}, badRequest("the sandbox takes exactly one transfer a request: req_cnt \"1\" and one req_list item")
	}
	it := b.ReqList[0]
	if e := obCheckTran(it.BankTranID, b.TranDtime); e != nil {
		return transferRequest{}, e
	}
	amount, e := obAmount("tran_amt", it.TranAmt)
	if e != nil {
		return transferRequest{}, e
	}
	holder, e := it.checkedHolder()
	if e != nil {
		return transferRequest{}, e
	}
	return transferRequest{
		Key: it.BankTranID, From: b.CntrAccountNum, To: it.AccountNum, Holder: holder, Amount: amount,
		Currency: obCurrency, Memo: it.PrintContent, Dialect: dialectOpenBanking, Day: b.TranDtime[:len(obDateLayout)],
	}, nil
}

func (it obDepositItem) checkedHolder() (string, *requestError) {
	switch {
	case it.TranNo == "":
		return "", badRequest("tran_no must be set")
	case it.BankCodeStd != obBankCode:
		return "", badRequest("bank_code_std must be %s, the sandbox's bank code", obBankCode)
	case it.NameCheckOption == "off":
		return "", nil
	case it.NameCheckOption != "on" && it.NameCheckOption != "":
		return "", badRequest(`name_check_option must be "on" or "off"`)
	case it.AccountHolderName == "":
		return "", badRequest("account_holder_name must be set when name_check_option is on")
	}
	return it.AccountHolderName, nil
}

// obOutcome is a transfer record's bank_rsp_code and message.
func obOutcome(t transfer) (code, msg string) {
	switch t.Status {
	case statusSucceeded:
		return obDone, "done"
	case statusPending:
		return obProcessing, "accepted, still processing: ask transfer/result later"
	}
	return obRefusals[t.Failure], string(t.Failure)
}

type obResultRequest struct {
	CheckType string         `json:"check_type"`
	TranDtime string         `json:"tran_dtime"`
	ReqCnt    string         `json:"req_cnt"`
	ReqList   []obResultItem `json:"req_list"`
}

type obResultItem struct {
	TranNo          string `json:"tran_no"`
	OrgBankTranID   string `json:"org_bank_tran_id"`
	OrgBankTranDate string `json:"org_bank_tran_date"`
	OrgTranAmt      string `json:"org_tran_amt"`
}

type obResultAnswer struct {
	obTop
	ResCnt  string          `json:"res_cnt"`
	ResList []obResultReply `json:"res_list"`
}

type obResultReply struct {
	obResultItem
	BankRspCode    string `json:"bank_rsp_code"`
	BankRspMessage string `json:"bank_rsp_message"`
}

// obResult serves POST /v2.0/transfer/result: the transfer's final code,
// "400" while it is still processing, "A04" when the bank has no transfer
// with that ID. A transfer found by ID whose date or amount differ from the
// request is a 400, never an A04: a caller's mistake must not look like
// permission to send a new attempt.
func (s *Server) obResult(w http.ResponseWriter, r *http.Request, _ decision) {
	var body obResultRequest
	if e := decodeBody(w, r, &body); e != nil {
		s.fail(w, e)
		return
	}
	amount, e := body.check()
	if e != nil {
		s.fail(w, e)
		return
	}
	item := body.ReqList[0]
	t, ok := s.core.transferByKey(dialectOpenBanking, item.OrgBankTranID)
	if !ok {
		s.obAnswerResult(w, item, obNoSuchTran, "no transfer with that bank_tran_id")
		return
	}
	if t.Req.Day != item.OrgBankTranDate || t.Req.Amount != amount {
		s.fail(w, badRequest("org_bank_tran_date %s or org_tran_amt %s does not match the transfer with that bank_tran_id",
			item.OrgBankTranDate, item.OrgTranAmt))
		return
	}
	code, msg := obOutcome(t)
	s.obAnswerResult(w, item, code, msg)
}

func (s *Server) obAnswerResult(w http.ResponseWriter, item obResultItem, code, msg string) {
	writeJSON(w, http.StatusOK, obResultAnswer{obTop: obTop{RspCode: obRspOK}, ResCnt: "1",
		ResList: []obResultReply{{obResultItem: item, BankRspCode: code, BankRspMessage: msg}}})
}

// check validates the request and returns the amount it names.
func (b obResultRequest) check() (int64, *requestError) {
	switch {
	case b.CheckType != obCheckDeposit:
		return 0, badRequest("check_type must be %q (deposit): the sandbox has no withdrawals", obCheckDeposit)
	case b.ReqCnt != "1" || len(b.ReqList) != 1:
		return 0, badRequest("the sandbox takes exactly one transfer a request: req_cnt \"1\" and one req_list item")
	case b.ReqList[0].TranNo == "":
		return 0, badRequest("tran_no must be set")
	}
	it := b.ReqList[0]
	if e := obCheckTran(it.OrgBankTranID, b.TranDtime); e != nil {
		return 0, e
	}
	if _, err := time.Parse(obDateLayout, it.OrgBankTranDate); err != nil || len(it.OrgBankTranDate) != len(obDateLayout) {
		return 0, badRequest("org_bank_tran_date must be YYYYMMDD")
	}
	return obAmount("org_tran_amt", it.OrgTranAmt)
}
