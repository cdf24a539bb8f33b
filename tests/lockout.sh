#!/usr/bin/env bash
# Failed-login lockout end to end, over real TCP connections on loopback (libpq through psql):
# lockout after tradeguard.max_failed_logins, refusal with the right password while blocked,
# expiry, the address read from the socket with log_hostname = on, per-role lockout (also past
# 64 failures), exempt CIDR (not locked as an address, still counted for its role), manual block
# and unblock, persistence across a restart (blocks, and failure counts), the refused attempt
# recorded, and contain_source by an admin who is not a superuser (a superuser's session is left
# running). Runs after
# `cargo pgrx install` on a throwaway cluster in $TG_TEST_DIR/lockout; prints `ok - <name>` / `not ok - <name>`, exits 1 on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

TG_TEST_DIR=${TG_TEST_DIR:-/var/tmp/tradeguard-test}
PORT=54331
BASE="$TG_TEST_DIR/lockout"
DATA="$BASE/data"
LOGF="$BASE/server.log"          # start_cluster logs to $data/../server.log
KEY="${TG_TEST_ROOT_KEY:-$TG_TEST_DIR/root.key}"
DB=lockdb
PASS='right-pass-1'

mkdir -p "$TG_TEST_DIR"
chmod 755 "$TG_TEST_DIR"
make_root_key "$KEY"

stop_cluster "$DATA"
rm -rf "$BASE"
init_cluster "$DATA" --auth-local=trust --auth-host=scram-sha-256
cat >>"$DATA/postgresql.conf" <<CONF
shared_preload_libraries = 'tradeguard'
tradeguard.root_key_file = '$KEY'
tradeguard.database_name = '$DB'
listen_addresses = '127.0.0.1'
lc_messages = 'C'
password_encryption = 'scram-sha-256'
tradeguard.max_failed_logins = 3
tradeguard.max_failed_logins_per_role = 6
tradeguard.lockout_window = 900
tradeguard.lockout_duration = 5
# Risk-based auto-blocks are covered by pg_test/sql/50_security.sql; here they would
# block the test address on top of the lockouts under test.
tradeguard.auto_block_score = 0
CONF
cat >"$DATA/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 scram-sha-256
HBA
chown postgres:postgres "$DATA/pg_hba.conf"

trap 'stop_cluster "$DATA"' EXIT
start_cluster "$DATA" "$PORT" || { echo "not ok - cluster starts"; exit 1; }

