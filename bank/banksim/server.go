package banksim

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Options configures a Server.
type Options struct {
	// Token is the bearer token every request must carry. An empty token
	// refuses every request.
	Token string
	// Logger receives the server's logs; nil discards them. The token is
	// never logged.
	Logger *slog.Logger
	// Now is the server's clock for timestamps, the rate limit and pending
	// transfers; nil means time.Now.
	Now func() time.Time
	// JournalWithoutHasMore serves GET /sandbox/journal as a bank that does
	// not say whether more follows: no has_more and no next_after, so a
	// reader must ask again after the last entry's seq until a page comes
	// back empty (docs/bank-api.md).
	JournalWithoutHasMore bool
	// StatementsWithoutHasMore serves GET /v1/accounts/<id>/transactions as
	// many real banks do: no has_more, and the statement's last page says
	// so with an empty next_cursor (docs/bank-api.md).
	StatementsWithoutHasMore bool
}

// Server is the sandbox bank. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	log    *slog.Logger
	now    func() time.Time
	want   [32]byte // sha256 of the expected Authorization header
	open   bool     // a token is configured
	core   *core
	faults *injector
	stats  *stats
	mux    *http.ServeMux
	// bareJournal is Options.JournalWithoutHasMore.
	bareJournal bool
	// bareStatements is Options.StatementsWithoutHasMore.
	bareStatements bool
}

// New returns an empty sandbox bank.
func New(opts Options) *Server {
	s := &Server{log: opts.Logger, now: opts.Now, mux: http.NewServeMux(), stats: newStats(), bareJournal: opts.JournalWithoutHasMore,
		bareStatements: opts.StatementsWithoutHasMore}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Token == "" {
		s.log.Warn("banksim: no token configured; every request will be refused")
	}
	s.want = sha256.Sum256([]byte("Bearer " + opts.Token))
	s.open = opts.Token != ""
	s.core = newCore(s.now)
	s.faults = newInjector(s.now)
	s.routes()
	return s
}

// routes registers every endpoint. A new dialect adds its register call here.
func (s *Server) routes() {
	s.registerSandbox()
	s.registerRest()
	s.registerOpenBanking()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, &requestError{status: http.StatusNotFound, code: "no_such_endpoint",
			message: r.Method + " " + r.URL.Path + " is not an endpoint of the sandbox bank"})
	})
}

// ServeHTTP checks the bearer token, then routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	if subtle.ConstantTimeCompare(got[:], s.want[:]) != 1 || !s.open {
		s.stats.unauthorized.Add(1)
		s.fail(w, &requestError{status: http.StatusUnauthorized, code: "unauthorized",
			message: "missing or wrong bearer token; send Authorization: Bearer <token>"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// handle registers a sandbox endpoint: counted, never faulted.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	n := s.stats.counter(pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		s.log.Debug("banksim request", "endpoint", pattern)
		h(w, r)
	})
}

// dialectHandler serves a dialect endpoint under the faults drawn for it.
type dialectHandler func(w http.ResponseWriter, r *http.Request, d decision)

// failAnswer answers a request that the error fault hit, in the dialect's
// way of saying that nothing was done.
type failAnswer func(w http.ResponseWriter)

// handleDialect registers a dialect endpoint: counted, rate limited, delayed
// and failed as the faults say. The error fault answers HTTP 500.
func (s *Server) handleDialect(pattern string, h dialectHandler) {
	s.handleDialectFailing(pattern, s.injectedError, h)
}

// handleDialectFailing is handleDialect with the dialect's own answer to the
// error fault.
func (s *Server) handleDialectFailing(pattern string, onFail failAnswer, h dialectHandler) {
	n := s.stats.counter(pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		d := s.faults.decide()
		if s.injectFaults(w, r, d, onFail) {
			return
		}
		h(w, r, d)
	})
}

// injectedError is the error fault's answer in the rest dialect: HTTP 500.
func (s *Server) injectedError(w http.ResponseWriter) {
	s.fail(w, &requestError{status: http.StatusInternalServerError, code: "injected_error",
		message: "the sandbox injected this error; nothing was done"})
}

// injectFaults answers for the faults that stop a request before the
// dialect sees it; it reports whether it answered.
func (s *Server) injectFaults(w http.ResponseWriter, r *http.Request, d decision, onFail failAnswer) bool {
	if d.limited {
		s.stats.rateLimited.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int(d.retryAfter/time.Second)))
		s.fail(w, &requestError{status: http.StatusTooManyRequests, code: "rate_limited",
			message: "too many requests; nothing was done, retry after the Retry-After seconds"})
		return true
	}
	if d.latency > 0 && !s.delay(w, r, d.latency) {
		return true
	}
	if d.fail {
		s.log.Debug("banksim injected error", "path", r.URL.Path)
		onFail(w)
		return true
	}
	return false
}

// delay waits d or until the client goes away; it reports whether the full
// delay passed. It reads the body first: only then does net/http notice a
// client that hangs up.
func (s *Server) delay(w http.ResponseWriter, r *http.Request, d time.Duration) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.fail(w, decodeError(err))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// fail writes an error answer and counts 5xx.
func (s *Server) fail(w http.ResponseWriter, e *requestError) {
	if e.status >= 500 {
		s.stats.serverErrors.Add(1)
	}
	writeJSON(w, e.status, errorBody{Error: errorDetail{Code: e.code, Message: e.message}})
}

// coreError turns a core error into an answer.
func (s *Server) coreError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errInvalid):
		s.fail(w, badRequest("%s", strings.TrimPrefix(err.Error(), errInvalid.Error()+": ")))
	case errors.Is(err, errNoAccount):
		s.fail(w, &requestError{status: http.StatusNotFound, code: "no_such_account", message: "no such account"})
	case errors.Is(err, errAccountExists):
		s.fail(w, &requestError{status: http.StatusConflict, code: "account_exists", message: err.Error()})
	case errors.Is(err, errNoTransfer):
		s.fail(w, &requestError{status: http.StatusNotFound, code: "no_such_transfer", message: err.Error()})
	case errors.Is(err, errNotApplied):
		s.fail(w, &requestError{status: http.StatusConflict, code: "not_applied", message: err.Error()})
	case errors.Is(err, errKeyConflict):
		s.fail(w, &requestError{status: http.StatusUnprocessableEntity, code: "idempotency_key_reused", message: err.Error()})
	default:
		s.log.Error("banksim internal error", "err", err)
		s.fail(w, &requestError{status: http.StatusInternalServerError, code: "internal", message: "internal error"})
	}
}

// dropConnection closes the client's connection without an answer, as a
// bank that applied a transfer and then timed out would.
func (s *Server) dropConnection(w http.ResponseWriter) {
	s.stats.dropped.Add(1)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	_ = conn.Close()
}
