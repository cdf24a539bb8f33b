#!/usr/bin/env bash
# A real client end to end: psycopg 3 (PyPI) acts as the Python trading application over TCP
# with sslmode=verify-full against a throwaway hardened cluster built like `make demo`
# (demo certificate, demo settings, demo database daytrading_prod, setup-10-tradeguard.sql):
# orders into encrypted and audited tables, an injection refused, a lockout after wrong
# passwords, then the analyst reads history, findings, security events and security_status().
# Cluster in $TG_TEST_DIR/realclient (left there for inspection), port 54338, 127.0.0.1 only;
# Python virtualenv cached in $TG_TEST_DIR/venv. Prints `ok - ...` / `not ok - ...`, exits 1 on
# any failure. Runs after the extension is installed (make test).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh

PORT=54338
DB=daytrading_prod
BASE="$TG_TEST_DIR/realclient"
DATA="$BASE/data"
TLS="$BASE/tls"
KEYS="$BASE/keys"
LOGF="$BASE/server.log"          # start_cluster logs to $data/../server.log
VENV="$TG_TEST_DIR/venv"
PY=${TG_PYTHON:-python3}
t0=$(date +%s)

mkdir -p "$TG_TEST_DIR"
chmod 755 "$TG_TEST_DIR"
stop_cluster "$DATA" 2>/dev/null || true
rm -rf "$BASE"
pg_dir "$BASE"
pg_dir "$TLS"
pg_dir "$KEYS"

# --- TLS: a CA and a server certificate for localhost, exactly as scripts/demo.sh ------------
make_demo_tls "$TLS" || { echo "not ok - generate the test CA and server certificate"; exit 1; }
make_root_key "$KEYS/root.key"

# --- The cluster: demo settings and pg_hba, lockout threshold lowered for the test -----------
init_cluster "$DATA" --auth-local=trust --auth-host=scram-sha-256
sed -e "s|@TG_TLS@|$TLS|g" -e "s|@TG_KEYS@|$KEYS|g" \
  scripts/demo/postgresql.tradeguard.conf > "$DATA/tradeguard.conf"
cat >>"$DATA/tradeguard.conf" <<CONF

# real_client.sh: loopback only, C messages, a short lockout for the test
listen_addresses = '127.0.0.1'
lc_messages = 'C'
tradeguard.max_failed_logins = 3
tradeguard.lockout_duration = 60
tradeguard.auto_block_score = 0
CONF
echo "include_if_exists = 'tradeguard.conf'" >> "$DATA/postgresql.conf"
cat >"$DATA/pg_hba.conf" <<HBA
# real_client.sh: trust for the local superuser setup, SCRAM over TLS only on TCP.
# TYPE   DATABASE  USER      ADDRESS        METHOD
local    all       all                      trust
hostssl  all       all       127.0.0.1/32   scram-sha-256
host     all       all       all            reject
HBA
chown postgres:postgres "$DATA/tradeguard.conf" "$DATA/pg_hba.conf"
chmod 600 "$DATA/tradeguard.conf" "$DATA/pg_hba.conf"

trap 'stop_cluster "$DATA" 2>/dev/null || true' EXIT
start_cluster "$DATA" "$PORT" || { echo "not ok - the hardened TLS cluster starts"; exit 1; }
ok "the hardened TLS cluster starts on 127.0.0.1:$PORT with tradeguard preloaded"

# --- The demo database, as scripts/demo.sh builds it ---------------------------------------
APP_PASSWORD=$(openssl rand -hex 16)
ANALYST_PASSWORD=$(openssl rand -hex 16)
app_verifier=$(printf '%s\n' "$APP_PASSWORD" | python3 scripts/scram.py)
analyst_verifier=$(printf '%s\n' "$ANALYST_PASSWORD" | python3 scripts/scram.py)
until_date=$(date -u -d '+180 days' +%Y-%m-%d)

