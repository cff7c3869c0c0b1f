package banksim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	body := `{"account_id":"A","holder_name":"Kim","balance":5,"currency":"KRW"}`
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + testToken + "x", "bearer " + testToken, testToken} {
		r := s.do(http.MethodPost, "/sandbox/accounts", body, "Authorization", auth)
		if r.status != http.StatusUnauthorized || r.errorCode(t) != "unauthorized" {
			t.Errorf("Authorization %q: %d %s, want 401", auth, r.status, r.body)
		}
		if strings.Contains(string(r.body), testToken) {
			t.Errorf("401 answer %s shows the token", r.body)
		}
	}
	if _, err := s.client.Account(ctx(), "A"); err == nil {
		t.Fatal("an unauthorized request created an account")
	}
	if st, _ := s.client.Stats(ctx()); st.Unauthorized != 5 {
		t.Fatalf("stats count %d unauthorized, want 5", st.Unauthorized)
	}
}

func TestEmptyTokenRefusesEverything(t *testing.T) {
	t.Parallel()
	srv := New(Options{})
	for _, auth := range []string{"", "Bearer ", "Bearer"} {
		w := newRecorder()
		req, _ := http.NewRequest(http.MethodGet, "/sandbox/stats", nil)
		req.Header.Set("Authorization", auth)
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, w.Code)
		}
	}
}

func TestSandboxAccounts(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 5)
	_, err := s.client.CreateAccount(ctx(), Account{ID: "A", HolderName: "Kim", Currency: "KRW"})
	if !errors.Is(err, ErrAccountExists) {
		t.Fatalf("second create: %v, want ErrAccountExists", err)
	}
	a, err := s.client.Credit(ctx(), "A", 10, "payroll")
	if err != nil || a.Balance != 15 {
		t.Fatalf("credit: %+v %v", a, err)
	}
	a, err = s.client.SetState(ctx(), "A", StateFrozen, "Kim Renamed")
	if err != nil || a.State != StateFrozen || a.HolderName != "Kim Renamed" {
		t.Fatalf("set state: %+v %v", a, err)
	}
	a, err = s.client.SetState(ctx(), "A", StateActive, "")
	if err != nil || a.State != StateActive || a.HolderName != "Kim Renamed" {
		t.Fatalf("reopen: %+v %v", a, err)
	}
	var apiErr *APIError
	if _, err := s.client.Account(ctx(), "NOBODY"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown account: %v, want a 404 APIError", err)
	}
	bad := []Account{
		{ID: "", HolderName: "x", Currency: "KRW"},
		{ID: "B", HolderName: "x", Currency: "KRW", Balance: -1},
		{ID: "B", HolderName: "x", Currency: "won"},
		{ID: "B/C", HolderName: "x", Currency: "KRW"},
		{ID: "B", HolderName: "", Currency: "KRW"},
	}
	for _, b := range bad {
		if _, err := s.client.CreateAccount(ctx(), b); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
			t.Errorf("create %+v: %v, want 400", b, err)
		}
	}
	if _, err := s.client.Credit(ctx(), "A", 0, ""); err == nil {
		t.Error("credit of 0 was accepted")
	}
	if _, err := s.client.SetState(ctx(), "A", "asleep", ""); err == nil {
		t.Error("unknown state was accepted")
	}
}

func TestCreditCannotOverflow(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1<<62)
	s.open("B", "Lee", math.MaxInt64-1<<62)
	if _, err := s.client.Credit(ctx(), "A", 1, ""); err == nil {
		t.Fatal("a credit past the bank's int64 total was accepted")
	}
}

