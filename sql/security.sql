-- tradeguard security: failed-login lockout state, source blocking, activity scoring, alerts,
-- security status and incident response (issue 8).
--
-- Runs inside CREATE EXTENSION (superuser), after ids.sql (tradeguard_audit.security_events),
-- audit.sql and selfaudit.sql. The Rust side (ClientAuthentication hook, shared memory,
-- background worker) writes tradeguard_audit.auth_events, tradeguard_audit.security_events and,
-- for lockouts, tradeguard_audit.blocked_sources; it reads the active blocks and the decryption
-- freeze through tradeguard_audit.sync_state(), which every function here that changes them
-- calls. Functions that read or write protected state are SECURITY DEFINER with a pinned
-- search_path and schema-qualified names. Rust functions (sync_state, verify, audit_digest) and
-- the self-audit functions are reached from PL/pgSQL bodies at run time only, so creation order
-- does not matter.
--
-- Security events written here (documented in docs/security-events.md):
--   block / unblock (medium), auto_block (high), incident_open (high), containment (high),
--   containment_lifted (medium), incident_close (medium).
-- Admin actions record the actor (client address, session user) in source / role_name and the
-- target in detail; auto_block records the blocked source in source.

------------------------------------------------------------------------------------------------
-- Protected state
------------------------------------------------------------------------------------------------

CREATE TABLE tradeguard_audit.auth_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL,
    role_name     text,
    database_name text,
    client_addr   inet,
    method        text,
    success       boolean NOT NULL,
    reason        text,
    blocked       boolean NOT NULL DEFAULT false
);
CREATE INDEX auth_events_at ON tradeguard_audit.auth_events (at);
CREATE INDEX auth_events_failures ON tradeguard_audit.auth_events (client_addr, at) WHERE NOT success;
COMMENT ON TABLE tradeguard_audit.auth_events IS
    'tradeguard: every authentication seen by the client-authentication hook (written by the background worker)';

CREATE TABLE tradeguard_audit.blocked_sources (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        cidr,
    role_name     text,
    reason        text NOT NULL,
    blocked_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    blocked_until timestamptz NOT NULL,
    created_by    text NOT NULL,
    lifted_at     timestamptz,
    lifted_by     text,
    CHECK (source IS NOT NULL OR role_name IS NOT NULL)
);
CREATE INDEX blocked_sources_active ON tradeguard_audit.blocked_sources (blocked_until) WHERE lifted_at IS NULL;
COMMENT ON TABLE tradeguard_audit.blocked_sources IS
    'tradeguard: blocks of client addresses (source) or roles (role_name), from lockouts, tradeguard.block(), auto-blocks and containment; active while lifted_at IS NULL AND blocked_until > now()';

CREATE TABLE tradeguard_audit.decryption_freeze (
    id          integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    frozen      boolean NOT NULL,
    changed_at  timestamptz,
    changed_by  text,
    incident_id bigint
);
INSERT INTO tradeguard_audit.decryption_freeze (id, frozen) VALUES (1, false);
COMMENT ON TABLE tradeguard_audit.decryption_freeze IS
    'tradeguard: one row; frozen = true while an incident stops decryption (tradeguard.freeze_decryption())';

