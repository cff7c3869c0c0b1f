-- The job-run log: one row per scheduled job and tick, written by the replica
-- that ran it. Its key is what makes a tick run at most once across replicas.

-- +goose Up
CREATE TABLE job_runs (
    job         text NOT NULL,
    tick        timestamptz NOT NULL,
    replica     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    result      jsonb,
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (job, tick)
);

-- +goose Down
DROP TABLE job_runs;