setup() {
  psql_su "$PORT" postgres -q <<SQL || return 1
-- Keep even the password verifiers out of the server log.
SET log_statement = 'none';
CREATE ROLE daytrading_prod LOGIN;
CREATE ROLE daytrading_readonly LOGIN;
ALTER ROLE daytrading_prod LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$app_verifier' VALID UNTIL '$until_date';
ALTER ROLE daytrading_readonly LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$analyst_verifier' VALID UNTIL '$until_date';
ALTER ROLE daytrading_readonly SET default_transaction_read_only = on;
SQL
  psql_su "$PORT" postgres -q <<'SQL' || return 1
CREATE DATABASE daytrading_prod OWNER daytrading_prod;
REVOKE ALL ON DATABASE daytrading_prod FROM PUBLIC;
GRANT CONNECT ON DATABASE daytrading_prod TO daytrading_prod, daytrading_readonly;
SQL
  psql_su "$PORT" "$DB" -q -c 'CREATE EXTENSION tradeguard' \
    -c 'GRANT tradeguard_encryptor, tradeguard_decryptor, tradeguard_table_owner TO daytrading_prod' \
    -c 'GRANT tradeguard_auditor TO daytrading_readonly' || return 1
  psql_su "$PORT" "$DB" -q -c 'SET ROLE daytrading_prod' -f scripts/demo/schema.sql || return 1
  psql_su "$PORT" "$DB" -q -f scripts/demo/setup-10-tradeguard.sql >/dev/null || return 1
}
if setup >"$BASE/setup.log" 2>&1; then
  ok "demo database daytrading_prod built (schema.sql, setup-10-tradeguard.sql)"
else
  not_ok "demo database daytrading_prod built"; cat "$BASE/setup.log"; exit 1
fi

sql() { psql_su "$PORT" "$DB" -qtA -c "$1"; }
worker_up() {
  local _
  for _ in $(seq 1 100); do
    [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tradeguard worker' AND datname = '$DB'")" = 1 ] && return 0
    sleep 0.2
  done
  return 1
}
check "the tradeguard worker is connected to daytrading_prod" worker_up

# --- The client: psycopg 3 from PyPI in a cached virtualenv ---------------------------------
venv_ready() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import psycopg' 2>/dev/null; }
if ! venv_ready; then
  { [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"; } &&
    { "$VENV/bin/pip" install -q -r tests/requirements.txt ||
      { echo "psycopg[binary] unavailable; falling back to psycopg with the system libpq"
        { ldconfig -p | grep -q 'libpq\.so\.5' || apt-get install -y -q libpq5 >/dev/null; } &&
          "$VENV/bin/pip" install -q 'psycopg==3.*'; }; }
fi
if ! venv_ready; then
  not_ok "psycopg 3 installed in $VENV"; exit 1
fi
ok "psycopg $("$VENV/bin/python" -c 'import psycopg; print(psycopg.__version__, psycopg.pq.__impl__, "libpq", psycopg.pq.version())') in $VENV"

t1=$(date +%s)
TG_RC_HOST=localhost TG_RC_PORT=$PORT TG_RC_DB=$DB TG_RC_SSLROOTCERT="$TLS/ca.crt" \
TG_RC_APP_USER=daytrading_prod TG_RC_APP_PASSWORD=$APP_PASSWORD \
TG_RC_ANALYST_USER=daytrading_readonly TG_RC_ANALYST_PASSWORD=$ANALYST_PASSWORD \
TG_RC_SU_HOST=/tmp TG_RC_SU_USER=postgres \
  env -u PGSSLMODE -u PGSSLROOTCERT -u PGOPTIONS -u PGSERVICE -u PGHOSTADDR \
  "$VENV/bin/python" tests/real_client.py
py_rc=$?
[ $py_rc -eq 0 ] || fails=$((fails + 1))

# --- What the server kept: bound parameters never reach its log ----------------------------
stop_cluster "$DATA"   # flush and close the log
check "the injection payload is not in the server log" \
  bash -c "! grep -qF 'DROP TABLE trades' '$LOGF'"
check "the plaintext api_key sent as a parameter is not in the server log" \
  bash -c "! grep -qF 'ak_live_rc_' '$LOGF'"
check "no backend crashed (server log)" \
  bash -c "! grep -Eq 'terminated by signal|server process .* was terminated|PANIC' '$LOGF'"

echo
echo "real client: $(($(date +%s) - t1)) s in the client, $(($(date +%s) - t0)) s in all; cluster and logs in $BASE"
if [ "$fails" -gt 0 ]; then
  echo "$fails check group(s) failed; server log: $LOGF"
  tail -n 20 "$LOGF"
  exit 1
fi
echo "all real-client checks passed"
