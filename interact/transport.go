package interact

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// maxBody is the largest interactivity request read; Slack's are a few KB.
const maxBody = 1 << 20

// HTTP is the interactivity endpoint Slack POSTs clicks to (the app's
// Interactivity request URL): each request is verified with the app's
// signing secret by slack-go's verifier (HMAC-SHA256 of the timestamp and
// body, compared in constant time, the timestamp within five minutes of
// this machine's clock), answered 200 at once, and handled after. A
// request that fails the check is answered 401 and does nothing. A
// verified request delivered again (by Slack, or by someone replaying it
// within the five minutes) acts once: its click is audited once
// (store.Audit.Click).
func (h *Handler) HTTP(signingSecret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		if err := verify(r.Header, body, signingSecret); err != nil {
			h.cfg.Logger.WarnContext(r.Context(), "slack: refused an interactivity request that is not signed by Slack",
				"why", err.Error(), "remote", r.RemoteAddr)
			http.Error(w, "not signed by Slack", http.StatusUnauthorized)
			return
		}
		form, err := url.ParseQuery(string(body))
		var cb slack.InteractionCallback
		if err == nil {
			err = json.Unmarshal([]byte(form.Get("payload")), &cb)
		}
		if err != nil {
			http.Error(w, "not an interaction payload", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
		h.Go(cb)
	})
}

// verify checks Slack's signature of a request.
func verify(header http.Header, body []byte, secret string) error {
	sv, err := slack.NewSecretsVerifier(header, secret)
	if err != nil {
		return err
	}
	if _, err := sv.Write(body); err != nil {
		return err
	}
	return sv.Ensure()
}

// SocketConfig is how Socket Mode reaches Slack.
type SocketConfig struct {
	AppToken   string       // the app-level token, xapp-… (connections:write)
	APIURL     string       // Slack Web API base URL (default slack.APIURL)
	HTTPClient *http.Client // for apps.connections.open (default: 10s timeout)
}

// SocketMode receives clicks over Slack's Socket Mode: settle opens a
// WebSocket to Slack (apps.connections.open with the app-level token), so
// no inbound port is needed. Each interaction is acknowledged at once and
// handled after.
type SocketMode struct {
	h      *Handler
	client *socketmode.Client
}

// NewSocketMode returns Socket Mode for the handler.
func NewSocketMode(h *Handler, cfg SocketConfig) *SocketMode {
	apiURL := cmp.Or(cfg.APIURL, slack.APIURL)
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	httpc := cmp.Or(cfg.HTTPClient, &http.Client{Timeout: 10 * time.Second})
	api := slack.New("", slack.OptionAppLevelToken(cfg.AppToken), slack.OptionAPIURL(apiURL), slack.OptionHTTPClient(httpc))
	return &SocketMode{h: h, client: socketmode.New(api, socketmode.OptionLog(log.New(io.Discard, "", 0)))}
}

// Run connects and handles interactions until ctx ends, reconnecting when
// the connection drops or cannot be made (a refused app token is logged,
// without it, and tried again every minute).
func (s *SocketMode) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.events(ctx)
	}()
	wait := time.Second
	for {
		err := s.client.RunContext(ctx)
		if ctx.Err() != nil {
			break
		}
		s.h.cfg.Logger.WarnContext(ctx, "slack: the Socket Mode connection ended; connecting again", "err", cleanErr(err), "in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		wait = min(2*wait, time.Minute)
	}
	<-done
}

// cleanErr is an error of the Socket Mode client for the log: its text
// only, which names Slack's error code and never the token.
func cleanErr(err error) string {
	if err == nil {
		return "closed"
	}
	var api slack.SlackErrorResponse
	if errors.As(err, &api) {
		return api.Err
	}
	return err.Error()
}

func (s *SocketMode) events(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case evt := <-s.client.Events:
			switch evt.Type {
			case socketmode.EventTypeConnected:
				s.h.cfg.Logger.InfoContext(ctx, "slack: Socket Mode connected")
			case socketmode.EventTypeInvalidAuth:
				s.h.cfg.Logger.ErrorContext(ctx, "slack: Slack refused the app-level token (notify.slack.interactive.app_token)")
			case socketmode.EventTypeInteractive:
				if evt.Request != nil {
					if err := s.client.AckCtx(ctx, evt.Request.EnvelopeID, nil); err != nil {
						s.h.cfg.Logger.WarnContext(ctx, "slack: could not acknowledge an interaction", "err", err)
					}
				}
				if cb, ok := evt.Data.(slack.InteractionCallback); ok {
					s.h.Go(cb)
				}
			case socketmode.EventTypeEventsAPI, socketmode.EventTypeSlashCommand:
				if evt.Request != nil {
					_ = s.client.AckCtx(ctx, evt.Request.EnvelopeID, nil)
				}
			}
		}
	}
}
