package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/settle-dev/settle/pipeline"
)

// Headers of a customer event request.
const (
	HeaderEventID   = "Settle-Event-Id"
	HeaderTimestamp = "Settle-Timestamp"
	// HeaderSignature carries "v1=" and the hex HMAC-SHA256, keyed by the
	// shared secret, of the timestamp, a dot and the body.
	HeaderSignature = "Settle-Signature"
)

// CustomerWebhook POSTs settlement events to the lender's app, signed so the
// app can tell they come from settle and are fresh. It implements
// pipeline.EventSink.
type CustomerWebhook struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

var _ pipeline.EventSink = (*CustomerWebhook)(nil)

// NewCustomerWebhook returns a sink for url with the shared secret.
func NewCustomerWebhook(url, secret string, timeout time.Duration) (*CustomerWebhook, error) {
	if url == "" || secret == "" {
		return nil, errors.New("customer webhook: url and secret are both required")
	}
	return &CustomerWebhook{url: url, secret: []byte(secret), client: &http.Client{Timeout: timeout}, now: time.Now}, nil
}

// eventBody is what the app receives.
type eventBody struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Send implements pipeline.EventSink: any answer but 2xx is an error.
func (w *CustomerWebhook) Send(ctx context.Context, e pipeline.Event) error {
	body, err := json.Marshal(eventBody{ID: e.ID, Type: e.Type, Data: e.Data})
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("customer webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEventID, e.ID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, "v1="+Sign(w.secret, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("customer webhook: %w", scrubURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("customer webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// scrubURL drops the URL from a transport error (it may carry a token).
func scrubURL(err error) error {
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		if inner := uerr.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// Sign returns the hex HMAC-SHA256 of timestamp + "." + body.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is returned by Verify for a request that is not signed by
// the secret, or too old.
var ErrBadSignature = errors.New("bad or stale signature")

// Verify checks a received event the way a receiver should: the signature
// over the timestamp and body, compared in constant time, and a timestamp no
// older than maxAge.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > maxAge {
		return ErrBadSignature
	}
	want := "v1=" + Sign(secret, timestamp, body)
	if subtle.ConstantTimeCompare([]byte(want), []byte(signature)) != 1 {
		return ErrBadSignature
	}
	return nil
}
