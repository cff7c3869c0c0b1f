package rest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

func TestGarbageAnswersAreUnknown(t *testing.T) {
	t.Parallel()
	const js = "application/json"
	cases := []struct {
		name, contentType, body string
		status                  int
	}{
		{"garbage JSON", js, `{"id":"tr_1","status":`, 201},
		{"not an object", js, `["succeeded"]`, 201},
		{"null", js, `null`, 201},
		{"empty body", js, ``, 201},
		{"html page", "text/html", `<html>ok</html>`, 201},
		{"no content type", "", `{"id":"tr_1","status":"succeeded"}`, 201},
		{"oversized", js, `{"id":"tr_1","status":"succeeded","pad":"` + strings.Repeat("x", 1<<20) + `"}`, 201},
		{"unknown status", js, `{"id":"tr_1","status":"done"}`, 201},
		{"unknown failure code", js, `{"id":"tr_1","status":"failed","failure_code":"on_fire"}`, 201},
		{"failed without code", js, `{"id":"tr_1","status":"failed"}`, 201},
		{"succeeded with code", js, `{"id":"tr_1","status":"succeeded","failure_code":"account_frozen"}`, 201},
		{"no id", js, `{"status":"succeeded"}`, 201},
		{"another key", js, `{"id":"tr_1","status":"succeeded","idempotency_key":"other"}`, 201},
		{"trailing garbage", js, `{"id":"tr_1","status":"succeeded"} xyz`, 201},
		{"gateway error", "text/html", `<h1>502</h1>`, 502},
		{"unexpected 302", js, `{}`, 302},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bank, err := rest.New(rest.Config{Name: "fake", BaseURL: fakeBank(t, c.status, c.contentType, c.body), Token: token})
			if err != nil {
				t.Fatal(err)
			}
			r, err := bank.Transfer(ctx(), transfer("k", "A", "B", "", 1))
			wantClass(t, "transfer", r, err, pipeline.ClassUnknown)
			if !errors.Is(err, pipeline.ErrBadResponse) {
				t.Fatalf("%v, want ErrBadResponse", err)
			}
			r, err = bank.TransferStatus(ctx(), transfer("k", "A", "B", "", 1))
			wantClass(t, "status", r, err, pipeline.ClassUnknown)
		})
	}
}

