-- An alert about an engine account (providers[].accounts) the bank refused
-- names the configuration key to fix (pipeline.Alert.ConfigKey): the
-- operator corrects the configuration, not the customer. '' for every other
-- alert.

-- +goose Up
ALTER TABLE alerts ADD COLUMN config_key text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE alerts DROP COLUMN config_key;
