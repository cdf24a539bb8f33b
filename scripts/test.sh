#!/usr/bin/env bash
# Runs every tradeguard test: pure Rust (`cargo test`), in-database (`cargo pgrx test`),
# pg_regress over pg_test/ and the scripted end-to-end tests under tests/.
# Usage: scripts/test.sh [all|unit|pg|regress|e2e]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

what=${1:-all}
TG_TEST_DIR=${TG_TEST_DIR:-/var/tmp/tradeguard-test}
TG_REGRESS_PORT=${TG_REGRESS_PORT:-54329}
LOGS="$TG_TEST_DIR/logs"
mkdir -p "$LOGS"
chmod 755 "$TG_TEST_DIR"
export TG_TEST_ROOT_KEY="$TG_TEST_DIR/root.key"
make_root_key "$TG_TEST_ROOT_KEY"

passed=0 failed=0
declare -a failures=()

# Sum "test result: ... N passed; M failed" lines from a cargo test log.
count_cargo() {
  local logf=$1 p f
  p=$(grep -Eo '[0-9]+ passed' "$logf" | awk '{s+=$1} END {print s+0}')
  f=$(grep -Eo '[0-9]+ failed' "$logf" | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
  echo "  $p passed, $f failed"
}

run_unit() {
  log "cargo test (pure Rust logic)"
  if cargo test --lib --bins --no-fail-fast >"$LOGS/unit.log" 2>&1; then :; else
    failures+=("cargo test (see $LOGS/unit.log)")
    grep -E '^(test .* FAILED|---- |thread .* panicked|error(\[|:))' "$LOGS/unit.log" | head -40
    grep -q 'test result' "$LOGS/unit.log" || failed=$((failed + 1))
  fi
  grep -E '^(corpus|ids-rate)' "$LOGS/unit.log" || true
  count_cargo "$LOGS/unit.log"
}

run_pg() {
  log "cargo pgrx test pg15 (inside PostgreSQL, as user postgres)"
  local pgdata="$TG_TEST_DIR/pgrx-data"
  rm -rf "$pgdata"; mkdir -p "$pgdata"; chown postgres:postgres "$pgdata"
  if cargo pgrx test pg15 tests::pg_ --runas postgres --pgdata "$pgdata" >"$LOGS/pgrx.log" 2>&1; then :; else
    failures+=("cargo pgrx test (see $LOGS/pgrx.log)")
    grep -E '^(test .* FAILED|---- |Client Error:|error(\[|:))' -A3 "$LOGS/pgrx.log" | head -60
    grep -q 'test result' "$LOGS/pgrx.log" || failed=$((failed + 1))
  fi
  count_cargo "$LOGS/pgrx.log"
}

run_regress() {
  log "pg_regress over pg_test/ (throwaway cluster, tradeguard preloaded)"
  install_extension debug || { failures+=("cargo pgrx install"); failed=$((failed + 1)); return; }
  local data="$TG_TEST_DIR/regress/data"
  stop_cluster "$data"
  rm -rf "$TG_TEST_DIR/regress"
  init_cluster "$data" --auth-local=trust --auth-host=reject
  cat >>"$data/postgresql.conf" <<CONF
shared_preload_libraries = 'tradeguard'
tradeguard.root_key_file = '$TG_TEST_ROOT_KEY'
listen_addresses = ''
lc_messages = 'C'
# Regress output must not depend on the worker's timing: tests seal explicitly.
tradeguard.database_name = 'tg_regress'
tradeguard.seal_interval = '1h'
CONF
  start_cluster "$data" "$TG_REGRESS_PORT" || { failures+=("regress cluster start"); failed=$((failed + 1)); return; }
  local out="$TG_TEST_DIR/regress/out"
  pg_dir "$out"
  local tests
  tests=$(cd pg_test/sql && ls *.sql | sed 's/\.sql$//' | sort | tr '\n' ' ')
  chmod -R a+rX pg_test
  as_pg /usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
      --bindir="$PG_BIN" --inputdir="$PWD/pg_test" --outputdir="$out" \
      --host=/tmp --port="$TG_REGRESS_PORT" --user=postgres --dbname=tg_regress \
      $tests >"$LOGS/regress.log" 2>&1
  local rc=$?
  cat "$LOGS/regress.log" | grep -E '^(test|ok|not ok| +[a-z_0-9]+ +\.\.\.|All|[0-9]+ of)' || true
  local p f
  p=$(grep -Ec '\.\.\. ok|^ok ' "$LOGS/regress.log")
  f=$(grep -Ec '\.\.\. FAILED|^not ok ' "$LOGS/regress.log")
  if [ $rc -ne 0 ]; then
    failures+=("pg_regress (diffs: $out/regression.diffs)")
    [ -f "$out/regression.diffs" ] && head -80 "$out/regression.diffs"
    [ "$f" -eq 0 ] && f=1
  fi
  passed=$((passed + p)); failed=$((failed + f))
  echo "  $p passed, $f failed"
  stop_cluster "$data"
}

run_e2e() {
  local t
  for t in tests/*.sh; do
    [ -e "$t" ] || continue
    [ "$(basename "$t")" = lib.sh ] && continue
    log "scripted test $t"
    if bash "$t" >"$LOGS/$(basename "$t").log" 2>&1; then
      passed=$((passed + 1)); echo "  ok"
    else
      failed=$((failed + 1)); failures+=("$t (see $LOGS/$(basename "$t").log)")
      tail -n 30 "$LOGS/$(basename "$t").log"
    fi
  done
}

case $what in
  unit) run_unit ;;
  pg) run_pg ;;
  regress) run_regress ;;
  e2e) install_extension debug && run_e2e ;;
  all) run_unit; run_pg; run_regress; run_e2e ;;
  *) echo "usage: $0 [all|unit|pg|regress|e2e]" >&2; exit 2 ;;
esac

if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "Failures:"
  printf '  - %s\n' "${failures[@]}"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
