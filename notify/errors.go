package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// ErrUnavailable means Slack could not be reached, timed out, or answered
// with a server error. As far as settle knows nothing was posted; try again
// later.
var ErrUnavailable = errors.New("slack unavailable")

// RateLimitedError means Slack refused the call for its rate limit and asked
// to wait After before the next one.
type RateLimitedError struct {
	After time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("slack rate limit hit: retry after %s", e.After)
}

// RefusedError means Slack refused the message: a bad token, an unknown or
// archived channel, a revoked webhook, a malformed message. Retrying the
// same call fails again until a person fixes the configuration.
type RefusedError struct {
	Code string // Slack's error code (channel_not_found) or the HTTP status
}

func (e *RefusedError) Error() string {
	return "slack refused the message: " + e.Code + hint(e.Code)
}

// hint says what to do about the refusals an operator can fix.
func hint(code string) string {
	switch code {
	case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired":
		return " (check notify.slack.bot_token)"
	case "channel_not_found", "not_in_channel", "is_archived", "channel_is_archived":
		return " (check notify.slack.channel and invite the bot to it)"
	case "missing_scope":
		return " (the bot needs the chat:write scope)"
	case "HTTP 403", "HTTP 404", "HTTP 410", "no_service", "no_team", "team_disabled", "action_prohibited":
		return " (check notify.slack.webhook_url: the webhook may be revoked)"
	}
	return ""
}

// defaultRetryAfter is the wait after a 429 that names no Retry-After.
const defaultRetryAfter = 30 * time.Second

// unavailableCodes are Slack API error codes that mean "try again later".
var unavailableCodes = map[string]bool{
	"internal_error": true, "fatal_error": true, "service_unavailable": true,
	"request_timeout": true, "ratelimited": true,
}

// contentCodes are refusals of a message's form, which a plain-text-only
// message avoids.
var contentCodes = map[string]bool{
	"invalid_blocks": true, "invalid_blocks_format": true, "msg_too_long": true,
	"too_many_blocks": true, "invalid_payload": true, "HTTP 400": true,
}

// secrets are strings that must never leave this package in an error.
type secrets []string

// clean replaces every secret in s.
func (ss secrets) clean(s string) string {
	for _, sec := range ss {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// classify turns an error from slack-go into one of this package's, with no
// secret in its text. It is the one place that decides what a Slack failure
// means.
func (ss secrets) classify(op string, err error) error {
	var (
		rl     *slack.RateLimitedError
		status slack.StatusCodeError
		api    slack.SlackErrorResponse
		uerr   *url.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rl):
		return &RateLimitedError{After: max(rl.RetryAfter, time.Second)}
	case errors.As(err, &status) && status.Code == http.StatusTooManyRequests:
		return &RateLimitedError{After: defaultRetryAfter}
	case errors.As(err, &status) && status.Code >= 500:
		return fmt.Errorf("%s: %w (HTTP %d)", op, ErrUnavailable, status.Code)
	case errors.As(err, &status):
		return fmt.Errorf("%s: %w", op, &RefusedError{Code: fmt.Sprintf("HTTP %d", status.Code)})
	case errors.As(err, &api) && unavailableCodes[api.Err]:
		return fmt.Errorf("%s: %w (%s)", op, ErrUnavailable, ss.clean(api.Err))
	case errors.As(err, &api):
		return fmt.Errorf("%s: %w", op, &RefusedError{Code: ss.clean(api.Err)})
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w (%v)", op, ErrUnavailable, contextCause(err))
	case errors.As(err, &uerr):
		// A *url.Error names the URL, and a webhook's URL is its secret.
		return fmt.Errorf("%s: %w: %s", op, ErrUnavailable, ss.clean(uerr.Err.Error()))
	}
	return fmt.Errorf("%s: %w: %s", op, ErrUnavailable, ss.clean(err.Error()))
}

func contextCause(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return context.Canceled
}

// isContentRefusal reports whether err is a refusal of the message's form.
func isContentRefusal(err error) bool {
	var r *RefusedError
	return errors.As(err, &r) && contentCodes[r.Code]
}
