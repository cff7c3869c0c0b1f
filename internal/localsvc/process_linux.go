//go:build linux

package localsvc

import (
	"os/exec"
	"runtime"
	"syscall"
)

// Start starts cmd so that the kernel kills it with SIGKILL when this
// process dies: a panic, a test -timeout or an interrupted bench leaves no
// child behind.
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// process, so the child is started from a goroutine locked to its thread,
// which stays there (blocked in Wait) for as long as the child lives.
func Start(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
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
