package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisStartTimeout bounds how long StartRedis and Start wait for PING to answer.
const redisStartTimeout = 20 * time.Second

// Redis is a redis-server process private to one test, listening on 127.0.0.1.
// It keeps nothing on disk: Stop loses every key. Its methods fail the test the
// way t.Fatal does, so call them from the goroutine running the test.
type Redis struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	logPath string

	mu   sync.Mutex
	proc *redisProc // nil while stopped
}

type redisProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, valid after exited is closed
}

// StartRedis starts a redis-server of the test's own on a free 127.0.0.1 port,
// with its directory in t.TempDir(), persistence off and maxmemory-policy
// noeviction, waits until it answers PING, and kills it when the test ends.
// The binary is redis-server from PATH, else /usr/bin/redis-server.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/redis-server"); statErr != nil {
			t.Fatalf("testenv: redis-server not found in PATH or /usr/bin: run `make test` "+
				"(it installs it as root), or `sudo apt-get install -y redis-server`: %v", err)
		}
		bin = "/usr/bin/redis-server"
	}
	r := &Redis{t: t, bin: bin, dir: t.TempDir()}
	r.logPath = filepath.Join(r.dir, "redis.log")
	t.Cleanup(r.kill)

	// Another process may take the port between choosing and binding it: retry.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if r.port, err = freePort(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if lastErr = r.start(); lastErr == nil {
			return r
		}
		r.kill()
		if !strings.Contains(lastErr.Error(), "already in use") {
			break
		}
	}
	t.Fatalf("testenv: %v", lastErr)
	return nil
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

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
	deadline := time.Now().Add(redisStartTimeout)
	for {
		if err = r.start(); err == nil {
			return
		}
		r.kill()
		// The port was ours a moment ago; give a lingering socket a moment.
		if !strings.Contains(err.Error(), "already in use") || time.Now().After(deadline) {
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
	if r.proc != nil {
		select {
		case <-r.proc.exited:
			r.proc = nil
		default:
			return nil
		}
	}
	logStart := fileSize(r.logPath)
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--daemonize", "no",
		"--logfile", r.logPath,
		"--save", "",
		"--appendonly", "no",
		"--maxmemory-policy", "noeviction",
	)
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.bin, err)
	}
	r.proc = p

	deadline := time.Now().Add(redisStartTimeout)
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		pingErr := ping(r.Addr())
		if pingErr == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server on %s exited (%v)%s", r.Addr(), p.err, r.logTail(logStart))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s does not answer PING after %v: %v%s",
				r.Addr(), redisStartTimeout, pingErr, r.logTail(logStart))
		}
		<-ticker.C
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (r *Redis) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return
	}
	_ = r.proc.cmd.Process.Kill()
	<-r.proc.exited
	r.proc = nil
}

// logTail returns what redis wrote to its log since offset, for error messages.
func (r *Redis) logTail(offset int64) string {
	b, err := os.ReadFile(r.logPath)
	if err != nil || int64(len(b)) <= offset {
		return ""
	}
	b = b[offset:]
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- " + r.logPath + " ---\n" + string(bytes.TrimSpace(b))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
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

// ping sends PING in RESP and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimRight(line, "\r\n"); line != "+PONG" {
		return errors.New("PING answered " + strconv.Quote(line))
	}
	return nil
}
