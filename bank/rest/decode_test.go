package rest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/pipeline"
)

var seedTime = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

func jsonAnswer(status int, body string) bankhttp.Answer {
	return bankhttp.Answer{Status: status, ContentType: "application/json; charset=utf-8", Body: []byte(body), Now: seedTime}
}

// transferSeeds are answers a bank might give, good and bad.
var transferSeeds = []struct {
	status      int
	contentType string
	body        string
}{
	{201, "application/json", `{"id":"tr_1","status":"succeeded"}`},
	{200, "application/json", `{"id":"tr_1","status":"pending","failure_code":null}`},
	{201, "application/json", `{"id":"tr_1","status":"failed","failure_code":"insufficient_funds"}`},
	{201, "application/json", `{"id":"tr_1","status":"failed","failure_code":"bogus"}`},
	{201, "application/json", `{"id":"tr_1","status":"succeeded","idempotency_key":"other"}`},
	{201, "text/html", `<html>`},
	{201, "application/json", `{"id":"tr_1","status":`},
	{201, "application/json", `{"id":1,"status":["x"]}`},
	{422, "application/json", `{"error":{"code":"idempotency_key_reused","message":"x"}}`},
	{429, "", ``},
	{404, "application/json", `{"error":{"code":"not_found"}}`},
	{500, "application/json", `{"error":{"code":"injected_error","message":"boom 1234567890"}}`},
	{401, "application/json", `{"error":{"code":"unauthorized","message":"\u0000\u001b[31m"}}`},
}

func FuzzDecodeTransfer(f *testing.F) {
	for _, s := range transferSeeds {
		f.Add(s.status, s.contentType, []byte(s.body), "k")
	}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte, key string) {
		a := bankhttp.Answer{Status: status, ContentType: contentType, Body: body, Now: seedTime}
		for _, decode := range []func(bankhttp.Answer, string) (pipeline.Receipt, error){decodeTransfer, decodeStatus} {
			r, err := decode(a, key)
			checkOutcome(t, status, r, err)
		}
	})
}

// checkOutcome holds for every answer: a receipt comes only from a 2xx with
// a known state and a reference, and every error classifies.
func checkOutcome(t *testing.T, status int, r pipeline.Receipt, err error) {
	t.Helper()
	if err != nil {
		if r != (pipeline.Receipt{}) {
			t.Fatalf("receipt %+v with error %v", r, err)
		}
		if pipeline.Classify(r, err) == pipeline.ClassSuccess {
			t.Fatalf("error %v classified as success", err)
		}
		return
	}
	if status != 200 && status != 201 {
		t.Fatalf("receipt %+v from HTTP %d", r, status)
	}
	if (r.State != pipeline.TransferSucceeded && r.State != pipeline.TransferPending) || r.BankRef == "" {
		t.Fatalf("receipt %+v", r)
	}
}

func FuzzDecodeBalances(f *testing.F) {
	f.Add(200, []byte(`{"balances":[{"account_id":"A","available":5,"currency":"KRW"}],"missing":["B"]}`))
	f.Add(200, []byte(`{}`))
	f.Add(200, []byte(`{"balances":[],"missing":["A","B","B"]}`))
	f.Add(200, []byte(`{"balances":[{"account_id":"A","available":-5,"currency":"KRW"}]}`))
	f.Add(200, []byte(`{"balances":[{"account_id":"Z","available":5,"currency":"KRW"}]}`))
	f.Add(200, []byte(`{"balances":[{"account_id":"A","available":1e400,"currency":"KRW"}]}`))
	f.Add(503, []byte(`{"error":{"code":"busy"}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		asked := []string{"A", "B"}
		got, err := decodeBalances(bankhttp.Answer{Status: status, ContentType: "application/json", Body: body}, asked)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, b := range got {
			if (b.Account != "A" && b.Account != "B") || seen[b.Account] || b.Available.Amount < 0 ||
				b.Available.Amount > bankhttp.MaxPlausibleAmount || pipeline.ValidateCurrency(b.Available.Currency) != nil {
				t.Fatalf("balance %+v accepted", b)
			}
			seen[b.Account] = true
		}
		var rb restBalances
		if json.Unmarshal(body, &rb) != nil || len(got)+len(rb.Missing) != len(asked) {
			t.Fatalf("answer %s accepted, but it does not account for every account asked", body)
		}
	})
}

func FuzzDecodeTransactions(f *testing.F) {
	f.Add(200, []byte(`{"transactions":[{"id":"tx_1","amount":5,"direction":"credit","counterparty":"X","created_at":"2026-11-25T09:30:00Z"}],"next_cursor":"1","has_more":false}`))
	f.Add(200, []byte(`{"transactions":[{"id":"tx_1","amount":0,"direction":"sideways"}],"has_more":true}`))
	f.Add(200, []byte(`{"transactions":null,"next_cursor":"","has_more":true}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p, err := decodeTransactions(bankhttp.Answer{Status: status, ContentType: "application/json", Body: body})
		if err != nil {
			return
		}
		for _, tx := range p.Transactions {
			if tx.Amount <= 0 || tx.ID == "" || (tx.Direction != Credit && tx.Direction != Debit) {
				t.Fatalf("transaction %+v accepted", tx)
			}
		}
	})
}

