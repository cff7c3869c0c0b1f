package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// StatusReader reads the status page's snapshot; *store.DB implements it.
type StatusReader interface {
	Status(ctx context.Context, q store.StatusQuery) (store.Status, error)
}

var _ StatusReader = (*store.DB)(nil)

// ProviderHealth is one bank provider's state as the engine sees it, e.g.
// its circuit breaker: "closed" (healthy), "half-open", "open".
type ProviderHealth struct {
	Name  string
	State string
}

// PageConfig tunes the status page. Zero fields take their defaults.
type PageConfig struct {
	// TimeZone is the IANA zone of the page's clock and of "settled
	// today"; default "UTC".
	TimeZone string
	// ReadyGrace is how long a READY step may be due before it is shown as
	// stuck; default 1m.
	ReadyGrace time.Duration
	// Limit bounds the failed and stuck lists; default 50.
	Limit int
	// ShowCustomerNames shows holder names next to customer references;
	// default false: references only.
	ShowCustomerNames bool
	// QueueLatency, when set, returns how long the oldest pending task of
	// the steps queue has waited (asynq Inspector.GetQueueInfo("steps").Latency).
	QueueLatency func(ctx context.Context) (time.Duration, error)
	// Providers, when set, returns each bank provider's health.
	Providers func() []ProviderHealth
	// Logger; default slog.Default().
	Logger *slog.Logger
}

//go:embed templates
var templateFS embed.FS

var (
	pageTemplate = template.Must(template.ParseFS(templateFS, "templates/status.html"))
	pageCSS      = mustRead("templates/status.css")
	// The page's only style is inline and allowed by its hash; nothing else
	// may load or run.
	pageCSP = "default-src 'none'; style-src 'sha256-" + hashCSS(pageCSS) + "'; img-src data:; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func mustRead(name string) string {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func hashCSS(css string) string {
	sum := sha256.Sum256([]byte(css))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// StatusPage returns the status page handler alone, without Auth; New
// mounts it behind Auth at /.
func StatusPage(status StatusReader, cfg PageConfig) (http.Handler, error) {
	return newPage(status, cfg, "")
}

// newPage builds the page; dashboard is the dashboard's link, "" for none.
func newPage(status StatusReader, cfg PageConfig, dashboard string) (*page, error) {
	zone := cmp(cfg.TimeZone, "UTC")
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return nil, fmt.Errorf("web: time zone %q: give an IANA name such as Asia/Seoul or UTC", zone)
	}
	return &page{
		status: status,
		query: store.StatusQuery{TimeZone: zone, ReadyGrace: cfg.ReadyGrace, Limit: cfg.Limit,
			WithNames: cfg.ShowCustomerNames},
		cfg:       cfg,
		loc:       loc,
		dashboard: dashboard,
		logger:    cmp(cfg.Logger, slog.Default()),
	}, nil
}

type page struct {
	status    StatusReader
	query     store.StatusQuery
	cfg       PageConfig
	loc       *time.Location
	dashboard string
	logger    *slog.Logger
}

