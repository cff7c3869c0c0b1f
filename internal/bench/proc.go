package bench

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is a child process of the bench: a private redis-server or a
// `settle serve` worker.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, valid after exited is closed
	term   sync.Once     // SIGTERM is sent once: a second one tells settle serve to exit at once
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// terminate sends SIGTERM, once, to a process still running.
func (p *process) terminate() {
	p.term.Do(func() {
		if p.alive() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	})
}

// stop terminates the process, waits up to grace, then kills.
func (p *process) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.terminate()
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.kill()
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *process) kill() {
	if p.alive() {
		_ = p.cmd.Process.Signal(os.Kill)
	}
	<-p.exited
}
