package banksim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
)

// openMany opens n accounts with 1000 won each and returns their IDs.
func openMany(s *sandbox, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("acct-%03d", i)
		s.open(ids[i], "Holder", 1000)
	}
	return ids
}

func (s *sandbox) total(ids []string) int64 {
	var sum int64
	for _, id := range ids {
		sum += s.balance(id)
	}
	return sum
}

func TestNoMoneyCreatedOrLost(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	ids := openMany(s, 12)
	mustState(t, s, ids[0], StateFrozen)
	mustState(t, s, ids[1], StateClosed)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		from, to := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
		s.send(fmt.Sprintf("k%d", i), from, to, "", 1+rng.Int64N(600))
	}
	if got := s.total(ids); got != 12*1000 {
		t.Fatalf("sum of balances %d, want %d", got, 12*1000)
	}
	checkJournalExplainsBalances(t, s, ids)
}

// checkJournalExplainsBalances replays the journal over the opening balances
// and compares with the bank's balances.
func checkJournalExplainsBalances(t *testing.T, s *sandbox, ids []string) {
	t.Helper()
	want := make(map[string]int64, len(ids))
	for _, id := range ids {
		want[id] = 1000
	}
	for _, e := range s.journal() {
		want[e.From] -= e.Amount
		want[e.To] += e.Amount
	}
	for _, id := range ids {
		if got := s.balance(id); got != want[id] || got < 0 {
			t.Errorf("%s: balance %d, the journal says %d", id, got, want[id])
		}
	}
}

func TestConcurrentTransfersConserveMoney(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	ids := openMany(s, 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 100 {
				from, to := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
				s.send(fmt.Sprintf("g%d-%d", g, i), from, to, "", 1+rng.Int64N(400))
			}
		})
	}
	wg.Wait()
	if got := s.total(ids); got != 10*1000 {
		t.Fatalf("sum of balances %d, want %d", got, 10*1000)
	}
	checkJournalExplainsBalances(t, s, ids)
}

func TestConcurrentSameKeyAppliesOnce(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	ids := make(chan string, 50)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			r := s.send("same-key", "A", "B", "", 100)
			if r.status != http.StatusCreated {
				t.Errorf("status %d %s", r.status, r.body)
			}
			ids <- r.transfer(t).ID
		})
	}
	wg.Wait()
	close(ids)
	first := <-ids
	for id := range ids {
		if id != first {
			t.Fatalf("transfer ids %s and %s for one key", first, id)
		}
	}
	if j := s.journal(); len(j) != 1 {
		t.Fatalf("journal has %d entries for one key, want 1", len(j))
	}
	if a, b := s.balance("A"), s.balance("B"); a != 900 || b != 100 {
		t.Fatalf("balances A=%d B=%d, want 900 and 100", a, b)
	}
}
