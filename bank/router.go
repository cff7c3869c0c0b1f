// Package bank is settle's facade over bank providers: the Router picks the
// adapter that moves a customer's money by provider name. The adapters live
// in subpackages, one per dialect of docs/bank-api.md (rest, openbanking),
// and so do the sandbox bank (banksim), the per-provider rate limit and
// circuit breaker that wraps an adapter (throttle) and the contract suite
// every adapter passes (banktest).
package bank

import (
	"fmt"
	"sort"
	"strings"

	"github.com/settle-dev/settle/pipeline"
)

// Router maps provider names to their adapters. It implements
// pipeline.Banks.
type Router struct {
	banks map[string]pipeline.Bank
}

var _ pipeline.Banks = (*Router)(nil)

// NewRouter returns a router over the named adapters.
func NewRouter(banks map[string]pipeline.Bank) *Router {
	return &Router{banks: banks}
}

// Bank implements pipeline.Banks.
func (r *Router) Bank(provider string) (pipeline.Bank, error) {
	b, ok := r.banks[provider]
	if !ok {
		return nil, fmt.Errorf("no bank provider named %q (configured: %s): add it under providers in the config", provider, strings.Join(r.names(), ", "))
	}
	return b, nil
}

func (r *Router) names() []string {
	out := make([]string, 0, len(r.banks))
	for n := range r.banks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