CREATE TABLE tradeguard_audit.incidents (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind      text NOT NULL CHECK (kind IN ('unauthorized_access', 'data_breach', 'malware', 'other')),
    note      text,
    opened_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    opened_by text NOT NULL,
    status    text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closed_at timestamptz,
    closed_by text,
    summary   text,
    snapshot  jsonb NOT NULL,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
COMMENT ON TABLE tradeguard_audit.incidents IS
    'tradeguard: security incidents with the snapshot taken when each was opened (tradeguard.incident_open())';

CREATE TABLE tradeguard_audit.incident_actions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- (No foreign key: pg_restore -j loads each table's rows in any order; only tradeguard's
    -- own code writes either table.)
    incident_id bigint NOT NULL,
    at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action      text NOT NULL,
    target      text,
    done_by     text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_actions_incident ON tradeguard_audit.incident_actions (incident_id, id);
COMMENT ON TABLE tradeguard_audit.incident_actions IS
    'tradeguard: the timeline of each incident (open, containment, freeze, close)';

-- pg_dump keeps the event history, blocks and incidents. decryption_freeze is not dumped: its row
-- is created by this script, so a dumped copy would collide on restore; a restored database starts
-- unfrozen.
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.auth_events', '');
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.blocked_sources', '');
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.incidents', '');
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.incident_actions', '');

------------------------------------------------------------------------------------------------
-- Internal helpers (tradeguard_audit; executable by the extension owner only)
------------------------------------------------------------------------------------------------

-- info < low < medium < high < critical; NULL for anything else.
CREATE FUNCTION tradeguard_audit.severity_rank(severity text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_position(ARRAY['info', 'low', 'medium', 'high', 'critical'], $1)
$$;
COMMENT ON FUNCTION tradeguard_audit.severity_rank(text) IS
    'tradeguard: order of severities (info 1, low 2, medium 3, high 4, critical 5; NULL when unknown)';

-- An integer setting, or the default when it is unset, empty or not an integer.
CREATE FUNCTION tradeguard_audit.setting_int(name text, fallback integer) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v text := pg_catalog.btrim(pg_catalog.current_setting($1, true));
BEGIN
    IF v ~ '^-?[0-9]{1,9}$' THEN
        RETURN v::integer;
    END IF;
    RETURN $2;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.setting_int(text, integer) IS
    'tradeguard: an integer tradeguard.* setting, or the fallback when unset or invalid';

-- A duration setting in seconds. current_setting() shows settings with a unit as e.g. '15min' or
-- '5s'; a bare number means seconds.
CREATE FUNCTION tradeguard_audit.setting_seconds(name text, fallback_seconds integer) RETURNS interval
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v text := pg_catalog.btrim(pg_catalog.current_setting($1, true));
BEGIN
    IF v ~ '^[0-9]+$' THEN
        RETURN pg_catalog.make_interval(secs => v::double precision);
    ELSIF v IS NOT NULL AND v <> '' THEN
        BEGIN
            RETURN v::interval;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END IF;
    RETURN pg_catalog.make_interval(secs => $2);
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.setting_seconds(text, integer) IS
    'tradeguard: a duration tradeguard.* setting (seconds or a value with unit) as an interval, or the fallback';

-- The CIDRs of tradeguard.lockout_exempt; entries that do not parse are ignored.
CREATE FUNCTION tradeguard_audit.exempt_cidrs() RETURNS cidr[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    item text;
    result cidr[] := '{}';
BEGIN
    FOREACH item IN ARRAY pg_catalog.string_to_array(coalesce(pg_catalog.current_setting('tradeguard.lockout_exempt', true), ''), ',')
    LOOP
        item := pg_catalog.btrim(item);
        CONTINUE WHEN item = '';
        BEGIN
            result := result || pg_catalog.network(item::inet);
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    RETURN result;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.exempt_cidrs() IS
    'tradeguard: the networks listed in tradeguard.lockout_exempt (never locked out or auto-blocked)';

-- Appends to the security event stream; returns the event id.
CREATE FUNCTION tradeguard_audit.record_event(event_type text, severity text, source inet, role_name text, detail jsonb)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
    VALUES ($1, $2, $3, $4, coalesce($5, '{}'::jsonb))
    RETURNING id
$$;
COMMENT ON FUNCTION tradeguard_audit.record_event(text, text, inet, text, jsonb) IS
    'tradeguard: append one security event (the alert trigger fires on it)';

-- The most recent open incident, or an error that says how to open one.
CREATE FUNCTION tradeguard_audit.open_incident() RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id bigint;
BEGIN
    SELECT i.id INTO v_id FROM tradeguard_audit.incidents i
     WHERE i.status = 'open' ORDER BY i.opened_at DESC, i.id DESC LIMIT 1;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'tradeguard: no open incident'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Containment is recorded against an incident: SELECT tradeguard.incident_open(kind, note); first.';
    END IF;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.open_incident() IS
    'tradeguard: id of the most recent open incident (error when none is open)';

CREATE FUNCTION tradeguard_audit.incident_action(incident_id bigint, action text, target text, detail jsonb)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO tradeguard_audit.incident_actions (incident_id, action, target, done_by, detail)
    VALUES ($1, $2, $3, SESSION_USER, coalesce($4, '{}'::jsonb))
    RETURNING id
$$;
COMMENT ON FUNCTION tradeguard_audit.incident_action(bigint, text, text, jsonb) IS
    'tradeguard: append one entry to an incident timeline';

-- A markdown table cell: no pipes or line breaks from the data.
-- Names and texts in reports come from users (role, table and application names): one line
-- each, HTML inert, markdown punctuation escaped, so that they cannot add headings, rows or
-- markup to a report.
CREATE FUNCTION tradeguard_audit.one_line(value text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.regexp_replace(coalesce($1, ''), '[[:cntrl:]]+', ' ', 'g')
$$;
COMMENT ON FUNCTION tradeguard_audit.one_line(text) IS 'tradeguard: text on one line (control characters as spaces), for reports';

CREATE FUNCTION tradeguard_audit.md_text(value text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.regexp_replace(
             pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(tradeguard_audit.one_line($1), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
             '([\\`*_{}\[\]#+!|~-])', '\\\1', 'g')
$$;
COMMENT ON FUNCTION tradeguard_audit.md_text(text) IS 'tradeguard: text made inert for markdown (one line, HTML and markdown punctuation escaped; safe in a table cell)';

CREATE FUNCTION tradeguard_audit.md_code(value text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- An inline code span keeps its content as is (SQL to copy): fenced with more backticks
    -- than any run inside it, and spaced when it starts or ends with one.
    SELECT f.fence || CASE WHEN t.v LIKE '`%' OR t.v LIKE '%`' THEN ' ' || t.v || ' ' ELSE t.v END || f.fence
      FROM (SELECT tradeguard_audit.one_line($1) AS v) t,
           LATERAL (SELECT pg_catalog.repeat('`', 1 + coalesce((SELECT pg_catalog.max(pg_catalog.length(m[1]))
                                                                 FROM pg_catalog.regexp_matches(t.v, '(`+)', 'g') m), 0)) AS fence) f
$$;
COMMENT ON FUNCTION tradeguard_audit.md_code(text) IS 'tradeguard: text as a markdown inline code span, content unchanged but for control characters';


------------------------------------------------------------------------------------------------
-- Views for the auditor
------------------------------------------------------------------------------------------------

CREATE VIEW tradeguard.auth_events AS
SELECT a.id, a.at, a.role_name, a.database_name, a.client_addr, a.method, a.success, a.reason, a.blocked
  FROM tradeguard_audit.auth_events a;
COMMENT ON VIEW tradeguard.auth_events IS
    'tradeguard: every authentication seen by the hook (role, database, client address, method, success, reason, refused by a block); filter on at for recent rows';

-- The view reads tradeguard.lockout_window itself (functions called by a view run with the
-- reader's privileges, and the reader may not call tradeguard_audit helpers).
CREATE VIEW tradeguard.failed_logins AS
WITH w AS (
    SELECT CASE WHEN s.v ~ '^[0-9]+$' THEN pg_catalog.make_interval(secs => s.v::double precision)
                WHEN coalesce(s.v, '') = '' THEN interval '900 seconds'
                ELSE s.v::interval END AS lockout_window
      FROM (SELECT pg_catalog.btrim(pg_catalog.current_setting('tradeguard.lockout_window', true)) AS v) s
)
SELECT a.client_addr AS source, a.role_name,
       pg_catalog.count(*) FILTER (WHERE NOT a.blocked AND a.at > pg_catalog.now() - interval '1 hour') AS failures_last_hour,
       pg_catalog.count(*) FILTER (WHERE NOT a.blocked AND a.at > pg_catalog.now() - w.lockout_window) AS failures_last_window,
       pg_catalog.max(a.at) FILTER (WHERE NOT a.blocked) AS last_failure,
       pg_catalog.count(*) FILTER (WHERE a.blocked AND a.at > pg_catalog.now() - w.lockout_window) AS refused_last_window
  FROM tradeguard_audit.auth_events a
 CROSS JOIN w
 WHERE (NOT a.success OR a.blocked)
   AND a.at > pg_catalog.now() - GREATEST(interval '1 hour', w.lockout_window)
 GROUP BY a.client_addr, a.role_name
HAVING pg_catalog.count(*) FILTER (WHERE NOT a.blocked) > 0
 ORDER BY 5 DESC, 1, 2;
COMMENT ON VIEW tradeguard.failed_logins IS
    'tradeguard: recent failed logins by client address (source; NULL = Unix socket) and role: failures in the last hour and in tradeguard.lockout_window, last failure, and attempts refused by a block in the window';

CREATE VIEW tradeguard.blocked_sources AS
SELECT b.id, b.source, b.role_name, b.reason, b.blocked_at, b.blocked_until, b.created_by
  FROM tradeguard_audit.blocked_sources b
 WHERE b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now()
 ORDER BY b.blocked_at, b.id;
COMMENT ON VIEW tradeguard.blocked_sources IS
    'tradeguard: active blocks (a client address or network in source, or a role in role_name), from lockouts, tradeguard.block(), auto-blocks and containment';

CREATE VIEW tradeguard.block_history AS
SELECT b.id, b.source, b.role_name, b.reason, b.blocked_at, b.blocked_until, b.created_by, b.lifted_at, b.lifted_by,
       (b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now()) AS active
  FROM tradeguard_audit.blocked_sources b;
COMMENT ON VIEW tradeguard.block_history IS
    'tradeguard: every block ever made, with who lifted it and when';

CREATE VIEW tradeguard.incidents AS
SELECT i.id, i.kind, i.status, i.note, i.opened_at, i.opened_by, i.closed_at, i.closed_by, i.summary
  FROM tradeguard_audit.incidents i;
COMMENT ON VIEW tradeguard.incidents IS
    'tradeguard: security incidents (snapshot and timeline in tradeguard.incident_report(id))';

CREATE VIEW tradeguard.incident_actions AS
SELECT a.id, a.incident_id, a.at, a.action, a.target, a.done_by, a.detail
  FROM tradeguard_audit.incident_actions a;
COMMENT ON VIEW tradeguard.incident_actions IS 'tradeguard: the timeline of every incident';

------------------------------------------------------------------------------------------------
-- Blocking (admin)
------------------------------------------------------------------------------------------------

CREATE FUNCTION tradeguard.block(source cidr, reason text, duration interval DEFAULT '15 minutes')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_source   cidr := $1;
    v_reason   text := pg_catalog.btrim($2);
    v_duration interval := $3;
    v_until    timestamptz;
    v_id       bigint;
BEGIN
    IF v_source IS NULL THEN
        RAISE EXCEPTION 'tradeguard: give the client address or network to block'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example SELECT tradeguard.block(''203.0.113.7'', ''brute force'');';
    END IF;
    IF v_reason IS NULL OR v_reason = '' THEN
        RAISE EXCEPTION 'tradeguard: give a reason for the block'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Compared as a time, not as an interval: '-1 mon +30 days' is positive as an interval (a
    -- month counts 30 days there) yet ends in the past in a 31-day month.
    IF v_duration IS NULL OR pg_catalog.now() + v_duration <= pg_catalog.now() THEN
        RAISE EXCEPTION 'tradeguard: the block duration must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.inet_client_addr() IS NOT NULL AND pg_catalog.inet_client_addr() <<= v_source THEN
        RAISE WARNING 'tradeguard: the block on % covers your own address', v_source
            USING HINT = 'Keep a session open or use the Unix socket; tradeguard.lockout_exempt lists addresses that blocks never apply to.';
    END IF;
    v_until := pg_catalog.now() + v_duration;
    INSERT INTO tradeguard_audit.blocked_sources (source, role_name, reason, blocked_at, blocked_until, created_by)
    VALUES (v_source, NULL, v_reason, pg_catalog.now(), v_until, SESSION_USER)
    RETURNING id INTO v_id;
    PERFORM tradeguard_audit.record_event('block', 'medium', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('block_id', v_id, 'source', v_source, 'reason', v_reason, 'until', v_until));
    PERFORM tradeguard_audit.sync_state();
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION tradeguard.block(cidr, text, interval) IS
    'tradeguard (admin): refuse new connections from this address or network for the duration (default 15 minutes), even with the right password; recorded; returns the block id';

CREATE FUNCTION tradeguard.unblock(source cidr) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_source cidr := $1;
    v_ids    bigint[];
    v_wider  text;
BEGIN
    IF v_source IS NULL THEN
        RAISE EXCEPTION 'tradeguard: give the client address or network to unblock'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH lifted AS (
        UPDATE tradeguard_audit.blocked_sources b
           SET lifted_at = pg_catalog.now(), lifted_by = SESSION_USER
         WHERE b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now()
           AND b.source <<= v_source
        RETURNING b.id
    )
    SELECT pg_catalog.array_agg(l.id ORDER BY l.id) INTO v_ids FROM lifted l;
    PERFORM tradeguard_audit.record_event('unblock', 'medium', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('source', v_source, 'lifted', coalesce(v_ids, '{}')));
    SELECT pg_catalog.string_agg(b.source::text, ', ' ORDER BY b.source) INTO v_wider
      FROM tradeguard_audit.blocked_sources b
     WHERE b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now() AND b.source >> v_source;
    IF v_wider IS NOT NULL THEN
        RAISE NOTICE 'tradeguard: % is still covered by the block on %', v_source, v_wider
            USING HINT = 'Unblock that network to lift it.';
    END IF;
    IF v_ids IS NOT NULL THEN
        PERFORM tradeguard_audit.sync_state();
    END IF;
    RETURN coalesce(pg_catalog.cardinality(v_ids), 0);
END
$fn$;
COMMENT ON FUNCTION tradeguard.unblock(cidr) IS
    'tradeguard (admin): lift the active blocks of this address or of addresses inside this network (lockouts included); recorded; returns how many were lifted';

CREATE FUNCTION tradeguard.unblock_role(role_name text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role text := $1;
    v_ids  bigint[];
BEGIN
    IF v_role IS NULL THEN
        RAISE EXCEPTION 'tradeguard: give the role to unblock'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH lifted AS (
        UPDATE tradeguard_audit.blocked_sources b
           SET lifted_at = pg_catalog.now(), lifted_by = SESSION_USER
         WHERE b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now()
           AND b.role_name = v_role
        RETURNING b.id
    )
    SELECT pg_catalog.array_agg(l.id ORDER BY l.id) INTO v_ids FROM lifted l;
    PERFORM tradeguard_audit.record_event('unblock', 'medium', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('role', v_role, 'lifted', coalesce(v_ids, '{}')));
    IF v_ids IS NOT NULL THEN
        PERFORM tradeguard_audit.sync_state();
    END IF;
    RETURN coalesce(pg_catalog.cardinality(v_ids), 0);
END
$fn$;
COMMENT ON FUNCTION tradeguard.unblock_role(text) IS
    'tradeguard (admin): lift the active per-role lockouts of this role; recorded; returns how many were lifted';

------------------------------------------------------------------------------------------------
-- Activity scoring and automatic blocks
------------------------------------------------------------------------------------------------

CREATE FUNCTION tradeguard.source_risk(lookback interval DEFAULT '1 hour')
RETURNS TABLE(source inet, score integer, failed_logins bigint, injection_attempts bigint,
              blocked_logins bigint, events bigint, last_seen timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- Security events and authentication events of each source, scored together. IPv6 sources
    -- are scored per /64, as they are counted and locked out (one host usually holds a whole
    -- /64). A failed or refused login is usually both an auth_events row and a security event:
    -- counted once, as the larger of the two counts.
    WITH seen AS (
        SELECT e.source AS addr, e.event_type AS kind, false AS from_auth, e.at
          FROM tradeguard_audit.security_events e
         WHERE e.source IS NOT NULL AND e.at > pg_catalog.now() - $1
        UNION ALL
        SELECT a.client_addr, CASE WHEN a.blocked THEN 'blocked_login' ELSE 'login_failed' END, true, a.at
          FROM tradeguard_audit.auth_events a
         WHERE a.client_addr IS NOT NULL AND (NOT a.success OR a.blocked) AND a.at > pg_catalog.now() - $1
    ), j AS (
        SELECT CASE WHEN pg_catalog.family(s.addr) = 6
                    THEN pg_catalog.network(pg_catalog.set_masklen(s.addr, 64))::inet ELSE s.addr END AS source,
               GREATEST(pg_catalog.count(*) FILTER (WHERE s.kind = 'login_failed' AND NOT s.from_auth),
                        pg_catalog.count(*) FILTER (WHERE s.kind = 'login_failed' AND s.from_auth)) AS failed,
               pg_catalog.count(*) FILTER (WHERE s.kind = 'injection_attempt') AS injection,
               GREATEST(pg_catalog.count(*) FILTER (WHERE s.kind = 'blocked_login' AND NOT s.from_auth),
                        pg_catalog.count(*) FILTER (WHERE s.kind = 'blocked_login' AND s.from_auth)) AS blocked,
               pg_catalog.count(*) FILTER (WHERE NOT s.from_auth) AS events,
               pg_catalog.max(s.at) FILTER (WHERE s.kind IN ('login_failed', 'injection_attempt', 'blocked_login')) AS last_at
          FROM seen s
         GROUP BY 1
    )
    SELECT j.source,
           LEAST(100, 10 * j.failed + 30 * j.injection + 5 * j.blocked)::integer,
           j.failed, j.injection, j.blocked, j.events, j.last_at
      FROM j
     ORDER BY 2 DESC, 1
$$;
COMMENT ON FUNCTION tradeguard.source_risk(interval) IS
    'tradeguard: risk score 0-100 per client address (IPv6: per /64) over the lookback (default 1 hour): score = min(100, 10 x failed logins + 30 x injection attempts + 5 x logins refused by a block). Failed and refused logins are counted once each, as the larger of the auth_events rows and the login_failed / blocked_login security events of the source; events counts every security event of the source; last_seen is its last scored activity. Unix-socket activity (no address) is not scored.';

-- Taken (LOCK TABLE ... IN EXCLUSIVE MODE) so that one risk evaluation runs at a time. A table
-- no role but the owner may lock, not an advisory lock: any role may take an advisory lock, and
-- holding this one would stall the worker.
CREATE TABLE tradeguard_audit.risk_lock ();
COMMENT ON TABLE tradeguard_audit.risk_lock IS 'tradeguard: a lock, not data (one risk evaluation at a time)';

CREATE FUNCTION tradeguard_audit.evaluate_risk() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_threshold integer := tradeguard_audit.setting_int('tradeguard.auto_block_score', 80);
    v_duration  interval := tradeguard_audit.setting_seconds('tradeguard.lockout_duration', 900);
    v_exempt    cidr[] := tradeguard_audit.exempt_cidrs();
    -- Injection attempts sent through an application carry its server's address: they count
    -- towards a block only where clients connect themselves (tradeguard.auto_block_injection).
    v_injection boolean := coalesce(tradeguard_audit.setting_is_on(pg_catalog.current_setting('tradeguard.auto_block_injection', true)), false);
    v_now       timestamptz;
    v_until     timestamptz;
    v_id        bigint;
    v_new       integer := 0;
    r           record;
BEGIN
    IF v_threshold IS NULL OR v_threshold <= 0 THEN
        RETURN 0;   -- 0 disables automatic blocks
    END IF;
    -- One evaluation at a time (the worker and a manual call must not block a source twice).
    LOCK TABLE tradeguard_audit.risk_lock IN EXCLUSIVE MODE;
    -- The wall clock, not the transaction start: events of this transaction are older than the block.
    v_now := pg_catalog.clock_timestamp();
    v_until := v_now + v_duration;
    FOR r IN SELECT * FROM (
                 SELECT s.source, s.failed_logins, s.injection_attempts, s.blocked_logins, s.last_seen,
                        CASE WHEN v_injection THEN s.score
                             ELSE LEAST(100, 10 * s.failed_logins + 5 * s.blocked_logins)::integer END AS score
                   FROM tradeguard.source_risk(interval '1 hour') s) s
              WHERE s.score >= v_threshold
              ORDER BY s.score DESC, s.source
    LOOP
        CONTINUE WHEN r.source <<= ANY (v_exempt);
        -- Already blocked, or blocked (then unblocked or expired) since its last event.
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM tradeguard_audit.blocked_sources b
             WHERE b.role_name IS NULL AND b.source >>= r.source
               AND ((b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now()) OR b.blocked_at >= r.last_seen));
        INSERT INTO tradeguard_audit.blocked_sources (source, role_name, reason, blocked_at, blocked_until, created_by)
        VALUES (pg_catalog.network(r.source), NULL, pg_catalog.format('auto-block: risk score %s', r.score),
                v_now, v_until, 'tradeguard')
        RETURNING id INTO v_id;
        PERFORM tradeguard_audit.record_event('auto_block', 'high', r.source, NULL,
            pg_catalog.jsonb_build_object('block_id', v_id, 'score', r.score, 'threshold', v_threshold,
                                          'failed_logins', r.failed_logins, 'injection_attempts', r.injection_attempts,
                                          'blocked_logins', r.blocked_logins, 'until', v_until));
        v_new := v_new + 1;
    END LOOP;
    IF v_new > 0 THEN
        PERFORM tradeguard_audit.sync_state();
    END IF;
    RETURN v_new;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.evaluate_risk() IS
    'tradeguard (background worker): block every source whose tradeguard.source_risk() over the last hour reaches tradeguard.auto_block_score (0 disables; injection attempts count only with tradeguard.auto_block_injection on) for tradeguard.lockout_duration, unless exempt, already blocked or blocked since its last event; returns the number of new blocks';

------------------------------------------------------------------------------------------------
-- Alerts: NOTIFY tradeguard_alert (after commit) and one WARNING line per event at or above
-- tradeguard.alert_min_severity.
------------------------------------------------------------------------------------------------

CREATE FUNCTION tradeguard_audit.alert_trigger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- Ranks inline: the inserting role need not be able to call tradeguard_audit helpers.
    v_levels  text[] := ARRAY['info', 'low', 'medium', 'high', 'critical'];
    v_min     text := pg_catalog.lower(pg_catalog.btrim(pg_catalog.current_setting('tradeguard.alert_min_severity', true)));
    v_detail  jsonb;
    v_payload text;
BEGIN
    IF v_min IS NULL OR pg_catalog.array_position(v_levels, v_min) IS NULL THEN
        v_min := 'high';
    END IF;
    IF coalesce(pg_catalog.array_position(v_levels, NEW.severity), 0) < pg_catalog.array_position(v_levels, v_min) THEN
        RETURN NULL;
    END IF;
    -- No secrets in alerts: drop keys that could carry them (none of tradeguard's own events has them).
    v_detail := coalesce(NEW.detail, '{}'::jsonb);
    IF pg_catalog.jsonb_typeof(v_detail) = 'object' THEN
        v_detail := v_detail - ARRAY['password', 'passwd', 'secret', 'token', 'plaintext', 'statement', 'query'];
    END IF;
    v_payload := pg_catalog.jsonb_build_object(
        'id', NEW.id, 'at', NEW.at, 'event_type', NEW.event_type, 'severity', NEW.severity,
        'source', pg_catalog.host(NEW.source), 'role_name', NEW.role_name, 'detail', v_detail)::text;
    IF pg_catalog.octet_length(v_payload) > 7000 THEN   -- NOTIFY payloads stop at 8000 bytes
        v_detail := pg_catalog.jsonb_build_object('truncated', true);
        v_payload := pg_catalog.jsonb_build_object(
            'id', NEW.id, 'at', NEW.at, 'event_type', pg_catalog.left(NEW.event_type, 200), 'severity', NEW.severity,
            'source', pg_catalog.host(NEW.source), 'role_name', pg_catalog.left(NEW.role_name, 200), 'detail', v_detail)::text;
    END IF;
    PERFORM pg_catalog.pg_notify('tradeguard_alert', v_payload);
    RAISE WARNING '%', pg_catalog.format('tradeguard: alert severity=%s type=%s source=%s role=%s detail=%s',
        NEW.severity,
        pg_catalog.regexp_replace(NEW.event_type, '[[:cntrl:][:space:]]+', '_', 'g'),
        coalesce(pg_catalog.host(NEW.source), '-'),
        coalesce(pg_catalog.regexp_replace(NEW.role_name, '[[:cntrl:]]+', '?', 'g'), '-'),
        pg_catalog.left(v_detail::text, 2000));
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.alert_trigger() IS
    'tradeguard: alert on security events at or above tradeguard.alert_min_severity (NOTIFY tradeguard_alert with a json payload, one WARNING line prefixed tradeguard:)';

CREATE TRIGGER tradeguard_alert AFTER INSERT ON tradeguard_audit.security_events
    FOR EACH ROW EXECUTE FUNCTION tradeguard_audit.alert_trigger();
ALTER TABLE tradeguard_audit.security_events ENABLE ALWAYS TRIGGER tradeguard_alert;

------------------------------------------------------------------------------------------------
-- Security status: one call for the daily check
------------------------------------------------------------------------------------------------

CREATE FUNCTION tradeguard.security_status() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_min      text := pg_catalog.lower(pg_catalog.btrim(pg_catalog.current_setting('tradeguard.alert_min_severity', true)));
    v_blocks   jsonb;
    v_events   jsonb;
    v_alerts   bigint;
    v_risky    jsonb;
    v_failed   bigint;
    v_run      jsonb;
    v_chain    jsonb;
    v_digest   jsonb;
    v_frozen   boolean;
    v_open     bigint;
BEGIN
    IF v_min IS NULL OR tradeguard_audit.severity_rank(v_min) IS NULL THEN
        v_min := 'high';
    END IF;

    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'source', b.source, 'role_name', b.role_name, 'reason', b.reason,
               'blocked_at', b.blocked_at, 'blocked_until', b.blocked_until, 'created_by', b.created_by)
               ORDER BY b.blocked_at, b.id), '[]'::jsonb)
      INTO v_blocks
      FROM tradeguard_audit.blocked_sources b
     WHERE b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now();

    SELECT pg_catalog.jsonb_object_agg(l.severity, coalesce(c.n, 0) ORDER BY l.ord),
           coalesce(pg_catalog.sum(c.n) FILTER (WHERE l.ord >= tradeguard_audit.severity_rank(v_min)), 0)
      INTO v_events, v_alerts
      FROM pg_catalog.unnest(ARRAY['info', 'low', 'medium', 'high', 'critical']) WITH ORDINALITY AS l(severity, ord)
      LEFT JOIN (SELECT e.severity, pg_catalog.count(*) AS n
                   FROM tradeguard_audit.security_events e
                  WHERE e.at > pg_catalog.now() - interval '24 hours'
                  GROUP BY e.severity) c ON c.severity = l.severity;

    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'source', pg_catalog.host(r.source), 'score', r.score, 'failed_logins', r.failed_logins,
               'injection_attempts', r.injection_attempts, 'blocked_logins', r.blocked_logins, 'last_seen', r.last_seen)
               ORDER BY r.score DESC, r.source), '[]'::jsonb)
      INTO v_risky
      FROM tradeguard.source_risk(interval '1 hour') r
     WHERE r.score >= 50;

    SELECT GREATEST(
             (SELECT pg_catalog.count(*) FROM tradeguard_audit.auth_events a
               WHERE NOT a.success AND NOT a.blocked AND a.at > pg_catalog.now() - interval '1 hour'),
             (SELECT pg_catalog.count(*) FROM tradeguard_audit.security_events e
               WHERE e.event_type = 'login_failed' AND e.at > pg_catalog.now() - interval '1 hour'))
      INTO v_failed;

    SELECT pg_catalog.jsonb_build_object('run_id', r.id, 'profile', r.profile, 'score', r.score,
                                         'started_at', r.started_at, 'finished_at', r.finished_at, 'run_by', r.run_by)
      INTO v_run
      FROM tradeguard_audit.audit_runs r
     ORDER BY r.id DESC LIMIT 1;

    BEGIN
        SELECT pg_catalog.jsonb_build_object('ok', v.ok, 'blocks_checked', v.blocks_checked, 'rows_checked', v.rows_checked,
                                             'first_bad_block', v.first_bad_block, 'first_bad_id', v.first_bad_id,
                                             'reason', v.reason)
          INTO v_chain
          FROM tradeguard.verify() v;
    EXCEPTION WHEN OTHERS THEN
        v_chain := pg_catalog.jsonb_build_object('ok', NULL, 'error', SQLERRM);
    END;

    BEGIN
        SELECT pg_catalog.jsonb_build_object('block_no', d.block_no, 'hash', d.hash, 'sealed_at', d.sealed_at)
          INTO v_digest
          FROM tradeguard.audit_digest() d;
    EXCEPTION WHEN OTHERS THEN
        v_digest := pg_catalog.jsonb_build_object('error', SQLERRM);
    END;

    SELECT f.frozen INTO v_frozen FROM tradeguard_audit.decryption_freeze f WHERE f.id = 1;
    SELECT pg_catalog.count(*) INTO v_open FROM tradeguard_audit.incidents i WHERE i.status = 'open';

    RETURN pg_catalog.jsonb_build_object(
        'checked_at', pg_catalog.now(),
        'blocked_sources', pg_catalog.jsonb_build_object('count', pg_catalog.jsonb_array_length(v_blocks), 'list', v_blocks),
        'events_24h', v_events,
        'alert_min_severity', v_min,
        'alerts_24h', v_alerts,
        'high_risk_sources', v_risky,
        'failed_logins_last_hour', v_failed,
        'last_self_audit', v_run,
        'audit_chain', v_chain,
        'latest_digest', v_digest,
        'decryption_frozen', coalesce(v_frozen, false),
        'open_incidents', v_open);
END
$fn$;
COMMENT ON FUNCTION tradeguard.security_status() IS
    'tradeguard: the daily check as one jsonb: blocked_sources {count, list}, events_24h by severity, alert_min_severity, alerts_24h (events at or above it), high_risk_sources (source_risk score >= 50 over the last hour), failed_logins_last_hour, last_self_audit {run_id, profile, score, started_at, finished_at, run_by} (null when never run), audit_chain (tradeguard.verify(): ok, blocks_checked, rows_checked, first_bad_block, first_bad_id, reason), latest_digest {block_no, hash, sealed_at} (null before the first seal), decryption_frozen, open_incidents, checked_at';

------------------------------------------------------------------------------------------------
-- Incident response (admin)
------------------------------------------------------------------------------------------------

-- Everything an investigator wants frozen in time when an incident starts. Query texts of other
-- sessions are left out: they can carry passwords.
CREATE FUNCTION tradeguard_audit.incident_snapshot() RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sessions jsonb;
    v_events   jsonb;
    v_blocks   jsonb;
    v_logins   jsonb;
    v_supers   jsonb;
    v_findings jsonb;
    v_digest   jsonb;
    v_frozen   boolean;
BEGIN
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'pid', a.pid, 'user', a.usename, 'database', a.datname, 'client', pg_catalog.host(a.client_addr),
               'application', a.application_name, 'state', a.state, 'backend_start', a.backend_start,
               'xact_start', a.xact_start, 'wait_event', a.wait_event,
               'ssl', coalesce(s.ssl, false), 'tls_version', s.version, 'cipher', s.cipher,
               'client_cert', s.client_dn)
               ORDER BY a.backend_start, a.pid), '[]'::jsonb)
      INTO v_sessions
      FROM pg_catalog.pg_stat_activity a
      LEFT JOIN pg_catalog.pg_stat_ssl s ON s.pid = a.pid
     WHERE a.backend_type = 'client backend';

    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'id', e.id, 'at', e.at, 'event_type', e.event_type, 'severity', e.severity,
               'source', pg_catalog.host(e.source), 'role_name', e.role_name, 'detail', e.detail)
               ORDER BY e.id DESC), '[]'::jsonb)
      INTO v_events
      FROM (SELECT * FROM tradeguard_audit.security_events x
             WHERE x.at > pg_catalog.now() - interval '24 hours'
             ORDER BY x.id DESC LIMIT 200) e;

    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'id', b.id, 'source', b.source, 'role_name', b.role_name, 'reason', b.reason,
               'blocked_at', b.blocked_at, 'blocked_until', b.blocked_until, 'created_by', b.created_by)
               ORDER BY b.id), '[]'::jsonb)
      INTO v_blocks
      FROM tradeguard_audit.blocked_sources b
     WHERE b.lifted_at IS NULL AND b.blocked_until > pg_catalog.now();

    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'role', r.rolname, 'superuser', r.rolsuper, 'createrole', r.rolcreaterole,
               'bypassrls', r.rolbypassrls, 'valid_until', r.rolvaliduntil, 'connection_limit', r.rolconnlimit)
               ORDER BY r.rolname), '[]'::jsonb)
      INTO v_logins
      FROM pg_catalog.pg_roles r
     WHERE r.rolcanlogin;

    SELECT coalesce(pg_catalog.jsonb_agg(r.rolname ORDER BY r.rolname), '[]'::jsonb)
      INTO v_supers
      FROM pg_catalog.pg_roles r
     WHERE r.rolsuper;

    BEGIN
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'level', f.level, 'check_id', f.check_id, 'category', f.category, 'object', f.object,
                   'title', f.title, 'detail', f.detail, 'accepted', f.accepted)
                   ORDER BY tradeguard_audit.severity_rank(f.level) DESC, f.check_id, f.object), '[]'::jsonb)
          INTO v_findings
          FROM tradeguard.compute_findings('full') f
         WHERE f.level IN ('critical', 'high');
    EXCEPTION WHEN OTHERS THEN
        v_findings := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('error', SQLERRM));
    END;

    BEGIN
        SELECT pg_catalog.jsonb_build_object('block_no', d.block_no, 'hash', d.hash, 'sealed_at', d.sealed_at)
          INTO v_digest
          FROM tradeguard.audit_digest() d;
    EXCEPTION WHEN OTHERS THEN
        v_digest := pg_catalog.jsonb_build_object('error', SQLERRM);
    END;

    SELECT f.frozen INTO v_frozen FROM tradeguard_audit.decryption_freeze f WHERE f.id = 1;

    RETURN pg_catalog.jsonb_build_object(
        'taken_at', pg_catalog.clock_timestamp(),
        'taken_by', SESSION_USER,
        'server_version', pg_catalog.current_setting('server_version'),
        'database', pg_catalog.current_database(),
        'sessions', v_sessions,
        'security_events', v_events,
        'blocks', v_blocks,
        'login_roles', v_logins,
        'superusers', v_supers,
        'findings', v_findings,
        'audit_digest', v_digest,
        'decryption_frozen', coalesce(v_frozen, false));
