package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jmoiron/sqlx"
)

// Requests for a settlement command that a second operator approves (four
// eyes, migrations/00018_approvals.sql): RequestApproval records one with
// the command's dry run; the command itself runs later, by the approver,
// through the command as the CLI runs it with Audit.Approves set.

var (
	// ErrRequestExpired is the refusal of an approval that came after its
	// request's window, by the database's clock. It wraps ErrRefused.
	ErrRequestExpired = errors.New("the request expired")
	// ErrRequestChanged is the refusal of an approval whose settlement
	// changed since the request: the dry run would not be the one the
	// request showed. It wraps ErrRefused.
	ErrRequestChanged = errors.New("the settlement changed since the request")
)

// requestRefusal is an approval refused for one of the reasons above.
type requestRefusal struct {
	kind error // ErrRequestExpired or ErrRequestChanged
	msg  string
}

func (e *requestRefusal) Error() string { return ErrRefused.Error() + ": " + e.msg }

func (e *requestRefusal) Is(target error) bool { return target == ErrRefused || target == e.kind }

// The statuses of a request.
const (
	RequestPending  = "PENDING"
	RequestApproved = "APPROVED" // the command ran, in the approval's transaction
	RequestExpired  = "EXPIRED"  // approved too late: nothing ran
	RequestChanged  = "CHANGED"  // the settlement changed since the request: nothing ran
)

// Request is a request for a settlement command awaiting, or past, its
// approval.
type Request struct {
	ID           int64      `db:"id" json:"id"`
	SettlementID int64      `db:"settlement_id" json:"settlement_id"`
	Action       string     `db:"action" json:"action"` // replay, cancel or compensate
	Requester    string     `db:"requester" json:"requester"`
	DryRun       string     `db:"dry_run" json:"dry_run"` // as the command prints it (Outcome.Text)
	Fingerprint  string     `db:"fingerprint" json:"-"`
	Status       string     `db:"status" json:"status"`
	CreatedAt    time.Time  `db:"created_at" json:"created_at"`
	ExpiresAt    time.Time  `db:"expires_at" json:"expires_at"`
	Approver     string     `db:"approver" json:"approver,omitempty"`
	DecidedAt    *time.Time `db:"decided_at" json:"decided_at,omitempty"`
	Detail       string     `db:"detail" json:"detail,omitempty"`
	Channel      string     `db:"channel" json:"-"`
	ThreadTS     string     `db:"thread_ts" json:"-"`
	MessageTS    string     `db:"message_ts" json:"-"`
}

const requestColumns = `id, settlement_id, action, requester, dry_run, fingerprint, status, created_at, expires_at,
	coalesce(approver, '') AS approver, decided_at, detail, channel, thread_ts, message_ts`

// NewRequest is a request for a settlement command that runs only once a
// second operator approves it.
type NewRequest struct {
	Action string  // CommandReplay, CommandCancel or CommandCompensate
	DryRun Outcome // the command's dry run, which the requester saw
	// Window is how long the request may be approved, counted by the
	// database's clock from when it is recorded.
	Window time.Duration
	// Channel and ThreadTS are the Slack thread the request was made in.
	Channel, ThreadTS string
}

// RequestApproval records a request for a command on a settlement, PENDING
// until a different operator approves it within the window, and its audit
// row (Actor the requester, outcome applied, after the request), in one
// transaction. A second delivery of the click (a.Click) records nothing and
// returns ErrDuplicate.
func (db *DB) RequestApproval(ctx context.Context, nr NewRequest, a Audit) (Request, error) {
	var r Request
	if err := a.validate(); err != nil {
		return r, err
	}
	out := nr.DryRun
	switch {
	case !out.DryRun || out.Fingerprint == "" || out.SettlementID == 0:
		return r, errors.New("store: a request needs the command's dry run")
	case nr.Window <= 0:
		return r, errors.New("store: a request needs a window")
	}
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &r, `
			INSERT INTO approval_requests (settlement_id, action, requester, dry_run, fingerprint, expires_at, channel, thread_ts)
			VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 microsecond', $7, $8)
			RETURNING `+requestColumns,
			out.SettlementID, nr.Action, a.Actor, out.Text(), out.Fingerprint, nr.Window.Microseconds(), nr.Channel, nr.ThreadTS); err != nil {
			return err
		}
		a.Args = maps.Clone(a.Args)
		if a.Args == nil {
			a.Args = map[string]any{}
		}
		a.Args["request"] = r.ID
		return insertAudit(ctx, tx, a, fmt.Sprintf("settlement:%d", out.SettlementID), AuditApplied, "", nil, r)
	})
	if err != nil {
		return Request{}, fmt.Errorf("request %s of settlement %d: %w", nr.Action, out.SettlementID, err)
	}
	return r, nil
}

