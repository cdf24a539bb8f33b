-- Signed audit trail: protected tables, triggers, views and grants.

CREATE TABLE tradeguard_audit.audited_tables (
    -- regclass, not oid: pg_dump writes the table's name and pg_restore reads it back as the
    -- restored table's new OID (an oid would name another table, or none, after a restore).
    relid            regclass PRIMARY KEY,
    schema_name      text NOT NULL,
    table_name       text NOT NULL,
    exclude_columns  text[] NOT NULL DEFAULT '{}',
    pk_columns       text[] NOT NULL DEFAULT '{}',
    added_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    added_by         text NOT NULL,
    -- Names the table had before a rename, SET SCHEMA or schema rename, oldest first:
    -- [{"schema", "table", "until": id of the trail row that recorded the change}] (history()
    -- reads rows up to "until" under that name).
    former_names     jsonb NOT NULL DEFAULT '[]',
    -- The id of the AUDIT_TABLE row that registered the table: its history starts there.
    since_id         bigint
);
COMMENT ON TABLE tradeguard_audit.audited_tables IS 'tradeguard: tables that carry the audit triggers';

-- Tables whose auditing unaudit_table stopped. audit_table on the same table again (same OID and
-- name) continues its history() from where it started, with the names it had, instead of
-- starting anew. An oid, and not dumped: after a restore, a DROP, or once another table is
-- audited under that name, its history starts anew.
CREATE TABLE tradeguard_audit.paused_tables (
    relid         oid PRIMARY KEY,
    schema_name   text NOT NULL,
    table_name    text NOT NULL,
    former_names  jsonb NOT NULL,
    since_id      bigint NOT NULL,
    paused_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tradeguard_audit.paused_tables IS 'tradeguard: audited tables whose auditing was stopped (their history() continues if audited again)';

-- (A sequence, not an identity column: PostgreSQL 15 has no identity on a partitioned table.)
CREATE SEQUENCE tradeguard_audit.log_id_seq;
CREATE TABLE tradeguard_audit.log (
    id                 bigint NOT NULL DEFAULT pg_catalog.nextval('tradeguard_audit.log_id_seq'),
    txid               bigint NOT NULL,
    at                 timestamptz NOT NULL,
    schema_name        text NOT NULL,
    table_name         text NOT NULL,
    operation          text NOT NULL,
    pk                 jsonb,
    old_row            jsonb,
    new_row            jsonb,
    current_user_name  text NOT NULL,
    session_user_name  text NOT NULL,
    application_name   text,
    client_addr        inet,
    app_context        jsonb,
    signature          bytea NOT NULL,
    pk_hash            bigint,
    block_no           bigint
) PARTITION BY LIST (block_no);
ALTER SEQUENCE tradeguard_audit.log_id_seq OWNED BY tradeguard_audit.log.id;
-- Two partitions: the rows not sealed yet (block_no NULL), where the writers insert, and the
-- sealed rows, where sealing moves them. Every audited change pays for the indexes a new row
-- enters, so a new row enters one: log_unsealed's index on id, appended to at its right end (the
-- sealer finds unsealed rows there in id order). The sealed partition's indexes are filled by the
-- sealer, off the writers' path, and it only grows (no dead row versions left by sealing):
-- - (block_no, id): reads a block, finds rows by block (verify, retention);
-- - (id), unique: finds a sealed row by id; no two sealed rows share an id;
-- - pk_hash: history() finds a row's sealed changes through the jsonb hash of its primary key
--   image (jsonb_hash_extended(pk, 0), as hash partitioning computes it; verify() checks it
--   against pk). A hash index: it serves equality only, so no range query over block_no
--   (verify's scan) is ever planned through it.
-- A query on tradeguard_audit.log reads both through their id indexes (a lookup by id, ORDER BY
-- id LIMIT n), or one of them when it names sealed or unsealed rows.
CREATE TABLE tradeguard_audit.log_unsealed PARTITION OF tradeguard_audit.log FOR VALUES IN (NULL);
CREATE TABLE tradeguard_audit.log_sealed PARTITION OF tradeguard_audit.log DEFAULT;
CREATE INDEX log_unsealed_id ON tradeguard_audit.log_unsealed (id);
CREATE UNIQUE INDEX log_sealed_id ON tradeguard_audit.log_sealed (id);
CREATE INDEX log_block ON tradeguard_audit.log_sealed (block_no, id);
CREATE INDEX log_row ON tradeguard_audit.log_sealed USING hash (pk_hash);
COMMENT ON TABLE tradeguard_audit.log_unsealed IS 'tradeguard: audit trail rows not sealed into a block yet (a partition of tradeguard_audit.log)';
COMMENT ON TABLE tradeguard_audit.log_sealed IS 'tradeguard: audit trail rows sealed into blocks (a partition of tradeguard_audit.log)';
COMMENT ON TABLE tradeguard_audit.log IS 'tradeguard: the audit trail; each row HMAC-signed at write time (jsonb fields in their canonical binary form)';

-- Taken (LOCK TABLE ... IN EXCLUSIVE MODE) by the sealer so that one seal runs at a time. A
-- table no role but the owner may lock, not an advisory lock: any role may take an advisory
-- lock, and holding this one would stop sealing and the worker with it.
CREATE TABLE tradeguard_audit.seal_lock ();
COMMENT ON TABLE tradeguard_audit.seal_lock IS 'tradeguard: a lock, not data (one seal at a time)';

CREATE TABLE tradeguard_audit.blocks (
    block_no     bigint PRIMARY KEY,
    prev_mac     bytea NOT NULL,
    merkle_root  bytea NOT NULL,
    row_count    bigint NOT NULL,
    first_id     bigint NOT NULL,
    last_id      bigint NOT NULL,
    sealed_at    timestamptz NOT NULL,
    ids          bigint[] NOT NULL,
    mac          bytea NOT NULL
);
COMMENT ON TABLE tradeguard_audit.blocks IS 'tradeguard: sealed blocks of the trail, each MAC-chained to the previous one';
-- A block's ids (8 bytes per sealed row) are stored out of line uncompressed: compressing tens of
-- thousands of them with pglz cost the sealer about a microsecond per row, for a saving of a few
-- bytes per trail row of some 300.
ALTER TABLE tradeguard_audit.blocks ALTER COLUMN ids SET STORAGE EXTERNAL;

CREATE TABLE tradeguard_audit.retention (
    through_block  bigint PRIMARY KEY,
    last_mac       bytea NOT NULL,
    reason         text NOT NULL,
    removed_by     text NOT NULL,
    rows_removed   bigint NOT NULL,
    removed_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- HMAC with the audit key over the row's other columns but removed_at: an anchor inserted or
    -- changed by hand (under break-glass) does not verify.
    mac            bytea NOT NULL
);
COMMENT ON TABLE tradeguard_audit.retention IS 'tradeguard: archived blocks and the MAC verify() anchors to';

SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.audited_tables', '');
-- (The partitions hold the rows: pg_dump dumps theirs.)
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.log_unsealed', '');
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.log_sealed', '');
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.blocks', '');
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.retention', '');

-- Nobody writes the trail but tradeguard: not the owner, not a superuser in replica mode.
-- The trail refuses UPDATE and DELETE per statement, not per row: sealing moves every row from
-- one partition to the other, and a row trigger on UPDATE or DELETE would cost each row a
-- trigger call and a tuple lock (WAL-logged) for a check that does not depend on the row.
-- INSERT is checked per row (restore mode looks at each restored row's id).
CREATE TRIGGER tradeguard_protect BEFORE INSERT ON tradeguard_audit.log
    FOR EACH ROW EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_write BEFORE UPDATE OR DELETE ON tradeguard_audit.log
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_truncate BEFORE TRUNCATE ON tradeguard_audit.log
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
-- (Row triggers are cloned onto partitions; statement triggers are not, and a partition can be
-- updated, deleted from or truncated by name.)
CREATE TRIGGER tradeguard_protect_write BEFORE UPDATE OR DELETE ON tradeguard_audit.log_unsealed
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_truncate BEFORE TRUNCATE ON tradeguard_audit.log_unsealed
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_write BEFORE UPDATE OR DELETE ON tradeguard_audit.log_sealed
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_truncate BEFORE TRUNCATE ON tradeguard_audit.log_sealed
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect BEFORE INSERT OR UPDATE OR DELETE ON tradeguard_audit.blocks
    FOR EACH ROW EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_truncate BEFORE TRUNCATE ON tradeguard_audit.blocks
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect BEFORE INSERT OR UPDATE OR DELETE ON tradeguard_audit.retention
    FOR EACH ROW EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_truncate BEFORE TRUNCATE ON tradeguard_audit.retention
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
-- The registrations too: what an audited table excludes, and the names its paused history
-- goes by, are changed through audit_table and unaudit_table only (recorded).
CREATE TRIGGER tradeguard_protect BEFORE INSERT OR UPDATE OR DELETE ON tradeguard_audit.audited_tables
    FOR EACH ROW EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_truncate BEFORE TRUNCATE ON tradeguard_audit.audited_tables
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect BEFORE INSERT OR UPDATE OR DELETE ON tradeguard_audit.paused_tables
    FOR EACH ROW EXECUTE FUNCTION tradeguard.protect_trigger();
CREATE TRIGGER tradeguard_protect_truncate BEFORE TRUNCATE ON tradeguard_audit.paused_tables
    FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.protect_trigger();
ALTER TABLE tradeguard_audit.audited_tables ENABLE ALWAYS TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.audited_tables ENABLE ALWAYS TRIGGER tradeguard_protect_truncate;
ALTER TABLE tradeguard_audit.paused_tables ENABLE ALWAYS TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.paused_tables ENABLE ALWAYS TRIGGER tradeguard_protect_truncate;
ALTER TABLE tradeguard_audit.log ENABLE ALWAYS TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.log ENABLE ALWAYS TRIGGER tradeguard_protect_write;
ALTER TABLE tradeguard_audit.log ENABLE ALWAYS TRIGGER tradeguard_protect_truncate;
ALTER TABLE tradeguard_audit.log_unsealed ENABLE ALWAYS TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.log_unsealed ENABLE ALWAYS TRIGGER tradeguard_protect_write;
ALTER TABLE tradeguard_audit.log_unsealed ENABLE ALWAYS TRIGGER tradeguard_protect_truncate;
ALTER TABLE tradeguard_audit.log_sealed ENABLE ALWAYS TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.log_sealed ENABLE ALWAYS TRIGGER tradeguard_protect_write;
ALTER TABLE tradeguard_audit.log_sealed ENABLE ALWAYS TRIGGER tradeguard_protect_truncate;
ALTER TABLE tradeguard_audit.blocks ENABLE ALWAYS TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.blocks ENABLE ALWAYS TRIGGER tradeguard_protect_truncate;
ALTER TABLE tradeguard_audit.retention ENABLE ALWAYS TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.retention ENABLE ALWAYS TRIGGER tradeguard_protect_truncate;

CREATE VIEW tradeguard.audit_log AS
SELECT id, txid, at, schema_name, table_name, operation, pk, old_row, new_row, current_user_name,
       session_user_name, application_name, client_addr, app_context, block_no, pk_hash
  FROM tradeguard_audit.log;
COMMENT ON VIEW tradeguard.audit_log IS 'tradeguard: the audit trail (read-only; signatures checked by verify())';

CREATE VIEW tradeguard.audit_blocks AS
SELECT block_no, row_count, first_id, last_id, sealed_at, pg_catalog.encode(mac, 'hex') AS hash
  FROM tradeguard_audit.blocks;
COMMENT ON VIEW tradeguard.audit_blocks IS 'tradeguard: sealed blocks of the audit chain';

-- Who removed which blocks and why: the ARCHIVE_BLOCKS trail row that says so can itself be
-- archived later; this record stays (the anchor verify() starts from).
CREATE VIEW tradeguard.audit_retention AS
SELECT through_block, rows_removed, reason, removed_by, removed_at
  FROM tradeguard_audit.retention;
COMMENT ON VIEW tradeguard.audit_retention IS 'tradeguard: blocks removed by archive_blocks (up to which block, how many rows, why, by whom, when)';

CREATE VIEW tradeguard.audited_tables AS
SELECT schema_name, table_name, exclude_columns, pk_columns, added_at, added_by,
       -- Both triggers, enabled ALWAYS: the row trigger and the TRUNCATE trigger.
       (SELECT pg_catalog.count(*) = 2 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = a.relid
           AND t.tgname IN ('tradeguard_audit_row', 'tradeguard_audit_truncate') AND t.tgenabled = 'A') AS trigger_enabled,
       former_names, since_id
  FROM tradeguard_audit.audited_tables a;
COMMENT ON VIEW tradeguard.audited_tables IS 'tradeguard: tables covered by the audit trail';

CREATE FUNCTION tradeguard.history(tbl regclass, pk jsonb)
RETURNS TABLE (id bigint, at timestamptz, operation text, changed_by text, session_user_name text,
               application_name text, client_addr inet, app_context jsonb, changes jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The walk back through key changes is tradeguard.history_ids() (src/audit/history.rs).
    SELECT l.id, l.at, l.operation, l.current_user_name, l.session_user_name, l.application_name,
           l.client_addr, l.app_context,
           CASE l.operation
             WHEN 'UPDATE' THEN (SELECT jsonb_object_agg(f, jsonb_build_object('old', l.old_row -> f, 'new', l.new_row -> f))
                                   FROM jsonb_object_keys(l.new_row) f
                                  WHERE (l.old_row -> f) IS DISTINCT FROM (l.new_row -> f))
             WHEN 'DELETE' THEN l.old_row
             ELSE l.new_row
           END
      FROM pg_catalog.unnest(tradeguard.history_ids(history.tbl, history.pk::text)) AS h(id)
      JOIN tradeguard.audit_log l ON l.id = h.id
     ORDER BY l.id
$$;
COMMENT ON FUNCTION tradeguard.history_ids(oid, text) IS 'tradeguard: the trail row ids history() lists (its walk back through key changes)';
COMMENT ON FUNCTION tradeguard.history(regclass, jsonb) IS 'tradeguard: who changed this row, when, from where, and what changed (oldest first; back through primary key changes)';

COMMENT ON FUNCTION tradeguard.audit_table(regclass, text[]) IS 'tradeguard: install the signed audit triggers on a table (idempotent)';
COMMENT ON FUNCTION tradeguard.unaudit_table(regclass) IS 'tradeguard: remove the audit triggers (recorded)';
COMMENT ON FUNCTION tradeguard.seal() IS 'tradeguard: seal committed rows into a new block now';
COMMENT ON FUNCTION tradeguard.verify(bigint, bigint) IS 'tradeguard: check every row signature, block and chain link; names the first bad one';
COMMENT ON FUNCTION tradeguard.audit_digest() IS 'tradeguard: latest block and hash, to keep outside the database';
COMMENT ON FUNCTION tradeguard.verify_digest(bigint, text) IS 'tradeguard: true when the chain still extends this digest';
COMMENT ON FUNCTION tradeguard.archive_blocks(bigint, text) IS 'tradeguard: remove old sealed blocks (recorded); verify() anchors to the last removed one';
COMMENT ON FUNCTION tradeguard.set_context(jsonb, boolean) IS 'tradeguard: application context (e.g. trader id) recorded with audit rows';
COMMENT ON FUNCTION tradeguard.break_glass(text) IS 'tradeguard: allow protected changes in this session (recorded)';

GRANT EXECUTE ON FUNCTION tradeguard.verify(bigint, bigint), tradeguard.audit_digest(),
    tradeguard.verify_digest(bigint, text), tradeguard.history(regclass, jsonb),
    tradeguard.history_ids(oid, text)
  TO tradeguard_auditor;
GRANT EXECUTE ON FUNCTION tradeguard.set_context(jsonb, boolean) TO tradeguard_encryptor, tradeguard_decryptor, tradeguard_auditor;
GRANT EXECUTE ON FUNCTION tradeguard.audit_table(regclass, text[]), tradeguard.unaudit_table(regclass),
    tradeguard.seal(), tradeguard.archive_blocks(bigint, text), tradeguard.break_glass(text),
    tradeguard.break_glass_end()
  TO tradeguard_admin;
GRANT SELECT ON tradeguard.audit_log, tradeguard.audit_blocks, tradeguard.audit_retention, tradeguard.audited_tables TO tradeguard_auditor;
