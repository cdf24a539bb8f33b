#!/usr/bin/env bash
# Self-audit on a deliberately weak cluster, end to end: the checks that need the cluster's
# files and configuration (pg_hba.conf, postgresql.conf, TLS certificate and key, file modes,
# listen_addresses, live sessions). pg_test/sql/30_selfaudit.sql covers what SQL alone can set up.
#
# Phase 1 (ssl = off): trust lines (local and 0.0.0.0/0), an md5 host line, weak logging, md5
# password hashing, fsync and full_page_writes off, TLSv1 and ALL ciphers allowed, log files
# 0644, a login superuser application role with an md5 password, PUBLIC CREATE on public, a
# SECURITY DEFINER function without search_path, a plaintext api_key column, a root key file,
# data directory and configuration files with loose modes. Every finding is seen, its
# `remediation` text is applied (SQL run as is; pg_hba.conf lines replaced by the line the
# remediation gives; shell commands for file modes run as given), and it must be gone.
# Phase 2 (ssl = on via the ssl_disabled remediation): a certificate expiring in 10 days, a
# root-owned 0640 key (the most PostgreSQL accepts), listen_addresses = '*', a remote session
# without TLS, non-loopback "host" lines; each fixed the same way.
# Finally the hardened cluster scores >= 90 with no critical or high finding.
#
# Runs on a throwaway cluster in $TG_TEST_DIR/saweak (port 54343) after the extension is
# installed; prints `ok - ...` / `not ok - ...`, exits 1 on any failure.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

PORT=54343
DB=saweak
BASE="$TG_TEST_DIR/saweak"
DATA="$BASE/data"
TLS="$BASE/tls"
KEY="$BASE/root.key"
HBA="$DATA/pg_hba.conf"
APP_PASS='app-pass-1'
T0=$SECONDS
BG_PID=

