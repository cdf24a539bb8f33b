#!/usr/bin/env bash
# Secrets never leak: after a workload that creates and rotates keys, converts a column,
# encrypts, decrypts, audits and dumps, the root key (raw, hex, base64) appears nowhere: not in
# the server log, pg_stat_statements, pg_stat_activity, the pg_dump output or the audit trail;
# and the plaintext of encrypted columns is absent from the trail and the dump.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

e2e_cluster secrets 54340 "tradeguard.database_name = 'sec'" \
  "shared_preload_libraries = 'tradeguard, pg_stat_statements'" "log_statement = 'all'" \
  "log_min_messages = debug1" "log_parameter_max_length = 0"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" sec
q sec -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION tradeguard;
SELECT tradeguard.create_key('sec');
SELECT tradeguard.create_key('sec_bidx', 'blind_index', 'email');
CREATE TABLE accounts (id serial PRIMARY KEY, email text, api_key text);
INSERT INTO accounts (email, api_key) VALUES ('Secret.Person@example.jp', 'sk_live_SECRET_0001');
SELECT tradeguard.audit_table('accounts');
SELECT tradeguard.encrypt_column('accounts', 'api_key', 'sec');
SELECT tradeguard.encrypt_column('accounts', 'email', 'sec', 'sec_bidx');
PREPARE ins(text, text) AS INSERT INTO accounts (email, api_key) VALUES ($1, $2);
EXECUTE ins('Second.Person@example.jp', 'sk_live_SECRET_0002');
SELECT tradeguard.rotate_key('sec');
SELECT tradeguard.reencrypt_column('accounts', 'api_key');
SELECT count(*) FROM accounts_decrypted WHERE api_key LIKE 'sk_live_SECRET_%';
SELECT tradeguard.seal();
SQL
# Role passwords: logged statements (log_statement = 'all' here), the STATEMENT line of an error
# in a role statement and a function's CONTEXT line must not carry them.
q sec <<'SQL' >/dev/null 2>&1
CREATE ROLE sec_pw LOGIN PASSWORD 'PwLeak_1';
ALTER ROLE sec_pw PASSWORD 'PwLeak_2';
ALTER USER sec_pw WITH ENCRYPTED PASSWORD 'PwLeak_3' VALID UNTIL 'infinity';
ALTER ROLE sec_pw_missing PASSWORD 'PwLeak_4';
DO $$ BEGIN EXECUTE 'ALTER ROLE sec_pw_missing PASSWORD ''PwLeak_5'''; END $$;
CREATE/**/ROLE sec_pw2 PASSWORD 'PwLeak_6';
ALTER -- a comment
ROLE sec_pw2 PASSWORD 'PwLeak_7';
DO $$ BEGIN EXECUTE 'ALTER ' || 'ROLE sec_pw_missing PASSWORD ''DynLeak_1'''; END $$;
ALTER ROLE sec_pw2 PASSWORD PwLeak_9;
SELECT 1/0 AS after_password_statements;
ALTER ROLE sec_pw2 PASSWORD 'PwLeak_10
SQL
out="$TG_TEST_DIR/secrets"
check "role passwords are not in the server log" bash -c "! grep -q 'PwLeak_' '$out/server.log'"
check "the server log says they were redacted" grep -q "password redacted by tradeguard" "$out/server.log"
# (a role statement built at run time is logged by log_statement as the DO block was typed, but
# its error's STATEMENT line is hidden)
check "a later error of the session still has its STATEMENT line" grep -q "STATEMENT:  SELECT 1/0 AS after_password_statements" "$out/server.log"
check "a role statement built at run time: only log_statement's line names it" [ "$(grep -c 'DynLeak_1' "$out/server.log")" = 1 ]
as_pg "$PG_BIN/pg_dump" -h /tmp -p "$E2E_PORT" sec > "$out/dump.sql"
q sec -c "SELECT query FROM pg_stat_statements" > "$out/pgss.txt"
q sec -c "SELECT query FROM pg_stat_activity" > "$out/activity.txt"
q sec -c "SELECT coalesce(old_row::text, '') || coalesce(new_row::text, '') FROM tradeguard_audit.log" > "$out/trail.txt"
cp "$out/server.log" "$out/server.copy.log"

keyhex=$(tr -d '[:space:]' < "$TG_TEST_DIR/root.key")
keyb64=$(python3 -c 'import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$keyhex")
keyb64np=${keyb64%=}
for f in server.copy.log pgss.txt activity.txt dump.sql trail.txt; do
  check "root key (hex) not in $f" bash -c "! grep -qiF '$keyhex' '$out/$f'"
  check "root key (base64) not in $f" bash -c "! grep -qF '$keyb64np' '$out/$f'"
  check "root key (raw bytes) not in $f" python3 -c 'import sys; sys.exit(bytes.fromhex(sys.argv[1]) in open(sys.argv[2], "rb").read())' "$keyhex" "$out/$f"
done
# Every data key too, unwrapped by an independent implementation of the published wrap format.
venv="$TG_TEST_DIR/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import cryptography' 2>/dev/null || "$venv/bin/pip" install -q cryptography >/dev/null
q sec -c "SELECT k.name || E'\t' || v.version || E'\t' || k.purpose || E'\t' || encode(v.wrapped, 'hex')
            FROM tradeguard_audit.keys k JOIN tradeguard_audit.key_versions v USING (key_id)" \
  | "$venv/bin/python" "$(dirname "$0")/unwrap_keys.py" "$TG_TEST_DIR/root.key" > "$out/datakeys.txt"
check "all data keys unwrapped by an independent implementation" [ "$(wc -l < "$out/datakeys.txt")" = 3 ]
while read -r dk; do
  dkb64=$(python3 -c 'import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode().rstrip("="))' "$dk")
  for f in server.copy.log pgss.txt activity.txt dump.sql trail.txt; do
    check "data key ${dk:0:6}… (hex) not in $f" bash -c "! grep -qiF '$dk' '$out/$f'"
    check "data key ${dk:0:6}… (base64) not in $f" bash -c "! grep -qF '$dkb64' '$out/$f'"
    check "data key ${dk:0:6}… (raw) not in $f" python3 -c 'import sys; sys.exit(bytes.fromhex(sys.argv[1]) in open(sys.argv[2], "rb").read())' "$dk" "$out/$f"
  done
done < "$out/datakeys.txt"
rm -f "$out/datakeys.txt"
for f in dump.sql trail.txt; do
  # (emails were plaintext until their own conversion, so only the api keys are checked here)
  check "encrypted-column plaintext not in $f" bash -c "! grep -q 'sk_live_SECRET_' '$out/$f'"
done
check "the trail withheld the plaintext of the conversion" grep -q "plaintext withheld" "$out/trail.txt"

echo "$fails failed"
[ "$fails" -eq 0 ]
