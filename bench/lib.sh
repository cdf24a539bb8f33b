# Shared helpers for tradeguard's benchmarks (sourced by bench/*.sh, not run).
# shellcheck shell=bash
#
# Conventions for a benchmark script bench/<name>.sh:
#   - source this file, use TG_PORT / TG_BENCH_DB, never touch daytrading_prod;
#   - print a markdown table to stdout and write the same table to bench/out/<name>.md
#     (bench/run.sh copies bench/out/<name>.md into bench/RESULTS.md);
#   - exit non-zero only when the benchmark could not run (a missed target is a result).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BENCH_OUT=$BENCH_DIR/out
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
TG_PORT=${TG_PORT:-5499}
TG_BENCH_DB=${TG_BENCH_DB:-tg_bench}
export TG_PORT TG_BENCH_DB

blog() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }
bdie() { blog "error: $*"; exit 1; }

# Run a command as the `postgres` OS user (peer authentication over the socket in /tmp).
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# psql as the superuser over the Unix socket. $1 = database, rest = psql arguments.
bpsql() {
  local db=$1; shift
  as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h /tmp -p "$TG_PORT" -d "$db" "$@"
}

# One value (unaligned, tuples only). $1 = database, $2 = SQL.
bval() { bpsql "$1" -Atc "$2"; }

# pgbench as the superuser over the Unix socket. $1 = database, rest = pgbench arguments.
bpgbench() {
  local db=$1; shift
  as_postgres "$PG_BIN/pgbench" -h /tmp -p "$TG_PORT" "$@" "$db"
}

# Is a server answering on TG_PORT?
cluster_up() { "$PG_BIN/pg_isready" -q -h /tmp -p "$TG_PORT" >/dev/null 2>&1; }

# (Re)create the benchmark database (never daytrading_prod).
# The new database has bench_ms(q): q's run time in ms, timed in the server (every script uses it).
fresh_bench_db() {
  [ "$TG_BENCH_DB" = daytrading_prod ] && bdie "refusing to use daytrading_prod as the benchmark database"
  bpsql postgres -c "DROP DATABASE IF EXISTS $TG_BENCH_DB WITH (FORCE)" -c "CREATE DATABASE $TG_BENCH_DB" 2>/dev/null \
    || bdie "could not (re)create database $TG_BENCH_DB on port $TG_PORT"
  bpsql "$TG_BENCH_DB" >/dev/null <<'SQL' || bdie "could not create bench_ms() in $TG_BENCH_DB"
CREATE FUNCTION bench_ms(q text) RETURNS float8 LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE q;
  RETURN 1000 * extract(epoch FROM clock_timestamp() - t0);
END $f$;
SQL
}

# Median of the numbers given as arguments (or on stdin, one per line).
median() {
  { if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cat; fi; } | sort -g | awk '
    { v[NR] = $1 }
    END { if (NR == 0) { print "NaN"; exit }
          if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Floating-point arithmetic: calc '<awk expression>' (e.g. calc '3 / 7'), printed with %.6g.
calc() { awk "BEGIN { printf \"%.6g\n\", $1 }"; }
# fmt <number> <decimals>
fmt() { awk -v x="$1" -v d="${2:-2}" 'BEGIN { if (x == "" || x == "NaN") print "n/a"; else printf "%.*f\n", d, x }'; }
# yes/no: ge <a> <b>  ->  "yes" when a >= b
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a != "NaN" && a + 0 >= b + 0) ? "yes" : "no") }'; }

# Machine facts, one "key: value" per line.
machine_cores() { nproc; }
machine_cpu() { awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo; }
machine_aesni() { grep -qw aes /proc/cpuinfo && echo yes || echo no; }
machine_memory() { awk '/^MemTotal/ { printf "%.1f GiB\n", $2 / 1048576 }' /proc/meminfo; }
pg_server_version() { bval postgres "SHOW server_version" 2>/dev/null || echo unknown; }
bench_date() { date -u '+%Y-%m-%d %H:%M UTC'; }
machine_info() {
  echo "date: $(bench_date)"
  echo "cores: $(machine_cores)"
  echo "cpu: $(machine_cpu) (AES-NI: $(machine_aesni))"
  echo "memory: $(machine_memory)"
  echo "postgresql: $(pg_server_version)"
}

# tradeguard's build as loaded by the server, from a database where the extension exists.
tg_version() {
  local db=${1:-$TG_BENCH_DB}
  bval "$db" "SELECT tradeguard.version()" 2>/dev/null \
    || echo "unknown (tradeguard not installed in $db)"
}

# le/gt <a> <b>: "yes" when a <= b / a > b
le() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a != "NaN" && a != "" && a + 0 <= b + 0) ? "yes" : "no") }'; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a != "NaN" && a != "" && a + 0 > b + 0) ? "yes" : "no") }'; }

install_tg() { # <db>: CREATE EXTENSION tradeguard (or the TG_BENCH_TG_SQL workaround)
  local err
  if [ -n "${TG_BENCH_TG_SQL:-}" ]; then
    err=$(bpsql "$1" -f "$TG_BENCH_TG_SQL" 2>&1 >/dev/null) || bdie "running $TG_BENCH_TG_SQL failed: $(grep -v NOTICE <<<"$err")"
    INSTALL_NOTE=" Installed from \`$(basename "$TG_BENCH_TG_SQL")\` (TG_BENCH_TG_SQL) instead of CREATE EXTENSION."
  elif ! err=$(bpsql "$1" -c 'CREATE EXTENSION tradeguard' 2>&1); then
    bdie "CREATE EXTENSION tradeguard failed: $err
  (if a function is missing from tradeguard.so, the server runs an older build than the installed SQL: rerun 'make demo')"
  fi
}
