-- Polling at the scale of a payday.
--
-- A virtual account in which a deposit was just found is held from polling
-- while its settlement moves the money: it is not due before held_until,
-- which the settlement's end clears (and which runs out by itself after an
-- hour). Polling it meanwhile would only find its customer's settlement
-- open, over and over, on a payday burst.
--
-- The poll reads each shard's VAs by their IDs (store/polling.go), so the
-- indexes on the poll times are not read; without them, marking VAs polled
-- changes no indexed column, and with room left on each page the update
-- stays on the page (a HOT update: no index is touched).

-- +goose Up
ALTER TABLE virtual_accounts ADD COLUMN held_until timestamptz;
DROP INDEX virtual_accounts_poll_near;
DROP INDEX virtual_accounts_poll_due;
ALTER TABLE virtual_accounts SET (fillfactor = 80);

-- +goose Down
ALTER TABLE virtual_accounts RESET (fillfactor);
CREATE INDEX virtual_accounts_poll_due ON virtual_accounts (provider, next_poll_at, id) WHERE active;
CREATE INDEX virtual_accounts_poll_near ON virtual_accounts (provider, (coalesce(last_polled_at, 'epoch'::timestamptz)), id) WHERE active;
ALTER TABLE virtual_accounts DROP COLUMN held_until;
