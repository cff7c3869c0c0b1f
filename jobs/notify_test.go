package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-dev/settle/internal/demo"
	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/notify/notifytest"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

const appSecret = "lender-app-secret-0123456789"

// lenderApp is the lender's app: down, it answers 500 or drops the
// connection; up, it takes each signed event and counts it by its ID.
type lenderApp struct {
	mu       sync.Mutex
	up       bool
	calls    int
	refused  map[string]bool // event IDs it was sent while down
	received map[string]int  // event IDs it took, and how often
	bad      int             // requests whose signature did not verify
}

func newLenderApp(t *testing.T) (*lenderApp, *notify.CustomerWebhook) {
	t.Helper()
	a := &lenderApp{refused: map[string]bool{}, received: map[string]int{}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	sink, err := notify.NewCustomerWebhook(srv.URL, appSecret, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return a, sink
}

func (a *lenderApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(notify.HeaderEventID)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if err := notify.Verify([]byte(appSecret), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature),
		body, time.Now(), time.Minute); err != nil || !strings.Contains(string(body), id) {
		a.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if !a.up {
		a.refused[id] = true
		if a.calls%2 == 0 { // every other call finds the app gone altogether
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	a.received[id]++
	w.WriteHeader(http.StatusOK)
}

func (a *lenderApp) setUp(up bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.up = up
}

// seen returns what the app refused and received so far.
func (a *lenderApp) seen() (refused map[string]bool, received map[string]int, bad int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps(a.refused), maps(a.received), a.bad
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// notifyFixture is a fixture whose NOTIFY steps send to the lender app,
// with customers customers seeded.
func notifyFixture(t *testing.T, cfg pipeline.ExecutorConfig, customers int) (*fixture, *lenderApp, []demo.Customer) {
	t.Helper()
	f := newFixture(t, cfg)
	app, sink := newLenderApp(t)
	f.exec.WithEvents(sink)
	f.seeder = demo.NewSeeder(f.db, f.bank, demo.Options{Provider: "sandbox", Currency: "KRW", Accounts: accounts,
		Customers: customers, Seed: 11})
	cs, err := f.seeder.Seed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return f, app, cs
}

// paySalaries pays each customer and polls once: a settlement each.
func (f *fixture) paySalaries(t *testing.T, cs []demo.Customer, amount int64) {
	t.Helper()
	ctx := context.Background()
	for _, c := range cs {
		if err := f.seeder.Pay(ctx, c, amount); err != nil {
			t.Fatal(err)
		}
	}
	res, err := f.poller.RunOnce(ctx)
	if err != nil || res.Found != len(cs) {
		t.Fatalf("poll found %d deposits of %d (%+v): %v", res.Found, len(cs), res, err)
	}
}

// pumpUntil delivers queued steps, one at a time, until cond holds; a step
// that asks to be retried later is delivered again once its (test-sized)
// backoff has passed. It fails the test after a deadline.
func (f *fixture) pumpUntil(t *testing.T, what string, cond func([]store.SettlementDetail) bool) []store.SettlementDetail {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := settlements(t, f.db)
		if cond(all) {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 30s: %s", what, describe(all))
		}
		id, ok := f.queue.Pop()
		if !ok {
			t.Fatalf("queue empty and not %s: %s", what, describe(all))
		}
		err := f.exec.Run(ctx, id)
		var later *pipeline.RetryLaterError
		if errors.As(err, &later) {
			<-time.After(min(later.After, 20*time.Millisecond))
			_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: id})
			continue
		}
		if err != nil {
			t.Fatalf("run step %d: %v", id, err)
		}
	}
}

func settlements(t *testing.T, db *store.DB) []store.SettlementDetail {
	t.Helper()
	rows, err := db.ListSettlements(context.Background(), store.SettlementFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]store.SettlementDetail, 0, len(rows))
	for _, r := range rows {
		d, err := db.GetSettlement(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.SettlementDetail) int { return int(a.ID - b.ID) })
	return out
}

func describe(all []store.SettlementDetail) string {
	var b strings.Builder
	for _, d := range all {
		fmt.Fprintf(&b, "\n  %d %s: %s", d.ID, d.Status, stepStates(d))
		if n := notifyStep(d); n != nil {
			fmt.Fprintf(&b, "(NOTIFY attempts %d, %q)", n.Attempts, n.LastError)
		}
	}
	return b.String()
}

func notifyStep(d store.SettlementDetail) *store.StepRow {
	for i := range d.Steps {
		if d.Steps[i].Kind == pipeline.KindNotify {
			return &d.Steps[i]
		}
	}
	return nil
}

// moneyMoved: every step of every settlement but NOTIFY is DONE.
func moneyMoved(all []store.SettlementDetail) bool {
	for _, d := range all {
		for _, s := range d.Steps {
			if s.Kind != pipeline.KindNotify && s.Status != "DONE" {
				return false
			}
		}
	}
	return true
}

// notifyTriedOrGone: every NOTIFY failed at least n times, or ended.
func notifyTriedOrGone(n int) func([]store.SettlementDetail) bool {
	return func(all []store.SettlementDetail) bool {
		for _, d := range all {
			st := notifyStep(d)
			if st == nil || (st.Attempts < n && st.Status != "DEAD" && st.Status != "FAILED") {
				return false
			}
		}
		return moneyMoved(all)
	}
}

// moneySteps counts the steps of the settlements that move money: the
// transfers the bank must have applied once each.
func moneySteps(all []store.SettlementDetail) int {
	n := 0
	for _, d := range all {
		for _, s := range d.Steps {
			if s.Kind.MovesMoney() {
				n++
			}
		}
	}
	return n
}

func allNotified(all []store.SettlementDetail) bool {
	for _, d := range all {
		if st := notifyStep(d); st == nil || st.Status != "DONE" {
			return false
		}
	}
	return true
}

// An outage of the lender's app longer than a step's attempts last fails
// no settlement: each payday settlement is SETTLED once its money moved, no
// settlement_failed alert is raised, the customer is polled again and a
// second salary settles while the app is still down; once the app is back
// it gets each settlement's event exactly once, under the event ID it was
// sent while down.
func TestLenderAppOutageFailsNoSettlement(t *testing.T) {
	t.Parallel()
	const maxAttempts = 3
	f, app, cs := notifyFixture(t, pipeline.ExecutorConfig{
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: maxAttempts,
		Notify: pipeline.NotifyConfig{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
			WarnAfter: time.Nanosecond, GiveUpAfter: time.Hour},
	}, 3)
	ctx := context.Background()
	f.paySalaries(t, cs, 2_000_000)

	// Down for longer than today's attempts of a step last.
	all := f.pumpUntil(t, "tried past max_attempts", notifyTriedOrGone(maxAttempts+2))
	for _, d := range all {
		if d.Status != pipeline.SettlementSettled {
			t.Errorf("settlement %d is %s with its money moved and only the lender app down, want SETTLED: %s",
				d.ID, d.Status, stepStates(d))
		}
	}
	if n := countAlerts(t, f.db, `kind = $1 OR severity = 'critical'`, pipeline.AlertKindSettlementFailed); n != 0 {
		t.Errorf("%d settlement_failed or critical alerts for a lender app outage, want none", n)
	}
	if t.Failed() {
		t.FailNow()
	}
	// One warning per settlement, however often its NOTIFY failed, and one
	// summary of them all once they are many (the storm threshold is 2).
	if n := countAlerts(t, f.db, `kind = $1 AND severity = 'warning'`, pipeline.AlertKindNotifyUndelivered); n != len(all) {
		t.Errorf("%d notify warnings for %d settlements whose NOTIFY keeps failing, want one each", n, len(all))
	}
	e := &alertEnv{db: f.db, slack: notifytest.NewServer(t, alertToken, alertHook), logs: &testenv.Buffer{}}
	if res := run(t, e.delivery(e.webhook(), 2)); res.Summarized != len(all) {
		t.Errorf("delivery %+v, want the %d warnings summarized", res, len(all))
	}
	if msgs := e.slack.Messages(); len(msgs) != 1 || !strings.Contains(msgs[0].Text, "3 settled events not taken by the lender's app") {
		t.Errorf("messages %+v, want one storm summary", msgs)
	}

	// The customer is polled again: a second salary settles, the app still down.
	f.paySalaries(t, cs[:1], 1_500_000)
	all = f.pumpUntil(t, "second salary settled", func(all []store.SettlementDetail) bool {
		return len(all) == 4 && all[3].Status == pipeline.SettlementSettled
	})

	app.setUp(true)
	for _, d := range all { // the relay's part: the steps retrying on their backoff
		if st := notifyStep(d); st != nil && st.Status == "READY" {
			_ = f.queue.EnqueueStep(ctx, pipeline.StepRef{ID: st.ID})
		}
	}
	f.pumpUntil(t, "every NOTIFY DONE", allNotified)
	refused, received, bad := app.seen()
	if bad != 0 {
		t.Errorf("%d events with a bad signature", bad)
	}
	for _, d := range all {
		id := fmt.Sprintf("evt_settlement_%d_settled", d.ID)
		if received[id] != 1 {
			t.Errorf("the app received %s %d times, want once (received %v)", id, received[id], received)
		}
	}
	for id := range refused {
		if received[id] == 0 {
			t.Errorf("event %s was sent while the app was down, and never again under the same ID", id)
		}
	}
	if len(received) != len(all) {
		t.Errorf("the app received %d distinct events for %d settlements: %v", len(received), len(all), received)
	}
	f.verify(t, moneySteps(all))
	for _, d := range all[:3] {
		key := fmt.Sprintf("settlement:%d:notify_undelivered", d.ID)
		if n := countAlerts(t, f.db, `problem_key = $1 AND kind = $2`, key, pipeline.AlertKindResolved); n != 1 {
			t.Errorf("problem %s resolved %d times after delivery, want once", key, n)
		}
	}
}

// settle compensate refuses a settlement whose money all moved and whose
// only problem is its notification, says so, and changes nothing.
func TestCompensateRefusesASettlementWhoseOnlyProblemIsItsNotification(t *testing.T) {
	t.Parallel()
	const maxAttempts = 2
	f, _, cs := notifyFixture(t, pipeline.ExecutorConfig{
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: maxAttempts,
		Notify: pipeline.NotifyConfig{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond},
	}, 1)
	ctx := context.Background()
	f.paySalaries(t, cs, 2_000_000)
	all := f.pumpUntil(t, "tried past max_attempts", notifyTriedOrGone(maxAttempts+1))
	before := describe(all)
	var audits int
	_ = f.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_log`).Scan(&audits)

	out, err := f.db.Compensate(ctx, all[0].ID, store.Audit{Actor: "ops", Command: "compensate", Reason: "app down"}, false)
	if !errors.Is(err, store.ErrRefused) {
		t.Fatalf("compensate of a settlement whose money moved: %+v, err %v; want refused", out, err)
	}
	for _, want := range []string{"SETTLED", "notification", "lender"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if after := describe(settlements(t, f.db)); after != before {
		t.Errorf("a refused compensate changed the settlement:\nbefore %s\nafter  %s", before, after)
	}
	var n, refused int
	_ = f.db.SQL().QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome = 'refused') FROM audit_log`).Scan(&n, &refused)
	if n != audits+1 || refused != 1 {
		t.Errorf("a refused compensate wrote %d audit rows (%d refused), want its one refusal", n-audits, refused)
	}
	f.verify(t, moneySteps(all))
}

