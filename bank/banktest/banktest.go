// Package banktest is the contract every bank adapter keeps: one suite of
// scenarios (Run) that an adapter's tests run against the sandbox bank over
// real HTTP, asserting every outcome through pipeline.Classify, and a runner
// for recorded answers (RunFixtures), so that a bank which follows
// BANK_API.md but is not our sandbox works with the adapter unchanged.
//
// An adapter package calls both from its tests:
//
//	func TestContract(t *testing.T) { banktest.Run(t, dialect) }
//	func TestFixtures(t *testing.T) { banktest.RunFixtures(t, dialect, "testdata/fixtures") }
package banktest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/transport"
	"github.com/settle-dev/settle/pipeline"
)

// Conn is where an adapter under test finds its bank.
type Conn struct {
	BaseURL    string
	Token      string           // "": Token, unless OAuth is set
	OAuth      *transport.OAuth // client credentials instead of Token
	TLS        *transport.TLS   // mutual TLS
	Timeout    time.Duration    // 0: the adapter's default
	HTTPClient *http.Client     // nil: the adapter's default
	Now        func() time.Time // the sandbox's clock
}

// Dialect describes an adapter to the suite.
type Dialect struct {
	// Name is the dialect's name in the sandbox journal, e.g. "rest".
	Name string
	// New returns an adapter that talks to the bank at conn.
	New func(conn Conn) (pipeline.Bank, error)
	// JournalKey is the idempotency key the bank's journal shows for a
	// TransferRequest.Key; nil means the key itself.
	JournalKey func(key string) string
	// ErrorFault is the class of a call that the sandbox's error_rate fault
	// hits in this dialect: ClassUnknown where the fault is an HTTP 500
	// (rest), ClassTransient where it is a "nothing done" answer
	// (openbanking's rsp_code A0001).
	ErrorFault pipeline.Class
}

func (d Dialect) journalKey(key string) string {
	if d.JournalKey == nil {
		return key
	}
	return d.JournalKey(key)
}

// Transfer returns a KRW transfer request dated by the sandbox's start.
func Transfer(key, from, to, holder string, amount int64) pipeline.TransferRequest {
	return pipeline.TransferRequest{Key: key, From: from, To: to, ToHolder: holder,
		Amount: pipeline.Money{Amount: amount, Currency: "KRW"}, Memo: "settle " + key, AttemptDay: Start}
}

// WantClass fails the test unless the result lands in class want, and
// whenever an error shows the token.
func WantClass(t testing.TB, what string, r pipeline.Receipt, err error, want pipeline.Class) {
	t.Helper()
	if got := pipeline.Classify(r, err); got != want {
		t.Fatalf("%s: class %s (receipt %+v, err %v), want %s", what, got, r, err, want)
	}
	if err != nil && strings.Contains(err.Error(), Token) {
		t.Fatalf("%s: error shows the token: %v", what, err)
	}
}

// WantErr fails the test unless err wraps target.
func WantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: %v, want an error wrapping %q", what, err, target)
	}
}

// env is one scenario: an adapter talking to its own sandbox bank.
type env struct {
	*Sandbox
	t    *testing.T
	d    Dialect
	bank pipeline.Bank
}

func newEnv(t *testing.T, d Dialect) *env {
	t.Helper()
	e := &env{Sandbox: NewSandbox(t), t: t, d: d}
	e.bank = e.adapter(Conn{})
	return e
}

// adapter returns an adapter for the env's bank; conn's zero fields are
// filled in.
func (e *env) adapter(conn Conn) pipeline.Bank {
	e.t.Helper()
	if conn.BaseURL == "" {
		conn.BaseURL = e.URL
	}
	if conn.Token == "" && conn.OAuth == nil {
		conn.Token = Token
	}
	conn.Now = e.Clock.Now
	b, err := e.d.New(conn)
	if err != nil {
		e.t.Fatalf("new %s adapter: %v", e.d.Name, err)
	}
	return b
}

func (e *env) wantJournal(keys ...string) {
	e.t.Helper()
	j := e.Journal()
	if len(j) != len(keys) {
		e.t.Fatalf("journal has %d entries %+v, want %d", len(j), j, len(keys))
	}
	for i, k := range keys {
		if j[i].IdempotencyKey != e.d.journalKey(k) || j[i].Dialect != e.d.Name {
			e.t.Fatalf("journal entry %d is %+v, want key %s (%s) in dialect %s", i, j[i], k, e.d.journalKey(k), e.d.Name)
		}
	}
}

