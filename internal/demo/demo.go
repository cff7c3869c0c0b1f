// Package demo creates a demo data set: the engine's own accounts and a
// number of customers with virtual accounts, payout accounts and varied
// obligations, at the sandbox bank and in the database; then it pays
// salaries into their virtual accounts. `settle demo`, the end-to-end tests
// and the benchmark use it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/settle-dev/settle/bank/banksim"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Customer is one demo customer as created.
type Customer struct {
	Ref         string
	ID          int64
	VA          string
	Payout      string
	Obligations pipeline.Obligations
}

// Options shape the data set.
type Options struct {
	Provider string
	Currency string
	Accounts pipeline.Accounts
	// Customers is how many customers to create.
	Customers int
	// Prefix distinguishes data sets that share one sandbox bank.
	Prefix string
	// Seed makes obligations and salaries repeatable.
	Seed uint64
}

// Seeder creates and pays demo customers.
type Seeder struct {
	db   *store.DB
	bank *banksim.Client
	opt  Options
	rng  *rand.Rand
}

// NewSeeder returns a seeder.
func NewSeeder(db *store.DB, bank *banksim.Client, opt Options) *Seeder {
	return &Seeder{db: db, bank: bank, opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5e771e))}
}

// Seed creates the engine's accounts (if missing) and the customers. It is
// safe to run again: existing accounts and customers are kept.
func (s *Seeder) Seed(ctx context.Context) ([]Customer, error) {
	a := s.opt.Accounts
	for _, id := range []string{a.Collection, a.Lender, a.Holding, a.Fee} {
		if err := s.ensureAccount(ctx, id, "settle "+id); err != nil {
			return nil, err
		}
	}
	out := make([]Customer, 0, s.opt.Customers)
	for i := 1; i <= s.opt.Customers; i++ {
		c, err := s.customer(ctx, i)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *Seeder) customer(ctx context.Context, i int) (Customer, error) {
	c := Customer{
		Ref:         fmt.Sprintf("%scust-%05d", s.opt.Prefix, i),
		VA:          fmt.Sprintf("%sVA%08d", s.opt.Prefix, i),
		Payout:      fmt.Sprintf("%sOWN%08d", s.opt.Prefix, i),
		Obligations: s.obligations(),
	}
	holder := fmt.Sprintf("Customer %05d", i)
	if err := s.ensureAccount(ctx, c.VA, holder); err != nil {
		return c, err
	}
	if err := s.ensureAccount(ctx, c.Payout, holder); err != nil {
		return c, err
	}
	id, err := s.db.CreateCustomer(ctx, store.NewCustomer{
		ExternalRef: c.Ref, HolderName: holder, Payout: pipeline.Payee{Account: c.Payout, Holder: holder},
		Provider: s.opt.Provider, VANumber: c.VA, Currency: s.opt.Currency, Obligations: c.Obligations,
	})
	if errors.Is(err, store.ErrCustomerExists) {
		return c, nil
	}
	c.ID = id
	return c, err
}

// obligations draws a realistic mix: most customers repay a loan, some have
// money withheld, all pay a fee.
func (s *Seeder) obligations() pipeline.Obligations {
	var ob pipeline.Obligations
	if s.rng.IntN(10) < 8 {
		ob.Outstanding = int64(s.rng.IntN(60)+1) * 50_000 // 50,000 .. 3,000,000
	}
	if s.rng.IntN(10) < 2 {
		ob.Hold = int64(s.rng.IntN(10)+1) * 20_000
	}
	ob.FeeFixed = 500
	ob.FeeBPS = int64(s.rng.IntN(31)) // up to 0.3%
	return ob
}

// Salary draws a salary between 1,500,000 and 5,000,000 in steps of 10,000.
func (s *Seeder) Salary() int64 {
	return int64(s.rng.IntN(351)+150) * 10_000
}

// Pay credits amount to a customer's virtual account, as an employer would.
func (s *Seeder) Pay(ctx context.Context, c Customer, amount int64) error {
	if _, err := s.bank.Credit(ctx, c.VA, amount, "ACME PAYROLL"); err != nil {
		return fmt.Errorf("pay %s: %w", c.Ref, err)
	}
	return nil
}

// Pick returns a customer at random.
func (s *Seeder) Pick(cs []Customer) Customer { return cs[s.rng.IntN(len(cs))] }

func (s *Seeder) ensureAccount(ctx context.Context, id, holder string) error {
	_, err := s.bank.CreateAccount(ctx, banksim.Account{ID: id, HolderName: holder, Currency: s.opt.Currency})
	if err != nil && !errors.Is(err, banksim.ErrAccountExists) {
		return fmt.Errorf("create sandbox account %s: %w", pipeline.AccountNumber(id), err)
	}
	return nil
}