END
$fn$;
COMMENT ON FUNCTION tradeguard_audit.incident_snapshot() IS
    'tradeguard: the incident snapshot (sessions with TLS state, security events of the last 24 h (200 newest), active blocks, login and superuser roles, critical and high findings, latest audit digest)';

CREATE FUNCTION tradeguard.incident_open(kind text, note text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_kind text := pg_catalog.lower(pg_catalog.btrim($1));
    v_note text := $2;
    v_id   bigint;
BEGIN
    IF v_kind IS NULL OR v_kind NOT IN ('unauthorized_access', 'data_breach', 'malware', 'other') THEN
        RAISE EXCEPTION 'tradeguard: unknown incident kind "%"', $1
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use unauthorized_access, data_breach, malware or other.';
    END IF;
    INSERT INTO tradeguard_audit.incidents (kind, note, opened_at, opened_by, status, snapshot)
    VALUES (v_kind, v_note, pg_catalog.now(), SESSION_USER, 'open', tradeguard_audit.incident_snapshot())
    RETURNING id INTO v_id;
    PERFORM tradeguard_audit.incident_action(v_id, 'open', v_kind, pg_catalog.jsonb_build_object('note', v_note));
    PERFORM tradeguard_audit.record_event('incident_open', 'high', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('incident_id', v_id, 'kind', v_kind));
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION tradeguard.incident_open(text, text) IS
    'tradeguard (admin): open an incident (unauthorized_access, data_breach, malware, other) and take its snapshot at once; containment calls are recorded against the most recent open incident; returns its id';

CREATE FUNCTION tradeguard.contain_role(role name) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role     name := $1;
    v_incident bigint;
    v_oid      oid;
    v_super    boolean;
    v_special  boolean;
    v_login    boolean;
    v_n        integer;
BEGIN
    v_incident := tradeguard_audit.open_incident();
    SELECT r.oid, r.rolsuper, r.rolreplication OR r.rolbypassrls, r.rolcanlogin INTO v_oid, v_super, v_special, v_login
      FROM pg_catalog.pg_roles r WHERE r.rolname = v_role;
    IF v_oid IS NULL THEN
        RAISE EXCEPTION 'tradeguard: role "%" does not exist', v_role USING ERRCODE = 'undefined_object';
    END IF;
    IF v_oid = 10 THEN
        RAISE EXCEPTION 'tradeguard: refusing to contain the bootstrap superuser "%"', v_role
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The bootstrap superuser is the last way in; restrict it in pg_hba.conf instead.';
    END IF;
    IF v_role = SESSION_USER THEN
        RAISE EXCEPTION 'tradeguard: refusing to contain your own role "%"', v_role
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_oid = (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'tradeguard_audit') THEN
        RAISE EXCEPTION 'tradeguard: refusing to contain "%", the owner of tradeguard', v_role
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- What PostgreSQL itself reserves to superusers: altering a superuser, a REPLICATION or a
    -- BYPASSRLS role (a standby's walsender would be terminated too).
    IF (v_super OR v_special) AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER), false) THEN
        RAISE EXCEPTION 'tradeguard: only a superuser may contain the % "%"',
                CASE WHEN v_super THEN 'superuser' ELSE 'REPLICATION or BYPASSRLS role' END, v_role
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE pg_catalog.format('ALTER ROLE %I NOLOGIN', v_role);
    SELECT pg_catalog.count(*) INTO v_n
      FROM (SELECT pg_catalog.pg_terminate_backend(a.pid) AS done
              FROM pg_catalog.pg_stat_activity a
             WHERE a.usesysid = v_oid AND a.pid <> pg_catalog.pg_backend_pid()) t
     WHERE t.done;
    PERFORM tradeguard_audit.incident_action(v_incident, 'contain_role', v_role::text,
        pg_catalog.jsonb_build_object('could_login', v_login, 'superuser', v_super, 'sessions_terminated', v_n));
    PERFORM tradeguard_audit.record_event('containment', 'high', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('incident_id', v_incident, 'action', 'contain_role', 'role', v_role,
                                      'sessions_terminated', v_n));
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION tradeguard.contain_role(name) IS
    'tradeguard (admin): during an open incident, make the role NOLOGIN and terminate its sessions (not the bootstrap superuser, the tradeguard owner or yourself; a superuser, REPLICATION or BYPASSRLS role only by a superuser); recorded; returns the sessions terminated. Undo with ALTER ROLE ... LOGIN';

