package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
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
		Slack: SlackConfig{BotToken: botSecret, Channel: "#ops", APIURL: "http://127.0.0.1:1/api/",
			Interactive: InteractiveConfig{Mode: InteractiveOff, Path: "/slack/interactions", ApprovalWindow: 15 * time.Minute}},
		DeliverySchedule: "@every 30s", StormThreshold: 50, StormWindow: 10 * time.Minute, RepeatInterval: time.Hour,
		DailySummary: "0 7 * * 1-5",
	}
	if !reflect.DeepEqual(cfg.Notify, want) {
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

// Canary secrets of the Slack app: no error, printout or log line may show them.
const (
	appSecret     = "xapp-1-CANARY-app-token"
	signingSecret = "CANARYsigning0123456789abcdef"
)

// interactiveYAML is a bot with interactive settings.
func interactiveYAML(body string) string {
	return notifyYAML("  slack:\n    bot_token: " + botSecret + "\n    channel: C0123456789\n    interactive:\n" + body)
}

const slackUsers = "      users:\n        - {id: U0APPROVER, role: approver, name: Kim}\n        - {id: U0OPERATOR, role: operator}\n"

func TestInteractiveValidation(t *testing.T) {
	t.Parallel()
	socket := "      mode: socket\n      app_token: " + appSecret + "\n      team_id: T0123456789\n"
	http := "      mode: http\n      signing_secret: " + signingSecret + "\n      team_id: T0123456789\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"socket", interactiveYAML(socket + slackUsers), nil},
		{"http", interactiveYAML(http + "      approval_window: 1h\n" + slackUsers), nil},
		{"off ignores the rest", interactiveYAML("      mode: \"off\"\n      team_id: nonsense\n"), nil},
		{"mode", interactiveYAML("      mode: websocket\n"), []string{`notify.slack.interactive.mode "websocket": must be one of off, socket, http`}},
		{"without a bot", notifyYAML("  slack:\n    webhook_url: " + hookSecret + "\n    interactive:\n" + socket + slackUsers),
			[]string{`notify.slack.interactive.mode "socket": needs notify.slack.bot_token and channel`}},
		{"socket without its token", interactiveYAML("      mode: socket\n      team_id: T0123456789\n" + slackUsers),
			[]string{"notify.slack.interactive.app_token is required with mode socket"}},
		{"the bot token as app token", interactiveYAML("      mode: socket\n      app_token: xoxb-CANARY\n      team_id: T0123456789\n" + slackUsers),
			[]string{"notify.slack.interactive.app_token: must be one app-level token (xapp-…)"}},
		{"http without its secret", interactiveYAML("      mode: http\n      team_id: T0123456789\n" + slackUsers),
			[]string{"notify.slack.interactive.signing_secret is required with mode http"}},
		{"short secret", interactiveYAML("      mode: http\n      signing_secret: CANARY\n      team_id: T0123456789\n" + slackUsers),
			[]string{"notify.slack.interactive.signing_secret: must be the app's signing secret, at least 16 characters"}},
		{"the other mode's secret", interactiveYAML(http + "      app_token: " + appSecret + "\n" + slackUsers),
			[]string{"notify.slack.interactive.app_token: only used with mode socket"}},
		{"path", interactiveYAML(http + "      path: slack\n" + slackUsers), []string{`notify.slack.interactive.path "slack": must be a path`}},
		{"team", interactiveYAML("      mode: socket\n      app_token: " + appSecret + "\n" + slackUsers),
			[]string{`notify.slack.interactive.team_id "": must be the workspace's ID`}},
		{"window", interactiveYAML(socket + "      approval_window: 30s\n" + slackUsers),
			[]string{"notify.slack.interactive.approval_window 30s: must be from 1m0s to 24h0m0s"}},
		{"users", interactiveYAML(socket + "      users:\n        - {id: kim, role: approver}\n        - {id: U0LEE, role: admin}\n        - {id: U0LEE, role: viewer}\n"),
			[]string{`users[0].id "kim": must be a Slack member ID`, `users[1].role "admin": must be one of viewer, operator, approver`,
				`users[2].id "U0LEE": already listed as users[1]`}},
		{"no approver", interactiveYAML(socket + "      users:\n        - {id: U0LEE, role: operator}\n"),
			[]string{"notify.slack.interactive.users: at least one user with role approver is required"}},
		{"misspelt user key", interactiveYAML(socket + slackUsers + "        - {id: U0EVE, rol: viewer}\n"),
			[]string{`(did you mean "notify.slack.interactive.users[2].role"?)`, `users[2].role "": must be one of`}},
		{"misspelt key", interactiveYAML(socket + slackUsers + "      aproval_window: 5m\n"),
			[]string{`(did you mean "notify.slack.interactive.approval_window"?)`}},
		{"secret not a string", interactiveYAML(socket + slackUsers + "      signing_secret: 12345\n"),
			[]string{"notify.slack.interactive.signing_secret: must be a string (quote it), not a number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tt.yaml)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				if i := cfg.Notify.Slack.Interactive; i.On() && (len(i.Users) != 2 || i.Users[0] != (SlackUser{ID: "U0APPROVER", Role: "approver", Name: "Kim"})) {
					t.Fatalf("users %+v", i.Users)
				}
				return
			}
			wantErrors(t, err, tt.want...)
			assertNoSlackSecret(t, "error", err.Error())
		})
	}
}

