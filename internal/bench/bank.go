package bench

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/web"
)

// bankToken is the sandbox bank's token inside one run.
const bankToken = "settle-bench-bank-token"

// bankServer is the sandbox bank on a 127.0.0.1 port of the bench process.
type bankServer struct {
	srv    *http.Server
	url    string
	client *banksim.Client
}

// startBank serves a new sandbox bank. A latency distribution is applied by
// a wrapper in front of the dialect endpoints (the sandbox's own latency
// fault is fixed); a fixed latency and the rate limit are the sandbox's own
// faults, set with setFaults.
func startBank(lat Latency, seed uint64) (*bankServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var h http.Handler = banksim.New(banksim.Options{Token: bankToken})
	if !lat.Fixed() {
		h = &latencyHandler{next: h, lat: lat, rng: rand.New(rand.NewPCG(seed, 0x1a7e))}
	}
	b := &bankServer{srv: web.NewServer(h), url: "http://" + ln.Addr().String()}
	go func() { _ = b.srv.Serve(ln) }()
	b.client = banksim.NewClient(b.url, bankToken, pooledClient())
	return b, nil
}

// sandboxFaults are the sandbox's own faults for a run: the fixed latency,
// the rate limit and the fault rates, drawn from the run's seed.
func sandboxFaults(o Options) banksim.Faults {
	f := banksim.Faults{RateLimitRPS: o.RateLimit, ErrorRate: o.Faults.ErrorRate,
		TimeoutAfterApplyRate: o.Faults.ApplyThenDrop, ProcessingRate: o.Faults.Processing, Seed: int64(o.Seed)}
	if o.Latency.Fixed() {
		f.LatencyMS = int(o.Latency.P50 / time.Millisecond)
	}
	return f
}

// setFaults sets the sandbox's faults.
func (b *bankServer) setFaults(ctx context.Context, f banksim.Faults) error {
	return b.client.SetFaults(ctx, f)
}

func (b *bankServer) close() {
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = b.srv.Close()
	}
}

// pooledClient keeps enough idle connections for the bench's parallel
// sandbox calls (the default of 2 per host would open and close one per
// call).
func pooledClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// latencyHandler delays the dialect endpoints by a log-normal draw whose
// median is lat.P50 and 99th percentile lat.P99; /sandbox endpoints are
// not delayed.
type latencyHandler struct {
	next http.Handler
	lat  Latency
	mu   sync.Mutex
	rng  *rand.Rand
}

// z99 is the standard normal's 99th percentile.
const z99 = 2.3263478740408408

func (h *latencyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/sandbox/") {
		h.mu.Lock()
		d := h.lat.sample(h.rng.NormFloat64())
		h.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

// sample maps a standard normal draw to a delay of the distribution.
func (l Latency) sample(z float64) time.Duration {
	if l.Fixed() {
		return l.P50
	}
	sigma := math.Log(float64(l.P99)/float64(l.P50)) / z99
	d := float64(l.P50) * math.Exp(sigma*z)
	return time.Duration(min(d, float64(time.Minute)))
}
