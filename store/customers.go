package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settle-dev/settle/pipeline"
)

// NewCustomer is a customer with one virtual account and its obligations.
type NewCustomer struct {
	ExternalRef string
	HolderName  string
	Payout      pipeline.Payee
	PayoutBank  string
	Provider    string
	VANumber    string
	Currency    string
	Obligations pipeline.Obligations
}

// ErrCustomerExists is returned by CreateCustomer when the external ref or
// the virtual account is already registered.
var ErrCustomerExists = errors.New("customer or virtual account already exists")

// CreateCustomer registers a customer, its virtual account and obligations
// in one transaction and returns the customer ID.
func (db *DB) CreateCustomer(ctx context.Context, c NewCustomer) (int64, error) {
	var id int64
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		id, err = createCustomer(ctx, tx, c)
		return err
	})
	return id, err
}

func createCustomer(ctx context.Context, tx *sqlx.Tx, c NewCustomer) (int64, error) {
	if err := c.Obligations.Validate(); err != nil {
		return 0, fmt.Errorf("customer %s: %w", c.ExternalRef, err)
	}
	var id int64
	err := tx.QueryRowxContext(ctx, `
		INSERT INTO customers (external_ref, holder_name, payout_bank_code, payout_account, payout_holder_name, provider)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		c.ExternalRef, c.HolderName, c.PayoutBank, c.Payout.Account, c.Payout.Holder, c.Provider).Scan(&id)
	if err == nil {
		_, err = tx.ExecContext(ctx, `
			INSERT INTO virtual_accounts (customer_id, provider, number, currency) VALUES ($1, $2, $3, $4)`,
			id, c.Provider, c.VANumber, c.Currency)
	}
	if err == nil {
		ob := c.Obligations
		_, err = tx.ExecContext(ctx, `
			INSERT INTO obligations (customer_id, currency, outstanding, hold_amount, fee_fixed, fee_bps)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, c.Currency, ob.Outstanding, ob.Hold, ob.FeeFixed, ob.FeeBPS)
	}
	if isUniqueViolation(err, "customers_external_ref_key") || isUniqueViolation(err, "virtual_accounts_provider_number_key") {
		return 0, fmt.Errorf("customer %s: %w", c.ExternalRef, ErrCustomerExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create customer %s: %w", c.ExternalRef, err)
	}
	return id, nil
}

// CustomerObligations returns a customer's current obligations.
func (db *DB) CustomerObligations(ctx context.Context, customerID int64) (pipeline.Obligations, error) {
	var ob pipeline.Obligations
	err := db.x.QueryRowxContext(ctx, `
		SELECT outstanding, hold_amount, fee_fixed, fee_bps FROM obligations WHERE customer_id = $1`, customerID).
		Scan(&ob.Outstanding, &ob.Hold, &ob.FeeFixed, &ob.FeeBPS)
	if err != nil {
		return ob, fmt.Errorf("obligations of customer %d: %w", customerID, err)
	}
	return ob, nil
}

// CustomerStatus is whether a customer is settled (customers.status).
type CustomerStatus string

const (
	// CustomerActive is polled and settled.
	CustomerActive CustomerStatus = "ACTIVE"
	// CustomerSuspended is not polled.
	CustomerSuspended CustomerStatus = "SUSPENDED"
	// CustomerClosed is not polled, not moved to another provider, and not
	// paid by a replay.
	CustomerClosed CustomerStatus = "CLOSED"
)

// CustomerStatuses lists every customer status.
var CustomerStatuses = []CustomerStatus{CustomerActive, CustomerSuspended, CustomerClosed}

