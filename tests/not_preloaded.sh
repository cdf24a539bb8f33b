#!/usr/bin/env bash
# Without shared_preload_libraries: CREATE EXTENSION and encryption work; the features that
# need the hooks or shared memory refuse with a message that says how to fix it.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

e2e_cluster nopreload 54336
# e2e_cluster preloads tradeguard; take it out again for this test.
sed -i "/^shared_preload_libraries = 'tradeguard'/d" "$E2E_DATA/postgresql.conf"
start_cluster "$E2E_DATA" "$E2E_PORT"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" np
out=$(q np -c "CREATE EXTENSION tradeguard" 2>&1)
check "CREATE EXTENSION works without preload" [ -z "$out" ]
check "runtime_status says it is not preloaded" [ "$(q np -c "SELECT active FROM tradeguard.runtime_status() WHERE component = 'shared_preload_libraries'")" = f ]
q np -c "SELECT tradeguard.create_key('np')" >/dev/null
check "encryption works" [ "$(q np -c "SELECT tradeguard.decrypt_text(tradeguard.encrypt('x'::text, 'np'))")" = x ]
check "the self-audit reports shared_preload_missing_tradeguard" \
  [ "$(q np -c "SELECT count(*) FROM tradeguard.findings WHERE check_id = 'shared_preload_missing_tradeguard'")" = 1 ]
msg=$(q np -c "CREATE TABLE t (id int PRIMARY KEY)" -c "SELECT tradeguard.audit_table('t')" 2>&1)
check "audit_table refuses, naming shared_preload_libraries" grep -q "shared_preload_libraries" <<<"$msg"
check "... with the fix in the hint" grep -q "restart the server" <<<"$msg"
msg=$(q np -c "SELECT tradeguard.block('192.0.2.1', 'test block reason')" 2>&1)
check "block refuses instead of doing nothing" grep -q "needs tradeguard in shared_preload_libraries" <<<"$msg"
msg=$(q np -c "SELECT tradeguard.incident_open('other', 'drill')" -c "SELECT tradeguard.freeze_decryption()" 2>&1)
check "freeze_decryption refuses instead of failing open" grep -q "needs tradeguard in shared_preload_libraries" <<<"$msg"
check "the freeze flag was not left set" [ "$(q np -c "SELECT frozen FROM tradeguard_audit.decryption_freeze")" = f ]

echo "$fails failed"
[ "$fails" -eq 0 ]
