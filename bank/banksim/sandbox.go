package banksim

import (
	"net/http"
	"strconv"
)

// Journal page sizes.
const (
	journalMaxPage = 1000
)

func (s *Server) registerSandbox() {
	s.handle("POST /sandbox/accounts", s.sandboxCreateAccount)
	s.handle("POST /sandbox/accounts/{id}/credit", s.sandboxCredit)
	s.handle("POST /sandbox/accounts/{id}/state", s.sandboxSetState)
	s.handle("GET /sandbox/accounts/{id}", s.sandboxAccount)
	s.handle("PUT /sandbox/faults", s.sandboxSetFaults)
	s.handle("GET /sandbox/faults", s.sandboxFaults)
	s.handle("GET /sandbox/journal", s.sandboxJournal)
	s.handle("POST /sandbox/transfers/reapply", s.sandboxReapply)
	s.handle("POST /sandbox/transfers/forget", s.sandboxForget)
	s.handle("GET /sandbox/stats", s.sandboxStats)
	s.handle("POST /sandbox/reset", s.sandboxReset)
}

func (s *Server) sandboxCreateAccount(w http.ResponseWriter, r *http.Request) {
	var a Account
	if e := decodeBody(w, r, &a); e != nil {
		s.fail(w, e)
		return
	}
	a, err := s.core.createAccount(a)
	if err != nil {
		s.coreError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

// creditRequest is the body of POST /sandbox/accounts/<id>/credit.
type creditRequest struct {
	Amount       int64  `json:"amount"`
	Counterparty string `json:"counterparty"`
}

func (s *Server) sandboxCredit(w http.ResponseWriter, r *http.Request) {
	var c creditRequest
	if e := decodeBody(w, r, &c); e != nil {
		s.fail(w, e)
		return
	}
	s.answerAccount(w)(s.core.credit(r.PathValue("id"), c.Amount, c.Counterparty))
}

// stateRequest is the body of POST /sandbox/accounts/<id>/state.
type stateRequest struct {
	State      AccountState `json:"state"`
	HolderName string       `json:"holder_name,omitempty"`
}

func (s *Server) sandboxSetState(w http.ResponseWriter, r *http.Request) {
	var c stateRequest
	if e := decodeBody(w, r, &c); e != nil {
		s.fail(w, e)
		return
	}
	s.answerAccount(w)(s.core.setState(r.PathValue("id"), c.State, c.HolderName))
}

func (s *Server) sandboxAccount(w http.ResponseWriter, r *http.Request) {
	s.answerAccount(w)(s.core.account(r.PathValue("id")))
}

func (s *Server) answerAccount(w http.ResponseWriter) func(Account, error) {
	return func(a Account, err error) {
		if err != nil {
			s.coreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	}
}

func (s *Server) sandboxSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if e := decodeBody(w, r, &f); e != nil {
		s.fail(w, e)
		return
	}
	if err := f.validate(); err != nil {
		s.coreError(w, err)
		return
	}
	s.faults.set(f)
	s.core.setForgetRefusals(f.ForgetRefusals)
	s.log.Info("banksim faults set", "faults", f)
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) sandboxFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.get())
}

// JournalPage is one page of GET /sandbox/journal. NextAfter and HasMore
// are nil when the bank does not send them (Options.JournalWithoutHasMore).
type JournalPage struct {
	Entries   []JournalEntry `json:"entries"`
	NextAfter *int64         `json:"next_after,omitempty"`
	HasMore   *bool          `json:"has_more,omitempty"`
}

func (s *Server) sandboxJournal(w http.ResponseWriter, r *http.Request) {
	after, limit, e := journalParams(r)
	if e != nil {
		s.fail(w, e)
		return
	}
	entries, more := s.core.journalPage(after, limit)
	page := JournalPage{Entries: entries}
	if page.Entries == nil {
		page.Entries = []JournalEntry{}
	}
	if !s.bareJournal {
		next := after
		if n := len(entries); n > 0 {
			next = entries[n-1].Seq
		}
		page.NextAfter, page.HasMore = &next, &more
	}
	writeJSON(w, http.StatusOK, page)
}

// reapplyRequest is the body of POST /sandbox/transfers/reapply.
type reapplyRequest struct {
	Dialect        string `json:"dialect"`
	IdempotencyKey string `json:"idempotency_key"`
}

// sandboxReapply applies a transfer the bank applied before once more, under
// the same key: the bank that breaks its idempotency promise, which the
// journal check must catch.
func (s *Server) sandboxReapply(w http.ResponseWriter, r *http.Request) {
	var q reapplyRequest
	if e := decodeBody(w, r, &q); e != nil {
		s.fail(w, e)
		return
	}
	entry, err := s.core.reapply(q.Dialect, q.IdempotencyKey)
	if err != nil {
		s.coreError(w, err)
		return
	}
	s.log.Warn("banksim transfer applied again", "dialect", q.Dialect, "seq", entry.Seq)
	writeJSON(w, http.StatusOK, entry)
}

// sandboxForget drops the bank's record of a key (the body is a
// reapplyRequest): the bank past its key retention, which no longer knows a
// key it applied long ago.
func (s *Server) sandboxForget(w http.ResponseWriter, r *http.Request) {
	var q reapplyRequest
	if e := decodeBody(w, r, &q); e != nil {
		s.fail(w, e)
		return
	}
	if err := s.core.forget(q.Dialect, q.IdempotencyKey); err != nil {
		s.coreError(w, err)
		return
	}
	s.log.Warn("banksim key forgotten", "dialect", q.Dialect)
	w.WriteHeader(http.StatusNoContent)
}

func journalParams(r *http.Request) (after int64, limit int, e *requestError) {
	q := r.URL.Query()
	limit = journalMaxPage
	var err error
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return 0, 0, badRequest("after must be a journal sequence number (0 or more)")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > journalMaxPage {
			return 0, 0, badRequest("limit must be a whole number from 1 to %d", journalMaxPage)
		}
	}
	return after, limit, nil
}

func (s *Server) sandboxStats(w http.ResponseWriter, _ *http.Request) {
	st := s.stats.snapshot(s.core.applied())
	st.SentAgain = s.core.sentAgain()
	writeJSON(w, http.StatusOK, st)
}

// sandboxReset forgets every account, transfer, journal entry, fault and
// counter.
func (s *Server) sandboxReset(w http.ResponseWriter, _ *http.Request) {
	s.core.reset()
	s.faults.set(Faults{})
	s.core.setForgetRefusals(false)
	s.stats.reset()
	s.log.Info("banksim reset")
	w.WriteHeader(http.StatusNoContent)
}
