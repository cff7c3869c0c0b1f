package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settle-dev/settle/pipeline"
)

// Audit is who runs an operator command, with what, and why. Every command
// that changes state writes one audit_log row, applied, refused or with
// nothing to do (see audited); the database adds the user and host it saw.
type Audit struct {
	Actor   string
	Command string
	Args    map[string]any
	Reason  string
	// Click identifies the delivery the command answers (a Slack click,
	// see interact). Its audit row keeps it, and a command with a click
	// already audited is a second delivery: it changes nothing, writes no
	// row and returns ErrDuplicate. "" for the CLI's commands.
	Click string
	// Approves is the approval request (RequestApproval) a settlement
	// command carries out, by Actor: 0 for none. The command runs only if
	// the request is PENDING, unexpired by the database's clock, for this
	// settlement and command, and made by someone else, and only while the
	// settlement is as the request's dry run found it; the request is
	// APPROVED in the command's transaction. Otherwise nothing runs: the
	// command is refused (ErrRequestExpired, ErrRequestChanged) or has
	// nothing to do (already approved), and an expired or changed request
	// is closed.
	Approves int64
}

func (a Audit) validate() error {
	if err := CheckActor(a.Actor); err != nil {
		return fmt.Errorf("%w: %w (--actor)", ErrRefused, err)
	}
	switch {
	case a.Reason == "" || len(a.Reason) > 1000:
		return fmt.Errorf("%w: give a reason of 1 to 1000 characters (--reason)", ErrRefused)
	}
	return nil
}

// Outcome is what an operator command did, or with DryRun would do.
type Outcome struct {
	SettlementID int64            `json:"settlement_id"`
	DryRun       bool             `json:"dry_run"`
	Changes      []string         `json:"changes"`
	Enqueue      pipeline.StepRef `json:"-"` // the step to wake once committed; zero for none
	// Fingerprint digests the settlement as the command found it and as
	// it left it (or, in a dry run, would leave it), accounts and all:
	// two runs with the same fingerprint did the same thing to the same
	// state. An approval compares it with its request's.
	Fingerprint string `json:"-"`
}

// Text is the outcome as settle replay, cancel and compensate print it: a
// dry run's heading, then one indented line per change.
func (o Outcome) Text() string {
	var b strings.Builder
	if o.DryRun {
		fmt.Fprintf(&b, "dry run: settlement %d would change as follows; nothing was changed\n", o.SettlementID)
	}
	for _, c := range o.Changes {
		b.WriteString("  " + c + "\n")
	}
	return b.String()
}

// NothingToDoText is the line an operator command prints when err says it
// had nothing to do (ErrNothingToDo), and whether it did.
func NothingToDoText(err error) (string, bool) {
	if !errors.Is(err, ErrNothingToDo) {
		return "", false
	}
	return "nothing to do: " + strings.TrimPrefix(err.Error(), ErrNothingToDo.Error()+": ") + "\n", true
}

var (
	// ErrNothingToDo is returned when the command has nothing to change: the
	// settlement is already where the command would take it.
	ErrNothingToDo = errors.New("nothing to do")
	// ErrRefused is returned when the command would not be safe; the message
	// says why and what to do instead.
	ErrRefused = errors.New("refused")
	// ErrDuplicate is returned for a second delivery of a click already
	// acted on (Audit.Click): nothing was done, nothing audited.
	ErrDuplicate = errors.New("duplicate delivery")
)

// settlementState is what an operator command reads and changes, also the
// before and after of its audit row.
type settlementState struct {
	ID     int64                     `json:"id" db:"id"`
	Status pipeline.SettlementStatus `json:"status" db:"status"`
	Steps  []stepState               `json:"steps"`
}

type stepState struct {
	ID       int64               `json:"id" db:"id"`
	Seq      int                 `json:"seq" db:"seq"`
	Kind     pipeline.Kind       `json:"kind" db:"kind"`
	Status   pipeline.StepStatus `json:"status" db:"status"`
	Amount   int64               `json:"amount" db:"amount"`
	From     string              `json:"-" db:"from_account"`
	To       string              `json:"-" db:"to_account"`
	ToHolder string              `json:"-" db:"to_holder"`
	Reverses int64               `json:"-" db:"reverses"`
	// ShownFrom and ShownTo are the step's accounts as the audit row
	// keeps them: an engine account by its configuration key, a
	// customer's masked (see stepRoles).
	ShownFrom string                 `json:"from,omitempty" db:"-"`
	ShownTo   string                 `json:"to,omitempty" db:"-"`
	Fence     int64                  `json:"-" db:"fence"`
	Attempt   int                    `json:"attempt,omitempty" db:"attempt"`
	Key       string                 `json:"key,omitempty" db:"idempotency_key"`
	Transfer  pipeline.AttemptStatus `json:"transfer,omitempty" db:"transfer_status"`
	BankCode  string                 `json:"bank_code,omitempty" db:"bank_code"`
}

