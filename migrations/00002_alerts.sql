-- Alert delivery: what operators were already told about each problem (its
-- first Slack message, how often it repeated, whether it was resolved), which
-- message carried each alert, and the indexes the delivery job's queries use.

-- +goose Up
CREATE TABLE alert_problems (
    -- the alerts' problem_key, or "storm:<kind>:<provider>" for a storm
    problem_key text PRIMARY KEY,
    -- the problem's first message in Slack, in bot mode: follow-ups reply in
    -- its thread and chat.update rewrites it; empty for webhook and log
    channel     text NOT NULL DEFAULT '',
    message_ts  text NOT NULL DEFAULT '',
    -- alerts delivered for the problem since its first message, that one
    -- included
    occurrences integer NOT NULL CHECK (occurrences >= 1),
    first_at    timestamptz NOT NULL, -- raised: the first of them
    last_at     timestamptz NOT NULL, -- raised: the latest of them
    posted_at   timestamptz NOT NULL, -- the first message was sent
    replied_at  timestamptz,          -- the last follow-up was sent
    resolved_at timestamptz,
    -- what the first message showed (notify.Alert as JSON, account numbers
    -- masked), so it can be rewritten once the settlement has moved on
    snapshot    jsonb NOT NULL DEFAULT '{}'
);

-- The problem key of the message that carried the alert: its own, or a
-- storm's when it was summarized.
ALTER TABLE alerts ADD COLUMN delivered_via text NOT NULL DEFAULT '';
-- A problem's alerts in order, for batching repeats and for resolving.
CREATE INDEX alerts_problem ON alerts (problem_key, id);
-- Storm control counts the alerts raised within a window.
CREATE INDEX alerts_created ON alerts (created_at);

-- +goose Down
DROP INDEX alerts_created;
DROP INDEX alerts_problem;
ALTER TABLE alerts DROP COLUMN delivered_via;
DROP TABLE alert_problems;
