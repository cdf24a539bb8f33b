#!/usr/bin/env bash
# Fail closed: when the audit trail cannot be written, writes to audited tables fail with an
# ERROR and nothing commits unaudited.
#  (a) the root key is gone (tradeguard.root_key_file points at a missing file, then at a key
#      file with a loose mode): INSERT, UPDATE, DELETE, TRUNCATE and COPY into an audited table
#      fail and change nothing; restoring the setting makes writes work again;
#  (b) a read-only transaction (default_transaction_read_only = on): PostgreSQL refuses the write;
#  (c) a full disk: tradeguard_audit.log (and its indexes) moved under break-glass to a tablespace
#      on a small loop-mounted ext4 filesystem (tmpfs if loop devices are unavailable), filled up:
#      writes fail with an ERROR, every committed row has its audit row, and after space is freed
#      writes work again and verify() is ok.
# Runs on a throwaway cluster in $TG_TEST_DIR/fc (port 54345); needs root for (c).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh

DB='fc'
MNT="$TG_TEST_DIR/fc-disk/mnt"
IMG="$TG_TEST_DIR/fc-disk/disk.img"
mkdir -p "$TG_TEST_DIR"
chmod 755 "$TG_TEST_DIR"
# A previous run interrupted before its trap: unmount before the cluster directory is wiped.
mountpoint -q "$MNT" 2>/dev/null && umount -l "$MNT"

e2e_cluster fc 54345 "tradeguard.database_name = '$DB'" "tradeguard.seal_interval = '200ms'" \
  || { echo "not ok - cluster starts"; exit 1; }
cleanup() {
  [ -n "${MNT:-}" ] && rm -f "$MNT/filler" 2>/dev/null
  stop_cluster "$E2E_DATA" 2>/dev/null || as_pg "$PG_BIN/pg_ctl" -D "$E2E_DATA" -m immediate stop >/dev/null 2>&1
  if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  rm -rf "$TG_TEST_DIR/fc-disk"
}
trap cleanup EXIT
LOGF="$TG_TEST_DIR/fc/server.log"

