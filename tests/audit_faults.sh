#!/usr/bin/env bash
# The audit trail under concurrency and faults: 16 writers through audit triggers and an
# encrypted column, the background worker sealing; verify() in a writing transaction while
# blocks are sealed; kill -9 of a writing backend; an immediate shutdown; the worker terminated
# (it must come back). After each: nothing committed is lost, pending rows get sealed, verify()
# is ok and the chain has no fork (contiguous block numbers), every value decrypts. Last, rows
# forged with ids the sequence hands out next do not stop sealing, and verify() names them.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

e2e_cluster faults 54333 "tradeguard.database_name = 'faults'" "tradeguard.seal_interval = '100ms'" "max_connections = 60"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" faults
q faults -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE EXTENSION tradeguard;
CREATE TABLE trades (id bigserial PRIMARY KEY, symbol text NOT NULL, qty int NOT NULL, account_ref text);
SELECT tradeguard.create_key('faults');
SELECT tradeguard.encrypt_column('trades', 'account_ref', 'faults');
SELECT tradeguard.audit_table('trades');
SQL

cat > "$TG_TEST_DIR/faults/write.sql" <<'SQL'
\set q random(1, 1000)
BEGIN;
INSERT INTO trades (symbol, qty, account_ref) VALUES ('7203.T', :q, 'DT-' || :q);
UPDATE trades SET qty = qty + 1 WHERE id = (SELECT max(id) FROM trades);
COMMIT;
SQL
chown postgres "$TG_TEST_DIR/faults/write.sql"

chain_ok() {
  q faults -c "SELECT tradeguard.seal()" >/dev/null
  [ "$(q faults -c "SELECT ok FROM tradeguard.verify()")" = t ]
}
no_fork() {
  [ "$(q faults -c "SELECT count(*) = coalesce(max(block_no) - min(block_no) + 1, 0) FROM tradeguard_audit.blocks")" = t ]
}
counts_match() {
  # Every committed change is in the trail: one INSERT and one UPDATE row per trade.
  [ "$(q faults -c "SELECT (SELECT count(*) FROM trades) * 2 = (SELECT count(*) FROM tradeguard_audit.log WHERE table_name = 'trades' AND operation IN ('INSERT', 'UPDATE'))")" = t ]
}
all_decrypt() {
  [ "$(q faults -c "SELECT count(*) FILTER (WHERE account_ref LIKE 'DT-%') = count(*) FROM trades_decrypted")" = t ]
}
all_sealed() {
  [ "$(q faults -c "SELECT count(*) FROM tradeguard_audit.log WHERE block_no IS NULL")" = 0 ]
}

# 1. 16 concurrent writers for 15 seconds.
as_pg "$PG_BIN/pgbench" -h /tmp -p "$E2E_PORT" -n -c 16 -j 2 -T "${TG_WRITERS_SECONDS:-15}" -f "$TG_TEST_DIR/faults/write.sql" faults >"$TG_TEST_DIR/faults/pgbench.log" 2>&1
check "16 writers: pgbench ran" grep -q "number of transactions actually processed" "$TG_TEST_DIR/faults/pgbench.log"
sleep 1
check "16 writers: the worker sealed blocks" [ "$(q faults -c "SELECT count(*) > 0 FROM tradeguard_audit.blocks")" = t ]
check "16 writers: as many audit rows as changes" counts_match
check "16 writers: verify ok" chain_ok
check "16 writers: chain unforked" no_fork
check "16 writers: every value decrypts" all_decrypt

