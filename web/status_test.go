package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
	"github.com/settle-dev/settle/web"
)

func getPage(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth(creds.User, creds.Password)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	checkHeaders(t, w)
	return w.Code, w.Body.String()
}

// checkHeaders: the page is never cached or framed, and its one inline
// style is exactly what its Content-Security-Policy allows.
func checkHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	h := w.Header()
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" ||
		h.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("page headers %v", h)
	}
	body := w.Body.String()
	start, end := strings.Index(body, "<style>"), strings.Index(body, "</style>")
	if start < 0 || end < start {
		t.Fatal("no <style> in the page")
	}
	sum := sha256.Sum256([]byte(body[start+len("<style>") : end]))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(h.Get("Content-Security-Policy"), want) {
		t.Errorf("CSP %q does not allow the page's style (%s)", h.Get("Content-Security-Policy"), want)
	}
	if strings.Contains(body, "<script") {
		t.Error("the page carries a script")
	}
}

// After a payday where one customer's payout account was frozen, the page
// shows that settlement with the bank's reason and the command that
// replays it, masks account numbers and hides customer names.
func TestStatusPageShowsTheFailedSettlement(t *testing.T) {
	t.Parallel()
	p := newPayday(t)
	h, err := web.New(web.Config{Credentials: creds, Status: p.db, Page: web.PageConfig{
		TimeZone:     "Asia/Seoul",
		QueueLatency: func(context.Context) (time.Duration, error) { return 3 * time.Second, nil },
		Providers: func() []web.ProviderHealth {
			return []web.ProviderHealth{{Name: "sandbox", State: "closed"}, {Name: "legacy", State: "open"}, {Name: "backup", State: "half-open"}}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	code, body := getPage(t, h)
	text := html.UnescapeString(body)
	if code != 200 {
		t.Fatalf("status page: %d\n%s", code, body)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="10">`,
		web.ReplayCommand(p.failedID),
		p.reason,
		"account_frozen",
		p.failed.Ref,
		"PAYOUT FAILED",
		"to " + pipeline.AccountNumber(p.failed.Payout).Masked(),
		"10,000,000 KRW", // the failed deposit
		"Needs attention:", "1 failed settlement", "1 stuck step",
		p.stuck.Ref, "RUNNING, lease expired", "SWEEP<div class=\"sub\">to " + pipeline.AccountNumber(accounts.Collection).Masked(),
		"3s", // queue latency
		"sandbox", "healthy", "legacy", "paused", "provider legacy is paused", "backup", "degraded", "provider backup is degraded",
		"KST",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, never := range []string{p.failed.Payout, p.failed.VA, p.settled.Payout, p.stuck.VA, accounts.Collection, p.holder, "Customer 0"} {
		if strings.Contains(text, never) {
			t.Errorf("the page shows %q", never)
		}
	}
	if !strings.Contains(p.reason, "account_frozen") {
		t.Errorf("failure reason %q does not say the account is frozen", p.reason)
	}
}

func TestStatusPageShowsNamesOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	p := newPayday(t)
	page, err := web.StatusPage(p.db, web.PageConfig{ShowCustomerNames: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, body := getPage(t, page); !strings.Contains(body, p.holder) {
		t.Fatalf("with ShowCustomerNames the page lacks %q", p.holder)
	}
}

// Whatever a bank or an operator wrote is text, never markup.
func TestStatusPageEscapes(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if _, err := db.CreateCustomer(ctx, store.NewCustomer{
		ExternalRef: "esc-1", HolderName: "<b>Kim</b>", Payout: pipeline.Payee{Account: "OWN-12345678", Holder: "Kim"},
		Provider: "sandbox", VANumber: "VA-87654321", Currency: "KRW", Obligations: pipeline.Obligations{},
	}); err != nil {
		t.Fatal(err)
	}
	targets, err := db.PollTargets(ctx, 0, 10)
	if err != nil || len(targets) != 1 {
		t.Fatalf("poll targets %v %v", targets, err)
	}
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: 1000, Currency: "KRW"}, targets[0].Obligations(), pipeline.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	created, err := db.CreateSettlement(ctx, store.NewSettlement{Target: targets[0], Plan: plan,
		Steps: plan.Steps(targets[0].Number, accounts, targets[0].Payee())})
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.ClaimStep(ctx, created.HeadStepID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.Failure{Dead: true, Reason: `<script>alert("x")</script> & "quoted"`}
	f.Alert = pipeline.FailureAlert(c, f)
	if err := db.Fail(ctx, c, f); err != nil {
		t.Fatal(err)
	}
	page, err := web.StatusPage(db, web.PageConfig{ShowCustomerNames: true})
	if err != nil {
		t.Fatal(err)
	}
	_, body := getPage(t, page)
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>Kim") {
		t.Fatalf("markup from the database reached the page:\n%s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quoted&#34;") ||
		!strings.Contains(body, "&lt;b&gt;Kim&lt;/b&gt;") || !strings.Contains(body, "SWEEP DEAD") {
		t.Fatalf("the escaped reason, the name or the DEAD step is missing:\n%s", body)
	}
}

// A database that cannot be read gives a 503 page that says so, and keeps
// refreshing.
func TestStatusPageWithoutDatabase(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	db.Close()
	page, err := web.StatusPage(db, web.PageConfig{
		Logger:       slog.New(slog.DiscardHandler),
		QueueLatency: func(context.Context) (time.Duration, error) { return 0, errors.New("redis down") },
	})
	if err != nil {
		t.Fatal(err)
	}
	code, body := getPage(t, page)
	if code != 503 || !strings.Contains(body, "The database could not be read") || !strings.Contains(body, `http-equiv="refresh"`) {
		t.Fatalf("%d\n%s", code, body)
	}
}

func TestStatusPageRefusesAnUnknownZone(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"Local", "Mars/Olympus"} {
		if _, err := web.StatusPage(nil, web.PageConfig{TimeZone: zone}); err == nil {
			t.Errorf("time zone %q accepted", zone)
		}
	}
}
