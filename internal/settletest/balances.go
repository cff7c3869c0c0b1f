package settletest

import (
	"context"
	"strings"
	"testing"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/store"
)

// CheckBankBalances fails the test unless the ledger holds, for every
// account of the bank it has postings for, exactly what the bank shows in
// that account: the ledger mirrors the bank, not only its own sums. The
// providers are those served by this one bank; an account the engine
// reaches through several of them (a shared fee account) holds their sum.
// Call it when no step is under way and every deposit was found, and only
// on a sandbox whose accounts started empty.
func CheckBankBalances(t testing.TB, db *store.DB, bank *banksim.Client, providers ...string) {
	t.Helper()
	ctx := context.Background()
	ledger := map[string]int64{}
	for _, provider := range providers {
		rows, err := db.SQL().QueryContext(ctx, `
			SELECT account, sum(amount) FROM postings WHERE account LIKE $1 || ':%' GROUP BY account`, provider)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var account string
			var amount int64
			if err := rows.Scan(&account, &amount); err != nil {
				t.Fatal(err)
			}
			ledger[strings.TrimPrefix(account, provider+":")] += amount
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if len(ledger) == 0 {
		t.Fatalf("the ledger has no account at %v to compare", providers)
	}
	for id, want := range ledger {
		a, err := bank.Account(ctx, id)
		if err != nil {
			t.Fatalf("bank account %s: %v", id, err)
		}
		if a.Balance != want {
			t.Errorf("account %s: the bank holds %d, the ledger %d", id, a.Balance, want)
		}
	}
}
