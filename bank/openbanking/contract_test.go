package openbanking_test

import (
	"testing"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/bank/banktest"
	"github.com/settle-dev/settle/bank/openbanking"
	"github.com/settle-dev/settle/pipeline"
)

// dialect describes the adapter to the contract suite. The sandbox answers
// its error fault with rsp_code A0001: nothing done, a transient class.
var dialect = banktest.Dialect{
	Name: "openbanking",
	New: func(c banktest.Conn) (pipeline.Bank, error) {
		return openbanking.New(openbanking.Config{Config: bankhttp.Config{Name: "sandbox", BaseURL: c.BaseURL, Token: c.Token, OAuth: c.OAuth, TLS: c.TLS,
			Timeout: c.Timeout, HTTPClient: c.HTTPClient, Now: c.Now}})
	},
	JournalKey: openbanking.BankTranID,
	ErrorFault: pipeline.ClassTransient,
}

func TestContract(t *testing.T) { banktest.Run(t, dialect) }

func TestFixtures(t *testing.T) { banktest.RunFixtures(t, dialect, "testdata/fixtures") }
