-- Column encryption: keys, typed values, context binding, rotation, columns, roles.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- Keys are named; their bytes never appear in SQL.
SELECT tradeguard.create_key('pii');
SELECT tradeguard.create_key('email_bidx', 'blind_index', 'email');
SELECT name, version, purpose, status, fingerprint ~ '^tgk1:[0-9a-f]{32}$' AS fp_ok FROM tradeguard.keys ORDER BY name;
SELECT tradeguard.create_key('pii');
SELECT tradeguard.create_key('Bad Name!');
SELECT tradeguard.create_key('x', 'sign');

-- Every type round-trips.
SELECT tradeguard.decrypt_text(tradeguard.encrypt('sk_live_0b1e5c9a'::text, 'pii')) AS text_rt;
SELECT tradeguard.decrypt_bytea(tradeguard.encrypt('\xdeadbeef'::bytea, 'pii')) AS bytea_rt;
SELECT tradeguard.decrypt_numeric(tradeguard.encrypt(1234567.891::numeric, 'pii')) AS numeric_rt;
SELECT tradeguard.decrypt_bigint(tradeguard.encrypt(-9007199254740993::bigint, 'pii')) AS bigint_rt;
SELECT tradeguard.decrypt_float8(tradeguard.encrypt(2849.5::float8, 'pii')) AS float8_rt;
SELECT tradeguard.decrypt_timestamptz(tradeguard.encrypt('2026-11-25 09:00:00.123456+09'::timestamptz, 'pii')) AS ts_rt;
SELECT tradeguard.decrypt_jsonb(tradeguard.encrypt('{"limit": 1e-30, "side": "buy"}'::jsonb, 'pii')) AS jsonb_rt;
SELECT tradeguard.encrypt(NULL::text, 'pii') IS NULL AS null_in_null_out;
SELECT length(tradeguard.encrypt('x'::text, 'pii')) AS envelope_bytes;
SELECT format_version, algorithm, value_type, key_name, key_version
  FROM tradeguard.ciphertext_info(tradeguard.encrypt(42::bigint, 'pii'));

-- Context binding: a ciphertext moved to another row does not decrypt.
SELECT tradeguard.decrypt_text(tradeguard.encrypt('secret'::text, 'pii', 'accounts.api_key:1'), 'accounts.api_key:1') AS same_context;
SELECT tradeguard.decrypt_text(tradeguard.encrypt('secret'::text, 'pii', 'accounts.api_key:1'), 'accounts.api_key:2');

