package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// The refusals this machine's PostgreSQL cannot give: a server older than
// 12 refusing plan_cache_mode, and a refused login (the test servers trust
// loopback). The messages are PostgreSQL's own.
func TestConnectErrorNamesTheFix(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{&pq.Error{Severity: "FATAL", Code: "42704", Message: `unrecognized configuration parameter "plan_cache_mode"`},
			[]string{"plan_cache_mode", "settle needs PostgreSQL 12 or later"}},
		{&pq.Error{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "settle"`},
			[]string{"refused the login", "fix the user or password in database.url / SETTLE_DATABASE_URL"}},
		{&pq.Error{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"},
			[]string{"refused the connection", "too many clients", "SETTLE_DATABASE_URL or the server"}},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"),
			[]string{"not reachable", "start PostgreSQL or fix database.url / SETTLE_DATABASE_URL"}},
	} {
		got := connectError(tc.err).Error()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("connectError(%v) = %q; want it to say %q", tc.err, got, w)
			}
		}
	}
}
