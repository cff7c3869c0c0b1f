package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

var audit = store.Audit{Actor: "ops", Command: "customers migrate", Reason: "move to the new bank"}

func addCustomer(t *testing.T, db *store.DB, ref, provider string) {
	t.Helper()
	if _, err := db.CreateCustomer(context.Background(), store.NewCustomer{
		ExternalRef: ref, HolderName: "Kim " + ref, Payout: pipeline.Payee{Account: "OWN-" + ref, Holder: "Kim " + ref},
		Provider: provider, VANumber: "VA-" + ref, Currency: "KRW",
	}); err != nil {
		t.Fatal(err)
	}
}

func newVA(c store.MigrationCandidate) (string, error) { return "N" + c.VANumber, nil }

func refs(ms []store.MigratedCustomer) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Ref)
	}
	return strings.Join(out, ",")
}

func TestMigrateCustomersInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	seedSettlement(t, db, "c0", 1_000_000, pipeline.Obligations{}) // c0 has an open settlement
	for i := 1; i <= 4; i++ {
		addCustomer(t, db, fmt.Sprintf("c%d", i), "sandbox")
	}
	req := store.MigrateRequest{To: "modern", Batch: 2, NewVA: newVA, Audit: audit}

	dry := req
	dry.DryRun = true
	out, err := db.MigrateCustomers(ctx, dry)
	if err != nil || refs(out.Moved) != "c1,c2" || len(out.Skipped) != 1 || out.Remaining != 5 || !out.DryRun {
		t.Fatalf("dry run: %+v %v", out, err)
	}
	if !strings.Contains(out.Skipped[0].Reason, "RUNNING") || out.Skipped[0].Ref != "c0" {
		t.Errorf("skip reason %+v: want the open settlement named", out.Skipped[0])
	}
	if audits, _ := db.ListAudit(ctx, "", 10); len(audits) != 0 {
		t.Fatalf("a dry run wrote %d audit rows", len(audits))
	}

	out, err = db.MigrateCustomers(ctx, req)
	if err != nil || refs(out.Moved) != "c1,c2" || out.Remaining != 3 {
		t.Fatalf("first batch: %+v %v", out, err)
	}
	m := out.Moved[0]
	if m.From != "sandbox" || m.To != "modern" || m.OldVA != "VA-c1" || m.NewVA != "NVA-c1" {
		t.Errorf("moved %+v", m)
	}
	c, err := db.GetCustomer(ctx, "c1")
	if err != nil || c.Provider != "modern" || c.VANumbers != "sandbox:VA-c1,modern:NVA-c1" {
		t.Fatalf("c1 after the move: %+v %v", c, err)
	}
	a, err := db.ListAudit(ctx, "customer:c1", 10)
	if err != nil || len(a) != 1 || !strings.Contains(string(a[0].After), `"provider": "modern"`) ||
		!strings.Contains(string(a[0].After), "superseded, still polled") || strings.Contains(string(a[0].After), "VA-c1") {
		t.Fatalf("audit of c1: %+v %v", a, err)
	}

	// The old VA stays a poll target, so a salary still paid into it is found.
	if ts, _ := db.PollTargets(ctx, 0, 100); !hasVA(ts, "VA-c1") || !hasVA(ts, "NVA-c1") {
		t.Errorf("poll targets after the move: %+v", ts)
	}

	// Only the VAs the bank knows: c4's is not open there.
	req.Opened = func(_ context.Context, nums []string) (map[string]bool, error) {
		return map[string]bool{"NVA-c3": true}, nil
	}
	out, err = db.MigrateCustomers(ctx, req)
	if err != nil || refs(out.Moved) != "c3" || out.Remaining != 2 {
		t.Fatalf("second batch: %+v %v", out, err)
	}
	if s := out.Skipped[len(out.Skipped)-1]; s.Ref != "c4" || !strings.Contains(s.Reason, "not open at modern") {
		t.Errorf("c4 skipped: %+v", s)
	}
	req.Opened = func(context.Context, []string) (map[string]bool, error) { return nil, errors.New("bank down") }
	if _, err := db.MigrateCustomers(ctx, req); err == nil || !strings.Contains(err.Error(), "bank down") {
		t.Errorf("a bank that cannot be asked: %v", err)
	}
	req.Opened = nil

	// A number that belongs to someone else is refused; moving back reuses
	// the VA the customer had.
	taken := req
	taken.NewVA = func(store.MigrationCandidate) (string, error) { return "NVA-c1", nil }
	out, err = db.MigrateCustomers(ctx, taken)
	if err != nil || len(out.Moved) != 0 || !strings.Contains(out.Skipped[1].Reason, "belongs to customer") {
		t.Fatalf("a taken number: %+v %v", out, err)
	}
	if a, err := db.ListAudit(ctx, "customer:"+out.Skipped[1].Ref, 1); err != nil || len(a) != 1 ||
		a[0].Outcome != store.AuditRefused || a[0].Detail != out.Skipped[1].Reason {
		t.Fatalf("audit of the skipped customer: %+v %v, want refused: %s", a, err, out.Skipped[1].Reason)
	}
	back := store.MigrateRequest{To: "sandbox", From: "modern", Batch: 10, NewVA: newVA, Audit: audit}
	out, err = db.MigrateCustomers(ctx, back)
	if err != nil || refs(out.Moved) != "c1,c2,c3" || out.Moved[0].NewVA != "VA-c1" {
		t.Fatalf("moving back: %+v %v", out, err)
	}
	if c, _ := db.GetCustomer(ctx, "c1"); c.Provider != "sandbox" || c.VANumbers != "sandbox:VA-c1,modern:NVA-c1" {
		t.Errorf("c1 moved back: %+v", c)
	}
	if _, err := db.MigrateCustomers(ctx, store.MigrateRequest{To: "x", NewVA: newVA}); !errors.Is(err, store.ErrRefused) {
		t.Errorf("no reason: %v", err)
	}
}

