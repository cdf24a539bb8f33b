#!/usr/bin/env bash
# Audit-trail benchmark (issue 5): pgbench INSERT+UPDATE of a `trades` table without a trigger,
# with tradeguard.audit_table and with the usual PL/pgSQL jsonb audit trigger
# (bench/audit_plpgsql.sql), at 1 and 8 clients; a 100k-row bulk INSERT ... SELECT into each;
# then seal everything and time tradeguard.verify(). Prints a markdown table and writes
# bench/out/audit.md (raw runs in bench/out/audit.raw, TPS in bench/out/audit_tps.csv).
#
# Settings (environment):
#   TG_PORT                       server port (default 5499; socket in /tmp, superuser postgres)
#   TG_BENCH_AUDIT_DB             scratch database, dropped and recreated (default tg_bench_audit)
#   TG_BENCH_SECONDS              pgbench duration per run (default 30)
#   TG_BENCH_AUDIT_CLIENTS        client counts (default "1 8")
#   TG_BENCH_AUDIT_ASYNC_SECONDS  duration of the informative CPU-bound runs (synchronous_commit=off,
#                                 log_statement=none); 0 skips them (default 10)
#   TG_BENCH_BULK_ROWS            rows of the bulk INSERT ... SELECT (default 100000)
#   TG_BENCH_REPS                 timed repetitions of bulk INSERT and verify, median kept (default 3)
#   TG_BENCH_AUDIT_PGB_REPS       pgbench rounds per client count (configurations alternated in
#                                 each round), median kept (default 3)
#   TG_BENCH_TG_SQL               workaround only: install tradeguard from this SQL file (see README)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME=audit
DB=${TG_BENCH_AUDIT_DB:-tg_bench_audit}
SECS=${TG_BENCH_SECONDS:-30}
read -r -a CLIENTS <<<"${TG_BENCH_AUDIT_CLIENTS:-1 8}"
ASYNC_SECS=${TG_BENCH_AUDIT_ASYNC_SECONDS:-10}
BULK_ROWS=${TG_BENCH_BULK_ROWS:-100000}
REPS=${TG_BENCH_REPS:-3}
PGB_REPS=${TG_BENCH_AUDIT_PGB_REPS:-3}
CONFIGS=(none tg plpgsql)
# pgbench also runs a reference without a trigger: the statements write their own trail rows
# (see PGB_STORE_SCRIPT).
PGB_CONFIGS=(none tg plpgsql store)
declare -A CFG_LABEL=([none]="no trigger" [tg]="tradeguard audit_table" [plpgsql]="PL/pgSQL jsonb trigger" [store]="statements writing their own trail rows")
MAXC=${CLIENTS[-1]}

cluster_up || bdie "no PostgreSQL server answers on port $TG_PORT (start it with: make demo)"
mkdir -p "$BENCH_OUT"
t_start=$(date +%s)



# ------------------------------------------------------------------ setup
blog "audit: (re)creating database $DB"
INSTALL_NOTE=""
TG_BENCH_DB=$DB fresh_bench_db
install_tg "$DB"
VERSION=$(tg_version "$DB")
case $VERSION in *"release build"*) ;; *) blog "WARNING: the server runs a non-release tradeguard build: $VERSION" ;; esac
bpsql "$DB" -f "$BENCH_DIR/audit_plpgsql.sql" >/dev/null || bdie "could not load bench/audit_plpgsql.sql"

trades_ddl() { # <table>
  echo "CREATE TABLE $1 (id bigserial PRIMARY KEY, symbol text NOT NULL, side text NOT NULL,
    quantity numeric(18,4) NOT NULL, price numeric(18,4) NOT NULL, executed_at timestamptz NOT NULL DEFAULT now());"
}
attach() { # <config> <table>: the audit trigger of that configuration
  case $1 in
    none) ;;
    tg) echo "SELECT tradeguard.audit_table('$2');" ;;
    plpgsql) echo "CREATE TRIGGER audit_plpgsql AFTER INSERT OR UPDATE OR DELETE ON $2 FOR EACH ROW EXECUTE FUNCTION audit_plpgsql.if_modified();" ;;
  esac
}

