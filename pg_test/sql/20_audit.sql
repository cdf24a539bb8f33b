-- Signed audit trail: audit a table, trade, history, verify; tampering is named.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = error;

CREATE TABLE trades (
    id bigserial PRIMARY KEY,
    symbol text NOT NULL,
    side text NOT NULL,
    quantity numeric(18,4) NOT NULL,
    price numeric(18,4) NOT NULL,
    internal_note text
);
SELECT tradeguard.audit_table('trades', exclude_columns => ARRAY['internal_note']);
SELECT tradeguard.audit_table('trades', exclude_columns => ARRAY['internal_note']);  -- harmless twice
SELECT schema_name, table_name, exclude_columns, pk_columns, trigger_enabled FROM tradeguard.audited_tables;

-- Trading: the application sets who it acts for behind its pooled connection.
BEGIN;
SELECT tradeguard.set_context('{"trader": "T-042", "desk": "TSE equities"}') IS NOT NULL AS ctx_set;
INSERT INTO trades (symbol, side, quantity, price, internal_note) VALUES ('7203.T', 'buy', 100, 2849.5, 'not for the trail');
UPDATE trades SET price = 2851.0 WHERE symbol = '7203.T';
COMMIT;
INSERT INTO trades (symbol, side, quantity, price) VALUES ('AAPL', 'sell', 20, 228.31);
DELETE FROM trades WHERE symbol = 'AAPL';
-- A rolled-back transaction leaves nothing behind.
BEGIN;
INSERT INTO trades (symbol, side, quantity, price) VALUES ('MSFT', 'buy', 1, 1);
ROLLBACK;

SELECT operation, table_name, pk, new_row ? 'internal_note' AS note_recorded, app_context->>'trader' AS trader
  FROM tradeguard.audit_log WHERE table_name = 'trades' ORDER BY id;
SELECT operation, changed_by IS NOT NULL AS who, app_context->>'desk' AS desk, changes
  FROM tradeguard.history('trades', '{"id": 1}');

-- Sealing puts committed rows into a block; verify checks every signature and link.
SELECT tradeguard.seal() > 0 AS sealed;
SELECT ok, blocks_checked, rows_checked > 0 AS rows_checked, first_bad_block, first_bad_id, reason FROM tradeguard.verify();
-- history() finds sealed rows too (through pk_hash), the same as before sealing.
SELECT operation, changed_by IS NOT NULL AS who, changes FROM tradeguard.history('trades', '{"id": 1}');
SELECT block_no, length(hash) AS hash_hex_len FROM tradeguard.audit_digest();
SELECT tradeguard.verify_digest(d.block_no, d.hash) AS digest_ok FROM tradeguard.audit_digest() d;
SELECT tradeguard.verify_digest(1, repeat('0', 64)) AS forged_digest_ok;
-- Sealing runs in READ COMMITTED: a REPEATABLE READ snapshot could miss a block sealed meanwhile.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tradeguard.seal();
ROLLBACK;
-- Asking for blocks beyond the chain is an error, not a tamper report.
SELECT ok FROM tradeguard.verify(999);

-- Nobody edits the trail through SQL, not even its owner (a superuser here).
UPDATE tradeguard_audit.log SET new_row = '{}' WHERE id = 1;
DELETE FROM tradeguard_audit.log WHERE id = 1;
-- (Its partitions named directly, too, whether a row matches or not.)
UPDATE tradeguard_audit.log_sealed SET new_row = '{}' WHERE id = 1;
DELETE FROM tradeguard_audit.log_unsealed WHERE false;
TRUNCATE tradeguard_audit.log;
INSERT INTO tradeguard_audit.log (txid, at, schema_name, table_name, operation, current_user_name, session_user_name)
  VALUES (1, now(), 'public', 'trades', 'INSERT', 'x', 'x');
-- Nor disables or drops the audit triggers, nor alters the protected schema.
ALTER TABLE trades DISABLE TRIGGER tradeguard_audit_row;
ALTER TABLE trades DISABLE TRIGGER ALL;
DROP TRIGGER tradeguard_audit_row ON trades;
ALTER TABLE tradeguard_audit.log DISABLE TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.log_sealed DISABLE TRIGGER tradeguard_protect_write;
DROP TABLE tradeguard_audit.blocks;
-- DDL on an audited table is itself recorded.
ALTER TABLE trades ADD COLUMN venue text;
SELECT operation, table_name, new_row->>'command' AS command FROM tradeguard.audit_log WHERE operation <> 'SECURITY_EVENT' ORDER BY id DESC LIMIT 1;

