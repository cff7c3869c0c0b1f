-- The core schema: customers and their virtual accounts, obligations,
-- settlements with their ordered steps, transfer attempts, the double-entry
-- ledger, customer events and the alert outbox.

-- +goose Up
CREATE TABLE customers (
    id                 bigserial PRIMARY KEY,
    external_ref       text NOT NULL UNIQUE CHECK (external_ref ~ '^[A-Za-z0-9._:-]{1,64}$'),
    holder_name        text NOT NULL CHECK (length(holder_name) BETWEEN 1 AND 128),
    payout_bank_code   text NOT NULL DEFAULT '',
    payout_account     text NOT NULL CHECK (length(payout_account) BETWEEN 1 AND 64),
    payout_holder_name text NOT NULL CHECK (length(payout_holder_name) BETWEEN 1 AND 128),
    provider           text NOT NULL,
    status             text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED', 'CLOSED')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE virtual_accounts (
    id             bigserial PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES customers (id),
    provider       text NOT NULL,
    number         text NOT NULL CHECK (length(number) BETWEEN 1 AND 64),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    active         boolean NOT NULL DEFAULT true,
    -- Bumped whenever a settlement is created from this VA. The poller reads
    -- it before asking the bank and creates a settlement only if it is
    -- unchanged, so a stale balance is never settled twice.
    settle_version bigint NOT NULL DEFAULT 0,
    last_polled_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, number)
);
CREATE INDEX virtual_accounts_customer ON virtual_accounts (customer_id);

CREATE TABLE obligations (
    customer_id  bigint PRIMARY KEY REFERENCES customers (id),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    outstanding  bigint NOT NULL DEFAULT 0 CHECK (outstanding >= 0),
    hold_amount  bigint NOT NULL DEFAULT 0 CHECK (hold_amount >= 0),
    fee_fixed    bigint NOT NULL DEFAULT 0 CHECK (fee_fixed >= 0),
    fee_bps      integer NOT NULL DEFAULT 0 CHECK (fee_bps BETWEEN 0 AND 10000),
    repaid_total bigint NOT NULL DEFAULT 0 CHECK (repaid_total >= 0),
    held_total   bigint NOT NULL DEFAULT 0 CHECK (held_total >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE settlements (
    id             bigserial PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES customers (id),
    va_id          bigint NOT NULL REFERENCES virtual_accounts (id),
    provider       text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    repay          bigint NOT NULL CHECK (repay >= 0),
    hold           bigint NOT NULL CHECK (hold >= 0),
    fee            bigint NOT NULL CHECK (fee >= 0),
    payout         bigint NOT NULL CHECK (payout >= 0),
    status         text NOT NULL DEFAULT 'RUNNING'
                   CHECK (status IN ('RUNNING', 'SETTLED', 'FAILED', 'CANCELLED', 'COMPENSATED')),
    failure_reason text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    CHECK (repay + hold + fee + payout = amount)
);
-- The rule that stops the same money being settled twice: a customer has at
-- most one settlement that is running or failed (awaiting an operator).
CREATE UNIQUE INDEX settlements_one_open_per_customer ON settlements (customer_id)
    WHERE status IN ('RUNNING', 'FAILED');
CREATE INDEX settlements_status_created ON settlements (status, created_at);

CREATE TABLE steps (
    id            bigserial PRIMARY KEY,
    settlement_id bigint NOT NULL REFERENCES settlements (id),
    seq           smallint NOT NULL CHECK (seq >= 1),
    kind          text NOT NULL CHECK (kind IN ('SWEEP', 'REPAY', 'HOLD', 'FEE', 'PAYOUT', 'NOTIFY')),
    amount        bigint NOT NULL CHECK (amount > 0 OR (kind = 'NOTIFY' AND amount = 0)),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    provider      text NOT NULL,
    from_account  text NOT NULL DEFAULT '',
    to_account    text NOT NULL DEFAULT '',
    to_holder     text NOT NULL DEFAULT '',
    status        text NOT NULL CHECK (status IN ('PENDING', 'READY', 'RUNNING', 'DONE', 'FAILED', 'DEAD')),
    -- claims so far; the step dies when it reaches the configured maximum
    attempts      integer NOT NULL DEFAULT 0,
    -- fencing token, bumped by every claim: a result is recorded only while
    -- the token still matches, so a worker that lost its lease writes nothing
    fence         bigint NOT NULL DEFAULT 0,
    lease_until   timestamptz,
    next_run_at   timestamptz NOT NULL DEFAULT now(),
    last_error    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,
    UNIQUE (settlement_id, seq)
);
-- At most one step of a settlement is READY or RUNNING at a time.
CREATE UNIQUE INDEX steps_one_live_per_settlement ON steps (settlement_id)
    WHERE status IN ('READY', 'RUNNING');
CREATE INDEX steps_ready_due ON steps (next_run_at) WHERE status = 'READY';
CREATE INDEX steps_running_lease ON steps (lease_until) WHERE status = 'RUNNING';

-- One row per attempt to move a step's money at the bank, written before the
-- bank is called. Statuses: SENDING (written, maybe sent; also after the bank
-- said it never saw the key, since the same key is sent again), UNKNOWN (sent,
-- the bank gave no definite answer), SUCCEEDED, REFUSED (permanent, nothing
-- moved: only then does a replay make a new attempt with a new key).
CREATE TABLE transfers (
    id              bigserial PRIMARY KEY,
    step_id         bigint NOT NULL REFERENCES steps (id),
    attempt         integer NOT NULL CHECK (attempt >= 1),
    idempotency_key text NOT NULL UNIQUE,
    provider        text NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL,
    status          text NOT NULL DEFAULT 'SENDING'
                    CHECK (status IN ('SENDING', 'UNKNOWN', 'SUCCEEDED', 'REFUSED')),
    bank_ref        text NOT NULL DEFAULT '',
    bank_code       text NOT NULL DEFAULT '',
    bank_message    text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (step_id, attempt)
);
-- At most one attempt per step that may have moved money.
CREATE UNIQUE INDEX transfers_one_live_per_step ON transfers (step_id)
    WHERE status IN ('SENDING', 'UNKNOWN', 'SUCCEEDED');

-- Double-entry ledger: a journal is a set of postings that sums to zero per
-- currency. Both tables are append-only.
CREATE TABLE journals (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('deposit', 'transfer')),
    settlement_id bigint NOT NULL REFERENCES settlements (id),
    step_id       bigint REFERENCES steps (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'transfer') = (step_id IS NOT NULL))
);
CREATE UNIQUE INDEX journals_one_per_step ON journals (step_id) WHERE step_id IS NOT NULL;
CREATE UNIQUE INDEX journals_one_deposit_per_settlement ON journals (settlement_id) WHERE kind = 'deposit';

