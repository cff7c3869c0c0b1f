package bank_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank"
	"github.com/settle-dev/settle/pipeline"
)

var seoul = mustLoad("Asia/Seoul")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, seoul)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseWindow(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "23:30", "23:30-", "24:00-01:00", "23:60-00:30", "1:00-2:00", "10:00-10:00", "00:00-24:00", "a-b"} {
		if _, err := bank.ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
	for in, want := range map[string]bank.Window{
		"23:30-00:30":  {From: 23*60 + 30, To: 30},
		" 01:00-02:15": {From: 60, To: 135},
		"22:00-24:00":  {From: 22 * 60, To: 24 * 60},
	} {
		got, err := bank.ParseWindow(in)
		if err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestMaintenanceClosed(t *testing.T) {
	t.Parallel()
	m, err := bank.ParseMaintenance([]string{"23:30-00:30", "00:30-01:00", "04:00-04:10"}, seoul)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		now, until string // until "" means open
	}{
		{"2026-11-24 23:29", ""},
		{"2026-11-24 23:30", "2026-11-25 01:00"}, // the adjoining 00:30-01:00 window extends it
		{"2026-11-25 00:10", "2026-11-25 01:00"},
		{"2026-11-25 00:59", "2026-11-25 01:00"},
		{"2026-11-25 01:00", ""},
		{"2026-11-30 23:45", "2026-12-01 01:00"}, // across a month's end
		{"2026-11-25 04:05", "2026-11-25 04:10"},
		{"2026-11-25 12:00", ""},
	} {
		until, closed := m.Closed(at(c.now))
		if closed != (c.until != "") || closed && !until.Equal(at(c.until)) {
			t.Errorf("at %s: closed %v until %s; want until %q", c.now, closed, until.In(seoul).Format("2006-01-02 15:04"), c.until)
		}
	}
	// The same wall-clock window in another zone is another instant.
	utc, _ := bank.ParseMaintenance([]string{"23:30-00:30"}, time.UTC)
	if _, closed := utc.Closed(at("2026-11-24 23:45")); closed {
		t.Error("a UTC window closed the provider at 23:45 in Seoul (14:45 UTC)")
	}
}

type countingBank struct{ calls int }

func (b *countingBank) Balances(context.Context, []string) ([]pipeline.Balance, error) {
	b.calls++
	return nil, nil
}

func (b *countingBank) Transfer(context.Context, pipeline.TransferRequest) (pipeline.Receipt, error) {
	b.calls++
	return pipeline.Receipt{State: pipeline.TransferSucceeded}, nil
}

func (b *countingBank) TransferStatus(context.Context, pipeline.TransferRequest) (pipeline.Receipt, error) {
	b.calls++
	return pipeline.Receipt{State: pipeline.TransferSucceeded}, nil
}

// Inside a window nothing is sent, and the error makes a step wait for the
// window's end without spending an attempt (transient, ErrUnavailable,
// with the time left as its Retry-After).
func TestMaintainedBankSendsNothingInAWindow(t *testing.T) {
	t.Parallel()
	m, _ := bank.ParseMaintenance([]string{"23:30-00:30"}, seoul)
	now := at("2026-11-24 23:50")
	inner := &countingBank{}
	b := bank.WithMaintenance(inner, "acme", m, func() time.Time { return now })
	ctx := context.Background()
	_, errB := b.Balances(ctx, []string{"1"})
	r, errT := b.Transfer(ctx, pipeline.TransferRequest{Key: "k"})
	_, errS := b.TransferStatus(ctx, pipeline.TransferRequest{Key: "k"})
	for _, err := range []error{errB, errT, errS} {
		if !errors.Is(err, bank.ErrMaintenance) || !errors.Is(err, pipeline.ErrUnavailable) {
			t.Fatalf("error %v does not wrap ErrMaintenance and ErrUnavailable", err)
		}
		if got := pipeline.RetryAfter(err); got != 40*time.Minute {
			t.Errorf("retry after %s, want 40m (the window ends at 00:30)", got)
		}
	}
	if pipeline.Classify(r, errT) != pipeline.ClassTransient {
		t.Errorf("a transfer in a window classifies as %s, want transient", pipeline.Classify(r, errT))
	}
	if inner.calls != 0 {
		t.Fatalf("%d calls reached the bank inside the window", inner.calls)
	}
	now = at("2026-11-25 00:30")
	if _, err := b.Transfer(ctx, pipeline.TransferRequest{Key: "k"}); err != nil || inner.calls != 1 {
		t.Fatalf("after the window: %v, %d calls", err, inner.calls)
	}
	if got := bank.WithMaintenance(inner, "acme", bank.Maintenance{}, nil); got != pipeline.Bank(inner) {
		t.Error("no windows should leave the bank unwrapped")
	}
}
