package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/settle-dev/settle/notify"
	"github.com/settle-dev/settle/notify/notifytest"
)

// Canary secrets: none may show in a message, a log line or an error.
const (
	canaryToken = "xoxb-CANARY-bot-token-4f1d"
	canaryHook  = "/services/T0CANARY/B0CANARY/CANARYhookSECRET9"
)

var canaries = []string{canaryToken, "CANARY"}

func assertNoCanary(t *testing.T, what, s string) {
	t.Helper()
	for _, c := range canaries {
		if strings.Contains(s, c) {
			t.Errorf("%s shows a secret (%q):\n%s", what, c, s)
		}
	}
}

func newSlack(t *testing.T) *notifytest.Server {
	return notifytest.NewServer(t, canaryToken, canaryHook)
}

func bot(s *notifytest.Server) notify.Notifier {
	return notify.NewBot(notify.Config{BotToken: canaryToken, Channel: "#settle-alerts", APIURL: s.APIURL(), Timeout: 5 * time.Second})
}

func webhook(s *notifytest.Server) notify.Notifier {
	return notify.NewWebhook(notify.Config{WebhookURL: s.WebhookURL(), Timeout: 5 * time.Second})
}

func problem() notify.Notice {
	a := refusedAlert()
	return notify.Notice{Alert: a, Occurrences: 1, FirstAt: a.CreatedAt}
}

// sameJSON reports whether two JSON documents are equal as values.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

func blocksOf(t *testing.T, m notify.Message) string {
	t.Helper()
	var v struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return string(v.Blocks)
}

func TestWebhookPostsBlocksAndFallback(t *testing.T) {
	t.Parallel()
	s := newSlack(t)
	n := webhook(s)
	ctx := context.Background()
	ref, err := n.Post(ctx, problem())
	if err != nil || ref != (notify.Ref{}) {
		t.Fatalf("post: ref %+v err %v", ref, err)
	}
	if err := n.Update(ctx, ref, problem()); err != nil {
		t.Fatalf("update is a no-op for a webhook: %v", err)
	}
	if err := n.Reply(ctx, ref, notify.Notice{Alert: resolvedAlert()}); err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 2 {
		t.Fatalf("%d messages, want the first message and the reply: %+v", len(got), got)
	}
	want := notify.Render(problem())
	if got[0].Text != want.Text || !sameJSON(t, got[0].Blocks, blocksOf(t, want)) {
		t.Errorf("webhook got\n%s\n%s\nwant\n%s\n%s", got[0].Text, got[0].Blocks, want.Text, blocksOf(t, want))
	}
	if !strings.HasPrefix(got[1].Text, "Resolved: ") {
		t.Errorf("reply %q is not the resolution", got[1].Text)
	}
}

// A bot posts the first message, rewrites it with chat.update and replies in
// its thread.
func TestBotThreadsAndUpdates(t *testing.T) {
	t.Parallel()
	s := newSlack(t)
	n := bot(s)
	ctx := context.Background()
	ref, err := n.Post(ctx, problem())
	if err != nil || ref.Channel != notifytest.ChannelID || ref.TS == "" {
		t.Fatalf("post: ref %+v err %v", ref, err)
	}
	again := problem()
	again.Occurrences = 2
	if err := n.Update(ctx, ref, again); err != nil {
		t.Fatal(err)
	}
	if err := n.Reply(ctx, ref, again); err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 3 || got[1].Method != "chat.update" || got[2].ThreadTS != ref.TS {
		t.Fatalf("messages %+v: want post, update, reply in thread %s", got, ref.TS)
	}
	root, _ := s.Root(ref.TS)
	if !strings.Contains(root.Text, "seen 2 times") {
		t.Errorf("root after update = %q, want the count", root.Text)
	}
	// A first message deleted in Slack is not an error: the reply says it all.
	if err := n.Update(ctx, notify.Ref{Channel: ref.Channel, TS: "1.000"}, again); err != nil {
		t.Errorf("update of a missing message: %v", err)
	}
	// Without a first message, a reply goes to the channel on its own.
	if err := n.Reply(ctx, notify.Ref{}, again); err != nil {
		t.Fatal(err)
	}
	if last := s.Messages()[3]; last.ThreadTS != "" || last.Method != "chat.postMessage" {
		t.Errorf("reply without a ref: %+v", last)
	}
}

