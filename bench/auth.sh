#!/usr/bin/env bash
# Authentication-hook benchmark (issue 8): connection throughput (`pgbench -C`, a new SCRAM
# connection over TCP per `SELECT 1`) of a cluster with tradeguard preloaded (hook and worker
# active) against the same cluster without it, and a burst of 1,000 failed logins that must all
# be counted. Both clusters are throwaway ones made here (the demo cluster's TCP needs TLS, which
# would dominate the cost): same initdb, same settings, same pg_hba (`host ... scram-sha-256`, no
# TLS), the only difference being shared_preload_libraries = 'tradeguard'. They are stopped and
# removed at the end. Prints a markdown table and writes bench/out/auth.md (raw: bench/out/auth.raw).
#
# Settings (environment):
#   TG_BENCH_AUTH_DIR       base directory of the throwaway clusters (default /var/tmp/tg-bench-noauth)
#   TG_BENCH_AUTH_PORT      port of the cluster without tradeguard (default 55499)
#   TG_BENCH_AUTH_TG_PORT   port of the cluster with tradeguard preloaded (default 55500)
#   TG_BENCH_AUTH_SECONDS   pgbench -C duration per run (default 10)
#   TG_BENCH_AUTH_CLIENTS   pgbench clients (default 4)
#   TG_BENCH_AUTH_FAILS     failed logins in the burst (default 1000)
#   TG_BENCH_REPS           runs per cluster, alternated, the median is kept (default 3)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME=auth
BASE=${TG_BENCH_AUTH_DIR:-/var/tmp/tg-bench-noauth}
PORT_PLAIN=${TG_BENCH_AUTH_PORT:-55499}
PORT_TG=${TG_BENCH_AUTH_TG_PORT:-55500}
SECS=${TG_BENCH_AUTH_SECONDS:-10}
CLIENTS=${TG_BENCH_AUTH_CLIENTS:-4}
FAILS=${TG_BENCH_AUTH_FAILS:-1000}
REPS=${TG_BENCH_REPS:-3}
PASSWORD=bench-auth-$(openssl rand -hex 8)
mkdir -p "$BENCH_OUT"
t_start=$(date +%s)