func hasVA(ts []store.PollTarget, number string) bool {
	for _, t := range ts {
		if t.Number == number {
			return true
		}
	}
	return false
}

func TestPaydaySources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	addCustomer(t, db, "p1", "sandbox")
	p, err := db.GetCustomerPayday(ctx, "p1")
	if err != nil || p.Effective != 0 || p.Source != "unknown" {
		t.Fatalf("new customer: %+v %v", p, err)
	}
	acme := "ACME"
	if n, err := db.SetEmployerPayday(ctx, acme, 25, audit); err != nil || n != 0 {
		t.Fatalf("employer: %d %v", n, err)
	}
	if p, err = db.SetCustomerPayday(ctx, "p1", store.PaydayPatch{Employer: &acme}, audit); err != nil || p.Effective != 25 || p.Source != "employer" {
		t.Fatalf("with an employer: %+v %v", p, err)
	}
	ten := 10
	if p, _ = db.SetCustomerPayday(ctx, "p1", store.PaydayPatch{Payday: &ten}, audit); p.Effective != 10 || p.Source != "customer" {
		t.Errorf("own payday: %+v", p)
	}
	zero, none := 0, ""
	if p, _ = db.SetCustomerPayday(ctx, "p1", store.PaydayPatch{Payday: &zero, Employer: &none}, audit); p.Effective != 0 || p.Employer != "" {
		t.Errorf("cleared: %+v", p)
	}
	bad := 32
	if _, err := db.SetCustomerPayday(ctx, "p1", store.PaydayPatch{Payday: &bad}, audit); !errors.Is(err, store.ErrRefused) {
		t.Errorf("payday 32: %v", err)
	}
	if _, err := db.SetCustomerPayday(ctx, "nobody", store.PaydayPatch{Payday: &ten}, audit); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown customer: %v", err)
	}
	if a, _ := db.ListAudit(ctx, "customer:p1", 10); len(a) != 4 || a[0].Outcome != store.AuditRefused {
		t.Errorf("%d audit rows for p1, want 3 applied and the refused payday 32 (%+v)", len(a), a)
	}
}

// The learned payday is the most frequent day of the last six deposits.
func TestLearnPaydays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	target, created := seedSettlement(t, db, "l1", 1_000_000, pipeline.Obligations{})
	learn := func(days ...string) int {
		t.Helper()
		if _, err := db.SQL().Exec(`DELETE FROM settlements WHERE id <> $1 AND customer_id = $2`, created.SettlementID, target.CustomerID); err != nil {
			t.Fatal(err)
		}
		for i, d := range days {
			// Rewrite the one settlement's date, then add finished copies.
			if i == 0 {
				if _, err := db.SQL().Exec(`UPDATE settlements SET created_at = $2::timestamptz WHERE id = $1`, created.SettlementID, d); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := db.SQL().Exec(`
				INSERT INTO settlements (customer_id, va_id, provider, amount, currency, repay, hold, fee, payout, status, created_at)
				SELECT customer_id, va_id, provider, amount, currency, repay, hold, fee, payout, 'SETTLED', $2::timestamptz
				  FROM settlements WHERE id = $1`, created.SettlementID, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.LearnPaydays(ctx, []int64{target.CustomerID}, "Asia/Seoul"); err != nil {
			t.Fatal(err)
		}
		p, err := db.GetCustomerPayday(ctx, "l1")
		if err != nil || p.LearnedPayday == nil {
			t.Fatalf("learned: %+v %v", p, err)
		}
		return *p.LearnedPayday
	}
	if d := learn("2026-08-25T10:00:00+09:00", "2026-09-25T10:00:00+09:00", "2026-10-23T10:00:00+09:00"); d != 25 {
		t.Errorf("learned %d, want 25", d)
	}
	if d := learn("2026-10-24T23:30:00Z"); d != 25 { // 08:30 on the 25th in Seoul
		t.Errorf("learned %d, want 25 (days count in the configured zone)", d)
	}
	// A tie keeps what was learned before.
	if d := learn("2026-09-25T10:00:00+09:00", "2026-10-10T10:00:00+09:00"); d != 25 {
		t.Errorf("learned %d on a tie, want the earlier 25", d)
	}
}
