-- Security: blocks, failed logins, source risk and auto-blocks, alerts, security status,
-- incident response, and what the analyst may not do. Objects of this file are named sec_*;
-- addresses come from the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)
-- so that nothing else in the regress database (Unix-socket sessions only) collides with them.
-- Nothing printed depends on time, ids or pids.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET client_min_messages = error;

-- The stable interface: functions, their arguments and who may call them.
SELECT p.oid::regprocedure AS function,
       has_function_privilege('tradeguard_auditor', p.oid, 'EXECUTE') AS auditor,
       has_function_privilege('tradeguard_admin', p.oid, 'EXECUTE') AS admin,
       p.prosecdef AS security_definer
  FROM pg_proc p
 WHERE p.pronamespace = 'tradeguard'::regnamespace
   AND p.proname IN ('block', 'unblock', 'unblock_role', 'source_risk', 'security_status', 'incident_open',
                     'contain_role', 'contain_source', 'freeze_decryption', 'unfreeze_decryption',
                     'incident_close', 'incident_report')
 ORDER BY 1::text;
SELECT c.relname AS view, has_table_privilege('tradeguard_auditor', c.oid, 'SELECT') AS auditor
  FROM pg_class c
 WHERE c.relnamespace = 'tradeguard'::regnamespace
   AND c.relname IN ('auth_events', 'failed_logins', 'blocked_sources', 'block_history', 'incidents', 'incident_actions')
 ORDER BY 1;
-- The alert trigger is on the event stream and fires in every replication mode.
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'tradeguard_audit.security_events'::regclass AND NOT tgisinternal;
-- The decryption freeze starts off.
SELECT id, frozen FROM tradeguard_audit.decryption_freeze;

------------------------------------------------------------------------------------------------
-- Block and unblock
------------------------------------------------------------------------------------------------
SELECT tradeguard.block('198.51.100.7', 'sec: brute force from a scanner') > 0 AS blocked;
SELECT tradeguard.block('203.0.113.0/24', 'sec: hostile network', '2 hours') > 0 AS blocked;
SELECT source, role_name, reason, created_by = session_user AS by_me,
       blocked_until - blocked_at AS duration
  FROM tradeguard.blocked_sources WHERE reason LIKE 'sec:%' ORDER BY source;
SELECT event_type, severity, detail->>'source' AS source, detail->>'reason' AS reason, role_name = session_user AS by_me
  FROM tradeguard.security_events WHERE event_type = 'block' ORDER BY id;
-- Refused: no source, no reason, a duration that is not positive.
SELECT tradeguard.block(NULL, 'sec: nothing');
SELECT tradeguard.block('198.51.100.8', '  ');
SELECT tradeguard.block('198.51.100.8', 'sec: backwards', '-1 minute');
-- Positive as an interval (a year counts 360 days there), yet ending now or earlier.
SELECT tradeguard.block('198.51.100.8', 'sec: backwards', '-1 year +365 days');
-- Unblock lifts blocks inside the given network; a host inside a blocked network stays blocked.
SELECT tradeguard.unblock('203.0.113.9') AS lifted;
SELECT tradeguard.unblock('198.51.100.7/32') AS lifted;
SELECT tradeguard.unblock('198.51.100.7/32') AS lifted_again;
SELECT source, reason FROM tradeguard.blocked_sources WHERE reason LIKE 'sec:%' ORDER BY source;
SELECT source, active, lifted_by = session_user AS lifted_by_me
  FROM tradeguard.block_history WHERE reason LIKE 'sec:%' ORDER BY source;
SELECT event_type, severity, detail->>'source' AS source, jsonb_array_length(detail->'lifted') AS lifted
  FROM tradeguard.security_events WHERE event_type = 'unblock' ORDER BY id;
