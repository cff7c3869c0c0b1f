-- Polling split into shards: the poll job's tick enqueues one task per
-- range of virtual-account IDs, and any worker runs it. A row per shard
-- and tick is written when a worker starts the shard; its key makes a
-- shard run at most once per tick, whoever delivers it.

-- +goose Up
CREATE TABLE poll_shard_runs (
    tick        timestamptz NOT NULL,
    shard       int NOT NULL CHECK (shard >= 0),
    shards      int NOT NULL CHECK (shards > shard),
    from_va     bigint NOT NULL,
    to_va       bigint NOT NULL CHECK (to_va = 0 OR to_va >= from_va), -- 0: no upper bound
    replica     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    result      jsonb,
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (tick, shard)
);

-- +goose Down
DROP TABLE poll_shard_runs;
