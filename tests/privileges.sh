#!/usr/bin/env bash
# Least-privilege matrix: for PUBLIC (a fresh role with no memberships), the demo roles
# daytrading_readonly and daytrading_prod, and each tradeguard role, every schema, function,
# table, view and sequence of tradeguard and tradeguard_audit (plus a <table>_decrypted view
# made by encrypt_column) with the privileges the role holds on it (directly, through PUBLIC or
# through inherited memberships). The sorted matrix is compared with tests/privileges.expected
# (checked in): any difference is printed as a unified diff and fails the test.
#   TG_UPDATE_EXPECTED=1 bash tests/privileges.sh   rewrites tests/privileges.expected
#                                                   and the README table between the markers.
# Cells: schema U=USAGE C=CREATE; function X=EXECUTE; table/view r=SELECT a=INSERT w=UPDATE
# d=DELETE D=TRUNCATE; sequence U=USAGE r=SELECT w=UPDATE; '-' = nothing.
# Runs on a throwaway cluster in $TG_TEST_DIR/privs (port 54344); prints ok/not ok, exits 1 on failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh

EXPECTED=tests/privileges.expected
README=README.md
mkdir -p "$TG_TEST_DIR"
chmod 755 "$TG_TEST_DIR"
e2e_cluster privs 54344 "tradeguard.database_name = 'privs'" || { echo "not ok - cluster starts"; exit 1; }
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" privs || { echo "not ok - create database"; exit 1; }

# The demo's roles, as scripts/demo.sh makes them (without passwords), and a probe for PUBLIC.
q privs -v ON_ERROR_STOP=1 <<'SQL' >/dev/null || { echo "not ok - install tradeguard and roles"; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION tradeguard;
DROP ROLE IF EXISTS tg_probe_public;
CREATE ROLE tg_probe_public LOGIN;
CREATE ROLE daytrading_prod LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE daytrading_readonly LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE daytrading_readonly SET default_transaction_read_only = on;
GRANT tradeguard_encryptor, tradeguard_decryptor, tradeguard_table_owner TO daytrading_prod;
GRANT tradeguard_auditor TO daytrading_readonly;
-- One encrypted column, for the GRANT on the <table>_decrypted view encrypt_column makes.
CREATE TABLE public.priv_demo (id bigint PRIMARY KEY, secret text);
SELECT tradeguard.create_key('priv_demo');
SELECT tradeguard.encrypt_column('public.priv_demo', 'secret', 'priv_demo');
SQL
ok "cluster, tradeguard, demo roles and an encrypted column"

# Object list and the privilege of each role on each object, in temp tables of one session.
SETUP_SQL=$(cat <<'SQL'
SET client_min_messages = warning;
SET search_path = pg_catalog;
CREATE TEMP TABLE roles (ord int, label text, rname name);
INSERT INTO roles VALUES
  (1, 'PUBLIC', 'tg_probe_public'), (2, 'daytrading_readonly', 'daytrading_readonly'),
  (3, 'daytrading_prod', 'daytrading_prod'), (4, 'tradeguard_admin', 'tradeguard_admin'),
  (5, 'tradeguard_encryptor', 'tradeguard_encryptor'), (6, 'tradeguard_decryptor', 'tradeguard_decryptor'),
  (7, 'tradeguard_auditor', 'tradeguard_auditor'), (8, 'tradeguard_table_owner', 'tradeguard_table_owner');
CREATE TEMP TABLE objs AS
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'tradeguard'),
     members AS (SELECT d.classid, d.objid FROM pg_depend d, ext
                  WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
     nsp AS (SELECT oid FROM pg_namespace WHERE nspname IN ('tradeguard', 'tradeguard_audit'))
SELECT 'schema'::text AS kind, n.nspname::text AS obj, n.nspname::text AS schema, n.nspname::text AS name, n.oid, 'n'::text AS t
  FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM nsp)
UNION ALL
SELECT CASE WHEN p.prorettype = 'trigger'::regtype THEN 'trigger-function'
            WHEN p.prosecdef THEN 'function-secdef' ELSE 'function' END,
       p.oid::regprocedure::text, p.pronamespace::regnamespace::text, p.proname::text, p.oid, 'f'
  FROM pg_proc p
 WHERE p.pronamespace IN (SELECT oid FROM nsp)
    OR p.oid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass)
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'matview' WHEN 'S' THEN 'sequence' ELSE 'table' END,
       c.oid::regclass::text, c.relnamespace::regnamespace::text, c.relname::text, c.oid,
       CASE c.relkind WHEN 'S' THEN 'S' ELSE 'r' END
  FROM pg_class c
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
   AND (c.relnamespace IN (SELECT oid FROM nsp)
        OR c.oid IN (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
        OR c.oid = 'public.priv_demo_decrypted'::regclass);
CREATE TEMP TABLE cells AS
SELECT o.kind, o.obj, o.schema, o.name, r.ord, r.label,
       coalesce(nullif(CASE o.t
         WHEN 'n' THEN concat(CASE WHEN has_schema_privilege(r.rname, o.oid, 'USAGE') THEN 'U' END,
                              CASE WHEN has_schema_privilege(r.rname, o.oid, 'CREATE') THEN 'C' END)
         WHEN 'f' THEN CASE WHEN has_function_privilege(r.rname, o.oid, 'EXECUTE') THEN 'X' END
         WHEN 'S' THEN concat(CASE WHEN has_sequence_privilege(r.rname, o.oid, 'USAGE') THEN 'U' END,
                              CASE WHEN has_sequence_privilege(r.rname, o.oid, 'SELECT') THEN 'r' END,
                              CASE WHEN has_sequence_privilege(r.rname, o.oid, 'UPDATE') THEN 'w' END)
         ELSE concat(CASE WHEN has_table_privilege(r.rname, o.oid, 'SELECT') THEN 'r' END,
                     CASE WHEN has_table_privilege(r.rname, o.oid, 'INSERT') THEN 'a' END,
                     CASE WHEN has_table_privilege(r.rname, o.oid, 'UPDATE') THEN 'w' END,
                     CASE WHEN has_table_privilege(r.rname, o.oid, 'DELETE') THEN 'd' END,
                     CASE WHEN has_table_privilege(r.rname, o.oid, 'TRUNCATE') THEN 'D' END)
       END, ''), '-') AS privs
  FROM objs o CROSS JOIN roles r;
SQL
)

