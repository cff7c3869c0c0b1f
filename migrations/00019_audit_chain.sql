-- The audit log is a hash chain (docs/security.md#audit-log): each row
-- carries seq, its place in the chain (1, 2, 3, ... with no gap), the hash
-- of the row before it (prev_hash) and its own hash, SHA-256 over
-- prev_hash and the row's content. A row changed, removed or written
-- outside the chain breaks it; `settle verify` recomputes it
-- (audit_chain_intact) and names the first row that does not match.
--
-- The database computes the chain, in a BEFORE INSERT trigger, so no
-- client writes a row outside it: whatever a client puts in seq, prev_hash
-- or hash is overwritten. The trigger locks the chain's head, a one-row
-- table, until the inserting transaction ends, so two rows never take the
-- same predecessor; a rolled-back insert rolls its seq back with it. The
-- ids keep coming from a sequence, which skips a value on every rollback
-- (a dry run writes its row and rolls it back): gaps in id are not
-- deletions, gaps in seq would be.
--
-- The hash covers, in this order, as the text of a jsonb array:
--   seq, id, created_at (UTC, microseconds), actor, command, args, reason,
--   subject, outcome, detail, before, after, db_user, client_addr,
--   click (the Slack click a row answers, 00018)
-- and is sha256(prev_hash || that text in UTF-8). The first row's
-- prev_hash is 32 zero bytes. jsonb's text form is the same for the same
-- value whatever the session's settings, and the time is written in UTC,
-- so the hash does not depend on the connection that computes it. A column
-- added to audit_log later is outside the hash until this function covers
-- it.
--
-- sha256() needs PostgreSQL 11 or later, as EXECUTE FUNCTION in the
-- triggers of 00003 does.

-- +goose Up
CREATE TABLE audit_chain (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint NOT NULL CHECK (seq >= 0),
    hash     bytea NOT NULL CHECK (length(hash) = 32)
);
-- The head moves only through the trigger below, which runs as its owner.
REVOKE INSERT, UPDATE ON audit_chain FROM settle_daemon;
CREATE TRIGGER audit_chain_kept BEFORE DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

ALTER TABLE audit_log ADD COLUMN seq bigint, ADD COLUMN prev_hash bytea, ADD COLUMN hash bytea;

-- +goose StatementBegin
CREATE FUNCTION audit_log_hash(r audit_log) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT sha256(r.prev_hash || convert_to(jsonb_build_array(
        r.seq, r.id, to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        r.actor, r.command, r.args, r.reason, r.subject, r.outcome, r.detail, r.before, r.after,
        r.db_user, r.client_addr, r.click)::text, 'UTF8'))
$$;
-- +goose StatementEnd

-- Rows written before this migration are chained in id order.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
-- +goose StatementBegin
DO $$
DECLARE
    r audit_log;
    prev bytea := decode(repeat('00', 32), 'hex');
    n bigint := 0;
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        n := n + 1;
        r.seq := n;
        r.prev_hash := prev;
        r.hash := audit_log_hash(r);
        UPDATE audit_log SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
        prev := r.hash;
    END LOOP;
    INSERT INTO audit_chain (seq, hash) VALUES (n, prev);
END
$$;
-- +goose StatementEnd
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;

ALTER TABLE audit_log
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT audit_log_seq_key UNIQUE (seq);
DROP INDEX audit_log_subject;
CREATE INDEX audit_log_subject ON audit_log (subject, seq);

-- The chain's trigger runs as its owner (the migrating user), with the
-- search path pinned to this schema: the daemon's role may insert audit
-- rows but not move the head by hand. It is named to fire after
-- audit_log_connection (BEFORE triggers fire in name order), so the hash
-- covers the user and host that trigger sets.
-- +goose StatementBegin
CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    head audit_chain;
BEGIN
    SELECT * INTO STRICT head FROM audit_chain FOR UPDATE;
    NEW.seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.hash := audit_log_hash(NEW);
    UPDATE audit_chain SET seq = NEW.seq, hash = NEW.hash;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_log_chain() SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION audit_log_chain() FROM PUBLIC;
CREATE TRIGGER audit_log_seal BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- +goose Down
-- The chain goes; the rows stay. A later up chains them again as they are
-- then.
DROP TRIGGER audit_log_seal ON audit_log;
DROP FUNCTION audit_log_chain();
DROP INDEX audit_log_subject;
CREATE INDEX audit_log_subject ON audit_log (subject, id);
DROP FUNCTION audit_log_hash(audit_log);
ALTER TABLE audit_log DROP CONSTRAINT audit_log_seq_key,
    DROP COLUMN hash, DROP COLUMN prev_hash, DROP COLUMN seq;
DROP TABLE audit_chain;
