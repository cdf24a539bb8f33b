-- tradeguard in daytrading_prod: keys, encrypted columns, audit triggers, guards, profiles.
-- Run by `make demo` (and the docker init script) as the superuser, after schema.sql.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- Keys: names only; the bytes live wrapped by the root key.
SELECT tradeguard.create_key('accounts_pii');
SELECT tradeguard.create_key('email_bidx', 'blind_index', 'email');
SELECT tradeguard.create_key('account_number_bidx', 'blind_index', 'digits');

-- Sensitive columns are encrypted in place; the application keeps writing plaintext.
SELECT tradeguard.encrypt_column('accounts', 'api_key', 'accounts_pii');
SELECT tradeguard.encrypt_column('accounts', 'api_secret', 'accounts_pii');
SELECT tradeguard.encrypt_column('accounts', 'email', 'accounts_pii', 'email_bidx');
-- Account numbers are unique: a UNIQUE constraint on the column would compare ciphertext (random
-- nonces make every value different), so encrypt_column refuses it; uniqueness moves to the
-- blind index (the same digits give the same index).
ALTER TABLE accounts DROP CONSTRAINT accounts_account_number_key;
SELECT tradeguard.encrypt_column('accounts', 'account_number', 'accounts_pii', 'account_number_bidx');
CREATE UNIQUE INDEX accounts_account_number_unique ON accounts (account_number_bidx);
ALTER TABLE accounts OWNER TO daytrading_prod;

-- Every change to the trading tables lands in the signed audit trail.
SELECT tradeguard.audit_table('accounts');
SELECT tradeguard.audit_table('orders');
SELECT tradeguard.audit_table('trades');
SELECT tradeguard.audit_table('positions');

-- Free-text order notes are guarded against injection.
SELECT tradeguard.guard_columns('orders', ARRAY['note']);

-- What each role is for, so the self-audit can judge it.
SELECT tradeguard.role_profile('daytrading_readonly', 'readonly');
SELECT tradeguard.role_profile('daytrading_prod', 'application');
SELECT tradeguard.run_audit('full') IS NOT NULL AS first_audit_run;
