-- Only the migrating user creates objects in settle's schema. PostgreSQL
-- before 15 grants CREATE on the public schema to every role (PUBLIC), and
-- a database made from a template that grants it keeps the grant on any
-- version: settle_daemon and settle_operator could then create tables,
-- views and functions there, and a function in a schema on the search path
-- can stand in for another. 00009 grants them no CREATE; this takes back
-- what every role holds.
--
-- Only the schema's owner (or a superuser) can revoke it. A migrating user
-- that is neither gets a warning from PostgreSQL, not an error: the
-- migration then checks that the roles cannot create, and stops with what
-- the owner must run if they still can.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY ARRAY[current_schema(), 'public'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s);
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', s);
        IF has_schema_privilege('settle_daemon', s, 'CREATE') OR has_schema_privilege('settle_operator', s, 'CREATE') THEN
            RAISE EXCEPTION 'settle_daemon or settle_operator may create objects in schema % and % cannot take that back: '
                'ask the owner of the schema to run "REVOKE CREATE ON SCHEMA % FROM PUBLIC;" (and to revoke CREATE '
                'from those roles if it was granted to them), then run settle migrate up again', s, current_user, quote_ident(s)
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- CREATE stays revoked from PUBLIC: PostgreSQL 15 and later never grant it,
-- and this migration does not know whether the database did before, so
-- granting every role CREATE again would open what it closed.