// Run runs every contract scenario against the dialect's adapter, each in
// parallel with a sandbox bank of its own.
func Run(t *testing.T, d Dialect) {
	scenarios := []struct {
		name string
		run  func(*env)
	}{
		{"success", success},
		{"permanent refusals", refusals},
		{"rate limited", rateLimited},
		{"error fault", errorFault},
		{"applied then dropped", appliedThenDropped},
		{"processing", processing},
		{"replayed key", replayedKey},
		{"mismatched key", mismatchedKey},
		{"never sent", neverSent},
		{"garbage answers", garbage},
		{"slow answers", slow},
		{"wrong token", wrongToken},
		{"balances", balances},
		{"cancelled context", cancelled},
		{"oauth token reused and refreshed", oauthReuse},
		{"oauth 401 refreshes and resends once", oauthRefused},
		{"oauth wrong client secret", oauthWrongSecret},
		{"mutual tls", mutualTLS},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(newEnv(t, d))
		})
	}
}

func success(e *env) {
	e.Open("110234567890", "Kim", 1000)
	e.Open("220987654321", "Lee", 0)
	req := Transfer("settle-s1-a1", "110234567890", "220987654321", "Lee", 600)
	r, err := e.bank.Transfer(bg(), req)
	WantClass(e.t, "transfer", r, err, pipeline.ClassSuccess)
	if r.BankRef == "" {
		e.t.Fatal("no bank reference")
	}
	if e.Balance("110234567890") != 400 || e.Balance("220987654321") != 600 {
		e.t.Fatal("the money did not move")
	}
	e.wantJournal(req.Key)
	s, err := e.bank.TransferStatus(bg(), req)
	WantClass(e.t, "status", s, err, pipeline.ClassSuccess)
	if s.BankRef != r.BankRef {
		e.t.Fatalf("status ref %q, transfer ref %q", s.BankRef, r.BankRef)
	}
}

func refusals(e *env) {
	e.Open("SRC", "Kim", 100)
	e.Open("DST", "Lee", 0)
	e.Open("FROZEN", "Park", 0)
	e.Open("CLOSED", "Choi", 0)
	e.SetState("FROZEN", banksim.StateFrozen)
	e.SetState("CLOSED", banksim.StateClosed)
	cases := []struct {
		req  pipeline.TransferRequest
		want pipeline.RefusalCode
	}{
		{Transfer("settle-s1-a1", "SRC", "NOBODY", "", 1), pipeline.RefusedNoSuchAccount},
		{Transfer("settle-s2-a1", "SRC", "CLOSED", "", 1), pipeline.RefusedAccountClosed},
		{Transfer("settle-s3-a1", "SRC", "FROZEN", "", 1), pipeline.RefusedAccountFrozen},
		{Transfer("settle-s4-a1", "SRC", "DST", "Not Lee", 1), pipeline.RefusedHolderNameMismatch},
		{Transfer("settle-s5-a1", "SRC", "DST", "Lee", 101), pipeline.RefusedInsufficientFunds},
	}
	for _, c := range cases {
		calls := []func() (pipeline.Receipt, error){
			func() (pipeline.Receipt, error) { return e.bank.Transfer(bg(), c.req) },
			func() (pipeline.Receipt, error) { return e.bank.Transfer(bg(), c.req) }, // replayed
			func() (pipeline.Receipt, error) { return e.bank.TransferStatus(bg(), c.req) },
		}
		for _, call := range calls {
			r, err := call()
			WantClass(e.t, c.req.Key, r, err, pipeline.ClassRefused)
			var refused *pipeline.RefusedError
			if !errors.As(err, &refused) || refused.Code != c.want || refused.BankCode == "" {
				e.t.Fatalf("%s: %v, want refusal %s with the bank's code", c.req.Key, err, c.want)
			}
		}
	}
	e.wantJournal()
}

func rateLimited(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	e.Faults(banksim.Faults{RateLimitRPS: 1})
	first := Transfer("settle-s1-a1", "A", "B", "", 1)
	if _, err := e.bank.Transfer(bg(), first); err != nil {
		e.t.Fatal(err)
	}
	req := Transfer("settle-s2-a1", "A", "B", "", 1)
	calls := []struct {
		what string
		call func() (pipeline.Receipt, error)
	}{
		{"transfer", func() (pipeline.Receipt, error) { return e.bank.Transfer(bg(), req) }},
		{"status", func() (pipeline.Receipt, error) { return e.bank.TransferStatus(bg(), req) }},
		{"balances", func() (pipeline.Receipt, error) {
			_, err := e.bank.Balances(bg(), []string{"A"})
			return pipeline.Receipt{}, err
		}},
	}
	for _, c := range calls {
		r, err := c.call()
		WantClass(e.t, c.what+" over the limit", r, err, pipeline.ClassTransient)
		WantErr(e.t, c.what+" over the limit", err, pipeline.ErrRateLimited)
		if pipeline.RetryAfter(err) != time.Second {
			e.t.Fatalf("%s: retry after %s, want the bank's 1s", c.what, pipeline.RetryAfter(err))
		}
	}
	e.wantJournal(first.Key)
	e.Clock.Advance(time.Second)
	r, err := e.bank.Transfer(bg(), req)
	WantClass(e.t, "after the Retry-After", r, err, pipeline.ClassSuccess)
	e.wantJournal(first.Key, req.Key)
}

