// Package openbanking is the bank adapter for the "openbanking" dialect of
// BANK_API.md (docs/bank-api.md), modelled on the Korean open-banking API
// v2.0: one account per balance call, amounts as decimal strings, a
// 20-character bank_tran_id chosen by the caller as the idempotency key, and
// a separate result call to learn a transfer's outcome.
//
// Client implements pipeline.Bank. One table (decode.go) maps every code to
// an outcome that pipeline.Classify understands:
//
//   - bank_rsp_code 000 → Receipt{State: TransferSucceeded}
//   - 400 → Receipt{State: TransferPending} (outcome unknown: ask later)
//   - 412, 415, 420, 815, 551 → *pipeline.RefusedError (no_such_account,
//     account_closed, account_frozen, holder_name_mismatch,
//     insufficient_funds)
//   - A05 (transfer call) → pipeline.ErrKeyReused
//   - A04 (result call only) → pipeline.ErrNotFound
//   - a top-level rsp_code other than A0000 (A0001 gateway busy) →
//     pipeline.ErrUnavailable: nothing was done
//   - HTTP 429 → *pipeline.RetryAfterError wrapping pipeline.ErrRateLimited
//   - HTTP 401/403 → pipeline.ErrUnauthorized
//   - HTTP 5xx and 3xx, garbage, oversized or non-JSON bodies, unknown
//     codes, a code on a call it cannot answer, implausible amounts → an
//     error wrapping pipeline.ErrBadResponse
//   - other HTTP 4xx → an error wrapping ErrRejected
//   - timeouts and broken connections → the transport error (*url.Error)
//
// The last three classify as unknown outcomes: only A04 lets the engine send
// a new attempt. The decoding is done by pure functions over a bankhttp.Answer,
// which the fuzz tests call. Unknown fields are ignored (banks add fields);
// everything the adapter reads is checked: the types, one res_list item,
// amounts of digits only, and the echoed bank_tran_id and account number
// when the bank sends them.
//
// # bank_tran_id
//
// BankTranID derives the 20-character ID from the engine's idempotency key,
// deterministically (a retry and the result call name the same transfer)
// and injectively (unique forever, where the dialect asks for 30 days):
//
//	settle-s<step>-a<attempt>  →  "S" + step in 13 decimal digits
//	                               + "A" + attempt in 5 decimal digits
//	                               ("settle-s42-a1" → "S0000000000042A00001")
//	any other key              →  "H" + 19 base-36 digits of SHA-256(key)
//	a balance call             →  "Q" + 19 random base-36 digits
//
// The engine form is readable on a bank statement and reversible
// (AttemptKey). It covers steps below 10^13 and attempts below 10^5; keys
// outside that range, or not in the engine's canonical form, take the
// digest form, whose 96 bits make a collision negligible. The leading letter
// keeps the three forms from ever colliding with each other.
//
// # Dates
//
// A transfer is dated by its attempt's creation time (TransferRequest.
// AttemptDay, in Korea Standard Time): the deposit's tran_dtime and the
// result call's org_bank_tran_date both come from it, so a retry sent after
// midnight still names the date the bank filed the transfer under. A request
// without AttemptDay is dated now, which is safe only when the transfer and
// its result call fall on the same day.
//
// Errors name the provider, the operation and the idempotency key
// ("openbanking acme: transfer settle-s42-a1: …"), never the token, and show
// account numbers masked to their last four characters ("****1234").
package openbanking
