#!/usr/bin/env bash
# Encryption benchmark: tradeguard.encrypt/decrypt_text against pgcrypto's encrypt_iv/decrypt_iv
# (AES-CBC) and pgp_sym_encrypt/pgp_sym_decrypt, and INSERT throughput into an encrypt_column
# table against the same table in plaintext. Prints a markdown table and writes bench/out/crypto.md.
#
# Settings (environment):
#   TG_PORT              server port (default 5499; socket in /tmp, superuser postgres, peer auth)
#   TG_BENCH_DB          scratch database, dropped and recreated (default tg_bench)
#   TG_BENCH_ROWS        largest row count for encrypt/decrypt (default 1000000; 100000 is always run too)
#   TG_BENCH_PGP_ROWS    rows for the pgp_sym_* comparison (default 10000)
#   TG_BENCH_BULK_ROWS   rows of the bulk INSERT ... SELECT (default 100000)
#   TG_BENCH_SECONDS     pgbench duration per run (default 20)
#   TG_BENCH_REPS        timed repetitions per measurement, the median is kept (default 3)
#   TG_BENCH_BULK_REPS   timed repetitions of each bulk INSERT variant (default 7: a bulk INSERT
#                        writes WAL and extends files, so single runs vary more than scans)
#   TG_BENCH_BULK_LARGE_REPS  timed repetitions of the bulk INSERT at TG_BENCH_ROWS rows (default 3)
#   TG_BENCH_ASYNC       1 (default) also runs pgbench with synchronous_commit=off; 0 skips it
#   TG_BENCH_TG_SQL      workaround only: install tradeguard by running this SQL file (as the
#                        superuser) instead of CREATE EXTENSION; see bench/README.md
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROWS=${TG_BENCH_ROWS:-1000000}
PGP_ROWS=${TG_BENCH_PGP_ROWS:-10000}
BULK_ROWS=${TG_BENCH_BULK_ROWS:-100000}
SECS=${TG_BENCH_SECONDS:-20}
REPS=${TG_BENCH_REPS:-3}
BULK_REPS=${TG_BENCH_BULK_REPS:-7}
LARGE_REPS=${TG_BENCH_BULK_LARGE_REPS:-3}
ASYNC=${TG_BENCH_ASYNC:-1}
NAME=crypto
DB=$TG_BENCH_DB

# pgcrypto anchor key material: a fixed 32-byte key (AES-256) and 16-byte IV as bytea constants.
KEY="'\\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea"
IV="'\\xa0a1a2a3a4a5a6a7a8a9aaabacadaeaf'::bytea"
PASS="'passphrase'"

# Row counts for encrypt/decrypt: 100k and ROWS, side by side.
if [ "$ROWS" -gt 100000 ]; then SIZES=(100000 "$ROWS"); else SIZES=("$ROWS"); fi
MAXN=${SIZES[-1]}

cluster_up || bdie "no PostgreSQL server answers on port $TG_PORT (start it with: make demo)"
mkdir -p "$BENCH_OUT"
t_start=$(date +%s)

# ------------------------------------------------------------------ setup
blog "crypto: (re)creating database $DB"
fresh_bench_db
INSTALL_NOTE=""
if [ -n "${TG_BENCH_TG_SQL:-}" ]; then
  # Workaround: the server runs an older build than the installed SQL script (see README).
  blog "crypto: installing tradeguard from $TG_BENCH_TG_SQL instead of CREATE EXTENSION"
  err=$(bpsql "$DB" -f "$TG_BENCH_TG_SQL" 2>&1 >/dev/null) || bdie "running $TG_BENCH_TG_SQL failed: $(grep -v NOTICE <<<"$err")"
  INSTALL_NOTE=" Installed from \`$(basename "$TG_BENCH_TG_SQL")\` (TG_BENCH_TG_SQL) instead of CREATE EXTENSION."
elif ! err=$(bpsql "$DB" -c 'CREATE EXTENSION tradeguard' 2>&1); then
  bdie "CREATE EXTENSION tradeguard failed: $err
  (if a function is missing from tradeguard.so, the server still runs an older build than the
   installed SQL script: rerun 'make demo' so that the installed build and the server agree)"
fi
bpsql "$DB" -c 'CREATE EXTENSION pgcrypto' >/dev/null || bdie "CREATE EXTENSION pgcrypto failed (postgresql-contrib)"
VERSION=$(tg_version "$DB")
case $VERSION in
  *"release build"*) ;;
  *) blog "WARNING: the server runs a non-release tradeguard build: $VERSION" ;;