# A non-loopback IPv4 address of this machine, for the remote-session checks (empty: skipped;
# TG_APP_IP= forces that).
APP_IP=${TG_APP_IP-$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')}

server_log() { # the newest log of the collector, else pg_ctl's log
  local f
  f=$(ls -t "$DATA"/log/*.log 2>/dev/null | head -1)
  echo "${f:-$BASE/server.log}"
}
cleanup() {
  [ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null
  stop_cluster "$DATA" 2>/dev/null || true
}

mkdir -p "$TG_TEST_DIR"
chmod 755 "$TG_TEST_DIR"
stop_cluster "$DATA" 2>/dev/null || true
rm -rf "$BASE"
init_cluster "$DATA" --auth-local=trust --auth-host=scram-sha-256
make_root_key "$KEY"

# --- TLS material: a CA, a server key, a certificate valid for 10 days ------------------------
pg_dir "$TLS"
sign_cert() { # $1 = days, $2 = output file: a server certificate for the server key, CA-signed
  openssl req -new -key "$TLS/server.key" -subj "/O=tradeguard test/CN=localhost" -out "$TLS/server.csr" 2>/dev/null &&
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial \
      -days "$1" -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n') -out "$2" 2>/dev/null &&
    chmod 644 "$2"
}
(
  umask 077
  openssl req -new -x509 -days 3650 -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -subj "/O=tradeguard test/CN=saweak test CA" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/server.key" 2>/dev/null
) && sign_cert 10 "$TLS/server.crt" || { echo "not ok - TLS material"; exit 1; }
# Owned by root, group postgres, 0640: PostgreSQL loads such a key; the check wants 0600 postgres.
chown root:postgres "$TLS/server.key"
chmod 640 "$TLS/server.key"

# --- The weak configuration -------------------------------------------------------------------
cat >>"$DATA/postgresql.conf" <<CONF
shared_preload_libraries = 'tradeguard'
tradeguard.root_key_file = '$KEY'
tradeguard.database_name = '$DB'
listen_addresses = '127.0.0.1'
lc_messages = 'C'
log_statement = 'none'
log_connections = off
log_disconnections = off
log_line_prefix = '%m [%p] '
logging_collector = on
log_file_mode = '0644'
ssl = off
ssl_cert_file = '$TLS/server.crt'
ssl_key_file = '$TLS/server.key'
ssl_min_protocol_version = 'TLSv1'
ssl_ciphers = 'ALL'
password_encryption = 'md5'
fsync = off
full_page_writes = off
CONF
hba_lines=("local all all trust" "host all all 127.0.0.1/32 scram-sha-256")
[ -n "$APP_IP" ] && hba_lines+=("host all sa_app $APP_IP/32 scram-sha-256")
hba_lines+=("host all all 0.0.0.0/0 trust" "host all all 10.0.0.0/8 md5")
# Plaintext TCP through hostnogssenc, and a "loopback" address whose mask opens half the Internet.
hba_lines+=("hostnogssenc all all 192.0.2.0/24 scram-sha-256" "host all all 127.0.0.1/1 scram-sha-256")
# Lines without a network of their own: any address, and a host name.
hba_lines+=("host all all all scram-sha-256" "host all all db.example.com scram-sha-256")
printf '%s\n' "${hba_lines[@]}" >"$HBA"
chown postgres:postgres "$HBA"
hba_line_of() { # the line number of an exact pg_hba.conf line as written above
  local i
  for i in "${!hba_lines[@]}"; do [ "${hba_lines[$i]}" = "$1" ] && { echo $((i + 1)); return; }; done
}
L_LOCAL=$(hba_line_of "local all all trust")
L_WORLD=$(hba_line_of "host all all 0.0.0.0/0 trust")
L_MD5=$(hba_line_of "host all all 10.0.0.0/8 md5")
L_APP=$([ -n "$APP_IP" ] && hba_line_of "host all sa_app $APP_IP/32 scram-sha-256")
L_NOGSS=$(hba_line_of "hostnogssenc all all 192.0.2.0/24 scram-sha-256")
L_WIDE=$(hba_line_of "host all all 127.0.0.1/1 scram-sha-256")
L_ALL=$(hba_line_of "host all all all scram-sha-256")
L_NAME=$(hba_line_of "host all all db.example.com scram-sha-256")

trap cleanup EXIT
start_cluster "$DATA" "$PORT" || { echo "not ok - the weak cluster starts"; exit 1; }

sql() { psql_su "$PORT" "$DB" -qtA -c "SET client_min_messages = error" -c "$1"; }
sql_script() { psql_su "$PORT" "$DB" -qtA; }   # statements on stdin (ALTER SYSTEM needs no transaction)
lit() { printf "'%s'" "${1//\'/\'\'}"; }
reload() { sql "SELECT pg_reload_conf()" >/dev/null; sleep 0.3; }
restart() { start_cluster "$DATA" "$PORT"; }

psql_su "$PORT" postgres -q -c "CREATE DATABASE $DB" || { echo "not ok - create database"; exit 1; }
sql_script >/dev/null <<SQL || { echo "not ok - weak objects"; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION tradeguard;
CREATE ROLE sa_app LOGIN SUPERUSER PASSWORD '$APP_PASS';
-- A superuser through membership: SET ROLE postgres.
CREATE ROLE sa_member LOGIN;
GRANT postgres TO sa_member;
GRANT CREATE ON SCHEMA public TO PUBLIC;
CREATE FUNCTION public.sa_definer() RETURNS integer LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
CREATE TABLE public.sa_clients (id bigint PRIMARY KEY, name text NOT NULL, api_key text);
INSERT INTO public.sa_clients VALUES (1, 'alice', 'ak_live_1'), (2, 'bob', 'ak_live_2');
SQL
# File modes PostgreSQL does not look at once running (it refuses a 0755 data directory at
# start only): the checks read them live.
chmod 640 "$KEY"
chmod 755 "$DATA"
chmod 664 "$DATA/postgresql.conf" "$HBA"
ok "weak cluster up (port $PORT, ssl off, remote session checks: ${APP_IP:-skipped, no global IPv4})"

# --- Findings ---------------------------------------------------------------------------------
count_findings() { sql "SELECT count(*) FROM tradeguard.findings WHERE check_id = $(lit "$1") AND object = $(lit "$2")"; }
has_finding() { [ "$(count_findings "$1" "$2")" -ge 1 ]; }
# The finding disappears (reloads are asynchronous: poll for up to 3 s).
gone() {
  local i
  for i in $(seq 1 10); do [ "$(count_findings "$1" "$2")" = 0 ] && return 0; sleep 0.3; done
  return 1
}
objects_of() { sql "SELECT object FROM tradeguard.findings WHERE check_id = $(lit "$1") ORDER BY object"; }
remediation_of() { sql "SELECT remediation FROM tradeguard.findings WHERE check_id = $(lit "$1") AND object = $(lit "$2")"; }
expect() { # expect <check_id> <object> [what]: the weak state shows the finding
  check "weak: $1 on $2${3:+ ($3)}" has_finding "$1" "$2"
}

echo "# findings of the weak cluster:"
sql "SELECT '#   ' || level || ' ' || check_id || ' [' || object || ']' FROM tradeguard.findings"
# tradeguard.verify() needs the root key, which tradeguard refuses while its mode is loose: the
# audit chain check reports check_failed (documented) until root_key_file_permissions is fixed.
check "weak: the only check that fails is audit_chain_broken, naming the root key mode" \
  [ "$(sql "SELECT string_agg(object, ',') = 'audit_chain_broken' AND bool_and(detail LIKE '%root key file%mode 0640%')
              FROM tradeguard.findings WHERE check_id = 'check_failed'")" = t ]
check "weak: a check that could not run weighs as that check would (critical, audit)" \
  [ "$(sql "SELECT level || '/' || category FROM tradeguard.findings WHERE check_id = 'check_failed'")" = critical/audit ]

expect hba_trust "pg_hba.conf line $L_LOCAL" "local all all trust"
expect hba_trust "pg_hba.conf line $L_WORLD" "host all all 0.0.0.0/0 trust"
expect hba_open_to_world "pg_hba.conf line $L_WORLD"
expect hba_host_without_ssl "pg_hba.conf line $L_WORLD"
expect hba_weak_password_method "pg_hba.conf line $L_MD5" "host all all 10.0.0.0/8 md5"
expect hba_host_without_ssl "pg_hba.conf line $L_MD5"
[ -n "$APP_IP" ] && expect hba_host_without_ssl "pg_hba.conf line $L_APP"
expect hba_host_without_ssl "pg_hba.conf line $L_NOGSS"
expect hba_host_without_ssl "pg_hba.conf line $L_WIDE"
expect hba_open_to_world "pg_hba.conf line $L_WIDE"
expect hba_host_without_ssl "pg_hba.conf line $L_ALL"
expect hba_open_to_world "pg_hba.conf line $L_ALL"
expect hba_host_without_ssl "pg_hba.conf line $L_NAME"
check "weak: no hba finding for the loopback host line" \
  [ "$(sql "SELECT count(*) FROM tradeguard.findings WHERE category = 'hba' AND object = 'pg_hba.conf line 2'")" = 0 ]
expect ssl_disabled ssl
expect ssl_weak_protocol ssl_min_protocol_version "reported whatever ssl is"
expect ssl_weak_ciphers ssl_ciphers
for s in log_statement log_connections log_disconnections log_line_prefix; do expect log_settings_weak "$s"; done
expect password_encryption_md5 password_encryption
expect fsync_off fsync
expect full_page_writes_off full_page_writes
expect log_file_permissions log_file_mode
expect superuser_login_role sa_app "application superuser"
expect role_md5_password sa_app
expect superuser_login_role sa_member "member of superuser"
expect public_schema_create public
expect secdef_without_search_path "public.sa_definer()"
expect secdef_executable_by_public "public.sa_definer()"
expect sensitive_column_plaintext public.sa_clients.api_key
expect table_not_audited public.sa_clients
expect root_key_file_permissions "$KEY" "mode 0640"
expect data_directory_permissions "$DATA" "mode 0755"
expect config_file_permissions "$DATA/postgresql.conf" "mode 0664"
expect config_file_permissions "$HBA" "mode 0664"
check "weak: ssl_cert_* and ssl_key_file_permissions wait for ssl = on" \
  [ "$(sql "SELECT count(*) FROM tradeguard.findings WHERE check_id IN ('ssl_cert_expiring', 'ssl_key_file_permissions')")" = 0 ]
weak_score=$(sql "SELECT score FROM tradeguard.security_score() WHERE category = 'total'")
check "weak: total score is low ($weak_score)" [ "${weak_score:-100}" -le 20 ]
run_weak=$(sql "SELECT tradeguard.run_audit('full')")

# --- Applying a remediation -------------------------------------------------------------------
HBA_PLACEHOLDER='<application network, e.g. 10.0.0.0/24>'
RE_HBA='^pg_hba\.conf line ([0-9]+) becomes: (.*) ; (then|reset)'
RE_CERT='^Renew the certificate at (/[^,]+), then '
RE_TERMINATE='(SELECT pg_catalog\.pg_terminate_backend.*;)$'
RE_FILE='^(chown [0-9]+ /[^ ;&|]+ && )?chmod ([0-7]{4}|go-w) /[^ ;&|]+$'   # a command on one file
RE_SQL='^(SELECT|ALTER|REVOKE|DO|SET) '
# Replace line $1 of pg_hba.conf with $2, keeping the file (owner, mode, inode).
hba_set_line() {
  local tmp
  tmp=$(awk -v n="$1" -v l="$2" 'NR == n { print l; next } { print }' "$HBA") && printf '%s\n' "$tmp" >"$HBA"
}
# apply <check_id> <object> <remediation>: do what the remediation says.
apply() {
  local id=$1 obj=$2 rem=$3 n line path sqltext
  case $id in
    hba_*)   # "pg_hba.conf line N becomes: <line> ; then SELECT pg_catalog.pg_reload_conf();"
      [[ $rem =~ $RE_HBA ]] || return 1
      n=${BASH_REMATCH[1]}
      line=${BASH_REMATCH[2]//"$HBA_PLACEHOLDER"/10.0.0.0/24}
      [[ $line == *'<'* ]] && return 1
      echo "#   line $n: $(sed -n "${n}p" "$HBA")  ->  $line"
      hba_set_line "$n" "$line" && reload ;;
    ssl_cert_expiring)   # "Renew the certificate at <path>, then SELECT pg_catalog.pg_reload_conf();"
      [[ $rem =~ $RE_CERT ]] || return 1
      path=${BASH_REMATCH[1]}
      sign_cert 397 "$path.new" && cat "$path.new" >"$path" && rm -f "$path.new" && reload ;;
    session_without_ssl)   # "... end these sessions with SELECT ...;" (hostssl: hba_host_without_ssl)
      [[ $rem =~ $RE_TERMINATE ]] || return 1
      sql "${BASH_REMATCH[1]}" >/dev/null ;;
    listen_all_addresses)   # ALTER SYSTEM SET listen_addresses = 'localhost,<application interface address>'; -- then restart
      if [ -n "$APP_IP" ]; then rem=${rem//<application interface address>/$APP_IP}
      else rem=${rem//,<application interface address>/}; fi
      printf '%s\n' "$rem" | sql_script >/dev/null && restart ;;
    *)
      if [[ $rem =~ $RE_FILE ]]; then
        eval "$rem"   # a shell command on a file, run as given (as root)
      elif [[ $rem =~ $RE_SQL ]]; then
        sqltext=$rem
        if [ "$id" = sensitive_column_plaintext ]; then
          sql "SELECT tradeguard.create_key('sa_clients')" >/dev/null || return 1
          sqltext=${sqltext//<key name>/sa_clients}
        fi
        [ "$id" = role_md5_password ] && sqltext=${sqltext//<new password>/$APP_PASS}
        [[ $sqltext == *'<'[a-z]* ]] && return 1   # a placeholder left to fill
        printf 'SET client_min_messages = warning;\n%s\n' "$sqltext" | sql_script >/dev/null || return 1
        case $id in
          log_file_permissions) chmod 0600 "$DATA"/log/* ;;   # "-- and chmod 0600 the existing log files"
        esac
        [[ $sqltext == *pg_reload_conf* ]] && sleep 0.3
        return 0
      else
        return 1
      fi ;;
  esac
}
# fix <check_id> <object>: the finding's remediation, applied, makes it go away.
fix() {
  local id=$1 obj=$2 rem
  rem=$(remediation_of "$id" "$obj")
  if [ -z "$rem" ]; then not_ok "$id [$obj]: no finding to fix"; return; fi
  echo "#   $id [$obj]: $rem"
  if ! apply "$id" "$obj" "$rem"; then not_ok "$id [$obj]: remediation could not be applied"; return; fi
  check "fixed: $id [$obj] gone after its remediation" gone "$id" "$obj"
}
fix_all() { # every current finding of the check
  local obj objs
  objs=$(objects_of "$1")
  [ -n "$objs" ] || { not_ok "$1: no finding to fix"; return; }
  while IFS= read -r obj; do fix "$1" "$obj"; done <<<"$objs"
}
tls_login() { # $1 = host: a TLS login as sa_app; prints "t" when the session uses TLS
  PGPASSWORD=$APP_PASS PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -w -qtA \
    "host=$1 port=$PORT dbname=$DB user=sa_app sslmode=require" \
    -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1
}
plain_login() { # $1 = host: a login without TLS as sa_app
  PGPASSWORD=$APP_PASS PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -w -qtA \
    "host=$1 port=$PORT dbname=$DB user=sa_app sslmode=disable" -c "SELECT 1" 2>&1
}

# --- Phase 1: files first (the root key must be private before anything encrypts) -------------
fix root_key_file_permissions "$KEY"
check "root key file is 0600 postgres" [ "$(stat -c '%a %U' "$KEY")" = "600 postgres" ]
check "with the root key private, every check runs (no check_failed)" \
  [ "$(sql "SELECT count(*) FROM tradeguard.findings WHERE check_id = 'check_failed'")" = 0 ]
fix data_directory_permissions "$DATA"
fix_all config_file_permissions
check "configuration files are no longer group-writable" [ "$(stat -c '%a' "$DATA/postgresql.conf" "$HBA" | sort -u)" = 644 ]

# pg_hba.conf, one line at a time (each remediation is the whole new line).
fix_all hba_trust
fix_all hba_weak_password_method
fix_all hba_open_to_world
check "pg_hba.conf parses after the edits" \
  [ "$(sql "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")" = 0 ]

# Settings: the remediations are ALTER SYSTEM statements, run as written.
fix password_encryption_md5 password_encryption
fix fsync_off fsync
fix full_page_writes_off full_page_writes
fix_all log_settings_weak
fix log_file_permissions log_file_mode
check "existing log files are 0600" [ "$(stat -c '%a' "$DATA"/log/* | sort -u)" = 600 ]
fix ssl_weak_protocol ssl_min_protocol_version
fix ssl_weak_ciphers ssl_ciphers

# Roles, privileges, encryption, audit: SQL remediations run as written.
fix superuser_login_role sa_app
fix superuser_login_role sa_member
fix role_md5_password sa_app
check "sa_app logs in over TCP with its new scram password" \
  [ "$(PGPASSWORD=$APP_PASS PGPASSFILE=/dev/null PGSSLMODE=disable "$PG_BIN/psql" -X -w -qtA -h 127.0.0.1 -p "$PORT" -U sa_app -d "$DB" -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user" 2>&1)" = f ]
fix public_schema_create public
fix secdef_without_search_path "public.sa_definer()"
fix secdef_executable_by_public "public.sa_definer()"
fix sensitive_column_plaintext public.sa_clients.api_key
check "api_key is stored encrypted (tg1:...), the decrypted view gives the plaintext back" \
  [ "$(sql "SELECT (SELECT count(*) FROM public.sa_clients WHERE api_key LIKE 'tg1:%') = 2
                   AND (SELECT string_agg(api_key, ',' ORDER BY id) FROM public.sa_clients_decrypted) = 'ak_live_1,ak_live_2'")" = t ]
fix table_not_audited public.sa_clients

# --- Phase 2: TLS on (the ssl_disabled remediation), then what only shows with it -------------
fix ssl_disabled ssl
check "a TLS session works on 127.0.0.1 (root-owned 0640 key accepted by PostgreSQL)" [ "$(tls_login 127.0.0.1)" = t ]
expect ssl_cert_expiring "$TLS/server.crt" "valid for 10 days"
expect ssl_key_file_permissions "$TLS/server.key" "root:postgres 0640"
check "no ssl_cert_self_signed finding (CA-signed)" \
  [ "$(sql "SELECT count(*) FROM tradeguard.findings WHERE check_id = 'ssl_cert_self_signed'")" = 0 ]
fix ssl_key_file_permissions "$TLS/server.key"
check "key file is 0600 postgres" [ "$(stat -c '%a %U' "$TLS/server.key")" = "600 postgres" ]
fix ssl_cert_expiring "$TLS/server.crt"
check "ssl_status shows the renewed certificate" \
  [ "$(sql "SELECT ssl AND days_left >= 390 FROM tradeguard.ssl_status")" = t ]
check "TLS still works after the key and certificate fixes" [ "$(tls_login 127.0.0.1)" = t ]

# Listening everywhere, with a remote session without TLS on the way.
sql_script >/dev/null <<<"ALTER SYSTEM SET listen_addresses = '*';"
restart || not_ok "restart with listen_addresses = '*'"
expect listen_all_addresses listen_addresses "'*'"
if [ -n "$APP_IP" ]; then
  PGPASSWORD=$APP_PASS PGPASSFILE=/dev/null "$PG_BIN/psql" -X -w -qtA \
    "host=$APP_IP port=$PORT dbname=$DB user=sa_app sslmode=disable application_name=sa_plain" \
    -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
  BG_PID=$!
  for _ in $(seq 1 30); do
    [ "$(sql "SELECT count(*) FROM tradeguard.ssl_sessions WHERE application_name = 'sa_plain'")" = 1 ] && break
    sleep 0.2
  done
  expect session_without_ssl "sa_app@$DB from $APP_IP" "remote psql with sslmode=disable"
fi
fix_all hba_host_without_ssl
if [ -n "$APP_IP" ]; then
  check "the plain session is still there until it is ended" has_finding session_without_ssl "sa_app@$DB from $APP_IP"
  fix session_without_ssl "sa_app@$DB from $APP_IP"
  wait "$BG_PID" 2>/dev/null; BG_PID=
  check "a new login without TLS from $APP_IP is refused" grep -q "no pg_hba.conf entry" <<<"$(plain_login "$APP_IP")"
  check "a TLS login from $APP_IP works" [ "$(tls_login "$APP_IP")" = t ]
fi
fix listen_all_addresses listen_addresses
check "listen_addresses is no longer '*'" [ "$(sql "SHOW listen_addresses")" != '*' ]

# --- Phase 3: a weak, self-signed certificate and a broken pg_hba.conf line ------------------
cp -p "$TLS/server.crt" "$TLS/good.crt"
cp -p "$TLS/server.key" "$TLS/good.key"
( umask 077
  openssl req -new -x509 -days 365 -nodes -newkey rsa:1024 -sha1 -subj "/O=tradeguard test/CN=localhost" \
    -keyout "$TLS/weak.key" -out "$TLS/weak.crt" 2>/dev/null ) || not_ok "weak certificate material"
cat "$TLS/weak.crt" > "$TLS/server.crt"
cat "$TLS/weak.key" > "$TLS/server.key"
reload
expect ssl_cert_weak_key "$TLS/server.crt" "RSA 1024, SHA-1, self-signed"
expect ssl_cert_self_signed "$TLS/server.crt"
# Remediation: "Issue a new certificate (RSA 3072 or ECDSA P-256, SHA-256 signature) at ...", and
# have it signed by the CA: put the CA-signed ECDSA certificate back.
cat "$TLS/good.crt" > "$TLS/server.crt"
cat "$TLS/good.key" > "$TLS/server.key"
rm -f "$TLS/good.crt" "$TLS/good.key" "$TLS/weak.crt" "$TLS/weak.key"
reload
check "fixed: ssl_cert_weak_key gone" gone ssl_cert_weak_key "$TLS/server.crt"
check "fixed: ssl_cert_self_signed gone" gone ssl_cert_self_signed "$TLS/server.crt"
check "TLS works with the CA-signed certificate again" [ "$(tls_login 127.0.0.1)" = t ]

# A line PostgreSQL cannot parse: the reload keeps the old rules, the check reports the line.
cp -p "$HBA" "$HBA.bak"
echo "host all all 10.0.0.0/99 scram-sha-256" >>"$HBA"
reload
bad_line=$(wc -l <"$HBA")
expect pg_hba_errors "pg_hba.conf line $bad_line" "invalid CIDR mask"
check "the remediation names the line and the error" grep -q "Fix pg_hba.conf line $bad_line" <<<"$(remediation_of pg_hba_errors "pg_hba.conf line $bad_line")"
cat "$HBA.bak" >"$HBA" && rm -f "$HBA.bak"
reload
check "fixed: pg_hba_errors gone" gone pg_hba_errors "pg_hba.conf line $bad_line"

# --- The hardened cluster ---------------------------------------------------------------------
echo "# findings left on the hardened cluster:"
sql "SELECT '#   ' || level || ' ' || check_id || ' [' || object || ']' FROM tradeguard.findings"
score=$(sql "SELECT score FROM tradeguard.security_score() WHERE category = 'total'")
check "hardened: total score >= 90 ($score)" [ "${score:-0}" -ge 90 ]
check "hardened: no critical or high finding" \
  [ "$(sql "SELECT count(*) FROM tradeguard.findings WHERE level IN ('critical', 'high')")" = 0 ]
check "hardened: no check failed, pg_hba.conf has no errors" \
  [ "$(sql "SELECT count(*) FROM tradeguard.findings WHERE check_id IN ('check_failed', 'pg_hba_errors')")" = 0 ]
run_hard=$(sql "SELECT tradeguard.run_audit('full')")
fixed_ids="root_key_file_permissions,data_directory_permissions,config_file_permissions,hba_trust,hba_weak_password_method,hba_open_to_world,hba_host_without_ssl,ssl_disabled,ssl_weak_protocol,ssl_weak_ciphers,log_settings_weak,log_file_permissions,password_encryption_md5,fsync_off,full_page_writes_off,superuser_login_role,role_md5_password,public_schema_create,secdef_without_search_path,secdef_executable_by_public,sensitive_column_plaintext,table_not_audited"
check "audit_diff(weak run, hardened run): every check fixed above is resolved, nothing critical/high is new" \
  [ "$(sql "SELECT string_to_array('$fixed_ids', ',') <@ coalesce(array_agg(check_id) FILTER (WHERE change = 'resolved'), '{}')
                   AND count(*) FILTER (WHERE change = 'new' AND level IN ('critical', 'high')) = 0
              FROM tradeguard.audit_diff($run_weak, $run_hard)")" = t ]

echo
echo "# $((SECONDS - T0)) s"
if [ "$fails" -gt 0 ]; then
  echo "$fails check(s) failed; server log: $(server_log)"
  tail -n 20 "$(server_log)"
  exit 1
fi
echo "all selfaudit_weak checks passed"
