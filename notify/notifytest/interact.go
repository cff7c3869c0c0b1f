package notifytest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// socketPath is where apps.connections.open sends Socket Mode clients.
const socketPath = "/socket-mode"

// socketMode is the fake's Socket Mode side: the app-level token it
// accepts, the open connections, and the envelopes settle acknowledged.
type socketMode struct {
	appToken string
	conns    []*socketConn
	opened   int      // connections opened so far
	acked    []string // envelope IDs acknowledged, in order
	nextEnv  int
}

// socketConn is one Socket Mode WebSocket; writes are serialized.
type socketConn struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

func (c *socketConn) write(v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteJSON(v)
}

func (c *socketConn) ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
}

// AcceptAppToken makes apps.connections.open accept the app-level token
// tok (xapp-…); any other is answered invalid_auth.
func (s *Server) AcceptAppToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.socket.appToken = tok
}

// openConnection is apps.connections.open: the URL of a Socket Mode
// WebSocket, for the app-level token. Called with s.mu held.
func (s *Server) openConnection(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.socket.appToken == "" || token != s.socket.appToken {
		reply(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	u := "ws" + strings.TrimPrefix(s.URL, "http") + socketPath + "?ticket=" + strconv.Itoa(s.socket.opened+1)
	reply(w, map[string]any{"ok": true, "url": u})
}

// serveSocket is the Socket Mode WebSocket: hello, a ping every second
// (the client reconnects without them), and the acknowledgements read.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &socketConn{conn: conn}
	s.mu.Lock()
	s.socket.opened++
	s.socket.conns = append(s.socket.conns, c)
	s.mu.Unlock()
	defer s.dropSocket(c)
	if err := c.write(map[string]any{"type": "hello", "num_connections": 1,
		"connection_info": map[string]any{"app_id": "A0SETTLE"}}); err != nil {
		return
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if c.ping() != nil {
					return
				}
			}
		}
	}()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if json.Unmarshal(data, &ack) == nil && ack.EnvelopeID != "" {
			s.mu.Lock()
			s.socket.acked = append(s.socket.acked, ack.EnvelopeID)
			s.mu.Unlock()
		}
	}
}

func (s *Server) dropSocket(c *socketConn) {
	_ = c.conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.socket.conns {
		if o == c {
			s.socket.conns = append(s.socket.conns[:i], s.socket.conns[i+1:]...)
			return
		}
	}
}

func (s *Server) closeSockets() {
	s.mu.Lock()
	conns := append([]*socketConn(nil), s.socket.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.conn.Close()
	}
}

// SocketConnections is how many Socket Mode connections are open.
func (s *Server) SocketConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.socket.conns)
}

// Interact delivers an interaction payload over Socket Mode, as Slack
// does, once a client is connected (within 30 s), and returns its envelope
// ID. Slack delivers a click that is not acknowledged again: deliver the
// same payload twice to test that.
func (s *Server) Interact(t testing.TB, payload []byte) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		var c *socketConn
		if n := len(s.socket.conns); n > 0 {
			c = s.socket.conns[n-1]
		}
		s.socket.nextEnv++
		env := fmt.Sprintf("env-%d", s.socket.nextEnv)
		s.mu.Unlock()
		if c != nil {
			err := c.write(map[string]any{"envelope_id": env, "type": "interactive",
				"payload": json.RawMessage(payload), "accepts_response_payload": false})
			if err == nil {
				return env
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Socket Mode client connected to deliver the interaction")
		}
		time.Sleep(10 * time.Millisecond) // waiting for a client to connect
	}
}

// Acked reports whether settle acknowledged the envelope.
func (s *Server) Acked(envelope string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.socket.acked {
		if a == envelope {
			return true
		}
	}
	return false
}