CREATE FUNCTION tradeguard.contain_source(source cidr) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_source   cidr := $1;
    v_incident bigint;
    v_until    timestamptz;
    v_block    bigint;
    v_n        integer;
    v_spared   integer;
    v_caller_super boolean;
BEGIN
    v_incident := tradeguard_audit.open_incident();
    IF v_source IS NULL THEN
        RAISE EXCEPTION 'tradeguard: give the client address or network to contain'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.inet_client_addr() IS NOT NULL AND pg_catalog.inet_client_addr() <<= v_source THEN
        RAISE EXCEPTION 'tradeguard: refusing to contain %, which covers your own address', v_source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect over the Unix socket or from an address outside it.';
    END IF;
    v_until := pg_catalog.now() + 4 * tradeguard_audit.setting_seconds('tradeguard.lockout_duration', 900);
    INSERT INTO tradeguard_audit.blocked_sources (source, role_name, reason, blocked_at, blocked_until, created_by)
    VALUES (v_source, NULL, pg_catalog.format('incident %s: contained', v_incident), pg_catalog.now(), v_until, SESSION_USER)
    RETURNING id INTO v_block;
    -- A superuser's sessions are terminated only for a superuser (as pg_terminate_backend
    -- itself would decide for the caller); the others are counted and left to a superuser.
    v_caller_super := coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER), false);
    SELECT pg_catalog.count(*) FILTER (WHERE t.done), pg_catalog.count(*) FILTER (WHERE t.done IS NULL) INTO v_n, v_spared
      FROM (SELECT CASE WHEN v_caller_super OR NOT coalesce(r.rolsuper, true)
                        THEN pg_catalog.pg_terminate_backend(a.pid) END AS done
              FROM pg_catalog.pg_stat_activity a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
             WHERE a.client_addr <<= v_source AND a.backend_type = 'client backend'
               AND a.pid <> pg_catalog.pg_backend_pid()) t;
    IF v_spared > 0 THEN
        RAISE WARNING 'tradeguard: % superuser session(s) from % left running', v_spared, v_source
            USING HINT = 'Only a superuser may terminate a superuser''s sessions; the block applies to their new connections.';
    END IF;
    PERFORM tradeguard_audit.incident_action(v_incident, 'contain_source', v_source::text,
        pg_catalog.jsonb_build_object('block_id', v_block, 'until', v_until, 'sessions_terminated', v_n,
                                      'superuser_sessions_left', v_spared));
    PERFORM tradeguard_audit.record_event('containment', 'high', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('incident_id', v_incident, 'action', 'contain_source', 'source', v_source,
                                      'block_id', v_block, 'until', v_until, 'sessions_terminated', v_n,
                                      'superuser_sessions_left', v_spared));
    PERFORM tradeguard_audit.sync_state();
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION tradeguard.contain_source(cidr) IS
    'tradeguard (admin): during an open incident, block the address or network for 4 x tradeguard.lockout_duration (or until tradeguard.unblock()) and terminate its sessions (a superuser''s only when called by a superuser); refused when it covers your own address; recorded; returns the sessions terminated';