esac

blog "crypto: generating data (up to $MAXN rows of 64-character text) and pre-encrypted columns"
{
  cat <<SQL
SET max_parallel_workers_per_gather = 0;
SET jit = off;
SET client_min_messages = warning;
SELECT tradeguard.create_key('bench');
CREATE TABLE src_all AS
  SELECT i AS id, md5(i::text) || md5((i * 7)::text) AS v FROM generate_series(1, $MAXN) i;
SQL
  for n in "${SIZES[@]}" "$PGP_ROWS" "$BULK_ROWS"; do
    echo "CREATE TABLE IF NOT EXISTS src_$n AS SELECT id, v FROM src_all WHERE id <= $n;"
  done
  for n in "${SIZES[@]}"; do
    cat <<SQL
CREATE TABLE ct_tg_$n AS SELECT id, tradeguard.encrypt(v, 'bench') AS c FROM src_$n;
CREATE TABLE ct_iv_$n AS SELECT id, encrypt_iv(convert_to(v, 'UTF8'), $KEY, $IV, 'aes') AS c FROM src_$n;
SQL
  done
  cat <<SQL
CREATE TABLE pgp_tg AS SELECT id, tradeguard.encrypt(v, 'bench') AS c FROM src_$PGP_ROWS;
CREATE TABLE pgp_pgp AS SELECT id, pgp_sym_encrypt(v, $PASS) AS c FROM src_$PGP_ROWS;
DROP TABLE src_all;
-- INSERT targets: the same table, plaintext and encrypt_column.
CREATE TABLE ins_plain (id bigserial PRIMARY KEY, v text);
CREATE TABLE ins_enc (id bigserial PRIMARY KEY, v text);
SELECT tradeguard.encrypt_column('ins_enc', 'v', 'bench');
CREATE TABLE pgb_plain (id bigserial PRIMARY KEY, v text);
CREATE TABLE pgb_enc (id bigserial PRIMARY KEY, v text);
SELECT tradeguard.encrypt_column('pgb_enc', 'v', 'bench');
-- The armored values the trigger writes, to split the encrypted INSERT's cost (see below).
INSERT INTO ins_enc (v) SELECT v FROM src_$BULK_ROWS;
CREATE TABLE src_arm AS SELECT id, v FROM ins_enc;
TRUNCATE ins_enc RESTART IDENTITY;
VACUUM ANALYZE;
SQL
} | bpsql "$DB" >/dev/null

# One value from a query run like the timed ones: no parallel workers, no JIT. (tradeguard's
# encrypt/decrypt fail inside parallel plans: "cannot assign XIDs during a parallel operation".)
q1() { bval "$DB" "SET max_parallel_workers_per_gather = 0; SET jit = off; $1"; }

# Round-trip checks before timing anything.
for n in "${SIZES[@]}"; do
  bad=$(q1 "SELECT count(*) FROM ct_tg_$n t JOIN src_$n s USING (id) WHERE tradeguard.decrypt_text(t.c) <> s.v")
  [ "$bad" = 0 ] || bdie "tradeguard round trip failed for $bad rows of $n"
  bad=$(q1 "SELECT count(*) FROM ct_iv_$n t JOIN src_$n s USING (id) WHERE convert_from(decrypt_iv(t.c, $KEY, $IV, 'aes'), 'UTF8') <> s.v")
  [ "$bad" = 0 ] || bdie "encrypt_iv round trip failed for $bad rows of $n"
done
bad=$(q1 "SELECT count(*) FROM pgp_pgp t JOIN src_$PGP_ROWS s USING (id) WHERE pgp_sym_decrypt(t.c, $PASS) <> s.v")
[ "$bad" = 0 ] || bdie "pgp round trip failed for $bad rows"

# ------------------------------------------------------------------ timed queries
# Every query is `SELECT count(x) FROM (SELECT f(..) AS x FROM t) s`. count(x), not count(*):
# with count(*) the planner drops the unused output of an IMMUTABLE/STABLE function (encrypt_iv,
# decrypt_iv, decrypt_text, pgp_sym_decrypt) and nothing would be computed at all.
declare -a LABELS=() QUERIES=()
add() { LABELS+=("$1"); QUERIES+=("$2"); }
wrap() { echo "SELECT count(x) FROM (SELECT $1 AS x FROM $2) s"; }
for n in "${SIZES[@]}"; do
  add "enc_tg_$n" "$(wrap "tradeguard.encrypt(v, 'bench')" "src_$n")"
  add "enc_iv_$n" "$(wrap "encrypt_iv(convert_to(v, 'UTF8'), $KEY, $IV, 'aes')" "src_$n")"
  add "dec_tg_$n" "$(wrap "tradeguard.decrypt_text(c)" "ct_tg_$n")"
  add "dec_iv_$n" "$(wrap "convert_from(decrypt_iv(c, $KEY, $IV, 'aes'), 'UTF8')" "ct_iv_$n")"
  add "scan_$n" "$(wrap "v" "src_$n")"
  add "isct_$n" "$(wrap "tradeguard.is_ciphertext(v)" "src_$n")"
