package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    Receipt
		err  error
		want Class
	}{
		{"succeeded", Receipt{State: TransferSucceeded}, nil, ClassSuccess},
		{"pending", Receipt{State: TransferPending}, nil, ClassUnknown},
		{"unknown state", Receipt{State: "weird"}, nil, ClassUnknown},
		{"refused", Receipt{}, fmt.Errorf("x: %w", &RefusedError{Code: RefusedAccountFrozen}), ClassRefused},
		{"rate limited", Receipt{}, &RetryAfterError{Err: ErrRateLimited, After: time.Second}, ClassTransient},
		{"unavailable", Receipt{}, fmt.Errorf("x: %w", ErrUnavailable), ClassTransient},
		{"unauthorized", Receipt{}, ErrUnauthorized, ClassTransient},
		{"not found", Receipt{}, ErrNotFound, ClassAbsent},
		{"key reused", Receipt{}, ErrKeyReused, ClassKeyConflict},
		{"timeout", Receipt{}, context.DeadlineExceeded, ClassUnknown},
		{"garbage", Receipt{}, ErrBadResponse, ClassUnknown},
		{"anything else", Receipt{}, errors.New("connection reset"), ClassUnknown},
	}
	for _, tt := range tests {
		if got := Classify(tt.r, tt.err); got != tt.want {
			t.Errorf("%s: Classify = %s, want %s", tt.name, got, tt.want)
		}
	}
	if got := RetryAfter(fmt.Errorf("w: %w", &RetryAfterError{Err: ErrRateLimited, After: 3 * time.Second})); got != 3*time.Second {
		t.Errorf("RetryAfter = %s, want 3s", got)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := Backoff(i+1, time.Second, 10*time.Second); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
}
