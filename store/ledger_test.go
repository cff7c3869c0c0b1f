package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// The ledger mirrors each bank account through operator actions (ADR
// 0005): a deposit left in its VA by a cancelled or compensated settlement
// is taken over by the VA's next settlement, never counted again.

var operatorAudit = store.Audit{Actor: "ops", Command: "test", Reason: "ledger test"}

// ledgerBalance is the sum of an account's postings.
func ledgerBalance(t *testing.T, db *store.DB, account string) int {
	t.Helper()
	return count(t, db, `SELECT coalesce(sum(amount), 0) FROM postings WHERE account = $1`, account)
}

// settleAgain plans and writes a settlement of the VA for the balance the
// bank shows now, as the next poll does.
func settleAgain(t *testing.T, db *store.DB, va string, balance int64) (store.Created, error) {
	t.Helper()
	target := findTarget(t, db, va)
	plan, err := pipeline.BuildPlan(pipeline.Money{Amount: balance, Currency: "KRW"}, target.Obligations(), pipeline.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	return db.CreateSettlement(context.Background(), store.NewSettlement{
		Target: target, Plan: plan, Steps: plan.Steps(target.Number, accounts, target.Payee())})
}

// cancelledDeposit seeds a customer whose settlement of the deposit was
// cancelled before any money moved: the money is in the VA, at the bank and
// in the ledger.
func cancelledDeposit(t *testing.T, db *store.DB, ref string, deposit int64) (store.PollTarget, store.Created) {
	t.Helper()
	target, created := seedSettlement(t, db, ref, deposit, pipeline.Obligations{})
	if _, err := db.Cancel(context.Background(), created.SettlementID, operatorAudit, false); err != nil {
		t.Fatal(err)
	}
	return target, created
}

// runToEnd completes every step from head on and returns how many ran.
func runToEnd(t *testing.T, db *store.DB, head int64) int {
	t.Helper()
	n := 0
	for next := head; next != 0; n++ {
		next = completeStep(t, db, claimStep(t, db, next, time.Minute)).ID
	}
	return n
}

// A cancelled settlement's deposit stays in the VA; the next settlement of
// the VA settles it without a second deposit journal: after its SWEEP the
// ledger's VA is empty, as the bank's is, and payroll gave the money once.
func TestCancelledDepositIsTakenOverNotCountedAgain(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	target, first := seedSettlement(t, db, "c1", 1_000_000, pipeline.Obligations{})
	va := pipeline.LedgerAccount(target.Provider, target.Number)
	if _, err := db.Cancel(ctx, first.SettlementID, operatorAudit, false); err != nil {
		t.Fatal(err)
	}
	if got := ledgerBalance(t, db, va); got != 1_000_000 {
		t.Fatalf("after the cancel the ledger holds %d in the VA, want the deposit, as the bank does", got)
	}
	again, err := settleAgain(t, db, target.Number, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if again.LedgerHolds != 1_000_000 {
		t.Errorf("the new settlement took over %d, want the cancelled deposit", again.LedgerHolds)
	}
	runToEnd(t, db, again.HeadStepID)
	if got := ledgerBalance(t, db, pipeline.ExternalPayroll); got != -1_000_000 {
		t.Errorf("payroll gave %d in the ledger, want -1000000: the salary arrived once", got)
	}
	if got := ledgerBalance(t, db, va); got != 0 {
		t.Errorf("the ledger holds %d in the swept VA, want 0 as at the bank", got)
	}
	if n := count(t, db, `SELECT count(*) FROM journals WHERE kind = 'deposit'`); n != 1 {
		t.Errorf("%d deposit journals for one bank credit", n)
	}
	mustVerify(t, db)
}

// Compensation returns the money to the VA; with a second salary landed
// meanwhile the next settlement settles both and posts only the new one.
func TestCompensatedDepositIsTakenOverWithTheNewMoney(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	target, first := seedSettlement(t, db, "c1", 500_000, pipeline.Obligations{Outstanding: 300_000})
	va := pipeline.LedgerAccount(target.Provider, target.Number)
	next := first.HeadStepID
	for range 2 { // SWEEP, REPAY
		next = completeStep(t, db, claimStep(t, db, next, time.Minute)).ID
	}
	refuse(t, db, claimStep(t, db, next, time.Minute), pipeline.RefusedAccountFrozen)
	out, err := db.Compensate(ctx, first.SettlementID, operatorAudit, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := runToEnd(t, db, out.Enqueue.ID); n != 2 {
		t.Fatalf("%d reversals ran, want 2", n)
	}
	if got := ledgerBalance(t, db, va); got != 500_000 {
		t.Fatalf("after the compensation the ledger holds %d in the VA, want the deposit back", got)
	}
	again, err := settleAgain(t, db, target.Number, 700_000) // 200,000 more arrived
	if err != nil {
		t.Fatal(err)
	}
	if again.LedgerHolds != 500_000 {
		t.Errorf("took over %d, want the 500000 returned", again.LedgerHolds)
	}
	if got := ledgerBalance(t, db, pipeline.ExternalPayroll); got != -700_000 {
		t.Errorf("payroll gave %d, want -700000: two salaries, each once", got)
	}
	runToEnd(t, db, again.HeadStepID)
	if got := ledgerBalance(t, db, va); got != 0 {
		t.Errorf("the ledger holds %d in the swept VA, want 0", got)
	}
	mustVerify(t, db)
}

// A bank balance below what the ledger holds in the VA is not settled:
// money left the VA outside settle, or the ledger is wrong.
func TestBalanceBelowTheLedgerIsNotSettled(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	target, _ := cancelledDeposit(t, db, "c1", 1_000_000)
	got, err := settleAgain(t, db, target.Number, 400_000)
	if !errors.Is(err, store.ErrBelowLedger) || !got.BelowLedger() || got.LedgerHolds != 1_000_000 {
		t.Fatalf("settle 400000 over a ledger of 1000000: %+v, %v; want ErrBelowLedger", got, err)
	}
	if n := count(t, db, `SELECT count(*) FROM settlements`); n != 1 {
		t.Errorf("%d settlements, want only the cancelled one", n)
	}
	if n := count(t, db, `SELECT settle_version FROM virtual_accounts WHERE number = $1`, target.Number); n != int(target.SettleVersion)+1 {
		t.Errorf("settle version %d: the refused balance moved it", n)
	}
	mustVerify(t, db)
}

// The database itself refuses a deposit journal for money the ledger
// already holds in the VA, whoever writes it.
func TestTheDatabaseRefusesADepositCountedTwice(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	target, first := cancelledDeposit(t, db, "c1", 1_000_000)
	_, err := db.SQL().ExecContext(ctx, `
		WITH s AS (
			INSERT INTO settlements (customer_id, va_id, provider, amount, currency, repay, hold, fee, payout)
			SELECT customer_id, va_id, provider, amount, currency, repay, hold, fee, payout FROM settlements WHERE id = $1
			RETURNING id),
		j AS (INSERT INTO journals (kind, settlement_id) SELECT 'deposit', id FROM s RETURNING id)
		INSERT INTO postings (journal_id, account, amount, currency)
		SELECT j.id, p.account, p.amount, 'KRW' FROM j, (VALUES ($2, -1000000), ($3, 1000000)) AS p(account, amount)`,
		first.SettlementID, pipeline.ExternalPayroll, pipeline.LedgerAccount(target.Provider, target.Number))
	if err == nil || !strings.Contains(err.Error(), "a deposit is counted once") {
		t.Fatalf("a second deposit journal for the cancelled money: err = %v, want the database's refusal", err)
	}
	if n := count(t, db, `SELECT count(*) FROM settlements`); n != 1 {
		t.Errorf("%d settlements after the refused write", n)
	}
}

// Verify checks each account against what was recorded, not only sums: a
// deposit counted twice (as a database from before the refusal may hold)
// and a journal posted to another account than its transfer moved.
func TestVerifyFindsTheLedgerOffTheMovements(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	target, _ := cancelledDeposit(t, db, "c1", 1_000_000)
	// What settle wrote before the ledger took deposits over: a new
	// settlement posting the whole balance again.
	for _, q := range []string{
		`ALTER TABLE journals DISABLE TRIGGER journals_deposit_counted_once`,
		`ALTER TABLE postings DISABLE TRIGGER postings_append_only`,
	} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	again, err := settleAgain(t, db, target.Number, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `
		WITH j AS (INSERT INTO journals (kind, settlement_id) VALUES ('deposit', $1) RETURNING id)
		INSERT INTO postings (journal_id, account, amount, currency)
		SELECT j.id, p.account, p.amount, 'KRW' FROM j, (VALUES ($2, -1000000), ($3, 1000000)) AS p(account, amount)`,
		again.SettlementID, pipeline.ExternalPayroll, pipeline.LedgerAccount(target.Provider, target.Number)); err != nil {
		t.Fatal(err)
	}
	runToEnd(t, db, again.HeadStepID)
	// The PAYOUT's journal credits another account than its transfer paid.
	if _, err := db.SQL().ExecContext(ctx, `
		UPDATE postings p SET account = 'sandbox:ELSEWHERE'
		  FROM journals j JOIN steps st ON st.id = j.step_id
		 WHERE p.journal_id = j.id AND st.settlement_id = $1 AND st.kind = 'PAYOUT' AND p.amount > 0`, again.SettlementID); err != nil {
		t.Fatal(err)
	}
	vs, err := db.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, v := range vs {
		got[v.Check] = append(got[v.Check], v.Detail)
	}
	if d := got["va_ledger_mirrors_settlements"]; len(d) != 1 || !strings.Contains(d[0], "the ledger holds 1000000 KRW") {
		t.Errorf("va_ledger_mirrors_settlements: %q; want the VA holding the counted-twice deposit", d)
	}
	// The VA and payroll (the deposit twice), the payout account and the
	// account the journal named instead.
	if d := got["ledger_matches_movements"]; len(d) != 4 || !strings.Contains(strings.Join(d, "\n"), "sandbox:****HERE holds 1") {
		t.Errorf("ledger_matches_movements: %q; want four accounts off", d)
	}
	if len(got) != 2 {
		t.Errorf("violations %+v; want only the two per-account checks", vs)
	}
}
