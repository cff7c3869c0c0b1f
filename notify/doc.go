// Package notify tells operators about problems: it renders alerts from the
// alert outbox as Slack Block Kit messages with a plain-text fallback, and
// sends them through an incoming webhook, a bot token (chat.postMessage and
// chat.update, follow-ups threaded under the problem's first message), or,
// with no Slack configured, the slog logger.
//
// A message says what broke, for whom (customer reference; account numbers
// masked to their last four digits), why in plain words (with the bank's code
// and message), what the engine already tried, and the exact command that
// fixes it.
//
// Deciding what to send (a new message, an update, a follow-up, a storm
// summary) is the delivery job's business (jobs.AlertDelivery); this package
// renders and sends, and words the alerts settle's jobs and daemon raise (a
// stuck step, a broken invariant, the daily summary, a provider's breaker:
// raise.go), and the messages of the alerts' buttons (actions.go), whose
// clicks the interact package handles. It and interact are the only
// packages that import slack-go.
package notify

//go:generate go test -run ^(TestGolden|TestDocs)$ -update .
