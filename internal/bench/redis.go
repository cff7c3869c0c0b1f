package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/settle-dev/settle/internal/localsvc"
)

// redisServer is a redis-server private to one run, on a free 127.0.0.1
// port, keeping nothing on disk: the bench never shares or flushes a Redis
// it did not start.
type redisServer struct {
	proc *localsvc.Process
	port int
}

// startRedis starts redis-server (from PATH, else /usr/bin) with its
// directory in dir, persistence off and maxmemory-policy noeviction, and
// waits until it answers PING.
func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := localsvc.RedisServer()
	if err != nil {
		return nil, fmt.Errorf("%w: install it (apt-get install redis-server)", err)
	}
	p, port, err := localsvc.StartRedisOnFreePort(ctx, bin, dir)
	if err != nil {
		return nil, err
	}
	return &redisServer{proc: p, port: port}, nil
}

func (r *redisServer) addr() string { return localsvc.RedisAddr(r.port) }

func (r *redisServer) url() string { return "redis://" + r.addr() + "/0" }

func (r *redisServer) stop() {
	if r != nil && r.proc != nil {
		r.proc.Kill()
	}
}

// tail is the last n bytes of s, trimmed, for messages.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
