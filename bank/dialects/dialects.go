// Package dialects is the registry of the bank API dialects settle speaks
// (docs/bank-api.md). Per dialect it gives the adapter, how many accounts
// one balance call asks about, how a key of the bank's journal reads back
// into the engine's attempt key, and the statements reader when the dialect
// can list statements. Callers look a provider's dialect up here by name
// instead of switching on it; adding a dialect is adding an entry.
package dialects

import (
	"fmt"
	"strings"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

// Options are one provider's settings, whatever its dialect.
type Options struct {
	bankhttp.Config
	// Location is the time zone the bank dates transfers in, for the
	// dialects that date them (openbanking); nil means the dialect's own.
	Location *time.Location
}

// Dialect is what settle uses of one dialect.
type Dialect struct {
	// Name is what a provider's dialect key says.
	Name string
	// New builds a provider's adapter.
	New func(Options) (pipeline.Bank, error)
	// BatchSize is how many accounts one balance call asks about: what a
	// throttle and a poll budget count balance calls in.
	BatchSize int
	// AttemptKey reads a key of the bank's journal or statements back into
	// the engine's attempt key; false for keys that are not settle's.
	AttemptKey func(bankKey string) (string, bool)
	// Statements builds a provider's statements reader; nil when the
	// dialect cannot list statements (reconciliation then checks balances
	// only).
	Statements func(Options) (pipeline.Statements, error)
}

// all lists every dialect, in the order messages show them.
var all = []Dialect{
	{
		Name:       "rest",
		New:        func(o Options) (pipeline.Bank, error) { return rest.New(o.Config) },
		BatchSize:  rest.BatchSize,
		AttemptKey: rest.AttemptKey,
		Statements: func(o Options) (pipeline.Statements, error) {
			c, err := rest.New(o.Config)
			if err != nil {
				return nil, err
			}
			return c.Statements(), nil
		},
	},
	{
		Name: "openbanking",
		New: func(o Options) (pipeline.Bank, error) {
			return openbanking.New(openbanking.Config{Config: o.Config, Location: o.Location})
		},
		BatchSize:  openbanking.BatchSize,
		AttemptKey: openbanking.AttemptKey,
	},
}

// Names are the names of every dialect, in the order messages show them.
func Names() []string {
	names := make([]string, len(all))
	for i, d := range all {
		names[i] = d.Name
	}
	return names
}

// Lookup returns the dialect called name; for a name it does not know, an
// error that lists the supported ones.
func Lookup(name string) (Dialect, error) {
	for _, d := range all {
		if d.Name == name {
			return d, nil
		}
	}
	return Dialect{}, fmt.Errorf("dialect %q is not supported (supported: %s)", name, strings.Join(Names(), ", "))
}
