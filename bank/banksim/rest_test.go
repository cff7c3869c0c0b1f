package banksim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestTransferSucceedsAndMovesMoney(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)

	r := s.send("k1", "A", "B", "Lee", 400)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if tr := r.transfer(t); tr.Status != "succeeded" || tr.ID == "" || tr.FailureCode != "" {
		t.Fatalf("transfer %+v", tr)
	}
	if a, b := s.balance("A"), s.balance("B"); a != 600 || b != 400 {
		t.Fatalf("balances A=%d B=%d, want 600 and 400", a, b)
	}
	j := s.journal()
	if len(j) != 1 || j[0].IdempotencyKey != "k1" || j[0].Amount != 400 || j[0].Dialect != "rest" || j[0].Currency != "KRW" {
		t.Fatalf("journal %+v", j)
	}
}

func TestTransferRefusals(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	s.open("FROZEN", "Park", 0)
	s.open("CLOSED", "Choi", 0)
	s.open("POOR", "Jung", 10)
	mustState(t, s, "FROZEN", StateFrozen)
	mustState(t, s, "CLOSED", StateClosed)

	cases := []struct {
		key, from, to, holder string
		amount                int64
		want                  string
	}{
		{"r1", "A", "NOBODY", "", 1, "no_such_account"},
		{"r2", "A", "CLOSED", "", 1, "account_closed"},
		{"r3", "A", "FROZEN", "", 1, "account_frozen"},
		{"r4", "A", "B", "Someone Else", 1, "holder_name_mismatch"},
		{"r5", "POOR", "B", "", 11, "insufficient_funds"},
		{"r6", "FROZEN", "B", "", 1, "account_frozen"},
		{"r7", "CLOSED", "B", "", 1, "account_closed"},
		{"r8", "NOBODY", "B", "", 1, "no_such_account"},
	}
	for _, c := range cases {
		r := s.send(c.key, c.from, c.to, c.holder, c.amount)
		tr := r.transfer(t)
		if r.status != http.StatusCreated || tr.Status != "failed" || tr.FailureCode != c.want {
			t.Errorf("%s: status %d transfer %+v, want 201 failed %s", c.key, r.status, tr, c.want)
		}
		again := s.send(c.key, c.from, c.to, c.holder, c.amount)
		if again.header.Get("Idempotent-Replayed") != "true" || again.transfer(t) != tr {
			t.Errorf("%s: replay %d %s, want the first answer replayed", c.key, again.status, again.body)
		}
	}
	if j := s.journal(); len(j) != 0 {
		t.Fatalf("journal has %d entries after refusals only", len(j))
	}
	if a := s.balance("A"); a != 1000 {
		t.Fatalf("A balance %d after refusals", a)
	}
}

func mustState(t *testing.T, s *sandbox, id string, st AccountState) {
	t.Helper()
	if _, err := s.client.SetState(ctx(), id, st, ""); err != nil {
		t.Fatal(err)
	}
}

func TestTransferBadRequests(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	if _, err := s.client.CreateAccount(ctx(), Account{ID: "USD1", HolderName: "Ann", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	ok := `{"from_account":"A","to_account":"B","amount":1,"currency":"KRW"}`
	cases := []struct {
		name, body, key string
		status          int
	}{
		{"no key", ok, "", 400},
		{"key too long", ok, strings.Repeat("k", 65), 400},
		{"zero amount", `{"from_account":"A","to_account":"B","amount":0,"currency":"KRW"}`, "z", 400},
		{"negative amount", `{"from_account":"A","to_account":"B","amount":-5,"currency":"KRW"}`, "n", 400},
		{"float amount", `{"from_account":"A","to_account":"B","amount":2.5,"currency":"KRW"}`, "f", 400},
		{"exponent amount", `{"from_account":"A","to_account":"B","amount":1e3,"currency":"KRW"}`, "e", 400},
		{"string amount", `{"from_account":"A","to_account":"B","amount":"1","currency":"KRW"}`, "s", 400},
		{"bad currency", `{"from_account":"A","to_account":"B","amount":1,"currency":"krw"}`, "c", 400},
		{"currency mismatch", `{"from_account":"A","to_account":"USD1","amount":1,"currency":"KRW"}`, "m", 400},
		{"same account", `{"from_account":"A","to_account":"A","amount":1,"currency":"KRW"}`, "a", 400},
		{"unknown field", `{"from_account":"A","to_account":"B","amount":1,"currency":"KRW","extra":1}`, "u", 400},
		{"trailing data", ok + `{}`, "t", 400},
		{"not json", `hello`, "j", 400},
		{"empty", ``, "x", 400},
		{"too large", `{"memo":"` + strings.Repeat("m", maxBody) + `"}`, "l", 413},
		{"64 runes is fine", ok, strings.Repeat("가", 64), 201},
	}
	for _, c := range cases {
		r := s.do(http.MethodPost, "/v1/transfers", c.body, "Idempotency-Key", c.key)
		if r.status != c.status {
			t.Errorf("%s: status %d (%s), want %d", c.name, r.status, r.body, c.status)
		}
		if c.status >= 400 && !strings.Contains(string(r.body), `"message":`) {
			t.Errorf("%s: error body %s has no message", c.name, r.body)
		}
	}
	if j := s.journal(); len(j) != 1 {
		t.Fatalf("journal has %d entries, want only the valid transfer", len(j))
	}
}

func TestDecodeErrorsSayWhatIsWrong(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	cases := map[string]string{
		`{"from_account":"A","to_account":"B","amount":2.5,"currency":"KRW"}`: `field \"amount\" must be an integer`,
		`{"extra":1}`: `unknown field \"extra\"`,
		`{"amount":`:  "ends in the middle",
		`[1]`:         "must be a JSON object",
	}
	for body, want := range cases {
		r := s.do(http.MethodPost, "/v1/transfers", body, "Idempotency-Key", "k")
		if !strings.Contains(string(r.body), want) {
			t.Errorf("body %s: answer %s does not say %q", body, r.body, want)
		}
	}
}

func TestIdempotencyKeyReplayAndConflict(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)

	first := s.send("k1", "A", "B", "", 100)
	again := s.send("k1", "A", "B", "", 100)
	if first.header.Get("Idempotent-Replayed") != "" || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed headers %q then %q", first.header.Get("Idempotent-Replayed"), again.header.Get("Idempotent-Replayed"))
	}
	if again.status != first.status || string(again.body) != string(first.body) {
		t.Fatalf("replay %d %s differs from first %d %s", again.status, again.body, first.status, first.body)
	}
	if other := s.send("k1", "A", "B", "", 101); other.status != http.StatusUnprocessableEntity || other.errorCode(t) != "idempotency_key_reused" {
		t.Fatalf("different body with same key: %d %s, want 422", other.status, other.body)
	}
	if n := len(s.journal()); n != 1 {
		t.Fatalf("journal has %d entries, want 1", n)
	}
	if b := s.balance("B"); b != 100 {
		t.Fatalf("B balance %d, want 100", b)
	}
}