func TestBadBalancesAreRefused(t *testing.T) {
	t.Parallel()
	const js = "application/json"
	cases := map[string]string{
		"negative":            `{"balances":[{"account_id":"A","available":-1,"currency":"KRW"}]}`,
		"absurd":              `{"balances":[{"account_id":"A","available":9000000000000000000,"currency":"KRW"}]}`,
		"overflow":            `{"balances":[{"account_id":"A","available":99999999999999999999,"currency":"KRW"}]}`,
		"float":               `{"balances":[{"account_id":"A","available":2.5,"currency":"KRW"}]}`,
		"string amount":       `{"balances":[{"account_id":"A","available":"25","currency":"KRW"}]}`,
		"no amount":           `{"balances":[{"account_id":"A","currency":"KRW"}]}`,
		"bad currency":        `{"balances":[{"account_id":"A","available":1,"currency":"won"}]}`,
		"not asked for":       `{"balances":[{"account_id":"1234567890","available":1,"currency":"KRW"}]}`,
		"twice":               `{"balances":[{"account_id":"A","available":1,"currency":"KRW"},{"account_id":"A","available":1,"currency":"KRW"}]}`,
		"balances not a list": `{"balances":{"A":1}}`,
		"neither":             `{"balances":[]}`,
		"empty object":        `{}`,
		"missing not asked":   `{"balances":[],"missing":["A","1234567890"]}`,
		"both":                `{"balances":[{"account_id":"A","available":1,"currency":"KRW"}],"missing":["A"]}`,
	}
	for name, body := range cases {
		bank, err := rest.New(rest.Config{Name: "fake", BaseURL: fakeBank(t, 200, js, body), Token: token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bank.Balances(ctx(), []string{"A"})
		if !errors.Is(err, pipeline.ErrBadResponse) {
			t.Errorf("%s: %v, want ErrBadResponse", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "1234567890") {
			t.Errorf("%s: error shows a full account number: %v", name, err)
		}
	}
}

func TestNotFoundMustComeFromTheBank(t *testing.T) {
	t.Parallel()
	bank, err := rest.New(rest.Config{Name: "fake", BaseURL: fakeBank(t, 404, "text/plain", "404 page not found"), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	r, err := bank.TransferStatus(ctx(), transfer("k", "A", "B", "", 1))
	wantClass(t, "a 404 that is not JSON", r, err, pipeline.ClassUnknown)
}

func TestErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	body := `{"error":{"code":"invalid_request","message":"account 110-234-567890 token ` + token + ` is wrong"}}`
	bank, err := rest.New(rest.Config{Name: "fake", BaseURL: fakeBank(t, 400, "application/json", body), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bank.Transfer(ctx(), transfer("k", "110-234-567890", "B", "", 1))
	if !errors.Is(err, rest.ErrRejected) {
		t.Fatalf("%v, want ErrRejected", err)
	}
	wantClass(t, "400", pipeline.Receipt{}, err, pipeline.ClassUnknown)
	if strings.Contains(err.Error(), "567890") || !strings.Contains(err.Error(), "****7890") {
		t.Fatalf("error %q shows an account number unmasked", err)
	}
}

func TestTransportErrorsMaskAccounts(t *testing.T) {
	t.Parallel()
	bank, err := rest.New(rest.Config{Name: "down", BaseURL: "http://127.0.0.1:1", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bank.Transactions(ctx(), "110234567890", "", 10)
	if err == nil || strings.Contains(err.Error(), "110234567890") || !strings.Contains(err.Error(), "****7890") {
		t.Fatalf("error %v shows the account unmasked", err)
	}
	r, err := bank.Transfer(ctx(), transfer("k", "A", "B", "", 1))
	wantClass(t, "connection refused", r, err, pipeline.ClassUnknown)
}

func TestConfigIsValidated(t *testing.T) {
	t.Parallel()
	ok := rest.Config{Name: "acme-rest", BaseURL: "https://bank.example/api/", Token: token}
	if _, err := rest.New(ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cases := []struct {
		name   string
		change func(*rest.Config)
		want   string
	}{
		{"no name", func(c *rest.Config) { c.Name = "" }, "Name"},
		{"odd name", func(c *rest.Config) { c.Name = "acme rest" }, "Name"},
		{"no url", func(c *rest.Config) { c.BaseURL = "" }, "BaseURL must be set"},
		{"ftp", func(c *rest.Config) { c.BaseURL = "ftp://bank.example" }, "http"},
		{"no host", func(c *rest.Config) { c.BaseURL = "https://" }, "no host"},
		{"credentials", func(c *rest.Config) { c.BaseURL = "https://u:p@bank.example" }, "credentials"},
		{"query", func(c *rest.Config) { c.BaseURL = "https://bank.example/?x=1" }, "query"},
		{"no token", func(c *rest.Config) { c.Token = "" }, "Token"},
		{"token with newline", func(c *rest.Config) { c.Token = "abc\r\nX-Evil: 1" }, "Token"},
		{"negative timeout", func(c *rest.Config) { c.Timeout = -1 }, "Timeout"},
	}
	for _, c := range cases {
		cfg := ok
		c.change(&cfg)
		_, err := rest.New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "config") {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("%s: error shows the token", c.name)
		}
	}
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	t.Parallel()
	bank, err := rest.New(rest.Config{Name: "fake", BaseURL: fakeBank(t, 500, "", ""), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	bad := []pipeline.TransferRequest{
		transfer("", "A", "B", "", 1),
		transfer(strings.Repeat("k", 65), "A", "B", "", 1),
		transfer("k", "", "B", "", 1),
		transfer("k", "A", "B", "", 0),
		transfer("k", "A", "B", "", -5),
		{Key: "k", From: "A", To: "B", Amount: pipeline.Money{Amount: 1, Currency: "krw"}},
	}
	for _, req := range bad {
		if _, err := bank.Transfer(ctx(), req); !errors.Is(err, rest.ErrInvalidRequest) {
			t.Errorf("%+v: %v, want ErrInvalidRequest", req, err)
		}
	}
}