MATRIX_SQL="SELECT obj || E'\t' || kind || E'\t' || string_agg(label || '=' || privs, E'\t' ORDER BY ord)
  FROM cells GROUP BY obj, kind;"

# README table: functions and views grouped by the set of tradeguard roles that may use them
# (tradeguard_admin is a member of the other four, so it appears in every non-empty set).
README_SQL=$(cat <<'SQL'
WITH per_obj AS (
  SELECT kind, obj, schema, name,
         bool_or(privs LIKE '%X%' OR privs LIKE '%r%') FILTER (WHERE label = 'tradeguard_encryptor') AS e,
         bool_or(privs LIKE '%X%' OR privs LIKE '%r%') FILTER (WHERE label = 'tradeguard_decryptor') AS d,
         bool_or(privs LIKE '%X%' OR privs LIKE '%r%') FILTER (WHERE label = 'tradeguard_auditor') AS a,
         bool_or(privs LIKE '%X%' OR privs LIKE '%r%') FILTER (WHERE label = 'tradeguard_table_owner') AS o,
         bool_or(privs LIKE '%X%' OR privs LIKE '%r%') FILTER (WHERE label = 'tradeguard_admin') AS adm,
         bool_or(privs LIKE '%X%' OR privs LIKE '%r%') FILTER (WHERE label = 'daytrading_prod') AS prod,
         bool_or(privs LIKE '%X%' OR privs LIKE '%r%') FILTER (WHERE label = 'daytrading_readonly') AS ro
    FROM cells WHERE kind IN ('function', 'function-secdef', 'trigger-function', 'view', 'table', 'matview')
   GROUP BY kind, obj, schema, name),
grouped AS (
  SELECT CASE WHEN e AND d AND a THEN 1 WHEN e AND d THEN 2 WHEN e AND a THEN 3 WHEN d AND a THEN 4
              WHEN e THEN 5 WHEN d THEN 6 WHEN a THEN 7 WHEN o THEN 8 WHEN adm THEN 9 ELSE 10 END AS g,
         concat_ws(', ', CASE WHEN prod THEN '`daytrading_prod`' END, CASE WHEN ro THEN '`daytrading_readonly`' END) AS demo,
         kind, schema, name, count(*) AS n
    FROM per_obj GROUP BY 1, 2, kind, schema, name),
cellsmd AS (
  SELECT g, demo,
         string_agg(CASE WHEN kind LIKE '%function' OR kind = 'function-secdef' THEN
                      '`' || CASE WHEN schema = 'tradeguard' THEN '' ELSE schema || '.' END || name || '`'
                      || CASE WHEN n > 1 THEN ' (' || n || ' overloads)' ELSE '' END END, ', ' ORDER BY schema, name) AS fns,
         string_agg(CASE WHEN kind IN ('view', 'table', 'matview') THEN
                      CASE WHEN schema = 'public' AND name = 'priv_demo_decrypted' THEN 'every `<table>_decrypted`'
                           ELSE '`' || CASE WHEN schema = 'tradeguard' THEN '' ELSE schema || '.' END || name || '`' END
                      END, ', ' ORDER BY schema, name) AS rels
    FROM grouped GROUP BY g, demo)
SELECT '| ' || CASE g WHEN 1 THEN '`tradeguard_encryptor`, `tradeguard_decryptor`, `tradeguard_auditor` (and `tradeguard_admin`)'
                      WHEN 2 THEN '`tradeguard_encryptor`, `tradeguard_decryptor` (and `tradeguard_admin`)'
                      WHEN 3 THEN '`tradeguard_encryptor`, `tradeguard_auditor` (and `tradeguard_admin`)'
                      WHEN 4 THEN '`tradeguard_decryptor`, `tradeguard_auditor` (and `tradeguard_admin`)'
                      WHEN 5 THEN '`tradeguard_encryptor` (and `tradeguard_admin`)'
                      WHEN 6 THEN '`tradeguard_decryptor` (and `tradeguard_admin`)'
                      WHEN 7 THEN '`tradeguard_auditor` (and `tradeguard_admin`)'
                      WHEN 8 THEN '`tradeguard_table_owner` (and `tradeguard_admin`): copied onto new partitions'
                      WHEN 9 THEN '`tradeguard_admin` only'
                      ELSE 'nobody but the extension owner' END
       || ' | ' || coalesce(nullif(demo, ''), '—')
       || ' | ' || coalesce(fns, '—') || ' | ' || coalesce(rels, '—') || ' |'
  FROM cellsmd ORDER BY g, demo;
SQL
)

