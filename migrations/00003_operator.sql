-- Operator actions: replay, cancel and compensation of settlements, and the
-- audit log of every command that changes state.

-- +goose Up
-- A compensation reverses a settlement's completed legs as new REVERSE
-- steps (each naming the step it reverses); the legs it will never run are
-- CANCELLED, as are all the steps of a cancelled settlement.
ALTER TABLE steps DROP CONSTRAINT steps_kind_check,
    ADD CONSTRAINT steps_kind_check CHECK (kind IN ('SWEEP', 'REPAY', 'HOLD', 'FEE', 'PAYOUT', 'NOTIFY', 'REVERSE'));
ALTER TABLE steps DROP CONSTRAINT steps_status_check,
    ADD CONSTRAINT steps_status_check CHECK (status IN ('PENDING', 'READY', 'RUNNING', 'DONE', 'FAILED', 'DEAD', 'CANCELLED'));
ALTER TABLE steps ADD COLUMN reverses bigint REFERENCES steps (id),
    ADD CONSTRAINT steps_reverse_names_its_step CHECK ((kind = 'REVERSE') = (reverses IS NOT NULL));
CREATE UNIQUE INDEX steps_reversed_once ON steps (reverses) WHERE reverses IS NOT NULL;

-- COMPENSATING is open: it blocks new settlements for the customer until its
-- reversals are done.
ALTER TABLE settlements DROP CONSTRAINT settlements_status_check,
    ADD CONSTRAINT settlements_status_check
        CHECK (status IN ('RUNNING', 'SETTLED', 'FAILED', 'CANCELLED', 'COMPENSATING', 'COMPENSATED'));
DROP INDEX settlements_one_open_per_customer;
CREATE UNIQUE INDEX settlements_one_open_per_customer ON settlements (customer_id)
    WHERE status IN ('RUNNING', 'FAILED', 'COMPENSATING');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

-- Who did what, when and why: one row per state-changing command. Append-only.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 128),
    command    text NOT NULL,
    args       jsonb NOT NULL DEFAULT '{}',
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    subject    text NOT NULL DEFAULT '',
    before     jsonb,
    after      jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- +goose Down
DROP TABLE audit_log;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd
DROP INDEX settlements_one_open_per_customer;
CREATE UNIQUE INDEX settlements_one_open_per_customer ON settlements (customer_id)
    WHERE status IN ('RUNNING', 'FAILED');
ALTER TABLE settlements DROP CONSTRAINT settlements_status_check,
    ADD CONSTRAINT settlements_status_check
        CHECK (status IN ('RUNNING', 'SETTLED', 'FAILED', 'CANCELLED', 'COMPENSATED'));
DROP INDEX steps_reversed_once;
ALTER TABLE steps DROP CONSTRAINT steps_reverse_names_its_step, DROP COLUMN reverses;
ALTER TABLE steps DROP CONSTRAINT steps_status_check,
    ADD CONSTRAINT steps_status_check CHECK (status IN ('PENDING', 'READY', 'RUNNING', 'DONE', 'FAILED', 'DEAD'));
ALTER TABLE steps DROP CONSTRAINT steps_kind_check,
    ADD CONSTRAINT steps_kind_check CHECK (kind IN ('SWEEP', 'REPAY', 'HOLD', 'FEE', 'PAYOUT', 'NOTIFY'));
