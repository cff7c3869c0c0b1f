package jobs

import (
	"context"
	"time"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/store"
)

// DefaultStuckAfter is how long a step may stay RUNNING with its attempt's
// outcome unknown before the sweep alerts operators.
const DefaultStuckAfter = 15 * time.Minute

// WithStuckAfter sets how long a step may stay RUNNING with its attempt's
// outcome unknown, by the database's clock, before the sweep alerts
// operators; d <= 0 keeps DefaultStuckAfter.
func (s *Sweep) WithStuckAfter(d time.Duration) *Sweep {
	if d > 0 {
		s.stuckAfter = d
	}
	return s
}

// alertStuck raises one alert per step stuck in an unknown outcome (its
// problem key is the step's, so a step that stays stuck raises nothing
// more), and resolves the problem of every stuck step whose outcome is
// known now, saying how.
func (s *Sweep) alertStuck(ctx context.Context, res *SweepResult) error {
	stuck, err := s.db.UnknownSteps(ctx, s.stuckAfter, s.batch)
	if err != nil {
		return err
	}
	for _, st := range stuck {
		raised, err := s.db.RaiseAlertOnce(ctx, notify.StuckAlert(notify.Stuck{
			ProblemKey: store.StuckProblemKey(st.SettlementID, st.StepID), SettlementID: st.SettlementID,
			Seq: st.Seq, Kind: st.Kind, Attempt: st.Attempt, Key: st.Key, Since: st.Since, For: st.For,
		}))
		if err != nil {
			return err
		}
		if raised {
			res.Stuck++
			s.logger.WarnContext(ctx, "step stuck in an unknown outcome; operators alerted",
				"settlement", st.SettlementID, "step", st.StepID, "attempt", st.Attempt, "unknown_for", st.For.Round(time.Second))
		}
	}
	known, err := s.db.UnstuckProblems(ctx, s.batch)
	if err != nil {
		return err
	}
	for _, u := range known {
		resolved, err := s.db.ResolveProblem(ctx, u.ProblemKey, notify.UnstuckNote(notify.Unstuck{
			Seq: u.Seq, Kind: u.Kind, Status: u.Status, Attempt: u.Attempt, Transfer: u.Transfer,
		}))
		if err != nil {
			return err
		}
		if resolved {
			res.Unstuck++
		}
	}
	return nil
}