func TestTransferStatus(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	sent := s.send("key/with?odd&chars", "A", "B", "", 5).transfer(t)

	r := s.do(http.MethodGet, "/v1/transfers?idempotency_key=key%2Fwith%3Fodd%26chars", "")
	if r.status != http.StatusOK || r.transfer(t) != sent {
		t.Fatalf("status call %d %s, want %+v", r.status, r.body, sent)
	}
	if r := s.do(http.MethodGet, "/v1/transfers?idempotency_key=never", ""); r.status != http.StatusNotFound || r.errorCode(t) != "not_found" {
		t.Fatalf("unknown key: %d %s, want 404 not_found", r.status, r.body)
	}
	if r := s.do(http.MethodGet, "/v1/transfers", ""); r.status != http.StatusBadRequest {
		t.Fatalf("no key: %d, want 400", r.status)
	}
}

func TestBalancesBatch(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 7)

	r := s.do(http.MethodPost, "/v1/balances:batchGet", `{"account_ids":["A","X","B","A"]}`)
	var got restBalancesResponse
	if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusOK {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	want := restBalancesResponse{
		Balances: []restBalance{{"A", 1000, "KRW"}, {"B", 7, "KRW"}},
		Missing:  []string{"X"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	ids, _ := json.Marshal(map[string][]string{"account_ids": make([]string, 101)})
	if r := s.do(http.MethodPost, "/v1/balances:batchGet", string(ids)); r.status != http.StatusBadRequest {
		t.Fatalf("101 ids: %d, want 400", r.status)
	}
	if r := s.do(http.MethodPost, "/v1/balances:batchGet", `{"account_ids":[]}`); r.status != http.StatusBadRequest {
		t.Fatalf("no ids: %d, want 400", r.status)
	}
}

func TestTransactionsArePaged(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 0)
	s.open("B", "Lee", 0)
	if _, err := s.client.Credit(ctx(), "A", 500, "ACME payroll"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s.send(fmt.Sprintf("k%d", i), "A", "B", "", 100)
	}
	var all []Transaction
	cursor := ""
	for range 10 {
		r := s.do(http.MethodGet, "/v1/accounts/A/transactions?limit=3&after="+cursor, "")
		var page restTransactionsResponse
		if err := json.Unmarshal(r.body, &page); err != nil || r.status != http.StatusOK {
			t.Fatalf("%d %s: %v", r.status, r.body, err)
		}
		all = append(all, page.Transactions...)
		cursor = page.NextCursor
		if page.HasMore == nil || !*page.HasMore {
			break
		}
	}
	if len(all) != 4 {
		t.Fatalf("got %d transactions, want 4: %+v", len(all), all)
	}
	if c := all[0]; c.Direction != "credit" || c.Amount != 500 || c.Counterparty != "ACME payroll" || c.IdempotencyKey != "" {
		t.Fatalf("first line %+v, want the payroll credit without a key", c)
	}
	for i, d := range all[1:] {
		if d.Direction != "debit" || d.Counterparty != "B" || d.IdempotencyKey != fmt.Sprintf("k%d", i) {
			t.Fatalf("line %d: %+v", i+1, d)
		}
	}
	if r := s.do(http.MethodGet, "/v1/accounts/A/transactions?after="+cursor, ""); !strings.Contains(string(r.body), `"transactions":[]`) {
		t.Fatalf("caught-up page %s, want no transactions", r.body)
	}
	if r := s.do(http.MethodGet, "/v1/accounts/A/transactions?limit=501", ""); r.status != http.StatusBadRequest {
		t.Fatalf("limit 501: %d, want 400", r.status)
	}
	if r := s.do(http.MethodGet, "/v1/accounts/NOBODY/transactions", ""); r.status != http.StatusNotFound {
		t.Fatalf("unknown account: %d, want 404", r.status)
	}
}