SELECT tradeguard.unblock('203.0.113.0/24') AS lifted;
SELECT count(*) AS sec_blocks FROM tradeguard.blocked_sources WHERE reason LIKE 'sec:%';
-- Per-role lockouts (written by the worker) are lifted with unblock_role.
INSERT INTO tradeguard_audit.blocked_sources (role_name, reason, blocked_until, created_by)
VALUES ('sec_trader', 'lockout: too many failed logins', now() + interval '15 minutes', 'tradeguard');
SELECT role_name, reason, created_by FROM tradeguard.blocked_sources WHERE role_name = 'sec_trader';
SELECT tradeguard.unblock_role('sec_trader') AS lifted;
SELECT count(*) AS sec_trader_blocks FROM tradeguard.blocked_sources WHERE role_name = 'sec_trader';

------------------------------------------------------------------------------------------------
-- Failed logins (auth_events rows as the worker writes them)
------------------------------------------------------------------------------------------------
INSERT INTO tradeguard_audit.auth_events (at, role_name, database_name, client_addr, method, success, reason, blocked)
SELECT now() - make_interval(mins => g), 'sec_trader', 'tg_regress', '192.0.2.44'::inet, 'scram-sha-256', false, 'authentication failed', false
  FROM generate_series(1, 4) g
UNION ALL
SELECT now() - interval '50 minutes', 'sec_other', 'tg_regress', '192.0.2.44', 'scram-sha-256', false, 'authentication failed', false
UNION ALL
SELECT now() - interval '3 hours', 'sec_trader', 'tg_regress', '192.0.2.44', 'scram-sha-256', false, 'authentication failed', false
UNION ALL
SELECT now() - interval '1 minute', 'sec_trader', 'tg_regress', '192.0.2.44', 'scram-sha-256', true, 'blocked by source 192.0.2.44', true
UNION ALL
SELECT now() - interval '2 minutes', 'sec_trader', 'tg_regress', '192.0.2.45', 'scram-sha-256', true, NULL, false;
SELECT source, role_name, failures_last_hour, failures_last_window, refused_last_window, last_failure IS NOT NULL AS has_last
  FROM tradeguard.failed_logins WHERE source <<= '192.0.2.0/24' ORDER BY 1, 2;
SELECT count(*) AS sec_auth_rows, count(*) FILTER (WHERE blocked) AS refused
  FROM tradeguard.auth_events WHERE client_addr <<= '192.0.2.0/24';

------------------------------------------------------------------------------------------------
-- Source risk: 10 x failed logins + 30 x injection attempts + 5 x refused logins, capped at 100
------------------------------------------------------------------------------------------------
-- 192.0.2.44 also has 5 login_failed events for the same attempts: they are not counted twice.
INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
SELECT 'login_failed', 'low', '192.0.2.44'::inet, 'sec_trader', '{}'::jsonb FROM generate_series(1, 5)
UNION ALL
SELECT 'injection_attempt', 'medium', '198.51.100.66', 'sec_app', '{"table": "orders", "column": "note"}'
UNION ALL
SELECT 'login_failed', 'low', '198.51.100.66', 'sec_app', '{}';
SELECT source, score, failed_logins, injection_attempts, blocked_logins, events
  FROM tradeguard.source_risk() WHERE source <<= '192.0.2.0/24' OR source <<= '198.51.100.0/24' ORDER BY source;
-- IPv6 sources are scored per /64, as they are locked out.
INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
SELECT 'login_failed', 'low', ('2001:db8:1:2::' || g)::inet, 'sec_trader', '{}'::jsonb FROM generate_series(1, 3) g;
SELECT source, score, failed_logins FROM tradeguard.source_risk() WHERE source <<= '2001:db8::/32';

------------------------------------------------------------------------------------------------
-- Auto-block: at tradeguard.auto_block_score (default 80) the source is blocked once
------------------------------------------------------------------------------------------------
-- In one transaction, so that the worker's own periodic evaluation does not see the events first.
BEGIN;
INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
SELECT 'injection_attempt', 'high', '203.0.113.99', 'sec_app', '{"table": "orders", "column": "note", "action": "reject"}'
  FROM generate_series(1, 3);
