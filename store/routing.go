package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/settle-dev/settle/pipeline"
)

// A customer's provider route (customers.provider) names the bank where its
// current virtual account is, the one its employer is told to pay into.
// The money of a deposit always moves through the provider of the VA it
// landed in: the poller plans a settlement with that VA's provider, and
// every step and compensation of it keeps that provider, whatever the route
// says later. So moving a customer only changes where new salaries should
// land; the old VA stays polled until it is retired.

// MigrationCandidate is a customer that a migration may move.
type MigrationCandidate struct {
	ID       int64  `db:"id"`
	Ref      string `db:"external_ref"`
	Provider string `db:"provider"`
	// VANumber is the customer's current VA at its provider ("" if none).
	VANumber string `db:"va_number"`
	Currency string `db:"currency"`
	// OpenSettlement is the customer's open settlement (0 if none) and
	// OpenStatus its status.
	OpenSettlement int64                     `db:"open_id"`
	OpenStatus     pipeline.SettlementStatus `db:"open_status"`
}

// MigrateRequest moves customers' provider route to To, in a batch.
type MigrateRequest struct {
	To string
	// From, if set, moves only customers routed to From; otherwise any
	// customer not routed to To.
	From string
	// Batch is the most customers moved (default 100); customers skipped do
	// not count.
	Batch int
	// NewVA names a customer's virtual account at To. An error skips the
	// customer, with the error as the reason.
	NewVA func(c MigrationCandidate) (string, error)
	// Opened, if set, says which of the numbers the bank at To knows; a
	// customer whose new VA it does not know is skipped, so money is never
	// routed to an account that does not exist.
	Opened func(ctx context.Context, numbers []string) (map[string]bool, error)
	// DryRun rolls every move back: the outcome is what would happen.
	DryRun bool
	Audit  Audit
}

// MigratedCustomer is one customer moved.
type MigratedCustomer struct {
	Ref   string `json:"ref"`
	From  string `json:"from"`
	To    string `json:"to"`
	OldVA string `json:"old_va"` // still polled
	NewVA string `json:"new_va"`
}

// SkippedCustomer is a customer left where it is this batch, and why.
type SkippedCustomer struct {
	Ref    string `json:"ref"`
	Reason string `json:"reason"`
}

// MigrateOutcome is what one batch did (or, dry, would do).
type MigrateOutcome struct {
	DryRun  bool               `json:"dry_run"`
	Moved   []MigratedCustomer `json:"moved"`
	Skipped []SkippedCustomer  `json:"skipped"`
	// Remaining counts the customers still to move after this batch.
	Remaining int `json:"remaining"`
}

// errSkip carries why one customer is not moved this batch: a refusal, or
// nothing to do (kind). It rolls back only that customer's transaction and
// is audited as the customer's outcome.
type errSkip struct {
	reason string
	kind   error // ErrRefused or ErrNothingToDo
}

func (e *errSkip) Error() string { return e.reason }
func (e *errSkip) Unwrap() error { return e.kind }

func skipf(format string, a ...any) error { return &errSkip{fmt.Sprintf(format, a...), ErrRefused} }

// MigrateCustomers moves up to Batch customers, in customer ID order, to
// the provider To, each in its own transaction with its own audit row: the
// customer gets its VA at To (recorded from NewVA) and its route; its old
// VAs are marked superseded and stay polled. A customer with an open
// settlement is skipped (it moves in a later batch, after the settlement
// ends), as is one whose new VA cannot be named, is not open at the bank, or
// belongs to another customer.
func (db *DB) MigrateCustomers(ctx context.Context, req MigrateRequest) (MigrateOutcome, error) {
	out := MigrateOutcome{DryRun: req.DryRun, Moved: []MigratedCustomer{}, Skipped: []SkippedCustomer{}}
	if err := req.Audit.validate(); err != nil {
		return out, err
	}
	if req.Batch <= 0 {
		req.Batch = 100
	}
	var after int64
	for len(out.Moved) < req.Batch {
		cands, err := db.migrationCandidates(ctx, req, after, min(2*req.Batch, 1000))
		if err != nil || len(cands) == 0 {
			if err != nil {
				return out, err
			}
			break
		}
		after = cands[len(cands)-1].ID
		if err := db.migratePage(ctx, req, cands, &out); err != nil {
			return out, err
		}
	}
	err := db.x.GetContext(ctx, &out.Remaining, `
		SELECT count(*) FROM customers WHERE provider <> $1 AND ($2 = '' OR provider = $2) AND status <> 'CLOSED'`,
		req.To, req.From)
	return out, err
}