// The Slack app's secrets come from the file, a file of their own, or the
// environment (which replaces a file), and are never shown.
func TestInteractiveSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "app-token")
	if err := os.WriteFile(tokenFile, []byte(appSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	socket := "      mode: socket\n      team_id: T0123456789\n" + slackUsers
	cfg, err := load(t, interactiveYAML(socket+"      app_token_file: "+tokenFile+"\n"))
	if err != nil || cfg.Notify.Slack.Interactive.AppToken.Reveal() != appSecret {
		t.Fatalf("app_token_file: %v", err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	assertNoSlackSecret(t, "Redacted()", string(out))
	if !strings.Contains(string(out), "app_token_file: "+tokenFile) || strings.Contains(string(out), "app_token: ") {
		t.Errorf("a token read from a file is not shown as its file:\n%s", out)
	}
	cfg, err = load(t, interactiveYAML(socket+"      app_token_file: /nonexistent/token\n"), "SETTLE_NOTIFY_SLACK_INTERACTIVE_APP_TOKEN="+appSecret)
	if err != nil || cfg.Notify.Slack.Interactive.AppToken.Reveal() != appSecret {
		t.Fatalf("app token from the environment replacing its file: %v", err)
	}
	_, err = load(t, interactiveYAML(socket+"      app_token: "+appSecret+"\n      app_token_file: "+tokenFile+"\n"))
	wantErrors(t, err, "config: notify.slack.interactive: set app_token or app_token_file, not both")
	_, err = load(t, interactiveYAML(socket+"      app_token_file: missing\n"))
	wantErrors(t, err, `notify.slack.interactive.app_token_file "missing": no such file or directory: fix the path`,
		"notify.slack.interactive.app_token is required with mode socket")

	http := "      mode: http\n      team_id: T0123456789\n" + slackUsers
	cfg, err = load(t, interactiveYAML(http), "SETTLE_NOTIFY_SLACK_INTERACTIVE_SIGNING_SECRET="+signingSecret)
	if err != nil || cfg.Notify.Slack.Interactive.SigningSecret.Reveal() != signingSecret {
		t.Fatalf("signing secret from the environment: %v", err)
	}
	out, err = cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	assertNoSlackSecret(t, "Redacted()", string(out))
	if !strings.Contains(string(out), "signing_secret: '[redacted]'") {
		t.Errorf("signing secret not shown redacted:\n%s", out)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "config", cfg, "interactive", cfg.Notify.Slack.Interactive)
	assertNoSlackSecret(t, "slog", buf.String())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoSlackSecret(t, "fmt "+verb, fmt.Sprintf(verb, *cfg))
	}
}

// A role that never talks to Slack (serve --role worker or web, migrate)
// loads a configuration with the Slack app's settings but none of its
// secrets; the scheduler, which does, needs them.
func TestInteractiveWithoutSlackSecrets(t *testing.T) {
	t.Parallel()
	yaml := notifyYAML("  slack:\n    channel: C0123456789\n    interactive:\n      mode: socket\n      app_token_file: /nonexistent/app-token\n" +
		"      team_id: T0123456789\n" + slackUsers)
	path := writeFile(t, "settle.yaml", yaml)
	if _, err := LoadFor(path, nil, Uses{NoSlack: true}); err != nil {
		t.Fatalf("without Slack: %v", err)
	}
	_, err := LoadFor(path, nil, Uses{})
	wantErrors(t, err, `notify.slack.interactive.app_token_file "/nonexistent/app-token": no such file or directory`,
		`notify.slack.channel "C0123456789": only used with notify.slack.bot_token`,
		`notify.slack.interactive.mode "socket": needs notify.slack.bot_token and channel`,
		"notify.slack.interactive.app_token is required with mode socket")
	// The rest is still checked.
	bad := strings.Replace(yaml, "team_id: T0123456789", "team_id: nope", 1)
	_, err = LoadFor(writeFile(t, "settle.yaml", bad), nil, Uses{NoSlack: true})
	wantErrors(t, err, `notify.slack.interactive.team_id "nope": must be the workspace's ID`)
}