// CustomerView is a customer as operators see it.
type CustomerView struct {
	ID            int64          `db:"id" json:"id"`
	Ref           string         `db:"external_ref" json:"ref"`
	HolderName    string         `db:"holder_name" json:"holder_name"`
	PayoutBank    string         `db:"payout_bank_code" json:"payout_bank_code,omitempty"`
	PayoutAccount string         `db:"payout_account" json:"payout_account"`
	PayoutHolder  string         `db:"payout_holder_name" json:"payout_holder_name"`
	Provider      string         `db:"provider" json:"provider"`
	Status        CustomerStatus `db:"status" json:"status"`
	VANumbers     string         `db:"va_numbers" json:"va_numbers"`
	Currency      string         `db:"currency" json:"currency"`
	Outstanding   int64          `db:"outstanding" json:"outstanding"`
	Hold          int64          `db:"hold_amount" json:"hold"`
	FeeFixed      int64          `db:"fee_fixed" json:"fee_fixed"`
	FeeBPS        int64          `db:"fee_bps" json:"fee_bps"`
	RepaidTotal   int64          `db:"repaid_total" json:"repaid_total"`
	HeldTotal     int64          `db:"held_total" json:"held_total"`
}

// Obligations returns the customer's obligations for planning.
func (c CustomerView) Obligations() pipeline.Obligations {
	return pipeline.Obligations{Outstanding: c.Outstanding, Hold: c.Hold, FeeFixed: c.FeeFixed, FeeBPS: c.FeeBPS}
}

const customerViewSelect = `
	SELECT c.id, c.external_ref, c.holder_name, c.payout_bank_code, c.payout_account, c.payout_holder_name,
	       c.provider, c.status, o.currency, o.outstanding, o.hold_amount, o.fee_fixed, o.fee_bps,
	       o.repaid_total, o.held_total,
	       coalesce((SELECT string_agg(va.provider || ':' || va.number, ',' ORDER BY va.id)
	                   FROM virtual_accounts va WHERE va.customer_id = c.id), '') AS va_numbers
	  FROM customers c JOIN obligations o ON o.customer_id = c.id`

const customerViewQuery = customerViewSelect + `
	 WHERE c.external_ref = $1`

// CustomerFilter narrows ListCustomers. Zero fields match everything.
type CustomerFilter struct {
	Status   CustomerStatus
	Provider string
	Limit    int
}

// ListCustomers returns customers, newest first. Account numbers are as
// stored: mask them before showing them.
func (db *DB) ListCustomers(ctx context.Context, f CustomerFilter) ([]CustomerView, error) {
	out := []CustomerView{}
	err := db.x.SelectContext(ctx, &out, customerViewSelect+`
		 WHERE ($1 = '' OR c.status = $1) AND ($2 = '' OR c.provider = $2)
		 ORDER BY c.id DESC LIMIT $3`, string(f.Status), f.Provider, max(f.Limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	return out, nil
}

// GetCustomer returns one customer by external reference.
func (db *DB) GetCustomer(ctx context.Context, ref string) (CustomerView, error) {
	var c CustomerView
	err := db.x.GetContext(ctx, &c, customerViewQuery, ref)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("customer %q: %w", ref, ErrNotFound)
	}
	return c, err
}

// CustomerPatch names the fields an operator changes; nil fields stay.
type CustomerPatch struct {
	PayoutAccount *string
	PayoutHolder  *string
	Status        *CustomerStatus
	Outstanding   *int64
	Hold          *int64
	FeeFixed      *int64
	FeeBPS        *int64
}

// UpdateCustomer applies a patch and writes its audit row in one
// transaction. Settlements already planned keep their amounts; a FAILED
// PAYOUT picks up a new payout account when it is replayed.
func (db *DB) UpdateCustomer(ctx context.Context, ref string, p CustomerPatch, a Audit) (CustomerView, error) {
	var after CustomerView
	err := db.audited(ctx, a, "customer:"+ref, false, func(tx *sqlx.Tx, rec *auditRecord) error {
		var before CustomerView
		if err := tx.GetContext(ctx, &before, customerViewQuery+` FOR UPDATE OF c, o`, ref); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("customer %q: %w", ref, ErrNotFound)
		} else if err != nil {
			return err
		}
		rec.before = maskedView(before)
		ob := before.Obligations()
		setInt(&ob.Outstanding, p.Outstanding)
		setInt(&ob.Hold, p.Hold)
		setInt(&ob.FeeFixed, p.FeeFixed)
		setInt(&ob.FeeBPS, p.FeeBPS)
		if err := ob.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrRefused, err)
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE customers SET payout_account = coalesce($2, payout_account), payout_holder_name = coalesce($3, payout_holder_name),
			       status = coalesce($4, status), updated_at = now() WHERE id = $1`,
			before.ID, p.PayoutAccount, p.PayoutHolder, p.Status); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE obligations SET outstanding = $2, hold_amount = $3, fee_fixed = $4, fee_bps = $5, updated_at = now()
			 WHERE customer_id = $1`, before.ID, ob.Outstanding, ob.Hold, ob.FeeFixed, ob.FeeBPS); err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &after, customerViewQuery, ref); err != nil {
			return err
		}
		rec.after = maskedView(after)
		return nil
	})
	if err != nil {
		return CustomerView{}, fmt.Errorf("update customer %q: %w", ref, err)
	}
	return after, nil
}

