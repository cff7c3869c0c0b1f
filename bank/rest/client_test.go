package rest_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

func TestTransferSucceeds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("VA-0001", "Kim", 1000)
	e.open("COLL-0001", "Collection", 0)

	r, err := e.bank.Transfer(ctx(), transfer("k1", "VA-0001", "COLL-0001", "Collection", 600))
	wantClass(t, "transfer", r, err, pipeline.ClassSuccess)
	if r.BankRef == "" {
		t.Fatal("no bank reference")
	}
	if e.balance("VA-0001") != 400 || e.balance("COLL-0001") != 600 || len(e.journal()) != 1 {
		t.Fatal("the money did not move exactly once")
	}
	s, err := e.bank.TransferStatus(ctx(), transfer("k1", "VA-0001", "COLL-0001", "Collection", 600))
	wantClass(t, "status", s, err, pipeline.ClassSuccess)
	if s.BankRef != r.BankRef {
		t.Fatalf("status ref %q, transfer ref %q", s.BankRef, r.BankRef)
	}
}

func TestPermanentRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("SRC", "Kim", 100)
	e.open("DST", "Lee", 0)
	e.open("FROZEN", "Park", 0)
	e.open("CLOSED", "Choi", 0)
	for id, st := range map[string]banksim.AccountState{"FROZEN": banksim.StateFrozen, "CLOSED": banksim.StateClosed} {
		if _, err := e.sim.SetState(ctx(), id, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		req  pipeline.TransferRequest
		want pipeline.RefusalCode
	}{
		{transfer("r1", "SRC", "NOBODY", "", 1), pipeline.RefusedNoSuchAccount},
		{transfer("r2", "SRC", "CLOSED", "", 1), pipeline.RefusedAccountClosed},
		{transfer("r3", "SRC", "FROZEN", "", 1), pipeline.RefusedAccountFrozen},
		{transfer("r4", "SRC", "DST", "Not Lee", 1), pipeline.RefusedHolderNameMismatch},
		{transfer("r5", "SRC", "DST", "Lee", 101), pipeline.RefusedInsufficientFunds},
	}
	for _, c := range cases {
		for _, call := range []func() (pipeline.Receipt, error){
			func() (pipeline.Receipt, error) { return e.bank.Transfer(ctx(), c.req) },
			func() (pipeline.Receipt, error) { return e.bank.Transfer(ctx(), c.req) }, // replayed
			func() (pipeline.Receipt, error) { return e.bank.TransferStatus(ctx(), c.req) },
		} {
			r, err := call()
			wantClass(t, c.req.Key, r, err, pipeline.ClassRefused)
			var refused *pipeline.RefusedError
			if !errors.As(err, &refused) || refused.Code != c.want || refused.BankCode != string(c.want) {
				t.Fatalf("%s: %v, want refusal %s", c.req.Key, err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "rest sandbox: transfer") {
				t.Fatalf("%s: error %q does not name the provider and operation", c.req.Key, err)
			}
		}
	}
	if n := len(e.journal()); n != 0 {
		t.Fatalf("journal has %d entries after refusals only", n)
	}
}

func TestReplayedKeyMovesMoneyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	req := transfer("same", "A", "B", "", 250)
	r1, err1 := e.bank.Transfer(ctx(), req)
	r2, err2 := e.bank.Transfer(ctx(), req)
	wantClass(t, "first", r1, err1, pipeline.ClassSuccess)
	wantClass(t, "replay", r2, err2, pipeline.ClassSuccess)
	if r1 != r2 {
		t.Fatalf("receipts differ: %+v %+v", r1, r2)
	}
	if len(e.journal()) != 1 || e.balance("B") != 250 {
		t.Fatal("a replayed key moved money twice")
	}
}

func TestMismatchedKeyIsAConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	if _, err := e.bank.Transfer(ctx(), transfer("k", "A", "B", "", 250)); err != nil {
		t.Fatal(err)
	}
	r, err := e.bank.Transfer(ctx(), transfer("k", "A", "B", "", 251))
	wantClass(t, "other content", r, err, pipeline.ClassKeyConflict)
	if !errors.Is(err, pipeline.ErrKeyReused) {
		t.Fatalf("%v, want ErrKeyReused", err)
	}
}

func TestRateLimitedWithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	e.faults(banksim.Faults{RateLimitRPS: 1})
	if _, err := e.bank.Transfer(ctx(), transfer("k1", "A", "B", "", 1)); err != nil {
		t.Fatal(err)
	}
	r, err := e.bank.Transfer(ctx(), transfer("k2", "A", "B", "", 1))
	wantClass(t, "over the limit", r, err, pipeline.ClassTransient)
	if !errors.Is(err, pipeline.ErrRateLimited) || pipeline.RetryAfter(err) != time.Second {
		t.Fatalf("%v (retry after %s), want ErrRateLimited after 1s", err, pipeline.RetryAfter(err))
	}
	_, err = e.bank.Balances(ctx(), []string{"A"})
	wantClass(t, "balances over the limit", pipeline.Receipt{}, err, pipeline.ClassTransient)
	if len(e.journal()) != 1 {
		t.Fatal("a rate-limited transfer was applied")
	}
}

func TestServerErrorIsUnknownThenAbsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	e.faults(banksim.Faults{ErrorRate: 1})
	req := transfer("k", "A", "B", "", 1)
	r, err := e.bank.Transfer(ctx(), req)
	wantClass(t, "500", r, err, pipeline.ClassUnknown)
	if !errors.Is(err, pipeline.ErrBadResponse) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("%v, want a bad response naming HTTP 500", err)
	}
	r, err = e.bank.TransferStatus(ctx(), req)
	wantClass(t, "status during the outage", r, err, pipeline.ClassUnknown)
	e.faults(banksim.Faults{})
	r, err = e.bank.TransferStatus(ctx(), req)
	wantClass(t, "status after the outage", r, err, pipeline.ClassAbsent)
}

func TestApplyThenTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	// A fresh connection per call: on a reused one, net/http may resend a
	// request carrying an Idempotency-Key by itself, which would turn the
	// drop into a replay.
	bank := e.adapter(rest.Config{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	e.faults(banksim.Faults{TimeoutAfterApplyRate: 1})
	req := transfer("k", "A", "B", "", 300)
	r, err := bank.Transfer(ctx(), req)
	wantClass(t, "dropped connection", r, err, pipeline.ClassUnknown)

	e.faults(banksim.Faults{})
	r, err = bank.TransferStatus(ctx(), req)
	wantClass(t, "status", r, err, pipeline.ClassSuccess)
	if j := e.journal(); len(j) != 1 || j[0].IdempotencyKey != "k" {
		t.Fatalf("journal %+v, want exactly one entry", j)
	}
}

func TestProcessingThenStatusResolves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	e.faults(banksim.Faults{ProcessingRate: 1})
	req := transfer("k", "A", "B", "", 300)
	r, err := e.bank.Transfer(ctx(), req)
	wantClass(t, "processing", r, err, pipeline.ClassUnknown)
	if r.State != pipeline.TransferPending || r.BankRef == "" {
		t.Fatalf("receipt %+v, want pending with a reference", r)
	}
	s, err := e.bank.TransferStatus(ctx(), req)
	wantClass(t, "status", s, err, pipeline.ClassSuccess)
	if s.BankRef != r.BankRef || len(e.journal()) != 1 {
		t.Fatalf("status %+v after pending %+v", s, r)
	}
}

func TestStatusOfUnknownKeyIsAbsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r, err := e.bank.TransferStatus(ctx(), transfer("never-sent", "A", "B", "", 1))
	wantClass(t, "unknown key", r, err, pipeline.ClassAbsent)
	if !errors.Is(err, pipeline.ErrNotFound) {
		t.Fatalf("%v, want ErrNotFound", err)
	}
}

func TestWrongToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	bank := e.adapter(rest.Config{Token: "wrong-" + token})
	req := transfer("k", "A", "B", "", 1)
	r, err := bank.Transfer(ctx(), req)
	wantClass(t, "transfer", r, err, pipeline.ClassTransient)
	if !errors.Is(err, pipeline.ErrUnauthorized) {
		t.Fatalf("%v, want ErrUnauthorized", err)
	}
	r, err = bank.TransferStatus(ctx(), req)
	wantClass(t, "status", r, err, pipeline.ClassTransient)
	_, err = bank.Balances(ctx(), []string{"A"})
	if !errors.Is(err, pipeline.ErrUnauthorized) || strings.Contains(err.Error(), "wrong-"+token) {
		t.Fatalf("balances: %v", err)
	}
	if len(e.journal()) != 0 {
		t.Fatal("a request with a wrong token did something")
	}
}

func TestTimeoutIsUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 1000)
	e.open("B", "Lee", 0)
	e.faults(banksim.Faults{LatencyMS: 10_000})
	bank := e.adapter(rest.Config{Timeout: 50 * time.Millisecond})
	r, err := bank.Transfer(ctx(), transfer("k", "A", "B", "", 1))
	wantClass(t, "timeout", r, err, pipeline.ClassUnknown)
	if !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("%v, want a timeout", err)
	}
}

func TestBalancesInBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string
	for i := range 250 {
		id := fmt.Sprintf("VA-%04d", i)
		ids = append(ids, id)
		if i%10 != 3 { // every tenth account is unknown to the bank
			e.open(id, "Holder", int64(i))
		}
	}
	got, err := e.bank.Balances(ctx(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 225 {
		t.Fatalf("%d balances, want 225", len(got))
	}
	for _, b := range got {
		var i int64
		fmt.Sscanf(b.Account, "VA-%04d", &i)
		if b.Available != (pipeline.Money{Amount: i, Currency: "KRW"}) || i%10 == 3 {
			t.Fatalf("balance %+v", b)
		}
	}
	st, err := e.sim.Stats(ctx())
	if err != nil || st.Requests["POST /v1/balances:batchGet"] != 3 {
		t.Fatalf("stats %+v %v, want 3 batch calls", st.Requests, err)
	}
	if got, err := e.bank.Balances(ctx(), nil); err != nil || got != nil {
		t.Fatalf("no accounts: %v %v", got, err)
	}
}

// A statement is read to its end whichever way the bank ends it: with
// has_more false, or (without has_more) with an empty next_cursor.
func TestStatementEndsEitherWay(t *testing.T) {
	t.Parallel()
	for _, bare := range []bool{false, true} {
		e := newEnvWith(t, banksim.Options{StatementsWithoutHasMore: bare})
		e.open("A", "Kim", 0)
		e.open("B", "Lee", 0)
		if _, err := e.sim.Credit(ctx(), "A", 500, "ACME payroll"); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			if _, err := e.bank.Transfer(ctx(), transfer(fmt.Sprintf("k%d", i), "A", "B", "", 10)); err != nil {
				t.Fatal(err)
			}
		}
		var lines, pages int
		for cursor := ""; ; pages++ {
			p, err := e.bank.Transactions(ctx(), "A", cursor, 2)
			if err != nil {
				t.Fatalf("without has_more %v: page %d: %v", bare, pages+1, err)
			}
			lines += len(p.Transactions)
			if !p.HasMore {
				break
			}
			cursor = p.NextCursor
		}
		if lines != 5 || pages != 2 {
			t.Errorf("without has_more %v: %d lines in %d pages, want the 5 lines in 3 pages", bare, lines, pages+1)
		}
	}
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open("A", "Kim", 0)
	e.open("B", "Lee", 0)
	if _, err := e.sim.Credit(ctx(), "A", 500, "ACME payroll"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := e.bank.Transfer(ctx(), transfer(fmt.Sprintf("k%d", i), "A", "B", "", 10)); err != nil {
			t.Fatal(err)
		}
	}
	p1, err := e.bank.Transactions(ctx(), "A", "", 2)
	if err != nil || len(p1.Transactions) != 2 || !p1.HasMore {
		t.Fatalf("first page %+v %v", p1, err)
	}
	p2, err := e.bank.Transactions(ctx(), "A", p1.NextCursor, 2)
	if err != nil || len(p2.Transactions) != 2 || p2.HasMore {
		t.Fatalf("second page %+v %v", p2, err)
	}
	if c := p1.Transactions[0]; c.Direction != rest.Credit || c.Amount != 500 || c.IdempotencyKey != "" {
		t.Fatalf("credit %+v", c)
	}
	if d := p2.Transactions[1]; d.Direction != rest.Debit || d.IdempotencyKey != "k2" || d.Counterparty != "B" {
		t.Fatalf("debit %+v", d)
	}
	_, err = e.bank.Transactions(ctx(), "UNKNOWN-1234567", "", 10)
	if err == nil || strings.Contains(err.Error(), "UNKNOWN-1234567") || !strings.Contains(err.Error(), "****4567") {
		t.Fatalf("unknown account: %v, want an error with the account masked", err)
	}
}
