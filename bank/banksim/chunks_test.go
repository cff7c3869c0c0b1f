package banksim

import (
	"slices"
	"testing"
)

func TestChunkedCopyRange(t *testing.T) {
	var c chunked[int]
	var want []int
	for i := range 3*chunkSize + 17 {
		c.append(i)
		want = append(want, i)
	}
	cases := [][2]int{{0, 0}, {0, 1}, {0, c.len()}, {5, chunkSize + 3}, {chunkSize - 1, 2*chunkSize + 1}, {chunkSize, chunkSize}, {c.len() - 2, c.len() + 10}, {-1, 3}}
	for _, r := range cases {
		from, to := max(r[0], 0), min(r[1], len(want))
		if got := c.copyRange(r[0], r[1]); !slices.Equal(got, want[from:to]) {
			t.Errorf("copyRange(%d, %d): %d elements, want %d", r[0], r[1], len(got), to-from)
		}
	}
}
