-- tradeguard bootstrap: runs before any generated function.
-- The extension schema `tradeguard` is created by CREATE EXTENSION (control file).

-- Group roles are cluster-wide and outlive the extension: create them only if missing.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['tradeguard_admin', 'tradeguard_encryptor', 'tradeguard_decryptor', 'tradeguard_auditor', 'tradeguard_table_owner']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

COMMENT ON ROLE tradeguard_admin IS 'tradeguard: manages keys, audited tables, break-glass, blocks and incidents';
COMMENT ON ROLE tradeguard_encryptor IS 'tradeguard: may encrypt values and write encrypted columns';
COMMENT ON ROLE tradeguard_decryptor IS 'tradeguard: may decrypt values and read *_decrypted views';
COMMENT ON ROLE tradeguard_auditor IS 'tradeguard: may read the audit trail, findings and security events, and run verify';
COMMENT ON ROLE tradeguard_table_owner IS 'tradeguard: for owners of audited, encrypted or guarded tables: may create and attach their partitions (which copy tradeguard''s row triggers)';

-- The admin can do what the other roles do (members inherit through the role chain).
GRANT tradeguard_encryptor, tradeguard_decryptor, tradeguard_auditor, tradeguard_table_owner TO tradeguard_admin;

-- Protected schema: tables here are written only by the extension's own code.
CREATE SCHEMA tradeguard_audit;
COMMENT ON SCHEMA tradeguard_audit IS 'tradeguard: protected state (keys, audit trail, events). Nobody but the extension writes here.';
REVOKE ALL ON SCHEMA tradeguard_audit FROM PUBLIC;

REVOKE ALL ON SCHEMA tradeguard FROM PUBLIC;
GRANT USAGE ON SCHEMA tradeguard TO tradeguard_admin, tradeguard_encryptor, tradeguard_decryptor, tradeguard_auditor;
