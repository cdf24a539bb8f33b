#!/usr/bin/env bash
# make demo: build and install tradeguard, start a hardened local cluster with a demo
# daytrading_prod database, and show every capability working.
# Usage: scripts/demo.sh [stop]
# Settings: TG_HOME (default /var/lib/tradeguard-demo), TG_PORT (5499), TG_DATA ($TG_HOME/data),
#           TG_DEMO_KEEP=1 keeps an existing daytrading_prod database instead of recreating it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

TG_HOME=${TG_HOME:-/var/lib/tradeguard-demo}
TG_PORT=${TG_PORT:-5499}
TG_DATA=${TG_DATA:-$TG_HOME/data}

if [ "${1:-}" = stop ]; then
  stop_cluster "$TG_DATA"
  log "demo cluster in $TG_DATA stopped"
  exit 0
fi

bash scripts/setup.sh
log "building and installing tradeguard (release build)"
install_extension release

pg_dir "$TG_HOME"
pg_dir "$TG_HOME/tls"
pg_dir "$TG_HOME/keys"

# Demo TLS: a CA and a server certificate for localhost (ECDSA P-256).
tls=$TG_HOME/tls
make_demo_tls "$tls"

# The root key lives outside the data directory, mode 0600, owned by the server's user.
make_root_key "$TG_HOME/keys/root.key"

init_cluster "$TG_DATA" --auth-local=peer --auth-host=scram-sha-256
sed -e "s|@TG_TLS@|$tls|g" -e "s|@TG_KEYS@|$TG_HOME/keys|g" \
  scripts/demo/postgresql.tradeguard.conf > "$TG_DATA/tradeguard.conf"
grep -q "^include_if_exists = 'tradeguard.conf'" "$TG_DATA/postgresql.conf" \
  || echo "include_if_exists = 'tradeguard.conf'" >> "$TG_DATA/postgresql.conf"
cp scripts/demo/pg_hba.conf "$TG_DATA/pg_hba.conf"
chown postgres:postgres "$TG_DATA/tradeguard.conf" "$TG_DATA/pg_hba.conf"
chmod 600 "$TG_DATA/tradeguard.conf" "$TG_DATA/pg_hba.conf"

log "starting the demo cluster on port $TG_PORT ($TG_DATA)"
start_cluster "$TG_DATA" "$TG_PORT"

# Demo passwords: generated once, kept in a 0600 file; only SCRAM verifiers reach the server.
pwfile=$TG_HOME/passwords.env
if [ ! -s "$pwfile" ]; then
  (umask 077; {
    echo "TG_APP_PASSWORD=$(openssl rand -hex 16)"
    echo "TG_ANALYST_PASSWORD=$(openssl rand -hex 16)"
  } > "$pwfile")
fi
# shellcheck disable=SC1090
source "$pwfile"
app_verifier=$(printf '%s\n' "$TG_APP_PASSWORD" | python3 scripts/scram.py)
analyst_verifier=$(printf '%s\n' "$TG_ANALYST_PASSWORD" | python3 scripts/scram.py)

if [ "${TG_DEMO_KEEP:-0}" = 1 ] && psql_su "$TG_PORT" postgres -tAc "SELECT 1 FROM pg_database WHERE datname='daytrading_prod'" | grep -q 1; then
  log "keeping the existing daytrading_prod database (TG_DEMO_KEEP=1)"
  fresh=0
else
  fresh=1
fi

psql_su "$TG_PORT" postgres -q <<SQL
-- Keep even the password verifiers out of the server log.
SET log_statement = 'none';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'daytrading_prod') THEN
    CREATE ROLE daytrading_prod LOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'daytrading_readonly') THEN
    CREATE ROLE daytrading_readonly LOGIN;
  END IF;
END \$\$;
ALTER ROLE daytrading_prod LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$app_verifier' VALID UNTIL '$(date -u -d '+180 days' +%Y-%m-%d)';
ALTER ROLE daytrading_readonly LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$analyst_verifier' VALID UNTIL '$(date -u -d '+180 days' +%Y-%m-%d)';
ALTER ROLE daytrading_readonly SET default_transaction_read_only = on;
SQL

if [ "$fresh" = 1 ]; then
  log "creating the demo database daytrading_prod"
  psql_su "$TG_PORT" postgres -q <<'SQL'
DROP DATABASE IF EXISTS daytrading_prod WITH (FORCE);
CREATE DATABASE daytrading_prod OWNER daytrading_prod;
REVOKE ALL ON DATABASE daytrading_prod FROM PUBLIC;
GRANT CONNECT ON DATABASE daytrading_prod TO daytrading_prod, daytrading_readonly;
SQL
  psql_su "$TG_PORT" daytrading_prod -q -c 'CREATE EXTENSION tradeguard' \
    -c 'GRANT tradeguard_encryptor, tradeguard_decryptor, tradeguard_table_owner TO daytrading_prod' \
    -c 'GRANT tradeguard_auditor TO daytrading_readonly'
  psql_su "$TG_PORT" daytrading_prod -q -c 'SET ROLE daytrading_prod' -f scripts/demo/schema.sql
  for f in scripts/demo/setup-*.sql; do
    [ -e "$f" ] && psql_su "$TG_PORT" daytrading_prod -q -f "$f"
  done
fi

log "showing tradeguard at work"
psql_su "$TG_PORT" daytrading_prod -f scripts/demo/showcase.sql

echo
echo "== 7. Failed-login lockout at the server's door (real TCP + TLS logins as the analyst)"
tcp_login() { # $1 = password
  PGPASSWORD="$1" PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -w -tA \
    "host=127.0.0.1 port=$TG_PORT dbname=daytrading_prod user=daytrading_readonly sslmode=verify-full sslrootcert=$tls/ca.crt" \
    -c "SELECT 'logged in as ' || current_user" 2>&1 | sed 's/^/   /' || true
}
for i in 1 2 3 4 5; do echo "  wrong password #$i:"; tcp_login "not-the-password-$i"; done
echo "  the right password is now refused too:"
tcp_login "$TG_ANALYST_PASSWORD"
sleep 1
psql_su "$TG_PORT" daytrading_prod -c "SELECT source, role_name, reason, blocked_until > now() AS active FROM tradeguard.blocked_sources" \
  -c "SELECT event_type, severity, source, role_name FROM tradeguard.security_events WHERE event_type IN ('login_failed', 'lockout', 'blocked_login') ORDER BY id"
echo "  the DBA unblocks (recorded), and the analyst is back:"
psql_su "$TG_PORT" daytrading_prod -qtA -c "SELECT 'unblocked: ' || tradeguard.unblock('127.0.0.1/32') || ' block(s)'" -c "SELECT 'unblocked roles: ' || tradeguard.unblock_role('daytrading_readonly')"
tcp_login "$TG_ANALYST_PASSWORD"

cat <<INFO

tradeguard demo is running.
  superuser (peer):  sudo -u postgres psql -h /tmp -p $TG_PORT daytrading_prod
  application (TLS): psql "host=localhost port=$TG_PORT dbname=daytrading_prod user=daytrading_prod sslmode=verify-full sslrootcert=$tls/ca.crt"
  analyst (TLS):     psql "host=127.0.0.1 port=$TG_PORT dbname=daytrading_prod user=daytrading_readonly sslmode=verify-full sslrootcert=$tls/ca.crt"
  passwords:         $pwfile (mode 0600)
  server log:        $TG_HOME/server.log
  stop it with:      make demo-stop
INFO
