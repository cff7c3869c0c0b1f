package banksim

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// freshConns is an HTTP client that never reuses a connection, so a dropped
// connection is not retried by the transport behind our back.
func freshConns() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// outcomes sends n transfers and names what each got.
func outcomes(s *sandbox, n int) []string {
	hc := freshConns()
	var out []string
	for i := range n {
		body := `{"from_account":"A","to_account":"B","amount":1,"currency":"KRW"}`
		r, err := s.try(hc, http.MethodPost, "/v1/transfers", body, "Idempotency-Key", fmt.Sprintf("k%d", i))
		switch {
		case err != nil:
			out = append(out, "dropped")
		case r.status == http.StatusCreated:
			out = append(out, r.transfer(s.t).Status)
		default:
			out = append(out, fmt.Sprint(r.status))
		}
	}
	return out
}

func TestSeededFaultsReplayTheSameDecisions(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	faults := Faults{ErrorRate: 0.3, ProcessingRate: 0.3, TimeoutAfterApplyRate: 0.2, Seed: 7}
	run := func(f Faults) []string {
		if err := s.client.Reset(ctx()); err != nil {
			t.Fatal(err)
		}
		s.open("A", "Kim", 1000)
		s.open("B", "Lee", 0)
		s.setFaults(f)
		return outcomes(s, 40)
	}
	first, second := run(faults), run(faults)
	if !slices.Equal(first, second) {
		t.Fatalf("same seed, different faults:\n%v\n%v", first, second)
	}
	for _, kind := range []string{"500", "pending", "dropped", "succeeded"} {
		if !slices.Contains(first, kind) {
			t.Fatalf("seed 7 never gave %q in %v; pick a seed that exercises every fault", kind, first)
		}
	}
	faults.Seed = 8
	if other := run(faults); slices.Equal(first, other) {
		t.Fatalf("seeds 7 and 8 gave the same faults: %v", other)
	}
}

func TestErrorFaultDoesNothingAndSparesSandbox(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	s.setFaults(Faults{ErrorRate: 1})

	if r := s.send("k", "A", "B", "", 1); r.status != http.StatusInternalServerError {
		t.Fatalf("transfer under error_rate 1: %d", r.status)
	}
	if r := s.do(http.MethodPost, "/v1/balances:batchGet", `{"account_ids":["A"]}`); r.status != http.StatusInternalServerError {
		t.Fatalf("balances under error_rate 1: %d", r.status)
	}
	if b := s.balance("A"); b != 1000 {
		t.Fatalf("balance %d after a 500", b)
	}
	s.setFaults(Faults{})
	if r := s.do(http.MethodGet, "/v1/transfers?idempotency_key=k", ""); r.status != http.StatusNotFound {
		t.Fatalf("status after a 500: %d, want 404 (nothing was done)", r.status)
	}
	st, _ := s.client.Stats(ctx())
	if st.ServerErrors != 2 || st.TransfersApplied != 0 {
		t.Fatalf("stats %+v, want 2 server errors and nothing applied", st)
	}
}

func TestTimeoutAfterApply(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	s.setFaults(Faults{TimeoutAfterApplyRate: 1})

	body := `{"from_account":"A","to_account":"B","amount":300,"currency":"KRW"}`
	if _, err := s.try(freshConns(), http.MethodPost, "/v1/transfers", body, "Idempotency-Key", "k"); err == nil {
		t.Fatal("got an answer, want a dropped connection")
	}
	s.setFaults(Faults{})
	if r := s.do(http.MethodGet, "/v1/transfers?idempotency_key=k", ""); r.status != http.StatusOK || r.transfer(t).Status != "succeeded" {
		t.Fatalf("status after the drop: %d %s", r.status, r.body)
	}
	if j := s.journal(); len(j) != 1 || s.balance("B") != 300 {
		t.Fatalf("journal %+v, B balance %d", j, s.balance("B"))
	}
	if st, _ := s.client.Stats(ctx()); st.ConnectionsDropped != 1 {
		t.Fatalf("stats %+v, want 1 dropped connection", st)
	}
}

func TestProcessingResolvesWhenAsked(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	s.setFaults(Faults{ProcessingRate: 1})

	if tr := s.send("ok", "A", "B", "", 400).transfer(t); tr.Status != "pending" {
		t.Fatalf("first answer %+v, want pending", tr)
	}
	if tr := s.send("poor", "A", "B", "", 900).transfer(t); tr.Status != "pending" {
		t.Fatalf("first answer %+v, want pending", tr)
	}
	if b := s.balance("B"); b != 0 {
		t.Fatalf("B has %d before anything was settled", b)
	}
	if r := s.do(http.MethodGet, "/v1/transfers?idempotency_key=ok", ""); r.transfer(t).Status != "succeeded" {
		t.Fatalf("status %s, want succeeded", r.body)
	}
	if r := s.do(http.MethodGet, "/v1/transfers?idempotency_key=poor", ""); r.transfer(t).FailureCode != "insufficient_funds" {
		t.Fatalf("status %s, want failed insufficient_funds", r.body)
	}
	if j := s.journal(); len(j) != 1 || j[0].IdempotencyKey != "ok" {
		t.Fatalf("journal %+v", j)
	}
	if st, _ := s.client.Stats(ctx()); st.PendingAnswers != 2 {
		t.Fatalf("stats %+v, want 2 pending answers", st)
	}
}

func TestProcessingSettlesAfterTheDelay(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.open("B", "Lee", 0)
	s.setFaults(Faults{ProcessingRate: 1, ProcessingDelayMS: 5000})

	s.send("k", "A", "B", "", 400)
	s.clock.Advance(4999 * time.Millisecond)
	if j := s.journal(); len(j) != 0 {
		t.Fatalf("applied before its delay: %+v", j)
	}
	s.clock.Advance(time.Millisecond)
	if j := s.journal(); len(j) != 1 || s.balance("B") != 400 {
		t.Fatalf("not applied after its delay: %+v", j)
	}
	if r := s.send("k", "A", "B", "", 400); r.transfer(t).Status != "succeeded" || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay after settling: %s", r.body)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.open("A", "Kim", 1000)
	s.setFaults(Faults{RateLimitRPS: 2})
	balances := func() reply {
		return s.do(http.MethodPost, "/v1/balances:batchGet", `{"account_ids":["A"]}`)
	}
	for i := range 2 {
		if r := balances(); r.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, r.status)
		}
	}
	r := balances()
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d Retry-After %q, want 429 and 1", r.status, r.header.Get("Retry-After"))
	}
	if a := s.balance("A"); a != 1000 {
		t.Fatal("sandbox endpoints must not be rate limited")
	}
	s.clock.Advance(500 * time.Millisecond)
	if r := balances(); r.status != http.StatusOK {
		t.Fatalf("after half a second at 2 rps: %d", r.status)
	}
	if st, _ := s.client.Stats(ctx()); st.RateLimited != 1 || st.Requests["POST /v1/balances:batchGet"] != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFaultsAreValidated(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	for _, body := range []string{`{"error_rate":2}`, `{"processing_rate":-0.1}`, `{"latency_ms":-1}`, `{"rate_limit_rps":-1}`, `{"typo_rate":1}`} {
		if r := s.do(http.MethodPut, "/sandbox/faults", body); r.status != http.StatusBadRequest {
			t.Errorf("faults %s: %d, want 400", body, r.status)
		}
	}
	if r := s.do(http.MethodPut, "/sandbox/faults", `{}`); r.status != http.StatusOK {
		t.Fatalf("clearing faults: %d", r.status)
	}
}
