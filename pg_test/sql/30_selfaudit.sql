-- Self-audit: every check finds a weak state and goes quiet once its remediation is applied;
-- then runs, diffs, acceptance, score and report. Objects of this file are named sa_*; other test
-- files may leave objects behind, so every query filters on check ids and sa_* objects.
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- Findings of the checks named in the query, as (check_id, object); helper for this file only.
CREATE FUNCTION pg_temp.sa_findings(ids text[])
RETURNS TABLE(check_id text, level text, object text, accepted boolean)
LANGUAGE sql AS $$
    SELECT f.check_id, f.level, f.object, f.accepted FROM tradeguard.findings f
     WHERE f.check_id = ANY (ids) ORDER BY 1, 3
$$;

-- The documented catalog of checks (a stable interface): id, level, category, first profile.
SELECT check_id, level, category,
       CASE WHEN 'daily' = ANY (profiles) THEN 'daily' WHEN 'weekly' = ANY (profiles) THEN 'weekly'
            WHEN 'monthly' = ANY (profiles) THEN 'monthly' WHEN 'full' = ANY (profiles) THEN 'full'
            ELSE 'on error' END AS from_profile
  FROM tradeguard_audit.check_catalog
 ORDER BY array_position(ARRAY['critical', 'high', 'medium', 'low', 'info'], level), check_id;

-- Every check ran: none raised an error (the Rust helpers answered).
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'check_failed';

------------------------------------------------------------------------------------------------
-- The regress cluster itself is weak: local trust lines, TLS off, default ciphers and logging.
------------------------------------------------------------------------------------------------
SELECT check_id, level, regexp_replace(detail, '^line [0-9]+: ', '') AS hba_line
  FROM tradeguard.findings WHERE check_id = 'hba_trust' ORDER BY 3;
SELECT check_id, level, object, detail FROM tradeguard.findings
 WHERE check_id IN ('ssl_disabled', 'ssl_weak_ciphers') ORDER BY 1;
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'log_settings_weak' ORDER BY 1;
-- ... and strong where initdb and the test script made it so (host lines reject, no TCP
-- listener, 0700 data directory, 0600 files, tradeguard preloaded, TLSv1.2 minimum).
SELECT c.check_id, count(f.check_id) AS findings
  FROM unnest(ARRAY['hba_weak_password_method', 'hba_host_without_ssl', 'hba_open_to_world', 'pg_hba_errors',
                    'listen_all_addresses', 'session_without_ssl', 'ssl_weak_protocol', 'ssl_cert_expiring',
                    'ssl_key_file_permissions', 'data_directory_permissions', 'config_file_permissions',
                    'log_file_permissions', 'root_key_file_permissions', 'shared_preload_missing_tradeguard',
                    'fsync_off', 'full_page_writes_off', 'password_encryption_md5', 'audit_chain_broken', 'audit_seal_backlog',
                    'server_version_eol']) AS c(check_id)
  LEFT JOIN tradeguard.findings f ON f.check_id = c.check_id
 GROUP BY c.check_id ORDER BY 1;
-- The remediation of an hba finding is the replacement configuration line.
SELECT regexp_replace(remediation, 'line [0-9]+', 'line N') AS remediation
  FROM tradeguard.findings WHERE check_id = 'hba_trust' ORDER BY 1;

------------------------------------------------------------------------------------------------
-- TLS status and sessions
------------------------------------------------------------------------------------------------
SELECT ssl, subject IS NULL AS no_certificate, min_protocol, ciphers IS NOT NULL AS has_ciphers
  FROM tradeguard.ssl_status;
-- This session arrives over the Unix socket: no client address, no TLS, and no finding for it.
SELECT usename, datname, client_addr, ssl, version FROM tradeguard.ssl_sessions WHERE pid = pg_backend_pid();

