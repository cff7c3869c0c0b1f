package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/settle-dev/settle/internal/testenv"
)

// make run with its output piped (make run 2>&1 | tee run.log) stops
// everything on Ctrl-C, although the terminal's SIGINT kills the reader of
// the pipe too: the daemon stops gracefully (its Asynq server clears its
// state in Redis, which a death by SIGPIPE leaves behind), no process of the
// run is left and the sandbox bank's port is free again. The script builds
// bin/settle and runs the demo against the test's own database and Redis
// on free ports.
func TestRunScriptStopsCleanlyWhenPiped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the whole demo")
	}
	pg := testenv.PostgresURL(t)
	rs := testenv.StartRedis(t)
	httpAddr, bankAddr, lenderAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "run.log")
	cmd := exec.Command("bash", "-c", "bash scripts/run.sh 2>&1 | cat >"+strconv.Quote(log))
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SETTLE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	marker := "SETTLE_HTTP_ADDR=" + httpAddr // in the environment of every process of this run
	cmd.Env = append(cmd.Env, "SETTLE_DATABASE_URL="+pg, "SETTLE_REDIS_URL="+rs.URL(), marker,
		"SETTLE_DEV_BANK_ADDR="+bankAddr, "SETTLE_DEV_LENDER_ADDR="+lenderAddr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a process group, as a terminal's foreground job
	// Catching SIGINT here meanwhile makes the script start with it at its
	// default, as from a terminal, even if this test was started with it
	// ignored (the script could not trap it then).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	err = cmd.Start()
	signal.Stop(sigs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range processesWith(marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})

	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	ctx := context.Background()
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false, "settle serve does not answer yet (see " + log + "): " + err.Error()
		}
		resp.Body.Close()
		n, err := rc.ZCard(ctx, "asynq:servers").Result() // written when the workers start
		return resp.StatusCode == http.StatusOK && n > 0, fmt.Sprintf("healthz %d, %d Asynq servers (%v)", resp.StatusCode, n, err)
	})

	// The banner's export line pastes as it is: single quotes, no
	// backslashes; once the demo settles, the addresses come again in one
	// line.
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return strings.Contains(readFile(t, log), "run: the demo is settling: status page http://"+httpAddr+"/"),
			"no line with the addresses after the demo's first settlements in " + log
	})
	var export string
	for line := range strings.SplitSeq(readFile(t, log), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "export SETTLE_CONFIG=") {
			export = line
		}
	}
	pasted, err := exec.Command("bash", "-c", export+`; printf '%s\n' "$SETTLE_CONFIG" "$SETTLE_DATABASE_URL" "$SETTLE_REDIS_URL" "$SETTLE_PROVIDERS_SANDBOX_BASE_URL"`).Output()
	if want := filepath.Join(root, "configs/demo.yaml") + "\n" + pg + "\n" + rs.URL() + "\nhttp://" + bankAddr + "\n"; err != nil ||
		string(pasted) != want || strings.Contains(export, `\`) || !strings.Contains(export, "SETTLE_DATABASE_URL='") {
		t.Errorf("the export line %q sets\n%s(%v), want\n%s", export, pasted, err, want)
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		left := processesWith(marker)
		c, err := net.DialTimeout("tcp", bankAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return len(left) == 0 && err != nil, fmt.Sprintf("processes of the run left: %v; the sandbox bank's port is free: %v", left, err != nil)
	})
	if n, err := rc.ZCard(ctx, "asynq:servers").Result(); err != nil || n != 0 {
		t.Fatalf("settle serve did not stop gracefully: %d Asynq servers left in Redis (%v); the run's log ends:\n%s", n, err, lastLines(readFile(t, log), 40))
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// processesWith lists the processes whose environment holds kv.
func processesWith(kv string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, v := range strings.Split(string(env), "\x00") {
			if v == kv {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
