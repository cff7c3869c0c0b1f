-- Four eyes from Slack (docs/slack-app.md): an operator asks, in a failed
-- settlement's alert, for a replay, cancel or compensation; it runs only
-- when a different operator with the approver role approves it within the
-- approval window, and only while the settlement is still as the dry run
-- the request showed. Requests live here, not in the process, so they
-- survive a restart and any replica can take the approval.
--
-- Every click is audited (audit_log), and a click Slack delivers twice is
-- acted on once: its audit row carries the click's ID, unique.

-- +goose Up
CREATE TABLE approval_requests (
    id            bigserial PRIMARY KEY,
    settlement_id bigint NOT NULL REFERENCES settlements (id),
    action        text NOT NULL CHECK (action IN ('replay', 'cancel', 'compensate')),
    -- who asked, as the audit log names them (slack:<team>/<user>)
    requester     text NOT NULL CHECK (length(requester) BETWEEN 1 AND 128),
    -- the dry run the request showed, as the command prints it, and a
    -- digest of the settlement as it was and as the command would leave it
    -- (store.Outcome.Fingerprint): the approval runs only while it matches
    dry_run       text NOT NULL,
    fingerprint   text NOT NULL CHECK (fingerprint <> ''),
    -- PENDING until approved (the command ran, in the approval's
    -- transaction), or closed unrun: EXPIRED (approved after expires_at, by
    -- the database's clock) or CHANGED (the settlement changed since)
    status        text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'APPROVED', 'EXPIRED', 'CHANGED')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    approver      text,
    decided_at    timestamptz,
    detail        text NOT NULL DEFAULT '',
    -- the request's message in Slack, updated with the outcome
    channel       text NOT NULL DEFAULT '',
    thread_ts     text NOT NULL DEFAULT '',
    message_ts    text NOT NULL DEFAULT '',
    CONSTRAINT approval_requests_window CHECK (expires_at > created_at),
    -- nobody approves their own request
    CONSTRAINT approval_requests_four_eyes CHECK (approver <> requester),
    CONSTRAINT approval_requests_approved_by CHECK ((status = 'APPROVED') = (approver IS NOT NULL)),
    CONSTRAINT approval_requests_decided CHECK ((status = 'PENDING') = (decided_at IS NULL))
);
CREATE INDEX approval_requests_settlement ON approval_requests (settlement_id, id);

-- The delivery an audited command answered (a Slack click: team, trigger
-- and action timestamp); NULL for the CLI's commands.
ALTER TABLE audit_log ADD COLUMN click text;
CREATE UNIQUE INDEX audit_log_click ON audit_log (click) WHERE click IS NOT NULL;

-- +goose Down
DROP INDEX audit_log_click;
ALTER TABLE audit_log DROP COLUMN click;
DROP TABLE approval_requests;
