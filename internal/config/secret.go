package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
)

// redacted is what is shown in place of a secret.
const redacted = "[redacted]"

// Secret is a password or token. However it is printed, logged or marshalled
// it shows as "[redacted]"; only Reveal gives the value.
type Secret string

// Reveal returns the secret's value, for handing to the client that needs it.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]", so %#v hides the value too.
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so that no fmt verb, even a
// wrong one, prints the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

var _ slog.LogValuer = Secret("")

// secretParams are query parameters whose values RedactURL hides.
var secretParams = map[string]bool{
	"password": true, "sslpassword": true, "pass": true, "pwd": true,
	"token": true, "secret": true, "access_token": true,
}

// RedactURL returns s with the password of its user info, and the value of
// any password-like query parameter, replaced by "[redacted]":
// postgres://settle:[redacted]@db:5432/settle. The fragment is dropped. A
// string that is not a URL with a scheme is replaced whole, since it cannot be
// told apart from a secret. The empty string stays empty.
func RedactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return redacted
	}
	u.RawQuery = redactQuery(u.RawQuery)
	u.Fragment, u.RawFragment = "", ""
	if u.User == nil {
		return u.String()
	}
	if _, ok := u.User.Password(); !ok {
		return u.String()
	}
	user := url.User(u.User.Username()).String()
	u.User = nil
	out, prefix := u.String(), u.Scheme+"://"
	if !strings.HasPrefix(out, prefix) {
		return redacted
	}
	return prefix + user + ":" + redacted + "@" + out[len(prefix):]
}

// redactQuery replaces the values of secretParams in a raw query string,
// keeping everything else as written.
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		key, _, _ := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(key); err != nil || secretParams[strings.ToLower(k)] {
			parts[i] = key + "=" + redacted
		}
	}
	return strings.Join(parts, "&")
}
