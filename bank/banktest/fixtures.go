package banktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// FixtureRequest is the transfer every recorded answer is an answer to: the
// fixtures' echoes (an openbanking bank_tran_id, a rest idempotency_key)
// must match it.
var FixtureRequest = pipeline.TransferRequest{
	Key: "settle-s42-a1", From: "110234567890", To: "3333012345678", ToHolder: "홍길동",
	Amount: pipeline.Money{Amount: 2500000, Currency: "KRW"}, Memo: "settle 42",
	AttemptDay: time.Date(2026, 11, 25, 9, 30, 0, 0, time.FixedZone("KST", 9*60*60)),
}

// Fixture is one recorded exchange with a bank, as a JSON file:
//
//	{"about": "a deposit the bank has done",
//	 "call": "transfer",                      // transfer, status or balances
//	 "accounts": ["3333012345678"],           // balances only; default [FixtureRequest.To]
//	 "request": {"method": "POST", "path": "/v2.0/transfer/deposit/acnt_num"},
//	 "response": {"status": 200, "headers": {"Content-Type": "application/json"},
//	              "body": {…}},               // or "raw_body": "…" for non-JSON
//	 "want": {"class": "success", "state": "succeeded", "refusal": "",
//	          "error": "", "retry_after": "", "balances": {"3333012345678": 3000000}}}
//
// want.error names a pipeline sentinel (ErrRateLimited, ErrUnavailable,
// ErrNotFound, ErrKeyReused, ErrUnauthorized, ErrBadResponse) the error must
// wrap; want.retry_after is a duration such as "3s".
type Fixture struct {
	About    string   `json:"about"`
	Call     string   `json:"call"`
	Accounts []string `json:"accounts"`
	Request  struct {
		Method string `json:"method"`
		Path   string `json:"path"`
	} `json:"request"`
	Response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
		RawBody *string           `json:"raw_body"`
	} `json:"response"`
	Want struct {
		Class      string           `json:"class"`
		State      string           `json:"state"`
		Refusal    string           `json:"refusal"`
		Error      string           `json:"error"`
		RetryAfter string           `json:"retry_after"`
		Balances   map[string]int64 `json:"balances"`
	} `json:"want"`
}

var sentinels = map[string]error{
	"ErrRateLimited":  pipeline.ErrRateLimited,
	"ErrUnavailable":  pipeline.ErrUnavailable,
	"ErrNotFound":     pipeline.ErrNotFound,
	"ErrKeyReused":    pipeline.ErrKeyReused,
	"ErrUnauthorized": pipeline.ErrUnauthorized,
	"ErrBadResponse":  pipeline.ErrBadResponse,
}

// RunFixtures plays every *.json fixture in dir to the dialect's adapter
// from a plain HTTP server and checks the adapter's reading of it.
func RunFixtures(t *testing.T, d Dialect, dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s (%v)", dir, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			t.Parallel()
			runFixture(t, d, loadFixture(t, file))
		})
	}
}

func loadFixture(t *testing.T, file string) Fixture {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f Fixture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("fixture %s: %v", file, err)
	}
	if f.Want.Class == "" && f.Want.Balances == nil && f.Want.Error == "" {
		t.Fatalf("fixture %s wants nothing", file)
	}
	return f
}

func runFixture(t *testing.T, d Dialect, f Fixture) {
	url, calls := fixtureServer(t, f)
	bank, err := d.New(Conn{BaseURL: url, Token: Token, Now: func() time.Time { return FixtureRequest.AttemptDay }})
	if err != nil {
		t.Fatal(err)
	}
	switch f.Call {
	case "transfer", "status":
		call := bank.Transfer
		if f.Call == "status" {
			call = bank.TransferStatus
		}
		r, err := call(bg(), FixtureRequest)
		checkOutcome(t, f, r, err)
	case "balances":
		accounts := f.Accounts
		if accounts == nil {
			accounts = []string{FixtureRequest.To}
		}
		got, err := bank.Balances(bg(), accounts)
		checkBalances(t, f, got, err)
	default:
		t.Fatalf("fixture call %q: want transfer, status or balances", f.Call)
	}
	if *calls == 0 {
		t.Fatal("the adapter never called the bank")
	}
}

// fixtureServer answers f's response to f's request, and 404 to anything
// else; it counts the calls it answered.
func fixtureServer(t *testing.T, f Fixture) (string, *int) {
	var mu sync.Mutex
	calls := new(int)
	body := []byte(f.Response.Body)
	if f.Response.RawBody != nil {
		body = []byte(*f.Response.RawBody)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != f.Request.Method || r.URL.Path != f.Request.Path || r.Header.Get("Authorization") != "Bearer "+Token {
			t.Errorf("the adapter sent %s %s, want %s %s with the token", r.Method, r.URL.Path, f.Request.Method, f.Request.Path)
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		*calls++
		mu.Unlock()
		for k, v := range f.Response.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(f.Response.Status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

func checkOutcome(t *testing.T, f Fixture, r pipeline.Receipt, err error) {
	t.Helper()
	if got := pipeline.Classify(r, err).String(); got != f.Want.Class {
		t.Fatalf("%s: class %s (receipt %+v, err %v), want %s", f.About, got, r, err, f.Want.Class)
	}
	if f.Want.State != "" && string(r.State) != f.Want.State {
		t.Fatalf("%s: state %q, want %q", f.About, r.State, f.Want.State)
	}
	if f.Want.Refusal != "" {
		if refused, ok := asRefused(err); !ok || string(refused.Code) != f.Want.Refusal {
			t.Fatalf("%s: %v, want refusal %s", f.About, err, f.Want.Refusal)
		}
	}
	checkError(t, f, err)
}

func checkBalances(t *testing.T, f Fixture, got []pipeline.Balance, err error) {
	t.Helper()
	checkError(t, f, err)
	if f.Want.Balances == nil {
		return
	}
	m := make(map[string]int64, len(got))
	for _, b := range got {
		if b.Available.Currency != "KRW" {
			t.Fatalf("%s: balance %+v", f.About, b)
		}
		m[b.Account] = b.Available.Amount
	}
	if fmt.Sprint(m) != fmt.Sprint(f.Want.Balances) {
		t.Fatalf("%s: balances %v, want %v", f.About, m, f.Want.Balances)
	}
}

func checkError(t *testing.T, f Fixture, err error) {
	t.Helper()
	if f.Want.Error != "" {
		target, ok := sentinels[f.Want.Error]
		if !ok {
			t.Fatalf("fixture names an unknown sentinel %q", f.Want.Error)
		}
		WantErr(t, f.About, err, target)
	}
	if f.Want.RetryAfter != "" {
		want, perr := time.ParseDuration(f.Want.RetryAfter)
		if perr != nil || pipeline.RetryAfter(err) != want {
			t.Fatalf("%s: retry after %s, want %s", f.About, pipeline.RetryAfter(err), f.Want.RetryAfter)
		}
	}
	if err == nil {
		return
	}
	for _, secret := range []string{Token, FixtureRequest.From, FixtureRequest.To} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("%s: error shows %q: %v", f.About, secret, err)
		}
	}
	if f.Call == "balances" && f.Want.Error == "" {
		t.Fatalf("%s: unexpected error %v", f.About, err)
	}
}

func asRefused(err error) (*pipeline.RefusedError, bool) {
	var refused *pipeline.RefusedError
	ok := errors.As(err, &refused)
	return refused, ok
}
