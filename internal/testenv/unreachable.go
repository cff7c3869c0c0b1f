package testenv

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// UnreachableRedisAddr is where no Redis listens: port 1 of the loopback
// interface, which refuses a connection at once.
const UnreachableRedisAddr = "127.0.0.1:1"

// UnreachableRedis returns UnreachableRedisAddr, for a test that points a
// Redis client at a Redis that is down. go-redis logs every failed dial of
// its connection pool to stderr; while such a test runs, those lines about
// this address are dropped (the test's own checks say whether the failure
// was the one it expects). Lines about any other address are printed as
// before, so a real Redis failing still shows.
func UnreachableRedis(t testing.TB) string {
	t.Helper()
	quietDials.once.Do(func() {
		redis.SetLogger(dropUnreachable{next: log.New(os.Stderr, "redis: ", log.LstdFlags)})
	})
	quietDials.tests.Add(1)
	t.Cleanup(func() { quietDials.tests.Add(-1) })
	return UnreachableRedisAddr
}

// quietDials counts the tests running that use UnreachableRedis.
var quietDials struct {
	once  sync.Once
	tests atomic.Int64
}

// dropUnreachable is go-redis's logger: it drops the lines naming
// UnreachableRedisAddr while a test uses it, and prints the rest.
type dropUnreachable struct{ next *log.Logger }

func (l dropUnreachable) Printf(_ context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if quietDials.tests.Load() > 0 && strings.Contains(msg, UnreachableRedisAddr+":") {
		return
	}
	l.next.Print(msg)
}