CREATE FUNCTION tradeguard.freeze_decryption() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_incident bigint := tradeguard_audit.open_incident();
    v_changed  integer;
BEGIN
    INSERT INTO tradeguard_audit.decryption_freeze AS f (id, frozen, changed_at, changed_by, incident_id)
    VALUES (1, true, pg_catalog.now(), SESSION_USER, v_incident)
    ON CONFLICT (id) DO UPDATE
       SET frozen = true, changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by,
           incident_id = EXCLUDED.incident_id
     WHERE NOT f.frozen;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    PERFORM tradeguard_audit.incident_action(v_incident, 'freeze_decryption', NULL,
        pg_catalog.jsonb_build_object('already_frozen', v_changed = 0));
    PERFORM tradeguard_audit.record_event('containment', 'high', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('incident_id', v_incident, 'action', 'freeze_decryption',
                                      'already_frozen', v_changed = 0));
    PERFORM tradeguard_audit.sync_state();
    RETURN v_changed > 0;
END
$fn$;
COMMENT ON FUNCTION tradeguard.freeze_decryption() IS
    'tradeguard (admin): during an open incident, stop all decryption except by the admin until tradeguard.unfreeze_decryption(); recorded; true when it was not frozen yet';

CREATE FUNCTION tradeguard.unfreeze_decryption() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_open     bigint;
    v_frozen_by bigint;
    v_incident bigint;
    v_changed  integer;