failed=0
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
check() {  # check <name> <command...>
  local name=$1; shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# SQL as the superuser over the Unix socket (never locked out); prints the value.
sql() { psql_su "$PORT" "$DB" -qtA -c "SET client_min_messages = error" -c "$1"; }

# One real TCP login as $1 with password $2; prints psql's output and error, returns its status.
login() {
  PGPASSWORD="$2" PGPASSFILE=/dev/null PGSSLMODE=disable PGCONNECT_TIMEOUT=10 \
    "$PG_BIN/psql" -X -w -h 127.0.0.1 -p "$PORT" -U "$1" -d "$DB" -tAc 'select 1' 2>&1
}
login_works() { local out; out=$(login "$1" "$PASS"); [ "$out" = 1 ] || { echo "    $1: ${out//$'\n'/ }"; return 1; }; }
wrong_password() {
  local out
  out=$(login "$1" "wrong-pass-$RANDOM")
  [[ $out == *"password authentication failed"* ]]
}
# Refused with the right password, with a message that says it is a block or lockout.
refused_blocked() {
  local out rc
  out=$(login "$1" "$PASS"); rc=$?
  echo "    $1: ${out//$'\n'/ }"
  [ $rc -ne 0 ] && grep -Eqi 'blocked|locked' <<<"$out"
}
reload() { sql "SELECT pg_reload_conf()" >/dev/null; sleep 1; }

psql_su "$PORT" postgres -q -c "CREATE DATABASE $DB" || { echo "not ok - create database"; exit 1; }
psql_su "$PORT" "$DB" -q <<SQL || { echo "not ok - install tradeguard"; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION tradeguard;
SET log_statement = 'none';
SET password_encryption = 'scram-sha-256';
CREATE ROLE trader1 LOGIN PASSWORD '$PASS';
CREATE ROLE trader2 LOGIN PASSWORD '$PASS';
CREATE ROLE trader3 LOGIN PASSWORD '$PASS';
CREATE ROLE trader4 LOGIN PASSWORD '$PASS';
CREATE ROLE trader5 LOGIN PASSWORD '$PASS';
CREATE ROLE trader6 LOGIN PASSWORD '$PASS';
SQL
ok "cluster with tradeguard preloaded, roles trader1 to trader6"
# The worker retries every few seconds until the database exists; wait until it serves it.
for _ in $(seq 1 50); do
  [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tradeguard worker' AND datname = '$DB'")" = 1 ] && break
  sleep 0.2
done

check "right password logs in over TCP" login_works trader1

# --- Lockout by source: 3 failures, then the right password is refused ----------------------
n=0
for i in 1 2 3; do wrong_password trader1 && n=$((n + 1)); done
check "3 wrong passwords are refused" [ "$n" -eq 3 ]
check "4th attempt with the right password is refused (blocked)" refused_blocked trader1
check "trader2 from the same address is refused too" refused_blocked trader2

sleep 1.5   # the worker stores queued events every tradeguard.seal_interval (200 ms)
check "the lockout is a row of blocked_sources" \
  [ "$(sql "SELECT count(*) FROM tradeguard_audit.blocked_sources WHERE source = '127.0.0.1/32' AND created_by = 'tradeguard'")" -ge 1 ]
check "a lockout security event (high) was recorded" \
  [ "$(sql "SELECT count(*) FROM tradeguard.security_events WHERE event_type = 'lockout' AND severity = 'high' AND detail->>'key' = 'source'")" -ge 1 ]
check "failed logins are recorded and shown by tradeguard.failed_logins" \
  [ "$(sql "SELECT coalesce(sum(failures_last_window), 0) FROM tradeguard.failed_logins WHERE source = '127.0.0.1' AND role_name = 'trader1'")" -ge 3 ]
check "the refused attempt is recorded (auth_events.blocked)" \
  [ "$(sql "SELECT count(*) FROM tradeguard.auth_events WHERE blocked AND client_addr = '127.0.0.1'")" -ge 1 ]
check "a blocked attempt with the right password is a blocked_login event" \
  [ "$(sql "SELECT count(*) FROM tradeguard.security_events WHERE event_type = 'blocked_login' AND role_name = 'trader1' AND source = '127.0.0.1'")" -ge 1 ]
check "the lockout alert reached the server log with the tradeguard: prefix" \
  grep -q 'WARNING:  tradeguard: alert severity=high type=lockout' "$LOGF"

# --- Expiry: tradeguard.lockout_duration = 5 s ------------------------------------------------
sleep 6
check "after lockout_duration the right password works again" login_works trader1

# --- log_hostname = on: the address comes from the socket ------------------------------------
# PostgreSQL then puts the client's reverse-DNS name (here "localhost") where the hook read the
# address from: the hook must still count (here for the role: the address has failures of its
# own above) and record the client's address, not a name the client's network chose.
sql "ALTER SYSTEM SET log_hostname = on" >/dev/null
sql "ALTER SYSTEM SET tradeguard.max_failed_logins = 1000" >/dev/null
sql "ALTER SYSTEM SET tradeguard.max_failed_logins_per_role = 3" >/dev/null
reload
before=$(sql "SELECT count(*) FROM tradeguard.auth_events WHERE client_addr = '127.0.0.1' AND role_name = 'trader3' AND NOT success")
n=0
for i in 1 2 3; do wrong_password trader3 && n=$((n + 1)); done
check "with log_hostname = on, 3 wrong passwords are refused" [ "$n" -eq 3 ]
check "with log_hostname = on, the failures still lock out (trader3, limit 3)" refused_blocked trader3
sleep 1.5
check "with log_hostname = on, the failures are recorded with the client's address" \
  [ "$(sql "SELECT count(*) FROM tradeguard.auth_events WHERE client_addr = '127.0.0.1' AND role_name = 'trader3' AND NOT success")" -ge $((before + 3)) ]
sql "ALTER SYSTEM RESET log_hostname" >/dev/null
sql "ALTER SYSTEM SET tradeguard.max_failed_logins_per_role = 6" >/dev/null
reload
sql "SELECT tradeguard.unblock_role('trader3')" >/dev/null
check "trader3 logs in after unblock_role" login_works trader3

# --- Lockout by role: only the per-role limit (6) applies ------------------------------------
sql "ALTER SYSTEM SET tradeguard.max_failed_logins = 1000" >/dev/null
reload
n=0
for i in 1 2 3 4 5 6; do wrong_password trader2 && n=$((n + 1)); done
check "6 wrong passwords for trader2 are refused" [ "$n" -eq 6 ]
check "trader2 is locked out even with the right password" refused_blocked trader2
check "trader1 from the same address still logs in (the lock is per role)" login_works trader1
sleep 1.5
check "the role lockout is a row of blocked_sources" \
  [ "$(sql "SELECT count(*) FROM tradeguard.blocked_sources WHERE role_name = 'trader2'")" -ge 1 ]
check "tradeguard.unblock_role lifts it" [ "$(sql "SELECT tradeguard.unblock_role('trader2')")" -ge 1 ]
check "trader2 logs in after unblock_role" login_works trader2

# --- A per-role limit above the 64 steps failures are counted in ------------------------------
sql "ALTER SYSTEM SET tradeguard.max_failed_logins_per_role = 70" >/dev/null
reload
n=0
for i in $(seq 1 69); do wrong_password trader5 && n=$((n + 1)); done
check "69 wrong passwords for trader5 (limit 70) are refused" [ "$n" -eq 69 ]
check "trader5 is not locked out after 69" login_works trader5
wrong_password trader5
check "the 70th locks trader5 out" refused_blocked trader5
sql "SELECT tradeguard.unblock_role('trader5')" >/dev/null
sql "ALTER SYSTEM SET tradeguard.max_failed_logins_per_role = 6" >/dev/null
reload

# --- Exempt CIDR: failures from 127.0.0.0/8 never lock -----------------------------------------
sql "ALTER SYSTEM SET tradeguard.max_failed_logins = 3" >/dev/null
sql "ALTER SYSTEM SET tradeguard.lockout_exempt = '127.0.0.0/8'" >/dev/null
reload
before=$(sql "SELECT count(*) FROM tradeguard.auth_events WHERE role_name = 'trader4' AND NOT success")
n=0
for i in 1 2 3 4 5; do wrong_password trader4 && n=$((n + 1)); done
check "5 wrong passwords from an exempt address are refused" [ "$n" -eq 5 ]
check "an exempt address is not locked out" login_works trader4
sleep 1.5
check "failures from an exempt address are recorded" \
  [ "$(sql "SELECT count(*) FROM tradeguard.auth_events WHERE role_name = 'trader4' AND NOT success")" -ge $((before + 5)) ]
wrong_password trader4
check "the per-role limit (6) still applies through an exempt address" refused_blocked trader4
check "trader1 from the exempt address still logs in" login_works trader1
sql "SELECT tradeguard.unblock_role('trader4')" >/dev/null
# A role locked out by failures from elsewhere still logs in through an exempt address (a
# pooler): otherwise anyone could lock the pooled application out.
sql "ALTER SYSTEM RESET tradeguard.lockout_exempt" >/dev/null
sql "ALTER SYSTEM SET tradeguard.max_failed_logins = 1000" >/dev/null
reload
for i in 1 2 3 4 5 6; do wrong_password trader6; done
check "trader6 is locked out by 6 failures from a non-exempt address" refused_blocked trader6
sql "ALTER SYSTEM SET tradeguard.lockout_exempt = '127.0.0.0/8'" >/dev/null
sql "ALTER SYSTEM SET tradeguard.max_failed_logins = 3" >/dev/null
reload
check "... and still logs in through an exempt address" login_works trader6
sql "ALTER SYSTEM RESET tradeguard.lockout_exempt" >/dev/null
reload

# --- Manual block and unblock ------------------------------------------------------------------
check "tradeguard.block() returns the block id" \
  [ "$(sql "SELECT tradeguard.block('127.0.0.1/32', 'e2e manual block', '10 minutes')")" -ge 1 ]
check "a manually blocked address is refused" refused_blocked trader1
check "tradeguard.unblock() lifts it" [ "$(sql "SELECT tradeguard.unblock('127.0.0.1/32')")" -ge 1 ]
check "the address logs in after unblock" login_works trader1
check "block and unblock are security events" \
  [ "$(sql "SELECT count(DISTINCT event_type) FROM tradeguard.security_events WHERE event_type IN ('block', 'unblock')")" -eq 2 ]

# --- Persistence across a restart --------------------------------------------------------------
sql "SELECT tradeguard.block('127.0.0.1/32', 'e2e restart', '10 minutes')" >/dev/null
start_cluster "$DATA" "$PORT" || not_ok "cluster restarts"
sleep 2   # the worker rebuilds the blocks from the table at start-up
check "a block survives a restart" refused_blocked trader1
check "it is still listed in tradeguard.blocked_sources" \
  [ "$(sql "SELECT count(*) FROM tradeguard.blocked_sources WHERE reason = 'e2e restart'")" -eq 1 ]
sql "SELECT tradeguard.unblock('127.0.0.1/32')" >/dev/null
check "and lifts after unblock" login_works trader1

# Failed logins counted before a restart still count after it: kept over the restart in
# pg_stat/tradeguard_pending.json (a restart must not give a password guesser a fresh count).
sql "CREATE ROLE trader7 LOGIN PASSWORD '$PASS'" >/dev/null
n=0
for i in 1 2; do wrong_password trader7 && n=$((n + 1)); done
check "2 wrong passwords for trader7 (the address limit is 3)" [ "$n" -eq 2 ]
log_before=$(stat -c %s "$LOGF")
start_cluster "$DATA" "$PORT" || not_ok "cluster restarts"
check "the server log says the counters were kept and restored (this restart's lines)" \
  bash -c "tail -c +$((log_before + 1)) '$LOGF' | grep -q 'failed-login counters in pg_stat/tradeguard_pending.json' && tail -c +$((log_before + 1)) '$LOGF' | grep -q 'restored .* [1-9][0-9]* failed-login counters'"
wrong_password trader7
check "the third wrong password after the restart locks the address out" refused_blocked trader7
# (the worker stores the lockout before it is lifted)
for _ in $(seq 1 50); do
  [ "$(sql "SELECT count(*) FROM tradeguard_audit.blocked_sources WHERE source = '127.0.0.1/32' AND created_by = 'tradeguard' AND blocked_until > now()")" -ge 1 ] && break
  sleep 0.2
done
sql "SELECT tradeguard.unblock('127.0.0.1/32')" >/dev/null
check "and lifts after unblock" login_works trader7
# A lockout that ends while the server is down takes its failures with it, as it does on a
# running server: the next mistake after the restart does not lock the address out again.
sql "CREATE ROLE trader8 LOGIN PASSWORD '$PASS'" >/dev/null
for i in 1 2 3; do wrong_password trader8; done
check "3 wrong passwords for trader8 lock the address out" refused_blocked trader8
stop_cluster "$DATA"
sleep 6   # tradeguard.lockout_duration = 5 s passes while the server is down
start_cluster "$DATA" "$PORT" || not_ok "cluster restarts"
wrong_password trader8
check "after a lockout that ended during the downtime, one more mistake does not lock again" login_works trader8

# --- contain_source by an admin who is not a superuser spares a superuser's sessions -----------
sql "CREATE ROLE tg_su SUPERUSER LOGIN PASSWORD '$PASS'; CREATE ROLE tg_admin; GRANT tradeguard_admin TO tg_admin" >/dev/null
for r in tg_su trader1; do
  PGPASSWORD="$PASS" PGPASSFILE=/dev/null PGSSLMODE=disable "$PG_BIN/psql" -X -w -h 127.0.0.1 -p "$PORT" -U "$r" -d "$DB" \
    -tAc 'select pg_sleep(30)' >/dev/null 2>&1 &
done
sessions() { sql "SELECT count(*) FROM pg_stat_activity WHERE usename = '$1' AND client_addr = '127.0.0.1'"; }
for _ in $(seq 1 50); do [ "$(sessions tg_su)$(sessions trader1)" = 11 ] && break; sleep 0.2; done
terminated=$(psql_su "$PORT" "$DB" -qtA -c "SET client_min_messages = error" -c "SET SESSION AUTHORIZATION tg_admin" \
  -c "SELECT tradeguard.incident_open('other', 'e2e containment') > 0" -c "SELECT tradeguard.contain_source('127.0.0.1/32')" | tail -1)
sleep 0.5
check "contain_source by a non-superuser admin terminates the other sessions from the address" \
  [ "$terminated:$(sessions trader1)" = 1:0 ]
check "... and leaves the superuser's session running" [ "$(sessions tg_su)" = 1 ]
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'tg_su'" >/dev/null
sql "SELECT tradeguard.unblock('127.0.0.1/32')" >/dev/null
wait

# --- tradeguard.auth_failure_delay: a wrong password is answered only after the delay -------------
sql "SET password_encryption = 'scram-sha-256'; CREATE ROLE trader_delay LOGIN PASSWORD '$PASS'" >/dev/null
sql "ALTER SYSTEM SET tradeguard.auth_failure_delay = '800ms'" >/dev/null
reload
t0=$(date +%s%N)
wrong_password trader_delay
t1=$(date +%s%N)
check "with auth_failure_delay = 800ms a wrong password is answered after at least 800 ms" \
  [ $(( (t1 - t0) / 1000000 )) -ge 800 ]
sql "ALTER SYSTEM RESET tradeguard.auth_failure_delay" >/dev/null
reload
sql "SELECT tradeguard.unblock('127.0.0.1/32')" >/dev/null

# --- Status -----------------------------------------------------------------------------------
check "tradeguard.security_status() answers on a live cluster" \
  [ "$(sql "SELECT tradeguard.security_status() ?& ARRAY['blocked_sources', 'failed_logins_last_hour', 'audit_chain']")" = t ]

echo
if [ "$failed" -gt 0 ]; then
  echo "$failed check(s) failed; server log: $LOGF"
  tail -n 20 "$LOGF"
  exit 1
fi
echo "all lockout checks passed"
