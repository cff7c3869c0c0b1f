package banksim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// defaultProcessingDelay is how long a "processing" transfer stays pending
// when nobody asks for its status.
const defaultProcessingDelay = 2 * time.Second

// Faults is the fault injection of the dialect endpoints (transfers, status,
// balances, transactions); the /sandbox endpoints never see faults. The zero
// value injects nothing. Rates are probabilities from 0 to 1.
type Faults struct {
	// LatencyMS delays every dialect answer by this many milliseconds.
	LatencyMS int `json:"latency_ms,omitempty"`
	// ErrorRate answers HTTP 500 without doing anything.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// TimeoutAfterApplyRate applies a transfer, then closes the connection
	// without an answer.
	TimeoutAfterApplyRate float64 `json:"timeout_after_apply_rate,omitempty"`
	// ProcessingRate answers a new transfer with status "pending"; it is
	// applied or refused when its status is asked, or after the processing
	// delay.
	ProcessingRate float64 `json:"processing_rate,omitempty"`
	// ProcessingDelayMS is how long a pending transfer waits at most, by the
	// server's clock; 0 means 2000.
	ProcessingDelayMS int `json:"processing_delay_ms,omitempty"`
	// RateLimitRPS lets this many dialect requests a second through a token
	// bucket (burst: the same number, at least 1) and answers the rest 429
	// with Retry-After; 0 means no limit.
	RateLimitRPS float64 `json:"rate_limit_rps,omitempty"`
	// ForgetRefusals makes the bank forget a key it refused: the same key
	// sent again is processed anew and may move money, as a bank that keeps
	// only the keys it applied may do. It draws nothing from the generator.
	ForgetRefusals bool `json:"forget_refusals,omitempty"`
	// Seed seeds the generator the fault decisions are drawn from: the same
	// seed and the same requests in the same order give the same faults.
	Seed int64 `json:"seed,omitempty"`
}

func (f Faults) validate() error {
	rates := []struct {
		name string
		v    float64
	}{{"error_rate", f.ErrorRate}, {"timeout_after_apply_rate", f.TimeoutAfterApplyRate}, {"processing_rate", f.ProcessingRate}}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("%w: %s must be between 0 and 1", errInvalid, r.name)
		}
	}
	switch {
	case f.LatencyMS < 0 || f.LatencyMS > 60_000:
		return fmt.Errorf("%w: latency_ms must be between 0 and 60000", errInvalid)
	case f.ProcessingDelayMS < 0 || f.ProcessingDelayMS > 3_600_000:
		return fmt.Errorf("%w: processing_delay_ms must be between 0 and 3600000", errInvalid)
	case !(f.RateLimitRPS >= 0 && f.RateLimitRPS <= 1_000_000):
		return fmt.Errorf("%w: rate_limit_rps must be between 0 and 1000000", errInvalid)
	}
	return nil
}

// decision is what the faults do to one dialect request.
type decision struct {
	latency        time.Duration
	limited        bool          // answer 429
	retryAfter     time.Duration // with a 429
	fail           bool          // answer 500 and do nothing
	processing     bool          // answer a new transfer "pending"
	pendingFor     time.Duration // with processing
	dropAfterApply bool          // apply, then close the connection
}

// injector draws fault decisions in request order.
type injector struct {
	mu     sync.Mutex
	now    func() time.Time
	cfg    Faults
	rng    *rand.Rand
	tokens float64
	last   time.Time
}

func newInjector(now func() time.Time) *injector {
	in := &injector{now: now}
	in.set(Faults{})
	return in
}

// set replaces the faults and restarts the generator from the seed.
func (in *injector) set(f Faults) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cfg = f
	in.rng = rand.New(rand.NewPCG(uint64(f.Seed), uint64(f.Seed)^0x5e771e))
	in.tokens = max(1, f.RateLimitRPS)
	in.last = in.now()
}

func (in *injector) get() Faults {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg
}

// decide draws the faults of the next dialect request. It always draws the
// same number of values, so the sequence depends only on request order.
func (in *injector) decide() decision {
	in.mu.Lock()
	defer in.mu.Unlock()
	errDraw, procDraw, dropDraw := in.rng.Float64(), in.rng.Float64(), in.rng.Float64()
	d := decision{
		latency:        time.Duration(in.cfg.LatencyMS) * time.Millisecond,
		fail:           errDraw < in.cfg.ErrorRate,
		processing:     procDraw < in.cfg.ProcessingRate,
		pendingFor:     in.processingDelay(),
		dropAfterApply: dropDraw < in.cfg.TimeoutAfterApplyRate,
	}
	d.limited, d.retryAfter = in.takeToken()
	return d
}

func (in *injector) processingDelay() time.Duration {
	if in.cfg.ProcessingDelayMS == 0 {
		return defaultProcessingDelay
	}
	return time.Duration(in.cfg.ProcessingDelayMS) * time.Millisecond
}

// takeToken runs the token bucket; it reports whether the request is over
// the limit and, if so, how long to wait in whole seconds.
func (in *injector) takeToken() (limited bool, retryAfter time.Duration) {
	rps := in.cfg.RateLimitRPS
	if rps == 0 {
		return false, 0
	}
	if now := in.now(); now.After(in.last) {
		in.tokens = min(max(1, rps), in.tokens+now.Sub(in.last).Seconds()*rps)
		in.last = now
	}
	if in.tokens >= 1 {
		in.tokens--
		return false, 0
	}
	wait := math.Max(1, math.Ceil((1-in.tokens)/rps))
	return true, time.Duration(wait) * time.Second
}
