package web

import (
	"net/http"
	"time"
)

// The timeouts of every HTTP server settle runs (the operator server of
// `settle serve`, the sandbox bank, the demo receiver). A client that sends
// its request slowly, never reads the answer or leaves a connection idle is
// cut off instead of holding a connection and a goroutine for good.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request, body included: every
	// request settle takes is small.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its answer. The longest answers are the sandbox bank's under its
	// latency fault (60s at most) and the status page, /metrics and the
	// dashboard's API reading the database (statement_timeout, 30s by
	// default); nothing streams.
	WriteTimeout = 2 * time.Minute
	// IdleTimeout bounds how long a kept-alive connection waits for its next
	// request.
	IdleTimeout = 2 * time.Minute
)

// NewServer returns an http.Server serving h with the timeouts above.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
	}
}
