package jobs

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// DailySummaryConfig configures the daily summary. Zero fields take the
// documented default.
type DailySummaryConfig struct {
	// Period is how far back a summary looks from its tick (default 24h).
	Period time.Duration
	// Location is the time zone the summary's times and date are shown in
	// (default time.Local).
	Location *time.Location
}

// DailySummary raises the daily summary: the settlements SETTLED and
// failed within the last period, the ones waiting for an operator, and the
// oldest settlement still open. It goes through the alert outbox like any
// alert, one per date.
type DailySummary struct {
	db     SummaryStore
	cfg    DailySummaryConfig
	logger *slog.Logger
}

// SummaryStore is what the daily summary reads and writes: the period's
// figures, and the summary's alert.
type SummaryStore interface {
	DaySummary(ctx context.Context, from, to time.Time) (store.DaySummary, error)
	RaiseAlertOnce(ctx context.Context, a pipeline.Alert) (bool, error)
}

var _ SummaryStore = (*store.DB)(nil)

// NewDailySummary returns the daily summary job.
func NewDailySummary(db SummaryStore, cfg DailySummaryConfig, logger *slog.Logger) *DailySummary {
	cfg.Period = cmp.Or(cfg.Period, 24*time.Hour)
	cfg.Location = cmp.Or(cfg.Location, time.Local)
	return &DailySummary{db: db, cfg: cfg, logger: logger}
}

// DailySummaryResult reports one run.
type DailySummaryResult struct {
	ProblemKey string `json:"problem_key"`
	// Raised is false when this date's summary was raised already with the
	// same facts.
	Raised  bool  `json:"raised"`
	Settled int64 `json:"settled"`
	Failed  int   `json:"failed"`
}

// RunOnce raises the summary of the period that ends at the tick.
func (d *DailySummary) RunOnce(ctx context.Context, to time.Time) (DailySummaryResult, error) {
	from := to.Add(-d.cfg.Period)
	day, err := d.db.DaySummary(ctx, from, to)
	if err != nil {
		return DailySummaryResult{}, err
	}
	s := summaryOf(day, from, to, d.cfg.Location)
	a := notify.DailySummaryAlert(s)
	res := DailySummaryResult{ProblemKey: a.ProblemKey, Failed: s.Failed}
	for _, st := range s.Settled {
		res.Settled += st.Count
	}
	if res.Raised, err = d.db.RaiseAlertOnce(ctx, a); err != nil {
		return res, err
	}
	d.logger.InfoContext(ctx, "daily summary", "problem_key", a.ProblemKey, "raised", res.Raised,
		"settled", res.Settled, "failed", s.Failed, "failed_now", s.FailedNow, "open", s.Open)
	return res, nil
}

// summaryOf is the store's summary of a period as notify words it.
func summaryOf(day store.DaySummary, from, to time.Time, loc *time.Location) notify.DailySummary {
	s := notify.DailySummary{From: from, To: to, Location: loc, Failed: day.Failed, FailedNow: day.FailedNow, Open: day.Open}
	for _, t := range day.Settled {
		s.Settled = append(s.Settled, notify.Settled{Count: t.Count, Total: pipeline.Money{Amount: t.Amount, Currency: t.Currency}})
	}
	if o := day.Oldest; o != nil {
		s.Oldest = &notify.OpenSettlement{ID: o.ID, Status: o.Status, Customer: o.CustomerRef, CreatedAt: o.CreatedAt}
	}
	return s
}
