// Package testenv gives tests real PostgreSQL databases and private Redis servers.
//
// PostgresURL creates a fresh, uniquely named database on the server named by
// SETTLE_DATABASE_URL and drops it when the test ends; `make test` (or
// `eval "$(scripts/devenv.sh up test)"`) sets that variable. StartRedis starts a
// redis-server process of the test's own, which the test can stop, wipe and
// restart. Eventually polls a condition until it holds or a deadline passes.
//
// Every test gets its own database and its own Redis, so tests may call
// t.Parallel freely. Nothing here touches a database it did not create.
package testenv

import (
	"testing"
	"time"
)

// Eventually calls cond until it returns true, at short intervals, and fails the
// test with cond's last message if that does not happen within timeout. cond is
// called once at once, then every few milliseconds (at most every 100 ms).
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := timeout / 100
	interval = max(interval, 5*time.Millisecond)
	interval = min(interval, 100*time.Millisecond)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	tries := 0
	for {
		ok, msg := cond()
		tries++
		if ok {
			return
		}
		if !time.Now().Before(deadline) {
			if msg == "" {
				msg = "condition not met"
			}
			t.Fatalf("not true within %v (%d tries): %s", timeout, tries, msg)
			return
		}
		<-ticker.C
	}
}