# verify() with helper threads (tradeguard.verify_threads) names the row altered, wherever it
# lies in the scan, as one thread does: rows spread over the trail altered one at a time, each in
# a transaction rolled back (which first holds off the worker's sealing: it takes the seal lock
# before the trail's, in that order).
names_altered_row() { # $1 = threads, $2 = position of the row in the trail's physical order
  local id
  id=$(q faults -c "SELECT id FROM tradeguard_audit.log_sealed ORDER BY ctid OFFSET $2 LIMIT 1")
  local out
  out=$(q faults -c "SELECT tradeguard.break_glass('faults: threaded verify')" \
    -c "BEGIN" \
    -c "LOCK TABLE tradeguard_audit.seal_lock IN EXCLUSIVE MODE" \
    -c "ALTER TABLE tradeguard_audit.log DISABLE TRIGGER tradeguard_protect" \
    -c "ALTER TABLE tradeguard_audit.log DISABLE TRIGGER tradeguard_protect_write" \
    -c "UPDATE tradeguard_audit.log SET txid = txid + 1 WHERE id = $id" \
    -c "SET LOCAL tradeguard.verify_threads = $1" \
    -c "SELECT 'verdict: ' || (NOT ok AND first_bad_id = $id AND reason = 'row altered') FROM tradeguard.verify()" \
    -c "ROLLBACK" -c "SELECT tradeguard.break_glass_end()")
  grep -q '^verdict: true$' <<<"$out"
}
# At least 40 000 more sealed rows (one INSERT and one UPDATE row per trade, as the writers'),
# so that the trail spans several of verify()'s fetches of 10 000 rows.
q faults -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
BEGIN;
SELECT max(id) AS before FROM trades \gset
INSERT INTO trades (symbol, qty, account_ref) SELECT '6758.T', g, 'DT-' || g FROM generate_series(1, 20000) g;
UPDATE trades SET qty = qty + 1 WHERE id > :before;
COMMIT;
SELECT tradeguard.seal();
SQL
trail_rows=$(q faults -c "SELECT count(*) FROM tradeguard_audit.log_sealed")
check "the trail spans several fetches of verify() ($trail_rows sealed rows)" [ "$trail_rows" -ge 40000 ]
for threads in 1 2 4; do
  for share in 2 5 9; do
    check "verify_threads = $threads: the altered row at $((share * 10))% of the trail is named" names_altered_row "$threads" $((trail_rows * share / 10))
  done
done
check "verify_threads = 4: the intact trail is ok" [ "$(q faults -c "SET tradeguard.verify_threads = 4" -c "SELECT ok FROM tradeguard.verify()")" = t ]
# A threaded verify() stopped halfway, by a cancel (statement_timeout: an ERROR) and by
# pg_terminate_backend (a FATAL error: the backend exits without unwinding, its memory freed
# while the helpers may still be hashing): the session goes on after the cancel, and the server
# after both (no backend crashed: checked at the end). The helper threads never take
# PostgreSQL's signals.
verify_ms=$(q faults -c "SET tradeguard.verify_threads = 4" \
  -c "SELECT (extract(epoch FROM clock_timestamp() - now()) * 1000)::int FROM (SELECT * FROM tradeguard.verify()) v")
