package testenv

import (
	"bufio"
	"database/sql"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPostgresURLCreatesAndDropsDatabase(t *testing.T) {
	t.Parallel()
	admin, err := sql.Open("postgres", os.Getenv(DatabaseURLEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	var name string
	t.Run("inner", func(t *testing.T) {
		u := PostgresURL(t)
		db, err := sql.Open("postgres", u)
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop must terminate it.
		if err := db.QueryRow("SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, dbPrefix) || !strings.Contains(u, name) {
			t.Fatalf("connected to %q through %q", name, redactURL(u))
		}
		if _, err := db.Exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 1 {
			t.Fatalf("database %s: count %d, err %v", name, n, err)
		}
	})
	if name == "" {
		t.Fatal("inner test did not run")
	}
	var n int
	if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestPostgresURLDistinctDatabases(t *testing.T) {
	t.Parallel()
	a, b := PostgresURL(t), PostgresURL(t)
	if a == b {
		t.Fatalf("same URL twice: %s", a)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u:p@127.0.0.1:5432/settle_t_x?sslmode=disable"},
		{"postgresql://h/db", "postgresql://h/settle_t_x"},
		{"postgres://h:1/?dbname=a&sslmode=disable", "postgres://h:1/settle_t_x?dbname=settle_t_x&sslmode=disable"},
		{"host=127.0.0.1 dbname=postgres", "host=127.0.0.1 dbname=postgres dbname=settle_t_x"},
	} {
		got, err := withDatabase(c.in, "settle_t_x")
		if err != nil || got != c.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if got := redactURL("postgres://u:secret@h/db"); strings.Contains(got, "secret") {
		t.Errorf("redactURL kept the password: %s", got)
	}
	if got := redactURL("host=h password=secret dbname=x"); strings.Contains(got, "secret") {
		t.Errorf("redactURL kept the password: %s", got)
	}
}

// do sends one command in RESP and returns the first line of the reply.
func do(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func TestRedisStopStart(t *testing.T) {
	t.Parallel()
	r := StartRedis(t)
	if !strings.HasPrefix(r.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(r.URL(), "/0") {
		t.Fatalf("URL %q", r.URL())
	}
	if got, err := do(t, r.Addr(), "SET", "k", "v"); err != nil || got != "+OK" {
		t.Fatalf("SET: %q %v", got, err)
	}
	if got, err := do(t, r.Addr(), "CONFIG", "GET", "maxmemory-policy"); err != nil || got != "*2" {
		t.Fatalf("CONFIG GET: %q %v", got, err)
	}

	r.Stop()
	if _, err := do(t, r.Addr(), "PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	r.Stop() // idempotent

	r.Start()
	if got, err := do(t, r.Addr(), "EXISTS", "k"); err != nil || got != ":0" {
		t.Fatalf("after Start, EXISTS k = %q %v; want :0 (data lost)", got, err)
	}
	r.Start() // no-op while running

	addr := r.Addr()
	if _, err := do(t, addr, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	if r.Addr() != addr {
		t.Fatalf("Restart moved from %s to %s", addr, r.Addr())
	}
	if got, err := do(t, r.Addr(), "GET", "k"); err != nil || got != "$-1" {
		t.Fatalf("after Restart, GET k = %q %v; want nil", got, err)
	}
}

func TestRedisPrivatePerTest(t *testing.T) {
	t.Parallel()
	a, b := StartRedis(t), StartRedis(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on %s", a.Addr())
	}
	if _, err := do(t, a.Addr(), "SET", "only", "a"); err != nil {
		t.Fatal(err)
	}
	if got, err := do(t, b.Addr(), "EXISTS", "only"); err != nil || got != ":0" {
		t.Fatalf("b sees a's key: %q %v", got, err)
	}
}

func TestRedisKilledAtCleanup(t *testing.T) {
	t.Parallel()
	var addr string
	t.Run("inner", func(t *testing.T) {
		addr = StartRedis(t).Addr()
	})
	if _, err := do(t, addr, "PING"); err == nil {
		t.Fatalf("redis on %s still answers after its test ended", addr)
	}
}

// fakeTB records Fatalf instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	failed atomic.Bool
	msg    string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	f.failed.Store(true)
}

func TestEventually(t *testing.T) {
	t.Parallel()
	start := time.Now()
	calls := 0
	Eventually(t, 5*time.Second, func() (bool, string) {
		calls++
		return time.Since(start) > 30*time.Millisecond, "not yet"
	})
	if calls < 2 || time.Since(start) > time.Second {
		t.Fatalf("calls %d after %v", calls, time.Since(start))
	}

	f := &fakeTB{TB: t}
	start = time.Now()
	Eventually(f, 100*time.Millisecond, func() (bool, string) { return false, "still 3 rows" })
	if !f.failed.Load() || !strings.Contains(f.msg, "still 3 rows") {
		t.Fatalf("Eventually did not fail with the last message: failed=%v msg=%q", f.failed.Load(), f.msg)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}