func errorFault(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	e.Faults(banksim.Faults{ErrorRate: 1})
	req := Transfer("settle-s1-a1", "A", "B", "", 1)
	r, err := e.bank.Transfer(bg(), req)
	WantClass(e.t, "transfer under the error fault", r, err, e.d.ErrorFault)
	if e.d.ErrorFault == pipeline.ClassTransient {
		WantErr(e.t, "transfer under the error fault", err, pipeline.ErrUnavailable)
	}
	if _, err := e.bank.Balances(bg(), []string{"A"}); err == nil {
		e.t.Fatal("balances under the error fault: no error")
	}
	e.Faults(banksim.Faults{})
	e.wantJournal()
	r, err = e.bank.TransferStatus(bg(), req)
	WantClass(e.t, "status after the fault", r, err, pipeline.ClassAbsent)
	r, err = e.bank.Transfer(bg(), req)
	WantClass(e.t, "the same attempt again", r, err, pipeline.ClassSuccess)
	e.wantJournal(req.Key)
}

func appliedThenDropped(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	// A fresh connection per call: on a reused one, net/http may resend a
	// request by itself, which would turn the drop into a replay.
	bank := e.adapter(Conn{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	e.Faults(banksim.Faults{TimeoutAfterApplyRate: 1})
	req := Transfer("settle-s1-a1", "A", "B", "", 300)
	r, err := bank.Transfer(bg(), req)
	WantClass(e.t, "dropped connection", r, err, pipeline.ClassUnknown)
	e.Faults(banksim.Faults{})
	r, err = bank.TransferStatus(bg(), req)
	WantClass(e.t, "status", r, err, pipeline.ClassSuccess)
	e.wantJournal(req.Key)
}

// processing: a pending transfer is an unknown outcome that the status call
// resolves, at once (rest) or once the bank is done (openbanking).
func processing(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	e.Faults(banksim.Faults{ProcessingRate: 1, ProcessingDelayMS: 2000})
	req := Transfer("settle-s1-a1", "A", "B", "", 300)
	r, err := e.bank.Transfer(bg(), req)
	WantClass(e.t, "processing", r, err, pipeline.ClassUnknown)
	if r.State != pipeline.TransferPending || r.BankRef == "" {
		e.t.Fatalf("receipt %+v, want pending with a reference", r)
	}
	for i := 0; ; i++ {
		s, err := e.bank.TransferStatus(bg(), req)
		if pipeline.Classify(s, err) == pipeline.ClassSuccess {
			break
		}
		WantClass(e.t, "status while processing", s, err, pipeline.ClassUnknown)
		if s.State != pipeline.TransferPending || i == 2 {
			e.t.Fatalf("status %+v %v: not resolved after %d tries", s, err, i+1)
		}
		e.Clock.Advance(2 * time.Second)
	}
	e.wantJournal(req.Key)
}

func replayedKey(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	req := Transfer("settle-s1-a1", "A", "B", "Lee", 250)
	r1, err1 := e.bank.Transfer(bg(), req)
	r2, err2 := e.bank.Transfer(bg(), req)
	WantClass(e.t, "first", r1, err1, pipeline.ClassSuccess)
	WantClass(e.t, "replay", r2, err2, pipeline.ClassSuccess)
	if r1 != r2 {
		e.t.Fatalf("receipts differ: %+v %+v", r1, r2)
	}
	if e.Balance("B") != 250 {
		e.t.Fatal("a replayed key moved money twice")
	}
	e.wantJournal(req.Key)
}

func mismatchedKey(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	req := Transfer("settle-s1-a1", "A", "B", "", 250)
	if _, err := e.bank.Transfer(bg(), req); err != nil {
		e.t.Fatal(err)
	}
	other := req
	other.Amount.Amount = 251
	r, err := e.bank.Transfer(bg(), other)
	WantClass(e.t, "other content", r, err, pipeline.ClassKeyConflict)
	WantErr(e.t, "other content", err, pipeline.ErrKeyReused)
	if e.Balance("B") != 250 {
		e.t.Fatal("the conflicting transfer moved money")
	}
	e.wantJournal(req.Key)
}

func neverSent(e *env) {
	r, err := e.bank.TransferStatus(bg(), Transfer("settle-s404-a1", "A", "B", "", 1))
	WantClass(e.t, "never-sent key", r, err, pipeline.ClassAbsent)
	WantErr(e.t, "never-sent key", err, pipeline.ErrNotFound)
}

func slow(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	e.Faults(banksim.Faults{LatencyMS: 10_000})
	bank := e.adapter(Conn{Timeout: 50 * time.Millisecond})
	req := Transfer("settle-s1-a1", "A", "B", "", 1)
	r, err := bank.Transfer(bg(), req)
	WantClass(e.t, "transfer past the timeout", r, err, pipeline.ClassUnknown)
	WantErr(e.t, "transfer past the timeout", err, context.DeadlineExceeded)
	r, err = bank.TransferStatus(bg(), req)
	WantClass(e.t, "status past the timeout", r, err, pipeline.ClassUnknown)
	if _, err := bank.Balances(bg(), []string{"A"}); !errors.Is(err, context.DeadlineExceeded) {
		e.t.Fatalf("balances past the timeout: %v", err)
	}
	e.Faults(banksim.Faults{})
	// A client with room to answer: 50ms is too short for a loaded machine.
	r, err = e.adapter(Conn{Timeout: 10 * time.Second}).TransferStatus(bg(), req)
	WantClass(e.t, "status once the bank is fast", r, err, pipeline.ClassAbsent)
}

func wrongToken(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	bank := e.adapter(Conn{Token: "wrong-" + Token})
	req := Transfer("settle-s1-a1", "A", "B", "", 1)
	r, err := bank.Transfer(bg(), req)
	WantClass(e.t, "transfer", r, err, pipeline.ClassTransient)
	WantErr(e.t, "transfer", err, pipeline.ErrUnauthorized)
	r, err = bank.TransferStatus(bg(), req)
	WantClass(e.t, "status", r, err, pipeline.ClassTransient)
	WantErr(e.t, "status", err, pipeline.ErrUnauthorized)
	_, err = bank.Balances(bg(), []string{"A"})
	WantErr(e.t, "balances", err, pipeline.ErrUnauthorized)
	if strings.Contains(err.Error(), "wrong-"+Token) {
		e.t.Fatalf("balances: error shows the token: %v", err)
	}
	e.wantJournal()
}

func balances(e *env) {
	e.Open("110000000001", "Kim", 100)
	e.Open("110000000002", "Lee", 200)
	e.Open("110000000003", "Park", 0)
	e.Open("110000000004", "Choi", 50)
	e.SetState("110000000004", banksim.StateFrozen)
	asked := []string{"110000000001", "990000000001", "110000000002", "110000000003", "990000000002", "110000000001", "110000000004"}
	got, err := e.bank.Balances(bg(), asked)
	if err != nil {
		e.t.Fatal(err)
	}
	want := map[string]int64{"110000000001": 100, "110000000002": 200, "110000000003": 0, "110000000004": 50}
	seen := map[string]bool{}
	for _, b := range got {
		if w, ok := want[b.Account]; !ok || seen[b.Account] || b.Available != (pipeline.Money{Amount: w, Currency: "KRW"}) {
			e.t.Fatalf("balances %+v, want %v once each", got, want)
		}
		seen[b.Account] = true
	}
	if len(seen) != len(want) {
		e.t.Fatalf("balances %+v, want %v", got, want)
	}
	if got, err := e.bank.Balances(bg(), nil); err != nil || len(got) != 0 {
		e.t.Fatalf("no accounts: %v %v", got, err)
	}
}

func cancelled(e *env) {
	e.Open("A", "Kim", 1000)
	e.Open("B", "Lee", 0)
	ctx, cancel := context.WithCancel(bg())
	cancel()
	req := Transfer("settle-s1-a1", "A", "B", "", 1)
	r, err := e.bank.Transfer(ctx, req)
	WantErr(e.t, "transfer with a cancelled context", err, context.Canceled)
	if pipeline.Classify(r, err) == pipeline.ClassSuccess {
		e.t.Fatal("a cancelled call succeeded")
	}
	if _, err := e.bank.Balances(ctx, []string{"A", "B"}); !errors.Is(err, context.Canceled) {
		e.t.Fatalf("balances with a cancelled context: %v", err)
	}
	e.wantJournal()
}
