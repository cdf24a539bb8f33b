-- The anchor of bench/audit.sh: the usual PL/pgSQL audit-trigger recipe (2ndQuadrant's
-- audit-trigger, supa_audit and the many blog versions of it), with jsonb rows.
-- One AFTER INSERT/UPDATE/DELETE FOR EACH ROW trigger that inserts the old and new row as
-- jsonb, who (current_user, session_user), when (now()), the transaction id, the application
-- and the client address into one audit table with the recipe's indexes. No signature, no
-- chain, no protection: anyone with rights can edit these rows.
-- Attach it with:
--   CREATE TRIGGER audit_plpgsql AFTER INSERT OR UPDATE OR DELETE ON <table>
--     FOR EACH ROW EXECUTE FUNCTION audit_plpgsql.if_modified();

CREATE SCHEMA IF NOT EXISTS audit_plpgsql;

CREATE TABLE audit_plpgsql.log (
    id               bigserial PRIMARY KEY,
    schema_name      text NOT NULL,
    table_name       text NOT NULL,
    action           text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    old_row          jsonb,
    new_row          jsonb,
    changed_by       text NOT NULL,
    session_user_name text NOT NULL,
    changed_at       timestamptz NOT NULL,
    txid             bigint NOT NULL,
    application_name text,
    client_addr      inet
);
CREATE INDEX log_table_idx ON audit_plpgsql.log (schema_name, table_name);
CREATE INDEX log_changed_at_idx ON audit_plpgsql.log (changed_at);
CREATE INDEX log_action_idx ON audit_plpgsql.log (action);

CREATE FUNCTION audit_plpgsql.if_modified() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO audit_plpgsql.log (schema_name, table_name, action, old_row, new_row, changed_by,
                                   session_user_name, changed_at, txid, application_name, client_addr)
    VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END,
            current_user, session_user, now(), txid_current(),
            current_setting('application_name'), inet_client_addr());
    RETURN NULL;
END;
$$;
