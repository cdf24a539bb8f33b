#!/usr/bin/env bash
# Who decrypted what: decryptions are counted per role, key and column off the query path and
# reach tradeguard.decrypt_activity; encryptions count per key version and rotate the key at
# tradeguard.key_rotate_after; an unusual decryption volume raises a decrypt_anomaly event, in
# any database.
# What is still pending in shared memory (counts, events) survives a clean or immediate restart
# (failed-login counters: tests/lockout.sh); a transaction that stored counts is not prepared;
# an event the worker cannot store is logged instead and does not hold up the others.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

e2e_cluster keyact 54342 "tradeguard.database_name = 'ka'" "tradeguard.key_rotate_after = 1000" \
  "tradeguard.decrypt_alert_threshold = 500" "max_prepared_transactions = 2"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" ka
q ka -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION tradeguard;
SELECT tradeguard.create_key('ka');
CREATE TABLE accounts (id serial PRIMARY KEY, api_key text);
INSERT INTO accounts (api_key) SELECT 'sk_live_' || g FROM generate_series(1, 600) g;
SELECT tradeguard.encrypt_column('accounts', 'api_key', 'ka');
CREATE ROLE ka_app;
GRANT tradeguard_decryptor TO ka_app;
GRANT SELECT ON accounts, accounts_decrypted TO ka_app;
SQL
worker_in() { # the worker has connected to database $1
  for _ in $(seq 1 50); do
    [ "$(q postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tradeguard worker' AND datname = '$1'")" = 1 ] && return 0
    sleep 0.2
  done
  return 1
}
worker_in ka
q ka -c "SET ROLE ka_app" -c "SELECT count(api_key) FROM accounts_decrypted" >/dev/null
wait_for() { # wait_for "<sql returning t>"
  for _ in $(seq 1 50); do [ "$(q ka -c "$1")" = t ] && return 0; sleep 0.2; done
  return 1
}
check "600 decryptions by ka_app are counted per role, key and column" \
  wait_for "SELECT coalesce(sum(decryptions), 0) = 600 FROM tradeguard.decrypt_activity WHERE role_name = 'ka_app' AND key_name = 'ka' AND column_or_context = 'public.accounts.api_key'"
check "a role decrypting far more than usual raises decrypt_anomaly" \
  wait_for "SELECT EXISTS (SELECT 1 FROM tradeguard.security_events WHERE event_type = 'decrypt_anomaly' AND role_name = 'ka_app')"
# Another database's decryptions reach the worker's database too, under that database's name,
# and raise their own decrypt_anomaly (its key named by id).
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" ka_hr
q ka_hr -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION tradeguard;
SELECT tradeguard.create_key('hr');
CREATE TABLE salaries (id serial PRIMARY KEY, amount text);
INSERT INTO salaries (amount) SELECT g::text FROM generate_series(1, 600) g;
SELECT tradeguard.encrypt_column('salaries', 'amount', 'hr');
SQL
q ka_hr -c "SELECT count(amount) FROM salaries_decrypted" >/dev/null
check "another database's decryptions raise their own decrypt_anomaly" \
  wait_for "SELECT EXISTS (SELECT 1 FROM tradeguard.security_events WHERE event_type = 'decrypt_anomaly' AND detail ->> 'database' = 'ka_hr')"
check "... and are not named as a column of the worker's database" \
  wait_for "SELECT bool_and(column_or_context LIKE 'tg:%') FROM tradeguard.decrypt_activity WHERE database_name = 'ka_hr'"
check "encryptions are counted per key version" wait_for "SELECT use_count = 600 FROM tradeguard.keys WHERE name = 'ka' AND version = 1"
q ka -c "INSERT INTO accounts (api_key) SELECT 'sk_live_more_' || g FROM generate_series(1, 500) g" >/dev/null
check "past tradeguard.key_rotate_after the key rotates by itself" \
  wait_for "SELECT status = 'active' FROM tradeguard.keys WHERE name = 'ka' AND version = 2"
check "the rotation is a security event" wait_for "SELECT EXISTS (SELECT 1 FROM tradeguard.security_events WHERE event_type = 'key_rotated' AND detail->>'key' = 'ka')"
check "values of both versions still decrypt" [ "$(q ka -c "SELECT count(api_key) FROM accounts_decrypted")" = 1100 ]
q ka -c "ALTER SYSTEM SET tradeguard.audit_decrypt = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
q ka -c "SELECT tradeguard.audit_table('accounts')" -c "SELECT api_key FROM accounts_decrypted WHERE id = 1" >/dev/null
check "with audit_decrypt, each decryption is a signed audit row without the value" \
  [ "$(q ka -c "SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'DECRYPT' AND new_row->>'key' = 'ka' AND new_row::text NOT LIKE '%sk_live%'")" = 1 ]


