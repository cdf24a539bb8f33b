#!/usr/bin/env bash
# Upgrade test: for every archived release with an upgrade script, install that release,
# ALTER EXTENSION tradeguard UPDATE, and compare the catalog with a fresh install.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

shopt -s nullglob
upgrades=(sql/tradeguard--*--*.sql)
if [ ${#upgrades[@]} -eq 0 ]; then
  echo "ok - no earlier release to upgrade from (0.1.0 is the first); see sql/README.md"
  exit 0
fi

ext_dir=$("$PG_CONFIG" --sharedir)/extension
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ext_dir/tradeguard.control")
e2e_cluster upgrade 54337 "tradeguard.database_name = 'fresh'"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" fresh
q fresh -c "CREATE EXTENSION tradeguard" >/dev/null

catalog() {
  q "$1" -c "SELECT p.oid::regprocedure::text || ' ' || coalesce(p.proacl::text, '') FROM pg_proc p
              WHERE p.pronamespace IN ('tradeguard'::regnamespace, 'tradeguard_audit'::regnamespace)
             UNION ALL
             SELECT c.oid::regclass::text || ' ' || c.relkind || ' ' || coalesce(c.relacl::text, '') FROM pg_class c
              WHERE c.relnamespace IN ('tradeguard'::regnamespace, 'tradeguard_audit'::regnamespace)
             ORDER BY 1"
}
fresh=$(catalog fresh)
for up in "${upgrades[@]}"; do
  from=$(basename "$up" .sql | sed 's/^tradeguard--\(.*\)--.*$/\1/')
  old="sql/releases/tradeguard--$from.sql"
  if [ ! -f "$old" ]; then
    not_ok "upgrade from $from: $old is missing (archive each release's install script)"
    continue
  fi
  cp "$old" "$ext_dir/tradeguard--$from.sql"
  db="up_${from//./_}"
  as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" "$db"
  check "install release $from" q "$db" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION tradeguard VERSION '$from'"
  check "ALTER EXTENSION tradeguard UPDATE from $from" q "$db" -v ON_ERROR_STOP=1 -c "ALTER EXTENSION tradeguard UPDATE"
  check "upgraded $from is $current" [ "$(q "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'tradeguard'")" = "$current" ]
  check "upgraded catalog equals a fresh install" [ "$(catalog "$db")" = "$fresh" ]
done
echo "$fails failed"
[ "$fails" -eq 0 ]
