package banksim

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCoreTransfer measures the work done under the bank's mutex for one
// transfer into a shared collection account, as on payday.
func BenchmarkCoreTransfer(b *testing.B) {
	c := newCore(time.Now)
	for i := range 1000 {
		c.createAccount(Account{ID: fmt.Sprintf("VA%06d", i), HolderName: "H", Balance: 1 << 40, Currency: "KRW"})
	}
	c.createAccount(Account{ID: "COLL", HolderName: "C", Currency: "KRW"})
	b.ResetTimer()
	for i := range b.N {
		req := transferRequest{Key: fmt.Sprintf("k%d", i), From: fmt.Sprintf("VA%06d", i%1000), To: "COLL", Amount: 1, Currency: "KRW", Dialect: dialectRest}
		if _, _, err := c.transfer(req, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestTransferParallel sends rest transfers over real HTTP from
// many goroutines.
func BenchmarkRestTransferParallel(b *testing.B) {
	s := newSandbox(b)
	for i := range 100 {
		s.open(fmt.Sprintf("VA%03d", i), "H", 1<<40)
	}
	s.open("COLL", "C", 0)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if r := s.send(fmt.Sprintf("k%d", i), fmt.Sprintf("VA%03d", i%100), "COLL", "", 1); r.status != 201 {
				b.Errorf("status %d", r.status)
			}
		}
	})
}