// A NOTIFY that fails for its whole retry window gives up: the step is
// DEAD with a warning (no critical alert), the settlement stays SETTLED and
// verify holds; once the app is back, settle replay sends the same event,
// which the app gets once.
func TestNotifyGivesUpAfterItsWindowAndReplaySendsIt(t *testing.T) {
	t.Parallel()
	f, app, cs := notifyFixture(t, pipeline.ExecutorConfig{
		Notify: pipeline.NotifyConfig{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
			WarnAfter: time.Millisecond, GiveUpAfter: 50 * time.Millisecond},
	}, 1)
	ctx := context.Background()
	f.paySalaries(t, cs, 2_000_000)
	all := f.pumpUntil(t, "NOTIFY DEAD", func(all []store.SettlementDetail) bool {
		st := notifyStep(all[0])
		return st != nil && st.Status == "DEAD"
	})
	d := all[0]
	if d.Status != pipeline.SettlementSettled {
		t.Fatalf("settlement %d is %s after its NOTIFY gave up, want SETTLED", d.ID, d.Status)
	}
	if n := countAlerts(t, f.db, `severity = 'critical' OR kind = $1`, pipeline.AlertKindSettlementFailed); n != 0 {
		t.Fatalf("%d critical alerts for an undelivered notification", n)
	}
	var summary string
	if err := f.db.SQL().QueryRowContext(ctx, `SELECT summary FROM alerts WHERE kind = $1 AND severity = 'warning'
	                                           ORDER BY id DESC LIMIT 1`, pipeline.AlertKindNotifyUndelivered).Scan(&summary); err != nil ||
		!strings.Contains(summary, "gave up") {
		t.Fatalf("last notify warning %q (%v), want one that says NOTIFY gave up", summary, err)
	}
	f.verify(t, moneySteps(all))

	app.setUp(true)
	out, err := f.db.Replay(ctx, d.ID, sandboxAccounts, store.Audit{Actor: "ops", Command: "replay", Reason: "app back"}, false)
	if err != nil || out.Enqueue.ID != notifyStep(d).ID {
		t.Fatalf("replay: %+v, %v; want the DEAD NOTIFY re-driven", out, err)
	}
	_ = f.queue.EnqueueStep(ctx, out.Enqueue)
	f.pumpUntil(t, "NOTIFY DONE", allNotified)
	_, received, _ := app.seen()
	if id := fmt.Sprintf("evt_settlement_%d_settled", d.ID); received[id] != 1 || len(received) != 1 {
		t.Fatalf("the app received %v, want %s once", received, id)
	}
	f.verify(t, moneySteps(all))
}
