-- tradeguard self-audit: the database checks its own security configuration.
--
-- Runs inside CREATE EXTENSION (superuser, search_path = tradeguard), after bootstrap.sql.
-- The checks read catalogs that only a superuser may read (pg_hba_file_rules, pg_authid,
-- other sessions, data_directory, file modes), so they run in SECURITY DEFINER functions owned
-- by the extension owner; the analyst (tradeguard_auditor) sees results, never raw secrets.
-- Every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp and qualifies names.
--
-- Rust helpers this file calls at run time (PL/pgSQL only, so their creation order does not
-- matter): tradeguard_audit.file_info(text), tradeguard_audit.server_uid(),
-- tradeguard_audit.cert_info(text). Interfaces of other capabilities are reached with dynamic
-- SQL, only when pg_catalog.to_regclass / to_regprocedure find them at query time:
-- tradeguard_audit.audited_tables, tradeguard.verify(), tradeguard_audit.encrypted_columns.
--
-- The check ids are a stable interface, documented in docs/selfaudit-checks.md.

-- The Rust helpers are generated in schema tradeguard; they belong with the protected state and
-- are executable by nobody but the extension owner.
ALTER FUNCTION tradeguard.file_info(text) SET SCHEMA tradeguard_audit;
ALTER FUNCTION tradeguard.server_uid() SET SCHEMA tradeguard_audit;
ALTER FUNCTION tradeguard.cert_info(text) SET SCHEMA tradeguard_audit;
REVOKE ALL ON FUNCTION tradeguard_audit.file_info(text), tradeguard_audit.server_uid(),
    tradeguard_audit.cert_info(text) FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Protected state
------------------------------------------------------------------------------------------------

CREATE TABLE tradeguard_audit.check_catalog (
    check_id             text PRIMARY KEY CHECK (check_id ~ '^[a-z][a-z0-9_]*$'),
    level                text NOT NULL CHECK (level IN ('critical', 'high', 'medium', 'low', 'info')),
    category             text NOT NULL CHECK (category IN ('hba', 'ssl', 'roles', 'privileges', 'settings',
                                                           'files', 'encryption', 'audit', 'version')),
    title                text NOT NULL,
    profiles             text[] NOT NULL,
    description          text NOT NULL,
    remediation_template text NOT NULL
);
COMMENT ON TABLE tradeguard_audit.check_catalog IS
    'tradeguard self-audit: every check, its level, category and the audit profiles (daily, weekly, monthly, full) that run it';

-- Latest PostgreSQL minor release per major version, shipped with the extension. Update it with
-- each tradeguard release (or by hand, as superuser); release_table_stale reports when it ages.
CREATE TABLE tradeguard_audit.pg_minor_releases (
    major        integer PRIMARY KEY,
    latest_minor integer NOT NULL,
    end_of_life  date NOT NULL,
    table_date   date NOT NULL
);
COMMENT ON TABLE tradeguard_audit.pg_minor_releases IS
    'tradeguard self-audit: latest PostgreSQL minor release and end of life per major, accurate as of table_date';

-- Dates and minors as of the 12 November 2026 minor releases (15.20 confirmed by the Debian
-- bookworm-security changelog of 13 November 2026; the other branches follow the same release
-- train: Feb 2026, out-of-cycle Feb 2026, May 2026, Aug 2026, Nov 2026). 14 reached end of life
-- with 14.25, 13 with 13.23 (November 2025).
INSERT INTO tradeguard_audit.pg_minor_releases (major, latest_minor, end_of_life, table_date) VALUES
    (13, 23, DATE '2025-11-13', DATE '2026-11-12'),
    (14, 25, DATE '2026-11-12', DATE '2026-11-12'),
    (15, 20, DATE '2027-11-11', DATE '2026-11-12'),
    (16, 16, DATE '2028-11-09', DATE '2026-11-12'),
    (17, 12, DATE '2029-11-08', DATE '2026-11-12'),
    (18,  6, DATE '2030-11-14', DATE '2026-11-12'),
    (19,  1, DATE '2031-11-13', DATE '2026-11-12');

CREATE TABLE tradeguard_audit.audit_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at timestamptz,
    profile     text NOT NULL CHECK (profile IN ('daily', 'weekly', 'monthly', 'full')),
    run_by      name NOT NULL,
    run_as      text,
    score       integer CHECK (score BETWEEN 0 AND 100),
    counts      jsonb
);
COMMENT ON TABLE tradeguard_audit.audit_runs IS
    'tradeguard self-audit: one row per tradeguard.run_audit() call (who, when, which profile, score, counts by level)';

CREATE TABLE tradeguard_audit.audit_findings (
    -- (No foreign key: pg_restore -j loads each table's rows in any order; only tradeguard's
    -- own code writes either table, and runs are never deleted.)
    run_id      bigint NOT NULL,
    check_id    text NOT NULL,
    level       text NOT NULL,
    category    text NOT NULL,
    object      text NOT NULL,
    title       text NOT NULL,
    detail      text,
    remediation text,
    cache_key   text NOT NULL,
    accepted    boolean NOT NULL,
    PRIMARY KEY (run_id, cache_key)
);
COMMENT ON TABLE tradeguard_audit.audit_findings IS
    'tradeguard self-audit: the findings of each stored run, compared by tradeguard.audit_diff()';

CREATE TABLE tradeguard_audit.accepted_findings (
    cache_key   text PRIMARY KEY,
    check_id    text NOT NULL,
    object      text NOT NULL,
    reason      text NOT NULL CHECK (pg_catalog.length(pg_catalog.btrim(reason)) > 0),
    accepted_by name NOT NULL,
    accepted_as text,
    accepted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires     timestamptz NOT NULL,
    -- The finding's detail when accepted: for scope checks (hba, privileges, settings) the
    -- acceptance covers that detail only (one more writable table opens it again).
    detail      text
);
COMMENT ON TABLE tradeguard_audit.accepted_findings IS
    'tradeguard self-audit: findings accepted as a known risk (reason, who, until when); written only by tradeguard.accept_finding()';

CREATE TABLE tradeguard_audit.role_profiles (
    role_oid    oid PRIMARY KEY,
    profile     text NOT NULL CHECK (profile IN ('readonly', 'application', 'admin')),
    declared_by name NOT NULL,
    declared_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tradeguard_audit.role_profiles IS
    'tradeguard self-audit: what a role is meant to be (readonly, application, admin); written by tradeguard.role_profile()';

CREATE TABLE tradeguard_audit.sensitive_columns (
    relid     oid NOT NULL,
    attname   name NOT NULL,
    marked_by name NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (relid, attname)
);
COMMENT ON TABLE tradeguard_audit.sensitive_columns IS
    'tradeguard self-audit: columns declared sensitive with tradeguard.mark_sensitive() (besides the name heuristic)';

-- pg_dump keeps what users wrote (runs, acceptances, declarations), not the shipped tables.
-- (Outside CREATE EXTENSION, e.g. when developing this file in a scratch database, the call is refused.)
DO $dump$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tradeguard_audit.audit_runs', 'tradeguard_audit.audit_findings',
                             'tradeguard_audit.accepted_findings', 'tradeguard_audit.role_profiles',
                             'tradeguard_audit.sensitive_columns']
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t::pg_catalog.regclass, '');
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$dump$;

------------------------------------------------------------------------------------------------
-- Check catalog (profiles are cumulative: weekly runs the daily checks, monthly the weekly ones)
------------------------------------------------------------------------------------------------

