# Helpers for the scripted end-to-end tests (sourced).
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

TG_TEST_DIR=${TG_TEST_DIR:-/var/tmp/tradeguard-test}
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { # check "name" command...
  local name=$1; shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# A throwaway preloaded cluster: $1 = name, $2 = port, rest = extra postgresql.conf lines.
e2e_cluster() {
  local name=$1 port=$2; shift 2
  E2E_DATA="$TG_TEST_DIR/$name/data"
  E2E_PORT=$port
  stop_cluster "$E2E_DATA" 2>/dev/null || true
  rm -rf "$TG_TEST_DIR/$name"
  init_cluster "$E2E_DATA" --auth-local=trust --auth-host=scram-sha-256
  make_root_key "$TG_TEST_DIR/root.key"
  {
    echo "shared_preload_libraries = 'tradeguard'"
    echo "tradeguard.root_key_file = '$TG_TEST_DIR/root.key'"
    echo "listen_addresses = ''"
    echo "lc_messages = 'C'"
    printf '%s\n' "$@"
  } >> "$E2E_DATA/postgresql.conf"
  start_cluster "$E2E_DATA" "$E2E_PORT"
  trap 'stop_cluster "$E2E_DATA" 2>/dev/null || true' EXIT
}

# psql against the e2e cluster: $1 = db, rest = psql args (no ON_ERROR_STOP).
q() {
  local db=$1; shift
  as_pg "$PG_BIN/psql" -X -qAt -h /tmp -p "$E2E_PORT" -d "$db" "$@"
}

finish() {
  echo "$((${checks:-0})) checks, $fails failed"
  [ "$fails" -eq 0 ]
}
