package notify

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Config chooses and sets up a notifier. With neither WebhookURL nor
// BotToken, alerts go to the log.
type Config struct {
	// WebhookURL is a Slack incoming webhook (a secret). Set it, or BotToken
	// and Channel, not both.
	WebhookURL string
	// BotToken is a Slack bot token with the chat:write scope (a secret).
	BotToken string
	// Channel is the channel ID (C0123456789) or name the bot posts to.
	Channel string
	// APIURL is the Slack Web API's base URL (default slack.APIURL,
	// "https://slack.com/api/"), for tests and proxies.
	APIURL string
	// Timeout bounds one call to Slack (default 10s).
	Timeout time.Duration
	// HTTPClient makes the calls (default: a client with Timeout).
	HTTPClient *http.Client
}

// ErrConfig is wrapped by New for a configuration it cannot use.
var ErrConfig = errors.New("notify: bad configuration")

// New returns the notifier cfg asks for: a Bot, a Webhook, or, with no Slack
// configured, a Log notifier writing to logger.
func New(cfg Config, logger *slog.Logger) (Notifier, error) {
	switch {
	case cfg.WebhookURL != "" && cfg.BotToken != "":
		return nil, errors.Join(ErrConfig, errors.New("set a webhook URL or a bot token, not both"))
	case cfg.BotToken != "" && cfg.Channel == "":
		return nil, errors.Join(ErrConfig, errors.New("a bot token needs a channel"))
	case cfg.BotToken != "":
		return NewBot(cfg), nil
	case cfg.WebhookURL != "":
		return NewWebhook(cfg), nil
	}
	return NewLog(logger), nil
}

func (cfg Config) client() *http.Client {
	if cfg.HTTPClient != nil {
		return cfg.HTTPClient
	}
	return &http.Client{Timeout: cmp.Or(cfg.Timeout, 10*time.Second)}
}

// Webhook posts to a Slack incoming webhook. A webhook cannot thread or edit
// messages: follow-ups are short messages of their own.
type Webhook struct {
	url     string
	client  *http.Client
	secrets secrets
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook returns a notifier posting to cfg.WebhookURL.
func NewWebhook(cfg Config) *Webhook {
	return &Webhook{url: cfg.WebhookURL, client: cfg.client(), secrets: webhookSecrets(cfg.WebhookURL)}
}

// webhookSecrets are the URL and the path that makes it one.
func webhookSecrets(raw string) secrets {
	ss := secrets{raw}
	if u, err := url.Parse(raw); err == nil && len(u.Path) > 1 {
		ss = append(ss, u.Path, strings.TrimPrefix(u.Path, "/"))
		if i := strings.LastIndex(u.Path, "/"); i >= 0 && len(u.Path)-i > 8 {
			ss = append(ss, u.Path[i+1:])
		}
	}
	return ss
}

// Post implements Notifier.
func (w *Webhook) Post(ctx context.Context, n Notice) (Ref, error) {
	return Ref{}, w.send(ctx, Render(n))
}

// Update implements Notifier: a webhook cannot edit, so it does nothing.
func (w *Webhook) Update(context.Context, Ref, Notice) error { return nil }

// Reply implements Notifier with a message of its own.
func (w *Webhook) Reply(ctx context.Context, _ Ref, n Notice) error {
	return w.send(ctx, RenderReply(n))
}

func (w *Webhook) send(ctx context.Context, m Message) error {
	err := w.post(ctx, &slack.WebhookMessage{Text: m.Text, Blocks: &slack.Blocks{BlockSet: m.blocks}})
	if isContentRefusal(err) {
		err = w.post(ctx, &slack.WebhookMessage{Text: cut(m.Text, maxSection)})
	}
	return err
}

func (w *Webhook) post(ctx context.Context, msg *slack.WebhookMessage) error {
	return w.secrets.classify("post to slack webhook", slack.PostWebhookCustomHTTPContext(ctx, w.url, w.client, msg))
}

// Bot posts with a bot token: a problem's first message with
// chat.postMessage, follow-ups as replies in its thread, and updates of the
// first message with chat.update.
type Bot struct {
	api     *slack.Client
	channel string
	secrets secrets
}

var _ Notifier = (*Bot)(nil)

// NewBot returns a notifier posting to cfg.Channel with cfg.BotToken.
func NewBot(cfg Config) *Bot {
	apiURL := cmp.Or(cfg.APIURL, slack.APIURL)
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	api := slack.New(cfg.BotToken, slack.OptionAPIURL(apiURL), slack.OptionHTTPClient(cfg.client()))
	return &Bot{api: api, channel: cfg.Channel, secrets: secrets{cfg.BotToken}}
}

// Post implements Notifier.
func (b *Bot) Post(ctx context.Context, n Notice) (Ref, error) {
	return b.post(ctx, b.channel, "", Render(n))
}

// Update implements Notifier with chat.update. A first message that can no
// longer be edited (deleted, too old) is left as it is: the follow-up says
// what changed.
func (b *Bot) Update(ctx context.Context, ref Ref, n Notice) error {
	if ref.TS == "" {
		return nil
	}
	return b.Edit(ctx, ref, Render(n))
}

// Edit rewrites the message at ref with chat.update. A message that can no
// longer be edited (deleted, too old) is left as it is.
func (b *Bot) Edit(ctx context.Context, ref Ref, m Message) error {
	_, _, _, err := b.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(m.blocks...))
	var api slack.SlackErrorResponse
	if errors.As(err, &api) && (api.Err == "message_not_found" || api.Err == "cant_update_message" || api.Err == "edit_window_closed") {
		return nil
	}
	return b.secrets.classify("slack chat.update", err)
}

