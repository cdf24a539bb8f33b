#!/usr/bin/env bash
# Self-audit benchmark (issue 6): a full run of tradeguard's checks (`SELECT count(*) FROM
# tradeguard.findings`) on a database with 1,000 tables, 5,000 columns and 50 roles, next to a
# pgdsat-style shell run: one `psql -c` process per check, issuing equivalent catalog queries.
# Prints a markdown table and writes bench/out/selfaudit.md (raw runs in bench/out/selfaudit.raw).
#
# Settings (environment):
#   TG_PORT            server port (default 5499; socket in /tmp, superuser postgres)
#   TG_BENCH_SA_DB     scratch database, dropped and recreated (default tg_bench_sa)
#   TG_BENCH_SA_TABLES tables (default 1000; 5 columns each)
#   TG_BENCH_SA_ROLES  roles (default 50; named tg_bench_sa_rNN, dropped at the end)
#   TG_BENCH_REPS      timed repetitions, the median is kept (default 3)
#   TG_BENCH_TG_SQL    workaround only: install tradeguard from this SQL file (see README)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME=selfaudit
DB=${TG_BENCH_SA_DB:-tg_bench_sa}
NTAB=${TG_BENCH_SA_TABLES:-1000}
NROLES=${TG_BENCH_SA_ROLES:-50}
REPS=${TG_BENCH_REPS:-3}
RPFX=tg_bench_sa_r

cluster_up || bdie "no PostgreSQL server answers on port $TG_PORT (start it with: make demo)"
mkdir -p "$BENCH_OUT"
t_start=$(date +%s)
RAW=$(mktemp)

le() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a != "NaN" && a != "" && a + 0 < b + 0) ? "yes" : "no") }'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# The 50 roles are cluster-wide: always drop them at the end (their grants live in $DB).
drop_roles() {
  local sql="" i
  for ((i = 1; i <= NROLES; i++)); do sql+="DROP ROLE IF EXISTS $RPFX$(printf '%02d' "$i");"; done
  if bval postgres "SELECT 1 FROM pg_database WHERE datname = '$DB'" 2>/dev/null | grep -q 1; then
    local owned=""
    for ((i = 1; i <= NROLES; i++)); do owned+="${owned:+, }$RPFX$(printf '%02d' "$i")"; done
    # Only the roles that exist (DROP OWNED BY fails on a missing role).
    local existing
    existing=$(bval postgres "SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE rolname LIKE '${RPFX}%'" 2>/dev/null || true)
    [ -n "$existing" ] && bpsql "$DB" -c "SET client_min_messages = warning" -c "DROP OWNED BY $existing" >/dev/null 2>&1 || true
  fi
  bpsql postgres -c "SET client_min_messages = warning" -c "$sql" >/dev/null 2>&1 || blog "WARNING: could not drop every $RPFX* role"
}
cleanup() { rm -f "$RAW"; drop_roles; }
trap cleanup EXIT

# ------------------------------------------------------------------ setup
blog "selfaudit: (re)creating database $DB with $NTAB tables, $((NTAB * 5)) columns and $NROLES roles"
INSTALL_NOTE=""
drop_roles
TG_BENCH_DB=$DB fresh_bench_db
install_tg "$DB"
VERSION=$(tg_version "$DB")
case $VERSION in *"release build"*) ;; *) blog "WARNING: the server runs a non-release tradeguard build: $VERSION" ;; esac

