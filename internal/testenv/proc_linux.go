//go:build linux

package testenv

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startProcess starts cmd so that the kernel kills it with SIGKILL when the
// test binary dies (a panic or a -timeout leaves no stray redis-server behind).
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// process, so the child is started from a goroutine locked to its thread, and
// that goroutine stays there (blocked in Wait) for as long as the child lives.
func startProcess(cmd *exec.Cmd) (*redisProc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &redisProc{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		runtime.UnlockOSThread()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}