func setInt(dst *int64, v *int64) {
	if v != nil {
		*dst = *v
	}
}

// maskedView is a customer for the audit log: the payout account masked.
func maskedView(c CustomerView) CustomerView {
	c.PayoutAccount = pipeline.AccountNumber(c.PayoutAccount).Masked()
	return c
}

// Conflict is a customer that cannot be created because one registered
// already holds its external reference or its virtual account.
type Conflict struct {
	Index int    // in the list checked
	Msg   string // what clashes, the virtual account masked
}

// CustomerConflicts checks every customer against those registered
// already, reading only, and returns each clash: an external reference
// taken, a virtual account (provider and number) that belongs to another
// customer. A customer may clash twice. Empty fields match nothing.
func (db *DB) CustomerConflicts(ctx context.Context, cs []NewCustomer) ([]Conflict, error) {
	refs, provs, vas := make([]string, len(cs)), make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		refs[i], provs[i], vas[i] = c.ExternalRef, c.Provider, c.VANumber
	}
	var found []struct {
		Index   int    `db:"idx"`
		Ref     string `db:"ref"`
		Taken   bool   `db:"taken"`
		VA      string `db:"va"`
		VAOwner string `db:"va_owner"`
	}
	err := db.x.SelectContext(ctx, &found, `
		SELECT (f.i - 1)::int AS idx, f.ref, c.id IS NOT NULL AS taken, f.provider || ':' || f.va AS va,
		       coalesce(vc.external_ref, '') AS va_owner
		  FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS f(ref, provider, va, i)
		  LEFT JOIN customers c ON c.external_ref = f.ref
		  LEFT JOIN virtual_accounts v ON v.provider = f.provider AND v.number = f.va
		  LEFT JOIN customers vc ON vc.id = v.customer_id
		 WHERE c.id IS NOT NULL OR vc.id IS NOT NULL
		 ORDER BY f.i`, pq.Array(refs), pq.Array(provs), pq.Array(vas))
	if err != nil {
		return nil, fmt.Errorf("check customers against those registered: %w", err)
	}
	var out []Conflict
	for _, f := range found {
		if f.Taken {
			out = append(out, Conflict{f.Index, fmt.Sprintf("customer %q exists already (settle customers show %s; "+
				"settle customers update changes it)", f.Ref, f.Ref)})
		}
		if f.VAOwner != "" && f.VAOwner != f.Ref {
			prov, num, _ := strings.Cut(f.VA, ":")
			out = append(out, Conflict{f.Index, fmt.Sprintf("virtual account %s:%s belongs to customer %s already",
				prov, pipeline.AccountNumber(num).Masked(), f.VAOwner)})
		}
	}
	return out, nil
}

// ImportCustomers creates every customer or, if any one cannot be created,
// none. It returns the index (in cs) of the first that could not be; a
// customer that exists already, or whose obligations are not valid, refuses
// the import.
func (db *DB) ImportCustomers(ctx context.Context, cs []NewCustomer, a Audit) (bad int, err error) {
	bad = -1
	err = db.audited(ctx, a, "customers", false, func(tx *sqlx.Tx, rec *auditRecord) error {
		for i, c := range cs {
			if _, err := createCustomer(ctx, tx, c); err != nil {
				bad = i
				if errors.Is(err, ErrCustomerExists) || errors.Is(err, pipeline.ErrInvalidObligations) {
					return fmt.Errorf("%w: %w", ErrRefused, err)
				}
				return err
			}
		}
		rec.after = map[string]int{"imported": len(cs)}
		return nil
	})
	return bad, err
}