q ka -c "ALTER SYSTEM RESET tradeguard.audit_decrypt" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
# The role a count belongs to is the one that decrypted, not the one in effect at COMMIT.
q ka -v ON_ERROR_STOP=1 -c "CREATE ROLE ka_nobody" -c "GRANT ka_nobody TO ka_app" >/dev/null
q ka -c "SET ROLE ka_app" -c "BEGIN" -c "SELECT count(api_key) FROM accounts_decrypted WHERE id <= 3" -c "SET ROLE ka_nobody" -c "COMMIT" >/dev/null
check "a decryption counts for the role that made it, whatever role commits" \
  wait_for "SELECT coalesce(sum(decryptions), 0) = 603 FROM tradeguard.decrypt_activity WHERE role_name = 'ka_app' AND column_or_context = 'public.accounts.api_key'"
check "nothing is counted for the role set before COMMIT" \
  [ "$(q ka -c "SELECT count(*) FROM tradeguard.decrypt_activity WHERE role_name = 'ka_nobody'")" = 0 ]

# More distinct contexts than shared memory has counters: every decryption is still counted
# against its role and key (the overflow counters), none is lost.
q ka -v ON_ERROR_STOP=1 -c "CREATE TABLE flood AS SELECT i, tradeguard.encrypt('x'::text, 'ka', 'flood' || i) AS c FROM generate_series(1, 1100) i" \
  -c "GRANT SELECT ON flood TO ka_app" >/dev/null
q ka -c "SET ROLE ka_app" -c "BEGIN" -c "SELECT count(tradeguard.decrypt_text(c, 'flood' || i)) FROM flood" \
  -c "SELECT count(api_key) FROM accounts_decrypted WHERE id <= 5" -c "COMMIT" >/dev/null
check "a flood of contexts: every decryption is counted for its role" \
  wait_for "SELECT coalesce(sum(decryptions), 0) = 603 + 1100 + 5 FROM tradeguard.decrypt_activity WHERE role_name = 'ka_app'"
check "a flood of contexts: the overflow counter holds the rest" \
  [ "$(q ka -c "SELECT count(*) > 0 FROM tradeguard.decrypt_activity WHERE role_name = 'ka_app' AND column_or_context = '(other contexts: counters full)'")" = t ]
check "a flood of contexts: nothing dropped" \
  [ "$(q ka -c "SELECT count(*) FROM tradeguard.security_events WHERE event_type = 'stats_dropped'")" = 0 ]

# A database the worker does not serve: its encryption counts wait in shared memory (key ids are
# per database) until tradeguard.seal() runs there, which stores them and rotates a key that is
# due; a seal() that rolls back puts them back.
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" ka_other
q ka_other -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CREATE EXTENSION tradeguard" \
  -c "SELECT tradeguard.create_key('other')" \
  -c "CREATE TABLE t AS SELECT tradeguard.encrypt('x'::text, 'other') AS c FROM generate_series(1, 1200)" >/dev/null
sleep 2 # (the worker flushes at least once a second)
check "another database's encryptions wait for seal() there" \
  [ "$(q ka_other -c "SELECT use_count FROM tradeguard.keys WHERE name = 'other' AND version = 1")" = 0 ]
q ka_other -c "BEGIN" -c "SELECT tradeguard.seal()" -c "ROLLBACK" >/dev/null
q ka_other -c "BEGIN" -c "SAVEPOINT a" -c "SELECT tradeguard.seal()" -c "ROLLBACK TO SAVEPOINT a" -c "COMMIT" >/dev/null
q ka_other -c "BEGIN" -c "SAVEPOINT a" -c "SELECT tradeguard.seal()" -c "RELEASE SAVEPOINT a" -c "ROLLBACK" >/dev/null
q ka_other -c "SELECT tradeguard.seal()" >/dev/null
check "seal() there stores them (none lost by those that rolled back, savepoints included)" \
  [ "$(q ka_other -c "SELECT use_count FROM tradeguard.keys WHERE name = 'other' AND version = 1")" = 1200 ]
check "and rotates the key past tradeguard.key_rotate_after" \
  [ "$(q ka_other -c "SELECT status FROM tradeguard.keys WHERE name = 'other' AND version = 2")" = active ]
