#!/usr/bin/env bash
# SQL-level fuzzing of the decryptors: random and mutated ciphertexts (truncated, bit-flipped,
# spliced, forged headers, random bytes, random armor) through every decrypt_* function. Each
# must end in a clean ERROR or a correct value; no backend may crash.
# TG_FUZZ_CASES sets the number of cases (default 100000; make reliability: 500000).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

cases=${TG_FUZZ_CASES:-100000}
e2e_cluster fuzz 54339 "tradeguard.database_name = 'fuzz'"
as_pg "$PG_BIN/createdb" -h /tmp -p "$E2E_PORT" fuzz
q fuzz -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE EXTENSION tradeguard;
SELECT tradeguard.create_key('fuzz');
CREATE TABLE seeds AS
SELECT tradeguard.encrypt('plaintext-' || g, 'fuzz', 'ctx') AS c FROM generate_series(1, 16) g
UNION ALL SELECT tradeguard.encrypt(g::bigint, 'fuzz', 'ctx') FROM generate_series(1, 4) g
UNION ALL SELECT tradeguard.encrypt(('{"n": ' || g || '}')::jsonb, 'fuzz', 'ctx') FROM generate_series(1, 4) g;
CREATE FUNCTION mutate(c bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
    k int := floor(random() * 7);
    n int := length(c);
    i int;
BEGIN
    IF k = 0 THEN RETURN substring(c FROM 1 FOR floor(random() * n)::int);          -- truncated
    ELSIF k = 1 THEN i := floor(random() * n); RETURN set_byte(c, i, get_byte(c, i) # (1 << floor(random() * 8)::int));  -- bit flip
    ELSIF k = 2 THEN RETURN c || decode(md5(random()::text), 'hex');                  -- trailing junk
    ELSIF k = 3 THEN RETURN substring(c FROM 1 FOR 14) || decode(md5(random()::text) || md5(random()::text), 'hex');  -- forged body
    ELSIF k = 4 THEN RETURN decode(repeat(md5(random()::text), 1 + floor(random() * 4)::int), 'hex');  -- random bytes
    ELSIF k = 5 THEN i := floor(random() * 14); RETURN set_byte(c, i, floor(random() * 256)::int);    -- header byte
    ELSE RETURN ''::bytea;
    END IF;
END $$;
SQL

start=$(date +%s)
result=$(q fuzz -v ON_ERROR_STOP=1 -c "
DO \$\$
DECLARE
    fns text[] := ARRAY['decrypt_text', 'decrypt_bytea', 'decrypt_numeric', 'decrypt_bigint', 'decrypt_float8',
                        'decrypt_timestamptz', 'decrypt_jsonb'];
    cc bytea;
    errors int := 0; values_ok int := 0; wrong int := 0;
    v text;
BEGIN
    FOR i IN 1..$cases LOOP
        SELECT mutate(s.c) INTO cc FROM seeds s OFFSET floor(random() * 24) LIMIT 1;
        BEGIN
            EXECUTE format('SELECT tradeguard.%I(\$1, %L)::text', fns[1 + i % 7], CASE WHEN i % 5 = 0 THEN 'other' ELSE 'ctx' END)
              INTO v USING cc;
            -- A mutated value that still decrypts must be an unmodified seed (e.g. junk cut away
            -- by nothing): anything else would be a forgery accepted.
            IF EXISTS (SELECT 1 FROM seeds WHERE seeds.c = cc) THEN values_ok := values_ok + 1; ELSE wrong := wrong + 1; END IF;
        EXCEPTION WHEN OTHERS THEN
            IF SQLSTATE NOT IN ('XX001', '22023', '28000', '42704', '22P02', '55000') THEN
                RAISE EXCEPTION 'unexpected SQLSTATE % (%)', SQLSTATE, SQLERRM;
            END IF;
            errors := errors + 1;
        END;
    END LOOP;
    RAISE NOTICE 'fuzz: % errors, % unchanged values, % forgeries accepted', errors, values_ok, wrong;
    IF wrong > 0 THEN RAISE EXCEPTION 'forged ciphertext accepted'; END IF;
END \$\$;" 2>&1)
echo "$result"
check "$cases mutated ciphertexts: only clean errors, no forgery accepted" grep -q "0 forgeries accepted" <<<"$result"
check "armored text decryptors reject random armor" [ "$(q fuzz -c "SELECT count(*) FROM generate_series(1, 2000) g WHERE (SELECT count(*) FROM (SELECT 1) x WHERE tradeguard.is_ciphertext('tg1:' || encode(decode(md5(g::text), 'hex'), 'base64')))  > 0")" = 0 ]
check "a megabyte value round-trips" [ "$(q fuzz -c "SELECT tradeguard.decrypt_text(tradeguard.encrypt(repeat('x', 1048576), 'fuzz')) = repeat('x', 1048576)")" = t ]
check "the server log shows no crashed backend" bash -c "! grep -Eq 'terminated by signal|PANIC' '$TG_TEST_DIR/fuzz/server.log'"
echo "elapsed: $(( $(date +%s) - start ))s"
echo "$fails failed"
[ "$fails" -eq 0 ]
