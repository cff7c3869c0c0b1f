package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/settle-dev/settle/web"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAuthWithOneScheme(t *testing.T) {
	t.Parallel()
	onlyBasic := web.Auth(web.Credentials{User: creds.User, Password: creds.Password}, ok)
	onlyToken := web.Auth(web.Credentials{Token: creds.Token}, ok)
	for _, tc := range []struct {
		name      string
		h         http.Handler
		auth      func(*http.Request)
		want      int
		challenge string
	}{
		{"basic configured, basic sent", onlyBasic, basic(creds.User, creds.Password), 204, ""},
		{"basic configured, token sent", onlyBasic, bearer(creds.Token), 401, `Basic realm="settle", charset="UTF-8"`},
		{"token configured, token sent", onlyToken, bearer(creds.Token), 204, ""},
		{"token configured, lower-case scheme", onlyToken, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+creds.Token) }, 204, ""},
		{"token configured, empty basic sent", onlyToken, basic("", ""), 401, `Bearer realm="settle"`},
		{"token configured, empty token sent", onlyToken, bearer(""), 401, `Bearer realm="settle"`},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		tc.auth(r)
		w := serve(tc.h, r)
		if w.Code != tc.want || w.Header().Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s: %d %q, want %d %q", tc.name, w.Code, w.Header().Get("WWW-Authenticate"), tc.want, tc.challenge)
		}
	}
}

// Empty credentials refuse everything, empty basic auth included.
func TestAuthFailsClosed(t *testing.T) {
	t.Parallel()
	h := web.Auth(web.Credentials{}, ok)
	for _, auth := range []func(*http.Request){basic("", ""), bearer(""), func(*http.Request) {}} {
		r := httptest.NewRequest("GET", "/", nil)
		auth(r)
		if w := serve(h, r); w.Code != 401 {
			t.Errorf("empty credentials let %q through: %d", r.Header.Get("Authorization"), w.Code)
		}
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	h := web.ReadOnly(ok)
	for method, want := range map[string]int{"GET": 204, "HEAD": 204, "POST": 405, "PUT": 405, "PATCH": 405, "DELETE": 405, "OPTIONS": 405} {
		w := serve(h, httptest.NewRequest(method, "/monitoring/api/queues/steps", nil))
		if w.Code != want {
			t.Errorf("%s: %d, want %d", method, w.Code, want)
		}
		if want == 405 && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: Allow %q", method, w.Header().Get("Allow"))
		}
	}
}
