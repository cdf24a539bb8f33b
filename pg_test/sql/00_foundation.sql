-- Foundation: install, roles, schemas, least privilege, reinstall.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION tradeguard;
SELECT extname, extrelocatable, n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'tradeguard';
SELECT tradeguard.version() ~ '^tradeguard [0-9.]+ \(commit [0-9a-f]+|unknown' AS version_ok;
SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname LIKE 'tradeguard\_%' ORDER BY 1;
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tradeguard%' ORDER BY 1;
SELECT component, CASE WHEN component = 'background worker' THEN NULL ELSE active END AS active  -- the worker may still be connecting
  FROM tradeguard.runtime_status() ORDER BY 1;

-- Nothing in either schema is executable by PUBLIC.
SELECT count(*) AS public_functions
  FROM pg_proc p, LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.pronamespace IN ('tradeguard'::regnamespace, 'tradeguard_audit'::regnamespace)
   AND a.grantee = 0;

-- An analyst with no tradeguard role is refused.
CREATE ROLE tg_regress_analyst LOGIN;
SET ROLE tg_regress_analyst;
SELECT tradeguard.version();
RESET ROLE;
-- Granted the auditor role, the analyst may call what the auditor may.
GRANT tradeguard_auditor TO tg_regress_analyst;
SET ROLE tg_regress_analyst;
SELECT tradeguard.version() IS NOT NULL AS auditor_can_read_version;
RESET ROLE;

-- DROP EXTENSION would destroy the audit trail (it already holds the GRANT above): it needs
-- break-glass, which is itself recorded. Then CREATE EXTENSION works cleanly again.
DROP EXTENSION tradeguard;
SELECT tradeguard.break_glass('regress: reinstall the extension') IS NOT NULL AS glass_broken;
SET client_min_messages = error;
DROP EXTENSION tradeguard;
RESET client_min_messages;
-- PostgreSQL keeps the schema that CREATE EXTENSION made from the control file; it is empty.
SELECT n.nspname, (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid)
                + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid) AS objects
  FROM pg_namespace n WHERE nspname LIKE 'tradeguard%';
CREATE EXTENSION tradeguard;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname LIKE 'tradeguard%';
SELECT tradeguard.break_glass_end() AS glass_mended;
REVOKE tradeguard_auditor FROM tg_regress_analyst;
DROP ROLE tg_regress_analyst;