// The journal is read to its end whether the bank says has_more or not:
// without it the reader asks again after the last seq until a page comes
// back empty.
func TestJournalPaging(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		bare bool
		page string // what the raw page after 10 (limit 5) must hold
	}{
		{"with has_more", false, `"next_after":15,"has_more":true`},
		{"without has_more", true, `"seq":15,`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSandboxOpts(t, Options{JournalWithoutHasMore: c.bare})
			s.open("A", "Kim", 1000)
			s.open("B", "Lee", 0)
			for i := range 25 {
				s.send(fmt.Sprintf("k%02d", i), "A", "B", "", 1)
			}
			r := s.do(http.MethodGet, "/sandbox/journal?after=10&limit=5", "")
			if !strings.Contains(string(r.body), c.page) || !strings.Contains(string(r.body), `"seq":11,`) {
				t.Fatalf("page after 10: %s", r.body)
			}
			if c.bare && (strings.Contains(string(r.body), "has_more") || strings.Contains(string(r.body), "next_after")) {
				t.Fatalf("a journal without has_more sent paging fields: %s", r.body)
			}
			s.client.pageSize = 7
			all := s.journal()
			if len(all) != 25 {
				t.Fatalf("journal has %d entries, want 25", len(all))
			}
			for i, e := range all {
				if e.Seq != int64(i+1) || e.IdempotencyKey != fmt.Sprintf("k%02d", i) || !e.AppliedAt.Equal(s.clock.Now()) {
					t.Fatalf("entry %d: %+v", i, e)
				}
			}
			tail, err := s.client.Journal(ctx(), 20)
			if err != nil || len(tail) != 5 || tail[0].Seq != 21 {
				t.Fatalf("journal after 20: %d entries, %v", len(tail), err)
			}
			if r := s.do(http.MethodGet, "/sandbox/journal?after=99", ""); !strings.Contains(string(r.body), `"entries":[]`) {
				t.Fatalf("journal past the end: %s", r.body)
			}
			if r := s.do(http.MethodGet, "/sandbox/journal?after=-1", ""); r.status != http.StatusBadRequest {
				t.Fatalf("negative after: %d", r.status)
			}
		})
	}
}

// A journal page that does not move forward, or that promises more and
// brings none, is an error that says so, never a journal cut short or a
// reader asking forever.
func TestJournalReaderRefusesPagesThatDoNotAdvance(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, page, want string
	}{
		{"seq not after the cursor", `{"entries":[{"seq":3,"idempotency_key":"k"}]}`, "seq 3 does not follow 5"},
		{"more promised, none sent", `{"entries":[],"has_more":true}`, "has_more but no entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, c.page)
			}))
			t.Cleanup(srv.Close)
			_, err := NewClient(srv.URL, testToken, srv.Client()).Journal(ctx(), 5)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("journal of %s: %v, want an error saying %q", c.page, err, c.want)
			}
		})
	}
}

// The reapply switch breaks the bank's idempotency on purpose: the money
// moves again and the journal holds the key twice. It refuses keys it never
// saw and transfers it cannot apply again, changing nothing.
func TestReapplyWritesTheKeyTwice(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	s.send("k1", "A", "B", "", 400)
	e, err := s.client.Reapply(ctx(), "rest", "k1")
	if err != nil {
		t.Fatal(err)
	}
	j := s.journal()
	if len(j) != 2 || e != j[1] || j[0].IdempotencyKey != "k1" || j[1].IdempotencyKey != "k1" || j[1].Seq != 2 {
		t.Fatalf("journal after a reapply: %+v (reapply answered %+v)", j, e)
	}
	if a, b := s.balance("A"), s.balance("B"); a != 200 || b != 800 {
		t.Fatalf("balances A %d B %d", a, b)
	}
	var apiErr *APIError
	for _, c := range []struct {
		dialect, key string
		status       int
	}{
		{"rest", "nope", http.StatusNotFound},
		{"openbanking", "k1", http.StatusNotFound}, // each dialect has its own keys
		{"rest", "k1", http.StatusConflict},        // A holds 200 < 400 now
	} {
		if _, err := s.client.Reapply(ctx(), c.dialect, c.key); !errors.As(err, &apiErr) || apiErr.StatusCode != c.status {
			t.Errorf("reapply %s %s: %v, want HTTP %d", c.dialect, c.key, err, c.status)
		}
	}
	if n := len(s.journal()); n != 2 {
		t.Fatalf("refused reapplies wrote to the journal: %d entries", n)
	}
}

func TestResetForgetsEverything(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	s.send("k", "A", "B", "", 1)
	s.setFaults(Faults{ErrorRate: 1})
	if err := s.client.Reset(ctx()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Account(ctx(), "A"); err == nil {
		t.Fatal("account survived the reset")
	}
	if j := s.journal(); len(j) != 0 {
		t.Fatalf("journal survived the reset: %+v", j)
	}
	st, err := s.client.Stats(ctx())
	if err != nil || st.TransfersApplied != 0 || st.Requests["POST /v1/transfers"] != 0 {
		t.Fatalf("stats after reset %+v %v", st, err)
	}
	if r := s.do(http.MethodGet, "/sandbox/faults", ""); strings.TrimSpace(string(r.body)) != "{}" {
		t.Fatalf("faults after reset %s", r.body)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	if r := s.do(http.MethodDelete, "/v1/everything", ""); r.status != http.StatusNotFound || r.errorCode(t) != "no_such_endpoint" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
