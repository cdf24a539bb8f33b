#!/usr/bin/env bash
# encrypt_column on a table that already has rows while other sessions keep inserting plaintext:
# when it returns, every row (old, converted, and written during or after the conversion) holds
# ciphertext that decrypts to what was written, and nothing was encrypted twice.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

e2e_cluster enccon 54346 "tradeguard.database_name = 'ec'"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" ec
q ec -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE EXTENSION tradeguard;
SELECT tradeguard.create_key('ec');
CREATE TABLE accounts (id bigserial PRIMARY KEY, api_key text NOT NULL);
INSERT INTO accounts (api_key) SELECT 'sk_live_old_' || g FROM generate_series(1, 50000) g;
SQL
cat > "$TG_TEST_DIR/enccon/ins.sql" <<'SQL'
INSERT INTO accounts (api_key) VALUES ('sk_live_new_' || pg_backend_pid() || '_' || random());
SQL
chown postgres "$TG_TEST_DIR/enccon/ins.sql"
as_pg "$PG_BIN/pgbench" -h /tmp -p "$E2E_PORT" -n -c 4 -j 2 -T 8 -f "$TG_TEST_DIR/enccon/ins.sql" ec >"$TG_TEST_DIR/enccon/pgbench.log" 2>&1 &
bench=$!
sleep 2
converted=$(q ec -c "SELECT tradeguard.encrypt_column('accounts', 'api_key', 'ec', batch_size => 5000)")
wait "$bench"
check "writers kept inserting during the conversion" grep -q "number of failed transactions: 0" "$TG_TEST_DIR/enccon/pgbench.log"
check "the existing rows were converted ($converted)" [ "${converted:-0}" -ge 50000 ]
check "every row holds ciphertext" [ "$(q ec -c "SELECT count(*) FROM accounts WHERE NOT tradeguard.is_ciphertext(api_key)")" = 0 ]
check "every row decrypts to a value that was written in plaintext (nothing encrypted twice)" \
  [ "$(q ec -c "SELECT count(*) = count(*) FILTER (WHERE api_key LIKE 'sk_live_old_%' OR api_key LIKE 'sk_live_new_%') FROM accounts_decrypted")" = t ]
check "the old rows are all there" [ "$(q ec -c "SELECT count(*) FROM accounts_decrypted WHERE api_key LIKE 'sk_live_old_%'")" = 50000 ]
check "rows written during the conversion are there" [ "$(q ec -c "SELECT count(*) > 0 FROM accounts_decrypted WHERE api_key LIKE 'sk_live_new_%'")" = t ]
check "running it again converts nothing" [ "$(q ec -c "SELECT tradeguard.encrypt_column('accounts', 'api_key', 'ec')")" = 0 ]


# A REPEATABLE READ transaction whose snapshot predates a rotation and the retirement of the old
# version encrypts with the version active now: key state is read as committed now, not as of
# its snapshot (it would otherwise seal a value no one can ever decrypt).
q ec -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION dblink;
SELECT dblink_connect('rr', 'dbname=ec host=/tmp port=$E2E_PORT user=postgres');
SELECT dblink_exec('rr', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT n FROM dblink('rr', 'SELECT count(*) FROM accounts') AS t(n bigint);
SELECT tradeguard.rotate_key('ec');
SELECT tradeguard.reencrypt_column('accounts', 'api_key');
SELECT tradeguard.retire_key('ec', 1);
SELECT dblink_exec('rr', 'INSERT INTO accounts (api_key) VALUES (''sk_live_rr'')');
SELECT dblink_exec('rr', 'COMMIT');
SQL
check "a REPEATABLE READ writer older than a rotation and a retirement seals with the active version" \
  [ "$(q ec -c "SELECT count(*) FROM accounts_decrypted WHERE api_key = 'sk_live_rr'")" = 1 ]

# A REPEATABLE READ reader keeps reading what its snapshot shows after the values were moved to
# a new version and the old one retired (its snapshot still holds the old ciphertexts).
q ec -c "CREATE TABLE loose AS SELECT tradeguard.encrypt('x'::text, 'ec') AS c" >/dev/null
rr_read=$(q ec -v ON_ERROR_STOP=1 <<SQL 2>&1
SELECT dblink_connect('rd', 'dbname=ec host=/tmp port=$E2E_PORT user=postgres');
SELECT dblink_exec('rd', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT 'read:' || n FROM dblink('rd', 'SELECT count(*) FROM accounts_decrypted WHERE api_key LIKE ''sk_live_%''') AS t(n bigint);
SELECT tradeguard.rotate_key('ec');
SELECT tradeguard.reencrypt_column('accounts', 'api_key');
SELECT tradeguard.retire_key('ec', 2);
SELECT 'read:' || n FROM dblink('rd', 'SELECT count(*) FROM accounts_decrypted WHERE api_key LIKE ''sk_live_%''') AS t(n bigint);
SELECT 'loose:' || x FROM dblink('rd', 'SELECT tradeguard.decrypt_text(c) FROM loose') AS t(x text);
SELECT dblink_exec('rd', 'COMMIT');
SELECT 'after:' || count(*) FROM dblink('rd', 'SELECT tradeguard.decrypt_text(c) FROM loose', false) AS t(x text);
SELECT 'err:' || dblink_error_message('rd');
SQL
)
printf '%s\n' "$rr_read" > "$TG_TEST_DIR/enccon/rr_read.txt"
reads=$(grep '^read:' "$TG_TEST_DIR/enccon/rr_read.txt" | sort -u)
check "... a value of the retired version too, within that transaction" grep -q '^loose:x$' "$TG_TEST_DIR/enccon/rr_read.txt"
check "... and not in its next transaction (the retirement holds)" \
  bash -c "grep -q '^after:0$' '$TG_TEST_DIR/enccon/rr_read.txt' && grep -q '^err:.*is retired' '$TG_TEST_DIR/enccon/rr_read.txt'"
check "a REPEATABLE READ reader decrypts what its snapshot shows after a retirement ($reads)" \
  bash -c "[ \"$(grep -c '^read:' "$TG_TEST_DIR/enccon/rr_read.txt")\" = 2 ] && [ \"$(wc -l <<<"$reads")\" = 1 ] && ! grep -v '^err:' '$TG_TEST_DIR/enccon/rr_read.txt' | grep -q ERROR"

echo "$fails failed"
[ "$fails" -eq 0 ]