{
  cat <<SQL
SET client_min_messages = warning;
CREATE FUNCTION bench_seal(OUT n bigint, OUT ms float8) LANGUAGE plpgsql AS \$f\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  n := tradeguard.seal();
  ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
END \$f\$;
CREATE TABLE src AS
  SELECT 'SYM' || (i % 500) AS symbol, CASE WHEN i % 2 = 0 THEN 'buy' ELSE 'sell' END AS side,
         (1 + i % 1000)::numeric(18,4) AS quantity, (100 + (i % 5000) * 0.01)::numeric(18,4) AS price
    FROM generate_series(1, $BULK_ROWS) i;
SQL
  for c in "${CONFIGS[@]}"; do
    trades_ddl "trades_$c"
    attach "$c" "trades_$c"
    for ((r = 0; r <= REPS; r++)); do
      trades_ddl "bulk_${c}_$r"
      attach "$c" "bulk_${c}_$r"
    done
  done
  # The pgbench reference: no trigger; each statement stores a row shaped like tradeguard's
  # trail row in a copy of the trail table (same columns, its id index).
  trades_ddl trades_store
  echo "CREATE TABLE store_log (LIKE tradeguard_audit.log_unsealed); CREATE INDEX ON store_log (id); CREATE SEQUENCE store_seq;"
  echo "VACUUM ANALYZE;"
} | bpsql "$DB" >/dev/null