SELECT source, score FROM tradeguard.source_risk() WHERE source = '203.0.113.99';
-- Injection attempts carry the address of the session that wrote the value (through an
-- application, its server's): they count towards a block only with auto_block_injection.
SELECT tradeguard_audit.evaluate_risk() AS new_blocks_without_injection;
SET tradeguard.auto_block_injection = on;
SELECT tradeguard_audit.evaluate_risk() AS new_blocks;
SELECT tradeguard_audit.evaluate_risk() AS new_blocks_again;
COMMIT;
SELECT source, reason, created_by, blocked_until - blocked_at = interval '15 minutes' AS lockout_duration
  FROM tradeguard.blocked_sources WHERE source = '203.0.113.99/32';
SELECT event_type, severity, host(source) AS source, role_name, detail->>'score' AS score, detail->>'injection_attempts' AS injections
  FROM tradeguard.security_events WHERE event_type = 'auto_block' ORDER BY id;
-- Unblocked by the admin, it stays unblocked until it does something new.
SELECT tradeguard.unblock('203.0.113.99') AS lifted;
SELECT tradeguard_audit.evaluate_risk() AS new_blocks_after_unblock;
RESET tradeguard.auto_block_injection;

------------------------------------------------------------------------------------------------
-- Alerts: events at or above tradeguard.alert_min_severity (high) raise one WARNING line with
-- the tradeguard: prefix and a NOTIFY tradeguard_alert (not listened to here: its line has a pid)
------------------------------------------------------------------------------------------------
SHOW tradeguard.alert_min_severity;
SET client_min_messages = warning;
INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
VALUES ('sec_probe', 'critical', '192.0.2.200', 'sec_app', '{"n": 1, "password": "never-in-an-alert"}');
INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
VALUES ('sec_probe', 'high', NULL, E'sec\nline', '{"n": 2}');
INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
VALUES ('sec_probe', 'medium', '192.0.2.200', 'sec_app', '{"n": 3}');
SET client_min_messages = error;

------------------------------------------------------------------------------------------------
-- Security status: one jsonb for the daily check
------------------------------------------------------------------------------------------------
SELECT k AS key FROM jsonb_object_keys(tradeguard.security_status()) k ORDER BY 1;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(s->'blocked_sources') k) AS blocked_sources,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(s->'audit_chain') k) AS audit_chain
  FROM tradeguard.security_status() s;
SELECT s->'blocked_sources'->'count' AS blocked, s->'alert_min_severity' AS alert_min,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(s->'events_24h') k) AS severities,
       (s->'events_24h'->>'critical')::int >= 1 AS has_critical,
       s->'audit_chain' ? 'ok' AS chain_checked, s->'decryption_frozen' AS frozen, s->'open_incidents' AS open_incidents,
       s->'failed_logins_last_hour' AS failed_last_hour,
       (SELECT array_agg(x->>'source' ORDER BY x->>'source') FROM jsonb_array_elements(s->'high_risk_sources') x
         WHERE x->>'source' LIKE '192.0.2.%' OR x->>'source' LIKE '198.51.100.%' OR x->>'source' LIKE '203.0.113.%') AS risky
  FROM tradeguard.security_status() s;