-- A superuser who bypasses the triggers is caught by verify, which names the first bad row.
SET session_replication_role = replica;
ALTER TABLE tradeguard_audit.log DISABLE TRIGGER USER;  -- refused even in replica mode
RESET session_replication_role;
-- (simulate a raw edit through break-glass, the only way in, and see verify name it)
SELECT tradeguard.break_glass('regress: simulate tampering') IS NOT NULL AS glass_broken;
BEGIN;  -- the tampering is rolled back at the end, so later tests see an intact chain
ALTER TABLE tradeguard_audit.log DISABLE TRIGGER tradeguard_protect;
ALTER TABLE tradeguard_audit.log DISABLE TRIGGER tradeguard_protect_write;
UPDATE tradeguard_audit.log SET new_row = jsonb_set(new_row, '{price}', '1.0') WHERE id = (SELECT min(id) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND table_name = 'trades');
SELECT ok, first_bad_block, first_bad_id = (SELECT min(id) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND table_name = 'trades') AS names_the_row, reason FROM tradeguard.verify();
-- The self-audit sees it too (critical), until the chain is whole again.
SELECT check_id, level, object FROM tradeguard.findings WHERE check_id = 'audit_chain_broken';
-- A deleted row is named too.
UPDATE tradeguard_audit.log SET new_row = jsonb_set(new_row, '{price}', '2849.5000') WHERE id = (SELECT min(id) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND table_name = 'trades');
SELECT ok FROM tradeguard.verify();
-- A changed pk_hash (it would hide the row from history()) is named as an altered row.
UPDATE tradeguard_audit.log SET pk_hash = pk_hash + 1 WHERE id = (SELECT min(id) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND table_name = 'trades');
SELECT ok, first_bad_id = (SELECT min(id) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND table_name = 'trades') AS names_the_row, reason FROM tradeguard.verify();
UPDATE tradeguard_audit.log SET pk_hash = pk_hash - 1 WHERE id = (SELECT min(id) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND table_name = 'trades');
SELECT ok FROM tradeguard.verify();
-- A forged row that claims a sealed block is named (row inserted), and so is one that claims a
-- block beyond the end of the chain.
INSERT INTO tradeguard_audit.log (id, txid, at, schema_name, table_name, operation, current_user_name, session_user_name, signature, block_no)
  VALUES (999999, 1, now(), 'public', 'trades', 'INSERT', 'mallory', 'mallory', '\x00', 1);
SELECT ok, first_bad_block, first_bad_id, reason FROM tradeguard.verify();
UPDATE tradeguard_audit.log SET block_no = 999 WHERE id = 999999;
SELECT ok, first_bad_block, first_bad_id, reason FROM tradeguard.verify();
-- Or a block number no block can have (zero, negative, archived), or no block at all yet: an
-- unsealed row of a transaction that cannot have started.
UPDATE tradeguard_audit.log SET block_no = 0 WHERE id = 999999;
SELECT ok, first_bad_block, first_bad_id, reason FROM tradeguard.verify();
UPDATE tradeguard_audit.log SET block_no = NULL, txid = 9223372036854775000 WHERE id = 999999;
SELECT ok, first_bad_id, reason FROM tradeguard.verify();
DELETE FROM tradeguard_audit.log WHERE id = 999999;
SELECT ok FROM tradeguard.verify();
-- A forged block is checked wherever its number puts it: below the first block (block 0) or
-- after a gap in the numbers (once a gap made verify() stop early, and its blocks and rows went
-- unchecked).
ALTER TABLE tradeguard_audit.blocks DISABLE TRIGGER tradeguard_protect;
INSERT INTO tradeguard_audit.blocks SELECT 0, prev_mac, merkle_root, 0, 1, 0, sealed_at, '{}', mac FROM tradeguard_audit.blocks WHERE block_no = 1;
SELECT ok, first_bad_block, reason FROM tradeguard.verify();
DELETE FROM tradeguard_audit.blocks WHERE block_no = 0;
INSERT INTO tradeguard_audit.blocks SELECT block_no + 5000, prev_mac, merkle_root, 0, 1, 0, sealed_at, '{}', mac FROM tradeguard_audit.blocks WHERE block_no = (SELECT max(block_no) FROM tradeguard_audit.blocks);
SELECT ok, first_bad_block = (SELECT max(block_no) FROM tradeguard_audit.blocks WHERE block_no < 5000) + 1 AS names_the_gap, reason FROM tradeguard.verify();
DELETE FROM tradeguard_audit.blocks WHERE block_no >= 5000;
SELECT ok FROM tradeguard.verify();
DELETE FROM tradeguard_audit.log WHERE id = (SELECT max(id) FROM tradeguard_audit.log WHERE block_no = 1);
SELECT ok, first_bad_block, first_bad_id = (SELECT max(id) FROM tradeguard_audit.blocks b, unnest(b.ids) AS id WHERE b.block_no = 1) AS names_the_row, reason FROM tradeguard.verify();
-- A forged block and a broken link to the previous block are named as well.
ALTER TABLE tradeguard_audit.blocks DISABLE TRIGGER tradeguard_protect;
UPDATE tradeguard_audit.blocks SET first_id = first_id - 1 WHERE block_no = 1;
SELECT ok, first_bad_block, reason FROM tradeguard.verify();
UPDATE tradeguard_audit.blocks SET first_id = first_id + 1, prev_mac = '\x00' WHERE block_no = 1;
SELECT ok, first_bad_block, reason FROM tradeguard.verify();
ROLLBACK;
SELECT ok FROM tradeguard.verify();
SELECT tradeguard.break_glass_end();
SELECT operation, new_row->>'command' AS command, table_name FROM tradeguard.audit_log WHERE operation LIKE 'BREAK_GLASS%' ORDER BY id;