// PostInThread posts m in the thread of the message at thread and returns
// where it went, so that it can be edited.
func (b *Bot) PostInThread(ctx context.Context, thread Ref, m Message) (Ref, error) {
	return b.post(ctx, cmp.Or(thread.Channel, b.channel), thread.TS, m)
}

// PostEphemeral shows m to user alone, in the thread of ref (or the
// channel, when ref.TS is "").
func (b *Bot) PostEphemeral(ctx context.Context, ref Ref, user string, m Message) error {
	opts := []slack.MsgOption{slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(m.blocks...)}
	if ref.TS != "" {
		opts = append(opts, slack.MsgOptionTS(ref.TS))
	}
	_, err := b.api.PostEphemeralContext(ctx, cmp.Or(ref.Channel, b.channel), user, opts...)
	return b.secrets.classify("slack chat.postEphemeral", err)
}

// Reply implements Notifier: a reply in the thread of ref, or a message of
// its own when ref is zero.
func (b *Bot) Reply(ctx context.Context, ref Ref, n Notice) error {
	channel := cmp.Or(ref.Channel, b.channel)
	_, err := b.post(ctx, channel, ref.TS, RenderReply(n))
	return err
}

func (b *Bot) post(ctx context.Context, channel, thread string, m Message) (Ref, error) {
	ref, err := b.postMessage(ctx, channel, thread, m.Text, slack.MsgOptionBlocks(m.blocks...))
	if isContentRefusal(err) {
		ref, err = b.postMessage(ctx, channel, thread, cut(m.Text, maxSection))
	}
	return ref, err
}

func (b *Bot) postMessage(ctx context.Context, channel, thread, text string, extra ...slack.MsgOption) (Ref, error) {
	opts := append([]slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionDisableLinkUnfurl()}, extra...)
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	ch, ts, err := b.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return Ref{}, b.secrets.classify("slack chat.postMessage", err)
	}
	return Ref{Channel: ch, TS: ts}, nil
}

// String describes the configuration without its secrets.
func (cfg Config) String() string {
	mode := "log"
	switch {
	case cfg.BotToken != "":
		mode = "bot, channel " + cfg.Channel + ", api " + cmp.Or(cfg.APIURL, slack.APIURL)
	case cfg.WebhookURL != "":
		mode = "webhook"
	}
	return "notify.Config{" + mode + "}"
}

// GoString is String, so that %#v hides the secrets too.
func (cfg Config) GoString() string { return cfg.String() }

// LogValue implements slog.LogValuer without the secrets.
func (cfg Config) LogValue() slog.Value { return slog.StringValue(cfg.String()) }