// pageTimeout bounds the reads behind one page view.
const pageTimeout = 5 * time.Second

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	code := http.StatusOK
	st, err := p.status.Status(ctx, p.query)
	if err != nil {
		p.logger.Warn("status page: read the database", "err", err)
		code = http.StatusServiceUnavailable
	}
	v := p.view(ctx, st, err)
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, v); err != nil {
		p.logger.Error("status page: render", "err", err)
		http.Error(w, "500 the status page failed to render; see the log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// ReplayCommand is the command that re-drives a FAILED settlement.
func ReplayCommand(id int64) string {
	return fmt.Sprintf(`settle replay %d --reason "..."`, id)
}

// Level is how a number reads at a glance.
const (
	levelOK   = "ok"
	levelWarn = "warn"
	levelBad  = "bad"
	levelNone = "none" // unknown or not wired
)

type pageView struct {
	CSS       template.CSS
	Now       string
	Zone      string
	Dashboard string
	Error     string
	Attention []string // one line per kind of problem; empty: all clear
	Cards     []card
	Statuses  []statusRow
	Today     []todayRow
	DayStart  string
	ShowNames bool
	Failed    []failedRow
	MoreFail  int64
	Stuck     []stuckRow
	MoreStuck int64
	Providers []providerRow
}

type card struct{ Label, Value, Note, Level string }

type statusRow struct {
	Status pipeline.SettlementStatus
	Count  string
	Level  string
}

type todayRow struct{ Currency, Count, Amount string }

type failedRow struct {
	ID                                         int64
	Customer, Name, Amount, Step, To, Provider string
	Reason, Age, At, Replay                    string
}

type stuckRow struct {
	ID, SettlementID                int64
	Customer, State, For, LastError string
	Kind                            pipeline.Kind
	To, Hint                        string
	Attempts                        int
}

type providerRow struct{ Name, State, Level, Note string }

func (p *page) view(ctx context.Context, st store.Status, readErr error) pageView {
	v := pageView{CSS: template.CSS(pageCSS), Zone: p.loc.String(), Dashboard: p.dashboard, ShowNames: p.cfg.ShowCustomerNames}
	v.Providers = p.providers()
	if readErr != nil {
		v.Now = time.Now().In(p.loc).Format("2006-01-02 15:04:05 MST")
		v.Error = "The database could not be read: " + oneLine(readErr.Error())
		v.Attention = []string{"the database is not readable"}
		return v
	}
	v.Now = st.Now.In(p.loc).Format("2006-01-02 15:04:05 MST")
	v.DayStart = st.DayStart.In(p.loc).Format("2006-01-02 15:04 MST")
	v.Cards = p.cards(ctx, st)
	v.Statuses = statusRows(st.ByStatus)
	for _, t := range st.SettledToday {
		v.Today = append(v.Today, todayRow{Currency: t.Currency, Count: pipeline.Grouped(t.Count), Amount: pipeline.Money{Amount: t.Amount, Currency: t.Currency}.String()})
	}
	for _, f := range st.Failed {
		v.Failed = append(v.Failed, p.failedRow(f))
	}
	v.MoreFail = max(st.ByStatus[pipeline.SettlementFailed]-int64(len(st.Failed)), 0)
	for _, s := range st.Stuck {
		v.Stuck = append(v.Stuck, stuckView(s))
	}
	v.MoreStuck = max(st.StuckRunning+st.StuckReady-int64(len(st.Stuck)), 0)
	v.Attention = attention(st, v.Providers)
	return v
}

func (p *page) cards(ctx context.Context, st store.Status) []card {
	oldest := "none open"
	if st.Open > 0 {
		oldest = "oldest " + durationText(st.OldestOpen)
	}
	failed := st.ByStatus[pipeline.SettlementFailed]
	stuck := st.StuckRunning + st.StuckReady
	return []card{
		{"In flight", pipeline.Grouped(st.Open), oldest, levelIf(st.OldestOpen > time.Hour, levelWarn)},
		{"Failed", pipeline.Grouped(failed), "awaiting an operator", levelIf(failed > 0, levelBad)},
		{"Stuck steps", pipeline.Grouped(stuck), fmt.Sprintf("%d lease expired · %d overdue", st.StuckRunning, st.StuckReady),
			levelIf(stuck > 0, levelWarn)},
		{"Dead steps", pipeline.Grouped(st.DeadSteps), "out of attempts", levelIf(st.DeadSteps > 0, levelBad)},
		p.latencyCard(ctx),
		{"Alert backlog", pipeline.Grouped(st.AlertBacklog), "undelivered alerts", levelIf(st.AlertBacklog > 10, levelWarn)},
		{"Undelivered events", pipeline.Grouped(st.NotifyRetrying + st.NotifyGaveUp),
			fmt.Sprintf("settled, lender app not told: %d retrying · %d gave up", st.NotifyRetrying, st.NotifyGaveUp),
			levelIf(st.NotifyRetrying+st.NotifyGaveUp > 0, levelWarn)},
	}
}

func levelIf(cond bool, level string) string {
	if cond {
		return level
	}
	return levelOK
}

func (p *page) latencyCard(ctx context.Context) card {
	c := card{Label: "Queue latency", Note: "oldest pending step task", Level: levelNone}
	if p.cfg.QueueLatency == nil {
		c.Value, c.Note = "—", "not wired"
		return c
	}
	d, err := p.cfg.QueueLatency(ctx)
	if err != nil {
		p.logger.Warn("status page: queue latency", "err", err)
		c.Value, c.Note, c.Level = "unknown", "the queue could not be read", levelBad
		return c
	}
	c.Value, c.Level = durationText(d), levelIf(d > time.Minute, levelWarn)
	return c
}

func (p *page) providers() []providerRow {
	if p.cfg.Providers == nil {
		return nil
	}
	var out []providerRow
	for _, h := range p.cfg.Providers() {
		word, level, note := providerWord(h.State)
		out = append(out, providerRow{Name: h.Name, State: word, Level: level, Note: note})
	}
	return out
}

// providerWord says what a provider's circuit-breaker state means for
// payouts, in the word the page shows: "closed" is a healthy breaker, and
// would read as "the bank is closed".
func providerWord(state string) (word, level, note string) {
	switch strings.ToLower(state) {
	case "closed", "ok", "healthy", "up":
		return "healthy", levelOK, ""
	case "half-open", "half_open", "degraded":
		return "degraded", levelWarn, "a few calls probe whether the bank has recovered"
	case "open", "paused":
		return "paused", levelBad, "calls to the bank are held until the cool-down ends"
	default:
		return state, levelBad, "unknown state"
	}
}

// statusOrder is the order statuses are listed in.
var statusOrder = []pipeline.SettlementStatus{pipeline.SettlementRunning, pipeline.SettlementCompensating,
	pipeline.SettlementFailed, pipeline.SettlementSettled, pipeline.SettlementCancelled, pipeline.SettlementCompensated}

func statusRows(by map[pipeline.SettlementStatus]int64) []statusRow {
	var rows []statusRow
	seen := map[pipeline.SettlementStatus]bool{}
	add := func(s pipeline.SettlementStatus) {
		level := levelNone
		switch {
		case s == pipeline.SettlementFailed && by[s] > 0:
			level = levelBad
		case s == pipeline.SettlementSettled || s == pipeline.SettlementCompensated:
			level = levelOK
		}
		rows = append(rows, statusRow{Status: s, Count: pipeline.Grouped(by[s]), Level: level})
		seen[s] = true
	}
	for _, s := range statusOrder {
		add(s)
	}
	for s := range by {
		if !seen[s] {
			add(s)
		}
	}
	return rows
}

func (p *page) failedRow(f store.FailedSettlement) failedRow {
	step := string(f.StepKind)
	if f.StepStatus != "" {
		step += " " + string(f.StepStatus)
	}
	return failedRow{
		ID: f.ID, Customer: f.CustomerRef, Name: f.HolderName, Amount: pipeline.Money{Amount: f.Amount, Currency: f.Currency}.String(),
		Step: step, To: f.To.Masked(), Provider: f.Provider, Reason: f.Reason,
		Age: durationText(f.Age) + " ago", At: f.FailedAt.In(p.loc).Format("2006-01-02 15:04:05 MST"),
		Replay: ReplayCommand(f.ID),
	}
}

func stuckView(s store.StuckStep) stuckRow {
	row := stuckRow{ID: s.ID, SettlementID: s.SettlementID, Customer: s.CustomerRef, Kind: s.Kind,
		For: durationText(s.For), LastError: s.LastError, Attempts: s.Attempts, To: s.To.Masked()}
	if s.Status == pipeline.StepRunning {
		row.State = "RUNNING, lease expired"
		row.Hint = "the sweep asks the bank what happened; if it persists, check the sweep job"
	} else {
		row.State = "READY, not picked up"
		row.Hint = "check the workers and Redis; the READY relay re-enqueues it"
	}
	return row
}

func attention(st store.Status, providers []providerRow) []string {
	var out []string
	if n := st.ByStatus[pipeline.SettlementFailed]; n > 0 {
		out = append(out, pipeline.Counted(n, "failed settlement", "failed settlements"))
	}
	if n := st.StuckRunning + st.StuckReady; n > 0 {
		out = append(out, pipeline.Counted(n, "stuck step", "stuck steps"))
	}
	for _, p := range providers {
		if p.Level != levelOK {
			out = append(out, "provider "+p.Name+" is "+p.State)
		}
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