# A transaction that stored counts cannot be prepared: a ROLLBACK PREPARED would lose them.
q ka_other -v ON_ERROR_STOP=1 -c "SELECT tradeguard.create_key('prep')" \
  -c "CREATE TABLE t_prep AS SELECT tradeguard.encrypt('x'::text, 'prep') AS c FROM generate_series(1, 100)" >/dev/null
prep_out=$(q ka_other -c "BEGIN" -c "SELECT tradeguard.seal()" -c "PREPARE TRANSACTION 'tg_prep'" 2>&1)
q ka_other -c "ROLLBACK PREPARED 'tg_prep'" >/dev/null 2>&1   # (only if it was prepared after all)
check "a transaction that stored key use counts cannot be prepared" grep -q 'cannot be prepared' <<<"$prep_out"
q ka_other -c "SELECT tradeguard.seal()" >/dev/null
check "and none of its counts is lost" \
  [ "$(q ka_other -c "SELECT use_count FROM tradeguard.keys WHERE name = 'prep' AND version = 1")" = 100 ]

# An event the worker cannot store (here a CHECK constraint, set with break-glass, refuses it)
# is written to the server log instead and counted in an events_dropped event; it does not hold
# up the events after it.
q ka -v ON_ERROR_STOP=1 -c "SELECT tradeguard.break_glass('e2e: storing one event fails')" \
  -c "ALTER TABLE tradeguard_audit.security_events ADD CONSTRAINT e2e_refuse CHECK (detail->>'table' IS NULL OR detail->>'table' NOT LIKE '%refused_notes')" >/dev/null
q ka -v ON_ERROR_STOP=1 -c "CREATE TABLE refused_notes (id serial PRIMARY KEY, note text)" \
  -c "CREATE TABLE later_notes (id serial PRIMARY KEY, note text)" \
  -c "SELECT tradeguard.guard_columns('refused_notes', ARRAY['note'], 'log')" \
  -c "SELECT tradeguard.guard_columns('later_notes', ARRAY['note'], 'log')" \
  -c "INSERT INTO refused_notes (note) VALUES ('1'' OR ''1''=''1'' --')" >/dev/null
q ka -c "INSERT INTO later_notes (note) VALUES ('1'' OR ''1''=''1'' --')" >/dev/null
event_count() { q ka -c "SELECT count(*) FROM tradeguard.security_events WHERE event_type = 'injection_attempt' AND detail->>'table' LIKE '%$1'"; }
check "an event after the one that cannot be stored is stored" wait_for "SELECT count(*) = 1 FROM tradeguard.security_events WHERE event_type = 'injection_attempt' AND detail->>'table' LIKE '%later_notes'"
check "the one that cannot be stored is not" [ "$(event_count refused_notes)" = 0 ]
check "... it is in the server log instead, with its type" \
  grep -q 'could not store an event (.*e2e_refuse.*); it was: type=injection_attempt' "$E2E_DATA/../server.log"
check "... and counted in an events_dropped event" \
  wait_for "SELECT EXISTS (SELECT 1 FROM tradeguard.security_events WHERE event_type = 'events_dropped' AND (detail->>'not_stored')::int >= 1)"
q ka -v ON_ERROR_STOP=1 -c "SELECT tradeguard.break_glass('e2e: storing events works again')" \
  -c "ALTER TABLE tradeguard_audit.security_events DROP CONSTRAINT e2e_refuse" >/dev/null

# What waits in shared memory survives a clean restart: the exiting postmaster writes it to
# pg_stat/tradeguard_pending.json and the next one reads it back. Served a database without
# tradeguard, the worker stores nothing, so the counts and the event below are still waiting
# when the server stops (checked before each restart).
PENDING="$E2E_DATA/pg_stat/tradeguard_pending.json"
restart() { stop_cluster "$E2E_DATA" && start_cluster "$E2E_DATA" "$E2E_PORT"; }
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" ka_idle
q ka -c "ALTER SYSTEM SET tradeguard.database_name = 'ka_idle'" >/dev/null
restart
check "the worker serves a database without tradeguard" worker_in ka_idle
q ka_other -v ON_ERROR_STOP=1 -c "SELECT tradeguard.create_key('kept')" \
  -c "CREATE TABLE t_kept AS SELECT tradeguard.encrypt('x'::text, 'kept') AS c FROM generate_series(1, 300)" >/dev/null