-- The auditor reads and verifies; it changes nothing.
CREATE ROLE tg_auditor_r;
GRANT tradeguard_auditor TO tg_auditor_r;
SET ROLE tg_auditor_r;
SELECT count(*) > 0 AS can_read FROM tradeguard.audit_log;
SELECT ok IS NOT NULL AS can_verify FROM tradeguard.verify();
SELECT tradeguard.unaudit_table('trades');
SELECT count(*) FROM tradeguard_audit.log;
RESET ROLE;
DROP ROLE tg_auditor_r;

SELECT tradeguard.unaudit_table('trades');
SELECT operation, table_name FROM tradeguard.audit_log WHERE operation <> 'SECURITY_EVENT' ORDER BY id DESC LIMIT 1;

-- Retention: old blocks are archived with a recorded reason; verify() anchors to the last
-- removed block and keeps checking from the first remaining one.
SELECT tradeguard.seal() > 0 AS sealed_block_2;
SELECT tradeguard.archive_blocks(1, 'why');
-- Recent evidence stays: blocks sealed less than tradeguard.archive_min_age ago (30 days by
-- default) are refused, and only a superuser can shorten it.
SELECT pg_catalog.current_setting('tradeguard.archive_min_age') AS archive_min_age;
DO $$ BEGIN
  PERFORM tradeguard.archive_blocks(1, 'regress: retention of block 1');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = pg_catalog.regexp_replace(SQLERRM, 'sealed .* ago', 'sealed <age> ago');
END $$;
CREATE ROLE tg_admin_ret IN ROLE tradeguard_admin;
SET ROLE tg_admin_ret;
SET tradeguard.archive_min_age = 0;
RESET ROLE;
DROP ROLE tg_admin_ret;
SET tradeguard.archive_min_age = 0;
SELECT tradeguard.archive_blocks(1, 'regress: retention of block 1') > 0 AS rows_archived;
SELECT min(block_no) AS first_block, ok, first_bad_block FROM tradeguard.audit_blocks, tradeguard.verify() GROUP BY ok, first_bad_block;
SELECT through_block, reason, rows_removed > 0 AS removed FROM tradeguard_audit.retention;
-- The auditor sees who removed what and why, and the removal raised an alert.
CREATE ROLE tg_auditor_ret IN ROLE tradeguard_auditor;
SET ROLE tg_auditor_ret;
SELECT through_block, reason, rows_removed > 0 AS removed, removed_by = session_user AS by_me FROM tradeguard.audit_retention;
RESET ROLE;
DROP ROLE tg_auditor_ret;
DO $$ BEGIN
  FOR i IN 1..100 LOOP
    EXIT WHEN EXISTS (SELECT FROM tradeguard.security_events WHERE event_type = 'audit_archived');
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT event_type, severity, detail->>'through_block' AS through_block FROM tradeguard.security_events WHERE event_type = 'audit_archived';
SELECT operation, new_row->>'reason' AS reason FROM tradeguard.audit_log WHERE operation = 'ARCHIVE_BLOCKS';
DROP TABLE trades;

-- The retention anchor carries its own MAC: changed by hand (under break-glass, with its
-- protection disabled, both recorded) it no longer anchors the chain; put back, it does again.
SELECT tradeguard.break_glass('regress: tamper with the retention anchor') IS NOT NULL AS break_glass;
ALTER TABLE tradeguard_audit.retention DISABLE TRIGGER tradeguard_protect;
UPDATE tradeguard_audit.retention SET reason = 'nothing was removed';
SELECT ok, first_bad_block, reason FROM tradeguard.verify();
UPDATE tradeguard_audit.retention SET reason = 'regress: retention of block 1';
ALTER TABLE tradeguard_audit.retention ENABLE ALWAYS TRIGGER tradeguard_protect;
SELECT tradeguard.break_glass_end();
SELECT ok, first_bad_block FROM tradeguard.verify();
