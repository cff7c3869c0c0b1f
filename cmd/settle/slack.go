package main

import (
	"context"
	"net/http"

	"github.com/settle-dev/settle/interact"
	"github.com/settle-dev/settle/internal/config"
	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/pipeline"
	"github.com/settle-dev/settle/store"
)

// Operators act on failed settlements from their Slack alerts when
// notify.slack.interactive is on (docs/slack-app.md). The scheduler role
// talks to Slack: its alert delivery puts the buttons on the alerts and it
// receives the clicks, over Socket Mode or at the HTTP endpoint on its
// http.addr, and runs them as a member of settle_daemon.

// slackOps are the commands the Slack buttons request: settle replay,
// cancel and compensate themselves, with the configuration loaded.
func slackOps(cfg *config.Config, db *store.DB) map[notify.Action]interact.Op {
	out := map[notify.Action]interact.Op{}
	for _, a := range []notify.Action{notify.ActionReplay, notify.ActionCancel, notify.ActionCompensate} {
		op := settlementOps[string(a)](cfg)
		out[a] = func(ctx context.Context, id int64, au store.Audit, dryRun bool) (store.Outcome, error) {
			return op(db, ctx, id, au, dryRun)
		}
	}
	return out
}

// newInteract builds the click handler, when operators act from Slack.
func (d *daemon) newInteract() {
	s := d.cfg.Notify.Slack
	ic := s.Interactive
	if !ic.On() || !d.runs(roleScheduler) {
		return
	}
	users := map[string]interact.Role{}
	for _, u := range ic.Users {
		if r, ok := interact.ParseRole(u.Role); ok {
			users[u.ID] = r
		}
	}
	d.interact = interact.New(interact.Config{
		DB:     d.db,
		Slack:  notify.NewBot(notify.Config{BotToken: s.BotToken.Reveal(), Channel: s.Channel, APIURL: s.APIURL}),
		Ops:    slackOps(d.cfg, d.db),
		Wake:   func(ctx context.Context, ref pipeline.StepRef) string { return wakeOn(ctx, d.queue, ref) },
		TeamID: ic.TeamID, Users: users, Window: ic.ApprovalWindow,
		Logger: d.logger,
	})
}

// alertActions are the buttons alert delivery shows, when operators act
// from Slack.
func (d *daemon) alertActions() func(context.Context, notify.Alert) []notify.Action {
	if d.interact == nil {
		return nil
	}
	return d.interact.Actions
}

// slackRoutes serves the interactivity endpoint beside the other routes,
// in http mode on the scheduler role; Slack signs what it posts there, so
// it is outside the dashboard's credentials.
func (d *daemon) slackRoutes(h http.Handler) http.Handler {
	ic := d.cfg.Notify.Slack.Interactive
	if d.interact == nil || ic.Mode != config.InteractiveHTTP {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle(ic.Path, d.interact.HTTP(ic.SigningSecret.Reveal()))
	mux.Handle("/", h)
	return mux
}

// startSocketMode connects to Slack's Socket Mode, in socket mode on the
// scheduler role; stopSlack ends it.
func (d *daemon) startSocketMode() {
	s := d.cfg.Notify.Slack
	if d.interact == nil || s.Interactive.Mode != config.InteractiveSocket {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sm := interact.NewSocketMode(d.interact, interact.SocketConfig{AppToken: s.Interactive.AppToken.Reveal(), APIURL: s.APIURL})
	go func() {
		defer close(done)
		sm.Run(ctx)
	}()
	d.stopSocket = func() {
		cancel()
		<-done
	}
}

// stopSlack stops taking clicks and lets those under way finish, within
// ctx.
func (d *daemon) stopSlack(ctx context.Context) {
	if d.stopSocket != nil {
		d.stopSocket()
	}
	if d.interact != nil {
		d.interact.Close(ctx)
	}
}

// slackAttrs name, for the start-up log line, how clicks arrive.
func (d *daemon) slackAttrs() []any {
	ic := d.cfg.Notify.Slack.Interactive
	switch {
	case d.interact == nil:
		return nil
	case ic.Mode == config.InteractiveHTTP:
		return []any{"slack_interactions", "http://" + d.httpAddr() + ic.Path}
	}
	return []any{"slack_interactions", "socket mode"}
}
