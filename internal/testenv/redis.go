package testenv

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/localsvc"
)

// Redis is a redis-server process private to one test, listening on 127.0.0.1.
// It keeps nothing on disk: Stop loses every key. Its methods fail the test the
// way t.Fatal does, so call them from the goroutine running the test.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	proc *localsvc.Process // nil while stopped
}

// StartRedis starts a redis-server of the test's own on a free 127.0.0.1 port,
// with its directory in t.TempDir(), persistence off and maxmemory-policy
// noeviction, waits until it answers PING, and kills it when the test ends.
// The binary is redis-server from PATH, else /usr/bin/redis-server.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := localsvc.RedisServer()
	if err != nil {
		t.Fatalf("testenv: %v: run `make test` (it installs it as root), or `sudo apt-get install -y redis-server`", err)
	}
	r := &Redis{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(r.kill)
	if r.proc, r.port, err = localsvc.StartRedisOnFreePort(context.Background(), bin, r.dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return r
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return localsvc.RedisAddr(r.port) }

// URL is redis://127.0.0.1:PORT/0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Stop kills the server with SIGKILL and waits until it is gone; all its data
// is lost. Stopping a stopped server does nothing.
func (r *Redis) Stop() {
	r.t.Helper()
	r.kill()
}

// Start starts the server again on the same port, empty, and waits until it
// answers PING. Starting a running server does nothing.
func (r *Redis) Start() {
	r.t.Helper()
	var err error
	deadline := time.Now().Add(localsvc.RedisStartTimeout)
	for {
		if err = r.start(); err == nil {
			return
		}
		// The port was ours a moment ago; give a lingering socket a moment.
		if !errors.Is(err, localsvc.ErrPortInUse) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("testenv: %v", err)
}

// Restart is Stop then Start: the same port, no data.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	r.Start()
}

// start launches redis-server on r.port and waits for PING; it is a no-op when running.
func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && r.proc.Alive() {
		return nil
	}
	p, err := localsvc.StartRedis(context.Background(), r.bin, r.dir, r.port)
	r.proc = p
	return err
}

// kill sends SIGKILL and waits for the process to be reaped.
func (r *Redis) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return
	}
	r.proc.Kill()
	r.proc = nil
}