workdir="$TG_TEST_DIR/privs"
actual="$workdir/privileges.actual"
{
  echo "# tradeguard least-privilege matrix (tests/privileges.sh; TG_UPDATE_EXPECTED=1 regenerates)"
  echo "# object	kind	role=privs ...  (schema U C; function X; table/view r a w d D; sequence U r w; - none)"
  q privs -v ON_ERROR_STOP=1 -c "$SETUP_SQL" -c "$MATRIX_SQL" | LC_ALL=C sort
} > "$actual"
rows=$(grep -vc '^#' "$actual")
check "matrix generated ($rows objects)" [ "$rows" -gt 50 ]

# Invariants that hold whatever the expected file says.
inv() { q privs -v ON_ERROR_STOP=1 -c "$SETUP_SQL" -c "$1"; }
list=$(awk -F'\t' '!/^#/ && $3 != "PUBLIC=-" {print "    " $1 " " $3}' "$actual")
if [ -z "$list" ]; then ok "PUBLIC (a role with no memberships) has no privilege on any object"
else not_ok "PUBLIC has privileges:"; echo "$list"; fi
list=$(inv "SELECT obj || ' ' || label || '=' || privs FROM cells WHERE obj = 'tradeguard_audit' AND privs <> '-' ORDER BY 1")
if [ -z "$list" ]; then ok "no role has USAGE or CREATE on schema tradeguard_audit"
else not_ok "roles with rights on schema tradeguard_audit:"; echo "$list" | sed 's/^/    /'; fi
list=$(inv "SELECT obj || ' ' || label || '=' || privs FROM cells WHERE kind = 'schema' AND privs LIKE '%C%' ORDER BY 1")
if [ -z "$list" ]; then ok "no role may CREATE in the tradeguard schemas"
else not_ok "CREATE granted:"; echo "$list" | sed 's/^/    /'; fi
list=$(inv "SELECT obj || ' ' || label || '=' || privs FROM cells WHERE kind IN ('table', 'view', 'matview', 'sequence')
               AND privs ~ '[awdDU]' ORDER BY 1")
if [ -z "$list" ]; then ok "no role may write (INSERT/UPDATE/DELETE/TRUNCATE, nextval) any tradeguard table, view or sequence"
else not_ok "write privileges granted:"; echo "$list" | sed 's/^/    /'; fi
list=$(inv "SELECT obj || ' ' || label FROM cells WHERE schema = 'tradeguard_audit' AND privs <> '-' ORDER BY 1")
if [ -z "$list" ]; then ok "internal helpers and protected tables in tradeguard_audit: owner only"
else not_ok "granted in tradeguard_audit:"; echo "$list" | sed 's/^/    /'; fi
# Trigger functions: only those copied onto new partitions, and only for tradeguard_table_owner
# (and the roles that inherit it).
list=$(inv "SELECT obj || ' ' || label FROM cells WHERE kind = 'trigger-function' AND privs <> '-'
               AND NOT (name IN ('audit_trigger', 'encrypt_trigger', 'guard_trigger')
                        AND label IN ('tradeguard_table_owner', 'tradeguard_admin', 'daytrading_prod')) ORDER BY 1")
if [ -z "$list" ]; then ok "trigger functions are executable by nobody but the owner and tradeguard_table_owner (audit, encrypt, guard)"
else not_ok "trigger functions executable:"; echo "$list" | sed 's/^/    /'; fi

readme_table() {
  echo "| roles (\`EXECUTE\` / \`SELECT\`) | demo roles that inherit it | functions | views and tables |"
  echo "|---|---|---|---|"
  q privs -v ON_ERROR_STOP=1 -c "$SETUP_SQL" -c "$README_SQL"
}

if [ "${TG_UPDATE_EXPECTED:-0}" = 1 ]; then
  cp "$actual" "$EXPECTED"
  ok "rewrote $EXPECTED"
  table=$(readme_table) || { not_ok "README table generated"; table=; }
  if [ -n "$table" ] && grep -q '<!-- privileges:begin -->' "$README" && grep -q '<!-- privileges:end -->' "$README"; then
    TABLE="$table" python3 - "$README" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
new = "<!-- privileges:begin -->\n<!-- generated by tests/privileges.sh (TG_UPDATE_EXPECTED=1); do not edit -->\n" \
      + os.environ["TABLE"].rstrip("\n") + "\n<!-- privileges:end -->"
text = re.sub(r"<!-- privileges:begin -->.*?<!-- privileges:end -->", lambda m: new, text, flags=re.S)
open(path, "w", encoding="utf-8").write(text)
PY
    ok "rewrote the README table between <!-- privileges:begin --> and <!-- privileges:end -->"
  else
    not_ok "README.md has the <!-- privileges:begin/end --> markers"
  fi
elif [ ! -f "$EXPECTED" ]; then
  not_ok "$EXPECTED exists (TG_UPDATE_EXPECTED=1 bash tests/privileges.sh creates it)"
elif diff -u "$EXPECTED" "$actual"; then
  ok "privilege matrix matches $EXPECTED"
else
  not_ok "privilege matrix differs from $EXPECTED (diff above; intended? TG_UPDATE_EXPECTED=1 rewrites it)"
fi

# The README table must be the one this matrix generates.
if [ "${TG_UPDATE_EXPECTED:-0}" != 1 ] && [ -f "$EXPECTED" ]; then
  cur=$(sed -n '/<!-- privileges:begin -->/,/<!-- privileges:end -->/p' "$README" | grep '^|')
  gen=$(readme_table)
  if [ "$cur" = "$gen" ]; then ok "README privileges table is up to date"
  else not_ok "README privileges table is stale (TG_UPDATE_EXPECTED=1 rewrites it)"
       diff -u <(echo "$cur") <(echo "$gen") | head -20; fi
fi

echo
if [ "$fails" -gt 0 ]; then echo "$fails privilege check(s) failed"; exit 1; fi
echo "all privilege checks passed"
