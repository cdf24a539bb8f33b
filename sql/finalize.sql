-- tradeguard finalize: runs after every generated function and capability script.

-- Least privilege: no tradeguard function is executable by PUBLIC. Each capability script grants
-- its functions to the role that needs them; nothing else is granted.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tradeguard FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tradeguard_audit FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tradeguard_audit FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tradeguard_audit FROM PUBLIC;

-- A new partition of a table with tradeguard's row triggers gets copies of them, which
-- PostgreSQL allows only to a role that may execute their functions: the table's owner. (No
-- USAGE on the schema comes with it: the functions cannot be named in a CREATE TRIGGER, and a
-- trigger function cannot be called otherwise.)
GRANT EXECUTE ON FUNCTION tradeguard.audit_trigger(), tradeguard.encrypt_trigger(), tradeguard.guard_trigger() TO tradeguard_table_owner;

-- The identity sequences of protected tables travel with pg_dump too, so that rows written
-- after a restore do not collide with restored ids.
DO $seqs$
DECLARE
    s regclass;
BEGIN
    FOR s IN SELECT c.oid::regclass FROM pg_catalog.pg_class c
              WHERE c.relkind = 'S' AND c.relnamespace = 'tradeguard_audit'::pg_catalog.regnamespace
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(s, '');
    END LOOP;
END
$seqs$;

-- Every function must be granted to at least one tradeguard role (or be a trigger function):
-- refuse to install an extension build that forgot one.
DO $check$
DECLARE
    missing text;
BEGIN
    SELECT pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::text, ', ')
      INTO missing
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'tradeguard'::pg_catalog.regnamespace
       AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
       AND NOT EXISTS (
             SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
              JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
             WHERE r.rolname LIKE 'tradeguard\_%' AND a.privilege_type = 'EXECUTE');
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'tradeguard build error: functions without a role grant: %', missing;
    END IF;
END
$check$;
