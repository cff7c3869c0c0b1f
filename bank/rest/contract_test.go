package rest_test

import (
	"testing"

	"github.com/settle-dev/settle/bank/banktest"
	"github.com/settle-dev/settle/bank/rest"
	"github.com/settle-dev/settle/pipeline"
)

// dialect describes the adapter to the contract suite. The sandbox answers
// its error fault with HTTP 500: the outcome is unknown.
var dialect = banktest.Dialect{
	Name: "rest",
	New: func(c banktest.Conn) (pipeline.Bank, error) {
		return rest.New(rest.Config{Name: "sandbox", BaseURL: c.BaseURL, Token: c.Token, OAuth: c.OAuth, TLS: c.TLS,
			Timeout: c.Timeout, HTTPClient: c.HTTPClient, Now: c.Now})
	},
	ErrorFault: pipeline.ClassUnknown,
}

func TestContract(t *testing.T) { banktest.Run(t, dialect) }

func TestFixtures(t *testing.T) { banktest.RunFixtures(t, dialect, "testdata/fixtures") }