q ka -v ON_ERROR_STOP=1 -c "CREATE TABLE kept_notes (id serial PRIMARY KEY, note text)" \
  -c "SELECT tradeguard.guard_columns('kept_notes', ARRAY['note'], 'log')" \
  -c "INSERT INTO kept_notes (note) VALUES ('1'' OR ''1''=''1'' --')" >/dev/null
kept_event="SELECT count(*) FROM tradeguard.security_events WHERE event_type = 'injection_attempt' AND detail->>'table' LIKE '%kept_notes'"
sleep 1.5
check "the event waits in shared memory (not stored by a worker serving another database)" [ "$(q ka -c "$kept_event")" = 0 ]
stop_cluster "$E2E_DATA"
check "a clean shutdown writes what is pending to pg_stat/tradeguard_pending.json (mode 0600)" \
  [ "$(stat -c %a "$PENDING" 2>/dev/null)" = 600 ]
check "the file holds the counts and the event, never a value" \
  bash -c "grep -q '\"n\":300' '$PENDING' && grep -q injection_attempt '$PENDING' && ! grep -q \"OR '1'\" '$PENDING'"
start_cluster "$E2E_DATA" "$E2E_PORT"
gone() { for _ in $(seq 1 50); do [ ! -e "$1" ] && return 0; sleep 0.2; done; return 1; }
check "the next start reads it back; the worker removes it once the server is up" gone "$PENDING"
q ka -c "ALTER SYSTEM RESET tradeguard.database_name" >/dev/null
restart   # (the event is still pending: written and read back again)
check "the worker serves its database again" worker_in ka
check "an event pending at a restart is stored after it" wait_for "SELECT ($kept_event) = 1"
q ka_other -c "SELECT tradeguard.seal()" >/dev/null
check "encryption counts pending at a restart are stored after it" \
  [ "$(q ka_other -c "SELECT use_count FROM tradeguard.keys WHERE name = 'kept' AND version = 1")" = 300 ]
stop_cluster "$E2E_DATA"
echo '{"format": 1, "counts": [' | as_pg tee "$PENDING" >/dev/null
start_cluster "$E2E_DATA" "$E2E_PORT"
check "a file that does not parse is logged, ignored and removed; the server starts" \
  bash -c "[ ! -e '$PENDING' ] && grep -q 'tradeguard: ignored pg_stat/tradeguard_pending.json' '$E2E_DATA/../server.log'"
# An immediate shutdown ends with a normal exit of the postmaster too: the counts are kept.
q ka_other -c "CREATE TABLE t_kept2 AS SELECT tradeguard.encrypt('x'::text, 'kept') AS c FROM generate_series(1, 100)" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$E2E_DATA" -m immediate -w stop >/dev/null
start_cluster "$E2E_DATA" "$E2E_PORT"
q ka_other -c "SELECT tradeguard.seal()" >/dev/null
check "counts pending at an immediate shutdown are kept too" \
  [ "$(q ka_other -c "SELECT use_count FROM tradeguard.keys WHERE name = 'kept' AND version = 1")" = 400 ]
# A start that fails after reading the file (here: its TCP address is taken) keeps it for the
# next start: nothing it read is lost.
q ka_other -c "CREATE TABLE t_kept3 AS SELECT tradeguard.encrypt('x'::text, 'kept') AS c FROM generate_series(1, 50)" >/dev/null
stop_cluster "$E2E_DATA"
bound="$TG_TEST_DIR/keyact/port_taken"
rm -f "$bound"
python3 -c "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', $E2E_PORT)); s.listen(); open('$bound', 'w').close(); time.sleep(60)" &
blocker=$!
for _ in $(seq 1 50); do [ -e "$bound" ] && break; sleep 0.1; done
failed_start=yes
as_pg "$PG_BIN/pg_ctl" -D "$E2E_DATA" -o "-p $E2E_PORT -k /tmp -c listen_addresses=127.0.0.1" -l "$E2E_DATA/../server.log" -w -t 30 start >/dev/null 2>&1 && failed_start=no
kill "$blocker" 2>/dev/null; wait "$blocker" 2>/dev/null
check "a start that fails after reading the file leaves it in place" bash -c "[ '$failed_start' = yes ] && [ -e '$PENDING' ]"
[ "$failed_start" = no ] && stop_cluster "$E2E_DATA"
start_cluster "$E2E_DATA" "$E2E_PORT"
q ka_other -c "SELECT tradeguard.seal()" >/dev/null
check "and the next start restores it" \
  [ "$(q ka_other -c "SELECT use_count FROM tradeguard.keys WHERE name = 'kept' AND version = 1")" = 450 ]

echo "$fails failed"
[ "$fails" -eq 0 ]
