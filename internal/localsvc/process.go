package localsvc

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a child process started by Start.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, valid after exited is closed
	term   sync.Once     // SIGTERM is sent once: a second one tells settle serve to exit at once
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has ended and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended (cmd.Wait's result); valid once Exited is
// closed.
func (p *Process) Err() error { return p.err }

// Alive reports whether the process has not ended yet.
func (p *Process) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Terminate sends SIGTERM, once, to a process still running.
func (p *Process) Terminate() {
	p.term.Do(func() {
		if p.Alive() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	})
}

// Stop terminates the process, waits up to grace, then kills it.
func (p *Process) Stop(grace time.Duration) {
	if !p.Alive() {
		return
	}
	p.Terminate()
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.Kill()
	}
}

// Kill sends SIGKILL and waits until the process is reaped.
func (p *Process) Kill() {
	if p.Alive() {
		_ = p.cmd.Process.Signal(os.Kill)
	}
	<-p.exited
}
