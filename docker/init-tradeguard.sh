#!/usr/bin/env bash
# tradeguard: first-start initialisation for the official postgres image.
#
# The official entrypoint runs every executable *.sh in /docker-entrypoint-initdb.d/ once, on
# an empty data directory, as the `postgres` OS user, while a temporary socket-only server runs.
# This script does what scripts/demo.sh does for `make demo`, with the same files from
# scripts/demo/ (copied to /usr/share/tradeguard/demo by the Dockerfile):
#   root key (outside PGDATA) -> demo CA + server certificate -> hardened config and pg_hba.conf
#   -> roles daytrading_prod / daytrading_readonly -> database daytrading_prod with tradeguard,
#   the demo schema and scripts/demo/setup-*.sql -> showcase.
#
# Environment (docker-compose.yml passes them):
#   TG_APP_PASSWORD      password of daytrading_prod (application owner), required
#   TG_ANALYST_PASSWORD  password of daytrading_readonly (analyst), required
#   TG_HBA_ADDRESS       where TCP clients may connect from over TLS (default: samenet, the
#                        container's own networks, which is where Docker's published port
#                        forwards connections from)
#   TG_PASSWORD_VALID_DAYS  VALID UNTIL for the two demo roles (default 180, as make demo)
set -Eeuo pipefail

TG_HOME=${TG_HOME:-/var/lib/postgresql/tradeguard}
TG_SHARE=${TG_SHARE:-/usr/share/tradeguard/demo}
TG_HBA_ADDRESS=${TG_HBA_ADDRESS:-samenet}
TG_PASSWORD_VALID_DAYS=${TG_PASSWORD_VALID_DAYS:-180}
: "${PGDATA:?PGDATA is not set (this script runs inside the official postgres image)}"
POSTGRES_USER=${POSTGRES_USER:-postgres}

# The helpers make demo uses (make_demo_tls); log and psql_su are redefined below for this image.
# shellcheck source=../scripts/lib.sh
source "${TG_LIB:-/usr/share/tradeguard/lib.sh}"

log() { printf '[tradeguard-init] %s\n' "$*"; }
die() { printf '[tradeguard-init] error: %s\n' "$*" >&2; exit 1; }

[ -n "${TG_APP_PASSWORD:-}" ] || die "TG_APP_PASSWORD is not set (password of daytrading_prod)"
[ -n "${TG_ANALYST_PASSWORD:-}" ] || die "TG_ANALYST_PASSWORD is not set (password of daytrading_readonly)"
[ "$TG_APP_PASSWORD" != "$TG_ANALYST_PASSWORD" ] || die "TG_APP_PASSWORD and TG_ANALYST_PASSWORD must differ"

# psql as the bootstrap superuser over the Unix socket of the temporary server.
psql_su() {
  local db=$1; shift
  PGHOST='' PGHOSTADDR='' psql -X -v ON_ERROR_STOP=1 --no-password --username "$POSTGRES_USER" --dbname "$db" "$@"
}

# ------------------------------------------------------------------ key and certificates
# Everything secret lives in $TG_HOME (its own volume), never in PGDATA: a copy of the data
# volume or a base backup does not carry the root key.
mkdir -p "$TG_HOME/tls"
chmod 700 "$TG_HOME" "$TG_HOME/tls"

key=$TG_HOME/root.key
if [ -s "$key" ]; then
  log "keeping the existing root key $key ($(tradeguard-keytool fingerprint "$key"))"
else
  # 32 random bytes, mode 0600, owned by the server's user; prints the fingerprint.
  log "generating the root key $key"
  tradeguard-keytool generate "$key"
fi

# Demo TLS: a CA and a server certificate for localhost (ECDSA P-256), made by the same
# make_demo_tls of scripts/lib.sh (copied to /usr/share/tradeguard/lib.sh by the Dockerfile)
# that scripts/demo.sh calls. Replace them with your own certificates for anything but a demo.
tls=$TG_HOME/tls
if [ ! -s "$tls/server.crt" ]; then
  log "generating a demo CA and server certificate in $tls"
  make_demo_tls "$tls" || die "could not make the demo certificates in $tls"
fi

# ------------------------------------------------------------------ configuration
# The hardened settings of make demo, with @TG_TLS@ and @TG_KEYS@ substituted exactly as
# scripts/demo.sh does (the key is $TG_HOME/root.key, so @TG_KEYS@ is $TG_HOME).
sed -e "s|@TG_TLS@|$tls|g" -e "s|@TG_KEYS@|$TG_HOME|g" \
  "$TG_SHARE/postgresql.tradeguard.conf" > "$PGDATA/tradeguard.conf"

# In a container, 'localhost' is the container's own loopback: Docker's published port could
# not reach the server. Listen on the container's interfaces instead; the port is published on
# the host's 127.0.0.1 only (docker-compose.yml) and pg_hba.conf below admits TLS only.
cat > "$PGDATA/tradeguard-docker.conf" <<'CONF'
# tradeguard docker image: overrides of tradeguard.conf for a container.
listen_addresses = '*'
CONF

grep -q "^include_if_exists = 'tradeguard.conf'" "$PGDATA/postgresql.conf" \
  || echo "include_if_exists = 'tradeguard.conf'" >> "$PGDATA/postgresql.conf"
