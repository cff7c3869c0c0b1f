package openbanking

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"
)

// request is one HTTP call to the bank.
type request struct {
	method string
	path   string // with its query
	shown  string // the path as errors and logs show it, when path holds an account
	body   []byte // JSON, or nil
}

// do sends rq and reads the answer, at most maxAnswer bytes of it. Errors
// are transport errors, with the URL as it may be shown.
func (c *Client) do(ctx context.Context, rq request) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, rq)
	if err != nil {
		return answer{}, err
	}
	start := time.Now()
	// Do sets the credentials and, with OAuth, resends the request once
	// after a 401 with a fresh token. Every call of this dialect is safe to
	// send twice: a 401 means the bank did nothing, reads change nothing,
	// and a transfer carries its bank_tran_id, which the bank dedupes, in
	// the body sent again.
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, c.transportError(rq, err)
	}
	defer resp.Body.Close()
	a, err := c.readAnswer(resp)
	if err != nil {
		return answer{}, c.transportError(rq, err)
	}
	c.log.Debug("bank call", "provider", c.name, "method", rq.method, "path", rq.shownPath(),
		"status", a.status, "duration", time.Since(start))
	return a, nil
}

func (c *Client) newRequest(ctx context.Context, rq request) (*http.Request, error) {
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, c.base+rq.path, body)
	if err != nil {
		return nil, errors.New("cannot build the request for " + rq.shownPath())
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "settle-openbanking/1")
	if rq.body != nil {
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
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

func (rq request) shownPath() string {
	if rq.shown != "" {
		return rq.shown
	}
	return rq.path
}

// transportError rewrites a *url.Error so that it shows the masked path; the
// cause (timeout, reset) is kept for errors.Is and errors.As.
func (c *Client) transportError(rq request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: c.base + rq.shownPath(), Err: ue.Err}
	}
	return &url.Error{Op: rq.method, URL: c.base + rq.shownPath(), Err: err}
}
