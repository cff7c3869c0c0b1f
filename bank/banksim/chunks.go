package banksim

// chunkSize is the length of every chunk but the first, which grows as a
// plain slice does: a small account costs no more than a slice.
const chunkSize = 4096

// chunked is an append-only list stored in chunks, so that appending never
// copies the whole list while the bank's mutex is held.
type chunked[T any] struct {
	chunks [][]T
	n      int
}

func (c *chunked[T]) append(v T) {
	last := len(c.chunks) - 1
	if last < 0 || len(c.chunks[last]) == chunkSize {
		c.chunks = append(c.chunks, make([]T, 0, c.firstCap()))
		last++
	}
	c.chunks[last] = append(c.chunks[last], v)
	c.n++
}

// firstCap is the capacity of a new chunk: small for the first, full after.
func (c *chunked[T]) firstCap() int {
	if len(c.chunks) == 0 {
		return 4
	}
	return chunkSize
}

func (c *chunked[T]) len() int { return c.n }

// copyRange returns a copy of the elements [from, to).
func (c *chunked[T]) copyRange(from, to int) []T {
	from, to = max(from, 0), min(to, c.n)
	if from >= to {
		return nil
	}
	out := make([]T, 0, to-from)
	for i := from; i < to; {
		chunk := c.chunks[i/chunkSize]
		j := min(to-i+i%chunkSize, len(chunk))
		out = append(out, chunk[i%chunkSize:j]...)
		i += j - i%chunkSize
	}
	return out
}
