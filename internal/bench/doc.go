// Package bench is the payday benchmark behind `settle bench`: it builds an
// isolated installation (a fresh database on the server of
// SETTLE_DATABASE_URL, a private redis-server, an in-process sandbox bank),
// creates customers with the demo seeder's obligations, credits every
// virtual account at once, runs the engine exactly as `settle serve` does
// (in this process, or as separate worker processes) until every
// settlement has ended, and reports throughput, latency, what each
// settlement cost in bank calls, database round trips, Redis, CPU and
// memory, and whether the money adds up. With Options.Floor it also
// measures what the same PostgreSQL and Redis do at best, to compare.
//
// Everything the bench creates it removes: the database (unless KeepDB),
// the Redis process and its directory (both through internal/localsvc). It
// touches no other database.
//
// The harness is linked into the settle binary for `settle bench` and for
// nothing else: cmd/settle is the only package that may import it, and it
// imports no test-support package (internal/archtest checks both).
package bench