INSERT INTO tradeguard_audit.check_catalog (check_id, level, category, title, profiles, description, remediation_template)
SELECT c.check_id, c.level, c.category, c.title,
       CASE c.first_profile
            WHEN 'daily'   THEN ARRAY['daily', 'weekly', 'monthly', 'full']
            WHEN 'weekly'  THEN ARRAY['weekly', 'monthly', 'full']
            WHEN 'monthly' THEN ARRAY['monthly', 'full']
            WHEN 'full'    THEN ARRAY['full']
            ELSE ARRAY[]::text[] END,
       c.description, c.remediation_template
  FROM (VALUES
    -- daily: connections, sessions, pg_hba.conf, authentication, audit trail
    ('hba_trust', 'critical', 'hba', 'pg_hba.conf line accepts connections without authentication', 'daily',
     'A pg_hba.conf line uses the trust method: anyone who can reach it connects as any role, superusers included.',
     'Replace "trust" with "scram-sha-256" (or "peer" on local lines) on {object}, then SELECT pg_catalog.pg_reload_conf();'),
    ('hba_weak_password_method', 'high', 'hba', 'pg_hba.conf line uses md5 or cleartext password authentication', 'daily',
     'md5 hashes are replayable and brute-forceable; "password" sends the password in clear text.',
     'Replace the method with "scram-sha-256" on {object} (reset the passwords under password_encryption = scram-sha-256 first), then SELECT pg_catalog.pg_reload_conf();'),
    ('hba_host_without_ssl', 'high', 'hba', 'pg_hba.conf accepts remote TCP connections without TLS', 'daily',
     'A non-loopback "host" or "hostnossl" line that does not reject lets passwords and trading data cross the network in clear.',
     'Change "host" to "hostssl" on {object} (and keep a "host ... reject" line after it), then SELECT pg_catalog.pg_reload_conf();'),
    ('hba_open_to_world', 'high', 'hba', 'pg_hba.conf line accepts every client address', 'daily',
     'The line matches 0.0.0.0/0, ::/0 or "all": the database is reachable from any network that can route to it.',
     'Restrict the address of {object} to the application network (for example 10.0.0.0/24), then SELECT pg_catalog.pg_reload_conf();'),
    ('pg_hba_errors', 'high', 'hba', 'pg_hba.conf has lines with errors', 'daily',
     'The file on disk does not parse: the next reload keeps the old rules, a restart refuses to start.',
     'Fix {object} as reported in the detail, check SELECT * FROM pg_catalog.pg_hba_file_rules WHERE error IS NOT NULL; then SELECT pg_catalog.pg_reload_conf();'),
    ('ssl_disabled', 'high', 'ssl', 'TLS is disabled', 'daily',
     'ssl = off: every TCP connection, passwords included, travels in clear text.',
     'ALTER SYSTEM SET ssl = on; (with ssl_cert_file and ssl_key_file in place) SELECT pg_catalog.pg_reload_conf();'),
    ('session_without_ssl', 'high', 'ssl', 'remote client session without TLS (nor GSSAPI encryption)', 'daily',
     'A live client session from a non-loopback address does not use TLS.',
     'Require TLS for {object}: use "hostssl" lines only and sslmode=verify-full on the client; end the session with SELECT pg_catalog.pg_terminate_backend(pid).'),
    ('listen_all_addresses', 'medium', 'settings', 'server listens on every network interface', 'daily',
     'listen_addresses = ''*'' (or 0.0.0.0 / ::) exposes the port on every interface, including ones pg_hba.conf was not written for.',
     'ALTER SYSTEM SET listen_addresses = ''localhost,<application interface address>''; then restart the server.'),
    ('role_md5_password', 'high', 'roles', 'role password stored as an md5 hash', 'daily',
     'An md5 password hash is a password equivalent under md5 authentication and weak against brute force.',
     'SET password_encryption = ''scram-sha-256''; then set a new password for {object} (\password in psql).'),
    ('password_encryption_md5', 'high', 'settings', 'new passwords are hashed with md5', 'daily',
     'password_encryption = md5: every password set from now on is stored as an md5 hash.',
     'ALTER SYSTEM SET password_encryption = ''scram-sha-256''; SELECT pg_catalog.pg_reload_conf();'),
    ('audit_chain_broken', 'critical', 'audit', 'the signed audit trail does not verify', 'daily',
     'tradeguard.verify() reports a break in the hash chain or a bad signature: audit rows were altered, deleted or forged.',
     'Investigate with SELECT * FROM tradeguard.verify(); keep the evidence, restore the audit trail from a verified backup.'),
    ('audit_seal_backlog', 'high', 'audit', 'audit rows wait long to be sealed', 'daily',
     'Audit rows older than five minutes are not sealed into the hash chain: verify() does not check them yet. The sealing worker is not running, or a long-open transaction holds sealing back.',
     'Check SELECT * FROM tradeguard.runtime_status(); end long-open transactions (SELECT pid, xact_start FROM pg_stat_activity ORDER BY xact_start LIMIT 5) or run SELECT tradeguard.seal();'),
    ('shared_preload_missing_tradeguard', 'high', 'audit', 'tradeguard is not preloaded', 'daily',
     'Without shared_preload_libraries the background worker, the intrusion-detection hooks and the key cache do not run.',
     'ALTER SYSTEM SET shared_preload_libraries = ''tradeguard''; (keep the libraries already listed) then restart the server.'),
    -- weekly: roles, privileges, settings
    ('superuser_login_role', 'high', 'roles', 'login role with superuser', 'weekly',
     'A login role other than the bootstrap superuser bypasses every privilege check, row security and tradeguard protection.',
     'ALTER ROLE {object} NOSUPERUSER;'),
    ('role_without_password_expiry', 'medium', 'roles', 'application role password never expires', 'weekly',
     'A role declared "application" with tradeguard.role_profile() has no VALID UNTIL: a leaked password stays valid forever.',
     'ALTER ROLE {object} VALID UNTIL ''<date of the next rotation>'';'),
    ('role_bypassrls', 'high', 'roles', 'role bypasses row-level security', 'weekly',
     'BYPASSRLS ignores every row-level security policy.',
     'ALTER ROLE {object} NOBYPASSRLS;'),
    ('role_createrole_non_admin', 'medium', 'roles', 'CREATEROLE held by a role not declared admin', 'weekly',
     'CREATEROLE can create roles and grant itself membership in most roles: it is close to superuser.',
     'ALTER ROLE {object} NOCREATEROLE; (or declare it with SELECT tradeguard.role_profile(''{object}'', ''admin'');)'),
    ('role_dangerous_builtin_membership', 'high', 'roles', 'role is a member of a dangerous predefined role', 'weekly',
     'pg_read_server_files, pg_write_server_files, pg_execute_server_program, pg_read_all_data or pg_write_all_data give file, shell or data-wide access.',
     'REVOKE <predefined role> FROM <role>; for {object}'),
    ('connection_limit_unset', 'info', 'roles', 'login role without a connection limit', 'weekly',
     'A login role with CONNECTION LIMIT -1 can exhaust max_connections (runaway pool, stolen credentials).',
     'ALTER ROLE {object} CONNECTION LIMIT <expected pool size>;'),
    ('public_schema_create', 'high', 'privileges', 'PUBLIC may create objects in a schema', 'weekly',
     'Any role can create functions or tables in the schema, shadowing objects other roles resolve through search_path.',
     'REVOKE CREATE ON SCHEMA {object} FROM PUBLIC;'),
    ('readonly_role_can_write', 'high', 'privileges', 'role declared readonly can change data', 'weekly',
     'A role declared "readonly" with tradeguard.role_profile() can INSERT, UPDATE, DELETE or TRUNCATE a user table, or owns one.',
     'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON <tables> FROM {object};'),
    ('table_writable_by_public', 'high', 'privileges', 'PUBLIC may change a table', 'weekly',
     'INSERT, UPDATE, DELETE or TRUNCATE is granted to PUBLIC: every role, present and future, can change the table.',
     'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {object} FROM PUBLIC;'),
    ('secdef_without_search_path', 'high', 'privileges', 'SECURITY DEFINER function without a pinned search_path', 'weekly',
     'A caller can put its own objects first in search_path and run code with the function owner''s rights: the function has no search_path of its own, or one where pg_temp is not last (the caller''s temporary tables and types come first) or that names a schema anyone may create objects in.',
     'ALTER FUNCTION {object} SET search_path = pg_catalog, pg_temp;'),
    ('secdef_executable_by_public', 'medium', 'privileges', 'SECURITY DEFINER function executable by PUBLIC', 'weekly',
     'Every role can run the function with its owner''s rights.',
     'REVOKE EXECUTE ON FUNCTION {object} FROM PUBLIC;'),
    ('default_privileges_public', 'medium', 'privileges', 'default privileges grant to PUBLIC', 'weekly',
     'ALTER DEFAULT PRIVILEGES grants every future object of this kind to PUBLIC.',
     'ALTER DEFAULT PRIVILEGES FOR ROLE <role> [IN SCHEMA <schema>] REVOKE ALL ON <kind> FROM PUBLIC;'),
    ('dangerous_extension_installed', 'high', 'privileges', 'extension or untrusted language that reaches the server''s files or shell', 'weekly',
     'adminpack, file_fdw and untrusted languages (plpython3u, plperlu, pltclu...) read or write server files or run programs as the server.',
     'DROP EXTENSION {object}; (or DROP LANGUAGE) once nothing depends on it.'),
    ('log_settings_weak', 'medium', 'settings', 'logging too weak to reconstruct an incident', 'weekly',
     'log_statement below mod, log_connections or log_disconnections off, or a log_line_prefix without user (%u) and client (%h or %r).',
     'ALTER SYSTEM SET {object} = <value>; SELECT pg_catalog.pg_reload_conf();'),
    ('fsync_off', 'high', 'settings', 'fsync is off', 'weekly',
     'A crash or power loss can corrupt the database and lose committed trades.',
     'ALTER SYSTEM SET fsync = on; SELECT pg_catalog.pg_reload_conf();'),
    ('full_page_writes_off', 'high', 'settings', 'full_page_writes is off', 'weekly',
     'A crash during a page write can leave torn pages that WAL replay cannot repair.',
     'ALTER SYSTEM SET full_page_writes = on; SELECT pg_catalog.pg_reload_conf();'),
    ('ssl_weak_protocol', 'high', 'ssl', 'TLS versions older than 1.2 accepted', 'weekly',
     'ssl_min_protocol_version allows TLS 1.0 or 1.1, which have known weaknesses.',
     'ALTER SYSTEM SET ssl_min_protocol_version = ''TLSv1.2''; SELECT pg_catalog.pg_reload_conf();'),
    ('ssl_weak_ciphers', 'medium', 'ssl', 'weak TLS cipher classes enabled', 'weekly',
     'ssl_ciphers enables a weak class (MEDIUM, LOW, 3DES, RC4, NULL, EXPORT, MD5, ALL...) without excluding it.',
     'ALTER SYSTEM SET ssl_ciphers = ''HIGH:!aNULL:!MD5:!3DES:!CAMELLIA''; SELECT pg_catalog.pg_reload_conf();'),
    ('statement_timeout_unset', 'info', 'settings', 'no statement timeout', 'weekly',
     'statement_timeout = 0: a runaway or malicious query holds locks and connections for ever.',
     'ALTER DATABASE <database> SET statement_timeout = ''60s''; (or per application role)'),
    ('idle_session_timeout', 'info', 'settings', 'idle sessions are never closed', 'weekly',
     'idle_in_transaction_session_timeout or idle_session_timeout is 0: forgotten sessions keep locks, snapshots and connection slots.',
     'ALTER SYSTEM SET {object} = ''10min''; SELECT pg_catalog.pg_reload_conf();'),
    ('table_not_audited', 'medium', 'audit', 'trading table without the audit trigger', 'weekly',
     'Changes to this table leave no signed audit row (any user table outside the system and tradeguard schemas counts as trading).',
     'SELECT tradeguard.audit_table(''{object}'');'),
    ('sensitive_column_plaintext', 'high', 'encryption', 'sensitive column stored in plain text', 'weekly',
     'A column marked with tradeguard.mark_sensitive() or named like a secret (password, token, api_key, iban, card...) holds text not encrypted by tradeguard.',
     'SELECT tradeguard.encrypt_column(<table>, <column>, <key name>); for {object}'),
    -- monthly: files, certificates, version
    ('ssl_cert_expiring', 'high', 'ssl', 'server certificate expired or expiring within 30 days', 'monthly',
     'Clients with sslmode=verify-full refuse an expired certificate; a lapsed renewal becomes an outage or a downgrade.',
     'Renew the certificate at {object}, then SELECT pg_catalog.pg_reload_conf();'),
    ('ssl_cert_weak_key', 'medium', 'ssl', 'server certificate key or signature too weak', 'monthly',
     'RSA key below 2048 bits, EC key below 256 bits, or a SHA-1/MD5 signature.',
     'Issue a new certificate (RSA 3072 or ECDSA P-256, SHA-256 signature) at {object}, then SELECT pg_catalog.pg_reload_conf();'),
    ('ssl_cert_self_signed', 'low', 'ssl', 'server certificate is self-signed', 'monthly',
     'Clients cannot verify a self-signed certificate with sslmode=verify-full unless they pin it.',
     'Have {object} signed by the organisation''s CA and distribute the CA as sslrootcert.'),
    ('ssl_key_file_permissions', 'high', 'files', 'TLS private key readable by others', 'monthly',
     'The private key file is readable by group or other, or not owned by the server''s OS user.',
     'chown postgres {object} && chmod 0600 {object}'),
    ('data_directory_permissions', 'high', 'files', 'data directory permissions too open', 'monthly',
     'The data directory is not 0700 (or 0750 with group access) or not owned by the server''s OS user.',
     'chown postgres {object} && chmod 0700 {object}'),
    ('log_file_permissions', 'medium', 'files', 'server log files readable by others', 'monthly',
     'log_file_mode is more open than 0640: statements, user names and client addresses in the log are readable by other OS users.',
     'ALTER SYSTEM SET log_file_mode = ''0600''; SELECT pg_catalog.pg_reload_conf();'),
    ('config_file_permissions', 'medium', 'files', 'configuration file writable by others', 'monthly',
     'postgresql.conf, pg_hba.conf or pg_ident.conf is writable by group or other: another OS user can change authentication.',
     'chmod go-w {object}'),
    ('root_key_file_permissions', 'high', 'encryption', 'tradeguard root key file readable by others', 'monthly',
     'The file named by tradeguard.root_key_file is readable or writable by group or other, or not owned by the server''s OS user.',
     'chown postgres {object} && chmod 0600 {object}'),
    ('server_version_outdated', 'high', 'version', 'PostgreSQL minor release behind', 'monthly',
     'The server runs an older minor release than the latest known one for its major version: known security fixes are missing.',
     'Install the latest minor release of PostgreSQL {object} and restart (no dump/restore needed).'),
    ('server_version_eol', 'high', 'version', 'PostgreSQL major version past end of life', 'monthly',
     'The major version no longer receives security fixes.',
     'Plan a major upgrade (pg_upgrade) to a supported version.'),
    ('release_table_stale', 'info', 'version', 'the shipped release table is old', 'monthly',
     'tradeguard_audit.pg_minor_releases is older than 120 days: server_version_outdated may miss newer releases.',
     'Upgrade tradeguard, or UPDATE tradeguard_audit.pg_minor_releases (as superuser) from https://www.postgresql.org/support/versioning/'),
    -- not run by itself: reported when a check raises an error
    ('check_failed', 'info', 'audit', 'a self-audit check could not run', 'none',
     'The check raised an error (missing helper, unreadable file...); its result is unknown. Reported at the level and in the category of the check that failed.',
     'Read the detail; the check id is the object.')
  ) AS c(check_id, level, category, title, first_profile, description, remediation_template);

------------------------------------------------------------------------------------------------
-- Internal helpers (schema tradeguard_audit, no grants)
------------------------------------------------------------------------------------------------

-- User tables: ordinary and partitioned tables outside the system and tradeguard schemas, not
-- partitions (their parent is what gets audited) and not members of an extension.
-- What a role may write through: tables, partitions (writable on their own), views (an
-- updatable view writes its table with its owner's rights) and foreign tables.
CREATE VIEW tradeguard_audit.writable_relations AS
SELECT c.oid AS relid, n.nspname, c.relname, c.relowner, c.relacl, c.relkind, c.relispartition
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'f')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tradeguard', 'tradeguard_audit')
   AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e');
COMMENT ON VIEW tradeguard_audit.writable_relations IS
    'tradeguard self-audit: the relations the write-privilege checks look at (tables, partitions, views, foreign tables)';

CREATE VIEW tradeguard_audit.user_tables AS
SELECT w.relid, w.nspname, w.relname, w.relowner, w.relacl
  FROM tradeguard_audit.writable_relations w
 WHERE w.relkind IN ('r', 'p') AND NOT w.relispartition;
COMMENT ON VIEW tradeguard_audit.user_tables IS
    'tradeguard self-audit: the user (trading) tables that the privilege, audit and encryption checks look at';

