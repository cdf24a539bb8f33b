#!/usr/bin/env bash
# Root key handling end to end: a session's cached keys go when the setting is taken away, a
# different root key is reported with both fingerprints, a key file with loose permissions is
# refused, and the right key decrypts again.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

e2e_cluster rootkey 54334 "tradeguard.database_name = 'rk'"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" rk
q rk -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE EXTENSION tradeguard;
SELECT tradeguard.create_key('rk');
CREATE TABLE v AS SELECT tradeguard.encrypt('secret value'::text, 'rk') AS c;
CREATE ROLE rk_enc IN ROLE tradeguard_encryptor;
SQL
xid=$(q rk -c "BEGIN" -c "SELECT tradeguard.decrypt_text(c) FROM v" -c "SELECT coalesce(txid_current_if_assigned()::text, 'none')" -c "COMMIT" | tail -1)
check "decrypt assigns no transaction id (parallel-safe, works on standbys)" [ "$xid" = none ]
check "decrypt works in a read-only transaction" [ "$(q rk -c "SET default_transaction_read_only = on" -c "SELECT tradeguard.decrypt_text(c) FROM v")" = "secret value" ]
par=$(q rk -c "SET max_parallel_workers_per_gather = 2" -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" -c "SET min_parallel_table_scan_size = 0" -c "CREATE TABLE many AS SELECT tradeguard.encrypt(g::text, 'rk') AS c FROM generate_series(1, 20000) g" -c "SELECT count(tradeguard.decrypt_text(c)) FROM many" 2>&1 | tail -1)
check "decrypt in a parallel plan" [ "$par" = 20000 ]
fp_a=$(q rk -c "SELECT tradeguard.root_key_fingerprint()")
check "fingerprint shown" [ -n "$fp_a" ]

# A session with the data key cached stops decrypting once the setting is taken away (a reload):
# a connection pool's sessions must not keep keys the server no longer has.
msg=$(q rk -c "SELECT tradeguard.decrypt_text(c) FROM v" -c "ALTER SYSTEM SET tradeguard.root_key_file = ''" \
        -c "SELECT pg_reload_conf()" -c "SELECT pg_sleep(0.5)" -c "SELECT tradeguard.decrypt_text(c) FROM v" 2>&1)
echo "    ${msg//$'\n'/ | }"
check "a session's cached keys go with the root key setting" \
  [ "$(grep -c 'secret value' <<<"$msg"):$(grep -c 'tradeguard.root_key_file is not set' <<<"$msg")" = 1:1 ]
q rk -c "ALTER SYSTEM RESET tradeguard.root_key_file" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

other="$TG_TEST_DIR/rootkey/other.key"
make_root_key "$other"
q rk -c "ALTER SYSTEM SET tradeguard.root_key_file = '$other'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
fp_b=$(q rk -c "SELECT tradeguard.root_key_fingerprint()")
msg=$(q rk -c "SELECT tradeguard.decrypt_text(c) FROM v" 2>&1)
check "other root key: refused, not garbage" grep -q "root key mismatch" <<<"$msg"
check "message names the stored fingerprint" grep -qF "$fp_a" <<<"$msg"
check "message names the server's fingerprint" grep -qF "$fp_b" <<<"$msg"
check "no plaintext in the message" bash -c "! grep -q 'secret value' <<<\"\$0\"" "$msg"

chmod 644 "$other"
msg=$(q rk -c "SELECT tradeguard.encrypt('x'::text, 'rk')" 2>&1)
check "loose key file mode refused with how to fix it" grep -qi "chmod 600\|mode" <<<"$msg"
# The path is a superuser's setting: an encryptor is told which setting, not where the key lives.
msg=$(q rk -c "SET ROLE rk_enc" -c "SELECT tradeguard.encrypt('x'::text, 'rk')" 2>&1)
echo "    ${msg//$'\n'/ | }"
check "the root key path is not shown to a role that is not a superuser" \
  bash -c "grep -q 'tradeguard.root_key_file' <<<\"\$0\" && ! grep -qF \"\$1\" <<<\"\$0\"" "$msg" "$other"

q rk -c "ALTER SYSTEM RESET tradeguard.root_key_file" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
check "right key: decrypts again" [ "$(q rk -c "SELECT tradeguard.decrypt_text(c) FROM v")" = "secret value" ]
check "no key bytes in the server log" bash -c "! grep -qiF \"\$(cat '$TG_TEST_DIR/root.key')\" '$TG_TEST_DIR/rootkey/server.log'"

echo "$fails failed"
[ "$fails" -eq 0 ]