// GetRequest reads a request.
func (db *DB) GetRequest(ctx context.Context, id int64) (Request, error) {
	var r Request
	err := db.x.GetContext(ctx, &r, `SELECT `+requestColumns+` FROM approval_requests WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("request %d: %w", id, ErrNotFound)
	}
	return r, err
}

// SetRequestMessage records where the request's message is in Slack, so
// that its outcome can be shown there.
func (db *DB) SetRequestMessage(ctx context.Context, id int64, channel, ts string) error {
	_, err := db.x.ExecContext(ctx, `UPDATE approval_requests SET channel = $2, message_ts = $3 WHERE id = $1`, id, channel, ts)
	return err
}

// claimApproval approves request a.Approves by a.Actor, in one conditional
// statement: only a PENDING request for this command on this settlement,
// unexpired by the database's clock, made by someone else. Two approvals
// of one request (a double click, two approvers) approve it once: the
// second waits for the first's transaction and then finds it no longer
// PENDING. When nothing matches it says why.
func claimApproval(ctx context.Context, tx *sqlx.Tx, a Audit, command string, settlementID int64) (Request, error) {
	var r Request
	err := tx.GetContext(ctx, &r, `
		UPDATE approval_requests SET status = 'APPROVED', approver = $2, decided_at = now()
		 WHERE id = $1 AND settlement_id = $3 AND action = $4 AND status = 'PENDING'
		   AND expires_at > now() AND requester <> $2
		RETURNING `+requestColumns, a.Approves, a.Actor, settlementID, command)
	if !errors.Is(err, sql.ErrNoRows) {
		return r, err
	}
	var at struct {
		Request
		Now time.Time `db:"db_now"` // the transaction's clock, as the UPDATE above read it
	}
	err = tx.GetContext(ctx, &at, `SELECT `+requestColumns+`, now() AS db_now FROM approval_requests WHERE id = $1`, a.Approves)
	r, now := at.Request, at.Now
	switch {
	case errors.Is(err, sql.ErrNoRows) || err == nil && (r.SettlementID != settlementID || r.Action != command):
		return r, fmt.Errorf("request %d to %s settlement %d: %w", a.Approves, command, settlementID, ErrNotFound)
	case err != nil:
		return r, err
	case r.Status == RequestApproved:
		return r, fmt.Errorf("%w: request %d was already approved by %s at %s", ErrNothingToDo, r.ID, r.Approver, utc(*r.DecidedAt))
	case r.Status != RequestPending:
		return r, fmt.Errorf("%w: request %d is %s: %s", ErrRefused, r.ID, r.Status, r.Detail)
	case r.Requester == a.Actor:
		return r, fmt.Errorf("%w: request %d was made by %s, who cannot approve it: a second operator must (four eyes)",
			ErrRefused, r.ID, r.Requester)
	case r.ExpiresAt.After(now):
		return r, fmt.Errorf("request %d changed while it was being approved; try again", r.ID)
	}
	return r, &requestRefusal{kind: ErrRequestExpired, msg: fmt.Sprintf(
		"request %d by %s expired at %s, %s after it was made (by the database's clock): nothing was run; request it again",
		r.ID, r.Requester, utc(r.ExpiresAt), r.ExpiresAt.Sub(r.CreatedAt).Round(time.Second))}
}

// changedSince refuses an approval whose settlement is no longer as its
// request's dry run found it; why says what differs.
func changedSince(r Request, why string) error {
	return &requestRefusal{kind: ErrRequestChanged, msg: fmt.Sprintf(
		"settlement %d changed since request %d by %s: %s; nothing was run: request it again for a new dry run",
		r.SettlementID, r.ID, r.Requester, why)}
}

// closeRequest closes, inside tx, the PENDING request whose approval err
// refused for good: EXPIRED or CHANGED, with err as its detail. Any other
// refusal leaves it as it is.
func closeRequest(ctx context.Context, tx *sqlx.Tx, id int64, err error) error {
	status := ""
	switch {
	case id == 0:
		return nil
	case errors.Is(err, ErrRequestExpired):
		status = RequestExpired
	case errors.Is(err, ErrRequestChanged):
		status = RequestChanged
	default:
		return nil
	}
	_, xerr := tx.ExecContext(ctx, `
		UPDATE approval_requests SET status = $2, decided_at = now(), detail = $3 WHERE id = $1 AND status = 'PENDING'`,
		id, status, err.Error())
	return xerr
}

// RecordAudit writes the audit row of an operator's decision that changes
// no settlement: a dry run looked at, an alert acknowledged (decided nil:
// applied), or a request refused before any command ran (decided wrapping
// ErrRefused or ErrNothingToDo). A second delivery of the click returns
// ErrDuplicate and writes nothing.
func (db *DB) RecordAudit(ctx context.Context, a Audit, subject string, decided error) error {
	if err := a.validate(); err != nil {
		return err
	}
	outcome, detail := AuditApplied, ""
	if decided != nil {
		if outcome = decision(decided); outcome == "" {
			return fmt.Errorf("store: %v is not a decision to audit", decided)
		}
		detail = decided.Error()
	}
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		return insertAudit(ctx, tx, a, subject, outcome, detail, nil, nil)
	})
}

// fingerprint digests a settlement before and after a command: every step
// with its accounts, holder, fence and latest attempt. The steps after are
// named by their place (seq) rather than their ID, since a dry run that
// adds steps (compensate) takes IDs its rollback does not give back.
func fingerprint(before, after settlementState) string {
	h := sha256.New()
	for i, s := range []settlementState{before, after} {
		fmt.Fprintf(h, "settlement %d %q\n", s.ID, s.Status)
		for _, st := range s.Steps {
			id := st.ID
			if i == 1 {
				id = 0
			}
			fmt.Fprintf(h, "step %d %d %q %q %d %q %q %q %d %d %d %q %q %q\n", id, st.Seq, st.Kind, st.Status, st.Amount,
				st.From, st.To, st.ToHolder, st.Reverses, st.Fence, st.Attempt, st.Key, st.Transfer, st.BankCode)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