{
  echo "SET client_min_messages = warning;"
  echo "CREATE SCHEMA app;"
  echo "CREATE SCHEMA reporting;"
  # 1,000 tables of 5 columns: an id and four business columns; every 50th table has a
  # secret-looking column (api_key) for the plaintext check.
  echo "DO \$\$ BEGIN FOR i IN 1..$NTAB LOOP
    EXECUTE format('CREATE TABLE %I.%I (id bigserial PRIMARY KEY, account text, symbol text, amount numeric(18,4), %I text)',
                   CASE WHEN i % 4 = 0 THEN 'reporting' ELSE 'app' END, 't' || lpad(i::text, 4, '0'),
                   CASE WHEN i % 50 = 0 THEN 'api_key' ELSE 'note' END);
  END LOOP; END \$\$;"
  # 50 roles: 10 readers, 20 application logins, 10 group roles, 10 misc (some md5 passwords,
  # a CREATEROLE, a BYPASSRLS), with grants on schemas and tables and memberships.
  for ((i = 1; i <= NROLES; i++)); do
    r=$RPFX$(printf '%02d' "$i")
    if ((i <= 10)); then
      echo "CREATE ROLE $r LOGIN PASSWORD 'bench-$i';"
      echo "GRANT USAGE ON SCHEMA app, reporting TO $r;"
      echo "GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO $r;"
    elif ((i <= 30)); then
      echo "CREATE ROLE $r LOGIN PASSWORD 'bench-$i' CONNECTION LIMIT 20;"
      echo "GRANT USAGE ON SCHEMA app TO $r;"
      echo "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA app TO $r;"
    elif ((i <= 40)); then
      echo "CREATE ROLE $r NOLOGIN;"
      echo "GRANT $RPFX$(printf '%02d' $((i - 30))) TO $r;"
      echo "GRANT $r TO $RPFX$(printf '%02d' $((i - 20)));"
    else
      case $i in
        41 | 42) echo "CREATE ROLE $r LOGIN PASSWORD 'md5$(printf '%s' "bench-$i$r" | md5sum | cut -c1-32)';" ;;
        43) echo "CREATE ROLE $r LOGIN CREATEROLE PASSWORD 'bench-$i';" ;;
        44) echo "CREATE ROLE $r LOGIN BYPASSRLS PASSWORD 'bench-$i';" ;;
        45) echo "CREATE ROLE $r LOGIN PASSWORD 'bench-$i'; GRANT pg_read_server_files TO $r;" ;;
        *) echo "CREATE ROLE $r LOGIN PASSWORD 'bench-$i' VALID UNTIL '2030-01-01';" ;;
      esac
      echo "GRANT USAGE ON SCHEMA reporting TO $r;"
      echo "GRANT SELECT ON reporting.t$(printf '%04d' $((i * 4))) TO $r;"
    fi
  done
  echo "GRANT SELECT ON app.t0001, app.t0002 TO PUBLIC;"
  echo "CREATE FUNCTION app.secdef_no_path() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';"
  echo "CREATE FUNCTION public.bench_sa_ms(q text) RETURNS float8 LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS \$f\$
    DECLARE t0 timestamptz := clock_timestamp(); BEGIN EXECUTE q; RETURN 1000 * extract(epoch FROM clock_timestamp() - t0); END \$f\$;"
  echo "ANALYZE;"
} | bpsql "$DB" >/dev/null || bdie "creating the tables and roles failed"

