package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// ProblemStore raises an alert unless its problem is open with the same
// facts, and resolves a problem with a note (store.ErrNoProblem when none
// is open): what every job that tells operators of a problem, and of its
// end, needs of the alert outbox.
type ProblemStore interface {
	RaiseAlertOnce(ctx context.Context, a pipeline.Alert) (bool, error)
	ResolveProblem(ctx context.Context, key, note string) (bool, error)
}

// VerifyStore is what the scheduled verify job reads and writes: the
// invariant checks' violations, and the alerts about them.
type VerifyStore interface {
	Verify(ctx context.Context) ([]store.Violation, error)
	ProblemStore
}

// JournalStore is what VerifyJournal reads of a provider's transfers.
type JournalStore interface {
	SucceededTransfers(ctx context.Context, provider string) ([]pipeline.BankTransfer, error)
	LiveTransferKeys(ctx context.Context, provider string) (map[string]bool, error)
}

var (
	_ VerifyStore  = (*store.DB)(nil)
	_ JournalStore = (*store.DB)(nil)
)

// Verifier runs settle verify's invariant checks on a schedule, so that
// operators learn of a broken invariant without running the command.
type Verifier struct {
	db     VerifyStore
	logger *slog.Logger
}

// NewVerifier returns the scheduled verify job.
func NewVerifier(db VerifyStore, logger *slog.Logger) *Verifier {
	return &Verifier{db: db, logger: logger}
}

// VerifyResult reports what a check of the invariants told operators.
type VerifyResult struct {
	Violations int      `json:"violations"`
	Raised     []string `json:"raised,omitempty"`   // checks alerted now: newly broken, or broken differently
	Resolved   []string `json:"resolved,omitempty"` // checks whose alert was resolved: they hold again
}

// RunOnce checks every invariant store.Verify knows and reports the result
// (ReportViolations).
func (v *Verifier) RunOnce(ctx context.Context) (VerifyResult, error) {
	vs, err := v.db.Verify(ctx)
	if err != nil {
		return VerifyResult{}, err
	}
	res, err := ReportViolations(ctx, v.db, vs, store.InvariantChecks())
	if len(res.Raised) > 0 {
		v.logger.ErrorContext(ctx, "invariants broken; operators alerted: run settle verify", "checks", res.Raised, "violations", res.Violations)
	}
	return res, err
}

// ReportViolations tells operators what a run of the invariant checks
// found: one alert per broken check, raised again only when its violations
// change (store.RaiseAlertOnce), and a resolved follow-up for every check
// in checked that found nothing while its alert was open.
func ReportViolations(ctx context.Context, db ProblemStore, vs []store.Violation, checked []string) (VerifyResult, error) {
	res := VerifyResult{Violations: len(vs)}
	byCheck := map[string][]notify.Violation{}
	for _, v := range vs {
		byCheck[v.Check] = append(byCheck[v.Check], notify.Violation{SettlementID: v.SettlementID, Detail: v.Detail})
	}
	for _, c := range slices.Sorted(maps.Keys(byCheck)) {
		raised, err := db.RaiseAlertOnce(ctx, notify.InvariantAlert(c, byCheck[c]))
		if err != nil {
			return res, err
		}
		if raised {
			res.Raised = append(res.Raised, c)
		}
	}
	for _, c := range checked {
		if _, bad := byCheck[c]; bad {
			continue
		}
		resolved, err := db.ResolveProblem(ctx, notify.InvariantProblemKey(c), "settle verify finds "+c+" holding again")
		if errors.Is(err, store.ErrNoProblem) {
			continue
		}
		if err != nil {
			return res, err
		}
		if resolved {
			res.Resolved = append(res.Resolved, c)
		}
	}
	return res, nil
}

// journalCheck prefixes the kind of a difference between the engine and a
// bank's journal (pipeline.MismatchKinds) to make a check's name:
// "bank_journal_duplicate_at_bank".
const journalCheck = "bank_journal_"

// JournalChecks are the names of the checks VerifyJournal reports under.
func JournalChecks() []string {
	out := make([]string, 0, len(pipeline.MismatchKinds))
	for _, k := range pipeline.MismatchKinds {
		out = append(out, journalCheck+k)
	}
	return out
}

// VerifyJournal compares a provider's journal with the transfers recorded
// as succeeded there (pipeline.MatchJournal); readJournal returns the
// journal with each key read back into the engine's attempt key by the
// mapping of the provider's dialect, and its error is returned wrapped. It
// works on a running engine: the transfers recorded are read before the
// journal, so each of them was applied by the time the journal is read; a
// key in the journal whose attempt was in flight, or recorded only after
// that first read, is in flight, not a difference (a later run checks it),
// unless the bank applied it twice.
func VerifyJournal(ctx context.Context, db JournalStore, provider string,
	readJournal func(context.Context) ([]pipeline.BankTransfer, error)) ([]store.Violation, error) {
	ours, err := db.SucceededTransfers(ctx, provider)
	if err != nil {
		return nil, err
	}
	journal, err := readJournal(ctx)
	if err != nil {
		return nil, fmt.Errorf("provider %s: read journal: %w", provider, err)
	}
	live, err := db.LiveTransferKeys(ctx, provider)
	if err != nil {
		return nil, err
	}
	recorded := make(map[string]bool, len(ours))
	for _, o := range ours {
		recorded[o.Key] = true
	}
	inFlight := func(key string) bool { return !recorded[key] && live[key] }
	var out []store.Violation
	for _, m := range pipeline.MatchJournal(ours, journal, inFlight) {
		out = append(out, store.Violation{Check: journalCheck + m.Kind, Detail: provider + " " + m.Key + ": " + m.Detail})
	}
	return out, nil
}