------------------------------------------------------------------------------------------------
-- Incident response
------------------------------------------------------------------------------------------------
CREATE ROLE sec_suspect LOGIN;
CREATE ROLE sec_analyst;
GRANT tradeguard_auditor TO sec_analyst;
-- Containment needs an open incident.
SELECT tradeguard.contain_role('sec_suspect');
SELECT tradeguard.freeze_decryption();
SELECT tradeguard.incident_open('meteor', 'unknown kind');
SELECT tradeguard.incident_open('unauthorized_access', 'sec: logins for sec_suspect from 203.0.113.0/24') > 0 AS opened;
SELECT kind, status, note, opened_by = session_user AS by_me FROM tradeguard.incidents ORDER BY id;
-- The snapshot was taken at once: sessions with TLS state, events, blocks, roles, findings, digest.
SELECT k AS key FROM tradeguard_audit.incidents i, jsonb_object_keys(i.snapshot) k ORDER BY 1;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(i.snapshot->'sessions'->0) k) AS session_fields,
       i.snapshot->'sessions' @> jsonb_build_array(jsonb_build_object('pid', pg_backend_pid(), 'ssl', false)) AS me_without_tls,
       i.snapshot->'login_roles' @> '[{"role": "sec_suspect", "superuser": false}]' AS suspect_listed,
       i.snapshot->'superusers' ? current_user AS superuser_listed,
       jsonb_array_length(i.snapshot->'security_events') BETWEEN 1 AND 200 AS events_kept
  FROM tradeguard_audit.incidents i;
-- Contain a role: NOLOGIN, sessions terminated (none here), recorded.
SELECT tradeguard.contain_role('sec_suspect') AS terminated;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'sec_suspect';
-- Never the bootstrap superuser, yourself, or a role that does not exist.
SELECT tradeguard.contain_role((SELECT rolname FROM pg_roles WHERE oid = 10));
SELECT tradeguard.contain_role('sec_nobody');
-- A REPLICATION role only by a superuser, as ALTER ROLE itself (an admin who is not one).
CREATE ROLE sec_repl REPLICATION LOGIN;
CREATE ROLE sec_admin;
GRANT tradeguard_admin TO sec_admin;
SET SESSION AUTHORIZATION sec_admin;
SELECT tradeguard.contain_role('sec_repl');
RESET SESSION AUTHORIZATION;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'sec_repl';
-- Contain a source: blocked for 4 x lockout_duration, its sessions terminated.
SELECT tradeguard.contain_source('203.0.113.0/24') AS terminated;
SELECT source, reason ~ '^incident [0-9]+: contained$' AS reason_ok, blocked_until - blocked_at AS duration
  FROM tradeguard.blocked_sources WHERE source = '203.0.113.0/24';
-- Freeze and unfreeze decryption.
SELECT tradeguard.freeze_decryption() AS changed;
SELECT tradeguard.freeze_decryption() AS changed_again;
SELECT frozen, changed_by = session_user AS by_me, incident_id IS NOT NULL AS for_incident FROM tradeguard_audit.decryption_freeze;
SELECT (tradeguard.security_status()->>'decryption_frozen')::boolean AS status_frozen;
-- While frozen, a decryptor is refused; the admin still decrypts.
SELECT tradeguard.create_key('sec_freeze') > 0 AS key_made;
CREATE TABLE sec_frozen AS SELECT tradeguard.encrypt('frozen secret'::text, 'sec_freeze') AS c;
CREATE ROLE sec_decryptor;
GRANT tradeguard_decryptor TO sec_decryptor;
GRANT SELECT ON sec_frozen TO sec_decryptor;
SET ROLE sec_decryptor;
SELECT tradeguard.decrypt_text(c) FROM sec_frozen;
RESET ROLE;
SELECT tradeguard.decrypt_text(c) AS admin_still_decrypts FROM sec_frozen;
SELECT tradeguard.unfreeze_decryption() AS changed;
SELECT frozen FROM tradeguard_audit.decryption_freeze;
SET ROLE sec_decryptor;
SELECT tradeguard.decrypt_text(c) AS decrypts_again FROM sec_frozen;
RESET ROLE;
DROP TABLE sec_frozen;
DROP ROLE sec_decryptor;
-- Close with a summary; closing twice or without a summary is refused.
SELECT tradeguard.incident_close((SELECT max(id) FROM tradeguard.incidents), '   ');
-- An open incident's report has no summary yet; the closed one's is its summary (inert markdown).
SELECT line FROM regexp_split_to_table(tradeguard.incident_report((SELECT max(id) FROM tradeguard.incidents)), E'\n') line
 WHERE line LIKE '- Summary:%';
