-- Least privilege (docs/security.md): two NOLOGIN group roles that LOGIN
-- users are made members of.
--
--   settle_daemon    `settle serve` and the operator commands that write:
--                    reads and writes what the engine needs, but only
--                    appends to the ledger (journals, postings) and the
--                    audit log, deletes nothing but old statement cursors,
--                    and cannot change the schema or its version.
--   settle_operator  read-only: every table, SELECT only.
--
-- Roles belong to the whole PostgreSQL cluster, not to one database: they
-- are created only when missing, and a migration of another database that
-- creates them at the same moment is not an error. A migrating user that may
-- not CREATE ROLE (some managed services) needs a DBA to create them first.
--
-- Tables a later migration creates (run by the same migrating user) get the
-- same grants by default; a later migration revokes UPDATE from
-- settle_daemon on an append-only table, and grants DELETE where the engine
-- deletes.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['settle_daemon', 'settle_operator'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- created meanwhile by a migration of another database
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % does not exist and % may not create it: ask a DBA to run '
                    '"CREATE ROLE settle_daemon NOLOGIN; CREATE ROLE settle_operator NOLOGIN;", '
                    'then run settle migrate up again', r, current_user
                    USING ERRCODE = 'insufficient_privilege';
        END;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
DECLARE
    s text := quote_ident(current_schema());
BEGIN
    EXECUTE 'GRANT USAGE ON SCHEMA ' || s || ' TO settle_daemon, settle_operator';

    EXECUTE 'GRANT SELECT ON ALL TABLES IN SCHEMA ' || s || ' TO settle_operator';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ' || s || ' TO settle_daemon';
    EXECUTE 'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ' || s || ' TO settle_daemon';

    EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA ' || s || ' GRANT SELECT ON TABLES TO settle_operator';
    EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA ' || s || ' GRANT SELECT, INSERT, UPDATE ON TABLES TO settle_daemon';
    EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA ' || s || ' GRANT USAGE, SELECT ON SEQUENCES TO settle_daemon';
END
$$;
-- +goose StatementEnd

-- Append-only for the daemon at the privilege level too; the triggers of
-- 00001 and 00003 refuse UPDATE, DELETE and TRUNCATE to everyone.
REVOKE UPDATE ON journals, postings, audit_log FROM settle_daemon;
-- The schema's version is the migrating user's to write.
REVOKE INSERT, UPDATE ON goose_db_version FROM settle_daemon;
-- Reconciliation forgets statement cursors older than 100 days.
GRANT DELETE ON reconcile_cursors TO settle_daemon;
-- The job-run and poll-shard logs forget old ticks.
GRANT DELETE ON job_runs, poll_shard_runs TO settle_daemon;

-- +goose Down
-- The roles stay: they belong to the cluster and may serve other databases
-- (DROP ROLE is a DBA's decision). This database's grants go.
-- +goose StatementBegin
DO $$
DECLARE
    s text := quote_ident(current_schema());
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['settle_daemon', 'settle_operator'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %s REVOKE ALL ON TABLES FROM %I', s, r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %s REVOKE ALL ON SEQUENCES FROM %I', s, r);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %I', s, r);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %s FROM %I', s, r);
        EXECUTE format('REVOKE USAGE ON SCHEMA %s FROM %I', s, r);
    END LOOP;
END
$$;
-- +goose StatementEnd
