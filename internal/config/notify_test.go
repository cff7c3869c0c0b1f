package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

// Canary Slack secrets: no error, printout or log line may show them.
const (
	hookSecret = "https://hooks.slack.com/services/T0CANARY/B0CANARY/CANARYhook"
	botSecret  = "xoxb-CANARY-bot-token"
)

func assertNoSlackSecret(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, "CANARY") {
		t.Errorf("%s shows a Slack secret:\n%s", what, s)
	}
}

func notifyYAML(body string) string { return valid + "notify:\n" + body }

func TestNotifyValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"webhook", notifyYAML("  slack:\n    webhook_url: " + hookSecret + "\n"), nil},
		{"webhook to this machine over http", notifyYAML("  slack:\n    webhook_url: http://127.0.0.1:9/hook/CANARY\n"), nil},
		{"bot", notifyYAML("  slack:\n    bot_token: " + botSecret + "\n    channel: \"#settle-alerts\"\n"), nil},
		{"bot with a channel ID and a proxy", notifyYAML("  slack:\n    bot_token: " + botSecret + "\n    channel: C0123456789\n    api_url: http://proxy.internal/api/\n"), nil},
		{"both", notifyYAML("  slack:\n    webhook_url: " + hookSecret + "\n    bot_token: " + botSecret + "\n    channel: C0123456789\n"),
			[]string{"notify.slack: set webhook_url, or bot_token and channel, not both"}},
		{"webhook over http", notifyYAML("  slack:\n    webhook_url: http://hooks.slack.com/services/T0CANARY/B0CANARY/x\n"),
			[]string{"notify.slack.webhook_url: must be an https:// URL such as https://hooks.slack.com/services/…"}},
		{"webhook not a URL", notifyYAML("  slack:\n    webhook_url: CANARY\n"), []string{"notify.slack.webhook_url: must be an https:// URL"}},
		{"webhook with a password", notifyYAML("  slack:\n    webhook_url: https://u:CANARY@hooks.slack.com/x\n"), []string{"notify.slack.webhook_url: must be an https:// URL"}},
		{"bot without channel", notifyYAML("  slack:\n    bot_token: " + botSecret + "\n"),
			[]string{"notify.slack.channel is required with notify.slack.bot_token"}},
		{"channel without bot", notifyYAML("  slack:\n    channel: C0123456789\n"),
			[]string{`notify.slack.channel "C0123456789": only used with notify.slack.bot_token`}},
		{"channel form", notifyYAML("  slack:\n    bot_token: " + botSecret + "\n    channel: Settle Alerts\n"),
			[]string{`notify.slack.channel "Settle Alerts": must be a channel ID such as C0123456789 or a name such as #settle-alerts`}},
		{"token with a line break", notifyYAML("  slack:\n    bot_token: \"xoxb-CANARY\\nx\"\n    channel: C0123456789\n"),
			[]string{"notify.slack.bot_token: must be one token (xoxb-…) without spaces or line breaks"}},
		{"api_url scheme", notifyYAML("  slack:\n    api_url: ftp://slack\n"), []string{`notify.slack.api_url "ftp://slack": must be an absolute http:// or https:// URL`}},
		{"api_url password", notifyYAML("  slack:\n    api_url: https://u:CANARY@proxy/api/\n"), []string{`notify.slack.api_url "https://u:[redacted]@proxy/api/"`}},
		{"api_url empty", notifyYAML("  slack:\n    api_url: \"\"\n"), []string{`notify.slack.api_url "": must be an absolute`}},
		{"delivery_schedule", notifyYAML("  delivery_schedule: every 10s\n"), []string{`notify.delivery_schedule "every 10s": `}},
		{"storm_threshold 0", notifyYAML("  storm_threshold: 0\n"), []string{"notify.storm_threshold 0: must be between 1 and 100000"}},
		{"storm_threshold big", notifyYAML("  storm_threshold: 100001\n"), []string{"notify.storm_threshold 100001: must be between 1 and 100000"}},
		{"storm_window 0", notifyYAML("  storm_window: 0s\n"), []string{"notify.storm_window 0s: must be more than 0s"}},
		{"storm_window long", notifyYAML("  storm_window: 25h\n"), []string{"notify.storm_window 25h0m0s: must be at most 24h0m0s"}},
		{"repeat_interval 0", notifyYAML("  repeat_interval: 0s\n"), []string{"notify.repeat_interval 0s: must be more than 0s"}},
		{"daily_summary", notifyYAML("  daily_summary: \"at eight\"\n"), []string{`notify.daily_summary "at eight": expected 5 to 6 fields, found 2: [at eight]; use a cron spec such as "0 8 * * *"`}},
		{"daily_summary empty", notifyYAML("  daily_summary: \"\"\n"), []string{`notify.daily_summary "": `}},
		{"daily_summary in its own zone", notifyYAML("  daily_summary: \"CRON_TZ=Europe/Paris 30 7 * * 1-5\"\n"), nil},
		{"daily_summary unknown zone", notifyYAML("  daily_summary: \"CRON_TZ=Mars/Olympus 0 8 * * *\"\n"),
			[]string{`notify.daily_summary "CRON_TZ=Mars/Olympus 0 8 * * *": `}},
		{"customer webhook retries", notifyYAML("  customer_webhook:\n    retry_base: 30s\n    retry_max: 2h\n    warn_after: 1h\n    give_up_after: 24h\n"), nil},
		{"customer webhook retry_base 0", notifyYAML("  customer_webhook:\n    retry_base: 0s\n"),
			[]string{"notify.customer_webhook.retry_base 0s: must be more than 0s"}},
		{"customer webhook retry_max below base", notifyYAML("  customer_webhook:\n    retry_base: 2m\n    retry_max: 1m\n"),
			[]string{"notify.customer_webhook.retry_max 1m0s: must be at least notify.customer_webhook.retry_base (2m0s)"}},
		{"customer webhook retry_max long", notifyYAML("  customer_webhook:\n    retry_max: 25h\n"),
			[]string{"notify.customer_webhook.retry_max 25h0m0s: must be at most 24h0m0s"}},
		{"customer webhook warn_after not before give_up_after", notifyYAML("  customer_webhook:\n    warn_after: 3h\n    give_up_after: 2h\n"),
			[]string{"notify.customer_webhook.warn_after 3h0m0s: must be less than notify.customer_webhook.give_up_after (2h0m0s), so operators hear of it before it gives up"}},
		{"customer webhook give_up_after long", notifyYAML("  customer_webhook:\n    give_up_after: 721h\n"),
			[]string{"notify.customer_webhook.give_up_after 721h0m0s: must be at most 720h0m0s"}},
		{"customer webhook give_up_after 0", notifyYAML("  customer_webhook:\n    give_up_after: 0s\n"),
			[]string{"notify.customer_webhook.give_up_after 0s: must be more than 0s"}},
		// Alerts are never given up on, so there is no such key.
		{"no max_attempts", notifyYAML("  max_attempts: 5\n"), []string{`unknown key "notify.max_attempts"`}},
		{"secret not a string", notifyYAML("  slack:\n    bot_token: 12345\n"), []string{"notify.slack.bot_token: must be a string (quote it), not a number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			wantErrors(t, err, tt.want...)
			assertNoSlackSecret(t, "error", err.Error())
		})
	}
}