BEGIN
    SELECT i.id INTO v_open FROM tradeguard_audit.incidents i
     WHERE i.status = 'open' ORDER BY i.opened_at DESC, i.id DESC LIMIT 1;
    SELECT f.incident_id INTO v_frozen_by FROM tradeguard_audit.decryption_freeze f WHERE f.id = 1 AND f.frozen;
    v_incident := coalesce(v_open, v_frozen_by);
    UPDATE tradeguard_audit.decryption_freeze f
       SET frozen = false, changed_at = pg_catalog.now(), changed_by = SESSION_USER, incident_id = v_incident
     WHERE f.id = 1 AND f.frozen;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    IF v_incident IS NOT NULL THEN
        PERFORM tradeguard_audit.incident_action(v_incident, 'unfreeze_decryption', NULL,
            pg_catalog.jsonb_build_object('was_frozen', v_changed > 0));
    END IF;
    PERFORM tradeguard_audit.record_event('containment_lifted', 'medium', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('incident_id', v_incident, 'action', 'unfreeze_decryption', 'was_frozen', v_changed > 0));
    PERFORM tradeguard_audit.sync_state();
    RETURN v_changed > 0;
END
$fn$;
COMMENT ON FUNCTION tradeguard.unfreeze_decryption() IS
    'tradeguard (admin): allow decryption again (also after the incident is closed); recorded against the open incident, or the one that froze it; true when it was frozen';