as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" "$DB" || { echo "not ok - create database"; exit 1; }
q "$DB" -v ON_ERROR_STOP=1 <<'SQL' >/dev/null || { echo "not ok - install tradeguard, audited tables"; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION tradeguard;
CREATE TABLE trades (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, symbol text NOT NULL, qty int NOT NULL);
SELECT tradeguard.audit_table('trades');
CREATE TABLE trades_ddl (id int PRIMARY KEY, note text);
SELECT tradeguard.audit_table('trades_ddl');
INSERT INTO trades (symbol, qty) VALUES ('baseline', 1);
SQL
ok "cluster, tradeguard, audited table trades"

sql() { q "$DB" -c "SET client_min_messages = error" -c "$1"; }
reload() { sql "SELECT pg_reload_conf()" >/dev/null; sleep 0.5; }
n_trades() { sql "SELECT count(*) FROM trades WHERE symbol = '$1'"; }
# Every row of trades has its INSERT row in the trail.
all_audited() {
  [ "$(sql "SELECT count(*) FROM trades t WHERE NOT EXISTS (
             SELECT 1 FROM tradeguard_audit.log l WHERE l.schema_name = 'public' AND l.table_name = 'trades'
                AND l.operation = 'INSERT' AND l.pk = pg_catalog.jsonb_build_object('id', t.id))")" = 0 ]
}
# $1 = name, $2.. = SQL commands (one session, one transaction each) that must end in an ERROR;
# prints the error.
must_fail() {
  local out rc args=()
  shift
  for s in "$@"; do args+=(-c "$s"); done
  out=$(q "$DB" -v ON_ERROR_STOP=1 "${args[@]}" 2>&1); rc=$?
  echo "    ${out//$'\n'/ | }" | cut -c1-220
  [ $rc -ne 0 ] && grep -q 'ERROR' <<<"$out"
}
works() { q "$DB" -v ON_ERROR_STOP=1 -c "$1" >/dev/null; }
state() { sql "SELECT count(*) || ':' || coalesce(sum(qty), 0) FROM trades"; }

check "baseline: the insert is audited" all_audited

# --- (a) the root key is gone -----------------------------------------------------------------
before=$(state)
sql "ALTER SYSTEM SET tradeguard.root_key_file = '$TG_TEST_DIR/fc/missing.key'" >/dev/null
reload
trail_rows() { sql "SELECT count(*) FROM tradeguard_audit.log WHERE schema_name = 'public' AND table_name = 'trades'"; }
audit_before=$(trail_rows)
check "(a) missing root key: INSERT fails with an ERROR" must_fail x "INSERT INTO trades (symbol, qty) VALUES ('nokey', 1)"
check "(a) missing root key: the row is not there" [ "$(n_trades nokey)" = 0 ]
check "(a) missing root key: INSERT in an explicit transaction fails at once" \
  must_fail x "BEGIN; INSERT INTO trades (symbol, qty) VALUES ('nokey', 2); COMMIT;"
check "(a) missing root key: UPDATE fails" must_fail x "UPDATE trades SET qty = qty + 100"
check "(a) missing root key: DELETE fails" must_fail x "DELETE FROM trades"
check "(a) missing root key: TRUNCATE fails" must_fail x "TRUNCATE trades"
check "(a) missing root key: COPY fails" \
  must_fail x "COPY trades (symbol, qty) FROM PROGRAM 'echo nokey,3' WITH (FORMAT csv)"
check "(a) missing root key: trades unchanged ($before)" [ "$(state)" = "$before" ]
check "(a) missing root key: the trail has no new row for trades" [ "$(trail_rows)" = "$audit_before" ]
# DDL on an audited table goes through the utility hook, which only WARNs when it cannot record
# (so that the DBA can still fix the configuration with ALTER SYSTEM): probe what DROP TABLE does.
out=$(q "$DB" -c "DROP TABLE trades_ddl" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q ERROR <<<"$out"; then
  ok "(a) missing root key: DROP TABLE of an audited table fails"
else
  not_ok "(a) missing root key: DROP TABLE of an audited table fails (it succeeded unaudited: ${out//$'\n'/ | })"
fi

cp "$TG_TEST_DIR/root.key" "$TG_TEST_DIR/fc/loose.key"
chown postgres:postgres "$TG_TEST_DIR/fc/loose.key"
chmod 644 "$TG_TEST_DIR/fc/loose.key"
sql "ALTER SYSTEM SET tradeguard.root_key_file = '$TG_TEST_DIR/fc/loose.key'" >/dev/null
reload
check "(a) key file with mode 0644: INSERT fails with an ERROR" \
  must_fail x "INSERT INTO trades (symbol, qty) VALUES ('loosekey', 1)"
check "(a) key file with mode 0644: the row is not there" [ "$(n_trades loosekey)" = 0 ]

sql "ALTER SYSTEM RESET tradeguard.root_key_file" >/dev/null
reload
check "(a) setting restored: INSERT works again" works "INSERT INTO trades (symbol, qty) VALUES ('after_key', 1)"
check "(a) setting restored: every row of trades is audited" all_audited

# --- (b) read-only transaction ----------------------------------------------------------------
check "(b) default_transaction_read_only = on: INSERT fails with an ERROR" \
  must_fail x "SET default_transaction_read_only = on" "INSERT INTO trades (symbol, qty) VALUES ('readonly', 1)"
check "(b) read-only: the row is not there" [ "$(n_trades readonly)" = 0 ]

# --- (c) full disk ----------------------------------------------------------------------------
mkdir -p "$MNT"
fs=
if [ "$(id -u)" = 0 ] && truncate -s 64M "$IMG" && mkfs.ext4 -q -F -m 0 "$IMG" >/dev/null 2>&1 \
   && mount -o loop "$IMG" "$MNT" 2>/dev/null; then
  fs="64 MB ext4 on a loop device"
elif [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=16m,mode=0755 tradeguard-fc "$MNT" 2>/dev/null; then
  fs="16 MB tmpfs (no loop device)"
fi
if [ -z "$fs" ]; then
  ok "# SKIP full disk: no loop device (and no tmpfs mount)"
else
  ok "small filesystem mounted: $fs"
  mkdir -p "$MNT/ts"
  chown postgres:postgres "$MNT/ts"
  chmod 700 "$MNT/ts"
  move_trail() { q "$DB" -v ON_ERROR_STOP=1 "$@" >/dev/null; }
  check "(c) the trail moves to the small disk under break-glass" move_trail \
    -c "SET client_min_messages = warning" \
    -c "CREATE TABLESPACE tg_small LOCATION '$MNT/ts'" \
    -c "SELECT tradeguard.break_glass('test: move the trail to a small disk')" \
    -c "ALTER TABLE tradeguard_audit.log_unsealed SET TABLESPACE tg_small" \
    -c "ALTER TABLE tradeguard_audit.log_sealed SET TABLESPACE tg_small" \
    -c "ALTER INDEX tradeguard_audit.log_unsealed_id SET TABLESPACE tg_small" \
    -c "ALTER INDEX tradeguard_audit.log_sealed_id SET TABLESPACE tg_small" \
    -c "ALTER INDEX tradeguard_audit.log_block SET TABLESPACE tg_small" \
    -c "ALTER INDEX tradeguard_audit.log_row SET TABLESPACE tg_small" \
    -c "SELECT tradeguard.break_glass_end()"
  check "(c) tradeguard_audit.log (both partitions) is in tablespace tg_small" \
    [ "$(sql "SELECT string_agg(t.spcname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.oid IN ('tradeguard_audit.log_sealed'::regclass, 'tradeguard_audit.log_unsealed'::regclass)")" = tg_small,tg_small ]
  # Fill the filesystem (as root: no space is left for the server).
  dd if=/dev/zero of="$MNT/filler" bs=1M status=none 2>/dev/null
  dd if=/dev/zero of="$MNT/filler2" bs=4k status=none 2>/dev/null
  sync
  echo "    free on the small disk: $(df -k --output=avail "$MNT" | tail -1 | tr -d ' ') kB"
  # 3000 single-row transactions: the trail's file cannot grow; each must commit audited or fail.
  seq 1 3000 | sed "s/.*/INSERT INTO trades (symbol, qty) VALUES ('full', &);/" > "$TG_TEST_DIR/fc/full.sql"
  chown postgres "$TG_TEST_DIR/fc/full.sql"
  q "$DB" -f "$TG_TEST_DIR/fc/full.sql" >"$TG_TEST_DIR/fc/full.out" 2>"$TG_TEST_DIR/fc/full.err"
  failed_ins=$(grep -c '^psql:.*ERROR' "$TG_TEST_DIR/fc/full.err")
  committed=$(n_trades full)
  echo "    3000 inserts on a full disk: $committed committed, $failed_ins failed with an ERROR"
  grep -m1 ERROR "$TG_TEST_DIR/fc/full.err" | sed 's/^/    first error: /' | cut -c1-220
  check "(c) full disk: inserts fail with an ERROR" [ "$failed_ins" -gt 0 ]
  check "(c) full disk: the error is the disk being full" grep -Eqi 'no space left on device|could not extend' "$TG_TEST_DIR/fc/full.err"
  check "(c) full disk: every insert either committed or failed" [ $((committed + failed_ins)) -eq 3000 ]
  check "(c) full disk: every committed row of trades is audited" all_audited
  check "(c) full disk: no audit row for a failed insert" \
    [ "$(sql "SELECT count(*) FROM tradeguard_audit.log WHERE table_name = 'trades' AND new_row ->> 'symbol' = 'full'")" = "$committed" ]
  check "(c) full disk: the server is still up" [ "$(sql "SELECT 1")" = 1 ]
  rm -f "$MNT/filler" "$MNT/filler2"
  sync
  check "(c) space freed: INSERT works again" works "INSERT INTO trades (symbol, qty) VALUES ('after_disk', 1)"
  check "(c) space freed: every row of trades is audited" all_audited
  sleep 1
  sql "SELECT tradeguard.seal()" >/dev/null
  check "(c) space freed: seal + verify() ok" [ "$(sql "SELECT ok FROM tradeguard.verify()")" = t ]
fi

check "no backend crashed" bash -c "! grep -Eq 'terminated by signal|PANIC' '$LOGF'"

echo
if [ "$fails" -gt 0 ]; then
  echo "$fails fail-closed check(s) failed; server log: $LOGF"
  exit 1
fi
echo "all fail-closed checks passed"
