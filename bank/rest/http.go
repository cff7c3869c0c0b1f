package rest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"
)

// call is one HTTP call to the bank.
type call struct {
	method string
	path   string // with its query
	shown  string // the path as errors show it, when path holds an account
	body   []byte // JSON, or nil
	key    string // Idempotency-Key, or ""
}

// call sends c and reads the answer, at most maxAnswer bytes of it. Errors
// are transport errors, with the URL as it may be shown.
func (c *Client) call(ctx context.Context, cl call) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, cl)
	if err != nil {
		return answer{}, err
	}
	start := time.Now()
	// Do sets the credentials and, with OAuth, resends the request once
	// after a 401 with a fresh token. Every call of this dialect is safe to
	// send twice: a 401 means the bank did nothing, reads change nothing,
	// and a transfer carries its Idempotency-Key header, sent again.
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, c.transportError(cl, err)
	}
	defer resp.Body.Close()
	a, err := c.readAnswer(resp)
	if err != nil {
		return answer{}, c.transportError(cl, err)
	}
	c.log.Debug("bank call", "provider", c.name, "method", cl.method, "path", c.shownPath(cl),
		"status", a.status, "replayed", resp.Header.Get("Idempotent-Replayed") == "true",
		"duration", time.Since(start))
	return a, nil
}

func (c *Client) newRequest(ctx context.Context, cl call) (*http.Request, error) {
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base+cl.path, body)
	if err != nil {
		return nil, errors.New("cannot build the request for " + c.shownPath(cl))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "settle-rest/1")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.key != "" {
		req.Header.Set("Idempotency-Key", cl.key)
	}
	return req, nil
}

func (c *Client) readAnswer(resp *http.Response) (answer, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return answer{}, err
	}
	a := answer{
		status:      resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"),
		retryAfter:  resp.Header.Get("Retry-After"),
		body:        body,
		now:         c.now(),
	}
	if len(body) > maxAnswer {
		a.body, a.truncated = body[:maxAnswer], true
	}
	// A bank that echoes our token must not put it into our errors.
	a.body = c.http.Redact(a.body)
	return a, nil
}

func (c *Client) shownPath(cl call) string {
	if cl.shown != "" {
		return cl.shown
	}
	return cl.path
}

// transportError rewrites a *url.Error so that it shows the masked path; the
// cause (timeout, reset) is kept for errors.Is and errors.As.
func (c *Client) transportError(cl call, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: c.base + c.shownPath(cl), Err: ue.Err}
	}
	return &url.Error{Op: cl.method, URL: c.base + c.shownPath(cl), Err: err}
}