func (db *DB) migrationCandidates(ctx context.Context, req MigrateRequest, after int64, limit int) ([]MigrationCandidate, error) {
	var cs []MigrationCandidate
	err := db.x.SelectContext(ctx, &cs, `
		SELECT c.id, c.external_ref, c.provider, o.currency,
		       coalesce((SELECT va.number FROM virtual_accounts va
		                  WHERE va.customer_id = c.id AND va.provider = c.provider AND va.active
		                  ORDER BY va.id DESC LIMIT 1), '') AS va_number,
		       coalesce(s.id, 0) AS open_id, coalesce(s.status, '') AS open_status
		  FROM customers c
		  JOIN obligations o ON o.customer_id = c.id
		  LEFT JOIN settlements s ON s.customer_id = c.id AND s.status IN (`+openStatuses+`)
		 WHERE c.provider <> $1 AND ($2 = '' OR c.provider = $2) AND c.status <> 'CLOSED' AND c.id > $3
		 ORDER BY c.id LIMIT $4`, req.To, req.From, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list customers to move to %s: %w", req.To, err)
	}
	return cs, nil
}

// migratePage names the new VAs of a page of candidates, checks them at the
// bank, and moves those that can move until the batch is full.
func (db *DB) migratePage(ctx context.Context, req MigrateRequest, cands []MigrationCandidate, out *MigrateOutcome) error {
	type move struct {
		c   MigrationCandidate
		num string
	}
	var moves []move
	for _, c := range cands {
		if c.OpenSettlement != 0 {
			if err := db.skipCustomer(ctx, req, out, c.Ref, skipf("%s", openReason(c.OpenSettlement, c.OpenStatus))); err != nil {
				return err
			}
			continue
		}
		num, err := req.NewVA(c)
		if err != nil {
			if err := db.skipCustomer(ctx, req, out, c.Ref, skipf("%s", err)); err != nil {
				return err
			}
			continue
		}
		moves = append(moves, move{c, num})
	}
	// Ask the bank only about as many as the batch can still take.
	moves = moves[:min(len(moves), req.Batch-len(out.Moved))]
	if req.Opened != nil && len(moves) > 0 {
		nums := make([]string, len(moves))
		for i, m := range moves {
			nums[i] = m.num
		}
		open, err := req.Opened(ctx, nums)
		if err != nil {
			return fmt.Errorf("check the new virtual accounts at %s: %w", req.To, err)
		}
		kept := moves[:0]
		for _, m := range moves {
			if open[m.num] {
				kept = append(kept, m)
			} else {
				if err := db.skipCustomer(ctx, req, out, m.c.Ref, skipf("virtual account %s is not open at %s: open it there first",
					pipeline.AccountNumber(m.num), req.To)); err != nil {
					return err
				}
			}
		}
		moves = kept
	}
	for _, m := range moves {
		moved, err := db.moveCustomer(ctx, req, m.c, m.num)
		var skip *errSkip
		switch {
		case errors.As(err, &skip):
			out.skip(m.c.Ref, skip.reason)
		case err != nil:
			return fmt.Errorf("move customer %s: %w", m.c.Ref, err)
		default:
			out.Moved = append(out.Moved, moved)
		}
	}
	return nil
}

func (o *MigrateOutcome) skip(ref, reason string) {
	o.Skipped = append(o.Skipped, SkippedCustomer{Ref: ref, Reason: reason})
}

// skipCustomer leaves a customer where it is this batch, for a reason found
// before its move began, and audits it as refused (a dry run writes
// nothing).
func (db *DB) skipCustomer(ctx context.Context, req MigrateRequest, out *MigrateOutcome, ref string, skip error) error {
	out.skip(ref, skip.Error())
	if req.DryRun {
		return nil
	}
	if err := db.auditRefusal(ctx, req.Audit, "customer:"+ref, skip, nil); !errors.Is(err, skip) {
		return err
	}
	return nil
}

func openReason(id int64, status pipeline.SettlementStatus) string {
	return fmt.Sprintf("settlement %d is %s: the customer moves in a later batch, once it has ended", id, status)
}

// routeState is a customer's route as the audit log shows it.
type routeState struct {
	Provider string   `json:"provider"`
	VAs      []string `json:"virtual_accounts"` // provider:masked number, superseded ones marked
}

