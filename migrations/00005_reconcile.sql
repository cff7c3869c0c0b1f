-- Reconciliation against the banks (docs/reconciliation.md): every run, the
-- differences it found (stored once, alerted once, acknowledged or resolved
-- by an operator, never corrected automatically), and where each account's
-- statement was read up to, so a run does not page through all of history.

-- +goose Up
CREATE TABLE reconcile_runs (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL DEFAULT '', -- '' when every provider was reconciled
    window_from timestamptz NOT NULL,     -- attempts and bank lines from then on were examined
    -- a run of the daily job: the next one reaches back to the start of the
    -- day the last complete one began, so no day goes unreconciled
    daily       boolean NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    result      jsonb,
    error       text NOT NULL DEFAULT ''
);

CREATE TABLE reconcile_findings (
    id              bigserial PRIMARY KEY,
    provider        text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('missing_at_bank', 'unknown_to_engine', 'amount_mismatch',
                                                   'account_mismatch', 'balance_drift')),
    -- the finding's identity: a later run that finds the same difference
    -- finds the same fingerprint and stores nothing new
    fingerprint     text NOT NULL,
    account         text NOT NULL DEFAULT '',
    idempotency_key text NOT NULL DEFAULT '',
    amount          bigint NOT NULL DEFAULT 0, -- the engine's; for a drift, the unexplained amount
    bank_amount     bigint NOT NULL DEFAULT 0,
    settlement_id   bigint REFERENCES settlements (id),
    step_id         bigint REFERENCES steps (id),
    -- when the difference happened (the attempt's creation, or the bank
    -- line's time); NULL for a balance drift
    occurred_at     timestamptz,
    -- per bank account, what the difference adds to (bank − ledger): later
    -- runs count it as explained, so a known difference is not a drift
    effects         jsonb NOT NULL DEFAULT '{}',
    detail          text NOT NULL,
    status          text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'ACKNOWLEDGED', 'RESOLVED')),
    first_run_id    bigint REFERENCES reconcile_runs (id),
    last_run_id     bigint REFERENCES reconcile_runs (id),
    seen_count      integer NOT NULL DEFAULT 1,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    acted_by        text NOT NULL DEFAULT '',
    acted_reason    text NOT NULL DEFAULT '',
    acted_at        timestamptz
);
-- A transaction difference is a fact about history: it is stored once,
-- whatever became of it. A balance drift is stored once while unresolved.
CREATE UNIQUE INDEX reconcile_findings_fact ON reconcile_findings (fingerprint) WHERE kind <> 'balance_drift';
CREATE UNIQUE INDEX reconcile_findings_open_drift ON reconcile_findings (fingerprint)
    WHERE kind = 'balance_drift' AND status <> 'RESOLVED';
CREATE INDEX reconcile_findings_status ON reconcile_findings (status, id);
CREATE INDEX reconcile_findings_provider_time ON reconcile_findings (provider, occurred_at);

-- Page boundaries of the engine's own accounts' statements: every line
-- before cursor is at or before last_at. At most one per account and hour.
CREATE TABLE reconcile_cursors (
    provider text NOT NULL,
    account  text NOT NULL,
    hour     timestamptz NOT NULL,
    cursor   text NOT NULL,
    last_at  timestamptz NOT NULL,
    PRIMARY KEY (provider, account, hour)
);

-- Reconciliation reads a window's attempts by their creation time.
CREATE INDEX transfers_created_at ON transfers (created_at);

-- +goose Down
DROP INDEX transfers_created_at;
DROP TABLE reconcile_cursors;
DROP TABLE reconcile_findings;
DROP TABLE reconcile_runs;