// lockSettlement reads a settlement and its steps, each with its latest
// attempt, locking the settlement and step rows for the transaction.
func lockSettlement(ctx context.Context, tx *sqlx.Tx, id int64) (settlementState, error) {
	var s settlementState
	err := tx.GetContext(ctx, &s, `SELECT id, status FROM settlements WHERE id = $1 FOR UPDATE`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("settlement %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return s, err
	}
	err = tx.SelectContext(ctx, &s.Steps, `
		SELECT st.id, st.seq, st.kind, st.status, st.amount, st.from_account, st.to_account, st.to_holder,
		       coalesce(st.reverses, 0) AS reverses, st.fence,
		       coalesce(t.attempt, 0) AS attempt, coalesce(t.idempotency_key, '') AS idempotency_key,
		       coalesce(t.status, '') AS transfer_status, coalesce(t.bank_code, '') AS bank_code
		  FROM steps st
		  LEFT JOIN LATERAL (SELECT * FROM transfers WHERE step_id = st.id ORDER BY attempt DESC LIMIT 1) t ON true
		 WHERE st.settlement_id = $1 ORDER BY st.seq FOR UPDATE OF st`, id)
	for i, st := range s.Steps {
		from, to := stepRoles(s, st)
		if from != "" {
			s.Steps[i].ShownFrom = from.Key() + " " + from.Shown(st.From)
		}
		if to != "" {
			s.Steps[i].ShownTo = to.Key() + " " + to.Shown(st.To)
		}
	}
	return s, err
}

// stepRoles returns what the step's accounts are (pipeline.Kind.Roles); a
// REVERSE's are those of the step it undoes, swapped.
func stepRoles(s settlementState, st stepState) (from, to pipeline.Role) {
	if st.Kind != pipeline.KindReverse {
		return st.Kind.Roles()
	}
	undone, _ := findStep(s, func(o stepState) bool { return o.ID == st.Reverses })
	to, from = undone.Kind.Roles()
	return from, to
}

// The settlement commands, as an approval request names them.
const (
	CommandReplay     = "replay"
	CommandCancel     = "cancel"
	CommandCompensate = "compensate"
)

// operate runs one operator command on a settlement (see audited): fn
// checks and changes the settlement; its audit row records the state before
// and, once applied, after. command names it, for an approval
// (Audit.Approves) to check against its request.
func (db *DB) operate(ctx context.Context, command string, id int64, a Audit, dryRun bool,
	fn func(tx *sqlx.Tx, s settlementState, out *Outcome) error) (Outcome, error) {
	out := Outcome{SettlementID: id, DryRun: dryRun}
	err := db.audited(ctx, a, fmt.Sprintf("settlement:%d", id), dryRun, func(tx *sqlx.Tx, rec *auditRecord) error {
		var req Request
		if a.Approves != 0 {
			var err error
			if req, err = claimApproval(ctx, tx, a, command, id); err != nil {
				return err
			}
		}
		before, err := lockSettlement(ctx, tx, id)
		if err != nil {
			return err
		}
		rec.before = before
		if err := fn(tx, before, &out); err != nil {
			if a.Approves != 0 && decision(err) != "" {
				return changedSince(req, err.Error())
			}
			return err
		}
		after, err := lockSettlement(ctx, tx, id)
		if err != nil {
			return err
		}
		rec.after = after
		out.Fingerprint = fingerprint(before, after)
		if a.Approves != 0 && out.Fingerprint != req.Fingerprint {
			return changedSince(req, "the dry run now differs from the one the request showed")
		}
		return nil
	})
	return out, err
}

// The outcomes of an operator command an audit row records.
const (
	AuditApplied     = "applied"       // the change was made
	AuditRefused     = "refused"       // not safe, not valid, or its subject does not exist
	AuditNothingToDo = "nothing_to_do" // already where the command would take it
)

// auditRecord is the state of a command's subject its audit row keeps:
// before, as the command read it, and after, once applied.
type auditRecord struct{ before, after any }

// audited runs one state-changing operator command and audits it whatever
// it decides. fn checks and changes state in tx and fills in rec.
//   - Applied (fn returns nil): the audit row is written in tx and commits
//     with the change.
//   - Refused (ErrRefused, ErrNotFound) or nothing to do (ErrNothingToDo):
//     tx is rolled back, so nothing changes, and the audit row, saying
//     what was asked and why it was not done, is written in a transaction
//     of its own. The command's error is returned.
//   - Any other error (the database failed, not the command) is returned
//     unaudited: nothing was decided.
//
// A dry run rolls back and writes nothing, whatever the outcome. Audit
// fields that cannot be recorded (no actor or reason) are refused before
// anything is read, unaudited.
func (db *DB) audited(ctx context.Context, a Audit, subject string, dryRun bool,
	fn func(tx *sqlx.Tx, rec *auditRecord) error) error {
	if err := a.validate(); err != nil {
		return err
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var rec auditRecord
	if err := fn(tx, &rec); err != nil {
		if dryRun {
			return err
		}
		_ = tx.Rollback()
		return db.auditRefusal(ctx, a, subject, err, rec.before)
	}
	if err := insertAudit(ctx, tx, a, subject, AuditApplied, "", rec.before, rec.after); err != nil {
		return err
	}
	if dryRun {
		return nil
	}
	return tx.Commit()
}

// auditRefusal writes, in a transaction of its own, the audit row of a
// command that err refused or found nothing to do for, with the state it
// saw before, and returns err. An err that decided nothing (see decision)
// is returned unaudited. If the row cannot be written the refusal is
// reported as a failure, never as a decision a caller may pass over; a
// second delivery of an audited click returns ErrDuplicate.
//
// An approval refused because its request expired or its settlement
// changed closes the request in the same transaction.
func (db *DB) auditRefusal(ctx context.Context, a Audit, subject string, err error, before any) error {
	outcome := decision(err)
	if outcome == "" {
		return err
	}
	if aerr := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := insertAudit(ctx, tx, a, subject, outcome, err.Error(), before, nil); err != nil {
			return err
		}
		return closeRequest(ctx, tx, a.Approves, err)
	}); aerr != nil {
		if errors.Is(aerr, ErrDuplicate) {
			return aerr
		}
		return fmt.Errorf("%s; its audit row could not be written: %w", err, aerr)
	}
	return err
}

