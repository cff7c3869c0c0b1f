-- Every operator command is audited, refused and no-op ones too (store.audited):
-- each audit_log row says what the command did (outcome) and, when it did
-- nothing, why (detail). And who really ran it: the database user and the
-- client host PostgreSQL saw on the connection, beside the actor the
-- operator claims (--actor).

-- +goose Up
-- Rows written before this migration were all applied commands: a refused
-- or no-op one left no row. Their connection was not recorded (NULL).
ALTER TABLE audit_log
    ADD COLUMN outcome     text NOT NULL DEFAULT 'applied'
        CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('applied', 'refused', 'nothing_to_do')),
    ADD COLUMN detail      text NOT NULL DEFAULT '',
    ADD COLUMN db_user     text,
    ADD COLUMN client_addr inet,
    ADD CONSTRAINT audit_log_says_why_not CHECK ((outcome = 'applied') = (detail = ''));
-- A new row names its outcome; the connection's user and host (NULL for a
-- Unix socket) are the database's to fill in.
ALTER TABLE audit_log
    ALTER COLUMN outcome DROP DEFAULT,
    ALTER COLUMN db_user SET DEFAULT session_user,
    ALTER COLUMN client_addr SET DEFAULT inet_client_addr();

-- The defaults above would take a value a client supplies; the trigger
-- overwrites it, so no client can claim another user or host.
-- +goose StatementBegin
CREATE FUNCTION audit_log_connection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.db_user := session_user;
    NEW.client_addr := inet_client_addr();
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_connection BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_connection();

-- +goose Down
-- Without the outcome column a refused command's row would read as applied:
-- down refuses while there is one.
-- +goose StatementBegin
DO $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM audit_log WHERE outcome <> 'applied';
    IF n > 0 THEN
        RAISE EXCEPTION 'audit_log holds % rows of refused or no-op commands, which the older schema would show as applied: '
            'keep this migration (the audit log is append-only)', n
            USING ERRCODE = 'restrict_violation';
    END IF;
END
$$;
-- +goose StatementEnd
DROP TRIGGER audit_log_connection ON audit_log;
DROP FUNCTION audit_log_connection();
ALTER TABLE audit_log DROP CONSTRAINT audit_log_says_why_not,
    DROP COLUMN client_addr, DROP COLUMN db_user, DROP COLUMN detail, DROP COLUMN outcome;
