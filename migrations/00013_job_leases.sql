-- Scheduled jobs are led by a lease, not by a lock held by an open
-- transaction: one row per job names the replica that holds it, the fence
-- of its hold and until when it holds it, by the database's clock. A tick
-- is taken in one short transaction (store.ClaimJobTick), its holder renews
-- the lease while the run goes on, and every write of the run checks the
-- fence, so a replica that stalled past its lease writes nothing once
-- another has taken the job over. job_runs records which fence ran a tick.

-- +goose Up
CREATE TABLE job_leases (
    job         text PRIMARY KEY,
    holder      text NOT NULL DEFAULT '',
    fence       bigint NOT NULL DEFAULT 0 CHECK (fence >= 0),
    tick        timestamptz NOT NULL DEFAULT '-infinity', -- the tick the holder runs
    lease_until timestamptz NOT NULL DEFAULT '-infinity'  -- free once past, by now()
);

ALTER TABLE job_runs ADD COLUMN fence bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE job_runs DROP COLUMN fence;
DROP TABLE job_leases;
