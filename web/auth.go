package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// Credentials are what an operator presents to reach the protected routes:
// HTTP basic auth with User and Password, or "Authorization: Bearer Token",
// or either when both are set. There is no default: with neither set every
// request is refused.
type Credentials struct {
	User     string
	Password string // a secret; at least MinSecretLen bytes
	Token    string // a secret; at least MinSecretLen bytes
}

// MinSecretLen is the shortest password or token Validate accepts.
const MinSecretLen = 16

// Validate reports what is wrong with the credentials, in words that name
// what to set.
func (c Credentials) Validate() error {
	var errs []error
	basic := c.User != "" || c.Password != ""
	switch {
	case !basic && c.Token == "":
		errs = append(errs, errors.New("no credentials: set a user and password, or a bearer token, for the operator HTTP server"))
	case basic && (c.User == "" || c.Password == ""):
		errs = append(errs, errors.New("basic auth needs both a user and a password"))
	case basic && strings.Contains(c.User, ":"):
		errs = append(errs, errors.New("the basic auth user must not contain ':'"))
	}
	if c.Password != "" && len(c.Password) < MinSecretLen {
		errs = append(errs, errors.New("the password is shorter than 16 bytes: use a long random one"))
	}
	if c.Token != "" && len(c.Token) < MinSecretLen {
		errs = append(errs, errors.New("the bearer token is shorter than 16 bytes: use a long random one"))
	}
	return errors.Join(errs...)
}

// digests are the credentials hashed, so that comparisons take the same
// time whatever the length of what a client sends.
type digests struct {
	basic      bool
	user, pass [32]byte
	bearer     bool
	token      [32]byte
	challenges []string
}

func newDigests(c Credentials) digests {
	d := digests{
		basic:  c.User != "" && c.Password != "",
		user:   sha256.Sum256([]byte(c.User)),
		pass:   sha256.Sum256([]byte(c.Password)),
		bearer: c.Token != "",
		token:  sha256.Sum256([]byte(c.Token)),
	}
	if d.basic {
		d.challenges = append(d.challenges, `Basic realm="settle", charset="UTF-8"`)
	}
	if d.bearer {
		d.challenges = append(d.challenges, `Bearer realm="settle"`)
	}
	if len(d.challenges) == 0 { // nothing configured: still say how to authenticate
		d.challenges = []string{`Basic realm="settle", charset="UTF-8"`}
	}
	return d
}

func equal(a, b [32]byte) int { return subtle.ConstantTimeCompare(a[:], b[:]) }

// allows reports whether the request carries valid credentials.
func (d digests) allows(r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok {
		// Both compared, always, with no early return.
		match := equal(sha256.Sum256([]byte(user)), d.user) & equal(sha256.Sum256([]byte(pass)), d.pass)
		return d.basic && match == 1
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		match := equal(sha256.Sum256([]byte(strings.TrimSpace(token))), d.token)
		return d.bearer && match == 1
	}
	return false
}

// Auth lets through only requests with valid credentials; any other gets
// 401 with a WWW-Authenticate challenge for each scheme configured. With
// empty credentials every request is refused: Auth fails closed, and New
// refuses to start that way.
func Auth(c Credentials, next http.Handler) http.Handler {
	d := newDigests(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.allows(r) {
			next.ServeHTTP(w, r)
			return
		}
		for _, ch := range d.challenges {
			w.Header().Add("WWW-Authenticate", ch)
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "401 unauthorized: give the operator credentials (basic auth or a bearer token)", http.StatusUnauthorized)
	})
}

// ReadOnly answers 405 Method Not Allowed to anything but GET and HEAD, so
// nothing mounted behind it can change state, whatever its own settings.
func ReadOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed: this view is read-only; use the settle command line to change anything",
				http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}
