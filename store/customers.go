package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

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
	if err := c.Obligations.Validate(); err != nil {
		return 0, fmt.Errorf("customer %s: %w", c.ExternalRef, err)
	}
	var id int64
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.QueryRowxContext(ctx, `
			INSERT INTO customers (external_ref, holder_name, payout_bank_code, payout_account, payout_holder_name, provider)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			c.ExternalRef, c.HolderName, c.PayoutBank, c.Payout.Account, c.Payout.Holder, c.Provider).Scan(&id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO virtual_accounts (customer_id, provider, number, currency) VALUES ($1, $2, $3, $4)`,
			id, c.Provider, c.VANumber, c.Currency); err != nil {
			return err
		}
		ob := c.Obligations
		_, err = tx.ExecContext(ctx, `
			INSERT INTO obligations (customer_id, currency, outstanding, hold_amount, fee_fixed, fee_bps)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, c.Currency, ob.Outstanding, ob.Hold, ob.FeeFixed, ob.FeeBPS)
		return err
	})
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
