package bankhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// MaxAnswer is the largest answer body an adapter reads; a larger one is a
// bad response.
const MaxAnswer = 1 << 20

// MaxPlausibleAmount is the largest amount an adapter believes a bank:
// 10^15 minor units. Anything above it is a bad response.
const MaxPlausibleAmount = 1_000_000_000_000_000

// maxRetryAfter caps the wait a bank may ask for.
const maxRetryAfter = time.Hour

// Answer is one HTTP answer as the decoders see it: plain data, so decoding
// is a pure function.
type Answer struct {
	Status      int
	ContentType string
	RetryAfter  string // the Retry-After header
	Body        []byte // at most MaxAnswer bytes
	Truncated   bool   // the body was larger than MaxAnswer
	Now         time.Time
}

// RateLimited is the error of an HTTP 429: pipeline.ErrRateLimited with the
// wait the bank asked for.
func (a Answer) RateLimited() error {
	return &pipeline.RetryAfterError{Err: pipeline.ErrRateLimited, After: ParseRetryAfter(a.RetryAfter, a.Now)}
}

// ParseRetryAfter reads Retry-After as seconds or an HTTP date; anything
// else, or nothing, is 0 (no hint). The wait is capped at an hour.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// RequireJSON checks that the answer is a complete JSON body.
func RequireJSON(a Answer) error {
	if a.Truncated {
		return fmt.Errorf("%w: answer is larger than %d bytes", pipeline.ErrBadResponse, MaxAnswer)
	}
	mt, _, err := mime.ParseMediaType(a.ContentType)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return fmt.Errorf("%w: answer has content type %s, not application/json", pipeline.ErrBadResponse, Quoted(a.ContentType))
	}
	return nil
}

// DecodeJSON decodes a complete JSON object answer into v.
func DecodeJSON(a Answer, v any) error {
	if err := RequireJSON(a); err != nil {
		return err
	}
	if len(a.Body) == 0 || a.Body[0] != '{' {
		return fmt.Errorf("%w: answer body is not a JSON object", pipeline.ErrBadResponse)
	}
	if err := json.Unmarshal(a.Body, v); err != nil {
		return fmt.Errorf("%w: %s", pipeline.ErrBadResponse, describeJSONError(err))
	}
	return nil
}

func describeJSONError(err error) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s holds %s of the wrong type", Quoted(typ.Field), Scrub(typ.Value))
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	}
	return "invalid JSON"
}
