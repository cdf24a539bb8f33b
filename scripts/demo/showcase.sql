-- tradeguard showcase: run by `make demo` against daytrading_prod as the superuser.
\pset footer off
\set SHOW_CONTEXT never
\echo
\echo '== tradeguard is installed and preloaded'
SELECT tradeguard.version();
SELECT component, active, detail FROM tradeguard.runtime_status();

\echo
\echo '== Roles: the application writes, the analyst only reads'
SELECT r.rolname,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
              WHERE m.member = r.oid ORDER BY 1) AS member_of
  FROM pg_roles r WHERE r.rolname IN ('daytrading_prod', 'daytrading_readonly') ORDER BY 1;
