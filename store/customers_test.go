package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/settle-dev/settle/store"
)

// CustomerConflicts names, by index, every customer whose external
// reference or virtual account is registered already, reading only.
func TestCustomerConflicts(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	addCustomer(t, db, "c1", "sandbox") // VA-c1
	addCustomer(t, db, "c2", "sandbox") // VA-c2
	cs := []store.NewCustomer{
		{ExternalRef: "n1", Provider: "sandbox", VANumber: "VA-n1"}, // 0: new
		{ExternalRef: "c1", Provider: "sandbox", VANumber: "VA-c1"}, // 1: c1 again, its own VA
		{ExternalRef: "n2", Provider: "sandbox", VANumber: "VA-c2"}, // 2: c2's VA
		{ExternalRef: "c1", Provider: "sandbox", VANumber: "VA-c2"}, // 3: c1, with c2's VA
		{ExternalRef: "n3", Provider: "modern", VANumber: "VA-c2"},  // 4: the same number at another provider
		{}, // 5: nothing to match
	}
	got, err := db.CustomerConflicts(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Conflict{
		{Index: 1, Msg: `customer "c1" exists already (settle customers show c1; settle customers update changes it)`},
		{Index: 2, Msg: "virtual account sandbox:****A-c2 belongs to customer c2 already"},
		{Index: 3, Msg: `customer "c1" exists already (settle customers show c1; settle customers update changes it)`},
		{Index: 3, Msg: "virtual account sandbox:****A-c2 belongs to customer c2 already"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("conflicts:\n%+v\nwant\n%+v", got, want)
	}
	if n := count(t, db, `SELECT count(*) FROM customers`); n != 2 {
		t.Fatalf("%d customers after a check, want 2", n)
	}
}

// ListCustomers lists newest first, by status and provider, up to a limit.
func TestListCustomers(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	addCustomer(t, db, "c1", "sandbox")
	addCustomer(t, db, "c2", "modern")
	addCustomer(t, db, "c3", "sandbox")
	closed := store.CustomerClosed
	if _, err := db.UpdateCustomer(ctx, "c3", store.CustomerPatch{Status: &closed}, store.Audit{Actor: "ops", Command: "t", Reason: "left"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    store.CustomerFilter
		want []string
	}{
		{store.CustomerFilter{Limit: 10}, []string{"c3", "c2", "c1"}},
		{store.CustomerFilter{Limit: 2}, []string{"c3", "c2"}},
		{store.CustomerFilter{Provider: "sandbox", Limit: 10}, []string{"c3", "c1"}},
		{store.CustomerFilter{Status: store.CustomerActive, Provider: "sandbox", Limit: 10}, []string{"c1"}},
		{store.CustomerFilter{Status: store.CustomerSuspended, Limit: 10}, nil},
	} {
		rows, err := db.ListCustomers(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.Ref)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("list %+v: %v, want %v", c.f, got, c.want)
		}
	}
	rows, _ := db.ListCustomers(ctx, store.CustomerFilter{Provider: "modern", Limit: 1})
	if len(rows) != 1 || rows[0].VANumbers != "modern:VA-c2" || rows[0].Currency != "KRW" || rows[0].Status != store.CustomerActive {
		t.Fatalf("listed customer %+v", rows)
	}
}
