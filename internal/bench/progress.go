package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress shows the run on a terminal as one redrawn line, or elsewhere
// (a CI log, a file) as a line every few seconds. A nil writer shows
// nothing.
type progress struct {
	w      io.Writer
	tty    bool
	every  time.Duration // between lines when not a terminal
	mu     sync.Mutex
	drawn  bool      // a bar is on the terminal's current line
	last   time.Time // last line printed (not a terminal)
	phaseT time.Time
}

func newProgress(w io.Writer, tty bool) *progress {
	return &progress{w: w, tty: tty, every: 5 * time.Second}
}

// phase starts a new phase with a line of its own.
func (p *progress) phase(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLine()
	fmt.Fprintf(p.w, "settle bench: "+format+"\n", args...)
	p.phaseT = time.Now()
	p.last = time.Time{}
}

// bar shows done of total with a rate and an ETA; extra is appended.
func (p *progress) bar(label string, done, total int64, extra string) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.tty && now.Sub(p.last) < p.every && done < total {
		return
	}
	p.last = now
	line := renderBar(label, done, total, now.Sub(p.phaseT), extra)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// end finishes the bar's line on a terminal.
func (p *progress) end() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLine()
}

func (p *progress) endLine() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// renderBar is one progress line:
// "payday [########------------]  4512/10000  45.1%  312/s  ETA 17s  failed 0".
func renderBar(label string, done, total int64, elapsed time.Duration, extra string) string {
	const width = 28
	frac := 0.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	full := int(frac * width)
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s [%s%s] %7d/%d %5.1f%%", label, strings.Repeat("#", full), strings.Repeat("-", width-full), done, total, 100*frac)
	if secs := elapsed.Seconds(); secs >= 1 && done > 0 {
		rate := float64(done) / secs
		fmt.Fprintf(&b, "  %6.0f/s", rate)
		if done < total {
			eta := time.Duration(float64(total-done) / rate * float64(time.Second))
			fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
		}
	}
	fmt.Fprintf(&b, "  %s", elapsed.Round(time.Second))
	if extra != "" {
		b.WriteString("  " + extra)
	}
	return b.String()
}