read -r ntables ncols nroles < <(bval "$DB" "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname IN ('app', 'reporting')),
  (SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname IN ('app', 'reporting') AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT count(*) FROM pg_roles WHERE rolname LIKE '${RPFX}%')" | tr '|' ' ')
allroles=$(bval "$DB" "SELECT count(*) FROM pg_roles")

# ------------------------------------------------------------------ pgdsat-style queries
# Roughly one catalog query per pgdsat/CIS check, each run by its own psql process.
PGDSAT_QUERIES=$(cat <<'Q'
SELECT version();
SHOW data_checksums;
SELECT setting FROM pg_settings WHERE name = 'data_directory';
SELECT name, setting FROM pg_settings WHERE name IN ('log_destination', 'logging_collector');
SELECT name, setting FROM pg_settings WHERE name IN ('log_directory', 'log_filename');
SELECT setting FROM pg_settings WHERE name = 'log_file_mode';
SELECT name, setting FROM pg_settings WHERE name IN ('log_truncate_on_rotation', 'log_rotation_age', 'log_rotation_size');
SELECT name, setting FROM pg_settings WHERE name IN ('syslog_facility', 'syslog_ident', 'syslog_sequence_numbers', 'syslog_split_messages');
SELECT name, setting FROM pg_settings WHERE name IN ('log_min_messages', 'log_min_error_statement', 'client_min_messages');
SELECT name, setting FROM pg_settings WHERE name LIKE 'debug_print%' OR name = 'debug_pretty_print';
SELECT name, setting FROM pg_settings WHERE name IN ('log_connections', 'log_disconnections');
SELECT name, setting FROM pg_settings WHERE name IN ('log_error_verbosity', 'log_hostname', 'log_line_prefix');
SELECT name, setting FROM pg_settings WHERE name IN ('log_statement', 'log_timezone');
SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries';
SELECT rolname FROM pg_roles WHERE rolsuper AND rolcanlogin;
SELECT rolname FROM pg_roles WHERE rolcreaterole OR rolcreatedb;
SELECT rolname FROM pg_roles WHERE rolbypassrls;
SELECT rolname FROM pg_roles WHERE rolreplication AND rolname <> 'postgres';
SELECT rolname, rolvaliduntil FROM pg_roles WHERE rolcanlogin AND rolvaliduntil IS NULL;
SELECT rolname FROM pg_authid WHERE rolpassword LIKE 'md5%';
SELECT rolname, rolconnlimit FROM pg_roles WHERE rolcanlogin AND rolconnlimit = -1;
SELECT r.rolname, m.rolname FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE r.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program', 'pg_read_all_data', 'pg_write_all_data', 'pg_signal_backend');
SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema');
SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prosecdef AND (p.proconfig IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%'));
SELECT p.proname FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE p.prosecdef AND a.grantee = 0;
SELECT nspname FROM pg_namespace WHERE has_schema_privilege('public', oid, 'CREATE');
SELECT n.nspname, c.relname, a.privilege_type FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a WHERE a.grantee = 0 AND c.relkind IN ('r', 'p', 'v') AND n.nspname NOT IN ('pg_catalog', 'information_schema');
SELECT r.rolname, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee WHERE a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE') AND c.relkind = 'r';
SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT c.relrowsecurity;
SELECT n.nspname, c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND a.attnum > 0 AND a.attname ~* '(password|secret|token|api_key|card|iban)';
SELECT defaclrole::regrole, defaclobjtype, defaclacl FROM pg_default_acl;
SELECT extname, extversion FROM pg_extension;
SELECT lanname, lanpltrusted FROM pg_language WHERE lanpltrusted = false AND lanname NOT IN ('internal', 'c');
SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules WHERE auth_method = 'trust';
SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules WHERE auth_method IN ('md5', 'password');
SELECT type, database, user_name, address FROM pg_hba_file_rules WHERE type = 'host' AND address NOT IN ('127.0.0.1', '::1');
SELECT line_number, address, netmask FROM pg_hba_file_rules WHERE address IN ('0.0.0.0', '::', 'all') OR netmask IN ('0.0.0.0', '::');
SELECT setting FROM pg_settings WHERE name = 'listen_addresses';
SELECT name, setting FROM pg_settings WHERE name IN ('ssl', 'ssl_min_protocol_version', 'ssl_ciphers', 'ssl_cert_file', 'ssl_key_file');
SELECT setting FROM pg_settings WHERE name = 'password_encryption';
SELECT a.usename, a.client_addr, s.ssl, s.version FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.client_addr IS NOT NULL;
SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'wal_level', 'archive_mode', 'archive_command');
SELECT name, setting FROM pg_settings WHERE name IN ('statement_timeout', 'idle_session_timeout', 'idle_in_transaction_session_timeout');
SELECT name, setting FROM pg_settings WHERE name IN ('log_replication_commands', 'max_wal_senders', 'wal_log_hints');
SELECT name, setting, source FROM pg_settings WHERE source NOT IN ('default', 'override');
Q
)
nq=$(grep -c . <<<"$PGDSAT_QUERIES")
# The loop runs as postgres inside one shell (no runuser per check), one psql process per query,
# like pgdsat's checks; queries come on the shell's stdin, psql's stdin is /dev/null.
LOOP='while IFS= read -r q; do
  [ -n "$q" ] || continue
  "$1"/psql -X -q -At -h /tmp -p "$2" -d "$3" -c "$q" </dev/null >/dev/null || echo "failed: $q" >&2
done'
pgdsat_run() { as_postgres bash -c "$LOOP" pgdsat "$PG_BIN" "$TG_PORT" "$DB" <<<"$PGDSAT_QUERIES"; }
# tradeguard from the shell: one psql process running the full self-audit.
tg_shell_run() { as_postgres "$PG_BIN/psql" -X -q -At -h /tmp -p "$TG_PORT" -d "$DB" -c "SELECT count(*) FROM tradeguard.findings" </dev/null >/dev/null; }
# The same queries in one psql session (no process or connection per check).
pgdsat_one_session() { as_postgres "$PG_BIN/psql" -X -q -At -h /tmp -p "$TG_PORT" -d "$DB" <<<"$PGDSAT_QUERIES" >/dev/null; }

errs=$(pgdsat_run 2>&1 >/dev/null || true)
[ -z "$errs" ] || blog "WARNING: some pgdsat-style queries failed: $errs"
findings=$(bval "$DB" "SELECT count(*) FROM tradeguard.findings")
by_check=$(bval "$DB" "SELECT string_agg(check_id || ' ' || n, ', ' ORDER BY n DESC, check_id) FROM (SELECT check_id, count(*) n FROM tradeguard.findings GROUP BY 1) s")
nchecks=$(bval "$DB" "SELECT count(*) FROM tradeguard_audit.check_catalog" 2>/dev/null || echo "?")

# ------------------------------------------------------------------ timing
blog "selfaudit: timing, warm-up + $REPS runs each ($nq pgdsat-style queries)"
for ((r = 0; r <= REPS; r++)); do
  ms=$(bval "$DB" "SELECT bench_sa_ms('SELECT count(*) FROM tradeguard.findings')")
  echo "findings_server|$r|$ms" >>"$RAW"
  ms=$(bval "$DB" "SELECT bench_sa_ms('SELECT tradeguard.run_audit(''full'')')")
  echo "run_audit_server|$r|$ms" >>"$RAW"
  t0=$(now_ms); tg_shell_run; t1=$(now_ms)
  echo "findings_psql|$r|$((t1 - t0))" >>"$RAW"
  t0=$(now_ms); pgdsat_run 2>/dev/null; t1=$(now_ms)
  echo "pgdsat_loop|$r|$((t1 - t0))" >>"$RAW"
  t0=$(now_ms); pgdsat_one_session; t1=$(now_ms)
  echo "pgdsat_session|$r|$((t1 - t0))" >>"$RAW"
done
median_of() { awk -F'|' -v l="$1" '$1 == l && $2 > 0 { print $3 }' "$RAW" | median; }
f_srv=$(median_of findings_server) ra_srv=$(median_of run_audit_server) f_psql=$(median_of findings_psql)
p_loop=$(median_of pgdsat_loop) p_sess=$(median_of pgdsat_session)

# ------------------------------------------------------------------ table
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
row "full self-audit: \`SELECT count(*) FROM tradeguard.findings\` ($findings findings), timed in the server" "$(fmt "$f_srv" 1) ms" "—" "—" "< 100 ms" "$(le "$f_srv" 100)"
row "the same from the shell: one \`psql -c\` process (start, connect, query, exit)" "$(fmt "$f_psql" 0) ms" "pgdsat-style loop, $nq \`psql -c\` processes: $(fmt "$p_loop" 0) ms" "$(fmt "$(calc "$p_loop / $f_psql")" 1)" "—" "—"
row "informative: the pgdsat-style queries in one psql session" "—" "$(fmt "$p_sess" 0) ms" "$(fmt "$(calc "$p_sess / $f_psql")" 1)" "—" "—"
row "informative: \`tradeguard.run_audit('full')\` (computes and stores a run), timed in the server" "$(fmt "$ra_srv" 1) ms" "—" "—" "—" "—"

cp "$RAW" "$BENCH_OUT/$NAME.raw"
elapsed=$(( $(date +%s) - t_start ))
out=$BENCH_OUT/$NAME.md
{
  echo "### Self-audit (bench/selfaudit.sh)"
  echo
  echo "tradeguard: $VERSION.$INSTALL_NOTE Database: $ntables tables with $ncols columns in 2 schemas,"
  echo "$nroles benchmark roles ($allroles roles in the cluster) with schema and table grants, memberships, 2 md5"
  echo "passwords, a CREATEROLE, a BYPASSRLS, a pg_read_server_files member, PUBLIC grants and a SECURITY DEFINER"
  echo "function without search_path. tradeguard runs its $nchecks checks; the pgdsat-style run issues $nq"
  echo "catalog queries like pgdsat's checks (settings, roles, hba rules, privileges, SECURITY DEFINER functions,"
  echo "sensitive column names, TLS sessions), one \`psql -c\` process each, as the postgres OS user over the"
  echo "Unix socket; it does not judge the results, tradeguard does. Medians of $REPS runs after a warm-up."
  echo "Ratio: pgdsat-style time / tradeguard time (both from the shell)."
  echo
  echo "| measure | tradeguard | anchor | ratio | target | met |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Findings by check: $by_check."
  echo "Raw runs (ms): bench/out/$NAME.raw. The $nroles roles are dropped at the end. Elapsed: ${elapsed}s."
} >"$out"
cat "$out"