// moveCustomer moves one customer in one transaction with its audit row
// (rolled back when dry). It returns *errSkip, audited, when the customer
// cannot move now.
func (db *DB) moveCustomer(ctx context.Context, req MigrateRequest, c MigrationCandidate, number string) (MigratedCustomer, error) {
	moved := MigratedCustomer{Ref: c.Ref, From: c.Provider, To: req.To, OldVA: c.VANumber, NewVA: number}
	err := db.audited(ctx, req.Audit, "customer:"+c.Ref, req.DryRun, func(tx *sqlx.Tx, rec *auditRecord) error {
		before, err := lockRoute(ctx, tx, c.ID)
		if err != nil {
			return err
		}
		rec.before = before
		if before.Provider == req.To {
			return &errSkip{fmt.Sprintf("already routed to %s", req.To), ErrNothingToDo}
		}
		var open struct {
			ID     int64                     `db:"id"`
			Status pipeline.SettlementStatus `db:"status"`
		}
		err = tx.GetContext(ctx, &open, `
			SELECT id, status FROM settlements WHERE customer_id = $1 AND status IN (`+openStatuses+`) LIMIT 1`, c.ID)
		if err == nil {
			return skipf("%s", openReason(open.ID, open.Status))
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if moved.NewVA, err = ensureVA(ctx, tx, c, req.To, number); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE virtual_accounts SET superseded_at = now() WHERE customer_id = $1 AND provider <> $2 AND superseded_at IS NULL`,
			c.ID, req.To); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE customers SET provider = $2, updated_at = now() WHERE id = $1`, c.ID, req.To); err != nil {
			return err
		}
		after, err := lockRoute(ctx, tx, c.ID)
		rec.after = after
		return err
	})
	return moved, err
}