case $BASE in /*tg-bench*) ;; *) bdie "TG_BENCH_AUTH_DIR must be an absolute path containing 'tg-bench' (it is removed at the end)" ;; esac
[ "$(id -u)" = 0 ] || [ "$(id -un)" = postgres ] || bdie "run as root or postgres (initdb as postgres)"
for p in "$PORT_PLAIN" "$PORT_TG"; do
  if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$p" >/dev/null 2>&1; then bdie "port $p is already in use"; fi
done
if [ -e "$BASE" ]; then
  # A leftover of an interrupted run: stop what may still run there, then start afresh.
  for d in "$BASE"/plain "$BASE"/preload; do
    [ -s "$d/data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
  done
  rm -rf "$BASE"
fi

stop_all() {
  local d
  for d in "$BASE"/plain "$BASE"/preload; do
    [ -s "$d/data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$d/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  done
  rm -rf "$BASE" "${RAW:-}"
}
trap stop_all EXIT
RAW=$(mktemp)

# ------------------------------------------------------------------ clusters
mkdir -p "$BASE"
chown postgres:postgres "$BASE"
chmod 700 "$BASE"
# A root key for the preloaded cluster (outside its data directory, 0600, owned by postgres).
as_postgres bash -c "umask 077; mkdir -p '$BASE/keys' && openssl rand -hex 32 > '$BASE/keys/root.key'"

mkcluster() { # <name> <port> <preload 0|1>
  local dir=$BASE/$1 port=$2 preload=$3
  as_postgres mkdir -p "$dir/sock"
  as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null || bdie "initdb of $dir failed"
  # Same settings on both sides (the demo's logging and password settings; no TLS).
  as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/sock'
ssl = off
password_encryption = 'scram-sha-256'
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] user=%u db=%d app=%a client=%h '
log_statement = 'mod'
CONF
  if [ "$preload" = 1 ]; then
    as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
shared_preload_libraries = 'tradeguard'
tradeguard.root_key_file = '$BASE/keys/root.key'
tradeguard.database_name = 'postgres'
# The burst must be counted, not blocked.
tradeguard.max_failed_logins = 1000000
tradeguard.max_failed_logins_per_role = 1000000
tradeguard.auto_block_score = 0
CONF
  fi
  as_postgres tee "$dir/data/pg_hba.conf" >/dev/null <<HBA
local all postgres               peer
host  all all      127.0.0.1/32  scram-sha-256
HBA
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || bdie "could not start the throwaway cluster $dir: $(tail -n 20 "$dir/server.log")"
}
tpsql() { # <name> <port> <db> psql args...: superuser over the cluster's socket
  local name=$1 port=$2 db=$3; shift 3
  as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BASE/$name/sock" -p "$port" -d "$db" "$@"
}

blog "auth: initdb of two throwaway clusters in $BASE (ports $PORT_PLAIN without, $PORT_TG with tradeguard)"
mkcluster plain "$PORT_PLAIN" 0
mkcluster preload "$PORT_TG" 1
for spec in plain:$PORT_PLAIN preload:$PORT_TG; do
  IFS=: read -r n p <<<"$spec"
  tpsql "$n" "$p" postgres -c "SET client_min_messages = warning" \
    -c "CREATE ROLE bench LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE bench OWNER bench" >/dev/null \
    || bdie "could not create the bench role and database on $n"
done
err=$(tpsql preload "$PORT_TG" postgres -c "CREATE EXTENSION tradeguard" 2>&1) || bdie "CREATE EXTENSION tradeguard failed on the preloaded cluster: $err"
VERSION=$(tpsql preload "$PORT_TG" postgres -Atc "SELECT tradeguard.version()")
preload_plain=$(tpsql plain "$PORT_PLAIN" postgres -Atc "SHOW shared_preload_libraries")
preload_tg=$(tpsql preload "$PORT_TG" postgres -Atc "SHOW shared_preload_libraries")
[ "$preload_tg" = tradeguard ] || bdie "tradeguard is not preloaded on port $PORT_TG ($preload_tg)"

# Settings that differ between the two clusters (should be the preload and tradeguard.* only).
settings_q="SELECT name || '=' || setting FROM pg_settings WHERE name NOT IN ('port', 'unix_socket_directories', 'data_directory', 'config_file', 'hba_file', 'ident_file') ORDER BY 1"
diff_settings=$(diff <(tpsql plain "$PORT_PLAIN" postgres -Atc "$settings_q") <(tpsql preload "$PORT_TG" postgres -Atc "$settings_q") \
  | sed -n 's/^> //p' | cut -d= -f1 | grep -v '^tradeguard\.\|^shared_preload_libraries$' | paste -sd, - || true)

# ------------------------------------------------------------------ pgbench -C
tcp_env=(env PGPASSWORD="$PASSWORD" PGSSLMODE=disable PGGSSENCMODE=disable)
pgbc() { # <port> <seconds> -> "tps avg_connection_ms"
  local out
  out=$(echo 'SELECT 1;' | "${tcp_env[@]}" "$PG_BIN/pgbench" -h 127.0.0.1 -p "$1" -U bench -n -C -c "$CLIENTS" -j 2 -T "$2" -f - bench 2>&1) \
    || { blog "pgbench -C failed: $(tail -n 5 <<<"$out")"; return 1; }
  awk '/^tps = / { t = $3 } /average connection time/ { c = $5 } END { print t, c }' <<<"$out"
}
blog "auth: pgbench -C warm-up (3 s per cluster)"
pgbc "$PORT_PLAIN" 3 >/dev/null || bdie "pgbench -C against the cluster without tradeguard failed"
pgbc "$PORT_TG" 3 >/dev/null || bdie "pgbench -C against the cluster with tradeguard failed"
ok_before=$(tpsql preload "$PORT_TG" postgres -Atc "SELECT count(*) FROM tradeguard_audit.auth_events WHERE success")
blog "auth: pgbench -C, $CLIENTS clients, ${SECS}s x $REPS per cluster, alternated"
declare -a TPS_PLAIN=() TPS_TG=() CONN_PLAIN=() CONN_TG=()
tx_tg=0
for ((r = 1; r <= REPS; r++)); do
  for side in plain preload; do
    if [ "$side" = plain ]; then port=$PORT_PLAIN; else port=$PORT_TG; fi
    read -r tps conn < <(pgbc "$port" "$SECS") || bdie "pgbench -C on $side failed"
    [ -n "$tps" ] || bdie "pgbench -C on $side printed no tps"
    echo "pgbench_C|$side|$r|$tps|$conn" >>"$RAW"
    blog "auth: $side run $r: $tps connections/s (average connection time $conn ms)"
    if [ "$side" = plain ]; then TPS_PLAIN+=("$tps"); CONN_PLAIN+=("$conn"); else TPS_TG+=("$tps"); CONN_TG+=("$conn"); tx_tg=$(calc "$tx_tg + $tps * $SECS"); fi
  done
done
sleep 1
ok_after=$(tpsql preload "$PORT_TG" postgres -Atc "SELECT count(*) FROM tradeguard_audit.auth_events WHERE success")

# ------------------------------------------------------------------ failed-login burst
# FAILS psql processes with a wrong password, 8 at a time, bounded by a timeout; each attempt
# that the server rejected prints one "password authentication failed" line.
burst() { # <port> -> "rejected seconds"
  local t0 t1 n
  t0=$(date +%s%N)
  n=$(seq "$FAILS" | timeout 300 xargs -P 8 -I{} env PGPASSWORD=wrong-password "$PG_BIN/psql" -X -At \
        "host=127.0.0.1 port=$1 user=bench dbname=bench sslmode=disable gssencmode=disable connect_timeout=10" -c 'SELECT 1' 2>&1 \
      | grep -c 'password authentication failed' || true)
  t1=$(date +%s%N)
  echo "$n $(calc "($t1 - $t0) / 1e9")"
}
count_fail() {
  tpsql preload "$PORT_TG" postgres -Atc "SELECT (SELECT count(*) FROM tradeguard_audit.auth_events WHERE NOT success),
    (SELECT count(*) FROM tradeguard_audit.security_events WHERE event_type = 'login_failed'),
    (SELECT coalesce(sum((detail->>'dropped')::bigint), 0) FROM tradeguard_audit.security_events WHERE event_type = 'events_dropped'),
    (SELECT count(*) FROM tradeguard_audit.auth_events WHERE blocked)" | tr '|' ' '
}
blog "auth: burst of $FAILS failed logins against the cluster without tradeguard (reference)"
read -r sent_plain secs_plain < <(burst "$PORT_PLAIN")
read -r af0 sf0 drop0 blk0 < <(count_fail)
blog "auth: burst of $FAILS failed logins against the cluster with tradeguard"
read -r sent_tg secs_tg < <(burst "$PORT_TG")
sleep 2
read -r af2 sf2 _ _ < <(count_fail)
counted_2s=$((af2 - af0)) sec_2s=$((sf2 - sf0))
# Then wait up to 10 s more for the worker to store the rest.
for _ in $(seq 20); do
  read -r af sf drop blk < <(count_fail)
  [ $((af - af0)) -ge "$sent_tg" ] && [ $((sf - sf0)) -ge "$sent_tg" ] && break
  sleep 0.5
done
counted=$((af - af0)) counted_sec=$((sf - sf0)) dropped=$((drop - drop0)) blocked=$((blk - blk0))
blocks_now=$(tpsql preload "$PORT_TG" postgres -Atc "SELECT count(*) FROM tradeguard_audit.blocked_sources WHERE lifted_at IS NULL AND blocked_until > now()" 2>/dev/null || echo "?")
# Is the server still answering normally? A TCP login with the right password after the burst.
t0=$(date +%s%N)
after_ok=$("${tcp_env[@]}" "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$PORT_TG" -U bench -d bench -c 'SELECT 1' 2>&1 || true)
t1=$(date +%s%N)
login_ms=$(calc "($t1 - $t0) / 1e6")
crashes=$(grep -c 'terminated by signal\|server process .* was terminated' "$BASE/preload/server.log" || true)

# ------------------------------------------------------------------ table
mp=$(median "${TPS_PLAIN[@]}") mt=$(median "${TPS_TG[@]}")
cp_=$(median "${CONN_PLAIN[@]}") ct=$(median "${CONN_TG[@]}")
ratio=$(calc "$mt / $mp")
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
row "\`pgbench -C\`, $CLIENTS clients, SCRAM over TCP, \`SELECT 1\` per connection" "$(fmt "$mt" 0) connections/s" "without tradeguard: $(fmt "$mp" 0) connections/s" "$(fmt "$ratio" 3)" "≥ 0.90 (hook costs ≤ 10%)" "$(ge "$ratio" 0.90)"
row "informative: average connection time reported by pgbench" "$(fmt "$ct" 2) ms" "$(fmt "$cp_" 2) ms" "$(fmt "$(calc "$cp_ / $ct")" 3)" "—" "—"
row "burst of $FAILS failed logins (wrong password, 8 in parallel): failures counted in auth_events / rejected" "$counted / $sent_tg" "—" "$(fmt "$(calc "$counted / ($sent_tg > 0 ? $sent_tg : 1)")" 3)" "all counted" "$([ "$sent_tg" -ge "$FAILS" ] && [ "$counted" -ge "$sent_tg" ] && echo yes || echo no)"
row "informative: same burst, counted 2 s after its end (auth_events; security_events login_failed)" "$counted_2s; $sec_2s" "—" "—" "—" "—"
row "informative: burst duration (rejected logins per second)" "$(fmt "$secs_tg" 2) s ($(fmt "$(calc "$sent_tg / $secs_tg")" 0)/s)" "without tradeguard: $(fmt "$secs_plain" 2) s ($(fmt "$(calc "$sent_plain / $secs_plain")" 0)/s), $sent_plain rejected" "$(fmt "$(calc "$secs_plain / $secs_tg")" 2)" "—" "—"

cp "$RAW" "$BENCH_OUT/$NAME.raw"
elapsed=$(( $(date +%s) - t_start ))
out=$BENCH_OUT/$NAME.md
{
  echo "### Authentication hook (bench/auth.sh)"
  echo
  echo "tradeguard: $VERSION. Two throwaway clusters (initdb here, same settings: the demo's logging"
  echo "and \`password_encryption = scram-sha-256\`, \`host all all 127.0.0.1/32 scram-sha-256\`, ssl off), the"
  echo "second with \`shared_preload_libraries = 'tradeguard'\` (hook and worker; extension created in the"
  echo "worker's database \`postgres\`, every TCP login stored in auth_events), shared_preload_libraries"
  echo "'$preload_plain' vs '$preload_tg'; other settings that differ: ${diff_settings:-none}. pgbench \`-C -j 2\`,"
  echo "medians of $REPS runs of ${SECS}s alternated between the clusters after a warm-up. Ratio: with / without"
  echo "tradeguard. Burst: \`max_failed_logins = max_failed_logins_per_role = 1000000\` and \`auto_block_score = 0\`,"
  echo "so that nothing is blocked."
  echo
  echo "| measure | tradeguard | anchor | ratio | target | met |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Checks: successful TCP logins stored during the timed runs: $((ok_after - ok_before)) (pgbench transactions ≈ $(fmt "$tx_tg" 0));"
  echo "failures in security_events (login_failed): $counted_sec; events dropped by the queue: $dropped;"
  echo "attempts refused by a block: $blocked; active blocks: $blocks_now; a right-password login after the"
  echo "burst: $( [ "$after_ok" = 1 ] && echo "ok in $(fmt "$login_ms" 0) ms" || echo "FAILED: $after_ok"); crashed backends in the server log: $crashes."
  echo "Raw runs: bench/out/$NAME.raw. Both clusters are removed at the end. Elapsed: ${elapsed}s."
} >"$out"
cat "$out"
