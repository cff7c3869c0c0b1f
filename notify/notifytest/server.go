// Package notifytest is a fake Slack for tests: an incoming webhook and the
// Web API methods chat.postMessage, chat.update and chat.postEphemeral,
// answering as Slack does (ok:true JSON, 429 with Retry-After, 5xx), and
// recording every message it accepts. For the Slack app's buttons it also
// serves Socket Mode (apps.connections.open and its WebSocket, over which
// Interact delivers clicks and settle acknowledges them), and
// PostInteraction delivers a click to an HTTP interactivity endpoint,
// signed as Slack signs it (interact.go).
package notifytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ChannelID is the channel ID the fake answers for any channel name.
const ChannelID = "C0ALERTS"

// Message is one message the fake accepted.
type Message struct {
	Method   string // "webhook", "chat.postMessage", "chat.update" or "chat.postEphemeral"
	Channel  string
	TS       string // the message's own timestamp (for chat.update: the one updated)
	ThreadTS string // set for a reply in a thread
	User     string // chat.postEphemeral: the one user who sees it
	Text     string
	Blocks   string // the Block Kit JSON as sent
}

// Server is the fake Slack. Its zero value is not usable; call NewServer.
type Server struct {
	*httptest.Server
	token, hook string

	mu       sync.Mutex
	accepted []Message
	roots    map[string]Message // ts -> the message as last posted or updated
	nextTS   int
	outage   int // HTTP status answered to every call while non-zero
	retry    int // Retry-After seconds sent with a 429 outage
	refused  int // calls answered with the outage status
	requests []string
	socket   socketMode
}

// NewServer starts a fake Slack that accepts the bot token and the webhook
// whose path is hookPath (such as "/services/T0/B0/secret"). It is closed
// when the test ends.
func NewServer(t testing.TB, token, hookPath string) *Server {
	s := &Server{token: token, hook: hookPath, roots: map[string]Message{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.closeSockets)
	t.Cleanup(s.Close)
	return s
}

// WebhookURL is the URL of the fake's incoming webhook.
func (s *Server) WebhookURL() string { return s.URL + s.hook }

// APIURL is the base URL of the fake's Web API, for slack.OptionAPIURL.
func (s *Server) APIURL() string { return s.URL + "/api/" }

// Outage makes every call fail with status (429 comes with a Retry-After
// of retryAfter seconds) until Outage(0, 0).
func (s *Server) Outage(status, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage, s.retry = status, retryAfter
}

// Refused counts the calls answered with an outage status.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Messages returns every message accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.accepted...)
}

// Root returns the message posted with timestamp ts (in the channel or in
// a thread) as it stands after every update.
func (s *Server) Root(ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.roots[ts]
	return m, ok
}

// Requests returns the raw bodies of every request received, refused ones
// included, for checks that no secret was sent where it must not be.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == socketPath {
		s.serveSocket(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.URL.Path+" "+r.PostForm.Encode())
	if s.outage != 0 {
		s.refused++
		if s.outage == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(s.retry))
		}
		http.Error(w, "<html>unavailable</html>", s.outage)
		return
	}
	switch {
	case r.URL.Path == s.hook && r.Method == http.MethodPost:
		s.webhook(w, r)
	case r.URL.Path == "/api/chat.postMessage" || r.URL.Path == "/api/chat.update" || r.URL.Path == "/api/chat.postEphemeral":
		s.api(w, r, strings.TrimPrefix(r.URL.Path, "/api/"))
	case r.URL.Path == "/api/apps.connections.open":
		s.openConnection(w, r)
	default:
		http.Error(w, "no_service", http.StatusNotFound)
	}
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Text == "" {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	s.accepted = append(s.accepted, Message{Method: "webhook", Text: body.Text, Blocks: string(body.Blocks)})
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) api(w http.ResponseWriter, r *http.Request, method string) {
	token := r.PostForm.Get("token")
	if token == "" {
		token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	switch {
	case token != s.token:
		reply(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	case r.PostForm.Get("channel") == "":
		reply(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	m := Message{
		Method: method, Channel: ChannelID, ThreadTS: r.PostForm.Get("thread_ts"),
		Text: r.PostForm.Get("text"), Blocks: r.PostForm.Get("blocks"),
	}
	switch method {
	case "chat.update":
		m.TS = r.PostForm.Get("ts")
		was, ok := s.roots[m.TS]
		if !ok {
			reply(w, map[string]any{"ok": false, "error": "message_not_found"})
			return
		}
		m.ThreadTS = was.ThreadTS
	case "chat.postEphemeral":
		if m.User = r.PostForm.Get("user"); m.User == "" {
			reply(w, map[string]any{"ok": false, "error": "user_not_in_channel"})
			return
		}
		s.nextTS++
		m.TS = fmt.Sprintf("1795597200.%06d", s.nextTS)
		s.accepted = append(s.accepted, m)
		reply(w, map[string]any{"ok": true, "message_ts": m.TS})
		return
	default:
		s.nextTS++
		m.TS = fmt.Sprintf("1795597200.%06d", s.nextTS)
	}
	s.accepted = append(s.accepted, m)
	s.roots[m.TS] = m
	reply(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "text": m.Text})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