func TestNotifyEnvOverrides(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, valid,
		"SETTLE_NOTIFY_SLACK_BOT_TOKEN="+botSecret, "SETTLE_NOTIFY_SLACK_CHANNEL=#ops",
		"SETTLE_NOTIFY_SLACK_API_URL=http://127.0.0.1:1/api/", "SETTLE_NOTIFY_DELIVERY_SCHEDULE=@every 30s",
		"SETTLE_NOTIFY_STORM_THRESHOLD=50", "SETTLE_NOTIFY_STORM_WINDOW=10m", "SETTLE_NOTIFY_REPEAT_INTERVAL=1h",
		"SETTLE_NOTIFY_DAILY_SUMMARY=0 7 * * 1-5")
	if err != nil {
		t.Fatal(err)
	}
	want := NotifyConfig{
		Customer: WebhookConfig{Timeout: 5 * time.Second, RetryBase: time.Minute, RetryMax: time.Hour,
			WarnAfter: 30 * time.Minute, GiveUpAfter: 72 * time.Hour},
		Slack:            SlackConfig{BotToken: botSecret, Channel: "#ops", APIURL: "http://127.0.0.1:1/api/"},
		DeliverySchedule: "@every 30s", StormThreshold: 50, StormWindow: 10 * time.Minute, RepeatInterval: time.Hour,
		DailySummary: "0 7 * * 1-5",
	}
	if cfg.Notify != want {
		t.Errorf("notify = %+v, want %+v", cfg.Notify, want)
	}
	cfg, err = load(t, valid, "SETTLE_NOTIFY_SLACK_WEBHOOK_URL="+hookSecret)
	if err != nil || cfg.Notify.Slack.WebhookURL.Reveal() != hookSecret {
		t.Fatalf("webhook from the environment: %v", err)
	}
	_, err = load(t, valid, "SETTLE_NOTIFY_SLACK_WEBHOOK_URL=ftp://CANARY", "SETTLE_NOTIFY_STORM_WINDOW=soon")
	wantErrors(t, err, "notify.slack.webhook_url: must be an https:// URL",
		`notify.storm_window "soon" (from SETTLE_NOTIFY_STORM_WINDOW): not a duration`)
	assertNoSlackSecret(t, "error", err.Error())
}

func TestNotifySecretsAreRedacted(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"  slack:\n    webhook_url: " + hookSecret + "\n",
		"  slack:\n    bot_token: " + botSecret + "\n    channel: C0123456789\n",
	} {
		cfg, err := load(t, notifyYAML(body))
		if err != nil {
			t.Fatal(err)
		}
		out, err := cfg.Redacted()
		if err != nil {
			t.Fatal(err)
		}
		assertNoSlackSecret(t, "Redacted()", string(out))
		doc, err := yaml.Parser().Unmarshal(out)
		if err != nil {
			t.Fatal(err)
		}
		slack := doc["notify"].(map[string]any)["slack"].(map[string]any)
		if slack["webhook_url"] != redacted && slack["bot_token"] != redacted {
			t.Errorf("notify.slack redacted as %v", slack)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "config", cfg, "notify", cfg.Notify)
		assertNoSlackSecret(t, "slog", buf.String())
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			assertNoSlackSecret(t, "fmt "+verb, fmt.Sprintf(verb, *cfg))
		}
	}
}

// The daily summary's schedule is read in time_zone unless it names its
// own zone; an @every interval needs none.
func TestDailySummaryScheduleIsReadInTimeZone(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ yaml, want string }{
		{valid, "CRON_TZ=Asia/Seoul 0 8 * * *"},
		{valid + "time_zone: UTC\n", "CRON_TZ=UTC 0 8 * * *"},
		{notifyYAML("  daily_summary: \"CRON_TZ=Europe/Paris 0 9 * * *\"\n"), "CRON_TZ=Europe/Paris 0 9 * * *"},
		{notifyYAML("  daily_summary: \"@every 24h\"\n"), "@every 24h"},
	} {
		cfg, err := load(t, tt.yaml)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.DailySummarySchedule(); got != tt.want {
			t.Errorf("DailySummarySchedule() = %q, want %q", got, tt.want)
		}
	}
}