done
add "enc_tg_pgp" "$(wrap "tradeguard.encrypt(v, 'bench')" "src_$PGP_ROWS")"
add "enc_pgp" "$(wrap "pgp_sym_encrypt(v, $PASS)" "src_$PGP_ROWS")"
add "dec_tg_pgp" "$(wrap "tradeguard.decrypt_text(c)" "pgp_tg")"
add "dec_pgp" "$(wrap "pgp_sym_decrypt(c, $PASS)" "pgp_pgp")"

blog "crypto: timing encrypt/decrypt (${SIZES[*]} rows; pgp $PGP_ROWS rows), warm-up + $REPS runs each"
TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT
{
  echo "SET max_parallel_workers_per_gather = 0;"
  echo "SET jit = off;"
  # Run 0 is the warm-up (caches, key unwrap); the runs are interleaved so drift hits all equally.
  for ((r = 0; r <= REPS; r++)); do
    for i in "${!LABELS[@]}"; do
      printf "SELECT '%s', %d, bench_ms(\$q\$%s\$q\$);\n" "${LABELS[$i]}" "$r" "${QUERIES[$i]}"
    done
  done
  # Bulk INSERT at the largest size too (plaintext and encrypted only; longer runs, fewer
  # repetitions), first, so that the 100k runs below leave the tables the checks read.
  if [ "$MAXN" != "$BULK_ROWS" ]; then
    for ((r = 0; r <= LARGE_REPS; r++)); do
      for t in plain enc; do
        echo "TRUNCATE ins_$t RESTART IDENTITY;"
        echo "CHECKPOINT;"
        printf "SELECT 'bulkL_%s', %d, bench_ms(\$q\$INSERT INTO ins_%s (v) SELECT v FROM src_%s\$q\$);\n" "$t" "$r" "$t" "$MAXN"
      done
    done
  fi
  # Bulk INSERT ... SELECT into the plaintext and the encrypted table (each run from empty).
  # Two more variants split the encrypted INSERT's cost: already-armored values (131 characters)
  # into the plaintext table (the size effect alone) and into the encrypted table (the trigger
  # runs, recognizes the armor, checks that it opens under the row's context and keeps it:
  # trigger overhead with a decryption instead of an encryption). The armored values were made
  # for the same ids in the same order (the sequence restarts).
  for ((r = 0; r <= BULK_REPS; r++)); do
    for v in plainarm:plain:src_arm encarm:enc:src_arm plain:plain:src_$BULK_ROWS enc:enc:src_$BULK_ROWS; do
      IFS=: read -r label t from <<<"$v"
      echo "TRUNCATE ins_$t RESTART IDENTITY;"
      echo "CHECKPOINT;"
      printf "SELECT 'bulk_%s', %d, bench_ms(\$q\$INSERT INTO ins_%s (v) SELECT v FROM %s\$q\$);\n" "$label" "$r" "$t" "$from"
    done
  done
} | bpsql "$DB" -At -F'|' >"$TIMES"

# median_of <label>: median ms of the timed runs (run 0 excluded).
median_of() { awk -F'|' -v l="$1" '$1 == l && $2 > 0 { print $3 }' "$TIMES" | median; }
us_per_row() { calc "$(median_of "$1") * 1000 / $2"; }

arm_chars=$(q1 "SELECT max(length(v)) FROM src_arm")
bulk_enc_ok=$(q1 "SELECT count(*) FILTER (WHERE tradeguard.is_ciphertext(v)) = count(*) AND count(*) = $BULK_ROWS FROM ins_enc")
bulk_rt_ok=$(q1 "SELECT count(*) = $BULK_ROWS FROM ins_enc_decrypted d JOIN src_$BULK_ROWS s ON s.id = d.id AND s.v = d.v")

