// Package crash turns the SETTLE_TEST_CRASH environment variable into a hook
// that kills the process at named points of a step's execution (and after
// a poll's settlements are written), with a
// seeded probability. The fault-injection suite runs `settle serve` with it;
// without the variable the hook does nothing.
//
//	SETTLE_TEST_CRASH="after_claim=0.01,after_bank_ok=0.02"
//	SETTLE_TEST_CRASH_SEED=42
package crash

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/settle-dev/settle/pipeline"
)

// Points are the names SETTLE_TEST_CRASH accepts.
var Points = []string{pipeline.PointAfterClaim, pipeline.PointAfterBankOK, pipeline.PointBeforeRecordCommit, pipeline.PointAfterRecordCommit,
	pipeline.PointAfterSettlementsCommit}

// ExitCode is what a crashed process exits with, as if killed by SIGKILL.
const ExitCode = 137

// Parse reads a crash spec ("point=probability,...") and a seed. An empty
// spec gives nil: no hook.
func Parse(spec, seed string) (func(point string), error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	probs := map[string]float64{}
	for _, item := range strings.Split(spec, ",") {
		name, p, ok := strings.Cut(strings.TrimSpace(item), "=")
		prob, err := strconv.ParseFloat(p, 64)
		if !ok || err != nil || prob < 0 || prob > 1 || !slices.Contains(Points, name) {
			return nil, fmt.Errorf("SETTLE_TEST_CRASH item %q: want point=probability with point one of %s and probability 0..1",
				item, strings.Join(Points, ", "))
		}
		probs[name] = prob
	}
	s, err := strconv.ParseUint(cmpOr(seed, "1"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("SETTLE_TEST_CRASH_SEED %q: want a whole number", seed)
	}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(s, s^0x5eed))
	return func(point string) {
		mu.Lock()
		hit := rng.Float64() < probs[point]
		mu.Unlock()
		if hit {
			fmt.Fprintf(os.Stderr, "settle: crash point %s: exiting %d\n", point, ExitCode)
			os.Exit(ExitCode)
		}
	}, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