func TestErrorsAreClassifiedAndCarryNoSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	closed := newSlack(t)
	closed.Close()
	tests := []struct {
		name  string
		setup func(*notifytest.Server)
		n     func(*notifytest.Server) notify.Notifier
		check func(error) bool
	}{
		{"webhook 500", func(s *notifytest.Server) { s.Outage(500, 0) }, webhook,
			func(err error) bool { return errors.Is(err, notify.ErrUnavailable) }},
		{"bot 503", func(s *notifytest.Server) { s.Outage(503, 0) }, bot,
			func(err error) bool { return errors.Is(err, notify.ErrUnavailable) }},
		{"webhook 429", func(s *notifytest.Server) { s.Outage(429, 7) }, webhook, rateLimited(7 * time.Second)},
		{"bot 429", func(s *notifytest.Server) { s.Outage(429, 3) }, bot, rateLimited(3 * time.Second)},
		{"webhook revoked", nil, func(s *notifytest.Server) notify.Notifier {
			return notify.NewWebhook(notify.Config{WebhookURL: s.URL + "/services/T0CANARY/B0CANARY/revokedCANARY"})
		}, refused("HTTP 404")},
		{"bad token", nil, func(s *notifytest.Server) notify.Notifier {
			return notify.NewBot(notify.Config{BotToken: "xoxb-CANARY-wrong", Channel: "#a", APIURL: s.APIURL()})
		}, refused("invalid_auth")},
		{"webhook unreachable", nil, func(*notifytest.Server) notify.Notifier {
			return notify.NewWebhook(notify.Config{WebhookURL: closed.WebhookURL(), Timeout: time.Second})
		}, func(err error) bool { return errors.Is(err, notify.ErrUnavailable) }},
		{"bot unreachable", nil, func(*notifytest.Server) notify.Notifier {
			return notify.NewBot(notify.Config{BotToken: canaryToken, Channel: "#a", APIURL: closed.APIURL(), Timeout: time.Second})
		}, func(err error) bool { return errors.Is(err, notify.ErrUnavailable) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSlack(t)
			if tt.setup != nil {
				tt.setup(s)
			}
			_, err := tt.n(s).Post(ctx, problem())
			if err == nil || !tt.check(err) {
				t.Fatalf("err = %v (%T)", err, errors.Unwrap(err))
			}
			assertNoCanary(t, "error", err.Error())
		})
	}
}

func rateLimited(after time.Duration) func(error) bool {
	return func(err error) bool {
		var rl *notify.RateLimitedError
		return errors.As(err, &rl) && rl.After == after
	}
}

func refused(code string) func(error) bool {
	return func(err error) bool {
		var r *notify.RefusedError
		return errors.As(err, &r) && r.Code == code
	}
}

// The messages themselves never carry the token or the webhook URL: only
// the token field of a Web API request does.
func TestMessagesCarryNoSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, mk := range map[string]func(*notifytest.Server) notify.Notifier{"bot": bot, "webhook": webhook} {
		s := newSlack(t)
		n := mk(s)
		for _, e := range examples() {
			if e.reply {
				if err := n.Reply(ctx, notify.Ref{}, e.n); err != nil {
					t.Fatal(err)
				}
			} else if _, err := n.Post(ctx, e.n); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range s.Messages() {
			assertNoCanary(t, name+" message", m.Text+m.Blocks)
		}
		if got := len(s.Messages()); got != len(examples()) {
			t.Errorf("%s: %d messages, want %d", name, got, len(examples()))
		}
	}
}

func TestLogNotifierWritesOneLinePerAlert(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	n, err := notify.New(notify.Config{}, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := n.Post(ctx, problem()); err != nil {
		t.Fatal(err)
	}
	if err := n.Update(ctx, notify.Ref{}, problem()); err != nil {
		t.Fatal(err)
	}
	if err := n.Reply(ctx, notify.Ref{}, notify.Notice{Alert: resolvedAlert()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per post and reply:\n%s", len(lines), buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["level"] != "ERROR" || first["problem_key"] != "settlement:42:account_frozen" ||
		first["action"] != "settle settlements show 42" || first["payout_account"] != "****7890" {
		t.Errorf("log line %v", first)
	}
	if strings.Contains(buf.String(), "110234567890") || strings.Contains(buf.String(), "110-234-567890") {
		t.Errorf("log shows an account number unmasked:\n%s", buf.String())
	}
}

func TestNewChoosesTheMode(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		cfg  notify.Config
		want string
	}{
		{notify.Config{}, "*notify.Log"},
		{notify.Config{WebhookURL: "https://hooks.slack.com/services/x"}, "*notify.Webhook"},
		{notify.Config{BotToken: "xoxb-1", Channel: "C1"}, "*notify.Bot"},
		{notify.Config{BotToken: "xoxb-1"}, "error"},
		{notify.Config{BotToken: "xoxb-1", Channel: "C1", WebhookURL: "https://x"}, "error"},
	} {
		n, err := notify.New(tt.cfg, logger)
		got := "error"
		if err == nil {
			got = typeName(n)
		} else if !errors.Is(err, notify.ErrConfig) {
			t.Errorf("error %v does not wrap ErrConfig", err)
		}
		if got != tt.want {
			t.Errorf("New(%+v) = %s, want %s", tt.cfg, got, tt.want)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *notify.Log:
		return "*notify.Log"
	case *notify.Webhook:
		return "*notify.Webhook"
	case *notify.Bot:
		return "*notify.Bot"
	}
	return "?"
}
