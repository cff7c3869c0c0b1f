package testenv

import (
	"bytes"
	"context"
	"log"
	"strings"
	"testing"
)

// While a test uses UnreachableRedis, go-redis's lines about that address are
// dropped and those about any other address still print.
func TestUnreachableRedisDropsOnlyItsOwnDials(t *testing.T) {
	var buf bytes.Buffer
	l := dropUnreachable{next: log.New(&buf, "", 0)}
	const format = "redis: connection pool: failed to dial after %d attempts: %v"
	t.Run("in use", func(t *testing.T) {
		UnreachableRedis(t)
		l.Printf(context.Background(), format, 5, "dial tcp 127.0.0.1:1: connect: connection refused")
		l.Printf(context.Background(), format, 5, "dial tcp 127.0.0.1:10001: connect: connection refused")
	})
	l.Printf(context.Background(), format, 5, "dial tcp 127.0.0.1:1: connect: connection refused")
	got := buf.String()
	if strings.Count(got, "\n") != 2 || !strings.Contains(got, "127.0.0.1:10001") {
		t.Fatalf("printed:\n%s\nwant the line about 127.0.0.1:10001, and the one about 127.0.0.1:1 once no test uses it", got)
	}
}
