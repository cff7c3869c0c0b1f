-- Smart polling and moving customers between providers: each virtual
-- account's next idle poll, what the engine knows of each customer's payday
-- (set by an operator, per employer, or learned from past deposits), and
-- the virtual accounts a customer left behind when its provider route
-- changed. See docs/polling.md.

-- +goose Up
-- When the VA is next polled on the idle schedule (every poll.idle_every
-- cycles). A VA whose customer is near payday is polled every cycle
-- whatever this says. New VAs are due at once.
ALTER TABLE virtual_accounts ADD COLUMN next_poll_at timestamptz NOT NULL DEFAULT now();
-- Set when the customer moved to another provider: the VA is still polled,
-- so a salary that still lands in it is settled through its own provider.
ALTER TABLE virtual_accounts ADD COLUMN superseded_at timestamptz;
-- The poller reads due VAs in these orders: idle ones by next poll,
-- near-payday ones by last poll.
CREATE INDEX virtual_accounts_poll_due ON virtual_accounts (provider, next_poll_at, id) WHERE active;
CREATE INDEX virtual_accounts_poll_near ON virtual_accounts (provider, (coalesce(last_polled_at, 'epoch'::timestamptz)), id) WHERE active;

-- An employer's payday, day of month 1..31 (a shorter month uses its last
-- day), for every customer that names it.
CREATE TABLE employers (
    ref        text PRIMARY KEY CHECK (ref ~ '^[A-Za-z0-9._:-]{1,64}$'),
    payday     smallint NOT NULL CHECK (payday BETWEEN 1 AND 31),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The payday the poller uses is the first of: payday (set by an operator),
-- the employer's payday, learned_payday (the most frequent day of month of
-- the customer's last six deposits).
ALTER TABLE customers
    ADD COLUMN payday         smallint CHECK (payday BETWEEN 1 AND 31),
    ADD COLUMN employer_ref   text CHECK (employer_ref ~ '^[A-Za-z0-9._:-]{1,64}$'),
    ADD COLUMN learned_payday smallint CHECK (learned_payday BETWEEN 1 AND 31);

-- Learning a payday reads a customer's latest settlements.
CREATE INDEX settlements_customer_created ON settlements (customer_id, created_at);

-- +goose Down
DROP INDEX settlements_customer_created;
ALTER TABLE customers
    DROP COLUMN learned_payday,
    DROP COLUMN employer_ref,
    DROP COLUMN payday;
DROP TABLE employers;
DROP INDEX virtual_accounts_poll_near;
DROP INDEX virtual_accounts_poll_due;
ALTER TABLE virtual_accounts DROP COLUMN superseded_at;
ALTER TABLE virtual_accounts DROP COLUMN next_poll_at;