CREATE FUNCTION tradeguard_audit.level_rank(level text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE $1 WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3
                   WHEN 'low' THEN 4 WHEN 'info' THEN 5 ELSE 6 END
$$;
COMMENT ON FUNCTION tradeguard_audit.level_rank(text) IS
    'tradeguard self-audit: sort order of levels, critical first';

-- The network of a pg_hba.conf line (address and netmask, as pg_hba_file_rules shows them);
-- NULL for a host name or keyword, or a mask that is not a prefix.
CREATE FUNCTION tradeguard_audit.hba_network(address text, netmask text) RETURNS cidr
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.network(pg_catalog.set_masklen(a, l.len))
      FROM (SELECT $1::inet AS a, $2::inet AS m WHERE $1 ~ '^[0-9a-fA-F:.]+$' AND $2 ~ '^[0-9a-fA-F:.]+$') x,
           LATERAL (SELECT len FROM pg_catalog.generate_series(0, CASE pg_catalog.family(x.a) WHEN 4 THEN 32 ELSE 128 END) len
                     WHERE pg_catalog.family(x.m) = pg_catalog.family(x.a)
                       AND pg_catalog.host(pg_catalog.netmask(pg_catalog.set_masklen(x.a, len))) = pg_catalog.host(x.m)) l(len)
$$;
COMMENT ON FUNCTION tradeguard_audit.hba_network(text, text) IS
    'tradeguard self-audit: the network (cidr) of a pg_hba.conf line from its address and netmask; NULL for host names and keywords';

-- The score formula lives here only; tradeguard.security_score() documents it.
CREATE FUNCTION tradeguard_audit.penalty(level text, open_findings bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (CASE $1 WHEN 'critical' THEN 30 WHEN 'high' THEN 15 WHEN 'medium' THEN 5
                    WHEN 'low' THEN 2 ELSE 0 END) * LEAST($2, 3)::integer
$$;
COMMENT ON FUNCTION tradeguard_audit.penalty(text, bigint) IS
    'tradeguard self-audit: points one check takes off the score: weight of its level (critical 30, high 15, medium 5, low 2, info 0) times its open findings, counted up to 3';

CREATE FUNCTION tradeguard_audit.octal_mode(setting text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sum(pg_catalog.substr(m, i, 1)::integer * (8 ^ (pg_catalog.length(m) - i))::integer)::integer
      FROM (SELECT pg_catalog.ltrim($1, '0') AS m) s,
           pg_catalog.generate_series(1, pg_catalog.length(s.m)) AS i
     WHERE $1 ~ '^[0-7]+$'
$$;
COMMENT ON FUNCTION tradeguard_audit.octal_mode(text) IS
    'tradeguard self-audit: a file mode written in octal (''0640'') as an integer (416)';

CREATE FUNCTION tradeguard_audit.server_path(path text) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN $1 LIKE '/%' THEN $1
                ELSE pg_catalog.current_setting('data_directory') || '/' || $1 END
$$;
COMMENT ON FUNCTION tradeguard_audit.server_path(text) IS
    'tradeguard self-audit: a path from a setting, made absolute (relative paths are relative to the data directory)';

-- The defaults of a setting stored in the catalog that apply in this database (ALTER DATABASE,
-- ALTER ROLE ALL and ALTER ROLE ... [IN DATABASE ...] SET): the role (0 for every role), the
-- database (0 for every database) and the value as written.
CREATE FUNCTION tradeguard_audit.setting_defaults(setting text)
RETURNS TABLE(role_oid oid, database_oid oid, value text)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.setrole, d.setdatabase, pg_catalog.substr(c, pg_catalog.strpos(c, '=') + 1)
      FROM pg_catalog.pg_db_role_setting d, pg_catalog.unnest(d.setconfig) AS c
     WHERE d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
       AND pg_catalog.lower(pg_catalog.split_part(c, '=', 1)) = pg_catalog.lower($1)
$$;
COMMENT ON FUNCTION tradeguard_audit.setting_defaults(text) IS
    'tradeguard self-audit: the catalog defaults of a setting that apply in this database (per database, per role, both, or all)';

-- The default every role gets for a setting in this database: this database's own
-- (ALTER DATABASE ... SET), else the one for all databases (ALTER ROLE ALL SET), as written,
-- with where it comes from ('database' or 'global'); no row when there is none.
CREATE FUNCTION tradeguard_audit.all_roles_default(setting text, OUT value text, OUT source text)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.value, CASE WHEN d.database_oid = 0 THEN 'global' ELSE 'database' END
      FROM tradeguard_audit.setting_defaults($1) d
     WHERE d.role_oid = 0
     ORDER BY d.database_oid DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION tradeguard_audit.all_roles_default(text) IS
    'tradeguard self-audit: the default of a setting for every role in this database (ALTER DATABASE ... SET, else ALTER ROLE ALL SET), or no row';

-- A setting as the server gives it to new sessions of this database, whatever the session
-- reading it did: so that a finding does not depend on a SET (or a client connection option,
-- or a per-role default) of the session reading the findings, which could hide one or raise a
-- false one. In the server's order: the default for every role in this database (ALTER
-- DATABASE ... SET, else ALTER ROLE ALL SET, read from the catalog now); else this session's
-- value when it came from the server (configuration files as last reloaded, command line,
-- built-in default; for settings fixed at connection, only the command line); else the
-- configuration files as pg_file_settings reads them now (a command-line option cannot be seen
-- from there), else PostgreSQL's default. A value from the catalog or the files is as written there ('60s',
-- 'true'): compare through setting_is_on / setting_is_zero / lower().
CREATE FUNCTION tradeguard_audit.server_setting(setting text) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
               (SELECT a.value FROM tradeguard_audit.all_roles_default(s.name) a),
               CASE WHEN s.source IN ('session', 'client', 'user', 'database user', 'database', 'global') THEN NULL
                    -- (A backend setting is fixed when a session starts: a reload since does
                    -- not reach this session's value, but reaches new sessions.)
                    WHEN s.context IN ('backend', 'superuser-backend') AND s.source IN ('default', 'configuration file') THEN NULL
                    ELSE s.setting END,
               (SELECT f.setting FROM pg_catalog.pg_file_settings f
                 WHERE pg_catalog.lower(f.name) = s.name AND f.applied AND f.error IS NULL
                 ORDER BY f.seqno DESC LIMIT 1),
               s.boot_val)
      FROM pg_catalog.pg_settings s
     WHERE s.name = pg_catalog.lower($1)
$$;
COMMENT ON FUNCTION tradeguard_audit.server_setting(text) IS
    'tradeguard self-audit: a setting as the server gives it to new sessions of this database (not as this session or its role may have set it)';

-- The statement that sets `setting` to `good` for new sessions where the server takes it from:
-- this database's default, else the default for all databases (ALTER SYSTEM would override
-- neither), else the server's configuration.
CREATE FUNCTION tradeguard_audit.setting_fix(setting text, good text) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE (SELECT a.source FROM tradeguard_audit.all_roles_default($1) a)
             WHEN 'database' THEN pg_catalog.format('ALTER DATABASE %I SET %s = %L;', pg_catalog.current_database(), $1, $2)
             WHEN 'global' THEN pg_catalog.format('ALTER ROLE ALL SET %s = %L;', $1, $2)
             ELSE pg_catalog.format('ALTER SYSTEM SET %s = %L; SELECT pg_catalog.pg_reload_conf();', $1, $2) END
$$;
COMMENT ON FUNCTION tradeguard_audit.setting_fix(text, text) IS
    'tradeguard self-audit: the remediation that sets a setting where the server takes it from (this database''s default, ALTER ROLE ALL SET, else ALTER SYSTEM)';

-- Per-role defaults of a setting that apply in this database (ALTER ROLE ... SET, ALTER ROLE
-- ... IN DATABASE ... SET): a role's sessions get them over the server's value, so a weak one is
-- a finding of its own. The finding's object, the value as written, the statement that
-- removes it.
CREATE FUNCTION tradeguard_audit.role_defaults(setting text)
RETURNS TABLE(object text, value text, fix text)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('%s (role %s%s)', pg_catalog.lower($1), pg_catalog.quote_ident(r.rolname),
                             CASE WHEN d.database_oid <> 0 THEN ' in this database' ELSE '' END),
           d.value,
           pg_catalog.format('ALTER ROLE %I%s RESET %s;', r.rolname,
                             CASE WHEN d.database_oid <> 0 THEN pg_catalog.format(' IN DATABASE %I', pg_catalog.current_database()) ELSE '' END,
                             pg_catalog.lower($1))
      FROM tradeguard_audit.setting_defaults($1) d
      JOIN pg_catalog.pg_roles r ON r.oid = d.role_oid
$$;
COMMENT ON FUNCTION tradeguard_audit.role_defaults(text) IS
    'tradeguard self-audit: per-role defaults of a setting in this database (ALTER ROLE ... SET), with the statement that removes each';