------------------------------------------------------------------------------------------------
-- Settings a session can change (postgresql.conf-only settings are covered on the demo cluster).
-- The findings follow what new sessions of this database get (its defaults, then the
-- configuration files), not what the session reading them has SET: a SET neither hides nor
-- raises one.
------------------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.sa_db_set(name text, value text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NULL THEN
        EXECUTE format('ALTER DATABASE %I RESET %s', current_database(), name);
    ELSE
        EXECUTE format('ALTER DATABASE %I SET %s = %L', current_database(), name, value);
    END IF;
END $$;
SET password_encryption = 'md5';
SELECT * FROM pg_temp.sa_findings('{password_encryption_md5}');
RESET password_encryption;
SELECT pg_temp.sa_db_set('password_encryption', 'md5');
SELECT * FROM pg_temp.sa_findings('{password_encryption_md5}');
-- (this database's default is where the value comes from, so that is what to change)
SELECT replace(remediation, current_database(), '<db>') AS remediation
  FROM tradeguard.findings WHERE check_id = 'password_encryption_md5';
SELECT pg_temp.sa_db_set('password_encryption', NULL);
SELECT * FROM pg_temp.sa_findings('{password_encryption_md5}');
-- The same from the default for all databases (ALTER ROLE ALL SET; in a transaction rolled
-- back, so that it cannot outlive this file).
BEGIN;
ALTER ROLE ALL SET password_encryption = 'md5';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'password_encryption_md5';
ROLLBACK;
SELECT * FROM pg_temp.sa_findings('{password_encryption_md5}');
-- A role's own default that weakens a setting is a finding of its own (rolled back).
BEGIN;
CREATE ROLE sa_quiet;
ALTER ROLE sa_quiet SET log_statement = 'none';
DO $$ BEGIN EXECUTE format('ALTER ROLE sa_quiet IN DATABASE %I SET password_encryption = %L', current_database(), 'md5'); END $$;
ALTER ROLE sa_quiet SET statement_timeout = 0;
ALTER ROLE sa_quiet SET idle_in_transaction_session_timeout = '0s';
ALTER ROLE sa_quiet SET idle_session_timeout = '8h';
SELECT check_id, object, detail, replace(remediation, current_database(), '<db>') AS remediation
  FROM tradeguard.findings
 WHERE check_id IN ('password_encryption_md5', 'log_settings_weak', 'statement_timeout_unset', 'idle_session_timeout')
   AND object LIKE '%sa_quiet%' ORDER BY 1, 2;
ROLLBACK;
-- How values written in a configuration file or the catalog are read.
SELECT v, tradeguard_audit.setting_is_zero(v) AS is_zero
  FROM unnest('{0,0ms,0s,-0,0x0,100us,0.4ms,0.6ms,1,60s,10min,abc}'::text[]) v;
SELECT v, tradeguard_audit.setting_is_on(v) AS is_on
  FROM unnest('{on,off,true,false,yes,no,1,0,t,f,of,ON}'::text[]) v;

SET log_statement = 'mod';
SELECT object FROM tradeguard.findings WHERE check_id = 'log_settings_weak' ORDER BY 1;
RESET log_statement;
SELECT pg_temp.sa_db_set('log_statement', 'mod');
SELECT object FROM tradeguard.findings WHERE check_id = 'log_settings_weak' ORDER BY 1;
SELECT pg_temp.sa_db_set('log_statement', NULL);

SELECT * FROM pg_temp.sa_findings('{statement_timeout_unset,idle_session_timeout}');
SET statement_timeout = '60s';
SELECT * FROM pg_temp.sa_findings('{statement_timeout_unset}');
RESET statement_timeout;
SELECT pg_temp.sa_db_set('statement_timeout', '60s');
SELECT pg_temp.sa_db_set('idle_in_transaction_session_timeout', '10min');
SELECT pg_temp.sa_db_set('idle_session_timeout', '8h');
SELECT * FROM pg_temp.sa_findings('{statement_timeout_unset,idle_session_timeout}');
SELECT pg_temp.sa_db_set('statement_timeout', NULL);
SELECT pg_temp.sa_db_set('idle_in_transaction_session_timeout', NULL);
SELECT pg_temp.sa_db_set('idle_session_timeout', NULL);
SELECT * FROM pg_temp.sa_findings('{statement_timeout_unset}');

------------------------------------------------------------------------------------------------
-- Roles: each weak state, its finding, its remediation run as written, the finding gone
------------------------------------------------------------------------------------------------
SET password_encryption = 'md5';
CREATE ROLE sa_md5 LOGIN PASSWORD 'not-a-real-password' CONNECTION LIMIT 1;
RESET password_encryption;
SELECT * FROM pg_temp.sa_findings('{role_md5_password}') WHERE object LIKE 'sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'role_md5_password' AND object = 'sa_md5' \gexec
SELECT * FROM pg_temp.sa_findings('{role_md5_password}') WHERE object LIKE 'sa\_%';

CREATE ROLE sa_super LOGIN SUPERUSER CONNECTION LIMIT 1;
SELECT * FROM pg_temp.sa_findings('{superuser_login_role}') WHERE object LIKE 'sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'superuser_login_role' AND object = 'sa_super';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'superuser_login_role' AND object = 'sa_super' \gexec
SELECT * FROM pg_temp.sa_findings('{superuser_login_role}') WHERE object LIKE 'sa\_%';
-- A login role that is a member of a superuser role is one too (SET ROLE), INHERIT or not.
CREATE ROLE sa_su_group SUPERUSER NOLOGIN;
CREATE ROLE sa_member LOGIN NOINHERIT CONNECTION LIMIT 1 IN ROLE sa_su_group;
SELECT object, detail, remediation FROM tradeguard.findings WHERE check_id = 'superuser_login_role' AND object LIKE 'sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'superuser_login_role' AND object = 'sa_member' \gexec
SELECT * FROM pg_temp.sa_findings('{superuser_login_role}') WHERE object LIKE 'sa\_%';
DROP ROLE sa_member, sa_su_group;
-- The network of a pg_hba.conf line, from its address and mask: 127.0.0.1 with mask 128.0.0.0
-- is not loopback.
SELECT a, m, tradeguard_audit.hba_network(a, m)
  FROM (VALUES ('127.0.0.1', '255.0.0.0'), ('127.0.0.1', '128.0.0.0'), ('::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
               ('::1', 'ff00::'), ('10.1.2.3', '255.255.0.0'), ('10.0.0.0', '255.0.255.0'), ('localhost', NULL),
               ('all', NULL), ('0.0.0.0', '0.0.0.0')) AS t(a, m);

CREATE ROLE sa_rls BYPASSRLS;
SELECT * FROM pg_temp.sa_findings('{role_bypassrls}') WHERE object LIKE 'sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'role_bypassrls' AND object = 'sa_rls' \gexec
SELECT * FROM pg_temp.sa_findings('{role_bypassrls}') WHERE object LIKE 'sa\_%';

-- CREATEROLE is fine for a role declared admin, a finding otherwise.
CREATE ROLE sa_creator CREATEROLE;
SELECT * FROM pg_temp.sa_findings('{role_createrole_non_admin}') WHERE object LIKE 'sa\_%';
SELECT tradeguard.role_profile('sa_creator', 'admin');
SELECT * FROM pg_temp.sa_findings('{role_createrole_non_admin}') WHERE object LIKE 'sa\_%';
SELECT tradeguard.role_profile('sa_creator', 'none');
SELECT remediation FROM tradeguard.findings WHERE check_id = 'role_createrole_non_admin' AND object = 'sa_creator' \gexec
SELECT * FROM pg_temp.sa_findings('{role_createrole_non_admin}') WHERE object LIKE 'sa\_%';

CREATE ROLE sa_files;
GRANT pg_read_server_files, pg_execute_server_program TO sa_files;
SELECT * FROM pg_temp.sa_findings('{role_dangerous_builtin_membership}') WHERE object LIKE 'sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'role_dangerous_builtin_membership' AND object LIKE 'sa\_files %' ORDER BY object \gexec
SELECT * FROM pg_temp.sa_findings('{role_dangerous_builtin_membership}') WHERE object LIKE 'sa\_%';

-- An application role: unlimited connections (info) and a password that never expires.
CREATE ROLE sa_app LOGIN;
SELECT * FROM pg_temp.sa_findings('{connection_limit_unset,role_without_password_expiry}') WHERE object LIKE 'sa\_%';
SELECT tradeguard.role_profile('sa_app', 'application');
SELECT * FROM pg_temp.sa_findings('{connection_limit_unset,role_without_password_expiry}') WHERE object LIKE 'sa\_%';
SELECT remediation FROM tradeguard.findings
 WHERE check_id IN ('connection_limit_unset', 'role_without_password_expiry') AND object = 'sa_app' ORDER BY check_id \gexec
SELECT * FROM pg_temp.sa_findings('{connection_limit_unset,role_without_password_expiry}') WHERE object LIKE 'sa\_%';
SELECT rolconnlimit, rolvaliduntil > now() AS expires_in_future FROM pg_roles WHERE rolname = 'sa_app';

-- role_profile refuses what it does not know.
SELECT tradeguard.role_profile('sa_app', 'superhero');
SELECT tradeguard.role_profile('sa_nobody', 'readonly');

------------------------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------------------------
GRANT CREATE ON SCHEMA public TO PUBLIC;
SELECT * FROM pg_temp.sa_findings('{public_schema_create}') WHERE object = 'public';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'public_schema_create' AND object = 'public' \gexec
SELECT * FROM pg_temp.sa_findings('{public_schema_create}') WHERE object = 'public';

CREATE TABLE public.sa_trades (id bigint PRIMARY KEY, symbol text NOT NULL, qty integer NOT NULL);
CREATE TABLE public.sa_positions (id bigint PRIMARY KEY, symbol text NOT NULL);
GRANT INSERT, DELETE ON public.sa_trades TO PUBLIC;
SELECT * FROM pg_temp.sa_findings('{table_writable_by_public}') WHERE object LIKE 'public.sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'table_writable_by_public' AND object = 'public.sa_trades' \gexec
SELECT * FROM pg_temp.sa_findings('{table_writable_by_public}') WHERE object LIKE 'public.sa\_%';
-- A grant on a column is a write too.
GRANT UPDATE (qty) ON public.sa_trades TO PUBLIC;
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'table_writable_by_public' AND object LIKE 'public.sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'table_writable_by_public' AND object = 'public.sa_trades' \gexec
SELECT * FROM pg_temp.sa_findings('{table_writable_by_public}') WHERE object LIKE 'public.sa\_%';

-- A role declared readonly that can write (granted) and owns a table.
CREATE ROLE sa_reader;
SELECT tradeguard.role_profile('sa_reader', 'readonly');
GRANT SELECT, INSERT, UPDATE ON public.sa_trades TO sa_reader;
ALTER TABLE public.sa_positions OWNER TO sa_reader;
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 'sa_reader';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 'sa_reader';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 'sa_reader' \gexec
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 'sa_reader';
ALTER TABLE public.sa_positions OWNER TO CURRENT_USER;
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 'sa_reader';
-- Also through a column grant, or a role it may SET ROLE to without inheriting it (NOINHERIT).
CREATE ROLE sa_writer;
GRANT INSERT ON public.sa_positions TO sa_writer;
GRANT UPDATE (qty) ON public.sa_trades TO sa_writer;
ALTER ROLE sa_reader NOINHERIT;
GRANT sa_writer TO sa_reader;
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 'sa_reader';
REVOKE sa_writer FROM sa_reader;
ALTER ROLE sa_reader INHERIT;
DROP OWNED BY sa_writer;
DROP ROLE sa_writer;
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 'sa_reader';

-- Effective privileges, with how they are held.
GRANT UPDATE ON public.sa_trades TO sa_files;
GRANT sa_files TO sa_app;
SELECT role, object_type, object, privilege, via FROM tradeguard.privileges
 WHERE object = 'public.sa_trades' AND (role LIKE 'sa\_%' OR role = current_user) ORDER BY 1, 4;
GRANT tradeguard_decryptor TO sa_reader;
SELECT role, object_type, privilege, via FROM tradeguard.privileges
 WHERE role = 'sa_reader' AND object_type <> 'table' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2;
GRANT pg_write_server_files TO sa_files;
SELECT role, object_type, object, privilege, via FROM tradeguard.privileges
 WHERE role IN ('sa_files', 'sa_app') AND object_type = 'role' ORDER BY 1, 3;
REVOKE pg_write_server_files FROM sa_files;
REVOKE tradeguard_decryptor FROM sa_reader;

-- SECURITY DEFINER functions: without a pinned search_path, and executable by PUBLIC.
CREATE FUNCTION public.sa_definer() RETURNS integer LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
SELECT * FROM pg_temp.sa_findings('{secdef_without_search_path,secdef_executable_by_public}')
 WHERE object LIKE 'public.sa\_%';
SELECT remediation FROM tradeguard.findings
 WHERE check_id IN ('secdef_without_search_path', 'secdef_executable_by_public') AND object = 'public.sa_definer()' ORDER BY 1;
SELECT remediation FROM tradeguard.findings
 WHERE check_id IN ('secdef_without_search_path', 'secdef_executable_by_public') AND object = 'public.sa_definer()' ORDER BY check_id \gexec
SELECT * FROM pg_temp.sa_findings('{secdef_without_search_path,secdef_executable_by_public}')
 WHERE object LIKE 'public.sa\_%';
-- A search_path of its own is not enough: pg_temp must come last (or the caller's temporary
-- tables and types come first), and no schema on it may be open to anyone's CREATE.
CREATE SCHEMA sa_open;
GRANT CREATE ON SCHEMA sa_open TO PUBLIC;
CREATE FUNCTION public.sa_definer_path() RETURNS integer LANGUAGE sql SECURITY DEFINER SET search_path = public AS 'SELECT 1';
CREATE FUNCTION public.sa_definer_open() RETURNS integer LANGUAGE sql SECURITY DEFINER SET search_path = sa_open, pg_temp AS 'SELECT 1';
CREATE FUNCTION public.sa_definer_ok() RETURNS integer LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, "pg_temp" AS 'SELECT 1';
SELECT object, detail FROM tradeguard.findings
 WHERE check_id = 'secdef_without_search_path' AND object LIKE 'public.sa\_definer\_%' ORDER BY 1;
DROP FUNCTION public.sa_definer_path(), public.sa_definer_open(), public.sa_definer_ok();
DROP SCHEMA sa_open;

-- Default privileges that hand future tables to PUBLIC.
ALTER DEFAULT PRIVILEGES FOR ROLE sa_reader IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO PUBLIC;
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'default_privileges_public' AND object LIKE 'sa\_%';
SELECT remediation FROM tradeguard.findings WHERE check_id = 'default_privileges_public' AND object LIKE 'sa\_%' \gexec
SELECT object, detail FROM tradeguard.findings WHERE check_id = 'default_privileges_public' AND object LIKE 'sa\_%';

-- Extensions and languages that reach the server's files or shell.
CREATE EXTENSION file_fdw;
CREATE LANGUAGE sa_untrusted HANDLER plpgsql_call_handler;
SELECT * FROM pg_temp.sa_findings('{dangerous_extension_installed}')
 WHERE object IN ('file_fdw', 'language sa_untrusted');
SELECT remediation FROM tradeguard.findings
 WHERE check_id = 'dangerous_extension_installed' AND object IN ('file_fdw', 'language sa_untrusted') ORDER BY object \gexec
SELECT * FROM pg_temp.sa_findings('{dangerous_extension_installed}')
 WHERE object IN ('file_fdw', 'language sa_untrusted');

------------------------------------------------------------------------------------------------
-- Encryption and audit (the encryption and audit capabilities own the fixes; tested there)
------------------------------------------------------------------------------------------------
CREATE TABLE public.sa_clients (id bigint PRIMARY KEY, api_key text, iban varchar(34), note text,
                                nickname text, token_count integer);
SELECT tradeguard.mark_sensitive('public.sa_clients', 'note');
SELECT tradeguard.mark_sensitive('public.sa_clients', 'no_such_column');
SELECT object, detail FROM tradeguard.findings
 WHERE check_id = 'sensitive_column_plaintext' AND object LIKE 'public.sa\_%' ORDER BY 1;
SELECT remediation FROM tradeguard.findings
 WHERE check_id = 'sensitive_column_plaintext' AND object = 'public.sa_clients.api_key';
-- Once a column no longer holds text (tradeguard.encrypt_column converts it), the finding goes.
ALTER TABLE public.sa_clients ALTER COLUMN api_key TYPE bytea USING convert_to(api_key, 'UTF8');
SELECT object FROM tradeguard.findings
 WHERE check_id = 'sensitive_column_plaintext' AND object LIKE 'public.sa\_%' ORDER BY 1;

-- table_not_audited reports a trading table exactly when the audit capability is installed;
-- its remediation puts the table under audit.
SELECT (count(*) = 1) = (to_regclass('tradeguard_audit.audited_tables') IS NOT NULL) AS consistent
  FROM tradeguard.findings WHERE check_id = 'table_not_audited' AND object = 'public.sa_trades';
DO $$
DECLARE fix text;
BEGIN
    SELECT remediation INTO fix FROM tradeguard.findings
     WHERE check_id = 'table_not_audited' AND object = 'public.sa_trades';
    IF fix IS NOT NULL AND to_regproc('tradeguard.audit_table') IS NOT NULL THEN
        EXECUTE fix;
    END IF;
END $$;
SELECT count(*) = 0 OR to_regproc('tradeguard.audit_table') IS NULL AS audited_or_no_audit_capability
  FROM tradeguard.findings WHERE check_id = 'table_not_audited' AND object = 'public.sa_trades';
-- The audit chain verifies (or the audit capability is absent).
SELECT count(*) AS chain_breaks FROM tradeguard.findings WHERE check_id = 'audit_chain_broken';

------------------------------------------------------------------------------------------------
-- Version: the shipped release table decides (changes rolled back)
------------------------------------------------------------------------------------------------
BEGIN;
UPDATE tradeguard_audit.pg_minor_releases SET latest_minor = 999
 WHERE major = current_setting('server_version_num')::integer / 10000;
SELECT check_id, level, object = (current_setting('server_version_num')::integer / 10000)::text AS is_this_major
  FROM tradeguard.findings WHERE check_id = 'server_version_outdated';
UPDATE tradeguard_audit.pg_minor_releases SET latest_minor = 0, end_of_life = current_date - 1
 WHERE major = current_setting('server_version_num')::integer / 10000;
SELECT check_id, level FROM tradeguard.findings WHERE check_id LIKE 'server\_version\_%' ORDER BY 1;
UPDATE tradeguard_audit.pg_minor_releases SET table_date = current_date - 200;
SELECT check_id, level, object FROM tradeguard.findings WHERE check_id = 'release_table_stale';
UPDATE tradeguard_audit.pg_minor_releases SET table_date = current_date;
SELECT count(*) AS stale FROM tradeguard.findings WHERE check_id = 'release_table_stale';
ROLLBACK;

------------------------------------------------------------------------------------------------
-- Who may do what
------------------------------------------------------------------------------------------------
CREATE ROLE sa_analyst;
GRANT tradeguard_auditor TO sa_analyst;
CREATE ROLE sa_admin;
GRANT tradeguard_admin TO sa_admin;
SET ROLE sa_analyst;
-- The analyst cannot read pg_hba_file_rules, yet sees what the checks found there.
SELECT count(*) FROM pg_hba_file_rules;
SELECT count(*) > 0 AS sees_hba_findings FROM tradeguard.findings WHERE check_id = 'hba_trust';
SELECT count(*) > 0 AS sees_sessions FROM tradeguard.ssl_sessions;
SELECT count(*) > 0 AS sees_privileges FROM tradeguard.privileges;
SELECT count(*) FROM tradeguard_audit.audit_runs;
SELECT tradeguard.run_audit('daily');
SELECT tradeguard.role_profile('sa_app', 'readonly');
RESET ROLE;

------------------------------------------------------------------------------------------------
-- Runs, diff, acceptance, score and report (shape, not values that depend on the machine)
------------------------------------------------------------------------------------------------
SET ROLE sa_admin;
SELECT tradeguard.run_audit('hourly');
SELECT tradeguard.run_audit('weekly') AS run_before \gset
RESET ROLE;
CREATE ROLE sa_breakglass LOGIN SUPERUSER CONNECTION LIMIT 1;
CREATE ROLE sa_cashier LOGIN;
SET ROLE sa_admin;
SELECT tradeguard.run_audit('weekly') AS run_after \gset
RESET ROLE;
SELECT profile, run_by, run_as, score BETWEEN 0 AND 100 AS score_ok,
       counts ?& ARRAY['critical', 'high', 'medium', 'low', 'info', 'accepted', 'total'] AS counts_ok,
       finished_at >= started_at AS timed
  FROM tradeguard_audit.audit_runs WHERE id = :run_after;
SELECT * FROM tradeguard.audit_diff(:run_before, :run_after) WHERE object LIKE 'sa\_%';
SELECT * FROM tradeguard.audit_diff(:run_after, :run_before) WHERE object LIKE 'sa\_%';
SELECT * FROM tradeguard.audit_diff(:run_after, -1);

-- Accept the break-glass superuser for a while: it stays listed, marked accepted.
SELECT cache_key AS breakglass_key FROM tradeguard.findings
 WHERE check_id = 'superuser_login_role' AND object = 'sa_breakglass' \gset
SELECT :'breakglass_key' = md5('superuser_login_role:sa_breakglass') AS key_is_stable;
SELECT score AS roles_before FROM tradeguard.security_score() WHERE category = 'roles' \gset
SET ROLE sa_analyst;
SELECT tradeguard.accept_finding(:'breakglass_key', 'break-glass account, sealed envelope', now() + interval '30 days');
SET ROLE sa_admin;
SELECT tradeguard.accept_finding(:'breakglass_key', 'too late', now() - interval '1 day');
SELECT tradeguard.accept_finding(:'breakglass_key', 'too long', now() + interval '2 years');
SELECT tradeguard.accept_finding(:'breakglass_key', '   ', now() + interval '30 days');
SELECT tradeguard.accept_finding(md5('no_such_check:nothing'), 'unknown', now() + interval '30 days');
SELECT tradeguard.accept_finding(:'breakglass_key', 'break-glass account, sealed envelope', now() + interval '30 days');
RESET ROLE;
SELECT check_id, object, accepted FROM tradeguard.findings WHERE cache_key = :'breakglass_key';
SELECT check_id, object, reason, accepted_by, accepted_as, expires > now() AS active
  FROM tradeguard_audit.accepted_findings WHERE cache_key = :'breakglass_key';
SELECT score > :roles_before AS accepted_finding_no_longer_counts
  FROM tradeguard.security_score() WHERE category = 'roles';

-- The score: one row per category, then the total, each 0-100.
SELECT category, score BETWEEN 0 AND 100 AS in_range, findings >= 0 AS counted FROM tradeguard.security_score();
SELECT obj_description('tradeguard.security_score()'::regprocedure) LIKE '%critical 30, high 15, medium 5, low 2, info 0%' AS formula_documented;

-- Reports: text and markdown grouped by level, json with counts and findings.
SELECT split_part(tradeguard.audit_report(), E'\n', 1) AS text_title,
       tradeguard.audit_report('text') ~ E'\n== CRITICAL \\([0-9]+\\) ==\n' AS text_grouped,
       tradeguard.audit_report('text') LIKE '%[superuser_login_role] sa_breakglass: login role with superuser (accepted)%' AS text_marks_accepted;
SELECT split_part(tradeguard.audit_report('markdown'), E'\n', 1) AS markdown_title,
       tradeguard.audit_report('markdown') ~ E'\n## Critical \\([0-9]+\\)\n' AS markdown_grouped;
SELECT jsonb_typeof(r -> 'findings') AS findings, (r -> 'counts') ?& ARRAY['critical', 'high', 'medium', 'low', 'info', 'accepted'] AS counts,
       (r ->> 'score')::integer BETWEEN 0 AND 100 AS score
  FROM (SELECT tradeguard.audit_report('json')::jsonb AS r) s;
SELECT tradeguard.audit_report('pdf');

-- Fix, run again: the diff shows what was resolved.
ALTER ROLE sa_breakglass NOSUPERUSER;
SET ROLE sa_admin;
SELECT tradeguard.run_audit('weekly') AS run_fixed \gset
RESET ROLE;
SELECT * FROM tradeguard.audit_diff(:run_after, :run_fixed) WHERE object LIKE 'sa\_%';

------------------------------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------------------------------
SELECT tradeguard.role_profile(r, 'none') FROM unnest(ARRAY['sa_app', 'sa_reader']) AS r;
DELETE FROM tradeguard_audit.sensitive_columns WHERE relid = 'public.sa_clients'::regclass;
DELETE FROM tradeguard_audit.accepted_findings WHERE object LIKE 'sa\_%';
DROP TABLE public.sa_trades, public.sa_positions, public.sa_clients;
DROP FUNCTION public.sa_definer();
REVOKE tradeguard_admin FROM sa_admin;
REVOKE tradeguard_auditor FROM sa_analyst;
DROP ROLE sa_md5, sa_super, sa_rls, sa_creator, sa_app, sa_files, sa_reader, sa_analyst, sa_admin,
          sa_breakglass, sa_cashier;