SELECT tradeguard.incident_close((SELECT max(id) FROM tradeguard.incidents), 'sec: stolen password of sec_suspect; role disabled, network blocked');
SELECT line FROM regexp_split_to_table(tradeguard.incident_report((SELECT max(id) FROM tradeguard.incidents)), E'\n') line
 WHERE line LIKE '- Summary:%';
SELECT tradeguard.incident_close((SELECT max(id) FROM tradeguard.incidents), 'again');
SELECT kind, status, summary, closed_by = session_user AS by_me FROM tradeguard.incidents ORDER BY id;
-- The timeline and the security events of the incident.
SELECT action, target, done_by = session_user AS by_me, detail - 'block_id' - 'until' AS detail
  FROM tradeguard.incident_actions ORDER BY id;
SELECT event_type, severity, detail->>'action' AS action
  FROM tradeguard.security_events
 WHERE event_type IN ('incident_open', 'containment', 'containment_lifted', 'incident_close') ORDER BY id;
-- The report: its headings, and one timeline row per action.
SELECT regexp_replace(line, '[0-9]+', 'N', 'g') AS heading
  FROM regexp_split_to_table(tradeguard.incident_report((SELECT max(id) FROM tradeguard.incidents)), E'\n') WITH ORDINALITY AS t(line, n)
 WHERE line ~ '^#' ORDER BY n;
SELECT count(*) AS timeline_rows
  FROM regexp_split_to_table(tradeguard.incident_report((SELECT max(id) FROM tradeguard.incidents)), E'\n') line
 WHERE line ~ '^\| [0-9]{4}-';
SELECT jsonb_typeof(r->'incident') AS incident, jsonb_typeof(r->'snapshot') AS snapshot,
       jsonb_array_length(r->'timeline') AS timeline
  FROM (SELECT tradeguard.incident_report((SELECT max(id) FROM tradeguard.incidents), 'json')::jsonb AS r) x;
SELECT tradeguard.incident_report((SELECT max(id) FROM tradeguard.incidents), 'pdf');
SELECT tradeguard.incident_report(-1);

------------------------------------------------------------------------------------------------
-- The analyst (tradeguard_auditor) reads, and may not act
------------------------------------------------------------------------------------------------
SET ROLE sec_analyst;
SELECT count(*) >= 0 AS reads_blocks FROM tradeguard.blocked_sources;
SELECT count(*) >= 0 AS reads_failed_logins FROM tradeguard.failed_logins;
SELECT count(*) >= 0 AS reads_auth_events FROM tradeguard.auth_events;
SELECT count(*) >= 1 AS reads_incidents FROM tradeguard.incidents;
SELECT tradeguard.security_status() ? 'audit_chain' AS reads_status;
SELECT count(*) >= 0 AS reads_risk FROM tradeguard.source_risk();
SELECT length(tradeguard.incident_report((SELECT max(id) FROM tradeguard.incidents))) > 0 AS reads_report;
SELECT tradeguard.block('192.0.2.1', 'analyst');
SELECT tradeguard.unblock('192.0.2.1');
SELECT tradeguard.unblock_role('sec_trader');
SELECT tradeguard.incident_open('other', 'analyst');
SELECT tradeguard.contain_role('sec_suspect');
SELECT tradeguard.contain_source('192.0.2.0/24');
SELECT tradeguard.freeze_decryption();
SELECT tradeguard.unfreeze_decryption();
SELECT tradeguard.incident_close(1, 'analyst');
SELECT tradeguard_audit.evaluate_risk();
SELECT count(*) FROM tradeguard_audit.blocked_sources;
INSERT INTO tradeguard_audit.security_events (event_type, severity) VALUES ('forged', 'info');
RESET ROLE;

-- Clean up (blocks and events stay: they are history).
SELECT tradeguard.unblock('203.0.113.0/24') AS lifted;
DROP ROLE sec_suspect, sec_analyst, sec_repl, sec_admin;
RESET client_min_messages;
