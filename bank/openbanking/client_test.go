package openbanking_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/bank/banktest"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/pipeline"
)

func bg() context.Context { return context.Background() }

var kst = time.FixedZone("KST", 9*60*60)

// newClient returns an adapter for the bank at url with the sandbox's token.
func newClient(t *testing.T, url string, now func() time.Time) *openbanking.Client {
	t.Helper()
	c, err := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "test", BaseURL: url, Token: banktest.Token, Now: now}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// recorder is a bank that answers every call with one body and keeps the
// requests it got.
type recorder struct {
	mu    sync.Mutex
	reqs  []*http.Request
	body  [][]byte
	reply string
}

func (rec *recorder) serve(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs, rec.body = append(rec.reqs, r), append(rec.body, b)
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, rec.reply)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (rec *recorder) json(t *testing.T, i int) map[string]any {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(rec.body[i], &m); err != nil {
		t.Fatalf("request %d: %v", i, err)
	}
	return m
}

func item(m map[string]any) map[string]any { return m["req_list"].([]any)[0].(map[string]any) }

func TestRequestsAsBankAPISays(t *testing.T) {
	t.Parallel()
	rec := &recorder{reply: `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"000"}]}`}
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	c := newClient(t, rec.serve(t), func() time.Time { return now })
	req := banktest.Transfer("settle-s42-a1", "110234567890", "3333012345678", "홍길동", 2500000)
	req.AttemptDay = time.Date(2026, 11, 25, 15, 30, 0, 0, time.UTC) // 00:30 on the 26th in Korea
	if _, err := c.Transfer(bg(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TransferStatus(bg(), req); err != nil {
		t.Fatal(err)
	}
	dep, res := rec.json(t, 0), rec.json(t, 1)
	want := map[string]any{"tran_no": "1", "bank_tran_id": "S0000000000042A00001", "bank_code_std": "097",
		"account_num": "3333012345678", "account_holder_name": "홍길동", "tran_amt": "2500000",
		"print_content": "settle settle-s42-a1", "name_check_option": "on"}
	for k, v := range want {
		if item(dep)[k] != v {
			t.Errorf("deposit %s = %v, want %v", k, item(dep)[k], v)
		}
	}
	if dep["cntr_account_num"] != "110234567890" || dep["tran_dtime"] != "20261126003000" || dep["req_cnt"] != "1" {
		t.Errorf("deposit %v", dep)
	}
	if res["check_type"] != "2" || res["tran_dtime"] != "20261127120000" || item(res)["org_bank_tran_id"] != "S0000000000042A00001" ||
		item(res)["org_bank_tran_date"] != "20261126" || item(res)["org_tran_amt"] != "2500000" {
		t.Errorf("result %v", res)
	}
	for _, r := range rec.reqs {
		if r.Header.Get("Authorization") != "Bearer "+banktest.Token || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s headers %v", r.Method, r.URL.Path, r.Header)
		}
	}
}

func TestNoHolderNameTurnsTheNameCheckOff(t *testing.T) {
	t.Parallel()
	rec := &recorder{reply: `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"000"}]}`}
	c := newClient(t, rec.serve(t), nil)
	if _, err := c.Transfer(bg(), banktest.Transfer("k", "A", "B", "", 1)); err != nil {
		t.Fatal(err)
	}
	if got := item(rec.json(t, 0))["name_check_option"]; got != "off" {
		t.Fatalf("name_check_option %v, want off", got)
	}
}

// TestRetryAfterMidnightKeepsTheDate: an attempt created just before
// midnight and sent just after is filed under the attempt's date, which the
// result call names.
func TestRetryAfterMidnightKeepsTheDate(t *testing.T) {
	t.Parallel()
	sb := banktest.NewSandbox(t)
	sb.Open("A", "Kim", 1000)
	sb.Open("B", "Lee", 0)
	c := newClient(t, sb.URL, sb.Clock.Now)
	req := banktest.Transfer("settle-s1-a1", "A", "B", "", 10)
	req.AttemptDay = time.Date(2026, 11, 25, 23, 59, 59, 0, kst)
	sb.Clock.Advance(24 * time.Hour)
	r, err := c.Transfer(bg(), req)
	banktest.WantClass(t, "transfer", r, err, pipeline.ClassSuccess)
	s, err := c.TransferStatus(bg(), req)
	banktest.WantClass(t, "status the next day", s, err, pipeline.ClassSuccess)
}

// The day a transfer is filed under is the provider's: KST by default, or
// the configured zone. At 23:30 UTC it is already the next day in Seoul.
func TestTransferDateInTheProvidersZone(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 23, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		loc  *time.Location
		want string
	}{{nil, "20261126"}, {time.UTC, "20261125"}} {
		rec := &recorder{reply: `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"000"}]}`}
		cl, err := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "test", BaseURL: rec.serve(t), Token: banktest.Token,
			Now: func() time.Time { return at }}, Location: c.loc})
		if err != nil {
			t.Fatal(err)
		}
		req := banktest.Transfer("settle-s1-a1", "A", "B", "", 10)
		req.AttemptDay = at
		_, _ = cl.Transfer(bg(), req)
		_, _ = cl.TransferStatus(bg(), req)
		if got, _ := rec.json(t, 0)["tran_dtime"].(string); !strings.HasPrefix(got, c.want) {
			t.Errorf("zone %v: transfer tran_dtime %s, want the day %s", c.loc, got, c.want)
		}
		if got := item(rec.json(t, 1))["org_bank_tran_date"]; got != c.want {
			t.Errorf("zone %v: result call org_bank_tran_date %v, want %s", c.loc, got, c.want)
		}
	}
}