// has_more is not part of the documented answer: a bank that leaves it
// out is paged until it returns an empty page, or a page whose next_cursor
// is empty or absent (the statement's end, as many banks say it). A page
// that says more follow with no cursor past it is malformed.
func TestDecodeTransactionsWithoutHasMore(t *testing.T) {
	for _, c := range []struct {
		body string
		more bool
		bad  bool
	}{
		{body: `{"transactions":[{"id":"tx_1","amount":5,"direction":"credit"}],"next_cursor":"1"}`, more: true},
		{body: `{"transactions":[],"next_cursor":"1"}`, more: false},
		{body: `{"transactions":[{"id":"tx_1","amount":5,"direction":"credit"}],"next_cursor":"1","has_more":false}`, more: false},
		{body: `{"transactions":[{"id":"tx_1","amount":5,"direction":"credit"}]}`, more: false},
		{body: `{"transactions":[{"id":"tx_1","amount":5,"direction":"credit"}],"next_cursor":""}`, more: false},
		{body: `{"transactions":[{"id":"tx_1","amount":5,"direction":"credit"}],"next_cursor":"","has_more":true}`, bad: true},
		{body: `{"transactions":[{"id":"tx_1","amount":5,"direction":"credit"}],"has_more":true}`, bad: true},
	} {
		p, err := decodeTransactions(bankhttp.Answer{Status: 200, ContentType: "application/json", Body: []byte(c.body)})
		switch {
		case c.bad && !errors.Is(err, pipeline.ErrBadResponse):
			t.Errorf("%s: %v, want a bad response", c.body, err)
		case !c.bad && (err != nil || p.HasMore != c.more):
			t.Errorf("%s: has more %v (%v), want %v", c.body, p.HasMore, err, c.more)
		}
	}
}

func TestDecodeTransferMapping(t *testing.T) {
	for _, s := range transferSeeds {
		a := bankhttp.Answer{Status: s.status, ContentType: s.contentType, Body: []byte(s.body), Now: seedTime}
		r, err := decodeTransfer(a, "k")
		got := pipeline.Classify(r, err)
		t.Logf("HTTP %d %s → %s (%v)", s.status, s.body, got, err)
	}
	cases := []struct {
		a    bankhttp.Answer
		want pipeline.Class
	}{
		{jsonAnswer(201, `{"id":"tr_1","status":"succeeded","idempotency_key":"k"}`), pipeline.ClassSuccess},
		{jsonAnswer(201, `{"id":"tr_1","status":"pending"}`), pipeline.ClassUnknown},
		{jsonAnswer(201, `{"id":"tr_1","status":"failed","failure_code":"account_closed"}`), pipeline.ClassRefused},
		{jsonAnswer(422, `{}`), pipeline.ClassKeyConflict},
		{bankhttp.Answer{Status: 429, RetryAfter: "3"}, pipeline.ClassTransient},
		{bankhttp.Answer{Status: 403}, pipeline.ClassTransient},
		{bankhttp.Answer{Status: 503}, pipeline.ClassUnknown},
		{jsonAnswer(400, `{"error":{"code":"invalid_request"}}`), pipeline.ClassUnknown},
	}
	for _, c := range cases {
		if r, err := decodeTransfer(c.a, "k"); pipeline.Classify(r, err) != c.want {
			t.Errorf("HTTP %d %s: %s (%v), want %s", c.a.Status, c.a.Body, pipeline.Classify(r, err), err, c.want)
		}
	}
}

func TestStatusErrorCarriesRetryAfter(t *testing.T) {
	err := statusError(bankhttp.Answer{Status: 429, RetryAfter: "7", Now: seedTime})
	if !errors.Is(err, pipeline.ErrRateLimited) || pipeline.RetryAfter(err) != 7*time.Second {
		t.Fatalf("%v", err)
	}
}
