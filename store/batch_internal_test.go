package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// blockingBatcher is a batcher whose batches wait for release before they
// run; it records each batch it ran.
type blockingBatcher struct {
	*batcher[int, string]
	release chan struct{}
	started chan []int

	ranMu sync.Mutex
	ran   [][]int
}

func newBlockingBatcher(slots, max int, failOn int) *blockingBatcher {
	b := &blockingBatcher{release: make(chan struct{}), started: make(chan []int, 100)}
	b.batcher = &batcher[int, string]{
		max: max, slots: slots,
		conflict: func(a, c int) bool { return a%100 == c%100 }, // 101 conflicts with 1
		run: func(_ context.Context, qs []int) ([]string, error) {
			b.started <- slices.Clone(qs)
			<-b.release
			b.ranMu.Lock()
			b.ran = append(b.ran, slices.Clone(qs))
			b.ranMu.Unlock()
			if failOn != 0 && slices.Contains(qs, failOn) {
				return nil, fmt.Errorf("batch with %d failed", failOn)
			}
			out := make([]string, len(qs))
			for i, q := range qs {
				out[i] = fmt.Sprint("r", q)
			}
			return out, nil
		},
	}
	return b
}

// queued waits until n calls are pending.
func (b *blockingBatcher) queued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.batcher.mu.Lock()
		got := len(b.pending)
		b.batcher.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	q   int
	r   string
	err error
}

func (b *blockingBatcher) call(ctx context.Context, q int, out chan<- result) {
	go func() {
		r, err := b.do(ctx, q)
		out <- result{q, r, err}
	}()
}

// gather runs first, waits until its batch has started, queues the others
// behind it one by one, then releases every batch. Results arrive on the
// returned channel.
func (b *blockingBatcher) gather(t *testing.T, first int, others ...int) <-chan result {
	t.Helper()
	out := make(chan result, len(others)+1)
	b.call(context.Background(), first, out)
	if started := <-b.started; !slices.Equal(started, []int{first}) {
		t.Fatalf("first batch %v, want [%d]: a free slot runs a call at once", started, first)
	}
	for i, q := range others {
		b.call(context.Background(), q, out)
		b.queued(t, i+1)
	}
	close(b.release)
	return out
}

// Calls that arrive while every slot is busy go together in the next
// batch, up to max, and never two that conflict; each gets its own result.
func TestBatcherGathersCallsWhileSlotsAreBusy(t *testing.T) {
	b := newBlockingBatcher(1, 3, 0)
	out := b.gather(t, 1, 2, 101, 3, 4) // 101 conflicts with 1, which is no longer pending
	got := map[int]string{}
	for range 5 {
		r := <-out
		if r.err != nil {
			t.Fatalf("call %d: %v", r.q, r.err)
		}
		got[r.q] = r.r
	}
	for q, r := range got {
		if r != fmt.Sprint("r", q) {
			t.Fatalf("call %d got %q", q, r)
		}
	}
	b.ranMu.Lock()
	defer b.ranMu.Unlock()
	if want := [][]int{{1}, {2, 101, 3}, {4}}; fmt.Sprint(b.ran) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", b.ran, want)
	}
}

// Two calls that conflict never share a batch: the later waits for the next.
func TestBatcherKeepsConflictingCallsApart(t *testing.T) {
	b := newBlockingBatcher(1, 10, 0)
	out := b.gather(t, 7, 1, 101, 2, 201)
	for range 5 {
		if r := <-out; r.err != nil {
			t.Fatal(r.err)
		}
	}
	b.ranMu.Lock()
	defer b.ranMu.Unlock()
	if want := [][]int{{7}, {1, 2}, {101}, {201}}; fmt.Sprint(b.ran) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", b.ran, want)
	}
}

// A batch that fails is run again one call at a time, so the error is
// only the call's that causes it.
func TestBatcherFailedBatchRunsEachCallAlone(t *testing.T) {
	b := newBlockingBatcher(1, 10, 3)
	out := b.gather(t, 1, 2, 3, 4)
	for range 4 {
		r := <-out
		if (r.err != nil) != (r.q == 3) {
			t.Fatalf("call %d: result %q, err %v; want an error for 3 only", r.q, r.r, r.err)
		}
	}
	b.ranMu.Lock()
	defer b.ranMu.Unlock()
	if want := [][]int{{1}, {2, 3, 4}, {2}, {3}, {4}}; fmt.Sprint(b.ran) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", b.ran, want)
	}
}

// A call whose context ends while it waits for a slot is dropped and never
// runs; a call already taken into a batch waits for that batch's outcome,
// whatever its context says, because the batch may have done its work.
func TestBatcherCancelledCalls(t *testing.T) {
	b := newBlockingBatcher(1, 10, 0)
	out := make(chan result, 10)
	taken, cancelTaken := context.WithCancel(context.Background())
	b.call(taken, 1, out)
	<-b.started
	waiting, cancelWaiting := context.WithCancel(context.Background())
	b.call(waiting, 2, out)
	b.queued(t, 1)
	cancelWaiting()
	if r := <-out; r.q != 2 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("waiting call: %+v, want 2 cancelled", r)
	}
	cancelTaken()
	select {
	case r := <-out:
		t.Fatalf("a call taken into a running batch returned before it ended: %+v", r)
	default:
	}
	close(b.release)
	if r := <-out; r.q != 1 || r.err != nil || r.r != "r1" {
		t.Fatalf("taken call: %+v, want its batch's result", r)
	}
	b.ranMu.Lock()
	defer b.ranMu.Unlock()
	if want := [][]int{{1}}; fmt.Sprint(b.ran) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v: the dropped call ran", b.ran, want)
	}
}
