package banksim

import (
	"strings"
	"sync/atomic"
)

// Stats are the sandbox's counters since the last reset.
type Stats struct {
	// Requests counts authorized requests by endpoint ("POST /v1/transfers").
	Requests map[string]int64 `json:"requests"`
	// Unauthorized counts requests refused with 401.
	Unauthorized int64 `json:"unauthorized"`
	// RateLimited counts 429 answers.
	RateLimited int64 `json:"rate_limited"`
	// ServerErrors counts 5xx answers, injected or not.
	ServerErrors int64 `json:"server_errors"`
	// GatewayBusy counts openbanking answers with rsp_code A0001 (the
	// openbanking dialect's answer to the error fault).
	GatewayBusy int64 `json:"gateway_busy"`
	// ConnectionsDropped counts transfers answered by closing the connection.
	ConnectionsDropped int64 `json:"connections_dropped"`
	// PendingAnswers counts new transfers answered "pending".
	PendingAnswers int64 `json:"pending_answers"`
	// TransfersApplied counts transfers that moved money.
	TransfersApplied int64 `json:"transfers_applied"`
	// SentAgain counts the transfer requests of each key sent more than
	// once ("dialect/key" → times), replays the bank deduplicated included.
	SentAgain map[string]int64 `json:"sent_again,omitempty"`
}

// IsDialectEndpoint reports whether an endpoint of Stats.Requests belongs
// to a bank dialect's API, not to the sandbox's own /sandbox/ endpoints.
func IsDialectEndpoint(endpoint string) bool { return !strings.Contains(endpoint, "/sandbox/") }

// DialectCalls counts the requests of every dialect's API, the sandbox's
// own endpoints left out.
func (s Stats) DialectCalls() int64 {
	var n int64
	for k, v := range s.Requests {
		if IsDialectEndpoint(k) {
			n += v
		}
	}
	return n
}

// BalanceCalls counts the balance calls of every dialect.
func (s Stats) BalanceCalls() int64 {
	var n int64
	for k, v := range s.Requests {
		if IsDialectEndpoint(k) && strings.Contains(k, "balance") {
			n += v
		}
	}
	return n
}

// stats holds the counters. The map of endpoint counters is filled when the
// routes are registered and only read afterwards, so no lock is needed.
type stats struct {
	requests     map[string]*atomic.Int64
	unauthorized atomic.Int64
	rateLimited  atomic.Int64
	serverErrors atomic.Int64
	gatewayBusy  atomic.Int64
	dropped      atomic.Int64
	pending      atomic.Int64
}

func newStats() *stats { return &stats{requests: make(map[string]*atomic.Int64)} }

// counter returns the counter of an endpoint; called only while registering.
func (s *stats) counter(pattern string) *atomic.Int64 {
	n := new(atomic.Int64)
	s.requests[pattern] = n
	return n
}

func (s *stats) snapshot(applied int64) Stats {
	out := Stats{
		Requests:           make(map[string]int64, len(s.requests)),
		Unauthorized:       s.unauthorized.Load(),
		RateLimited:        s.rateLimited.Load(),
		ServerErrors:       s.serverErrors.Load(),
		GatewayBusy:        s.gatewayBusy.Load(),
		ConnectionsDropped: s.dropped.Load(),
		PendingAnswers:     s.pending.Load(),
		TransfersApplied:   applied,
	}
	for k, n := range s.requests {
		out.Requests[k] = n.Load()
	}
	return out
}

func (s *stats) reset() {
	for _, n := range s.requests {
		n.Store(0)
	}
	for _, n := range []*atomic.Int64{&s.unauthorized, &s.rateLimited, &s.serverErrors, &s.gatewayBusy, &s.dropped, &s.pending} {
		n.Store(0)
	}
}
