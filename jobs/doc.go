// Package jobs runs settle's background work: the Asynq queue that wakes
// workers with step IDs, the worker server, and the scheduled jobs (balance
// poll, READY relay, reprocessing sweep, alert delivery, invariant checks,
// daily summary, and the daily reconciliation, which runs as a task on its
// own lowest-priority queue) driven by robfig/cron, each tick run by the
// holder of the job's lease in PostgreSQL (scheduler.go). It owns the asynq
// and cron libraries; jobs/cronspec is the one parser of cron specs, which
// internal/config uses to check them. Each job takes the store methods it
// calls as a small interface declared next to it (RelayStore, PollStore,
// ReconcileStore, …), which *store.DB implements. Which virtual accounts a
// poll cycle asks about, and when a payday is near, is pipeline's rule
// (pipeline.PollPolicy); the poller does the I/O.
package jobs
