package localsvc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RedisStartTimeout bounds how long StartRedis waits for PING to answer.
const RedisStartTimeout = 20 * time.Second

// ErrPortInUse is what StartRedis's error wraps when the port was taken.
var ErrPortInUse = errors.New("port already in use")

// RedisServer is the redis-server binary: from PATH, else
// /usr/bin/redis-server.
func RedisServer() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/redis-server"); statErr != nil {
			return "", fmt.Errorf("redis-server not found in PATH or /usr/bin: %w", err)
		}
		bin = "/usr/bin/redis-server"
	}
	return bin, nil
}

// RedisAddr is the address of a redis-server StartRedis started on port.
func RedisAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// StartRedis starts the redis-server bin on 127.0.0.1:port with its
// directory in dir, its log appended to dir/redis.log, persistence off and
// maxmemory-policy noeviction, and waits until it answers PING. When it does
// not, StartRedis kills it and returns what it logged meanwhile; the error
// wraps ErrPortInUse when another process holds the port.
func StartRedis(ctx context.Context, bin, dir string, port int) (*Process, error) {
	logPath := filepath.Join(dir, "redis.log")
	logStart := fileSize(logPath)
	p, err := Start(exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", logPath,
		"--save", "",
		"--appendonly", "no",
		"--maxmemory-policy", "noeviction",
	))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	addr := RedisAddr(port)
	deadline := time.Now().Add(RedisStartTimeout)
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		pingErr := PingRedis(addr)
		if pingErr == nil {
			return p, nil
		}
		var failure error
		select {
		case <-p.Exited():
			failure = fmt.Errorf("redis-server on %s exited (%v)", addr, p.Err())
		default:
			if time.Now().After(deadline) {
				failure = fmt.Errorf("redis-server on %s does not answer PING after %v: %v", addr, RedisStartTimeout, pingErr)
			} else if ctx.Err() != nil {
				failure = fmt.Errorf("redis-server on %s: %w", addr, ctx.Err())
			}
		}
		if failure != nil {
			p.Kill()
			log := logSince(logPath, logStart)
			if strings.Contains(log, "already in use") {
				failure = fmt.Errorf("%w: %w", failure, ErrPortInUse)
			}
			if log != "" {
				failure = fmt.Errorf("%w\n--- %s ---\n%s", failure, logPath, log)
			}
			return nil, failure
		}
		<-ticker.C
	}
}

// StartRedisOnFreePort is StartRedis on a port the kernel says is free,
// tried again on another while one is taken between choosing and binding it.
func StartRedisOnFreePort(ctx context.Context, bin, dir string) (*Process, int, error) {
	var err error
	for range 5 {
		var port int
		if port, err = FreePort(); err != nil {
			return nil, 0, err
		}
		var p *Process
		if p, err = StartRedis(ctx, bin, dir, port); err == nil {
			return p, port, nil
		}
		if !errors.Is(err, ErrPortInUse) {
			break
		}
	}
	return nil, 0, err
}

// FreePort asks the kernel for a free port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PingRedis sends PING in RESP to addr and expects +PONG.
func PingRedis(addr string) error {
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

// logSince is the last 2,000 bytes path gained after offset, for error
// messages.
func logSince(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) <= offset {
		return ""
	}
	b = b[offset:]
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
