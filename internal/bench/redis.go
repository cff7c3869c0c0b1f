package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server private to one run, on a free 127.0.0.1
// port, keeping nothing on disk: the bench never shares or flushes a Redis
// it did not start.
type redisServer struct {
	proc    *process
	port    int
	logPath string
}

// startRedis starts redis-server (from PATH, else /usr/bin) with its
// directory in dir, persistence off and maxmemory-policy noeviction, and
// waits until it answers PING.
func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/redis-server"); statErr != nil {
			return nil, fmt.Errorf("redis-server not found in PATH or /usr/bin: install it (apt-get install redis-server): %w", err)
		}
		bin = "/usr/bin/redis-server"
	}
	var lastErr error
	for range 5 { // another process may take the port between choosing and binding it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &redisServer{port: port, logPath: filepath.Join(dir, "redis.log")}
		if lastErr = r.start(ctx, bin, dir); lastErr == nil {
			return r, nil
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	return nil, lastErr
}

func (r *redisServer) start(ctx context.Context, bin, dir string) error {
	cmd := exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", dir,
		"--daemonize", "no", "--logfile", r.logPath, "--save", "", "--appendonly", "no",
		"--maxmemory-policy", "noeviction")
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	r.proc = p
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pingErr := c.Ping(ctx).Err()
		if pingErr == nil {
			return nil
		}
		if !p.alive() || time.Now().After(deadline) || ctx.Err() != nil {
			p.kill()
			log, _ := os.ReadFile(r.logPath)
			return fmt.Errorf("redis-server on %s did not start (%v): %s", r.addr(), pingErr, tail(string(log), 800))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

func (r *redisServer) url() string { return "redis://" + r.addr() + "/0" }

func (r *redisServer) stop() {
	if r != nil && r.proc != nil {
		r.proc.kill()
	}
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
