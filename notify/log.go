package notify

import (
	"context"
	"log/slog"
	"strings"

	"github.com/settle-dev/settle/pipeline"
)

// Log writes alerts to a slog logger, one structured line each: what settle
// does when no Slack is configured. It never fails.
type Log struct {
	logger *slog.Logger
}

var _ Notifier = (*Log)(nil)

// NewLog returns a notifier writing to logger.
func NewLog(logger *slog.Logger) *Log { return &Log{logger: logger} }

// Post implements Notifier.
func (l *Log) Post(ctx context.Context, n Notice) (Ref, error) {
	if n.Storm != nil {
		l.storm(ctx, "alert storm", *n.Storm)
		return Ref{}, nil
	}
	l.alert(ctx, "alert", n)
	return Ref{}, nil
}

// Update implements Notifier: a log line cannot be edited, so it does
// nothing.
func (l *Log) Update(context.Context, Ref, Notice) error { return nil }

// Reply implements Notifier.
func (l *Log) Reply(ctx context.Context, _ Ref, n Notice) error {
	switch {
	case n.Storm != nil:
		l.storm(ctx, "alert storm goes on", *n.Storm)
	case n.Alert.Kind == pipeline.AlertKindResolved:
		l.alert(ctx, "alert resolved", n)
	default:
		l.alert(ctx, "alert repeated", n)
	}
	return nil
}

func (l *Log) alert(ctx context.Context, msg string, n Notice) {
	a := n.Alert
	attrs := []slog.Attr{
		slog.String("problem_key", a.ProblemKey),
		slog.String("kind", string(a.Kind)),
		slog.String("severity", string(a.Severity)),
		slog.Int64("alert_id", a.ID),
		slog.String("title", strings.TrimPrefix(title(a), "Resolved: ")),
	}
	if a.SettlementID != 0 {
		attrs = append(attrs, slog.Int64("settlement", a.SettlementID))
	}
	attrs = appendNonEmpty(attrs, "customer", a.Customer, "provider", a.Provider, "payout_account", masked(a.PayoutAccount))
	switch a.Kind {
	case pipeline.AlertKindResolved:
		attrs = appendNonEmpty(attrs, "note", scrub(a, a.Detail))
	case pipeline.AlertKindDailySummary:
		for _, f := range summaryFields(scrub(a, a.Detail)) {
			attrs = appendNonEmpty(attrs, strings.ToLower(f[0]), f[1])
		}
		attrs = appendNonEmpty(attrs, "action", a.Action)
	default:
		attrs = appendNonEmpty(attrs, "why", why(a), "tried", tried(a), "action", a.Action, "fix", fixHint(a))
	}
	if n.Occurrences > 1 {
		attrs = append(attrs, slog.Int("occurrences", n.Occurrences))
	}
	l.logger.LogAttrs(ctx, level(a.Severity), msg, attrs...)
}

func (l *Log) storm(ctx context.Context, msg string, s Storm) {
	causes := make([]string, len(s.Causes))
	for i, c := range s.Causes {
		causes[i] = c.Cause + " " + pipeline.Grouped(int64(c.Count))
	}
	attrs := []slog.Attr{
		slog.String("problem_key", s.Key),
		slog.String("kind", string(s.Kind)),
		slog.String("severity", string(s.Severity)),
		slog.Int("count", s.Count),
		slog.String("window", s.Window.String()),
		slog.String("causes", strings.Join(causes, ", ")),
		slog.Int("folded", s.Folded),
	}
	attrs = appendNonEmpty(attrs, "provider", s.Provider, "action", s.Action)
	l.logger.LogAttrs(ctx, level(s.Severity), msg, attrs...)
}

func appendNonEmpty(attrs []slog.Attr, kv ...string) []slog.Attr {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			attrs = append(attrs, slog.String(kv[i], kv[i+1]))
		}
	}
	return attrs
}

// level is the log level of a severity.
func level(severity pipeline.Severity) slog.Level {
	switch severity {
	case pipeline.SeverityCritical:
		return slog.LevelError
	case pipeline.SeverityWarning:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
