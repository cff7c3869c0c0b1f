-- An attempt the bank never acted on whose step a replay sent to other
-- accounts (the configuration or the customer's payout account was fixed)
-- is SUPERSEDED: like REFUSED it moved nothing and is never live, so the
-- next claim makes a new attempt with a new key, and its key is never sent
-- again with other content (ADR 0002).

-- +goose Up
ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
    CHECK (status IN ('SENDING', 'UNKNOWN', 'SUCCEEDED', 'REFUSED', 'SUPERSEDED'));

-- +goose Down
UPDATE transfers SET status = 'REFUSED', bank_code = 'superseded',
       bank_message = 'superseded by a replay to other accounts; never acted on by the bank'
 WHERE status = 'SUPERSEDED';
ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
    CHECK (status IN ('SENDING', 'UNKNOWN', 'SUCCEEDED', 'REFUSED'));