// TestStatusNamingAnotherDateIsNeverAbsent: a result call with the wrong
// date or amount must not read as "never seen".
func TestStatusNamingAnotherDateIsNeverAbsent(t *testing.T) {
	t.Parallel()
	sb := banktest.NewSandbox(t)
	sb.Open("A", "Kim", 1000)
	sb.Open("B", "Lee", 0)
	c := newClient(t, sb.URL, sb.Clock.Now)
	req := banktest.Transfer("settle-s1-a1", "A", "B", "", 10)
	if _, err := c.Transfer(bg(), req); err != nil {
		t.Fatal(err)
	}
	other := req
	other.AttemptDay = req.AttemptDay.AddDate(0, 0, 1)
	s, err := c.TransferStatus(bg(), other)
	banktest.WantClass(t, "status with another date", s, err, pipeline.ClassUnknown)
	banktest.WantErr(t, "status with another date", err, openbanking.ErrRejected)
}

func TestProcessingIsPendingUntilTheBankIsDone(t *testing.T) {
	t.Parallel()
	sb := banktest.NewSandbox(t)
	sb.Open("A", "Kim", 1000)
	sb.Open("B", "Lee", 0)
	sb.Faults(banksim.Faults{ProcessingRate: 1, ProcessingDelayMS: 5000})
	c := newClient(t, sb.URL, sb.Clock.Now)
	req := banktest.Transfer("settle-s1-a1", "A", "B", "", 10)
	r, err := c.Transfer(bg(), req)
	banktest.WantClass(t, "transfer", r, err, pipeline.ClassUnknown)
	sb.Clock.Advance(4 * time.Second)
	s, err := c.TransferStatus(bg(), req)
	banktest.WantClass(t, "status before due", s, err, pipeline.ClassUnknown)
	if s.State != pipeline.TransferPending || s.BankRef != r.BankRef {
		t.Fatalf("status %+v, want pending %s", s, r.BankRef)
	}
	sb.Clock.Advance(time.Second)
	s, err = c.TransferStatus(bg(), req)
	banktest.WantClass(t, "status when due", s, err, pipeline.ClassSuccess)
}

func TestBalancesOneCallPerAccount(t *testing.T) {
	t.Parallel()
	sb := banktest.NewSandbox(t)
	for _, id := range []string{"A1", "A2", "A3"} {
		sb.Open(id, "Kim", 5)
	}
	c := newClient(t, sb.URL, sb.Clock.Now)
	got, err := c.Balances(bg(), []string{"A1", "A2", "A1", "NOPE", "A3"})
	if err != nil || len(got) != 3 {
		t.Fatalf("balances %+v %v", got, err)
	}
	st, err := sb.Sim.Stats(bg())
	if err != nil || st.Requests["GET /v2.0/account/balance/acnt_num"] != 4 {
		t.Fatalf("stats %+v %v, want 4 balance calls", st.Requests, err)
	}
}

func TestBalancesStopWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(bg())
	defer cancel()
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		cancel() // the caller gives up while the first answer is on its way
		w.Header().Set("Content-Type", "application/json")
		acct := r.URL.Query().Get("account_num")
		_, _ = io.WriteString(w, `{"rsp_code":"A0000","bank_rsp_code":"000","account_num":"`+acct+`","available_amt":"1"}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil)
	_, err := c.Balances(ctx, []string{"A1", "A2", "A3"})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("%v after %d calls, want context.Canceled after 1", err, calls)
	}
}

func TestSecretsStayOutOfErrorsAndLogs(t *testing.T) {
	t.Parallel()
	rec := &recorder{reply: `{"rsp_code":"A0001","rsp_message":"token ` + banktest.Token + ` account 110234567890"}`}
	var logs bytes.Buffer
	c, err := openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "test", BaseURL: rec.serve(t), Token: banktest.Token,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Balances(bg(), []string{"110234567890"})
	banktest.WantErr(t, "balances", err, pipeline.ErrUnavailable)
	for _, text := range []string{err.Error(), logs.String()} {
		if strings.Contains(text, banktest.Token) || strings.Contains(text, "110234567890") || !strings.Contains(text, "****7890") {
			t.Fatalf("secret shown or account not masked: %s", text)
		}
	}
	down := newClient(t, "http://127.0.0.1:1", nil)
	_, err = down.Balances(bg(), []string{"110234567890"})
	if err == nil || strings.Contains(err.Error(), "110234567890") || !strings.Contains(err.Error(), "****7890") {
		t.Fatalf("transport error %v shows the account unmasked", err)
	}
	r, err := down.Transfer(bg(), banktest.Transfer("k", "110234567890", "B", "", 1))
	banktest.WantClass(t, "connection refused", r, err, pipeline.ClassUnknown)
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	c := newClient(t, rec.serve(t), nil)
	usd := banktest.Transfer("k", "A", "B", "", 1)
	usd.Amount.Currency = "USD"
	for _, req := range []pipeline.TransferRequest{
		banktest.Transfer("", "A", "B", "", 1),
		banktest.Transfer(strings.Repeat("k", 65), "A", "B", "", 1),
		banktest.Transfer("k", "", "B", "", 1),
		banktest.Transfer("k", "A", "B", "", 0),
		banktest.Transfer("k", "A", "B", "Kim\nX", 1),
		usd,
	} {
		if _, err := c.Transfer(bg(), req); !errors.Is(err, openbanking.ErrInvalidRequest) {
			t.Errorf("transfer %+v: %v, want ErrInvalidRequest", req, err)
		}
		if _, err := c.TransferStatus(bg(), req); !errors.Is(err, openbanking.ErrInvalidRequest) {
			t.Errorf("status %+v: %v, want ErrInvalidRequest", req, err)
		}
	}
	if _, err := c.Balances(bg(), []string{""}); !errors.Is(err, openbanking.ErrInvalidRequest) {
		t.Errorf("balance of an empty account: %v", err)
	}
	if len(rec.reqs) != 0 {
		t.Fatalf("%d requests sent", len(rec.reqs))
	}
}

func TestConfigIsValidated(t *testing.T) {
	t.Parallel()
	ok := openbanking.Config{Config: bankhttp.Config{Name: "acme-ob", BaseURL: "https://bank.example/api/", Token: banktest.Token}}
	if _, err := openbanking.New(ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cases := []struct {
		name   string
		change func(*openbanking.Config)
		want   string
	}{
		{"no name", func(c *openbanking.Config) { c.Name = "" }, "Name"},
		{"no url", func(c *openbanking.Config) { c.BaseURL = "" }, "BaseURL must be set"},
		{"ftp", func(c *openbanking.Config) { c.BaseURL = "ftp://bank.example" }, "http"},
		{"credentials", func(c *openbanking.Config) { c.BaseURL = "https://u:p@bank.example" }, "credentials"},
		{"query", func(c *openbanking.Config) { c.BaseURL = "https://bank.example/?x=1" }, "query"},
		{"no token", func(c *openbanking.Config) { c.Token = "" }, "Token"},
		{"token with newline", func(c *openbanking.Config) { c.Token = "abc\r\nX-Evil: 1" }, "Token"},
		{"negative timeout", func(c *openbanking.Config) { c.Timeout = -1 }, "Timeout"},
		{"bank code", func(c *openbanking.Config) { c.BankCode = "97" }, "BankCode"},
	}
	for _, c := range cases {
		cfg := ok
		c.change(&cfg)
		_, err := openbanking.New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "config") {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), banktest.Token) {
			t.Errorf("%s: error shows the token", c.name)
		}
	}
}
