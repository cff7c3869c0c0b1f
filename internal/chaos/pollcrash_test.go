package chaos

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/crash"
	"github.com/settle-dev/settle/pipeline"
)

// A worker killed right after a poll wrote its settlements, before it
// enqueued their first steps: the settlements are in PostgreSQL and in no
// queue. After a restart the relay enqueues them, the held VAs are not
// settled again, and every won lands where it belongs, each transfer once.
func TestKilledAfterSettlementsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("process-kill run skipped with -short")
	}
	h := newHarness(t, settings{seed: 5, customers: 40, workers: 1})
	cs := h.seed(t)
	deposits := h.payAll(t, cs)

	runUntilCrash(t, h, pipeline.PointAfterSettlementsCommit)
	written := count(t, h, `SELECT count(*) FROM settlements`)
	if written == 0 {
		t.Fatal("the worker crashed after writing settlements, yet none is in the database")
	}
	transfers := count(t, h, `SELECT count(*) FROM transfers`)

	h.startWorkers(t, false)
	h.waitQuiet(t, deposits)
	h.stopWorkers(t)
	h.check(t, cs, deposits)
	if n := count(t, h, `SELECT count(*) FROM settlements`); n != len(cs) {
		t.Errorf("%d settlements for %d customers paid once each: a deposit was settled twice or not at all", n, len(cs))
	}
	t.Logf("killed after writing %d settlements (%d transfer attempts by then); after the restart all %d settled once", written, transfers, len(cs))
}

// runUntilCrash runs one `settle serve` with the crash point at
// probability 1 (and env's overrides) and waits, up to two minutes, for it
// to exit there with crash.ExitCode.
func runUntilCrash(t *testing.T, h *harness, point string, env ...string) {
	t.Helper()
	cmd := exec.Command(h.bin, "serve", "--config", h.cfg)
	cmd.Env = append(append(os.Environ(), "SETTLE_DATABASE_URL=", "SETTLE_REDIS_URL=", "SETTLE_TEST_CRASH="+point+"=1"), env...)
	cmd.Stderr = h.log.writer("crashing worker: ")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("the worker did not reach the crash point %s in 2 minutes", point)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crash.ExitCode {
		t.Fatalf("worker exit: %v; want exit code %d at %s", err, crash.ExitCode, point)
	}
}

func count(t *testing.T, h *harness, query string) int {
	t.Helper()
	var n int
	if err := h.db.SQL().QueryRowContext(context.Background(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