// decision is the audit outcome of a command's error: refused or
// nothing_to_do, or "" for a failure that decided nothing.
func decision(err error) string {
	switch {
	case errors.Is(err, ErrNothingToDo):
		return AuditNothingToDo
	case errors.Is(err, ErrRefused), errors.Is(err, ErrNotFound):
		return AuditRefused
	}
	return ""
}

// insertAudit writes one audit row. The database fills in the connection's
// user and client host (migrations/00012_audit_outcome.sql). An empty
// outcome writes a row of the audit log before that migration, for a
// migrate down below it.
func insertAudit(ctx context.Context, tx *sqlx.Tx, a Audit, subject, outcome, detail string, before, after any) error {
	args, err := json.Marshal(a.Args)
	if err != nil {
		return err
	}
	b, err := nullJSON(before)
	if err != nil {
		return err
	}
	af, err := nullJSON(after)
	if err != nil {
		return err
	}
	params := []any{a.Actor, a.Command, args, a.Reason, subject, b, af, outcome, detail}
	if outcome == "" { // an audit log older than 00012_audit_outcome.sql, whose rows were all applied
		_, err = tx.ExecContext(ctx, `
			INSERT INTO audit_log (actor, command, args, reason, subject, before, after)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, params[:7]...)
		return err
	}
	if a.Click != "" { // a click's row (00018_approvals.sql): once per click
		_, err = tx.ExecContext(ctx, `
			INSERT INTO audit_log (actor, command, args, reason, subject, before, after, outcome, detail, click)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, append(params, a.Click)...)
		if isUniqueViolation(err, "audit_log_click") {
			return fmt.Errorf("%w: click %s was already audited", ErrDuplicate, a.Click)
		}
		return err
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO audit_log (actor, command, args, reason, subject, before, after, outcome, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, params...)
	return err
}

// nullJSON is v as JSON, or SQL NULL for a nil v.
func nullJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// Replay re-drives a FAILED settlement from its failed step: the step goes
// back to READY with its attempts reset, and the settlement to RUNNING (or
// COMPENSATING when a reversal failed). DONE steps are never repeated.
//
// The failed step and the steps after it are routed again (see reroute):
// an engine account from accounts, the provider's accounts as configured
// now, a customer's from the customer's record as it is now, so a replay
// after fixing the configuration or the payout account sends to the fixed
// account. Steps before it, DONE, stay as they are.
//
// A step the bank refused gets a new attempt with a new key at its next
// claim. One the bank never acted on is sent again with the same key if
// its accounts are unchanged; if they changed, that attempt is SUPERSEDED
// and the next claim makes a new one with a new key, so no key is ever sent
// with other content (ADR 0002).
//
// A SETTLED settlement whose NOTIFY gave up (DEAD) is replayed by sending
// its event again: the step is READY with its attempts reset, the
// settlement stays SETTLED.
func (db *DB) Replay(ctx context.Context, id int64, accounts map[string]pipeline.Accounts, a Audit, dryRun bool) (Outcome, error) {
	return db.operate(ctx, CommandReplay, id, a, dryRun, func(tx *sqlx.Tx, s settlementState, out *Outcome) error {
		if n, ok := undelivered(s); ok && s.Status == pipeline.SettlementSettled && n.Status == pipeline.StepDead {
			return replayNotify(ctx, tx, s, n, a, out)
		}
		if s.Status != pipeline.SettlementFailed {
			return fmt.Errorf("%w: settlement %d is %s; only a FAILED settlement is replayed", ErrNothingToDo, id, s.Status)
		}
		failed, ok := findStep(s, func(st stepState) bool { return st.Status == pipeline.StepFailed || st.Status == pipeline.StepDead })
		if !ok {
			return fmt.Errorf("%w: settlement %d is FAILED but has no FAILED or DEAD step: run settle verify", ErrRefused, id)
		}
		if failed.Transfer == pipeline.AttemptUnknown || failed.Transfer == pipeline.AttemptSucceeded {
			return fmt.Errorf("%w: step %d's attempt %d is %s at the bank: the engine must learn its outcome before anything is sent again",
				ErrRefused, failed.ID, failed.Attempt, failed.Transfer)
		}
		routes, err := reroute(ctx, tx, s, failed, accounts)
		if err != nil {
			return err
		}
		status := pipeline.SettlementRunning
		if failed.Kind == pipeline.KindReverse {
			status = pipeline.SettlementCompensating
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE steps SET status = 'READY', attempts = 0, next_run_at = now(), lease_until = NULL,
			       last_error = 'replayed by ' || $2 || ': ' || $3, updated_at = now() WHERE id = $1`,
			failed.ID, a.Actor, a.Reason); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE settlements SET status = $2, failure_reason = '', updated_at = now() WHERE id = $1`, id, string(status)); err != nil {
			return err
		}
		out.Changes = append(out.Changes,
			fmt.Sprintf("settlement %d: FAILED → %s", id, status),
			fmt.Sprintf("step %d (%s, seq %d): %s → READY, attempts reset", failed.ID, failed.Kind, failed.Seq, failed.Status))
		moved := false
		for _, r := range routes {
			changes, err := r.apply(ctx, tx)
			if err != nil {
				return err
			}
			moved = moved || (r.step.ID == failed.ID && len(changes) > 0)
			out.Changes = append(out.Changes, changes...)
		}
		next, err := nextAttempt(ctx, tx, failed, moved)
		if err != nil {
			return err
		}
		out.Changes = append(out.Changes, next)
		out.Enqueue = pipeline.StepRef{ID: failed.ID, Fence: failed.Fence}
		return nil
	})
}

// undelivered returns the settlement's step that moves no money (NOTIFY)
// and is not DONE, if it has one.
func undelivered(s settlementState) (stepState, bool) {
	return findStep(s, func(st stepState) bool {
		return !st.Kind.MovesMoney() && st.Status != pipeline.StepDone
	})
}

// replayNotify makes a SETTLED settlement's DEAD NOTIFY send its event
// again, under the same event ID.
func replayNotify(ctx context.Context, tx *sqlx.Tx, s settlementState, n stepState, a Audit, out *Outcome) error {
	if _, err := tx.ExecContext(ctx, `
		UPDATE steps SET status = 'READY', attempts = 0, next_run_at = now(), lease_until = NULL,
		       last_error = 'replayed by ' || $2 || ': ' || $3, updated_at = now() WHERE id = $1`,
		n.ID, a.Actor, a.Reason); err != nil {
		return err
	}
	out.Changes = append(out.Changes,
		fmt.Sprintf("step %d (%s, seq %d): DEAD → READY, attempts reset; settlement %d stays SETTLED", n.ID, n.Kind, n.Seq, s.ID),
		"no bank transfer: the event is sent to the lender's app again, with the same event ID")
	out.Enqueue = pipeline.StepRef{ID: n.ID, Fence: n.Fence}
	return nil
}

// route is where a step that replay re-drives goes now: its accounts as
// they are routed again, beside the step as it is.
type route struct {
	step             stepState
	from, to, holder string
	fromRole, toRole pipeline.Role
}

// reroute routes the failed step and every step after it that is not DONE
// again, the way a settlement's steps are planned (pipeline.Endpoints):
// engine accounts from the provider's accounts as configured now, the
// virtual account and the payout account from the settlement's VA and the
// customer's record as they are now. Money a DONE leg already moved stays
// where it went: once the SWEEP is DONE, the legs after it take the money
// from the collection account the SWEEP paid, whatever is configured now.
// A REVERSE undoes its step, so it takes that step's accounts swapped.
// It refuses when the routes cannot be read: the provider is no longer
// configured, or the customer is CLOSED.
func reroute(ctx context.Context, tx *sqlx.Tx, s settlementState, failed stepState,
	accounts map[string]pipeline.Accounts) ([]route, error) {
	var at struct {
		Provider string         `db:"provider"`
		VA       string         `db:"number"`
		Account  string         `db:"payout_account"`
		Holder   string         `db:"payout_holder_name"`
		Status   CustomerStatus `db:"status"`
		Ref      string         `db:"external_ref"`
	}
	if err := tx.GetContext(ctx, &at, `
		SELECT s.provider, va.number, c.payout_account, c.payout_holder_name, c.status, c.external_ref
		  FROM settlements s JOIN virtual_accounts va ON va.id = s.va_id JOIN customers c ON c.id = s.customer_id
		 WHERE s.id = $1`, s.ID); err != nil {
		return nil, err
	}
	acc, configured := accounts[at.Provider]
	if sweep, ok := findStep(s, func(st stepState) bool {
		return st.Kind == pipeline.KindSweep && st.Status == pipeline.StepDone
	}); ok {
		acc.Collection = sweep.To
	}
	e := pipeline.Endpoints{VA: at.VA, Accounts: acc, Payee: pipeline.Payee{Account: at.Account, Holder: at.Holder}}
	var out []route
	for _, st := range s.Steps {
		if st.Seq < failed.Seq || st.Status == pipeline.StepDone || !st.Kind.MovesMoney() {
			continue
		}
		r := route{step: st}
		r.fromRole, r.toRole = stepRoles(s, st)
		if st.Kind == pipeline.KindReverse {
			undone, _ := findStep(s, func(o stepState) bool { return o.ID == st.Reverses })
			r.from, r.to, r.holder = undone.To, undone.From, st.ToHolder
			out = append(out, r)
			continue
		}
		for _, role := range []pipeline.Role{r.fromRole, r.toRole} {
			switch {
			case role.Customer() && at.Status == CustomerClosed:
				return nil, fmt.Errorf("%w: customer %s is CLOSED: replay reads step %d's (%s) %s from the customer's record "+
					"and will not pay a closed customer; settle compensate %d returns the money to the virtual account",
					ErrRefused, at.Ref, st.ID, st.Kind, role.Key(), s.ID)
			case !role.Customer() && !configured:
				return nil, fmt.Errorf("%w: provider %s is not in the configuration (providers[]): replay reads step %d's (%s) "+
					"%s from it; configure the provider again, or settle compensate %d", ErrRefused, at.Provider, st.ID, st.Kind, role.Key(), s.ID)
			}
		}
		r.from, r.to, r.holder = e.Route(st.Kind)
		out = append(out, r)
	}
	return out, nil
}

// apply points the step at its route, if that changed, and says what
// changed: old → new for each account (a customer's masked), and whether the
// payee's holder name changed (never shown).
func (r route) apply(ctx context.Context, tx *sqlx.Tx) ([]string, error) {
	st := r.step
	if r.from == st.From && r.to == st.To && r.holder == st.ToHolder {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE steps SET from_account = $2, to_account = $3, to_holder = $4, updated_at = now() WHERE id = $1`,
		st.ID, r.from, r.to, r.holder); err != nil {
		return nil, err
	}
	var out []string
	for _, c := range []struct {
		dir      string
		role     pipeline.Role
		old, now string
	}{{"from", r.fromRole, st.From, r.from}, {"to", r.toRole, st.To, r.to}} {
		if c.old != c.now {
			out = append(out, fmt.Sprintf("step %d (%s, seq %d): %s %s %s → %s", st.ID, st.Kind, st.Seq, c.dir,
				c.role.Key(), c.role.Shown(c.old), c.role.Shown(c.now)))
		}
	}
	if r.holder != st.ToHolder {
		out = append(out, fmt.Sprintf("step %d (%s, seq %d): the payee's holder name is the customer's current one", st.ID, st.Kind, st.Seq))
	}
	return out, nil
}

// nextAttempt says what the failed step sends at its next claim. moved
// says whether replay changed its accounts: then an attempt the bank never
// acted on is SUPERSEDED, so the claim makes a new attempt with a new key
// and the old key is never sent with other content (ADR 0002). That is
// safe: the step is FAILED, so the last claim recorded its outcome and
// every earlier claim's lease had ended before the next one was made, and
// no worker calls the bank past its lease (pipeline.Executor), so nothing
// can still send the old key; and the bank's last word on it was that it
// did not act.
func nextAttempt(ctx context.Context, tx *sqlx.Tx, st stepState, moved bool) (string, error) {
	switch {
	case !st.Kind.MovesMoney():
		return "no bank transfer: the step moves no money", nil
	case st.Attempt == 0:
		return fmt.Sprintf("its first attempt, key %s, will be sent", pipeline.AttemptKey(st.ID, 1)), nil
	case st.Transfer == pipeline.AttemptRefused:
		return fmt.Sprintf("the bank refused attempt %d (%s): attempt %d with the new key %s will be sent",
			st.Attempt, st.BankCode, st.Attempt+1, pipeline.AttemptKey(st.ID, st.Attempt+1)), nil
	case !moved:
		return fmt.Sprintf("attempt %d was never acted on by the bank: it will be sent again with the same key %s", st.Attempt, st.Key), nil
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE transfers SET status = 'SUPERSEDED', updated_at = now() WHERE step_id = $1 AND attempt = $2 AND status = 'SENDING'`,
		st.ID, st.Attempt); err != nil {
		return "", err
	}
	return fmt.Sprintf("attempt %d (key %s) was never acted on by the bank and its accounts changed: it is SUPERSEDED and its key "+
		"never sent again; attempt %d with the new key %s will be sent", st.Attempt, st.Key, st.Attempt+1, pipeline.AttemptKey(st.ID, st.Attempt+1)), nil
}

// Cancel stops a settlement before any money moved: every step not DONE is
// CANCELLED and so is the settlement. The deposit stays in the virtual
// account, at the bank and in the ledger; the next settlement of the VA
// takes it over rather than counting it again (ADR 0005), unless the
// customer is suspended.
func (db *DB) Cancel(ctx context.Context, id int64, a Audit, dryRun bool) (Outcome, error) {
	return db.operate(ctx, CommandCancel, id, a, dryRun, func(tx *sqlx.Tx, s settlementState, out *Outcome) error {
		switch s.Status {
		case pipeline.SettlementCancelled:
			return fmt.Errorf("%w: settlement %d is already CANCELLED", ErrNothingToDo, id)
		case pipeline.SettlementRunning, pipeline.SettlementFailed:
		default:
			return fmt.Errorf("%w: settlement %d is %s; cancel stops a RUNNING or FAILED settlement before money moved", ErrRefused, id, s.Status)
		}
		for _, st := range s.Steps {
			if st.Status == pipeline.StepRunning || (st.Attempt > 0 && st.Transfer != pipeline.AttemptRefused) {
				return fmt.Errorf("%w: step %d (%s) was sent to the bank (attempt %d is %s): money may have moved; "+
					"wait for it to end, then use settle compensate", ErrRefused, st.ID, st.Kind, st.Attempt, orNone(string(st.Transfer), string(st.Status)))
			}
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE steps SET status = 'CANCELLED', lease_until = NULL, updated_at = now()
			 WHERE settlement_id = $1 AND status <> 'DONE'`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			WITH s AS (UPDATE settlements SET status = 'CANCELLED', finished_at = now(), updated_at = now()
			            WHERE id = $1 RETURNING va_id)
			UPDATE virtual_accounts SET held_until = NULL FROM s WHERE virtual_accounts.id = s.va_id`, id); err != nil {
			return err
		}
		out.Changes = append(out.Changes, fmt.Sprintf("settlement %d: %s → CANCELLED; its %d steps are CANCELLED", id, s.Status, len(s.Steps)),
			"the deposit stays in the virtual account and in the ledger: the next poll settles it again, "+
				"taking it over without counting it twice, unless the customer is suspended")
		n, err := resolveFailures(ctx, tx, id, fmt.Sprintf("settlement %d was CANCELLED by %s: %s", id, a.Actor, a.Reason))
		if n > 0 {
			out.Changes = append(out.Changes, "its failure alert is resolved")
		}
		return err
	})
}

// resolveFailures resolves the settlement's open settlement_failed
// problems inside tx, an operator having ended the settlement, and returns
// how many there were.
func resolveFailures(ctx context.Context, tx *sqlx.Tx, id int64, note string) (int, error) {
	var keys []string
	if err := tx.SelectContext(ctx, &keys, `
		SELECT DISTINCT problem_key FROM alerts WHERE settlement_id = $1 AND kind = $2 ORDER BY 1`,
		id, pipeline.AlertKindSettlementFailed); err != nil {
		return 0, err
	}
	return resolveProblems(ctx, tx, keys, note)
}

func orNone(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Compensate reverses a FAILED settlement's completed legs as new transfers,
// in reverse order, returning the money to the virtual account and restoring
// the obligation; the settlement is COMPENSATING until they are done, then
// COMPENSATED. Its steps that will never run are CANCELLED. The money back
// in the VA is in the ledger's VA account again; the next settlement of the
// VA takes it over rather than counting it as a new deposit (ADR 0005).
func (db *DB) Compensate(ctx context.Context, id int64, a Audit, dryRun bool) (Outcome, error) {
	return db.operate(ctx, CommandCompensate, id, a, dryRun, func(tx *sqlx.Tx, s settlementState, out *Outcome) error {
		n, notifying := undelivered(s)
		switch {
		case s.Status == pipeline.SettlementCompensating, s.Status == pipeline.SettlementCompensated:
			return fmt.Errorf("%w: settlement %d is already %s", ErrNothingToDo, id, s.Status)
		case s.Status == pipeline.SettlementSettled && notifying:
			return fmt.Errorf("%w: settlement %d is SETTLED: all its money moved as planned, only its notification to the lender's app "+
				"is not delivered (step %d %s is %s). Compensating would claw back a good payout. The notification retries on its own; "+
				"once it is DEAD, settle replay %d sends it again", ErrRefused, id, n.ID, n.Kind, n.Status, id)
		case s.Status == pipeline.SettlementFailed:
		default:
			return fmt.Errorf("%w: settlement %d is %s; only a FAILED settlement is compensated", ErrRefused, id, s.Status)
		}
		var done []pipeline.DoneLeg
		for _, st := range s.Steps {
			if st.Transfer == pipeline.AttemptUnknown || (st.Status != pipeline.StepDone && st.Transfer == pipeline.AttemptSucceeded) {
				return fmt.Errorf("%w: step %d's attempt %d is %s at the bank: the engine must learn its outcome first",
					ErrRefused, st.ID, st.Attempt, st.Transfer)
			}
			if st.Status == pipeline.StepDone && st.Kind.MovesMoney() {
				done = append(done, pipeline.DoneLeg{StepID: st.ID, Seq: st.Seq, Kind: st.Kind,
					Amount: st.Amount, From: st.From, To: st.To})
			}
		}
		reversals := pipeline.Reversals(done)
		if len(reversals) == 0 {
			return fmt.Errorf("%w: settlement %d moved no money; use settle cancel", ErrRefused, id)
		}
		var provider, currency string
		if err := tx.QueryRowxContext(ctx, `SELECT provider, currency FROM settlements WHERE id = $1`, id).Scan(&provider, &currency); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE steps SET status = 'CANCELLED', lease_until = NULL, updated_at = now()
			 WHERE settlement_id = $1 AND status <> 'DONE'`, id); err != nil {
			return err
		}
		head, err := insertSteps(ctx, tx, id, provider, currency, reversals)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE settlements SET status = 'COMPENSATING', updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		out.Changes = append(out.Changes, fmt.Sprintf("settlement %d: FAILED → COMPENSATING; steps not done are CANCELLED", id))
		for _, r := range reversals {
			out.Changes = append(out.Changes, fmt.Sprintf("new step seq %d: REVERSE %d from %s back to %s (undoes step %d)",
				r.Seq, r.Amount, pipeline.AccountNumber(r.From), pipeline.AccountNumber(r.To), r.Reverses))
		}
		out.Enqueue = pipeline.StepRef{ID: head}
		return nil
	})
}

func findStep(s settlementState, match func(stepState) bool) (stepState, bool) {
	for _, st := range s.Steps {
		if match(st) {
			return st, true
		}
	}
	return stepState{}, false
}

// FailedSettlements lists the FAILED settlements updated since since,
// optionally only at provider, each with its customer and failed step, in
// the order of their IDs: what settle replay --failed-since replays.
func (db *DB) FailedSettlements(ctx context.Context, since time.Time, provider string) ([]FailedSettlement, error) {
	out := []FailedSettlement{}
	err := db.x.SelectContext(ctx, &out, `
		SELECT `+failedColumns+`
		  FROM settlements s `+failedJoins+`
		 WHERE s.status = 'FAILED' AND s.updated_at >= $1 AND ($2 = '' OR s.provider = $2)
		 ORDER BY s.id`, since, provider)
	if err != nil {
		return nil, fmt.Errorf("list failed settlements: %w", err)
	}
	return out, nil
}

// AuditRow is one audit_log entry.
type AuditRow struct {
	// Seq is the row's place in the audit log's hash chain: 1, 2, 3, ...
	// without gaps. ID comes from a sequence and skips the values of rolled
	// back inserts (a dry run's row among them): a gap in ID is not a
	// deletion, a gap in Seq would be, and settle verify reports it.
	Seq     int64           `db:"seq" json:"seq"`
	ID      int64           `db:"id" json:"id"`
	Actor   string          `db:"actor" json:"actor"` // as the operator claims (--actor)
	Command string          `db:"command" json:"command"`
	Args    json.RawMessage `db:"args" json:"args"`
	Reason  string          `db:"reason" json:"reason"`
	Subject string          `db:"subject" json:"subject"`
	// Outcome is AuditApplied, AuditRefused or AuditNothingToDo, and Detail
	// why a command was not applied ("" when it was).
	Outcome string          `db:"outcome" json:"outcome"`
	Detail  string          `db:"detail" json:"detail"`
	Before  json.RawMessage `db:"before" json:"before"`
	After   json.RawMessage `db:"after" json:"after"` // null unless applied
	// DBUser is the database user the command connected as and Client the
	// host it connected from ("local" for a Unix socket), as PostgreSQL saw
	// them; both "" for a row written before they were recorded.
	DBUser    string    `db:"db_user" json:"db_user"`
	Client    string    `db:"client" json:"client"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	// Hash is the row's SHA-256 in the chain, hex: the newest row's is
	// what an operator notes outside the database to anchor the chain.
	Hash string `db:"hash" json:"hash"`
}

// ListAudit returns audit entries, newest first (in chain order), for one
// subject ("settlement:12") or all ("").
func (db *DB) ListAudit(ctx context.Context, subject string, limit int) ([]AuditRow, error) {
	out := []AuditRow{}
	err := db.x.SelectContext(ctx, &out, `
		SELECT seq, id, actor, command, args, reason, subject, outcome, detail, coalesce(before, 'null') AS before,
		       coalesce(after, 'null') AS after, coalesce(db_user, '') AS db_user,
		       CASE WHEN db_user IS NULL THEN '' ELSE coalesce(host(client_addr), 'local') END AS client, created_at,
		       encode(hash, 'hex') AS hash
		  FROM audit_log WHERE ($1 = '' OR subject = $1) ORDER BY seq DESC LIMIT $2`, subject, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return out, nil
}
