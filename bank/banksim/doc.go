// Package banksim is the sandbox bank: an in-memory bank served over HTTP
// that speaks the wire dialects of BANK_API.md, with fault injection, so the
// demo, the tests and the benchmarks can run settle against a real HTTP API.
//
// The package has three layers:
//
//   - the bank core (core.go, core_transfer.go): accounts, balances,
//     idempotency records, pending transfers and the journal. Its API knows
//     nothing about any wire format: a dialect hands it a transferRequest and
//     gets a transfer record back.
//   - the faults (faults.go): latency, injected 500s, dropped connections
//     after a transfer was applied, "processing" answers and a token-bucket
//     rate limit, drawn from a seeded generator in request order.
//   - the handlers: one file per dialect (rest.go, openbanking.go) and one
//     for the sandbox-only endpoints (sandbox.go). A new dialect is one more
//     handler file over the same core, registered in Server's routes, with
//     its idempotency rule (which content a key is bound to; whether asking
//     about a pending transfer settles it) and its answer to the error fault.
//
// An account is the same account in every dialect; idempotency keys are
// kept per dialect.
//
// # Journal
//
// GET /sandbox/journal?after=<seq>&limit=<n> lists every transfer the bank
// applied, in the order it applied them, after the given sequence number
// (default 0, so from the start) and at most limit entries (default and
// maximum 1000):
//
//	{"entries":[{"seq":1,"idempotency_key":"k1","from":"A","to":"B",
//	  "amount":2500000,"currency":"KRW","dialect":"rest",
//	  "applied_at":"2026-11-25T09:30:00Z"}],
//	 "next_after":1,"has_more":false}
//
// Ask again with after=next_after while has_more is true. Refused
// transfers, pending transfers not yet applied and credits from
// /sandbox/accounts/<id>/credit are not in the journal.
//
// # Stats
//
// GET /sandbox/stats returns the counters since the last reset:
//
//	{"requests":{"POST /v1/transfers":12},"unauthorized":0,
//	 "rate_limited":0,"server_errors":0,"gateway_busy":0,
//	 "connections_dropped":0,"pending_answers":0,"transfers_applied":10}
//
// rate_limited counts the 429s sent, server_errors the 5xx sent and
// gateway_busy the openbanking answers with rsp_code A0001.
//
// # Beyond BANK_API.md
//
// Every error answer is {"error":{"code":"…","message":"…"}}. Request
// bodies are at most 1 MiB (413 above) and decoded strictly: unknown fields,
// trailing data and non-integer amounts are 400s. A rest transfer also shows
// idempotency_key, from_account, to_account, amount, currency and
// created_at; a replayed key answers the transfer as it stands now, so a
// pending one is settled by being sent again. Transaction pages also carry
// has_more, and next_cursor is always set so that a caller can resume later.
// PUT /sandbox/faults also takes processing_delay_ms (default 2000), and
// GET /sandbox/faults shows the faults in force. A rest transfer whose key
// the bank has seen is bound to its from, to, holder name, amount, currency
// and memo; a different value of any of them is a 422.
//
// The openbanking dialect (docs/bank-api.md, "Sandbox-only endpoints", lists
// where it goes beyond the page): the error fault answers HTTP 200 with
// rsp_code A0001, nothing done; a transfer is filed under its tran_dtime's
// date, and a result call naming another date or amount is a 400, never A04;
// a processing transfer answers "400" until due, however often it is asked
// about; a bank_tran_id is bound to the destination account, amount and
// holder name; requests carry exactly one item, bank_code_std 097.
package banksim