# ------------------------------------------------------------------ pgbench INSERT
PGB_SCRIPT='INSERT INTO @T@(v) VALUES (md5(random()::text)||md5(random()::text));'
# pgb <table> <seconds> [PGOPTIONS]: prints tps (excluding connection time)
pgb() {
  local t=$1 s=$2 opts=${3:-}
  bpsql "$DB" -c "TRUNCATE $t RESTART IDENTITY" -c "CHECKPOINT" >/dev/null
  printf '%s\n' "${PGB_SCRIPT//@T@/$t}" \
    | as_postgres env PGOPTIONS="$opts" "$PG_BIN/pgbench" -h /tmp -p "$TG_PORT" -n -c 2 -j 2 -T "$s" -f - "$DB" 2>&1 \
    | awk '/^tps = / { print $3 }'
}
declare -A TPS=()
pgb_series() { # <mode label> <PGOPTIONS>
  local mode=$1 opts=$2 r t v
  pgb pgb_plain 3 "$opts" >/dev/null; pgb pgb_enc 3 "$opts" >/dev/null   # warm-up
  for ((r = 1; r <= REPS; r++)); do
    for t in plain enc; do
      v=$(pgb "pgb_$t" "$SECS" "$opts")
      [ -n "$v" ] || bdie "pgbench against pgb_$t ($mode) printed no tps"
      TPS[$mode.$t]+="$v "
    done
  done
}
blog "crypto: pgbench INSERT, 2 clients, ${SECS}s x $REPS per table (synchronous_commit as configured)"
pgb_series sync ""
pgb_enc_ok=$(q1 "SELECT count(*) > 0 AND bool_and(tradeguard.is_ciphertext(v)) FROM pgb_enc")
if [ "$ASYNC" = 1 ]; then
  blog "crypto: pgbench INSERT again with synchronous_commit=off (CPU-bound)"
  pgb_series async "-c synchronous_commit=off"
fi
sync_commit=$(bval "$DB" "SHOW synchronous_commit")

# ------------------------------------------------------------------ table
nfmt() { printf "%'d" "$1" 2>/dev/null || echo "$1"; }
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
# ratio_row <measure> <tg us/row> <anchor name> <anchor us/row> <target>
ratio_row() {
  local ratio
  ratio=$(calc "$4 / $2")
  row "$1" "$(fmt "$2" 3) µs/row" "$3: $(fmt "$4" 3) µs/row" "$(fmt "$ratio" 2)" "≥ $5" "$(ge "$ratio" "$5")"
}
for n in "${SIZES[@]}"; do
  ratio_row "encrypt, $(nfmt "$n") rows" "$(us_per_row "enc_tg_$n" "$n")" "encrypt_iv" "$(us_per_row "enc_iv_$n" "$n")" 1.0
done
ratio_row "encrypt, $(nfmt "$PGP_ROWS") rows" "$(us_per_row enc_tg_pgp "$PGP_ROWS")" "pgp_sym_encrypt" "$(us_per_row enc_pgp "$PGP_ROWS")" 50
for n in "${SIZES[@]}"; do
  ratio_row "decrypt, $(nfmt "$n") rows" "$(us_per_row "dec_tg_$n" "$n")" "decrypt_iv" "$(us_per_row "dec_iv_$n" "$n")" 1.0
done
ratio_row "decrypt, $(nfmt "$PGP_ROWS") rows" "$(us_per_row dec_tg_pgp "$PGP_ROWS")" "pgp_sym_decrypt" "$(us_per_row dec_pgp "$PGP_ROWS")" 50

# INSERT rates: tradeguard = encrypted table, anchor = plaintext table, ratio = enc / plain.
rate_row() { # <measure> <enc rate> <plain rate> <unit>
  local ratio
  ratio=$(calc "$2 / $3")
  row "$1" "$(fmt "$2" 0) $4" "plaintext: $(fmt "$3" 0) $4" "$(fmt "$ratio" 3)" "≥ 0.7" "$(ge "$ratio" 0.7)"
}
bulk_rate() { calc "$BULK_ROWS * 1000 / $(median_of "bulk_$1")"; }
rate_row "bulk INSERT ... SELECT of $(nfmt "$BULK_ROWS") rows" "$(bulk_rate enc)" "$(bulk_rate plain)" "rows/s"
if [ "$MAXN" != "$BULK_ROWS" ]; then
  bulkl_rate() { calc "$MAXN * 1000 / $(median_of "bulkL_$1")"; }
  rate_row "bulk INSERT ... SELECT of $(nfmt "$MAXN") rows" "$(bulkl_rate enc)" "$(bulkl_rate plain)" "rows/s"