grep -q "^include_if_exists = 'tradeguard-docker.conf'" "$PGDATA/postgresql.conf" \
  || echo "include_if_exists = 'tradeguard-docker.conf'" >> "$PGDATA/postgresql.conf"

# pg_hba.conf: the demo's file (peer for the local superuser, SCRAM elsewhere, TCP only over
# TLS, plain TCP rejected), plus TLS+SCRAM from $TG_HBA_ADDRESS for the published port, inserted
# before the final reject line. The superuser is refused over the network: use
#   docker compose exec -u postgres db psql
# This replaces the `host all all all scram-sha-256` line that the entrypoint appended.
awk -v addr="$TG_HBA_ADDRESS" -v su="$POSTGRES_USER" '
  function docker_lines() {
    print "# docker: connections through the published port (they come from the Docker network)"
    printf "hostssl  all       %-9s %-14s reject\n", su, addr
    printf "hostssl  all       all       %-14s scram-sha-256\n", addr
    done = 1
  }
  !done && $1 == "host" && $2 == "all" && $3 == "all" && $4 == "all" && $5 == "reject" { docker_lines() }
  { print }
  END { if (!done) docker_lines() }
' "$TG_SHARE/pg_hba.conf" > "$PGDATA/pg_hba.conf"
chmod 600 "$PGDATA/tradeguard.conf" "$PGDATA/tradeguard-docker.conf" "$PGDATA/pg_hba.conf"

# shared_preload_libraries only takes effect at server start. The official entrypoint stops
# this temporary server after the init scripts and then starts the real one, which loads
# tradeguard.conf; but the demo database below should be built by a server that already has
# tradeguard preloaded and its root key configured, as make demo does. So restart the temporary
# server now: pg_ctl restart reuses its options from postmaster.opts (socket only,
# listen_addresses=''), so nothing listens on TCP during initialisation.
log "restarting the temporary server with tradeguard preloaded"
pg_ctl -D "$PGDATA" -m fast -w restart >/dev/null

# ------------------------------------------------------------------ roles and database
valid_until=$(date -u -d "+$TG_PASSWORD_VALID_DAYS days" +%Y-%m-%d)
log "creating roles daytrading_prod and daytrading_readonly (valid until $valid_until)"
# Passwords go in as psql variables (quoted by psql) and are hashed by the server with
# password_encryption = scram-sha-256; log_statement is turned off first so that the statement
# never reaches the server log.
psql_su postgres -q -v app_pw="$TG_APP_PASSWORD" -v analyst_pw="$TG_ANALYST_PASSWORD" \
  -v valid_until="$valid_until" <<'SQL'
SET log_statement = 'none';
SET password_encryption = 'scram-sha-256';
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'daytrading_prod') AS need_app \gset
\if :need_app
CREATE ROLE daytrading_prod LOGIN;
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'daytrading_readonly') AS need_analyst \gset
\if :need_analyst
CREATE ROLE daytrading_readonly LOGIN;
\endif
ALTER ROLE daytrading_prod LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_pw' VALID UNTIL :'valid_until';
ALTER ROLE daytrading_readonly LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'analyst_pw' VALID UNTIL :'valid_until';
ALTER ROLE daytrading_readonly SET default_transaction_read_only = on;
SQL

log "creating the demo database daytrading_prod"
psql_su postgres -q <<'SQL'
CREATE DATABASE daytrading_prod OWNER daytrading_prod;
REVOKE ALL ON DATABASE daytrading_prod FROM PUBLIC;
GRANT CONNECT ON DATABASE daytrading_prod TO daytrading_prod, daytrading_readonly;
SQL
psql_su daytrading_prod -q -c 'CREATE EXTENSION tradeguard' \
  -c 'GRANT tradeguard_encryptor, tradeguard_decryptor, tradeguard_table_owner TO daytrading_prod' \
  -c 'GRANT tradeguard_auditor TO daytrading_readonly'
psql_su daytrading_prod -q -c 'SET ROLE daytrading_prod' -f "$TG_SHARE/schema.sql"
for f in "$TG_SHARE"/setup-*.sql; do
  [ -e "$f" ] || continue
  log "running $(basename "$f")"
  psql_su daytrading_prod -q -f "$f"
done

# ------------------------------------------------------------------ showcase
# Same output as the end of make demo, in `docker compose logs`. A failure here is reported but
# does not abort the initialisation (an aborted init would leave a half-built data directory
# that the entrypoint would not initialise again).
log "showing tradeguard at work"
if ! psql_su daytrading_prod -f "$TG_SHARE/showcase.sql"; then
  log "WARNING: the showcase failed; the database is set up, see the errors above"
fi

cat <<INFO

[tradeguard-init] done. After the entrypoint restarts the server:
  superuser (peer):  docker compose exec -u postgres db psql daytrading_prod
  CA certificate:    docker compose cp db:$tls/ca.crt ./tradeguard-ca.crt
  application (TLS): psql "host=localhost port=5432 dbname=daytrading_prod user=daytrading_prod sslmode=verify-full sslrootcert=tradeguard-ca.crt"
  analyst (TLS):     psql "host=localhost port=5432 dbname=daytrading_prod user=daytrading_readonly sslmode=verify-full sslrootcert=tradeguard-ca.crt"
  root key:          $key (fingerprint $(tradeguard-keytool fingerprint "$key")); back it up, or nothing decrypts after a loss
INFO