// ensureVA gives the customer its VA at provider: the one it has there
// already (it is moving back), or a new one with number.
func ensureVA(ctx context.Context, tx *sqlx.Tx, c MigrationCandidate, provider, number string) (string, error) {
	var have string
	err := tx.QueryRowxContext(ctx, `
		UPDATE virtual_accounts SET active = true, superseded_at = NULL
		 WHERE id = (SELECT id FROM virtual_accounts WHERE customer_id = $1 AND provider = $2 ORDER BY id DESC LIMIT 1)
		RETURNING number`, c.ID, provider).Scan(&have)
	if err == nil {
		return have, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	var owner int64
	err = tx.QueryRowxContext(ctx, `SELECT customer_id FROM virtual_accounts WHERE provider = $1 AND number = $2`, provider, number).Scan(&owner)
	if err == nil {
		return "", skipf("virtual account %s at %s belongs to customer %d already", pipeline.AccountNumber(number), provider, owner)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	if len(number) == 0 || len(number) > 64 {
		return "", skipf("virtual account number %q must be 1 to 64 characters", number)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO virtual_accounts (customer_id, provider, number, currency) VALUES ($1, $2, $3, $4)`,
		c.ID, provider, number, c.Currency)
	return number, err
}

// lockRoute reads and locks a customer's route and lists its VAs. It locks
// in the poller's order, the VAs then the customer, and the customer only
// against other updates (NO KEY UPDATE), not against the key-share lock a
// new settlement takes: a poll and a move never deadlock.
func lockRoute(ctx context.Context, tx *sqlx.Tx, customerID int64) (routeState, error) {
	var r routeState
	rows, err := tx.QueryxContext(ctx, `
		SELECT provider, number, superseded_at IS NOT NULL, active FROM virtual_accounts WHERE customer_id = $1
		 ORDER BY id FOR UPDATE`, customerID)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	for rows.Next() {
		var prov, num string
		var superseded, active bool
		if err := rows.Scan(&prov, &num, &superseded, &active); err != nil {
			return r, err
		}
		s := prov + ":" + pipeline.AccountNumber(num).Masked()
		if superseded {
			s += " (superseded, still polled)"
		}
		if !active {
			s += " (inactive)"
		}
		r.VAs = append(r.VAs, s)
	}
	if err := rows.Err(); err != nil {
		return r, err
	}
	rows.Close()
	err = tx.QueryRowxContext(ctx, `SELECT provider FROM customers WHERE id = $1 FOR NO KEY UPDATE`, customerID).Scan(&r.Provider)
	return r, err
}

// CustomerPayday is what the poller knows of a customer's payday.
type CustomerPayday struct {
	Ref            string `db:"external_ref" json:"ref"`
	Payday         *int   `db:"payday" json:"payday"`                   // set by an operator
	Employer       string `db:"employer_ref" json:"employer,omitempty"` // "" for none
	EmployerPayday *int   `db:"employer_payday" json:"employer_payday"`
	LearnedPayday  *int   `db:"learned_payday" json:"learned_payday"`
	// Effective is the payday the poller uses (0: unknown, polled on the
	// idle schedule only) and Source where it comes from.
	Effective int    `db:"effective" json:"effective"`
	Source    string `db:"source" json:"source"`
}

const customerPaydayQuery = `
	SELECT c.external_ref, c.payday, coalesce(c.employer_ref, '') AS employer_ref, e.payday AS employer_payday,
	       c.learned_payday, coalesce(c.payday, e.payday, c.learned_payday, 0) AS effective,
	       CASE WHEN c.payday IS NOT NULL THEN 'customer' WHEN e.payday IS NOT NULL THEN 'employer'
	            WHEN c.learned_payday IS NOT NULL THEN 'learned' ELSE 'unknown' END AS source
	  FROM customers c LEFT JOIN employers e ON e.ref = c.employer_ref
	 WHERE c.external_ref = $1`

// GetCustomerPayday returns what the poller knows of a customer's payday.
func (db *DB) GetCustomerPayday(ctx context.Context, ref string) (CustomerPayday, error) {
	var p CustomerPayday
	err := db.x.GetContext(ctx, &p, customerPaydayQuery, ref)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("customer %q: %w", ref, ErrNotFound)
	}
	return p, err
}

// PaydayPatch changes a customer's payday or employer; nil fields stay. A
// payday of 0 clears it (the employer's or the learned one applies); an
// employer of "" clears it.
type PaydayPatch struct {
	Payday   *int
	Employer *string
}

// SetCustomerPayday applies a patch with its audit row in one transaction.
func (db *DB) SetCustomerPayday(ctx context.Context, ref string, p PaydayPatch, a Audit) (CustomerPayday, error) {
	var after CustomerPayday
	err := db.audited(ctx, a, "customer:"+ref, false, func(tx *sqlx.Tx, rec *auditRecord) error {
		if p.Payday != nil && (*p.Payday < 0 || *p.Payday > 31) {
			return fmt.Errorf("%w: a payday is a day of month 1..31 (0 clears it)", ErrRefused)
		}
		var before CustomerPayday
		if err := tx.GetContext(ctx, &before, customerPaydayQuery+` FOR UPDATE OF c`, ref); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("customer %q: %w", ref, ErrNotFound)
		} else if err != nil {
			return err
		}
		rec.before = before
		_, err := tx.ExecContext(ctx, `
			UPDATE customers SET
			       payday = CASE WHEN $2::int IS NULL THEN payday ELSE NULLIF($2::int, 0) END,
			       employer_ref = CASE WHEN $3::text IS NULL THEN employer_ref ELSE NULLIF($3::text, '') END,
			       updated_at = now()
			 WHERE external_ref = $1`, ref, p.Payday, p.Employer)
		if err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &after, customerPaydayQuery, ref); err != nil {
			return err
		}
		rec.after = after
		return nil
	})
	if err != nil {
		return CustomerPayday{}, fmt.Errorf("set payday of customer %q: %w", ref, err)
	}
	return after, nil
}

// SetEmployerPayday sets an employer's payday (creating the employer) with
// its audit row, and returns how many customers name the employer.
func (db *DB) SetEmployerPayday(ctx context.Context, employer string, payday int, a Audit) (int, error) {
	var customers int
	err := db.audited(ctx, a, "employer:"+employer, false, func(tx *sqlx.Tx, rec *auditRecord) error {
		if payday < 1 || payday > 31 {
			return fmt.Errorf("%w: a payday is a day of month 1..31", ErrRefused)
		}
		var before *int
		err := tx.QueryRowxContext(ctx, `SELECT payday FROM employers WHERE ref = $1 FOR UPDATE`, employer).Scan(&before)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		rec.before = map[string]*int{"payday": before}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO employers (ref, payday) VALUES ($1, $2)
			ON CONFLICT (ref) DO UPDATE SET payday = EXCLUDED.payday, updated_at = now()`, employer, payday); err != nil {
			return err
		}
		rec.after = map[string]int{"payday": payday}
		return tx.GetContext(ctx, &customers, `SELECT count(*) FROM customers WHERE employer_ref = $1`, employer)
	})
	if err != nil {
		return 0, fmt.Errorf("set payday of employer %q: %w", employer, err)
	}
	return customers, nil
}
