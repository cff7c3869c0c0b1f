package banktest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/settle-dev/settle/pipeline"
)

// garbageAnswers are answers no dialect can make sense of. Each must leave a
// transfer's outcome unknown: above all, a status call must never read one
// as "never seen".
var garbageAnswers = []struct {
	name, contentType, body string
	status                  int
}{
	{"cut-off JSON", "application/json", `{"rsp_code":"A0000","res_list":[{"bank_rsp_code":`, 200},
	{"cut-off JSON 201", "application/json", `{"id":"tr_1","status":`, 201},
	{"JSON array", "application/json", `["000"]`, 200},
	{"null", "application/json", `null`, 200},
	{"empty object", "application/json", `{}`, 200},
	{"empty body", "application/json", ``, 200},
	{"html page", "text/html", `<html>ok</html>`, 200},
	{"oversized", "application/json", `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`, 200},
	{"proxy 404 page", "text/html", `<h1>404 Not Found</h1>`, 404},
	{"gateway 502", "text/html", `<h1>502 Bad Gateway</h1>`, 502},
}

// fakeBank serves the same answer to every request until the test ends.
func fakeBank(t testing.TB, status int, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func garbage(e *env) {
	for _, g := range garbageAnswers {
		bank := e.adapter(Conn{BaseURL: fakeBank(e.t, g.status, g.contentType, g.body)})
		req := Transfer("settle-s1-a1", "110234567890", "220987654321", "Lee", 1)
		r, err := bank.Transfer(bg(), req)
		WantClass(e.t, g.name+": transfer", r, err, pipeline.ClassUnknown)
		r, err = bank.TransferStatus(bg(), req)
		WantClass(e.t, g.name+": status", r, err, pipeline.ClassUnknown)
		if _, err := bank.Balances(bg(), []string{"110234567890"}); err == nil {
			e.t.Fatalf("%s: balances without an error", g.name)
		} else if strings.Contains(err.Error(), "110234567890") {
			e.t.Fatalf("%s: error shows a full account number: %v", g.name, err)
		}
	}
}
