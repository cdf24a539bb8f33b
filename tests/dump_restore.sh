#!/usr/bin/env bash
# pg_dump / pg_restore of a database with encrypted and audited tables into a new database on a
# server with the same root key: values decrypt, nothing is encrypted twice, the audit chain
# verifies, keys and blocks are as before, and new writes work after the restore.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

e2e_cluster dumprestore 54341 "tradeguard.database_name = 'src'" "tradeguard.seal_interval = '1h'"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" src
q src -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION tradeguard;
-- another extension whose script runs GRANT/REVOKE: restored before the trail's rows
CREATE EXTENSION dblink;
SELECT tradeguard.create_key('acct');
SELECT tradeguard.create_key('acct_bidx', 'blind_index', 'email');
CREATE TABLE accounts (id bigserial PRIMARY KEY, email text, api_key text, balance numeric(18,2));
INSERT INTO accounts (email, api_key, balance) SELECT 'user' || g || '@example.jp', 'sk_live_' || g, g * 10.5 FROM generate_series(1, 50) g;
SELECT tradeguard.encrypt_column('accounts', 'api_key', 'acct');
SELECT tradeguard.encrypt_column('accounts', 'email', 'acct', 'acct_bidx');
SELECT tradeguard.encrypt_column('accounts', 'balance', 'acct');
SELECT tradeguard.audit_table('accounts');
-- a second audited table with an excluded column: its registration (exclusions, key) must
-- still apply to the restored table
CREATE TABLE desk_notes (note_id int PRIMARY KEY, desk text, private_memo text);
SELECT tradeguard.audit_table('desk_notes', '{private_memo}');
UPDATE accounts SET api_key = 'sk_live_updated_' || id WHERE id <= 10;
SELECT tradeguard.rotate_key('acct');
INSERT INTO accounts (email, api_key, balance) VALUES ('late@example.jp', 'sk_live_late', 1);
SQL
q src -c "SELECT tradeguard.seal()" >/dev/null
before=$(q src -c "SELECT md5(string_agg(id || email || api_key || balance, ',' ORDER BY id)) FROM accounts_decrypted")
cipher_before=$(q src -c "SELECT md5(string_agg(api_key, ',' ORDER BY id)) FROM accounts")
digest=$(q src -c "SELECT block_no || ' ' || hash FROM tradeguard.audit_digest()")

dump="$TG_TEST_DIR/dumprestore/src.dump"
as_pg "$PG_BIN/pg_dump" -h /tmp -p "$E2E_PORT" -Fc -f "$dump" src
check "pg_dump of an encrypted, audited database" [ -s "$dump" ]
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" dst
# Restoring a signed trail is a superuser's explicit act: restore mode lets the signed rows in.
out=$(as_pg env PGOPTIONS='-c tradeguard.restore_mode=on' "$PG_BIN/pg_restore" -h /tmp -p "$E2E_PORT" -d dst "$dump" 2>&1)
echo "$out" | grep -i error | head -20
check "pg_restore into a new database" [ -z "$(grep -i error <<<"$out")" ]
# Restore mode turned on through PGOPTIONS runs no SET statement: its writes are a security
# event (stored by the worker, in the database it serves).
restore_event() {
  for _ in $(seq 1 50); do
    [ "$(q src -c "SELECT count(*) > 0 FROM tradeguard.security_events WHERE event_type = 'restore_mode_write' AND severity = 'high' AND detail->>'database' = 'dst' AND detail->>'table' LIKE 'tradeguard_audit.%'")" = t ] && return 0
    sleep 0.2
  done
  return 1
}
check "the restore's writes into the trail raised restore_mode_write" restore_event

check "every value decrypts to what it was" [ "$(q dst -c "SELECT md5(string_agg(id || email || api_key || balance, ',' ORDER BY id)) FROM accounts_decrypted")" = "$before" ]
check "nothing was encrypted twice (same ciphertexts)" [ "$(q dst -c "SELECT md5(string_agg(api_key, ',' ORDER BY id)) FROM accounts")" = "$cipher_before" ]
check "the blind index still finds rows" [ "$(q dst -c "SELECT count(*) FROM accounts WHERE email_bidx = tradeguard.blind_index('USER7@example.jp', 'acct_bidx')")" = 1 ]
check "keys and versions as before" [ "$(q dst -c "SELECT string_agg(name || ':' || version || ':' || status, ',' ORDER BY name, version) FROM tradeguard.keys")" = "$(q src -c "SELECT string_agg(name || ':' || version || ':' || status, ',' ORDER BY name, version) FROM tradeguard.keys")" ]
check "the audit chain verifies after the restore" [ "$(q dst -c "SELECT ok FROM tradeguard.verify()")" = t ]
read -r bno bhash <<<"$digest"
check "the digest kept outside still matches" [ "$(q dst -c "SELECT tradeguard.verify_digest($bno, '$bhash')")" = t ]
q dst -c "INSERT INTO accounts (email, api_key, balance) VALUES ('after@example.jp', 'sk_live_after', 2)" >/dev/null
check "new writes after the restore are encrypted" [ "$(q dst -c "SELECT tradeguard.is_ciphertext(api_key) FROM accounts WHERE id = (SELECT max(id) FROM accounts)")" = t ]
check "and audited without id collisions" [ "$(q dst -c "SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND new_row->>'id' = (SELECT max(id)::text FROM accounts)")" = 1 ]
q dst -c "SELECT tradeguard.seal()" >/dev/null
q dst -c "INSERT INTO desk_notes VALUES (1, 'fx', 'do not record me')" >/dev/null
check "the restored registration still applies (exclusion and key)" [ "$(q dst -c "SELECT pk::text || ' ' || new_row::text FROM tradeguard_audit.log WHERE table_name = 'desk_notes' AND operation = 'INSERT'")" = '{"note_id": 1} {"desk": "fx", "note_id": 1}' ]
check "and the chain still verifies after sealing them" [ "$(q dst -c "SELECT ok FROM tradeguard.verify()")" = t ]

# A parallel restore of a directory-format dump loads each table's rows on a connection of its
# own, in any order (keys and their versions, incidents and their actions, runs and findings).
pdump="$TG_TEST_DIR/dumprestore/src.dir"
rm -rf "$pdump"
as_pg "$PG_BIN/pg_dump" -h /tmp -p "$E2E_PORT" -Fd -j 2 -f "$pdump" src
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" dst_parallel
out=$(as_pg env PGOPTIONS='-c tradeguard.restore_mode=on' "$PG_BIN/pg_restore" -h /tmp -p "$E2E_PORT" -j 4 -d dst_parallel "$pdump" 2>&1)
echo "$out" | grep -i error | head -20
check "pg_restore -j 4 of a directory dump" [ -z "$(grep -i error <<<"$out")" ]
check "every value decrypts after the parallel restore" [ "$(q dst_parallel -c "SELECT md5(string_agg(id || email || api_key || balance, ',' ORDER BY id)) FROM accounts_decrypted")" = "$before" ]
check "and its chain verifies" [ "$(q dst_parallel -c "SELECT ok FROM tradeguard.verify()")" = t ]

echo "$fails failed"
[ "$fails" -eq 0 ]
