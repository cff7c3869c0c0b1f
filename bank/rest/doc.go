// Package rest is the bank adapter for the "rest" dialect of BANK_API.md: a
// JSON API with batched balances, transfers keyed by an Idempotency-Key
// header, a status call by key and cursor-paged transaction lists.
//
// Client implements pipeline.Bank. Every answer is turned into a receipt or
// an error that pipeline.Classify understands:
//
//   - 201/200 "succeeded" → Receipt{State: TransferSucceeded}
//   - "pending" → Receipt{State: TransferPending} (outcome unknown)
//   - "failed" with a known failure_code → *pipeline.RefusedError
//   - 422 → pipeline.ErrKeyReused
//   - 429 → *pipeline.RetryAfterError wrapping pipeline.ErrRateLimited
//   - 401/403 → pipeline.ErrUnauthorized
//   - 404 with a JSON body, status call only → pipeline.ErrNotFound
//   - 5xx, garbage, oversized or non-JSON bodies, unknown statuses or codes,
//     implausible amounts → an error wrapping pipeline.ErrBadResponse
//   - timeouts and broken connections → the transport error
//   - other 4xx → an error wrapping ErrRejected
//
// The last three classify as unknown outcomes. The decoding is done by pure
// functions over a bankhttp.Answer (decode.go), which the fuzz tests call.
//
// Errors name the provider and the operation ("rest acme: transfer: …"),
// never the token, and show account numbers masked to their last four
// characters ("****1234").
package rest