half=$((verify_ms / 2 > 5 ? verify_ms / 2 : 5))
echo "    threaded verify(): $verify_ms ms"
cancelled=$(q faults -c "SET tradeguard.verify_threads = 4" -c "SET statement_timeout = '${half}ms'" -c "SELECT ok FROM tradeguard.verify()" -c "RESET statement_timeout" -c "SELECT 'after: ' || ok FROM tradeguard.verify()" 2>&1)
check "a threaded verify() cancelled halfway ends with the timeout error" grep -q "canceling statement due to statement timeout" <<<"$cancelled"
check "... and the same session verifies again" grep -q "^after: true$" <<<"$cancelled"
q faults -c "SET application_name = 'threaded_verify'" -c "SET tradeguard.verify_threads = 4" -c "SELECT ok FROM tradeguard.verify()" >/dev/null 2>&1 &
verifier=$!
sleep "$(awk -v ms="$half" 'BEGIN { printf "%.3f", ms / 1000 }')"
# (The filter first: a qualifier order chosen by the planner must not terminate other backends.)
terminated=$(q faults -c "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
  FROM (SELECT pid FROM pg_stat_activity WHERE application_name = 'threaded_verify' OFFSET 0) s")
wait "$verifier" 2>/dev/null
check "a threaded verify() terminated halfway: its backend was terminated" [ "$terminated" = 1 ]
check "... and the server goes on" [ "$(q faults -c "SELECT ok FROM tradeguard.verify()")" = t ]

# verify() in a transaction that has written (its queries then take a new snapshot each), while
# writers run and the worker seals blocks during it: the rows of a block sealed meanwhile must
# not be read as unsealed and reported missing.
as_pg "$PG_BIN/pgbench" -h /tmp -p "$E2E_PORT" -n -c 4 -j 2 -T 4 -f "$TG_TEST_DIR/faults/write.sql" faults >/dev/null 2>&1 &
bench=$!
sleep 0.5
verdicts=""
for _ in 1 2 3; do
  before=$(q faults -c "SELECT max(block_no) FROM tradeguard_audit.blocks")
  v=$(q faults -c "BEGIN" -c "SELECT pg_current_xact_id() IS NULL" \
        -c "SELECT (v).ok || ' ' || coalesce((v).reason, '') FROM (SELECT pg_sleep(0.5), tradeguard.verify() v) s" -c "COMMIT" | tail -n 1)
  after=$(q faults -c "SELECT max(block_no) FROM tradeguard_audit.blocks")
  verdicts="$verdicts[$v, blocks $before..$after]"
done
wait "$bench" 2>/dev/null
echo "    $verdicts"
check "verify() in a writing transaction while blocks are sealed: ok each time" \
  [ "$(grep -o '\[true , ' <<<"$verdicts" | wc -l)" -eq 3 ]
check "... and blocks were sealed while it ran" [ "$(grep -Eo 'blocks [0-9]+\.\.[0-9]+' <<<"$verdicts" | awk -F'[ .]+' '$2 < $3' | wc -l)" -ge 1 ]

# 2. kill -9 of a writing backend in the middle of the load.
as_pg "$PG_BIN/pgbench" -h /tmp -p "$E2E_PORT" -n -c 4 -j 2 -T 6 -f "$TG_TEST_DIR/faults/write.sql" faults >/dev/null 2>&1 &
bench=$!
sleep 2
victim=$(q faults -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1")
[ -n "$victim" ] && kill -9 "$victim"
wait "$bench" 2>/dev/null
for _ in $(seq 1 30); do q faults -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
sleep 1
check "kill -9: server back" q faults -c "SELECT 1"
check "kill -9: counts match" counts_match
check "kill -9: verify ok" chain_ok
check "kill -9: every row sealed" all_sealed
check "kill -9: chain unforked" no_fork

# 3. Immediate shutdown during load, then restart.
as_pg "$PG_BIN/pgbench" -h /tmp -p "$E2E_PORT" -n -c 4 -j 2 -T 6 -f "$TG_TEST_DIR/faults/write.sql" faults >/dev/null 2>&1 &
bench=$!
sleep 2
as_pg "$PG_BIN/pg_ctl" -D "$E2E_DATA" -m immediate stop >/dev/null
wait "$bench" 2>/dev/null
start_cluster "$E2E_DATA" "$E2E_PORT"
sleep 1
check "immediate shutdown: counts match" counts_match
check "immediate shutdown: verify ok" chain_ok
check "immediate shutdown: every row sealed" all_sealed
check "immediate shutdown: chain unforked" no_fork
check "immediate shutdown: keys intact" all_decrypt
# 4. The worker terminated as DROP DATABASE ... WITH (FORCE) or pg_terminate_backend would: it
# comes back after its restart time and seals new rows on its own (no explicit seal() here).
worker_pid() { q faults -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'tradeguard worker'"; }
old_worker=$(worker_pid)
check "a worker serves the database" [ -n "$old_worker" ]
q faults -c "SELECT pg_terminate_backend(${old_worker:-0})" >/dev/null
worker_back_and_sealing() {
  local new
  for _ in $(seq 1 40); do
    new=$(worker_pid)
    if [ -n "$new" ] && [ "$new" != "$old_worker" ]; then
      q faults -c "INSERT INTO trades (symbol, qty, account_ref) VALUES ('9984.T', 1, 'DT-1')" >/dev/null
      for _ in $(seq 1 50); do
        [ "$(q faults -c "SELECT count(*) FROM tradeguard_audit.log WHERE block_no IS NULL")" = 0 ] && return 0
        sleep 0.2
      done
      return 1
    fi
    sleep 0.25
  done
  return 1
}
check "terminated worker: restarted, and seals new rows by itself" worker_back_and_sealing

# 4b. A transaction left open (with a transaction id, in another database, by a role with no
# tradeguard rights) does not hold up sealing: rows committed meanwhile are sealed.
q postgres -c "CREATE ROLE idle_writer LOGIN" >/dev/null
as_pg "$PG_BIN/psql" -X -qAt -h /tmp -p "$E2E_PORT" -U idle_writer -d postgres \
  -c "BEGIN" -c "SELECT pg_current_xact_id()" -c "SELECT pg_sleep(20)" -c "COMMIT" >/dev/null 2>&1 &
idle_pid=$!
sleep 1
q faults -c "INSERT INTO trades (symbol, qty, account_ref) VALUES ('8035.T', 1, 'DT-1')" >/dev/null
sealed_while_open() {
  for _ in $(seq 1 50); do
    [ "$(q faults -c "SELECT block_no IS NOT NULL FROM tradeguard_audit.log WHERE table_name = 'trades' AND operation = 'INSERT' ORDER BY id DESC LIMIT 1")" = t ] && return 0
    sleep 0.2
  done
  return 1
}
check "an open transaction elsewhere does not hold up sealing" sealed_while_open
kill "$idle_pid" 2>/dev/null; wait "$idle_pid" 2>/dev/null

# 5. Rows forged with ids the trail's sequence hands out next (a superuser's restore mode): the
# real changes that then get those ids (committed with them, so that no seal comes between)
# share them. Sealing goes on without the rows that share
# an id (one warning), and verify() names the first of them as an inserted row.
forged=$(q faults -v ON_ERROR_STOP=1 <<'SQL'
BEGIN;
SET LOCAL tradeguard.restore_mode = on;
INSERT INTO tradeguard_audit.log (id, txid, at, schema_name, table_name, operation, current_user_name, session_user_name, signature)
  SELECT s.last_value + g, 1, now(), 'public', 'trades', 'INSERT', 'mallory', 'mallory', '\x00'
    FROM tradeguard_audit.log_id_seq s, generate_series(1, 5) g
  RETURNING id;
SET LOCAL tradeguard.restore_mode = off;
INSERT INTO trades (symbol, qty, account_ref) SELECT '6758.T', g, 'DT-' || g FROM generate_series(1, 5) g;
COMMIT;
SQL
)
forged_lo=$(head -n1 <<<"$forged"); forged_hi=$(grep -E '^[0-9]+$' <<<"$forged" | tail -n1)
q faults -c "INSERT INTO trades (symbol, qty, account_ref) VALUES ('6501.T', 1, 'DT-1')" >/dev/null
rest_sealed() {
  for _ in $(seq 1 50); do
    [ "$(q faults -c "SELECT count(*) FROM tradeguard_audit.log_unsealed u WHERE NOT EXISTS (SELECT 1 FROM tradeguard_audit.log o WHERE o.id = u.id AND o.ctid <> u.ctid)")" = 0 ] && return 0
    sleep 0.2
  done
  return 1
}
check "forged ids: the worker goes on sealing every row that does not share an id" rest_sealed
check "forged ids: verify() names the first shared id as an inserted row" \
  [ "$(q faults -c "SELECT NOT ok AND reason = 'row inserted' AND first_bad_id BETWEEN ${forged_lo:-0} AND ${forged_hi:-0} FROM tradeguard.verify()")" = t ]
check "forged ids: the sealer warned once" [ "$(grep -c 'share their id with another trail row' "$TG_TEST_DIR/faults/server.log")" = 1 ]

check "no crashed backend except the killed one" [ "$(grep -c 'was terminated by signal 11\|was terminated by signal 6' "$TG_TEST_DIR/faults/server.log")" = 0 ]

echo "$fails failed"
[ "$fails" -eq 0 ]