-- A boolean setting's text as PostgreSQL reads it ('on', 'true', 'yes', '1' and their unique
-- prefixes).
CREATE FUNCTION tradeguard_audit.setting_is_on(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT $1 ~* '^\s*(t|tr|tru|true|y|ye|yes|on|1)\s*$'
$$;
COMMENT ON FUNCTION tradeguard_audit.setting_is_on(text) IS
    'tradeguard self-audit: whether a boolean setting written as text is on';

-- Whether a timeout's text (milliseconds unless a unit says otherwise) means "no timeout":
-- zero once PostgreSQL rounds it to whole milliseconds ('0', '0s', '100us', '0.4ms', '0x0').
CREATE FUNCTION tradeguard_audit.setting_is_zero(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
             WHEN $1 ~* '^\s*[-+]?0x0+\s*$' THEN true
             WHEN m IS NULL THEN false
             ELSE pg_catalog.abs(m[1]::numeric * CASE pg_catalog.lower(coalesce(NULLIF(m[2], ''), 'ms'))
                      WHEN 'us' THEN 0.001 WHEN 'ms' THEN 1 WHEN 's' THEN 1000 WHEN 'min' THEN 60000
                      WHEN 'h' THEN 3600000 WHEN 'd' THEN 86400000 ELSE NULL END) <= 0.5
           END
      FROM (SELECT pg_catalog.regexp_match($1, '^\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$') AS m) x
$$;
COMMENT ON FUNCTION tradeguard_audit.setting_is_zero(text) IS
    'tradeguard self-audit: whether a timeout written as text means no timeout (zero after rounding to milliseconds)';

CREATE FUNCTION tradeguard_audit.to_octal(mode integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ((($1 >> 9) & 7)::text || (($1 >> 6) & 7)::text || (($1 >> 3) & 7)::text || ($1 & 7)::text)
$$;
COMMENT ON FUNCTION tradeguard_audit.to_octal(integer) IS
    'tradeguard self-audit: permission bits as four octal digits (384 -> 0600)';

-- Columns registered by the encryption capability, whatever the layout of its registry
-- (relid/attname, or schema_name/table_name/column_name); empty when it is not installed.
CREATE FUNCTION tradeguard_audit.encrypted_column_list()
RETURNS TABLE(relid oid, attname name)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_reg regclass := pg_catalog.to_regclass('tradeguard_audit.encrypted_columns');
BEGIN
    IF v_reg IS NULL THEN
        RETURN;
    ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = v_reg AND a.attname = 'relid' AND NOT a.attisdropped) THEN
        RETURN QUERY EXECUTE 'SELECT e.relid::pg_catalog.oid, e.attname::pg_catalog.name FROM tradeguard_audit.encrypted_columns e';
    ELSE
        RETURN QUERY EXECUTE
            'SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(e.schema_name) || ''.'' || pg_catalog.quote_ident(e.table_name))::pg_catalog.oid,
                    e.column_name::pg_catalog.name
               FROM tradeguard_audit.encrypted_columns e';
    END IF;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.encrypted_column_list() IS
    'tradeguard self-audit: (relid, attname) of every column tradeguard.encrypt_column() converted; empty without the encryption capability';

-- One check: its findings as (object, detail, remediation). Objects are unique per check and
-- stable across runs (they make the cache_key). Runs as the extension owner: it is called only
-- from tradeguard_audit.check_results(), a SECURITY DEFINER function.
CREATE FUNCTION tradeguard_audit.run_check(p_check text)
RETURNS TABLE(object text, detail text, remediation text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_text     text;
    v_text2    text;
    v_int      integer;
    v_bool     boolean;
    v_count    bigint;
    v_time     timestamptz;
    v_oids     oid[];
    v_cols     text[];
    v_uid      integer;
    v_major    integer;
    v_minor    integer;
    v_rel      record;
    v_cert     record;
    v_file     record;
BEGIN
    ---------------------------------------------------------------------------- hba
    IF p_check = 'hba_trust' THEN
        RETURN QUERY
        SELECT 'pg_hba.conf line ' || h.line_number,
               'line ' || h.line_number || ': ' || pg_catalog.concat_ws(' ', h.type,
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   h.address, h.netmask, h.auth_method),
               'pg_hba.conf line ' || h.line_number || ' becomes: ' || pg_catalog.concat_ws(' ', h.type,
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   h.address, h.netmask, CASE WHEN h.type = 'local' THEN 'peer' ELSE 'scram-sha-256' END)
                 || ' ; then SELECT pg_catalog.pg_reload_conf();'
          FROM pg_catalog.pg_hba_file_rules h
         WHERE h.error IS NULL AND h.auth_method = 'trust';

    ELSIF p_check = 'hba_weak_password_method' THEN
        RETURN QUERY
        SELECT 'pg_hba.conf line ' || h.line_number,
               'line ' || h.line_number || ': ' || pg_catalog.concat_ws(' ', h.type,
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   h.address, h.netmask, h.auth_method),
               'pg_hba.conf line ' || h.line_number || ' becomes: ' || pg_catalog.concat_ws(' ', h.type,
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   h.address, h.netmask, 'scram-sha-256')
                 || ' ; reset the passwords under password_encryption = ''scram-sha-256'', then SELECT pg_catalog.pg_reload_conf();'
          FROM pg_catalog.pg_hba_file_rules h
         WHERE h.error IS NULL AND h.auth_method IN ('md5', 'password');

    ELSIF p_check = 'hba_host_without_ssl' THEN
        RETURN QUERY
        SELECT 'pg_hba.conf line ' || h.line_number,
               'line ' || h.line_number || ': ' || pg_catalog.concat_ws(' ', h.type,
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   h.address, h.netmask, h.auth_method),
               'pg_hba.conf line ' || h.line_number || ' becomes: ' || pg_catalog.concat_ws(' ', 'hostssl',
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   h.address, h.netmask, h.auth_method)
                 || ' ; then SELECT pg_catalog.pg_reload_conf();'
          FROM pg_catalog.pg_hba_file_rules h,
               LATERAL (SELECT tradeguard_audit.hba_network(h.address, h.netmask) AS net) x
         WHERE h.error IS NULL
           AND h.type IN ('host', 'hostnossl', 'hostnogssenc')
           AND h.auth_method <> 'reject'
           -- Loopback only when the whole network (address and mask) is: 127.0.0.1/1 is not.
           -- (all, samehost, samenet, a host name or a mask that is not a prefix: no network,
           -- not loopback)
           AND NOT coalesce(h.address = 'localhost' OR x.net <<= cidr '127.0.0.0/8' OR x.net = cidr '::1/128', false);

    ELSIF p_check = 'hba_open_to_world' THEN
        RETURN QUERY
        SELECT 'pg_hba.conf line ' || h.line_number,
               'line ' || h.line_number || ': ' || pg_catalog.concat_ws(' ', h.type,
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   h.address, h.netmask, h.auth_method),
               'pg_hba.conf line ' || h.line_number || ' becomes: ' || pg_catalog.concat_ws(' ', h.type,
                   pg_catalog.array_to_string(h.database, ','), pg_catalog.array_to_string(h.user_name, ','),
                   '<application network, e.g. 10.0.0.0/24>', h.auth_method)
                 || ' ; then SELECT pg_catalog.pg_reload_conf();'
          FROM pg_catalog.pg_hba_file_rules h,
               LATERAL (SELECT tradeguard_audit.hba_network(h.address, h.netmask) AS net) x
         WHERE h.error IS NULL
           AND h.type LIKE 'host%'
           AND h.auth_method <> 'reject'
           -- any address, or a network wider than an IPv4 /8 or an IPv6 /16 (0.0.0.0/1 is half
           -- the Internet)
           AND (h.address = 'all' OR pg_catalog.masklen(x.net) < CASE pg_catalog.family(x.net) WHEN 4 THEN 8 ELSE 16 END);

    ELSIF p_check = 'pg_hba_errors' THEN
        RETURN QUERY
        SELECT 'pg_hba.conf line ' || h.line_number,
               h.error,
               'Fix pg_hba.conf line ' || h.line_number || ' (' || h.error || '), then SELECT pg_catalog.pg_reload_conf();'
          FROM pg_catalog.pg_hba_file_rules h
         WHERE h.error IS NOT NULL;

    ---------------------------------------------------------------------------- ssl, sessions
    ELSIF p_check = 'ssl_disabled' THEN
        IF pg_catalog.current_setting('ssl') <> 'on' THEN
            RETURN QUERY SELECT 'ssl'::text, 'ssl = ' || pg_catalog.current_setting('ssl'),
                'ALTER SYSTEM SET ssl = on; SELECT pg_catalog.pg_reload_conf(); -- with ssl_cert_file and ssl_key_file in place'::text;
        END IF;

    ELSIF p_check = 'ssl_weak_protocol' THEN
        v_text := pg_catalog.current_setting('ssl_min_protocol_version');
        IF v_text IN ('', 'TLSv1', 'TLSv1.1') THEN
            RETURN QUERY SELECT 'ssl_min_protocol_version'::text,
                'ssl_min_protocol_version = ''' || v_text || '''',
                'ALTER SYSTEM SET ssl_min_protocol_version = ''TLSv1.2''; SELECT pg_catalog.pg_reload_conf();'::text;
        END IF;

    ELSIF p_check = 'ssl_weak_ciphers' THEN
        v_text := pg_catalog.current_setting('ssl_ciphers');
        SELECT pg_catalog.string_agg(t, ', ' ORDER BY t) INTO v_text2
          FROM (SELECT DISTINCT pg_catalog.ltrim(tok, '+') AS t
                  FROM pg_catalog.regexp_split_to_table(v_text, '[:, ]+') AS tok
                 WHERE tok !~ '^[!-]'
                   AND pg_catalog.upper(pg_catalog.ltrim(tok, '+')) IN
                       ('ALL', 'COMPLEMENTOFALL', 'MEDIUM', 'LOW', 'EXP', 'EXPORT', 'NULL', 'ENULL', 'ANULL',
                        'RC4', 'DES', '3DES', 'MD5', 'SEED', 'IDEA')) s;
        IF v_text2 IS NOT NULL THEN
            RETURN QUERY SELECT 'ssl_ciphers'::text,
                'ssl_ciphers = ''' || v_text || ''' enables ' || v_text2,
                'ALTER SYSTEM SET ssl_ciphers = ''HIGH:!aNULL:!MD5:!3DES:!CAMELLIA''; SELECT pg_catalog.pg_reload_conf();'::text;
        END IF;

    ELSIF p_check IN ('ssl_cert_expiring', 'ssl_cert_weak_key', 'ssl_cert_self_signed') THEN
        IF pg_catalog.current_setting('ssl') = 'on' THEN
            v_text := tradeguard_audit.server_path(pg_catalog.current_setting('ssl_cert_file'));
            SELECT * INTO v_cert FROM tradeguard_audit.cert_info(v_text) LIMIT 1;
            IF p_check = 'ssl_cert_expiring' AND v_cert.not_after < pg_catalog.now() + interval '30 days' THEN
                RETURN QUERY SELECT v_text,
                    CASE WHEN v_cert.not_after < pg_catalog.now()
                         THEN 'expired on ' || pg_catalog.to_char(v_cert.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' (UTC)'
                         ELSE 'expires on ' || pg_catalog.to_char(v_cert.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' (UTC), in '
                              || pg_catalog.floor(EXTRACT(epoch FROM v_cert.not_after - pg_catalog.now()) / 86400)::integer || ' days'
                    END || '; subject ' || coalesce(v_cert.subject, '?'),
                    'Renew the certificate at ' || v_text || ', then SELECT pg_catalog.pg_reload_conf();';
            ELSIF p_check = 'ssl_cert_weak_key'
                  AND ((v_cert.key_type ILIKE '%rsa%' AND v_cert.key_bits < 2048)
                       OR ((v_cert.key_type ILIKE '%ec%' OR v_cert.key_type ILIKE '%ecdsa%') AND v_cert.key_type NOT ILIKE '%rsa%' AND v_cert.key_bits < 256)
                       OR v_cert.signature_algorithm ~* '(sha1|md5|md2)') THEN
                RETURN QUERY SELECT v_text,
                    pg_catalog.format('key %s %s bits, signature %s', v_cert.key_type, v_cert.key_bits, v_cert.signature_algorithm),
                    'Issue a new certificate (RSA 3072 or ECDSA P-256, SHA-256 signature) at ' || v_text || ', then SELECT pg_catalog.pg_reload_conf();';
            ELSIF p_check = 'ssl_cert_self_signed' AND v_cert.self_signed THEN
                RETURN QUERY SELECT v_text, 'subject = issuer = ' || coalesce(v_cert.subject, '?'),
                    'Have ' || v_text || ' signed by the organisation''s CA and give clients that CA as sslrootcert (sslmode=verify-full).';
            END IF;
        END IF;

    ELSIF p_check = 'ssl_key_file_permissions' THEN
        IF pg_catalog.current_setting('ssl') = 'on' THEN
            v_text := tradeguard_audit.server_path(pg_catalog.current_setting('ssl_key_file'));
            v_uid := tradeguard_audit.server_uid();
            SELECT * INTO v_file FROM tradeguard_audit.file_info(v_text) LIMIT 1;
            IF v_file.present AND ((v_file.mode & 63) <> 0 OR v_file.owner_uid <> v_uid) THEN
                RETURN QUERY SELECT v_text,
                    pg_catalog.format('mode %s, owner uid %s (server uid %s)',
                                      pg_catalog.lpad(tradeguard_audit.to_octal(v_file.mode), 4, '0'), v_file.owner_uid, v_uid),
                    pg_catalog.format('chown %s %s && chmod 0600 %s', v_uid, v_text, v_text);
            END IF;
        END IF;

    ELSIF p_check = 'session_without_ssl' THEN
        RETURN QUERY
        SELECT pg_catalog.format('%s@%s from %s', a.usename, a.datname, pg_catalog.host(a.client_addr)),
               pg_catalog.format('%s session(s) without TLS (pids %s), application %s',
                                 pg_catalog.count(*), pg_catalog.string_agg(a.pid::text, ',' ORDER BY a.pid),
                                 coalesce(NULLIF(pg_catalog.max(a.application_name), ''), '-')),
               pg_catalog.format('Connect %s with sslmode=verify-full and allow it only on "hostssl" lines; end these sessions with SELECT pg_catalog.pg_terminate_backend(pid) FROM tradeguard.ssl_sessions WHERE NOT ssl AND client_addr = %L;',
                                 a.usename, pg_catalog.host(a.client_addr))
          FROM pg_catalog.pg_stat_activity a
          JOIN pg_catalog.pg_stat_ssl s ON s.pid = a.pid
          LEFT JOIN pg_catalog.pg_stat_gssapi g ON g.pid = a.pid
         WHERE a.backend_type = 'client backend'
           AND a.client_addr IS NOT NULL
           AND NOT (a.client_addr <<= inet '127.0.0.0/8' OR a.client_addr = inet '::1')
           AND NOT s.ssl
           -- (a GSSAPI-encrypted session is encrypted too: hostgssenc)
           AND NOT coalesce(g.encrypted, false)
         GROUP BY a.usename, a.datname, a.client_addr;

    ELSIF p_check = 'listen_all_addresses' THEN
        v_text := pg_catalog.current_setting('listen_addresses');
        IF EXISTS (SELECT 1 FROM pg_catalog.regexp_split_to_table(v_text, '\s*,\s*') AS a
                    WHERE pg_catalog.btrim(a) IN ('*', '0.0.0.0', '::')) THEN
            RETURN QUERY SELECT 'listen_addresses'::text, 'listen_addresses = ''' || v_text || '''',
                'ALTER SYSTEM SET listen_addresses = ''localhost,<application interface address>''; -- then restart the server'::text;
        END IF;

    ---------------------------------------------------------------------------- authentication
    ELSIF p_check = 'role_md5_password' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(r.rolname),
               'password stored as an md5 hash' || CASE WHEN r.rolcanlogin THEN '' ELSE ' (role cannot log in)' END,
               pg_catalog.format('SET password_encryption = ''scram-sha-256''; ALTER ROLE %I PASSWORD ''<new password>''; -- a scram-sha-256 verifier replaces the md5 hash and the role keeps logging in (psql''s password meta-command does the same without the password in the statement)', r.rolname)
          FROM pg_catalog.pg_authid r
         WHERE r.rolpassword LIKE 'md5%';

    ELSIF p_check = 'password_encryption_md5' THEN
        IF pg_catalog.lower(pg_catalog.btrim(tradeguard_audit.server_setting('password_encryption'))) = 'md5' THEN
            RETURN QUERY SELECT 'password_encryption'::text, 'password_encryption = md5'::text,
                tradeguard_audit.setting_fix('password_encryption', 'scram-sha-256');
        END IF;
        -- A role whose own default is md5 (its passwords, set in its sessions, are md5).
        RETURN QUERY SELECT o.object, 'password_encryption = md5 for this role''s sessions', o.fix
          FROM tradeguard_audit.role_defaults('password_encryption') o
         WHERE pg_catalog.lower(pg_catalog.btrim(o.value)) = 'md5';

    ---------------------------------------------------------------------------- audit
    ELSIF p_check = 'audit_chain_broken' THEN
        IF pg_catalog.to_regproc('tradeguard.verify') IS NOT NULL THEN
            EXECUTE 'SELECT pg_catalog.bool_and(v.ok), pg_catalog.left(pg_catalog.string_agg(pg_catalog.row_to_json(v)::text, ''; '') FILTER (WHERE NOT v.ok), 500) FROM tradeguard.verify() v'
               INTO v_bool, v_text;
            IF v_bool IS FALSE THEN
                RETURN QUERY SELECT 'tradeguard.verify()'::text, v_text,
                    'Investigate with SELECT * FROM tradeguard.verify() WHERE NOT ok; keep the evidence and restore the audit trail from a verified backup.'::text;
            END IF;
        END IF;

    ELSIF p_check = 'audit_seal_backlog' THEN
        IF pg_catalog.to_regclass('tradeguard_audit.log') IS NOT NULL THEN
            -- Unsealed rows are found through the (block_no, id) index.
            EXECUTE 'SELECT pg_catalog.count(*), pg_catalog.min(at) FROM tradeguard_audit.log WHERE block_no IS NULL'
               INTO v_count, v_time;
            IF v_time < pg_catalog.now() - interval '5 minutes' THEN
                RETURN QUERY SELECT 'tradeguard_audit.log'::text,
                    pg_catalog.format('%s audit rows are not sealed yet, the oldest written at %s', v_count, v_time),
                    'Check SELECT * FROM tradeguard.runtime_status() (the worker seals the database named by tradeguard.database_name); end long-open transactions (SELECT pid, datname, xact_start FROM pg_catalog.pg_stat_activity WHERE xact_start IS NOT NULL ORDER BY xact_start LIMIT 5); or run SELECT tradeguard.seal();'::text;
            END IF;
        END IF;

    ELSIF p_check = 'shared_preload_missing_tradeguard' THEN
        v_text := pg_catalog.current_setting('shared_preload_libraries');
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.regexp_split_to_table(v_text, '\s*,\s*') AS l
                        WHERE pg_catalog.btrim(l, ' "') IN ('tradeguard', '$libdir/tradeguard')) THEN
            RETURN QUERY SELECT 'shared_preload_libraries'::text,
                'shared_preload_libraries = ''' || v_text || '''',
                'ALTER SYSTEM SET shared_preload_libraries = '''
                    || pg_catalog.concat_ws(',', NULLIF(v_text, ''), 'tradeguard') || '''; -- then restart the server';
        END IF;

    ELSIF p_check = 'table_not_audited' THEN
        IF pg_catalog.to_regclass('tradeguard_audit.audited_tables') IS NOT NULL THEN
            EXECUTE 'SELECT pg_catalog.array_agg(relid) FROM tradeguard_audit.audited_tables' INTO v_oids;
            RETURN QUERY
            SELECT t.relid::pg_catalog.regclass::text,
                   'no audit trigger: changes to this table are not in the signed audit trail',
                   pg_catalog.format('SELECT tradeguard.audit_table(%L);', t.relid::pg_catalog.regclass::text)
              FROM tradeguard_audit.user_tables t
             WHERE t.relid <> ALL (coalesce(v_oids, '{}'::oid[]));
        END IF;

    ---------------------------------------------------------------------------- roles
    ELSIF p_check = 'superuser_login_role' THEN
        -- A login role that is a superuser, or a member of one (bootstrap superuser included):
        -- SET ROLE makes it a superuser, whatever INHERIT says.
        RETURN QUERY
        SELECT pg_catalog.quote_ident(r.rolname), 'LOGIN SUPERUSER'::text,
               CASE WHEN r.oid = (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'tradeguard')
                    -- (tradeguard's functions run with its owner's rights: NOSUPERUSER would
                    -- break its checks and protections)
                    THEN pg_catalog.format('ALTER ROLE %I NOLOGIN; -- it owns tradeguard: keep it a superuser that nobody logs in as, and administer through another role', r.rolname)
                    ELSE pg_catalog.format('ALTER ROLE %I NOSUPERUSER;', r.rolname) END
          FROM pg_catalog.pg_roles r
         WHERE r.rolsuper AND r.rolcanlogin AND r.oid <> 10
        UNION ALL
        -- (revoking the grants the role holds directly that lead to a superuser: REVOKE of a
        -- role it only reaches through another does nothing)
        SELECT pg_catalog.quote_ident(r.rolname),
               'LOGIN, member of superuser ' || pg_catalog.string_agg(DISTINCT pg_catalog.quote_ident(s.rolname), ', ')
                 || ' (SET ROLE makes it a superuser)',
               pg_catalog.string_agg(DISTINCT pg_catalog.format('REVOKE %I FROM %I;', g.rolname, r.rolname), ' ')
          FROM pg_catalog.pg_roles r
          JOIN pg_catalog.pg_auth_members m ON m.member = r.oid
          JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
          -- (a superuser is "a member" of every role for pg_has_role: a superuser group names
          -- itself only)
          JOIN pg_catalog.pg_roles s ON s.rolsuper AND s.oid <> r.oid
                                    AND (s.oid = g.oid OR (NOT g.rolsuper AND pg_catalog.pg_has_role(g.oid, s.oid, 'MEMBER')))
         WHERE r.rolcanlogin AND NOT r.rolsuper AND r.oid <> 10
         GROUP BY r.rolname;

    ELSIF p_check = 'role_without_password_expiry' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(r.rolname),
               'declared application, VALID UNTIL ' || coalesce(r.rolvaliduntil::text, 'not set'),
               pg_catalog.format('DO $$BEGIN EXECUTE pg_catalog.format(''ALTER ROLE %%I VALID UNTIL %%L'', %L, CURRENT_DATE + 90); END$$; -- the next rotation, 90 days from now', r.rolname)
          FROM tradeguard_audit.role_profiles p
          JOIN pg_catalog.pg_roles r ON r.oid = p.role_oid
         WHERE p.profile = 'application'
           AND (r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity');

    ELSIF p_check = 'role_bypassrls' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(r.rolname), 'BYPASSRLS'::text,
               pg_catalog.format('ALTER ROLE %I NOBYPASSRLS;', r.rolname)
          FROM pg_catalog.pg_roles r
         WHERE r.rolbypassrls AND NOT r.rolsuper;

    ELSIF p_check = 'role_createrole_non_admin' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(r.rolname), 'CREATEROLE, not declared admin'::text,
               pg_catalog.format('ALTER ROLE %I NOCREATEROLE;', r.rolname)
          FROM pg_catalog.pg_roles r
         WHERE r.rolcreaterole AND NOT r.rolsuper
           AND NOT EXISTS (SELECT 1 FROM tradeguard_audit.role_profiles p
                            WHERE p.role_oid = r.oid AND p.profile = 'admin');

    ELSIF p_check = 'role_dangerous_builtin_membership' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(m.rolname) || ' in ' || b.rolname,
               pg_catalog.format('%I is a member of %s', m.rolname, b.rolname),
               pg_catalog.format('REVOKE %I FROM %I;', b.rolname, m.rolname)
          FROM pg_catalog.pg_auth_members am
          JOIN pg_catalog.pg_roles b ON b.oid = am.roleid
          JOIN pg_catalog.pg_roles m ON m.oid = am.member
         WHERE b.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program',
                             'pg_read_all_data', 'pg_write_all_data')
           AND NOT m.rolsuper;

    ELSIF p_check = 'connection_limit_unset' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(r.rolname), 'LOGIN, CONNECTION LIMIT -1'::text,
               pg_catalog.format('ALTER ROLE %I CONNECTION LIMIT 20; -- or the size of its pool, if larger', r.rolname)
          FROM pg_catalog.pg_roles r
         WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolconnlimit = -1
           AND r.rolname !~ '^pg_';

    ---------------------------------------------------------------------------- privileges
    ELSIF p_check = 'public_schema_create' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(n.nspname), 'PUBLIC holds CREATE on the schema'::text,
               pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC;', n.nspname)
          FROM pg_catalog.pg_namespace n,
               LATERAL pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
         WHERE a.grantee = 0 AND a.privilege_type = 'CREATE'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)';

    ELSIF p_check = 'readonly_role_can_write' THEN
        FOR v_rel IN
            SELECT r.oid, r.rolname
              FROM tradeguard_audit.role_profiles p
              JOIN pg_catalog.pg_roles r ON r.oid = p.role_oid
             WHERE p.profile = 'readonly'
             ORDER BY r.rolname
        LOOP
            -- What it may write as itself or after SET ROLE to any role it is a member of
            -- (NOINHERIT only takes away the automatic use), through the table or its columns.
            v_oids := ARRAY(SELECT x.oid FROM pg_catalog.pg_roles x WHERE pg_catalog.pg_has_role(v_rel.oid, x.oid, 'MEMBER'));
            SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s)', t.relid::pg_catalog.regclass,
                       CASE WHEN t.owns THEN 'owner' ELSE pg_catalog.array_to_string(t.privs, ',') END),
                       ', ' ORDER BY t.relid::pg_catalog.regclass::text),
                   pg_catalog.string_agg(t.relid::pg_catalog.regclass::text, ', ' ORDER BY t.relid::pg_catalog.regclass::text)
                     FILTER (WHERE NOT t.owns)
              INTO v_text, v_text2
              FROM (SELECT w.*, w.relowner = ANY (v_oids) AS owns,
                           ARRAY(SELECT pr FROM pg_catalog.unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS pr
                                  WHERE EXISTS (SELECT 1 FROM pg_catalog.unnest(v_oids) AS x(oid)
                                                 WHERE pg_catalog.has_table_privilege(x.oid, w.relid, pr)
                                                    OR (pr IN ('INSERT', 'UPDATE')
                                                        AND pg_catalog.has_any_column_privilege(x.oid, w.relid, pr)))) AS privs
                      FROM tradeguard_audit.writable_relations w
                     -- (only relations where the answer can be yes: owned by one of its roles,
                     -- or whose table or column grants name one of them or PUBLIC, or all of them
                     -- for a member of pg_write_all_data)
                     WHERE 'pg_write_all_data'::pg_catalog.regrole::pg_catalog.oid = ANY (v_oids)
                        OR w.relowner = ANY (v_oids)
                        OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(w.relacl) a
                                    WHERE a.grantee = 0 OR a.grantee = ANY (v_oids))
                        OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute c
                                    WHERE c.attrelid = w.relid AND c.attnum > 0 AND c.attacl IS NOT NULL)) t
              -- (the partitions of a table it owns are listed with their table)
             WHERE CASE WHEN t.owns THEN NOT t.relispartition AND t.relkind <> 'v'
                        ELSE pg_catalog.cardinality(t.privs) > 0 END;
            IF v_text IS NOT NULL THEN
                RETURN QUERY SELECT pg_catalog.quote_ident(v_rel.rolname), 'can write: ' || v_text,
                    pg_catalog.concat_ws(' ',
                        CASE WHEN v_text2 IS NOT NULL THEN
                            pg_catalog.format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %s FROM %I;', v_text2, v_rel.rolname) END,
                        CASE WHEN v_text ~ '\(owner\)' THEN
                            '-- tables it owns: ALTER TABLE <table> OWNER TO <an application owner role>;' END,
                        '-- if the right comes through a group role, revoke that membership instead');
            END IF;
        END LOOP;

    ELSIF p_check = 'table_writable_by_public' THEN
        RETURN QUERY
        SELECT t.relid::pg_catalog.regclass::text,
               'PUBLIC holds ' || pg_catalog.string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type),
               pg_catalog.format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %s FROM PUBLIC;', t.relid::pg_catalog.regclass)
          FROM tradeguard_audit.writable_relations t,
               -- the table's own grants, and those on its columns (INSERT (price) ... TO PUBLIC)
               LATERAL (SELECT x.privilege_type FROM pg_catalog.aclexplode(t.relacl) x WHERE x.grantee = 0
                        UNION
                        SELECT x.privilege_type || ' (' || pg_catalog.quote_ident(c.attname) || ')'
                          FROM pg_catalog.pg_attribute c, LATERAL pg_catalog.aclexplode(c.attacl) x
                         WHERE c.attrelid = t.relid AND c.attnum > 0 AND NOT c.attisdropped AND x.grantee = 0
                           AND x.privilege_type IN ('INSERT', 'UPDATE')) a
         WHERE a.privilege_type ~ '^(INSERT|UPDATE|DELETE|TRUNCATE)\M'
         GROUP BY t.relid;

    ELSIF p_check = 'secdef_without_search_path' THEN
        -- No search_path of its own (the caller's applies), or one that still lets the caller
        -- choose what a name means: pg_temp not last (the caller's temporary tables and types
        -- are found before the schemas that follow it, or first when it is not listed), or a
        -- schema in which anyone may create objects.
        RETURN QUERY
        SELECT x.fn,
               pg_catalog.format('SECURITY DEFINER, owner %s, ', x.owner)
                 || CASE WHEN x.path IS NULL THEN 'no search_path in its settings'
                         ELSE pg_catalog.format('search_path = %s: ', x.path)
                              || pg_catalog.concat_ws('; ',
                                   CASE WHEN x.last_item IS DISTINCT FROM 'pg_temp' THEN 'pg_temp is not last (the caller''s temporary tables and types come first)' END,
                                   CASE WHEN x.open_schemas IS NOT NULL THEN 'anyone may create objects in ' || x.open_schemas END) END,
               pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', x.fn)
          FROM (SELECT p.oid::pg_catalog.regprocedure::text AS fn, p.proowner::pg_catalog.regrole AS owner, sp.path,
                       (SELECT pg_catalog.btrim(pg_catalog.btrim(i), '"') FROM pg_catalog.unnest(pg_catalog.string_to_array(sp.path, ',')) WITH ORDINALITY AS u(i, o)
                         ORDER BY u.o DESC LIMIT 1) AS last_item,
                       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(ns.nspname), ', ')
                          FROM pg_catalog.unnest(pg_catalog.string_to_array(sp.path, ',')) AS u(i)
                          JOIN pg_catalog.pg_namespace ns ON ns.nspname = pg_catalog.btrim(pg_catalog.btrim(u.i), '"')
                         WHERE pg_catalog.has_schema_privilege('public', ns.oid, 'CREATE')) AS open_schemas
                  FROM pg_catalog.pg_proc p
                  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                  LEFT JOIN LATERAL (SELECT pg_catalog.substr(c, 13) AS path FROM pg_catalog.unnest(p.proconfig) AS c
                                      WHERE c LIKE 'search\_path=%' LIMIT 1) sp ON true
                 WHERE p.prosecdef
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema')) x
         WHERE x.path IS NULL OR x.last_item IS DISTINCT FROM 'pg_temp' OR x.open_schemas IS NOT NULL;

    ELSIF p_check = 'secdef_executable_by_public' THEN
        RETURN QUERY
        SELECT p.oid::pg_catalog.regprocedure::text,
               pg_catalog.format('SECURITY DEFINER, owner %s, EXECUTE granted to PUBLIC', p.proowner::pg_catalog.regrole),
               pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC;', p.oid::pg_catalog.regprocedure)
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prosecdef
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
                        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE');

    ELSIF p_check = 'default_privileges_public' THEN
        RETURN QUERY
        SELECT pg_catalog.format('%s%s on %s', d.defaclrole::pg_catalog.regrole,
                                 CASE WHEN d.defaclnamespace <> 0 THEN ' in schema ' || d.defaclnamespace::pg_catalog.regnamespace ELSE '' END,
                                 k.kind),
               'future ' || k.kind || ' get ' || pg_catalog.string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) || ' for PUBLIC',
               pg_catalog.format('ALTER DEFAULT PRIVILEGES FOR ROLE %s%s REVOKE ALL ON %s FROM PUBLIC;',
                                 d.defaclrole::pg_catalog.regrole,
                                 CASE WHEN d.defaclnamespace <> 0 THEN ' IN SCHEMA ' || d.defaclnamespace::pg_catalog.regnamespace ELSE '' END,
                                 pg_catalog.upper(k.kind))
          FROM pg_catalog.pg_default_acl d
          JOIN (VALUES ('r', 'tables'), ('S', 'sequences'), ('f', 'functions'), ('T', 'types'), ('n', 'schemas'))
               AS k(code, kind) ON k.code = d.defaclobjtype::text
          CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) a
         WHERE a.grantee = 0
           -- EXECUTE on functions and USAGE on types are PUBLIC's built-in defaults; flag them only in a schema entry
           AND NOT (d.defaclnamespace = 0 AND (d.defaclobjtype::text, a.privilege_type) IN (('f', 'EXECUTE'), ('T', 'USAGE')))
         GROUP BY d.defaclrole, d.defaclnamespace, k.kind;

    ELSIF p_check = 'dangerous_extension_installed' THEN
        RETURN QUERY
        SELECT pg_catalog.quote_ident(e.extname),
               'extension ' || e.extname || ' ' || e.extversion || ' is installed',
               pg_catalog.format('DROP EXTENSION %I;', e.extname)
          FROM pg_catalog.pg_extension e
         WHERE e.extname IN ('adminpack', 'file_fdw', 'plpython3u', 'plpythonu', 'plpython2u',
                             'plperlu', 'pltclu', 'pljavau', 'plv8u', 'plshu', 'pllua_u', 'plluau')
        UNION ALL
        -- Every untrusted language, also one an extension brought that the list above does not
        -- name (plr, pljava's javau, plsh...).
        SELECT 'language ' || pg_catalog.quote_ident(l.lanname),
               'untrusted language ' || l.lanname || ' is installed' || coalesce(' (by extension ' || x.extname || ')', ''),
               CASE WHEN x.extname IS NULL THEN pg_catalog.format('DROP LANGUAGE %I;', l.lanname)
                    ELSE pg_catalog.format('DROP EXTENSION %I;', x.extname) END
          FROM pg_catalog.pg_language l
          LEFT JOIN pg_catalog.pg_depend d
                 ON d.classid = 'pg_catalog.pg_language'::pg_catalog.regclass AND d.objid = l.oid AND d.deptype = 'e'
          LEFT JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid
         WHERE l.lanispl AND NOT l.lanpltrusted
           AND (x.extname IS NULL OR x.extname NOT IN ('adminpack', 'file_fdw', 'plpython3u', 'plpythonu', 'plpython2u',
                                                      'plperlu', 'pltclu', 'pljavau', 'plv8u', 'plshu', 'pllua_u', 'plluau'));

    ---------------------------------------------------------------------------- settings
    ELSIF p_check = 'log_settings_weak' THEN
        v_text := pg_catalog.current_setting('log_line_prefix');
        v_text2 := tradeguard_audit.server_setting('log_statement');
        RETURN QUERY
        SELECT s.name, s.why, s.fix
          FROM (VALUES
                ('log_statement',
                 pg_catalog.lower(pg_catalog.btrim(v_text2)) NOT IN ('mod', 'all'),
                 'log_statement = ' || v_text2 || ': data changes are not logged',
                 tradeguard_audit.setting_fix('log_statement', 'mod')),
                ('log_connections',
                 NOT tradeguard_audit.setting_is_on(tradeguard_audit.server_setting('log_connections')),
                 'log_connections = off: logins are not logged',
                 tradeguard_audit.setting_fix('log_connections', 'on')),
                ('log_disconnections',
                 NOT tradeguard_audit.setting_is_on(tradeguard_audit.server_setting('log_disconnections')),
                 'log_disconnections = off: session ends and durations are not logged',
                 tradeguard_audit.setting_fix('log_disconnections', 'on')),
                ('log_line_prefix',
                 NOT (pg_catalog.strpos(v_text, '%u') > 0 AND (pg_catalog.strpos(v_text, '%h') > 0 OR pg_catalog.strpos(v_text, '%r') > 0)),
                 'log_line_prefix = ''' || v_text || ''' lacks the user (%u) or the client (%h / %r)',
                 'ALTER SYSTEM SET log_line_prefix = ''%m [%p] user=%u db=%d app=%a client=%h ''; SELECT pg_catalog.pg_reload_conf();')
               ) AS s(name, bad, why, fix)
         WHERE s.bad
        UNION ALL
        -- A role whose own default logs less (ALTER ROLE ... SET log_statement = 'none').
        SELECT o.object, pg_catalog.format('%s = %s for this role''s sessions', w.name, o.value), o.fix
          FROM (VALUES ('log_statement'), ('log_connections'), ('log_disconnections')) AS w(name),
               LATERAL tradeguard_audit.role_defaults(w.name) o
         WHERE CASE w.name WHEN 'log_statement' THEN pg_catalog.lower(pg_catalog.btrim(o.value)) NOT IN ('mod', 'all')
                           ELSE NOT tradeguard_audit.setting_is_on(o.value) END;

    ELSIF p_check = 'fsync_off' THEN
        IF pg_catalog.current_setting('fsync') <> 'on' THEN
            RETURN QUERY SELECT 'fsync'::text, 'fsync = off'::text,
                'ALTER SYSTEM SET fsync = on; SELECT pg_catalog.pg_reload_conf();'::text;
        END IF;

    ELSIF p_check = 'full_page_writes_off' THEN
        IF pg_catalog.current_setting('full_page_writes') <> 'on' THEN
            RETURN QUERY SELECT 'full_page_writes'::text, 'full_page_writes = off'::text,
                'ALTER SYSTEM SET full_page_writes = on; SELECT pg_catalog.pg_reload_conf();'::text;
        END IF;

    ELSIF p_check = 'statement_timeout_unset' THEN
        IF tradeguard_audit.setting_is_zero(tradeguard_audit.server_setting('statement_timeout')) THEN
            RETURN QUERY SELECT 'statement_timeout'::text, 'statement_timeout = 0 (no limit)'::text,
                pg_catalog.format('ALTER DATABASE %I SET statement_timeout = ''60s'';', pg_catalog.current_database());
        END IF;
        -- A role whose own default lifts the limit (ALTER ROLE ... SET statement_timeout = 0).
        RETURN QUERY
        SELECT o.object, pg_catalog.format('statement_timeout = %s for this role''s sessions (no limit)', o.value), o.fix
          FROM tradeguard_audit.role_defaults('statement_timeout') o
         WHERE tradeguard_audit.setting_is_zero(o.value);

    ELSIF p_check = 'idle_session_timeout' THEN
        RETURN QUERY
        SELECT s.name, s.name || ' = 0 (never)',
               tradeguard_audit.setting_fix(s.name, s.value)
          FROM (VALUES ('idle_in_transaction_session_timeout', '10min'), ('idle_session_timeout', '8h')) AS s(name, value)
         WHERE tradeguard_audit.setting_is_zero(tradeguard_audit.server_setting(s.name))
        UNION ALL
        SELECT o.object, pg_catalog.format('%s = %s for this role''s sessions (never)', w.name, o.value), o.fix
          FROM (VALUES ('idle_in_transaction_session_timeout'), ('idle_session_timeout')) AS w(name),
               LATERAL tradeguard_audit.role_defaults(w.name) o
         WHERE tradeguard_audit.setting_is_zero(o.value);

    ---------------------------------------------------------------------------- encryption
    ELSIF p_check = 'sensitive_column_plaintext' THEN
        -- (A registration whose table is gone or renamed has no relid: left out, or the NULL
        -- in the array would make every "<> ALL" below unknown and hide every finding.)
        SELECT pg_catalog.array_agg(e.relid::text || ':' || e.attname) FILTER (WHERE e.relid IS NOT NULL) INTO v_cols
          FROM tradeguard_audit.encrypted_column_list() e;
        RETURN QUERY
        SELECT t.relid::pg_catalog.regclass::text || '.' || pg_catalog.quote_ident(a.attname),
               pg_catalog.format('%s column %s', pg_catalog.format_type(a.atttypid, a.atttypmod),
                                 CASE WHEN s.relid IS NOT NULL THEN 'marked sensitive by ' || s.marked_by
                                      ELSE 'named like a secret' END),
               pg_catalog.format('SELECT tradeguard.encrypt_column(%L, %L, ''<key name>'');', t.relid::pg_catalog.regclass::text, a.attname)
          FROM tradeguard_audit.user_tables t
          JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
          LEFT JOIN tradeguard_audit.sensitive_columns s ON s.relid = t.relid AND s.attname = a.attname
         -- Columns marked sensitive whatever their type (encrypt_column converts numbers, times and
         -- jsonb too); columns named like a secret when they hold text.
         WHERE (s.relid IS NOT NULL
                OR ((ty.typcategory = 'S' OR ty.oid IN ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype))
                    AND pg_catalog.lower(a.attname) ~ '(^|_)(password|passwd|pwd|secret|token|api_?key|apikey|access_?key|private_?key|account_?(number|no|num)|acct_?(number|no|num)|card|card_?(number|no|num)|credit_?card|pan|cvv|cvc|iban|bic_?iban|ssn|tax_?id|pin)(_|$)'))
           AND (t.relid::text || ':' || a.attname) <> ALL (coalesce(v_cols, '{}'::text[]));

    ELSIF p_check = 'root_key_file_permissions' THEN
        v_text := NULLIF(pg_catalog.current_setting('tradeguard.root_key_file', true), '');
        IF v_text IS NOT NULL THEN
            v_text := tradeguard_audit.server_path(v_text);
            v_uid := tradeguard_audit.server_uid();
            SELECT * INTO v_file FROM tradeguard_audit.file_info(v_text) LIMIT 1;
            IF v_file.present AND ((v_file.mode & 63) <> 0 OR v_file.owner_uid <> v_uid) THEN
                RETURN QUERY SELECT v_text,
                    pg_catalog.format('mode %s, owner uid %s (server uid %s)',
                                      pg_catalog.lpad(tradeguard_audit.to_octal(v_file.mode), 4, '0'), v_file.owner_uid, v_uid),
                    pg_catalog.format('chown %s %s && chmod 0600 %s', v_uid, v_text, v_text);
            END IF;
        END IF;

    ---------------------------------------------------------------------------- files
    ELSIF p_check = 'data_directory_permissions' THEN
        v_text := pg_catalog.current_setting('data_directory');
        v_uid := tradeguard_audit.server_uid();
        SELECT * INTO v_file FROM tradeguard_audit.file_info(v_text) LIMIT 1;
        IF v_file.present AND (v_file.mode NOT IN (448, 488) OR v_file.owner_uid <> v_uid) THEN
            RETURN QUERY SELECT v_text,
                pg_catalog.format('mode %s, owner uid %s (server uid %s)',
                                  pg_catalog.lpad(tradeguard_audit.to_octal(v_file.mode), 4, '0'), v_file.owner_uid, v_uid),
                pg_catalog.format('chown %s %s && chmod 0700 %s', v_uid, v_text, v_text);
        END IF;

    ELSIF p_check = 'log_file_permissions' THEN
        v_int := tradeguard_audit.octal_mode(pg_catalog.current_setting('log_file_mode'));
        IF pg_catalog.current_setting('logging_collector') = 'on' AND (v_int & 31) <> 0 THEN
            RETURN QUERY SELECT 'log_file_mode'::text,
                'log_file_mode = ' || pg_catalog.current_setting('log_file_mode') || ' (more open than 0640)',
                'ALTER SYSTEM SET log_file_mode = ''0600''; SELECT pg_catalog.pg_reload_conf(); -- and chmod 0600 the existing log files'::text;
        END IF;

    ELSIF p_check = 'config_file_permissions' THEN
        v_uid := tradeguard_audit.server_uid();
        RETURN QUERY
        SELECT f.path,
               pg_catalog.format('%s: mode %s, owner uid %s', s.name,
                                 pg_catalog.lpad(tradeguard_audit.to_octal(f.mode), 4, '0'), f.owner_uid),
               pg_catalog.format('chmod go-w %s', f.path)
          FROM (VALUES ('config_file'), ('hba_file'), ('ident_file')) AS s(name),
               LATERAL tradeguard_audit.file_info(pg_catalog.current_setting(s.name)) f
         WHERE f.present AND (f.mode & 18) <> 0;

    ---------------------------------------------------------------------------- version
    ELSIF p_check IN ('server_version_outdated', 'server_version_eol') THEN
        v_int := pg_catalog.current_setting('server_version_num')::integer;
        v_major := v_int / 10000;
        v_minor := v_int % 10000;
        SELECT * INTO v_rel FROM tradeguard_audit.pg_minor_releases WHERE major = v_major;
        IF p_check = 'server_version_outdated' AND v_rel.major IS NOT NULL AND v_minor < v_rel.latest_minor THEN
            RETURN QUERY SELECT v_major::text,
                pg_catalog.format('server %s.%s, latest known %s.%s (release table of %s)',
                                  v_major, v_minor, v_major, v_rel.latest_minor, v_rel.table_date),
                pg_catalog.format('Install PostgreSQL %s.%s or later and restart the server (binaries only, no dump/restore).',
                                  v_major, v_rel.latest_minor);
        ELSIF p_check = 'server_version_eol'
              AND ((v_rel.major IS NOT NULL AND v_rel.end_of_life <= CURRENT_DATE)
                   OR (v_rel.major IS NULL AND v_major < (SELECT pg_catalog.min(major) FROM tradeguard_audit.pg_minor_releases))) THEN
            RETURN QUERY SELECT v_major::text,
                pg_catalog.format('PostgreSQL %s reached end of life%s', v_major,
                                  CASE WHEN v_rel.major IS NOT NULL THEN ' on ' || v_rel.end_of_life ELSE '' END),
                'Upgrade to a supported major version with pg_upgrade (see https://www.postgresql.org/support/versioning/).'::text;
        END IF;

    ELSIF p_check = 'release_table_stale' THEN
        SELECT pg_catalog.max(table_date) INTO v_rel FROM tradeguard_audit.pg_minor_releases;
        IF v_rel.max IS NULL OR v_rel.max < CURRENT_DATE - 120 THEN
            RETURN QUERY SELECT 'tradeguard_audit.pg_minor_releases'::text,
                'release table dated ' || coalesce(v_rel.max::text, 'never') || ', older than 120 days',
                'Upgrade tradeguard, or as superuser UPDATE tradeguard_audit.pg_minor_releases SET latest_minor = ..., table_date = CURRENT_DATE WHERE major = ...; from https://www.postgresql.org/support/versioning/'::text;
        END IF;

    ELSE
        RAISE EXCEPTION 'tradeguard: no implementation for self-audit check "%"', p_check
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.run_check(text) IS
    'tradeguard self-audit: the findings of one check as (object, detail, remediation); see docs/selfaudit-checks.md';

-- Every check of a profile; a check that raises an error is reported as check_failed instead
-- of hiding the others.
CREATE FUNCTION tradeguard_audit.check_results(p_profile text)
RETURNS TABLE(check_id text, object text, detail text, remediation text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_check text;
BEGIN
    IF p_profile IS NULL OR p_profile NOT IN ('daily', 'weekly', 'monthly', 'full') THEN
        RAISE EXCEPTION 'tradeguard: unknown audit profile "%"', p_profile
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use daily, weekly, monthly or full.';
    END IF;
    FOR v_check IN
        SELECT c.check_id FROM tradeguard_audit.check_catalog c
         WHERE p_profile = ANY (c.profiles) ORDER BY c.check_id
    LOOP
        BEGIN
            RETURN QUERY SELECT v_check, r.object, r.detail, r.remediation
                           FROM tradeguard_audit.run_check(v_check) r;
        EXCEPTION WHEN OTHERS THEN
            RETURN QUERY SELECT 'check_failed'::text, v_check, SQLERRM,
                'Read the error above; the check ' || v_check || ' did not run.';
        END;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.check_results(text) IS
    'tradeguard self-audit: raw findings of every check in a profile (daily, weekly, monthly, full), with the extension owner''s rights';

------------------------------------------------------------------------------------------------
-- What users see
------------------------------------------------------------------------------------------------

CREATE FUNCTION tradeguard.compute_findings(profile text DEFAULT 'full')
RETURNS TABLE(check_id text, level text, category text, object text, title text, detail text,
              remediation text, cache_key text, accepted boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- A check that could not run (check_failed) weighs as that check would, in its category:
    -- a result that is unknown must not raise the score.
    SELECT DISTINCT ON (tradeguard_audit.level_rank(coalesce(fc.level, c.level)), r.check_id, r.object)
           r.check_id, coalesce(fc.level, c.level), coalesce(fc.category, c.category), r.object, c.title, r.detail,
           coalesce(r.remediation, pg_catalog.replace(c.remediation_template, '{object}', r.object)),
           pg_catalog.md5(r.check_id || ':' || r.object),
           -- Accepted for the detail it was accepted with (a weaker setting, another line, a
           -- looser file mode is open again), but for the checks whose detail moves by itself
           -- (days to a certificate's expiry, counts); a broken audit chain is never accepted.
           NOT (r.check_id = 'audit_chain_broken' OR (r.check_id = 'check_failed' AND r.object = 'audit_chain_broken'))
           AND EXISTS (SELECT 1 FROM tradeguard_audit.accepted_findings a
                    WHERE a.cache_key = pg_catalog.md5(r.check_id || ':' || r.object)
                      AND a.expires > pg_catalog.now()
                      AND (r.check_id IN ('ssl_cert_expiring', 'session_without_ssl', 'audit_seal_backlog', 'table_not_audited',
                                          'sensitive_column_plaintext', 'server_version_outdated', 'server_version_eol',
                                          'release_table_stale')
                           OR a.detail IS NOT DISTINCT FROM r.detail))
      FROM tradeguard_audit.check_results($1) r
      JOIN tradeguard_audit.check_catalog c ON c.check_id = r.check_id
      LEFT JOIN tradeguard_audit.check_catalog fc ON r.check_id = 'check_failed' AND fc.check_id = r.object
     ORDER BY tradeguard_audit.level_rank(coalesce(fc.level, c.level)), r.check_id, r.object
$$;
COMMENT ON FUNCTION tradeguard.compute_findings(text) IS
    'tradeguard self-audit: runs the checks of a profile (daily, weekly, monthly, full) now and returns their findings, critical first; accepted = an unexpired tradeguard.accept_finding() covers it';

CREATE VIEW tradeguard.findings AS
SELECT f.check_id, f.level, f.category, f.object, f.title, f.detail, f.remediation, f.cache_key, f.accepted
  FROM tradeguard.compute_findings('full') f;
COMMENT ON VIEW tradeguard.findings IS
    'tradeguard self-audit: every finding of every check, computed when read (critical first); remediation is the SQL or configuration line that fixes it';

CREATE FUNCTION tradeguard.security_score()
RETURNS TABLE(category text, score integer, findings integer)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH open AS (
        SELECT f.category, f.check_id, f.level, pg_catalog.count(*) AS n
          FROM tradeguard.compute_findings('full') f
         WHERE NOT f.accepted
         GROUP BY f.category, f.check_id, f.level
    ), cats AS (
        SELECT c.category, c.ord
          FROM pg_catalog.unnest(ARRAY['hba', 'ssl', 'roles', 'privileges', 'settings', 'files',
                                       'encryption', 'audit', 'version']) WITH ORDINALITY AS c(category, ord)
    )
    SELECT x.category, x.score, x.findings
      FROM (
        SELECT c.category, c.ord,
               GREATEST(0, 100 - coalesce(pg_catalog.sum(tradeguard_audit.penalty(o.level, o.n)), 0))::integer AS score,
               coalesce(pg_catalog.sum(o.n), 0)::integer AS findings
          FROM cats c LEFT JOIN open o ON o.category = c.category
         GROUP BY c.category, c.ord
        UNION ALL
        SELECT 'total', 100,
               GREATEST(0, 100 - coalesce(pg_catalog.sum(tradeguard_audit.penalty(o.level, o.n)), 0))::integer,
               coalesce(pg_catalog.sum(o.n), 0)::integer
          FROM open o
      ) x
     ORDER BY x.ord
$$;
COMMENT ON FUNCTION tradeguard.security_score() IS
    'tradeguard self-audit: score 0-100 per category and a final "total" row, from the live findings. Formula: score = max(0, 100 - sum over checks of weight(level) * min(open findings of the check, 3)), weight critical 30, high 15, medium 5, low 2, info 0. Accepted (unexpired) findings do not count; findings = open findings.';

CREATE FUNCTION tradeguard.run_audit(profile text DEFAULT 'full') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_profile text := $1;
    v_run     bigint;
    v_score   integer;
    v_counts  jsonb;
BEGIN
    IF v_profile IS NULL OR v_profile NOT IN ('daily', 'weekly', 'monthly', 'full') THEN
        RAISE EXCEPTION 'tradeguard: unknown audit profile "%"', v_profile
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use daily, weekly, monthly or full.';
    END IF;
    INSERT INTO tradeguard_audit.audit_runs (profile, run_by, run_as)
    VALUES (v_profile, session_user, NULLIF(pg_catalog.current_setting('role'), 'none'))
    RETURNING id INTO v_run;

    INSERT INTO tradeguard_audit.audit_findings
           (run_id, check_id, level, category, object, title, detail, remediation, cache_key, accepted)
    SELECT v_run, f.check_id, f.level, f.category, f.object, f.title, f.detail, f.remediation, f.cache_key, f.accepted
      FROM tradeguard.compute_findings(v_profile) f;

    SELECT GREATEST(0, 100 - coalesce(pg_catalog.sum(tradeguard_audit.penalty(p.level, p.n)), 0))::integer
      INTO v_score
      FROM (SELECT f.level, pg_catalog.count(*) AS n FROM tradeguard_audit.audit_findings f
             WHERE f.run_id = v_run AND NOT f.accepted GROUP BY f.check_id, f.level) p;

    SELECT pg_catalog.jsonb_build_object(
               'critical', pg_catalog.count(*) FILTER (WHERE f.level = 'critical' AND NOT f.accepted),
               'high',     pg_catalog.count(*) FILTER (WHERE f.level = 'high' AND NOT f.accepted),
               'medium',   pg_catalog.count(*) FILTER (WHERE f.level = 'medium' AND NOT f.accepted),
               'low',      pg_catalog.count(*) FILTER (WHERE f.level = 'low' AND NOT f.accepted),
               'info',     pg_catalog.count(*) FILTER (WHERE f.level = 'info' AND NOT f.accepted),
               'accepted', pg_catalog.count(*) FILTER (WHERE f.accepted),
               'total',    pg_catalog.count(*))
      INTO v_counts
      FROM tradeguard_audit.audit_findings f WHERE f.run_id = v_run;

    UPDATE tradeguard_audit.audit_runs
       SET finished_at = pg_catalog.clock_timestamp(), score = v_score, counts = v_counts
     WHERE id = v_run;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION tradeguard.run_audit(text) IS
    'tradeguard self-audit: runs the checks of a profile (daily: connections, sessions, pg_hba.conf, authentication, audit trail; weekly: + roles, privileges, settings; monthly: + files, certificates, version; full: everything), stores the run and its findings, returns the run id';

CREATE FUNCTION tradeguard.audit_diff(from_run bigint, to_run bigint)
RETURNS TABLE(change text, check_id text, level text, object text, title text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_missing bigint;
BEGIN
    SELECT r INTO v_missing FROM pg_catalog.unnest(ARRAY[$1, $2]) AS r
     WHERE r IS NULL OR NOT EXISTS (SELECT 1 FROM tradeguard_audit.audit_runs a WHERE a.id = r) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'tradeguard: audit run % does not exist', coalesce(v_missing::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Run ids come from tradeguard.run_audit().';
    END IF;
    RETURN QUERY
    SELECT d.change, d.check_id, d.level, d.object, d.title
      FROM (SELECT 'new'::text AS change, t.check_id, t.level, t.object, t.title
              FROM tradeguard_audit.audit_findings t
             WHERE t.run_id = $2
               AND NOT EXISTS (SELECT 1 FROM tradeguard_audit.audit_findings f
                                WHERE f.run_id = $1 AND f.cache_key = t.cache_key)
            UNION ALL
            SELECT 'resolved', f.check_id, f.level, f.object, f.title
              FROM tradeguard_audit.audit_findings f
             WHERE f.run_id = $1
               AND NOT EXISTS (SELECT 1 FROM tradeguard_audit.audit_findings t
                                WHERE t.run_id = $2 AND t.cache_key = f.cache_key)) d
     ORDER BY d.change, tradeguard_audit.level_rank(d.level), d.check_id, d.object;
END
$fn$;
COMMENT ON FUNCTION tradeguard.audit_diff(bigint, bigint) IS
    'tradeguard self-audit: findings that appeared (new) or disappeared (resolved) between two stored runs';

CREATE FUNCTION tradeguard.accept_finding(cache_key text, reason text, expires timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_key     text := $1;
    v_reason  text := pg_catalog.btrim($2);
    v_expires timestamptz := $3;
    v_finding record;
BEGIN
    IF v_reason IS NULL OR v_reason = '' THEN
        RAISE EXCEPTION 'tradeguard: accepting a finding needs a reason'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_expires IS NULL OR v_expires <= pg_catalog.now() THEN
        RAISE EXCEPTION 'tradeguard: the acceptance must expire in the future'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give an expiry date within the next year.';
    END IF;
    IF v_expires > pg_catalog.now() + interval '1 year' THEN
        RAISE EXCEPTION 'tradeguard: an acceptance may last one year at most'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Accept again when it expires, after reviewing the risk.';
    END IF;
    SELECT f.check_id, f.object, f.detail INTO v_finding
      FROM tradeguard.compute_findings('full') f WHERE f.cache_key = v_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tradeguard: no current finding has cache_key "%"', v_key
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Take the cache_key from SELECT * FROM tradeguard.findings;';
    END IF;
    IF v_finding.check_id = 'audit_chain_broken' OR (v_finding.check_id = 'check_failed' AND v_finding.object = 'audit_chain_broken') THEN
        RAISE EXCEPTION 'tradeguard: a broken audit chain cannot be accepted'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Find out what changed (SELECT * FROM tradeguard.verify()), restore the trail or archive the damaged blocks with a recorded reason (tradeguard.archive_blocks).';
    END IF;
    INSERT INTO tradeguard_audit.accepted_findings AS a
           (cache_key, check_id, object, reason, accepted_by, accepted_as, accepted_at, expires, detail)
    VALUES (v_key, v_finding.check_id, v_finding.object, v_reason, session_user,
            NULLIF(pg_catalog.current_setting('role'), 'none'), pg_catalog.now(), v_expires, v_finding.detail)
    ON CONFLICT ON CONSTRAINT accepted_findings_pkey DO UPDATE
       SET reason = EXCLUDED.reason, accepted_by = EXCLUDED.accepted_by, accepted_as = EXCLUDED.accepted_as,
           accepted_at = EXCLUDED.accepted_at, expires = EXCLUDED.expires, detail = EXCLUDED.detail;
END
$fn$;
COMMENT ON FUNCTION tradeguard.accept_finding(text, text, timestamptz) IS
    'tradeguard self-audit (admin): accept a current finding as a known risk until expires (at most one year); it stays listed with accepted = true and stops counting against the score';

CREATE FUNCTION tradeguard.audit_report(format text DEFAULT 'text') RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_format   text := pg_catalog.lower($1);
    v_findings jsonb;
    v_score    integer;
    v_counts   jsonb;
    v_head     text;
    v_out      text;
    v_level    text;
    v_n        bigint;
    v_f        record;
BEGIN
    IF v_format IS NULL OR v_format NOT IN ('text', 'markdown', 'json') THEN
        RAISE EXCEPTION 'tradeguard: unknown report format "%"', $1
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use text, markdown or json.';
    END IF;
    -- One evaluation of the checks feeds the counts, the score and the list.
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f)), '[]'::jsonb) INTO v_findings
      FROM tradeguard.compute_findings('full') f;
    SELECT GREATEST(0, 100 - coalesce(pg_catalog.sum(tradeguard_audit.penalty(p.level, p.n)), 0))::integer
      INTO v_score
      FROM (SELECT f.level, pg_catalog.count(*) AS n
              FROM pg_catalog.jsonb_to_recordset(v_findings) AS f(check_id text, level text, accepted boolean)
             WHERE NOT f.accepted GROUP BY f.check_id, f.level) p;
    SELECT pg_catalog.jsonb_object_agg(l.level, (SELECT pg_catalog.count(*)
                 FROM pg_catalog.jsonb_to_recordset(v_findings) AS f(level text, accepted boolean)
                WHERE f.level = l.level AND NOT f.accepted) ORDER BY l.ord)
           || pg_catalog.jsonb_build_object('accepted', (SELECT pg_catalog.count(*)
                 FROM pg_catalog.jsonb_to_recordset(v_findings) AS f(accepted boolean) WHERE f.accepted))
      INTO v_counts
      FROM pg_catalog.unnest(ARRAY['critical', 'high', 'medium', 'low', 'info']) WITH ORDINALITY AS l(level, ord);

    IF v_format = 'json' THEN
        RETURN pg_catalog.jsonb_pretty(pg_catalog.jsonb_build_object(
                   'generated_at', pg_catalog.now(),
                   'database', pg_catalog.current_database(),
                   'server_version', pg_catalog.current_setting('server_version'),
                   'score', v_score,
                   'counts', v_counts,
                   'findings', v_findings));
    END IF;

    v_head := pg_catalog.format('%s open findings (critical %s, high %s, medium %s, low %s, info %s), %s accepted',
                  (v_counts->>'critical')::integer + (v_counts->>'high')::integer + (v_counts->>'medium')::integer
                    + (v_counts->>'low')::integer + (v_counts->>'info')::integer,
                  v_counts->>'critical', v_counts->>'high', v_counts->>'medium', v_counts->>'low', v_counts->>'info',
                  v_counts->>'accepted');
    IF v_format = 'markdown' THEN
        v_out := pg_catalog.format(E'# tradeguard security audit\n\n- database: `%s`\n- server: PostgreSQL %s\n- generated: %s\n- score: **%s/100**\n- %s\n',
                                   pg_catalog.current_database(), pg_catalog.current_setting('server_version'),
                                   pg_catalog.to_char(pg_catalog.now(), 'YYYY-MM-DD HH24:MI:SS OF'), v_score, v_head);
    ELSE
        v_out := pg_catalog.format(E'tradeguard security audit\ndatabase: %s\nserver: PostgreSQL %s\ngenerated: %s\nscore: %s/100\n%s\n',
                                   pg_catalog.current_database(), pg_catalog.current_setting('server_version'),
                                   pg_catalog.to_char(pg_catalog.now(), 'YYYY-MM-DD HH24:MI:SS OF'), v_score, v_head);
    END IF;

    FOREACH v_level IN ARRAY ARRAY['critical', 'high', 'medium', 'low', 'info'] LOOP
        SELECT pg_catalog.count(*) INTO v_n
          FROM pg_catalog.jsonb_to_recordset(v_findings) AS f(level text) WHERE f.level = v_level;
        CONTINUE WHEN v_n = 0;
        IF v_format = 'markdown' THEN
            v_out := v_out || pg_catalog.format(E'\n## %s (%s)\n\n', pg_catalog.initcap(v_level), v_n);
        ELSE
            v_out := v_out || pg_catalog.format(E'\n== %s (%s) ==\n', pg_catalog.upper(v_level), v_n);
        END IF;
        FOR v_f IN
            SELECT * FROM pg_catalog.jsonb_to_recordset(v_findings)
                       AS f(check_id text, level text, object text, title text, detail text, remediation text, accepted boolean)
             WHERE f.level = v_level ORDER BY f.check_id, f.object
        LOOP
            -- Object names, details and fixes carry names users chose: one line each, and in
            -- markdown the fix stays the SQL it is (a code span fenced around any backticks).
            IF v_format = 'markdown' THEN
                v_out := v_out || pg_catalog.format(E'- **%s** %s: %s%s\n  - %s\n  - fix: %s\n',
                    tradeguard_audit.md_text(v_f.check_id), tradeguard_audit.md_code(v_f.object), tradeguard_audit.md_text(v_f.title),
                    CASE WHEN v_f.accepted THEN ' *(accepted)*' ELSE '' END,
                    tradeguard_audit.md_text(v_f.detail), tradeguard_audit.md_code(v_f.remediation));
            ELSE
                v_out := v_out || pg_catalog.format(E'[%s] %s: %s%s\n    %s\n    fix: %s\n',
                    v_f.check_id, tradeguard_audit.one_line(v_f.object), tradeguard_audit.one_line(v_f.title),
                    CASE WHEN v_f.accepted THEN ' (accepted)' ELSE '' END,
                    tradeguard_audit.one_line(v_f.detail), tradeguard_audit.one_line(v_f.remediation));
            END IF;
        END LOOP;
    END LOOP;
    RETURN v_out;
END
$fn$;
COMMENT ON FUNCTION tradeguard.audit_report(text) IS
    'tradeguard self-audit: the live findings as a report (text, markdown or json), grouped by level with counts and the score';

CREATE FUNCTION tradeguard.compute_ssl_status()
RETURNS TABLE(ssl boolean, cert_file text, subject text, issuer text, not_before timestamptz, not_after timestamptz,
              days_left integer, key_type text, key_bits integer, signature_algorithm text, self_signed boolean,
              min_protocol text, max_protocol text, ciphers text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_file text := tradeguard_audit.server_path(NULLIF(pg_catalog.current_setting('ssl_cert_file'), ''));
    c_subject text; c_issuer text; c_not_before timestamptz; c_not_after timestamptz;
    c_key_type text; c_key_bits integer; c_sig text; c_self boolean;
BEGIN
    BEGIN
        SELECT ci.subject, ci.issuer, ci.not_before, ci.not_after, ci.key_type, ci.key_bits,
               ci.signature_algorithm, ci.self_signed
          INTO c_subject, c_issuer, c_not_before, c_not_after, c_key_type, c_key_bits, c_sig, c_self
          FROM tradeguard_audit.cert_info(v_file) ci LIMIT 1;
    EXCEPTION WHEN OTHERS THEN
        NULL;   -- no certificate where ssl_cert_file points (typical with ssl = off)
    END;
    RETURN QUERY SELECT
        pg_catalog.current_setting('ssl') = 'on', v_file,
        c_subject, c_issuer, c_not_before, c_not_after,
        pg_catalog.floor(EXTRACT(epoch FROM c_not_after - pg_catalog.now()) / 86400)::integer,
        c_key_type, c_key_bits, c_sig, c_self,
        pg_catalog.current_setting('ssl_min_protocol_version'),
        NULLIF(pg_catalog.current_setting('ssl_max_protocol_version'), ''),
        pg_catalog.current_setting('ssl_ciphers');
END
$fn$;
COMMENT ON FUNCTION tradeguard.compute_ssl_status() IS
    'tradeguard self-audit: TLS settings and the server certificate (read with the extension owner''s rights); backs tradeguard.ssl_status';

CREATE VIEW tradeguard.ssl_status AS
SELECT s.ssl, s.cert_file, s.subject, s.issuer, s.not_before, s.not_after, s.days_left, s.key_type, s.key_bits,
       s.signature_algorithm, s.self_signed, s.min_protocol, s.max_protocol, s.ciphers
  FROM tradeguard.compute_ssl_status() s;
COMMENT ON VIEW tradeguard.ssl_status IS
    'tradeguard self-audit: is TLS on, which certificate (subject, issuer, expiry, days left, key, signature) and which protocols and ciphers';

CREATE FUNCTION tradeguard.compute_ssl_sessions()
RETURNS TABLE(pid integer, usename name, datname name, client_addr inet, application_name text,
              backend_start timestamptz, ssl boolean, version text, cipher text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.pid, a.usename, a.datname, a.client_addr, a.application_name, a.backend_start,
           coalesce(s.ssl, false), s.version, s.cipher
      FROM pg_catalog.pg_stat_activity a
      LEFT JOIN pg_catalog.pg_stat_ssl s ON s.pid = a.pid
     WHERE a.backend_type = 'client backend'
     ORDER BY a.pid
$$;
COMMENT ON FUNCTION tradeguard.compute_ssl_sessions() IS
    'tradeguard self-audit: every client session with its TLS state, for readers without pg_read_all_stats; backs tradeguard.ssl_sessions';

CREATE VIEW tradeguard.ssl_sessions AS
SELECT s.pid, s.usename, s.datname, s.client_addr, s.application_name, s.backend_start, s.ssl, s.version, s.cipher
  FROM tradeguard.compute_ssl_sessions() s;
COMMENT ON VIEW tradeguard.ssl_sessions IS
    'tradeguard self-audit: every current client session (user, database, address, application) and whether it uses TLS, with version and cipher; client_addr is NULL for Unix-socket sessions';

CREATE FUNCTION tradeguard.compute_privileges()
RETURNS TABLE(role name, object_type text, object text, privilege text, via text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_encrypted text[];
BEGIN
    SELECT pg_catalog.array_agg(e.relid::pg_catalog.regclass::text || '.' || pg_catalog.quote_ident(e.attname) ORDER BY 1)
      INTO v_encrypted
      FROM tradeguard_audit.encrypted_column_list() e WHERE e.relid IS NOT NULL;
    RETURN QUERY
    WITH roles AS (
        SELECT r.oid, r.rolname, r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname !~ '^pg_'
    )
    -- Who can change each user table.
    SELECT r.rolname, 'table'::text, t.relid::pg_catalog.regclass::text, p.pr,
           CASE WHEN r.rolsuper THEN 'superuser'
                WHEN t.relowner = r.oid
                  OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(t.relacl) a
                              WHERE a.grantee = r.oid AND a.privilege_type = p.pr) THEN 'direct'
                ELSE 'membership' END
      FROM roles r
      CROSS JOIN tradeguard_audit.user_tables t
      CROSS JOIN pg_catalog.unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(pr)
     WHERE pg_catalog.has_table_privilege(r.oid, t.relid, p.pr)
    UNION ALL
    -- Who can decrypt, and what.
    SELECT r.rolname, 'encrypted column'::text, e.col, 'DECRYPT'::text,
           CASE WHEN r.rolsuper THEN 'superuser'
                WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                              WHERE m.member = r.oid AND m.roleid = 'tradeguard_decryptor'::pg_catalog.regrole) THEN 'direct'
                ELSE 'membership' END
      FROM roles r
      CROSS JOIN pg_catalog.unnest(coalesce(v_encrypted, ARRAY['(no column encrypted yet)'])) AS e(col)
     WHERE r.rolname <> 'tradeguard_decryptor'
       AND pg_catalog.pg_has_role(r.oid, 'tradeguard_decryptor', 'USAGE')
    UNION ALL
    -- Who holds a dangerous predefined role.
    SELECT r.rolname, 'role'::text, b.rolname::text, 'MEMBER'::text,
           CASE WHEN r.rolsuper THEN 'superuser'
                WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                              WHERE m.member = r.oid AND m.roleid = b.oid) THEN 'direct'
                ELSE 'membership' END
      FROM roles r
      CROSS JOIN pg_catalog.pg_roles b
     WHERE b.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program',
                         'pg_read_all_data', 'pg_write_all_data')
       AND pg_catalog.pg_has_role(r.oid, b.oid, 'MEMBER')
    UNION ALL
    -- Role attributes that bypass checks (never inherited).
    SELECT r.rolname, 'role attribute'::text, a.attr, a.attr, 'direct'::text
      FROM pg_catalog.pg_roles r
      CROSS JOIN LATERAL (VALUES ('SUPERUSER', r.rolsuper), ('CREATEROLE', r.rolcreaterole),
                                 ('BYPASSRLS', r.rolbypassrls)) AS a(attr, held)
     WHERE a.held AND r.rolname !~ '^pg_'
    ORDER BY 1, 2, 3, 4;
END
$fn$;
COMMENT ON FUNCTION tradeguard.compute_privileges() IS
    'tradeguard self-audit: effective privileges through role membership (table writes, decryption, dangerous predefined roles, attributes); backs tradeguard.privileges';

CREATE VIEW tradeguard.privileges AS
SELECT p.role, p.object_type, p.object, p.privilege, p.via
  FROM tradeguard.compute_privileges() p;
COMMENT ON VIEW tradeguard.privileges IS
    'tradeguard self-audit: who can INSERT/UPDATE/DELETE/TRUNCATE each user table, who can decrypt which column, who holds pg_read_server_files & co, SUPERUSER, CREATEROLE or BYPASSRLS; via = direct, membership or superuser';

CREATE FUNCTION tradeguard.role_profile(role name, profile text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_oid oid;
BEGIN
    SELECT r.oid INTO v_oid FROM pg_catalog.pg_roles r WHERE r.rolname = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tradeguard: role "%" does not exist', $1
            USING ERRCODE = 'undefined_object';
    END IF;
    IF $2 = 'none' THEN
        DELETE FROM tradeguard_audit.role_profiles p WHERE p.role_oid = v_oid;
        RETURN;
    END IF;
    IF $2 IS NULL OR $2 NOT IN ('readonly', 'application', 'admin') THEN
        RAISE EXCEPTION 'tradeguard: unknown role profile "%"', $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use readonly, application or admin (none removes the declaration).';
    END IF;
    INSERT INTO tradeguard_audit.role_profiles AS p (role_oid, profile, declared_by, declared_at)
    VALUES (v_oid, $2, session_user, pg_catalog.now())
    ON CONFLICT ON CONSTRAINT role_profiles_pkey DO UPDATE
       SET profile = EXCLUDED.profile, declared_by = EXCLUDED.declared_by, declared_at = EXCLUDED.declared_at;
END
$fn$;
COMMENT ON FUNCTION tradeguard.role_profile(name, text) IS
    'tradeguard self-audit (admin): declare what a role is for (readonly, application, admin; none removes it); readonly_role_can_write, role_without_password_expiry and role_createrole_non_admin use it';

CREATE FUNCTION tradeguard.mark_sensitive(tbl regclass, col name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'tradeguard: column "%" of % does not exist', $2, $1
            USING ERRCODE = 'undefined_column';
    END IF;
    INSERT INTO tradeguard_audit.sensitive_columns (relid, attname, marked_by)
    VALUES ($1, $2, session_user)
    ON CONFLICT (relid, attname) DO NOTHING;
END
$fn$;
COMMENT ON FUNCTION tradeguard.mark_sensitive(regclass, name) IS
    'tradeguard self-audit (admin): declare a column sensitive; sensitive_column_plaintext reports it until tradeguard.encrypt_column() converts it';

------------------------------------------------------------------------------------------------
-- Privileges: readers get the reading functions and views, the admin the writing ones.
------------------------------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA tradeguard_audit FROM PUBLIC;
REVOKE ALL ON FUNCTION
    tradeguard_audit.level_rank(text), tradeguard_audit.penalty(text, bigint), tradeguard_audit.octal_mode(text),
    tradeguard_audit.to_octal(integer), tradeguard_audit.server_path(text), tradeguard_audit.run_check(text),
    tradeguard_audit.all_roles_default(text), tradeguard_audit.server_setting(text), tradeguard_audit.setting_fix(text, text),
    tradeguard_audit.role_defaults(text), tradeguard_audit.setting_defaults(text),
    tradeguard_audit.setting_is_on(text),
    tradeguard_audit.setting_is_zero(text),
    tradeguard_audit.encrypted_column_list(),
    tradeguard_audit.check_results(text),
    tradeguard.compute_findings(text), tradeguard.security_score(), tradeguard.run_audit(text),
    tradeguard.audit_diff(bigint, bigint), tradeguard.accept_finding(text, text, timestamptz),
    tradeguard.audit_report(text), tradeguard.compute_ssl_status(), tradeguard.compute_ssl_sessions(),
    tradeguard.compute_privileges(), tradeguard.role_profile(name, text), tradeguard.mark_sensitive(regclass, name)
  FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    tradeguard.compute_findings(text), tradeguard.security_score(), tradeguard.audit_diff(bigint, bigint),
    tradeguard.audit_report(text), tradeguard.compute_ssl_status(), tradeguard.compute_ssl_sessions(),
    tradeguard.compute_privileges()
  TO tradeguard_auditor;
GRANT EXECUTE ON FUNCTION
    tradeguard.run_audit(text), tradeguard.accept_finding(text, text, timestamptz),
    tradeguard.role_profile(name, text), tradeguard.mark_sensitive(regclass, name)
  TO tradeguard_admin;
GRANT SELECT ON tradeguard.findings, tradeguard.ssl_status, tradeguard.ssl_sessions, tradeguard.privileges
  TO tradeguard_auditor;