// PostInteraction delivers an interaction payload to an HTTP interactivity
// endpoint as Slack does: a form with the payload, signed with the app's
// signing secret at the time at. It returns the response's status.
func PostInteraction(endpoint, signingSecret string, at time.Time, payload []byte) (int, error) {
	body := "payload=" + url.QueryEscape(string(payload))
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", Sign(signingSecret, ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// Sign is Slack's request signature: v0= and the hex HMAC-SHA256 of
// "v0:<timestamp>:<body>" under the signing secret.
func Sign(secret, ts string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(h, "v0:%s:", ts)
	h.Write(body)
	return "v0=" + hex.EncodeToString(h.Sum(nil))
}

// Button is a button of a message.
type Button struct {
	BlockID, ActionID, Value, Text string
}

// Buttons lists the buttons in a message's blocks.
func (m Message) Buttons() []Button {
	var blocks []struct {
		Type     string            `json:"type"`
		BlockID  string            `json:"block_id"`
		Elements []json.RawMessage `json:"elements"`
	}
	if json.Unmarshal([]byte(m.Blocks), &blocks) != nil {
		return nil
	}
	var out []Button
	for _, b := range blocks {
		if b.Type != "actions" {
			continue
		}
		for _, raw := range b.Elements {
			var e struct {
				Type     string `json:"type"`
				ActionID string `json:"action_id"`
				Value    string `json:"value"`
				Text     struct {
					Text string `json:"text"`
				} `json:"text"`
			}
			if json.Unmarshal(raw, &e) == nil && e.Type == "button" {
				out = append(out, Button{BlockID: b.BlockID, ActionID: e.ActionID, Value: e.Value, Text: e.Text.Text})
			}
		}
	}
	return out
}

// Click is one click on a button, as Slack sends it to the app (a
// block_actions interaction).
type Click struct {
	Team, User string // who clicked
	Button     Button
	Message    Message // the message the button is on
	TriggerID  string  // unique per click
	ActionTS   string
}

// clicks numbers clicks, so each has its own trigger ID.
var (
	clicksMu sync.Mutex
	clicks   int
)

// ClickOn is user of team clicking the button with action ID actionID on
// message m; the test fails if m has no such button.
func ClickOn(t testing.TB, m Message, actionID, team, user string) Click {
	t.Helper()
	for _, b := range m.Buttons() {
		if b.ActionID == actionID {
			clicksMu.Lock()
			clicks++
			n := clicks
			clicksMu.Unlock()
			return Click{Team: team, User: user, Button: b, Message: m,
				TriggerID: fmt.Sprintf("%d.%d.trigger%04d", 1795597200+n, n, n), ActionTS: fmt.Sprintf("1795597300.%06d", n)}
		}
	}
	t.Fatalf("message %s has no button %s: %v", m.TS, actionID, m.Buttons())
	return Click{}
}

// Payload is the click's interaction payload, as Slack sends it.
func (c Click) Payload() []byte {
	container := map[string]any{"type": "message", "message_ts": c.Message.TS, "channel_id": c.Message.Channel, "is_ephemeral": false}
	message := map[string]any{"type": "message", "ts": c.Message.TS, "text": c.Message.Text, "blocks": json.RawMessage(orEmpty(c.Message.Blocks))}
	if c.Message.ThreadTS != "" {
		container["thread_ts"] = c.Message.ThreadTS
		message["thread_ts"] = c.Message.ThreadTS
	}
	p := map[string]any{
		"type":         "block_actions",
		"team":         map[string]any{"id": c.Team, "domain": "settle-test"},
		"user":         map[string]any{"id": c.User, "username": strings.ToLower(c.User), "team_id": c.Team},
		"api_app_id":   "A0SETTLE",
		"token":        "deprecated-verification-token",
		"container":    container,
		"trigger_id":   c.TriggerID,
		"channel":      map[string]any{"id": c.Message.Channel, "name": "settle-alerts"},
		"message":      message,
		"response_url": "https://hooks.slack.com/actions/T0/1/abc",
		"actions": []map[string]any{{
			"type": "button", "action_id": c.Button.ActionID, "block_id": c.Button.BlockID, "value": c.Button.Value,
			"text": map[string]any{"type": "plain_text", "text": c.Button.Text}, "action_ts": c.ActionTS,
		}},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
	return bytes.TrimSpace(buf.Bytes())
}

func orEmpty(blocks string) string {
	if blocks == "" {
		return "[]"
	}
	return blocks
}