-- Every failure is an ERROR with its own message; nothing falls back to plaintext or NULL.
SELECT tradeguard.decrypt_numeric(tradeguard.encrypt('abc'::text, 'pii'));
SELECT tradeguard.decrypt_text('\x00'::bytea);
SELECT tradeguard.decrypt_text('\x5447010101000000000100000001'::bytea);
SELECT tradeguard.decrypt_text('plain text, not ciphertext');
SELECT tradeguard.decrypt_text(substring(tradeguard.encrypt('abc'::text, 'pii') from 1 for 30));
-- (one bit of byte 30 flipped: overwriting it with a constant left it unchanged once in 256 runs)
SELECT tradeguard.decrypt_text(set_byte(c, 29, get_byte(c, 29) # 1)) FROM (SELECT tradeguard.encrypt('abc'::text, 'pii') AS c) s;
SELECT tradeguard.encrypt('abc'::text, 'no_such_key');
SELECT tradeguard.encrypt('abc'::text, 'email_bidx');

-- Blind index: equality search with normalisation, no plaintext stored.
SELECT tradeguard.blind_index('  Aiko.Tanaka@Example.JP ', 'email_bidx') = tradeguard.blind_index('aiko.tanaka@example.jp', 'email_bidx') AS normalised_equal;
SELECT length(tradeguard.blind_index('x', 'email_bidx')) AS bidx_bytes;
SELECT tradeguard.blind_index('x', 'pii');

-- Rotation: old and new values both decrypt; a retired version no longer does.
CREATE TABLE tg_vals (v bytea);
INSERT INTO tg_vals SELECT tradeguard.encrypt('v1 value'::text, 'pii');
SELECT tradeguard.rotate_key('pii');
INSERT INTO tg_vals SELECT tradeguard.encrypt('v2 value'::text, 'pii');
SELECT (tradeguard.ciphertext_info(v)).key_version, tradeguard.decrypt_text(v) FROM tg_vals ORDER BY 1;
SELECT tradeguard.retire_key('pii', 2);
SELECT tradeguard.retire_key('pii', 1);
SELECT name, version, status FROM tradeguard.keys WHERE name = 'pii' ORDER BY version;
SELECT tradeguard.decrypt_text(v) FROM tg_vals ORDER BY 1;
DROP TABLE tg_vals;

-- Columns: convert a table in place; the application keeps writing plaintext.
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    account_number text NOT NULL,
    email text NOT NULL,
    api_key text,
    balance numeric(18,2) NOT NULL DEFAULT 0
);
INSERT INTO accounts (account_number, email, api_key, balance) VALUES
  ('DT-1000-0001', 'aiko.tanaka@example.jp', 'ak_live_7f3a9c2e51b84d06', 250000.00),
  ('DT-1000-0002', 'kenji.sato@example.jp', NULL, 125500.50);
SELECT tradeguard.create_key('accounts');
SELECT tradeguard.encrypt_column('accounts', 'api_key', 'accounts') AS converted;
SELECT tradeguard.encrypt_column('accounts', 'api_key', 'accounts') AS converted_again;
SELECT tradeguard.encrypt_column('accounts', 'email', 'accounts', 'email_bidx') AS converted;
SELECT tradeguard.encrypt_column('accounts', 'balance', 'accounts') AS converted;
INSERT INTO accounts (account_number, email, api_key, balance)
  VALUES ('DT-1000-0003', 'Mary.OReilly@example.com', 'ak_live_5a1d9e3c7b2f8046', 98000);
-- The table holds only ciphertext (and NULLs stay NULL).
SELECT id, tradeguard.is_ciphertext(api_key) AS api_key_enc, tradeguard.is_ciphertext(email) AS email_enc,
       tradeguard.is_ciphertext(balance::text) AS balance_enc, email_bidx IS NOT NULL AS has_bidx
  FROM accounts ORDER BY id;
-- The stored form: "tg1:" + base64 of 3 header bytes, nonce (12), ciphertext and tag (16):
-- 24 characters become 4 + 74 = 78.
SELECT length(api_key) AS api_key_chars, left(api_key, 4) AS prefix FROM accounts WHERE id = 3;
-- The decrypted view gives the original values and types back.
SELECT id, account_number, email, api_key, balance, pg_typeof(balance) AS balance_type
  FROM accounts_decrypted ORDER BY id;
SELECT id FROM accounts WHERE email_bidx = tradeguard.blind_index('MARY.OREILLY@EXAMPLE.COM', 'email_bidx');
-- Updates re-encrypt; a ciphertext copied from another row is refused there (the row keeps its value).
UPDATE accounts SET api_key = 'ak_live_rotated_0001' WHERE id = 1;
SELECT api_key FROM accounts_decrypted WHERE id = 1;
UPDATE accounts SET api_key = (SELECT api_key FROM accounts WHERE id = 3) WHERE id = 2;
SELECT api_key FROM accounts_decrypted WHERE id = 2;
UPDATE accounts SET api_key = NULL WHERE id = 2;
-- Updates of other columns pass stored ciphertext through untouched, TOASTed ones too.
UPDATE accounts SET api_key = repeat('k', 20000) WHERE id = 2;
CREATE TEMP TABLE stored AS SELECT id, api_key FROM accounts WHERE id IN (2, 3);
UPDATE accounts SET account_number = account_number || '-x' WHERE id IN (2, 3);
SELECT s.id, a.api_key = s.api_key AS ciphertext_unchanged, length(d.api_key) AS plaintext_chars
  FROM stored s JOIN accounts a USING (id) JOIN accounts_decrypted d USING (id) ORDER BY s.id;
UPDATE accounts SET account_number = left(account_number, -2), api_key = NULL WHERE id = 2;
UPDATE accounts SET account_number = left(account_number, -2) WHERE id = 3;
DROP TABLE stored;
-- Rotation then re-encryption moves rows to the new version.
SELECT tradeguard.rotate_key('accounts');
SELECT tradeguard.reencrypt_column('accounts', 'api_key') AS moved;
SELECT tradeguard.reencrypt_column('accounts', 'api_key') AS moved_again;
SELECT DISTINCT tradeguard.ciphertext_key_version(api_key) FROM accounts WHERE api_key IS NOT NULL;
-- Version 1 is not retired while a column still holds values of it (email and balance were
-- not re-encrypted).
SELECT tradeguard.retire_key('accounts', 1);
SELECT id, api_key FROM accounts_decrypted ORDER BY id;
SELECT schema_name, table_name, column_name, key_name, value_type, original_type, bound_to_key, blind_column
  FROM tradeguard.encrypted_columns ORDER BY column_name;

-- Roles: the analyst sees ciphertext and is refused the view and the functions.
CREATE ROLE tg_app;
CREATE ROLE tg_analyst;
GRANT tradeguard_encryptor, tradeguard_decryptor TO tg_app;
GRANT SELECT, INSERT, UPDATE ON accounts TO tg_app;
GRANT USAGE ON SEQUENCE accounts_id_seq TO tg_app;
GRANT SELECT ON accounts TO tg_analyst;
GRANT tradeguard_auditor TO tg_analyst;
SET ROLE tg_app;
INSERT INTO accounts (account_number, email, api_key) VALUES ('DT-1000-0004', 'app@example.jp', 'ak_live_from_app');
SELECT api_key FROM accounts_decrypted WHERE account_number = 'DT-1000-0004';
SELECT tradeguard.create_key('app_key');
RESET ROLE;
SET ROLE tg_analyst;
SELECT tradeguard.is_ciphertext(api_key) FROM accounts WHERE account_number = 'DT-1000-0004';
SELECT api_key FROM accounts WHERE account_number = 'DT-1000-0004' AND api_key LIKE 'tg1:%' LIMIT 0;
SELECT api_key FROM accounts_decrypted;
SELECT tradeguard.decrypt_text(api_key) FROM accounts;
RESET ROLE;
-- Errors name the object, never the value.
SELECT tradeguard.encrypt_column('accounts', 'nope', 'accounts');
SELECT tradeguard.encrypt_column('pg_class', 'relname', 'accounts');
DROP TABLE accounts CASCADE;
DROP OWNED BY tg_app, tg_analyst;
DROP ROLE tg_app;
DROP ROLE tg_analyst;