CREATE FUNCTION tradeguard.incident_close(id bigint, summary text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id      bigint := $1;
    v_summary text := pg_catalog.btrim($2);
    v_status  text;
BEGIN
    SELECT i.status INTO v_status FROM tradeguard_audit.incidents i WHERE i.id = v_id FOR UPDATE;
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'tradeguard: incident % does not exist', v_id USING ERRCODE = 'undefined_object';
    END IF;
    IF v_status <> 'open' THEN
        RAISE EXCEPTION 'tradeguard: incident % is already closed', v_id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_summary IS NULL OR v_summary = '' THEN
        RAISE EXCEPTION 'tradeguard: give a summary to close incident %', v_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE tradeguard_audit.incidents i
       SET status = 'closed', closed_at = pg_catalog.now(), closed_by = SESSION_USER, summary = v_summary
     WHERE i.id = v_id;
    PERFORM tradeguard_audit.incident_action(v_id, 'close', NULL, pg_catalog.jsonb_build_object('summary', v_summary));
    PERFORM tradeguard_audit.record_event('incident_close', 'medium', pg_catalog.inet_client_addr(), SESSION_USER,
        pg_catalog.jsonb_build_object('incident_id', v_id));
    IF EXISTS (SELECT 1 FROM tradeguard_audit.decryption_freeze f WHERE f.id = 1 AND f.frozen) THEN
        RAISE NOTICE 'tradeguard: decryption is still frozen'
            USING HINT = 'SELECT tradeguard.unfreeze_decryption(); when it is safe.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION tradeguard.incident_close(bigint, text) IS
    'tradeguard (admin): close an open incident with a summary (blocks and NOLOGIN stay as they are); recorded';

CREATE FUNCTION tradeguard.incident_report(id bigint, format text DEFAULT 'markdown') RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id     bigint := $1;
    v_format text := pg_catalog.lower(coalesce($2, 'markdown'));
    i        tradeguard_audit.incidents%ROWTYPE;
    s        jsonb;
    v_out    text[] := '{}';
    v_ev     jsonb;
    r        record;
BEGIN
    IF v_format NOT IN ('markdown', 'json') THEN
        RAISE EXCEPTION 'tradeguard: unknown report format "%"', $2
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use markdown or json.';
    END IF;
    SELECT * INTO i FROM tradeguard_audit.incidents x WHERE x.id = v_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tradeguard: incident % does not exist', v_id USING ERRCODE = 'undefined_object';
    END IF;
    s := i.snapshot;

    IF v_format = 'json' THEN
        RETURN pg_catalog.jsonb_pretty(pg_catalog.jsonb_build_object(
            'incident', pg_catalog.to_jsonb(i) - 'snapshot',
            'snapshot', s,
            'timeline', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                 'at', a.at, 'action', a.action, 'target', a.target, 'by', a.done_by, 'detail', a.detail)
                                 ORDER BY a.at, a.id), '[]'::jsonb)
                           FROM tradeguard_audit.incident_actions a WHERE a.incident_id = v_id)));
    END IF;

    SELECT pg_catalog.jsonb_object_agg(l.sev, (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(s -> 'security_events') e
                                               WHERE e ->> 'severity' = l.sev))
      INTO v_ev
      FROM pg_catalog.unnest(ARRAY['critical', 'high', 'medium', 'low', 'info']) l(sev);

    v_out := v_out || pg_catalog.format('# Incident %s: %s (%s)', i.id, i.kind, i.status) || ''::text;
    v_out := v_out || pg_catalog.format('- Opened: %s by %s', i.opened_at, tradeguard_audit.md_text(i.opened_by));
    v_out := v_out || CASE WHEN i.status = 'closed' THEN pg_catalog.format('- Closed: %s by %s', i.closed_at, tradeguard_audit.md_text(i.closed_by))
                           ELSE '- Closed: still open' END;
    v_out := v_out || pg_catalog.format('- Note: %s', tradeguard_audit.md_text(i.note));
    v_out := v_out || pg_catalog.format('- Summary: %s', CASE WHEN i.summary IS NULL THEN '(none yet)' ELSE tradeguard_audit.md_text(i.summary) END) || ''::text;

    v_out := v_out || '## Snapshot at opening'::text || ''::text;
    v_out := v_out || pg_catalog.format('- Taken at: %s by %s', s ->> 'taken_at', tradeguard_audit.md_text(s ->> 'taken_by'));
    v_out := v_out || pg_catalog.format('- Sessions: %s (%s with TLS)',
        pg_catalog.jsonb_array_length(s -> 'sessions'),
        (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(s -> 'sessions') x WHERE (x ->> 'ssl')::boolean));
    v_out := v_out || pg_catalog.format('- Security events in the 24 h before: %s (critical %s, high %s, medium %s, low %s, info %s)',
        pg_catalog.jsonb_array_length(s -> 'security_events'),
        v_ev ->> 'critical', v_ev ->> 'high', v_ev ->> 'medium', v_ev ->> 'low', v_ev ->> 'info');
    v_out := v_out || pg_catalog.format('- Active blocks: %s', pg_catalog.jsonb_array_length(s -> 'blocks'));
    v_out := v_out || pg_catalog.format('- Login roles: %s; superusers: %s',
        pg_catalog.jsonb_array_length(s -> 'login_roles'),
        (SELECT coalesce(pg_catalog.string_agg(tradeguard_audit.md_text(x), ', ' ORDER BY x), 'none') FROM pg_catalog.jsonb_array_elements_text(s -> 'superusers') x));
    v_out := v_out || pg_catalog.format('- Critical and high findings: %s',
        (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(s -> 'findings') x WHERE x ? 'check_id'));
    v_out := v_out || CASE WHEN s -> 'audit_digest' ? 'hash'
                           THEN pg_catalog.format('- Audit digest: block %s, hash %s', s -> 'audit_digest' ->> 'block_no', s -> 'audit_digest' ->> 'hash')
                           ELSE '- Audit digest: none sealed yet' END;
    v_out := v_out || pg_catalog.format('- Decryption frozen at opening: %s',
        CASE WHEN (s ->> 'decryption_frozen')::boolean THEN 'yes' ELSE 'no' END) || ''::text;

    v_out := v_out || '### Sessions'::text || ''::text
                   || '| pid | user | database | client | application | state | TLS |'::text
                   || '|---|---|---|---|---|---|---|'::text;
    FOR r IN SELECT x FROM pg_catalog.jsonb_array_elements(s -> 'sessions') x LOOP
        v_out := v_out || pg_catalog.format('| %s | %s | %s | %s | %s | %s | %s |',
            r.x ->> 'pid', tradeguard_audit.md_text(r.x ->> 'user'), tradeguard_audit.md_text(r.x ->> 'database'),
            coalesce(r.x ->> 'client', 'local'), tradeguard_audit.md_text(r.x ->> 'application'),
            tradeguard_audit.md_text(r.x ->> 'state'),
            CASE WHEN (r.x ->> 'ssl')::boolean THEN pg_catalog.format('%s %s', r.x ->> 'tls_version', r.x ->> 'cipher') ELSE 'no' END);
    END LOOP;
    v_out := v_out || ''::text;

    v_out := v_out || '### Findings (critical and high)'::text || ''::text
                   || '| level | check | object | title |'::text || '|---|---|---|---|'::text;
    FOR r IN SELECT x FROM pg_catalog.jsonb_array_elements(s -> 'findings') x LOOP
        v_out := v_out || pg_catalog.format('| %s | %s | %s | %s |',
            coalesce(r.x ->> 'level', 'error'), tradeguard_audit.md_text(r.x ->> 'check_id'),
            tradeguard_audit.md_text(r.x ->> 'object'), tradeguard_audit.md_text(coalesce(r.x ->> 'title', r.x ->> 'error')));
    END LOOP;
    v_out := v_out || ''::text;

    v_out := v_out || '## Timeline'::text || ''::text
                   || '| at | action | target | by | detail |'::text || '|---|---|---|---|---|'::text;
    FOR r IN SELECT a.* FROM tradeguard_audit.incident_actions a WHERE a.incident_id = v_id ORDER BY a.at, a.id LOOP
        v_out := v_out || pg_catalog.format('| %s | %s | %s | %s | %s |',
            r.at, r.action, tradeguard_audit.md_text(r.target), tradeguard_audit.md_text(r.done_by),
            tradeguard_audit.md_text(r.detail::text));
    END LOOP;

    RETURN pg_catalog.array_to_string(v_out, E'\n') || E'\n';