CREATE TABLE postings (
    id         bigserial PRIMARY KEY,
    journal_id bigint NOT NULL REFERENCES journals (id),
    account    text NOT NULL,
    amount     bigint NOT NULL CHECK (amount <> 0),
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX postings_journal ON postings (journal_id);
CREATE INDEX postings_account ON postings (account);

-- +goose StatementBegin
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER journals_append_only BEFORE UPDATE OR DELETE ON journals
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journals_no_truncate BEFORE TRUNCATE ON journals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- +goose StatementBegin
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT currency, sum(amount) AS total INTO bad
      FROM postings WHERE journal_id = NEW.journal_id
     GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal % does not balance: % % left over', NEW.journal_id, bad.total, bad.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
-- Checked at commit, so a journal's postings may be inserted one by one.
CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- What the NOTIFY step tells the customer's lender app; the event ID is
-- stable so a receiver can drop duplicates.
CREATE TABLE customer_events (
    id            bigserial PRIMARY KEY,
    event_id      text NOT NULL UNIQUE,
    type          text NOT NULL,
    settlement_id bigint NOT NULL REFERENCES settlements (id),
    customer_id   bigint NOT NULL REFERENCES customers (id),
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);

-- The alert outbox: what operators must be told, written in the same
-- transaction as the failure it reports, delivered by a job.
CREATE TABLE alerts (
    id            bigserial PRIMARY KEY,
    problem_key   text NOT NULL,
    kind          text NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    settlement_id bigint REFERENCES settlements (id),
    summary       text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    action        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    next_try_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    last_error    text NOT NULL DEFAULT ''
);
CREATE INDEX alerts_undelivered ON alerts (next_try_at) WHERE delivered_at IS NULL;

-- +goose Down
DROP TABLE alerts;
DROP TABLE customer_events;
DROP TABLE postings;
DROP TABLE journals;
DROP FUNCTION ledger_check_balanced();
DROP FUNCTION ledger_refuse_change();
DROP TABLE transfers;
DROP TABLE steps;
DROP TABLE settlements;
DROP TABLE obligations;
DROP TABLE virtual_accounts;
DROP TABLE customers;
