-- A virtual account in which a deposit was just found is held from polling
-- while its settlement moves the money: it is not due before held_until,
-- which the settlement's end clears (and which runs out by itself after an
-- hour). Polling it meanwhile would only find its customer's settlement
-- open, over and over, on a payday burst.

-- +goose Up
ALTER TABLE virtual_accounts ADD COLUMN held_until timestamptz;

-- +goose Down
ALTER TABLE virtual_accounts DROP COLUMN held_until;
