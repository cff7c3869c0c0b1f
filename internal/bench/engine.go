package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/settle-dev/settle/internal/localsvc"
)

// runner runs the engine under test and tells what it cost.
type runner interface {
	start(ctx context.Context) error
	// usage reads the engine's CPU seconds and peak RSS so far; call it
	// before stop.
	usage() (procUsage, error)
	stop()
	// logCounts counts the engine's WARN and ERROR log lines, with the
	// first ERROR line.
	logCounts() LogSummary
	scope() string
}

// procUsage is what a set of processes used.
type procUsage struct {
	CPUSeconds  float64
	PeakRSS     int64 // the largest one process reached
	PeakRSSSum  int64 // all of them together
	Processes   int
	RSSAccurate bool // false when the peak could not be reset at the start
}

// inProcess runs the daemon in the bench process.
type inProcess struct {
	in       *installation
	factory  EngineFactory
	engine   Engine
	logPath  string
	logFile  *os.File
	cpuStart float64
	hwmReset bool
}

func newInProcess(in *installation, f EngineFactory) *inProcess {
	return &inProcess{in: in, factory: f, logPath: filepath.Join(in.dir, "engine.log")}
}

func (p *inProcess) scope() string {
	return "the bench process: daemon, sandbox bank and the bench's monitor (use --processes for the daemon alone)"
}

func (p *inProcess) start(ctx context.Context) error {
	f, err := os.Create(p.logPath)
	if err != nil {
		return err
	}
	p.logFile = f
	logger := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p.engine, err = p.factory(ctx, p.in.cfg, logger)
	if err != nil {
		return fmt.Errorf("build the engine: %w", err)
	}
	p.hwmReset = resetPeakRSS() == nil
	p.cpuStart = selfCPUSeconds()
	if err := p.engine.Start(); err != nil {
		p.engine.Stop(context.Background())
		p.engine = nil
		return fmt.Errorf("start the engine: %w", err)
	}
	return nil
}

func (p *inProcess) usage() (procUsage, error) {
	st, err := readProcStatus("self")
	return procUsage{CPUSeconds: selfCPUSeconds() - p.cpuStart, PeakRSS: st.hwm, PeakRSSSum: st.hwm, Processes: 1, RSSAccurate: p.hwmReset}, err
}

func (p *inProcess) stop() {
	if p.engine != nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.in.cfg.Worker.ShutdownTimeout+5*time.Second)
		p.engine.Stop(ctx)
		cancel()
		p.engine = nil
	}
	if p.logFile != nil {
		_ = p.logFile.Close()
		p.logFile = nil
	}
}

func (p *inProcess) logCounts() LogSummary { return countLogLines(p.logPath) }

// workerProcs runs `settle serve` processes against the installation.
type workerProcs struct {
	in    *installation
	exe   string
	n     int
	procs []*localsvc.Process
	logs  []string
}

func (w *workerProcs) scope() string {
	return fmt.Sprintf("%d `settle serve` worker processes (the daemon alone)", w.n)
}

func (w *workerProcs) start(ctx context.Context) error {
	for i := range w.n {
		logPath := filepath.Join(w.in.dir, fmt.Sprintf("worker-%d.log", i))
		f, err := os.Create(logPath)
		if err != nil {
			return err
		}
		cmd := exec.Command(w.exe, "serve", "--config", w.in.cfgPath)
		cmd.Env = childEnv()
		cmd.Stdout, cmd.Stderr = f, f
		p, err := localsvc.Start(cmd)
		_ = f.Close() // the child holds its own descriptor
		if err != nil {
			return fmt.Errorf("start worker %d: %w", i, err)
		}
		w.procs = append(w.procs, p)
		w.logs = append(w.logs, logPath)
	}
	// A worker that cannot start (bad config, unreachable service) exits at once.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	for i, p := range w.procs {
		if !p.Alive() {
			b, _ := os.ReadFile(w.logs[i])
			return fmt.Errorf("worker %d exited at start (%v): %s", i, p.Err(), tail(string(b), 1000))
		}
	}
	return nil
}

// childEnv is the bench's environment without SETTLE_ variables: the
// workers must read the bench's configuration file, not the user's
// overrides (SETTLE_DATABASE_URL names the admin database).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SETTLE_") {
			env = append(env, kv)
		}
	}
	return env
}

func (w *workerProcs) usage() (procUsage, error) {
	u := procUsage{Processes: len(w.procs), RSSAccurate: true}
	for _, p := range w.procs {
		pid := fmt.Sprint(p.Pid())
		cpu, err := procCPUSeconds(pid)
		if err != nil {
			return u, fmt.Errorf("worker %s: %w", pid, err)
		}
		st, err := readProcStatus(pid)
		if err != nil {
			return u, fmt.Errorf("worker %s: %w", pid, err)
		}
		u.CPUSeconds += cpu
		u.PeakRSS = max(u.PeakRSS, st.hwm)
		u.PeakRSSSum += st.hwm
	}
	return u, nil
}

// stop shuts the workers down gracefully, side by side: one signal each (a
// second would make settle serve exit at once).
func (w *workerProcs) stop() {
	for _, p := range w.procs {
		p.Terminate()
	}
	grace := w.in.cfg.Worker.ShutdownTimeout + 5*time.Second
	for _, p := range w.procs {
		p.Stop(grace)
	}
}

func (w *workerProcs) logCounts() LogSummary {
	var sum LogSummary
	for _, l := range w.logs {
		c := countLogLines(l)
		sum.Warnings, sum.Errors = sum.Warnings+c.Warnings, sum.Errors+c.Errors
		sum.FirstWarning = cmp.Or(sum.FirstWarning, c.FirstWarning)
		sum.FirstError = cmp.Or(sum.FirstError, c.FirstError)
	}
	return sum
}

// countLogLines counts slog text lines at WARN and ERROR and keeps the
// first of each.
func countLogLines(path string) LogSummary {
	var sum LogSummary
	b, err := os.ReadFile(path)
	if err != nil {
		return sum
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "level=WARN"):
			sum.Warnings++
			sum.FirstWarning = cmp.Or(sum.FirstWarning, tail(line, 300))
		case strings.Contains(line, "level=ERROR"):
			sum.Errors++
			sum.FirstError = cmp.Or(sum.FirstError, tail(line, 300))
		}
	}
	return sum
}