# ------------------------------------------------------------------ pgbench
PGB_SCRIPT=$(cat <<'PGB'
\set sym random(1, 500)
\set qty random(1, 1000)
BEGIN;
INSERT INTO @T@ (symbol, side, quantity, price) VALUES ('SYM' || :sym, CASE WHEN :qty % 2 = 0 THEN 'buy' ELSE 'sell' END, :qty, 100 + :sym * 0.01) RETURNING id \gset
UPDATE @T@ SET price = price + 0.01, quantity = quantity + 1 WHERE id = :id;
END;
PGB
)
# The same transaction, each statement also storing its trail row itself (a data-modifying CTE):
# the row's image by to_jsonb, a constant 32-byte signature, no trigger. The cost of writing one
# trail row of these columns per change in SQL, with no trigger call and no HMAC (not a strict
# floor: to_jsonb and the executor's INSERT cost more than tradeguard's native write).
SIG="'\\x$(printf 'ab%.0s' {1..32})'::bytea"
trail_cols() { # <op> <row alias> <old image>
  echo "nextval('store_seq'), txid_current(), clock_timestamp(), 'public', 'trades_store', '$1', jsonb_build_object('id', $2.id), $3, to_jsonb($2), current_user, session_user, current_setting('application_name'), inet_client_addr(), NULL::jsonb, $SIG, NULL::bigint, NULL::bigint"
}
PGB_STORE_SCRIPT=$(cat <<PGB
\set sym random(1, 500)
\set qty random(1, 1000)
BEGIN;
WITH t AS (INSERT INTO trades_store (symbol, side, quantity, price) VALUES ('SYM' || :sym, CASE WHEN :qty % 2 = 0 THEN 'buy' ELSE 'sell' END, :qty, 100 + :sym * 0.01) RETURNING *), a AS (INSERT INTO store_log SELECT $(trail_cols INSERT t NULL::jsonb) FROM t) SELECT id FROM t \gset
WITH u AS (UPDATE trades_store SET price = price + 0.01, quantity = quantity + 1 WHERE id = :id RETURNING *), a AS (INSERT INTO store_log SELECT $(trail_cols UPDATE u "to_jsonb(u)") FROM u) SELECT 1;
END;
PGB
)
declare -A TPS=()
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT
pgb() { # <config> <clients> <seconds> [PGOPTIONS] -> tps
  local t=trades_$1 c=$2 s=$3 opts=${4:-} out script=${PGB_SCRIPT//@T@/trades_$1}
  [ "$1" = store ] && script=$PGB_STORE_SCRIPT
  bpsql "$DB" -c "CHECKPOINT" >/dev/null
  out=$(printf '%s\n' "$script" \
    | as_postgres env PGOPTIONS="$opts" "$PG_BIN/pgbench" -h /tmp -p "$TG_PORT" -n -M prepared -c "$c" -j "$(( c < 2 ? c : 2 ))" -T "$s" -f - "$DB" 2>&1) \
    || { blog "pgbench failed: $(tail -n 5 <<<"$out")"; return 1; }
  grep -q 'number of failed transactions: [1-9]' <<<"$out" && blog "WARNING: failed transactions in $1/$c: $(grep 'failed transactions' <<<"$out")"
  awk '/^tps = / { print $3 }' <<<"$out"
}
series() { # <mode> <seconds> <PGOPTIONS>: PGB_REPS rounds, the configurations alternated in each
  local mode=$1 s=$2 opts=$3 c cfg v r
  declare -A runs=()
  for c in "${CLIENTS[@]}"; do
    for ((r = 1; r <= PGB_REPS; r++)); do
      for cfg in "${PGB_CONFIGS[@]}"; do
        v=$(pgb "$cfg" "$c" "$s" "$opts") || bdie "pgbench against trades_$cfg ($mode, $c clients) failed"
        [ -n "$v" ] || bdie "pgbench against trades_$cfg ($mode, $c clients) printed no tps"
        runs[$cfg.$c]+="$v "
        echo "pgbench|$mode|$cfg|$c|$r|$v" >>"$RAW"
        blog "audit: $mode ${CFG_LABEL[$cfg]}, $c clients, round $r: $v tps"
      done
    done
    for cfg in "${PGB_CONFIGS[@]}"; do
      # shellcheck disable=SC2086
      TPS[$mode.$cfg.$c]=$(median ${runs[$cfg.$c]})
    done
  done
}
blog "audit: pgbench warm-up (3 s per configuration)"
for cfg in "${PGB_CONFIGS[@]}"; do pgb "$cfg" "$MAXC" 3 >/dev/null || bdie "pgbench warm-up failed"; done
blog "audit: pgbench INSERT+UPDATE, ${CLIENTS[*]} clients, ${SECS}s per run (synchronous_commit as configured)"
series sync "$SECS" ""
if [ "$ASYNC_SECS" -gt 0 ]; then
  blog "audit: pgbench again, CPU-bound (synchronous_commit=off, log_statement=none), ${ASYNC_SECS}s per run"
  series async "$ASYNC_SECS" "-c synchronous_commit=off -c log_statement=none"
fi
sync_commit=$(bval "$DB" "SHOW synchronous_commit")
log_stmt=$(bval "$DB" "SHOW log_statement")

# ------------------------------------------------------------------ bulk INSERT, seal, verify
blog "audit: bulk INSERT ... SELECT of $BULK_ROWS rows, warm-up + $REPS runs per configuration"
{
  for ((r = 0; r <= REPS; r++)); do
    for c in "${CONFIGS[@]}"; do
      echo "CHECKPOINT;"
      printf "SELECT 'bulk_%s', %d, bench_ms(\$q\$INSERT INTO bulk_%s_%d (symbol, side, quantity, price) SELECT symbol, side, quantity, price FROM src\$q\$);\n" "$c" "$r" "$c" "$r"
    done
  done
} | bpsql "$DB" -At -F'|' >>"$RAW"

# The storage floor of the bulk INSERT: the trail rows one bulk run wrote, stored again by a plain
# INSERT ... SELECT into a copy of the trail's table with its index and no trigger (no image, no
# signature, no trigger call), net of reading them. Any design that stores one trail row of these
# columns per change pays at least this on top of the no-trigger time.
blog "audit: storage floor: the trail rows of one bulk run stored again without a trigger, warm-up + $REPS runs"
{
  echo "CREATE TABLE store_src AS SELECT * FROM tradeguard_audit.log WHERE table_name = 'bulk_tg_1' AND operation = 'INSERT';"
  echo "VACUUM ANALYZE store_src;"
  for ((r = 0; r <= REPS; r++)); do
    echo "CREATE TABLE store_$r (LIKE store_src); CREATE INDEX ON store_$r (id);"
    echo "CHECKPOINT;"
    echo "SELECT 'store_scan', $r, bench_ms(\$q\$SELECT count(*) FROM (SELECT * FROM store_src OFFSET 0) s\$q\$);"
    echo "SELECT 'store', $r, bench_ms(\$q\$INSERT INTO store_$r SELECT * FROM store_src\$q\$);"
  done
} | bpsql "$DB" -At -F'|' | grep '^store' >>"$RAW"
store_rows=$(bval "$DB" "SELECT count(*) FROM store_src")
store_bytes=$(bval "$DB" "SELECT avg(pg_column_size(s.*))::int FROM store_src s")
trade_bytes=$(bval "$DB" "SELECT avg(pg_column_size(b.*))::int FROM bulk_none_1 b")

# Audit rows = changes: 2 per pgbench transaction (insert + update), 1 per bulk row.
tg_changes=$(bval "$DB" "SELECT (SELECT 2 * count(*) FROM trades_tg) + $((REPS + 1)) * $BULK_ROWS")
tg_rows=$(bval "$DB" "SELECT count(*) FROM tradeguard_audit.log WHERE operation IN ('INSERT', 'UPDATE') AND (table_name = 'trades_tg' OR table_name LIKE 'bulk\_tg\_%')")
pl_changes=$(bval "$DB" "SELECT (SELECT 2 * count(*) FROM trades_plpgsql) + $((REPS + 1)) * $BULK_ROWS")
pl_rows=$(bval "$DB" "SELECT count(*) FROM audit_plpgsql.log")

blog "audit: sealing the accumulated trail (tradeguard.seal())"
IFS='|' read -r sealed seal_ms < <(bval "$DB" "SELECT n, ms FROM bench_seal()" | tr -d ' ')
unsealed=$(bval "$DB" "SELECT count(*) FROM tradeguard_audit.log WHERE block_no IS NULL")
# Sealing a million rows at once leaves as many dead row versions, and autovacuum then works
# on them while verify() is timed (two cores): vacuum first, as autovacuum would have done on a
# trail sealed every 200 ms, so that verify() is timed alone.
bpsql "$DB" -c "VACUUM (ANALYZE) tradeguard_audit.log" >/dev/null || bdie "VACUUM of the trail failed"
blog "audit: timing tradeguard.verify(), warm-up + $REPS runs"
IFS='|' read -r v_ok v_blocks v_rows v_bad v_reason < <(bval "$DB" "SELECT ok, blocks_checked, rows_checked, first_bad_block, reason FROM tradeguard.verify()")
{
  # The default (verify_threads = 2: a helper thread hashes while the backend reads), then
  # on one thread, interleaved.
  for ((r = 0; r <= REPS; r++)); do
    echo "RESET tradeguard.verify_threads;"
    echo "SELECT 'verify', $r, bench_ms('SELECT * FROM tradeguard.verify()');"
    echo "SET tradeguard.verify_threads = 1;"
    echo "SELECT 'verify1', $r, bench_ms('SELECT * FROM tradeguard.verify()');"
  done
} | bpsql "$DB" -At -F'|' | grep -v '^\(SET\|RESET\)$' >>"$RAW"

# ------------------------------------------------------------------ table
median_of() { awk -F'|' -v l="$1" '$1 == l && $2 > 0 { print $3 }' "$RAW" | median; }
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
for mode in sync async; do
  [ "$mode" = async ] && [ "$ASYNC_SECS" -le 0 ] && continue
  if [ "$mode" = sync ]; then mdesc="synchronous_commit=$sync_commit, log_statement=$log_stmt, ${SECS}s"; else mdesc="CPU-bound: synchronous_commit=off, log_statement=none, ${ASYNC_SECS}s"; fi
  for c in "${CLIENTS[@]}"; do
    n=${TPS[$mode.none.$c]} t=${TPS[$mode.tg.$c]} p=${TPS[$mode.plpgsql.$c]} f=${TPS[$mode.store.$c]}
    r1=$(calc "$t / $n") r2=$(calc "$t / $p")
    if [ "$mode" = sync ] && [ "$c" = 8 ]; then
      row "pgbench INSERT+UPDATE, $c clients ($mdesc): vs no trigger" "$(fmt "$t" 0) tps" "no trigger: $(fmt "$n" 0) tps" "$(fmt "$r1" 2)" "≥ 0.85" "$(ge "$r1" 0.85)"
      row "pgbench INSERT+UPDATE, $c clients ($mdesc): vs PL/pgSQL" "$(fmt "$t" 0) tps" "PL/pgSQL: $(fmt "$p" 0) tps" "$(fmt "$r2" 2)" "> 1.0" "$(gt "$r2" 1.0)"
    else
      row "pgbench INSERT+UPDATE, $c client(s) ($mdesc)" "$(fmt "$t" 0) tps" "no trigger: $(fmt "$n" 0) tps; PL/pgSQL: $(fmt "$p" 0) tps" "$(fmt "$r1" 2) / $(fmt "$r2" 2)" "—" "—"
    fi
    row "reference, $c client(s) ($mdesc): no trigger, each statement writes its own trail row in SQL (a CTE: to_jsonb image, constant signature; informative)" "—" "$(fmt "$f" 0) tps = $(fmt "$(calc "$f / $n")" 2) × no trigger" "—" "—" "—"
  done
done
bn=$(median_of bulk_none) bt=$(median_of bulk_tg) bp=$(median_of bulk_plpgsql)
br=$(calc "$bt / $bn")
row "bulk INSERT ... SELECT of $BULK_ROWS rows: time vs no trigger" "$(fmt "$bt" 0) ms" "no trigger: $(fmt "$bn" 0) ms" "$(fmt "$br" 2)" "≤ 2.0" "$(le "$br" 2.0)"
row "bulk INSERT ... SELECT of $BULK_ROWS rows: time vs PL/pgSQL (informative)" "$(fmt "$bt" 0) ms" "PL/pgSQL: $(fmt "$bp" 0) ms" "$(fmt "$(calc "$bt / $bp")" 2)" "—" "—"
row "bulk INSERT: trigger cost per row over no trigger (informative)" "$(fmt "$(calc "($bt - $bn) * 1000 / $BULK_ROWS")" 2) µs/row" "PL/pgSQL: $(fmt "$(calc "($bp - $bn) * 1000 / $BULK_ROWS")" 2) µs/row" "$(fmt "$(calc "($bp - $bn) / ($bt - $bn)")" 2)" "—" "—"
ss=$(median_of store) sc=$(median_of store_scan)
sn=$(calc "$ss - $sc")
row "bulk INSERT: storage floor, the same $store_rows trail rows (avg $store_bytes bytes; a trade row: $trade_bytes) stored by a plain INSERT ... SELECT into a copy of the trail table with its index, net of reading them (informative)" "$(fmt "$sn" 0) ms" "no trigger: $(fmt "$bn" 0) ms" "$(fmt "$(calc "($bn + $sn) / $bn")" 2)" "—" "—"
row "seal() of the accumulated trail (informative)" "$sealed rows in $(fmt "$seal_ms" 0) ms = $(fmt "$(calc "$sealed * 1000 / $seal_ms")" 0) rows/s" "—" "—" "—" "—"
vm=$(median_of verify)
vrate=$(calc "$v_rows * 1000 / $vm")
row "verify() over the whole trail (verify_threads = 2, the default)" "$(fmt "$vrate" 0) rows/s ($v_rows rows, $v_blocks blocks, $(fmt "$vm" 0) ms)" "—" "—" "≥ 500000 rows/s" "$(ge "$vrate" 500000)"
vm1=$(median_of verify1)
row "verify() on one thread (verify_threads = 1, informative)" "$(fmt "$(calc "$v_rows * 1000 / $vm1")" 0) rows/s ($(fmt "$vm1" 0) ms)" "—" "$(fmt "$(calc "$vm1 / $vm")" 2)x slower" "—" "—"

# TPS by client count for bench/plot.py
cp "$RAW" "$BENCH_OUT/$NAME.raw"
{
  echo "mode,config,clients,tps"
  for key in "${!TPS[@]}"; do
    IFS=. read -r m cfg c <<<"$key"
    echo "$m,$cfg,$c,${TPS[$key]}"
  done | sort -t, -k1,1 -k2,2 -k3,3n
} >"$BENCH_OUT/audit_tps.csv"
plot_note=""
if [ -f "$BENCH_DIR/plot.py" ] && python3 "$BENCH_DIR/plot.py" "$BENCH_OUT/audit_tps.csv" "$BENCH_OUT/audit_tps.png" >&2; then
  [ -s "$BENCH_OUT/audit_tps.png" ] && plot_note=" Plot: [out/audit_tps.png](out/audit_tps.png)."
fi

elapsed=$(( $(date +%s) - t_start ))
out=$BENCH_OUT/$NAME.md
{
  echo "### Audit trail (bench/audit.sh)"
  echo
  echo "tradeguard: $VERSION.$INSTALL_NOTE pgbench \`-M prepared\`, one transaction = INSERT a trade (\`RETURNING id\`)"
  echo "then UPDATE it; \`-j\` = min(clients, 2); medians of $PGB_REPS rounds per client count, the configurations (and the SQL reference)"
  echo "alternated in each round. Ratios: tradeguard / anchor for TPS (higher is better), time / time for the"
  echo "bulk INSERT (lower is better). Bulk INSERT: medians of $REPS runs after a warm-up, timed in the server. verify(): median of $REPS runs after a warm-up, the trail vacuumed after the one-off seal() of everything (as autovacuum would have done on a trail sealed every 200 ms)."
  echo
  echo "| measure | tradeguard | anchor | ratio | target | met |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Checks: tradeguard audit rows $tg_rows for $tg_changes changes; PL/pgSQL audit rows $pl_rows for $pl_changes changes;"
  echo "rows left unsealed after seal(): $unsealed; verify ok: $v_ok${v_bad:+ (first bad block $v_bad: $v_reason)}.$plot_note"
  echo "Raw runs: bench/out/$NAME.raw. Elapsed: ${elapsed}s."
} >"$out"
cat "$out"
