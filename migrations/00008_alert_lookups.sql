-- Indexes that keep alert upkeep off the engine's hot path: finishing a
-- settlement looks up its failure alerts (to resolve them after a replay),
-- and the sweep follows up the stuck-step alerts whose step moved on.

-- +goose Up
CREATE INDEX alerts_settlement ON alerts (settlement_id) WHERE settlement_id IS NOT NULL;
CREATE INDEX alerts_step_stuck ON alerts (problem_key, id) WHERE kind = 'step_stuck';

-- +goose Down
DROP INDEX alerts_step_stuck;
DROP INDEX alerts_settlement;
