package store

import (
	"context"
	"slices"
	"sync"
	"time"
)

// batcher turns calls made one at a time by many goroutines into batches:
// a call that arrives while every batch slot is busy waits, with the others
// that arrive meanwhile, and the next free slot runs them as one batch (one
// statement, one commit). A call that finds a slot free runs at once, so an
// idle engine adds no wait; a busy one makes fewer, larger statements, as
// PostgreSQL's own group commit does with WAL flushes.
//
// A call taken into a batch waits for that batch's outcome even if its own
// context ends: what the statement did is reported, never abandoned. A call
// whose context ends before it was taken is dropped and did nothing.
type batcher[Q, R any] struct {
	max   int // calls per batch
	slots int // batches running at once
	// conflict reports two calls that must not share a batch (the same
	// step, the same customer); the later waits for a later batch.
	conflict func(a, b Q) bool
	// run runs one batch and returns a result per call, in qs' order. When
	// it fails for a batch of several, each call is run again alone, so one
	// call's error never becomes another's.
	run func(ctx context.Context, qs []Q) ([]R, error)

	mu      sync.Mutex
	pending []*batchCall[Q, R]
	running int
}

type batchCall[Q, R any] struct {
	q     Q
	r     R
	err   error
	taken bool
	done  chan struct{}
}

// batchTimeout bounds one batch: its statement and its retries.
const batchTimeout = 30 * time.Second

// do runs q in a batch and returns its result.
func (b *batcher[Q, R]) do(ctx context.Context, q Q) (R, error) {
	c := &batchCall[Q, R]{q: q, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if b.running < b.slots {
		b.running++
		go b.drain()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.r, c.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !c.taken {
		b.pending = slices.DeleteFunc(b.pending, func(p *batchCall[Q, R]) bool { return p == c })
		b.mu.Unlock()
		var zero R
		return zero, ctx.Err()
	}
	b.mu.Unlock()
	<-c.done
	return c.r, c.err
}

// drain runs batches in one slot until nothing is pending.
func (b *batcher[Q, R]) drain() {
	for {
		b.mu.Lock()
		batch := b.take()
		if len(batch) == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.runBatch(batch)
	}
}

// take removes the next batch from pending: the oldest calls, up to max,
// skipping any that conflicts with one already taken. It runs under mu.
func (b *batcher[Q, R]) take() []*batchCall[Q, R] {
	var batch []*batchCall[Q, R]
	rest := b.pending[:0]
	for _, c := range b.pending {
		if len(batch) < b.max && !slices.ContainsFunc(batch, func(t *batchCall[Q, R]) bool { return b.conflict(t.q, c.q) }) {
			c.taken = true
			batch = append(batch, c)
		} else {
			rest = append(rest, c)
		}
	}
	clear(b.pending[len(rest):])
	b.pending = rest
	return batch
}

// runBatch runs batch and hands each call its result.
func (b *batcher[Q, R]) runBatch(batch []*batchCall[Q, R]) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	qs := make([]Q, len(batch))
	for i, c := range batch {
		qs[i] = c.q
	}
	rs, err := b.run(ctx, qs)
	switch {
	case err == nil:
		for i, c := range batch {
			c.r = rs[i]
		}
	case len(batch) == 1:
		batch[0].err = err
	default:
		for _, c := range batch {
			if rs, err := b.run(ctx, []Q{c.q}); err != nil {
				c.err = err
			} else {
				c.r = rs[0]
			}
		}
	}
	for _, c := range batch {
		close(c.done)
	}
}