END
$fn$;
COMMENT ON FUNCTION tradeguard.incident_report(bigint, text) IS
    'tradeguard: the write-up of an incident (format markdown, the default, or json): header, snapshot summary, sessions, critical and high findings, and the timeline of actions';

------------------------------------------------------------------------------------------------
-- Privileges: readers get the views and reading functions, the admin the actions.
------------------------------------------------------------------------------------------------

REVOKE ALL ON FUNCTION
    tradeguard_audit.severity_rank(text), tradeguard_audit.setting_int(text, integer),
    tradeguard_audit.setting_seconds(text, integer), tradeguard_audit.exempt_cidrs(),
    tradeguard_audit.record_event(text, text, inet, text, jsonb), tradeguard_audit.open_incident(),
    tradeguard_audit.incident_action(bigint, text, text, jsonb), tradeguard_audit.md_text(text), tradeguard_audit.md_code(text), tradeguard_audit.one_line(text),
    tradeguard_audit.evaluate_risk(), tradeguard_audit.alert_trigger(), tradeguard_audit.incident_snapshot(),
    tradeguard.block(cidr, text, interval), tradeguard.unblock(cidr), tradeguard.unblock_role(text),
    tradeguard.source_risk(interval), tradeguard.security_status(),
    tradeguard.incident_open(text, text), tradeguard.contain_role(name), tradeguard.contain_source(cidr),
    tradeguard.freeze_decryption(), tradeguard.unfreeze_decryption(), tradeguard.incident_close(bigint, text),
    tradeguard.incident_report(bigint, text)
  FROM PUBLIC;
REVOKE ALL ON tradeguard_audit.auth_events, tradeguard_audit.blocked_sources, tradeguard_audit.decryption_freeze,
    tradeguard_audit.incidents, tradeguard_audit.incident_actions
  FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    tradeguard.source_risk(interval), tradeguard.security_status(), tradeguard.incident_report(bigint, text)
  TO tradeguard_auditor;
GRANT EXECUTE ON FUNCTION
    tradeguard.block(cidr, text, interval), tradeguard.unblock(cidr), tradeguard.unblock_role(text),
    tradeguard.incident_open(text, text), tradeguard.contain_role(name), tradeguard.contain_source(cidr),
    tradeguard.freeze_decryption(), tradeguard.unfreeze_decryption(), tradeguard.incident_close(bigint, text)
  TO tradeguard_admin;
GRANT SELECT ON tradeguard.auth_events, tradeguard.failed_logins, tradeguard.blocked_sources,
    tradeguard.block_history, tradeguard.incidents, tradeguard.incident_actions
  TO tradeguard_auditor;
