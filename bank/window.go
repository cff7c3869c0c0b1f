package bank

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// ErrMaintenance is wrapped by the error of a call not sent because the
// provider is in a maintenance window. It wraps pipeline.ErrUnavailable, so
// a step waits for the window's end without spending an attempt, and the
// error carries a *pipeline.RetryAfterError with the time left.
var ErrMaintenance = fmt.Errorf("provider in a maintenance window, nothing sent: %w", pipeline.ErrUnavailable)

// Window is a daily maintenance window, in minutes after local midnight. An
// end at or before the start means the window crosses midnight.
type Window struct {
	From, To int
}

// ParseWindow parses "HH:MM-HH:MM" (24-hour clock; the end may be 24:00).
// "23:30-00:30" crosses midnight.
func ParseWindow(s string) (Window, error) {
	from, to, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Window{}, fmt.Errorf("maintenance window %q: write it as HH:MM-HH:MM, such as 23:30-00:30", s)
	}
	f, errF := parseClock(from, false)
	t, errT := parseClock(to, true)
	switch {
	case errF != nil || errT != nil:
		return Window{}, fmt.Errorf("maintenance window %q: write it as HH:MM-HH:MM, such as 23:30-00:30", s)
	case f == t || f == 0 && t == 24*60:
		return Window{}, fmt.Errorf("maintenance window %q: the start and the end must differ, and a window cannot last all day", s)
	}
	return Window{From: f, To: t}, nil
}

// parseClock parses HH:MM into minutes; 24:00 only as an end.
func parseClock(s string, end bool) (int, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	h, errH := strconv.Atoi(hh)
	m, errM := strconv.Atoi(mm)
	switch {
	case !ok || len(hh) != 2 || len(mm) != 2 || errH != nil || errM != nil:
		return 0, errors.New("not HH:MM")
	case h == 24 && m == 0 && end:
		return 24 * 60, nil
	case h < 0 || h > 23 || m < 0 || m > 59:
		return 0, errors.New("out of range")
	}
	return h*60 + m, nil
}

func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.From/60, w.From%60, w.To/60, w.To%60)
}

// Maintenance is a provider's daily maintenance windows in a time zone.
// The zero value has no windows.
type Maintenance struct {
	Windows  []Window
	Location *time.Location // nil means UTC
}

// ParseMaintenance parses a provider's windows ("23:30-00:30", ...).
func ParseMaintenance(specs []string, loc *time.Location) (Maintenance, error) {
	m := Maintenance{Location: loc}
	for _, s := range specs {
		w, err := ParseWindow(s)
		if err != nil {
			return Maintenance{}, err
		}
		m.Windows = append(m.Windows, w)
	}
	return m, nil
}

// Closed reports whether t falls in a window and, if so, when the provider
// opens again (after every window that overlaps or adjoins it).
func (m Maintenance) Closed(t time.Time) (until time.Time, closed bool) {
	for range len(m.Windows) + 1 {
		end, in := m.windowAt(t)
		if !in {
			return until, closed
		}
		until, closed, t = end, true, end
	}
	return until, closed
}

// windowAt returns the end of a window that contains t.
func (m Maintenance) windowAt(t time.Time) (time.Time, bool) {
	loc := m.Location
	if loc == nil {
		loc = time.UTC
	}
	local := t.In(loc)
	for _, back := range []int{-1, 0} {
		y, mo, d := local.AddDate(0, 0, back).Date()
		for _, w := range m.Windows {
			start := time.Date(y, mo, d, 0, w.From, 0, 0, loc)
			endDay := d
			if w.To <= w.From {
				endDay++
			}
			end := time.Date(y, mo, endDay, 0, w.To, 0, 0, loc)
			if !t.Before(start) && t.Before(end) {
				return end, true
			}
		}
	}
	return time.Time{}, false
}

// MaintainedBank is a provider's pipeline.Bank that sends nothing during
// the provider's maintenance windows: every call made in one returns an
// error wrapping ErrMaintenance (and so pipeline.ErrUnavailable) with a
// *pipeline.RetryAfterError hint of the time left. Put it outside the
// throttle, so a refused call neither takes a rate-limit token nor counts
// as a failure for the breaker.
type MaintainedBank struct {
	inner    pipeline.Bank
	provider string
	m        Maintenance
	now      func() time.Time
}

var _ pipeline.Bank = (*MaintainedBank)(nil)

// WithMaintenance wraps inner with the provider's windows; now is the clock
// (nil means time.Now). With no windows it returns inner unchanged.
func WithMaintenance(inner pipeline.Bank, provider string, m Maintenance, now func() time.Time) pipeline.Bank {
	if len(m.Windows) == 0 {
		return inner
	}
	if now == nil {
		now = time.Now
	}
	return &MaintainedBank{inner: inner, provider: provider, m: m, now: now}
}

// Closed reports whether the provider is in a maintenance window now, and
// until when.
func (b *MaintainedBank) Closed() (time.Time, bool) { return b.m.Closed(b.now()) }

func (b *MaintainedBank) check() error {
	now := b.now()
	until, closed := b.m.Closed(now)
	if !closed {
		return nil
	}
	return &pipeline.RetryAfterError{
		Err:   fmt.Errorf("%s: %w until %s", b.provider, ErrMaintenance, until.Format("2006-01-02 15:04 MST")),
		After: until.Sub(now),
	}
}

// Balances implements pipeline.Bank.
func (b *MaintainedBank) Balances(ctx context.Context, accounts []string) ([]pipeline.Balance, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	return b.inner.Balances(ctx, accounts)
}

// Transfer implements pipeline.Bank.
func (b *MaintainedBank) Transfer(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	if err := b.check(); err != nil {
		return pipeline.Receipt{}, err
	}
	return b.inner.Transfer(ctx, req)
}

// TransferStatus implements pipeline.Bank. A bank in maintenance answers
// nothing, so the status question waits too (the sweep asks again).
func (b *MaintainedBank) TransferStatus(ctx context.Context, req pipeline.TransferRequest) (pipeline.Receipt, error) {
	if err := b.check(); err != nil {
		return pipeline.Receipt{}, err
	}
	return b.inner.TransferStatus(ctx, req)
}
