package openbanking

import (
	"errors"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/pipeline"
)

var seedTime = time.Date(2026, 11, 25, 0, 30, 0, 0, time.UTC)

const seedID = "S0000000000042A00001"

func jsonAnswer(status int, body string) bankhttp.Answer {
	return bankhttp.Answer{Status: status, ContentType: "application/json; charset=UTF-8", Body: []byte(body), Now: seedTime}
}

// itemSeeds are transfer and result answers a bank might give, good and bad.
var itemSeeds = []struct {
	status      int
	contentType string
	body        string
}{
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_tran_id":"` + seedID + `","bank_rsp_code":"000"}]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"org_bank_tran_id":"` + seedID + `","bank_rsp_code":"400"}]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"551","bank_rsp_message":"잔액부족 110234567890"}]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"A05"}]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"A04"}]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"999"}]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"000"},{"bank_rsp_code":"000"}]}`},
	{200, "application/json", `{"rsp_code":"A0001","rsp_message":"busy"}`},
	{200, "application/json", `{"res_list":[{"bank_rsp_code":"000"}]}`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_tran_id":"OTHER","bank_rsp_code":"000"}]}`},
	{200, "application/json", `{"rsp_code":0,"res_list":[{"bank_rsp_code":0}]}`},
	{200, "text/html", `<html>`},
	{200, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":`},
	{429, "", ``},
	{401, "application/json", `{"rsp_code":"O0001","rsp_message":"token"}`},
	{404, "application/json", `{"error":{"code":"not_found"}}`},
	{500, "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"000"}]}`},
}

func FuzzDecodeTransfer(f *testing.F) {
	for _, s := range itemSeeds {
		f.Add(s.status, s.contentType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		a := bankhttp.Answer{Status: status, ContentType: contentType, Body: body, Now: seedTime}
		r, err := decodeTransfer(a, seedID)
		checkOutcome(t, a, r, err)
		if errors.Is(err, pipeline.ErrNotFound) {
			t.Fatalf("a transfer answer read as not found: %v", err)
		}
		r, err = decodeResult(a, seedID)
		checkOutcome(t, a, r, err)
		if errors.Is(err, pipeline.ErrKeyReused) {
			t.Fatalf("a result answer read as key reused: %v", err)
		}
	})
}

// checkOutcome holds for every answer: a receipt comes only from a 2xx with
// rsp_code A0000 and carries our ID, a refusal carries a known code, and no
// error classifies as success.
func checkOutcome(t *testing.T, a bankhttp.Answer, r pipeline.Receipt, err error) {
	t.Helper()
	if err != nil {
		if r != (pipeline.Receipt{}) || pipeline.Classify(r, err) == pipeline.ClassSuccess {
			t.Fatalf("receipt %+v with error %v", r, err)
		}
		var refused *pipeline.RefusedError
		if errors.As(err, &refused) && (refused.Code == "" || lookup(layerItem, refused.BankCode).refusal != refused.Code) {
			t.Fatalf("refusal %+v not from the table", refused)
		}
		if errors.Is(err, pipeline.ErrNotFound) && a.Status/100 != 2 {
			t.Fatalf("not found from HTTP %d", a.Status)
		}
		return
	}
	if a.Status/100 != 2 || r.BankRef != seedID {
		t.Fatalf("receipt %+v from HTTP %d", r, a.Status)
	}
	if r.State != pipeline.TransferSucceeded && r.State != pipeline.TransferPending {
		t.Fatalf("receipt %+v", r)
	}
}

func FuzzDecodeBalance(f *testing.F) {
	f.Add(200, []byte(`{"rsp_code":"A0000","bank_rsp_code":"000","account_num":"A","balance_amt":"5","available_amt":"5"}`))
	f.Add(200, []byte(`{"rsp_code":"A0000","bank_rsp_code":"412"}`))
	f.Add(200, []byte(`{"rsp_code":"A0000","bank_rsp_code":"000","available_amt":"-5"}`))
	f.Add(200, []byte(`{"rsp_code":"A0000","bank_rsp_code":"000","available_amt":5}`))
	f.Add(200, []byte(`{"rsp_code":"A0000","bank_rsp_code":"000","available_amt":"99999999999999999999"}`))
	f.Add(200, []byte(`{"rsp_code":"A0000","bank_rsp_code":"000","account_num":"Z","available_amt":"1"}`))
	f.Add(200, []byte(`{"rsp_code":"A0001"}`))
	f.Add(503, []byte(`{"error":{"code":"busy"}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		b, known, err := decodeBalance(bankhttp.Answer{Status: status, ContentType: "application/json", Body: body, Now: seedTime}, "A")
		switch {
		case err != nil && (known || b != (pipeline.Balance{})):
			t.Fatalf("balance %+v known %v with error %v", b, known, err)
		case known && (b.Account != "A" || b.Available.Currency != "KRW" || b.Available.Amount < 0 || b.Available.Amount > bankhttp.MaxPlausibleAmount):
			t.Fatalf("implausible balance %+v", b)
		case known && status/100 != 2:
			t.Fatalf("balance from HTTP %d", status)
		}
	})
}

func TestTheTable(t *testing.T) {
	t.Parallel()
	ok := func(code string) bankhttp.Answer {
		return jsonAnswer(200, `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"`+code+`","bank_rsp_message":"m"}]}`)
	}
	refusals := map[string]pipeline.RefusalCode{
		"412": pipeline.RefusedNoSuchAccount, "415": pipeline.RefusedAccountClosed, "420": pipeline.RefusedAccountFrozen,
		"815": pipeline.RefusedHolderNameMismatch, "551": pipeline.RefusedInsufficientFunds,
	}
	for code, want := range refusals {
		for _, decode := range []func(bankhttp.Answer, string) (pipeline.Receipt, error){decodeTransfer, decodeResult} {
			_, err := decode(ok(code), seedID)
			var refused *pipeline.RefusedError
			if !errors.As(err, &refused) || refused.Code != want || refused.BankCode != code || refused.Message != "m" {
				t.Errorf("%s: %v, want refusal %s", code, err, want)
			}
		}
	}
	cases := []struct {
		name   string
		decode func(bankhttp.Answer, string) (pipeline.Receipt, error)
		a      bankhttp.Answer
		want   pipeline.Class
		target error
	}{
		{"000", decodeTransfer, ok("000"), pipeline.ClassSuccess, nil},
		{"400 transfer", decodeTransfer, ok("400"), pipeline.ClassUnknown, nil},
		{"400 result", decodeResult, ok("400"), pipeline.ClassUnknown, nil},
		{"A05 transfer", decodeTransfer, ok("A05"), pipeline.ClassKeyConflict, pipeline.ErrKeyReused},
		{"A05 result", decodeResult, ok("A05"), pipeline.ClassUnknown, pipeline.ErrBadResponse},
		{"A04 result", decodeResult, ok("A04"), pipeline.ClassAbsent, pipeline.ErrNotFound},
		{"A04 transfer", decodeTransfer, ok("A04"), pipeline.ClassUnknown, pipeline.ErrBadResponse},
		{"unknown code", decodeTransfer, ok("999"), pipeline.ClassUnknown, pipeline.ErrBadResponse},
		{"A0001", decodeTransfer, jsonAnswer(200, `{"rsp_code":"A0001","rsp_message":"busy"}`), pipeline.ClassTransient, pipeline.ErrUnavailable},
		{"other top-level code", decodeResult, jsonAnswer(200, `{"rsp_code":"O0002"}`), pipeline.ClassTransient, pipeline.ErrUnavailable},
		{"401", decodeTransfer, jsonAnswer(401, `{}`), pipeline.ClassTransient, pipeline.ErrUnauthorized},
		{"403", decodeResult, jsonAnswer(403, `{}`), pipeline.ClassTransient, pipeline.ErrUnauthorized},
		{"429", decodeTransfer, bankhttp.Answer{Status: 429, RetryAfter: "3"}, pipeline.ClassTransient, pipeline.ErrRateLimited},
		{"500", decodeTransfer, jsonAnswer(500, `{}`), pipeline.ClassUnknown, pipeline.ErrBadResponse},
		{"404 result", decodeResult, jsonAnswer(404, `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"A04"}]}`), pipeline.ClassUnknown, ErrRejected},
		{"302", decodeTransfer, jsonAnswer(302, `{}`), pipeline.ClassUnknown, pipeline.ErrBadResponse},
		{"201 is a 2xx", decodeTransfer, jsonAnswer(201, `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"000"}]}`), pipeline.ClassSuccess, nil},
		{"truncated", decodeTransfer, bankhttp.Answer{Status: 200, ContentType: "application/json", Body: []byte(`{"rsp_code":"A0000"}`), Truncated: true}, pipeline.ClassUnknown, pipeline.ErrBadResponse},
	}
	for _, c := range cases {
		r, err := c.decode(c.a, seedID)
		if got := pipeline.Classify(r, err); got != c.want || (c.target != nil && !errors.Is(err, c.target)) {
			t.Errorf("%s: class %s err %v, want %s wrapping %v", c.name, got, err, c.want, c.target)
		}
	}
	if _, err := decodeTransfer(bankhttp.Answer{Status: 429, RetryAfter: "3", Now: seedTime}, seedID); pipeline.RetryAfter(err) != 3*time.Second {
		t.Errorf("429: retry after %s, want 3s", pipeline.RetryAfter(err))
	}
}

func TestBalanceCodes(t *testing.T) {
	t.Parallel()
	for code, known := range map[string]bool{"000": true, "412": false, "415": false, "420": false} {
		a := jsonAnswer(200, `{"rsp_code":"A0000","bank_rsp_code":"`+code+`","account_num":"A","available_amt":"7"}`)
		b, gotKnown, err := decodeBalance(a, "A")
		if err != nil || gotKnown != known || (known && b.Available.Amount != 7) {
			t.Errorf("%s: %+v %v %v", code, b, gotKnown, err)
		}
	}
	for _, code := range []string{"400", "551", "815", "A04", "A05", "999"} {
		if _, _, err := decodeBalance(jsonAnswer(200, `{"rsp_code":"A0000","bank_rsp_code":"`+code+`"}`), "A"); !errors.Is(err, pipeline.ErrBadResponse) {
			t.Errorf("%s on a balance call: %v, want ErrBadResponse", code, err)
		}
	}
}

func TestBankTextIsScrubbed(t *testing.T) {
	t.Parallel()
	a := jsonAnswer(200, `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":"551","bank_rsp_message":"account 110-234-567890\u001b[31m short"}]}`)
	_, err := decodeTransfer(a, seedID)
	var refused *pipeline.RefusedError
	if !errors.As(err, &refused) || refused.Message != "account ****7890 [31m short" {
		t.Fatalf("%v: message %q", err, refused.Message)
	}
}