fi
# Where the encrypted INSERT's time goes (informative): extra µs per row over the plaintext INSERT.
bulk_us() { calc "$(median_of "bulk_$1") * 1000 / $BULK_ROWS"; }
extra() { fmt "$(calc "$(bulk_us "$1") - $(bulk_us plain)")" 2; }
row "bulk INSERT split: plaintext table, already-armored $arm_chars-char values (size effect only)" "—" "$(fmt "$(bulk_rate plainarm)" 0) rows/s (+$(extra plainarm) µs/row)" "$(fmt "$(calc "$(bulk_rate plainarm) / $(bulk_rate plain)")" 2)" "—" "—"
row "bulk INSERT split: encrypted table, already-armored values (trigger checks and keeps them: a decryption, no encryption)" "$(fmt "$(bulk_rate encarm)" 0) rows/s (+$(extra encarm) µs/row)" "—" "$(fmt "$(calc "$(bulk_rate encarm) / $(bulk_rate plain)")" 2)" "—" "—"
row "bulk INSERT split: encrypted table, plaintext values (full path)" "$(fmt "$(bulk_rate enc)" 0) rows/s (+$(extra enc) µs/row)" "—" "$(fmt "$(calc "$(bulk_rate enc) / $(bulk_rate plain)")" 2)" "—" "—"
# shellcheck disable=SC2086
rate_row "pgbench INSERT, 2 clients, synchronous_commit=$sync_commit" "$(median ${TPS[sync.enc]})" "$(median ${TPS[sync.plain]})" "tps"
if [ "$ASYNC" = 1 ]; then
  # shellcheck disable=SC2086
  rate_row "pgbench INSERT, 2 clients, synchronous_commit=off" "$(median ${TPS[async.enc]})" "$(median ${TPS[async.plain]})" "tps"
fi

# Informative baselines at the largest size (no target).
scan=$(us_per_row "scan_$MAXN" "$MAXN")
isct=$(us_per_row "isct_$MAXN" "$MAXN")
row "baseline: scan + count only, $(nfmt "$MAXN") rows" "—" "$(fmt "$scan" 3) µs/row" "—" "—" "—"
row "baseline: tradeguard.is_ciphertext (pgrx call), $(nfmt "$MAXN") rows" "$(fmt "$isct" 3) µs/row" "—" "—" "—" "—"
net() { calc "$(us_per_row "$1_$MAXN" "$MAXN") - $scan"; }
row "net of the scan: encrypt, $(nfmt "$MAXN") rows" "$(fmt "$(net enc_tg)" 3) µs/row" "encrypt_iv: $(fmt "$(net enc_iv)" 3) µs/row" "$(fmt "$(calc "$(net enc_iv) / $(net enc_tg)")" 2)" "—" "—"
row "net of the scan: decrypt, $(nfmt "$MAXN") rows" "$(fmt "$(net dec_tg)" 3) µs/row" "decrypt_iv: $(fmt "$(net dec_iv)" 3) µs/row" "$(fmt "$(calc "$(net dec_iv) / $(net dec_tg)")" 2)" "—" "—"

elapsed=$(( $(date +%s) - t_start ))
out=$BENCH_OUT/$NAME.md
{
  echo "### Encryption (bench/crypto.sh)"
  echo
  echo "tradeguard: $VERSION.$INSTALL_NOTE Medians of $REPS runs after a warm-up ($BULK_REPS for each bulk INSERT of $(nfmt "$BULK_ROWS") rows and $LARGE_REPS at $(nfmt "$MAXN"), interleaved); one backend, no parallel workers, JIT off."
  echo "Ratio: anchor time / tradeguard time for encrypt and decrypt (≥ 1 means tradeguard is faster);"
  echo "encrypted rate / plaintext rate for INSERT."
  echo
  echo "| measure | tradeguard | anchor | ratio | target | met |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Checks: round trips of every pre-encrypted row ok; bulk INSERT rows all ciphertext: $bulk_enc_ok;"
  echo "bulk INSERT rows decrypt back through ins_enc_decrypted: $bulk_rt_ok; pgbench rows all ciphertext: $pgb_enc_ok."
  echo "Raw runs (ms or tps): see bench/out/$NAME.raw. Elapsed: ${elapsed}s."
} >"$out"
{
  echo "# raw timings: label|run|ms (run 0 = warm-up, excluded)"
  cat "$TIMES"
  for k in "${!TPS[@]}"; do echo "pgbench_tps.$k|${TPS[$k]}"; done
} >"$BENCH_OUT/$NAME.raw"
cat "$out"
