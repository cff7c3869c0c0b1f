package banksim

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// dialectRest is the name of the rest dialect in the journal.
const dialectRest = "rest"

// restIdempotency binds a rest key to the whole transfer: from, to, holder
// name, amount, currency and memo. Asking about a pending transfer settles it.
var restIdempotency = idempotency{same: transferRequest.sameContent, settleOnAsk: true}

// Limits and names of the rest dialect.
const (
	restMaxBatch       = 100
	restMaxPage        = 500
	restDefaultPage    = 100
	restMaxKeyRunes    = 64
	headerIdemKey      = "Idempotency-Key"
	headerIdemReplayed = "Idempotent-Replayed"
	restQueryKey       = "idempotency_key"
)

func (s *Server) registerRest() {
	s.handleDialect("POST /v1/balances:batchGet", s.restBalances)
	s.handleDialect("POST /v1/transfers", s.restCreateTransfer)
	s.handleDialect("GET /v1/transfers", s.restGetTransfer)
	s.handleDialect("GET /v1/accounts/{id}/transactions", s.restTransactions)
}

type restBalancesRequest struct {
	AccountIDs []string `json:"account_ids"`
}

type restBalance struct {
	AccountID string `json:"account_id"`
	Available int64  `json:"available"`
	Currency  string `json:"currency"`
}

type restBalancesResponse struct {
	Balances []restBalance `json:"balances"`
	Missing  []string      `json:"missing"`
}

func (s *Server) restBalances(w http.ResponseWriter, r *http.Request, _ decision) {
	var req restBalancesRequest
	if e := decodeBody(w, r, &req); e != nil {
		s.fail(w, e)
		return
	}
	if len(req.AccountIDs) == 0 || len(req.AccountIDs) > restMaxBatch {
		s.fail(w, badRequest("account_ids must list 1 to %d accounts, not %d", restMaxBatch, len(req.AccountIDs)))
		return
	}
	found, missing := s.core.balances(req.AccountIDs)
	resp := restBalancesResponse{Balances: make([]restBalance, 0, len(found)), Missing: missing}
	for _, a := range found {
		resp.Balances = append(resp.Balances, restBalance{AccountID: a.ID, Available: a.Balance, Currency: a.Currency})
	}
	if resp.Missing == nil {
		resp.Missing = []string{}
	}
	writeJSON(w, http.StatusOK, resp)
}

type restTransferRequest struct {
	FromAccount  string `json:"from_account"`
	ToAccount    string `json:"to_account"`
	ToHolderName string `json:"to_holder_name"`
	Amount       int64  `json:"amount"`
	Currency     string `json:"currency"`
	Memo         string `json:"memo"`
}

// restTransfer is a transfer as the rest dialect shows it: the fields of
// BANK_API.md plus what the bank recorded.
type restTransfer struct {
	ID             string    `json:"id"`
	Status         string    `json:"status"`
	FailureCode    string    `json:"failure_code,omitempty"`
	IdempotencyKey string    `json:"idempotency_key"`
	FromAccount    string    `json:"from_account"`
	ToAccount      string    `json:"to_account"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	CreatedAt      time.Time `json:"created_at"`
}

func restView(t transfer) restTransfer {
	return restTransfer{
		ID: t.ID, Status: string(t.Status), FailureCode: string(t.Failure),
		IdempotencyKey: t.Req.Key, FromAccount: t.Req.From, ToAccount: t.Req.To,
		Amount: t.Req.Amount, Currency: t.Req.Currency, CreatedAt: t.CreatedAt,
	}
}

// restCreateTransfer serves POST /v1/transfers. Refusals are 201 with status
// "failed"; a replayed key answers the transfer as it stands now (a pending
// one is settled by being asked again) with Idempotent-Replayed: true.
func (s *Server) restCreateTransfer(w http.ResponseWriter, r *http.Request, d decision) {
	key := r.Header.Get(headerIdemKey)
	if !validKey(key) {
		s.fail(w, badRequest("%s header must be 1 to %d characters", headerIdemKey, restMaxKeyRunes))
		return
	}
	var body restTransferRequest
	if e := decodeBody(w, r, &body); e != nil {
		s.fail(w, e)
		return
	}
	t, replayed, err := s.core.transfer(body.toCore(key), s.pendingUntil(d))
	if err != nil {
		s.coreError(w, err)
		return
	}
	if d.dropAfterApply {
		s.dropConnection(w)
		return
	}
	s.answerTransfer(w, t, replayed)
}

func (b restTransferRequest) toCore(key string) transferRequest {
	return transferRequest{
		Key: key, From: b.FromAccount, To: b.ToAccount, Holder: b.ToHolderName,
		Amount: b.Amount, Currency: b.Currency, Memo: b.Memo, Dialect: dialectRest,
	}
}

func (s *Server) pendingUntil(d decision) time.Time {
	if !d.processing {
		return time.Time{}
	}
	return s.now().Add(d.pendingFor)
}

func (s *Server) answerTransfer(w http.ResponseWriter, t transfer, replayed bool) {
	if replayed {
		w.Header().Set(headerIdemReplayed, "true")
	} else if t.Status == statusPending {
		s.stats.pending.Add(1)
	}
	writeJSON(w, http.StatusCreated, restView(t))
}

// restGetTransfer serves GET /v1/transfers?idempotency_key=<key>.
func (s *Server) restGetTransfer(w http.ResponseWriter, r *http.Request, _ decision) {
	key := r.URL.Query().Get(restQueryKey)
	if !validKey(key) {
		s.fail(w, badRequest("query parameter %s must be 1 to %d characters", restQueryKey, restMaxKeyRunes))
		return
	}
	t, ok := s.core.transferByKey(dialectRest, key)
	if !ok {
		s.fail(w, &requestError{status: http.StatusNotFound, code: "not_found", message: "the bank never saw a transfer with that idempotency key"})
		return
	}
	writeJSON(w, http.StatusOK, restView(t))
}

func validKey(key string) bool {
	n := utf8.RuneCountInString(key)
	return n >= 1 && n <= restMaxKeyRunes && utf8.ValidString(key)
}

type restTransactionsResponse struct {
	Transactions []Transaction `json:"transactions"`
	NextCursor   string        `json:"next_cursor"`
	HasMore      *bool         `json:"has_more,omitempty"`
}

// restTransactions serves GET /v1/accounts/<id>/transactions. The cursor is
// opaque to callers; next_cursor is always set, so a caller can keep it and
// ask later for what arrived since, except with bareStatements: then there
// is no has_more and the last page's next_cursor is empty.
func (s *Server) restTransactions(w http.ResponseWriter, r *http.Request, _ decision) {
	after, limit, e := pageParams(r)
	if e != nil {
		s.fail(w, e)
		return
	}
	page, next, more, err := s.core.transactions(r.PathValue("id"), after, limit)
	if err != nil {
		s.coreError(w, err)
		return
	}
	if page == nil {
		page = []Transaction{}
	}
	out := restTransactionsResponse{Transactions: page, NextCursor: strconv.Itoa(next), HasMore: &more}
	if s.bareStatements {
		out.HasMore = nil
		if !more {
			out.NextCursor = ""
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func pageParams(r *http.Request) (after, limit int, e *requestError) {
	q := r.URL.Query()
	after, limit = 0, restDefaultPage
	var err error
	if v := q.Get("after"); v != "" {
		if after, err = strconv.Atoi(v); err != nil || after < 0 {
			return 0, 0, badRequest("after must be a cursor from next_cursor")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > restMaxPage {
			return 0, 0, badRequest("limit must be a whole number from 1 to %d", restMaxPage)
		}
	}
	return after, limit, nil
}
