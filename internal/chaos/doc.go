// Package chaos holds settle's fault-injection suite (chaos_test.go): a
// payday run through several `settle serve` processes under a seeded
// schedule of kills, pauses, crash points, Redis wipes and restarts, cut
// database connections and a misbehaving bank, checked afterwards against
// every money invariant. `make test` runs a short version; `make chaos` a
// long one. SETTLE_TEST_CHAOS_SEED replays a run's fault schedule.
package chaos
