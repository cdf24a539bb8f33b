-- tradeguard showcase: run by `make demo` against daytrading_prod as the superuser.
-- Some statements fail on purpose (refusals are part of the show).
\set ON_ERROR_STOP off
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
SET client_min_messages = warning;

\echo
\echo '== 1. tradeguard is installed and preloaded'
SELECT tradeguard.version();
SELECT component, active FROM tradeguard.runtime_status();

\echo
\echo '== 2. Column encryption: the table holds ciphertext, the application reads plaintext'
SELECT id, left(account_number, 24) || '…' AS account_number_in_table, left(api_key, 24) || '…' AS api_key_in_table
  FROM accounts ORDER BY id;
SET ROLE daytrading_prod;
INSERT INTO accounts (account_number, owner_name, email, api_key, api_secret, balance)
VALUES ('DT-1000-0004', 'Haruto Suzuki', 'haruto.suzuki@example.jp', 'ak_live_9c1f0e7d3a2b5c48', 'sk_live_4d8a2c6e0f1b3a57c9e2', 50000);
SELECT id, account_number, owner_name, email, api_key FROM accounts_decrypted ORDER BY id;
\echo '-- equality search on an encrypted column through its blind index:'
SELECT id, owner_name FROM accounts
 WHERE email_bidx = tradeguard.blind_index('  Haruto.Suzuki@EXAMPLE.jp ', 'email_bidx');
RESET ROLE;
\echo '-- the analyst sees ciphertext and is refused the decrypting view and functions:'
SET ROLE daytrading_readonly;
SELECT left(api_key, 20) || '…' AS what_the_analyst_sees FROM accounts WHERE id = 1;
SELECT api_key FROM accounts_decrypted;
SELECT tradeguard.decrypt_text(api_key) FROM accounts;
RESET ROLE;
SELECT name, version, purpose, status FROM tradeguard.keys ORDER BY name, version;

\echo
\echo '== 3. Signed audit trail: trade, see the history, seal, verify'
SET ROLE daytrading_prod;
BEGIN;  -- the context (who the pooled connection acts for) lasts one transaction
SELECT tradeguard.set_context('{"trader": "T-042", "desk": "TSE equities"}') IS NOT NULL AS context_set;
INSERT INTO orders (account_id, symbol, side, order_type, quantity, limit_price, note)
VALUES (4, '9984.T', 'buy', 'limit', 300, 8420, 'SoftBank: scale in, 1/3 now');
UPDATE orders SET status = 'filled' WHERE symbol = '9984.T';
INSERT INTO trades (order_id, account_id, symbol, side, quantity, price, fee)
SELECT id, 4, '9984.T', 'buy', 300, 8418, 250 FROM orders WHERE symbol = '9984.T';
COMMIT;
RESET ROLE;
SELECT operation, changed_by, app_context->>'trader' AS trader, changes
  FROM tradeguard.history('orders', (SELECT jsonb_build_object('id', id) FROM orders WHERE symbol = '9984.T'));
SELECT pg_sleep(0.5);  -- the background worker seals every tradeguard.seal_interval
SELECT tradeguard.seal() AS sealed_now;
SELECT * FROM tradeguard.verify();
SELECT block_no, hash AS keep_this_digest_outside_the_database FROM tradeguard.audit_digest();
\echo '-- nobody edits the trail, not even a superuser:'
UPDATE tradeguard_audit.log SET new_row = '{}' WHERE id = 1;
ALTER TABLE orders DISABLE TRIGGER tradeguard_audit_row;

\echo
\echo '== 4. Injection check: structure, not keywords'
\echo '-- this session listens for alerts (NOTIFY tradeguard_alert): psql prints them as they arrive'
LISTEN tradeguard_alert;
SELECT v AS value, c.is_attack, c.classes, c.score
  FROM (VALUES ('Union Pacific: select the best performers, drop the laggards'), ('O''Reilly'),
               ('1'' OR ''1''=''1'), ('<svg/onload=alert(1)>'), ('; cat /etc/passwd'),
               ('..%2f..%2f..%2fetc%2fpasswd')) t(v),
       LATERAL tradeguard.check_input(v) c;
\echo '-- the guard on orders.note rejects an attack and lets a normal note through:'
SET ROLE daytrading_prod;
INSERT INTO orders (account_id, symbol, side, order_type, quantity, note)
VALUES (1, 'AAPL', 'buy', 'market', 10, 'x''; DROP TABLE trades; --');
INSERT INTO orders (account_id, symbol, side, order_type, quantity, note)
VALUES (1, 'AAPL', 'buy', 'market', 10, 'buy the dip; stop at 220');
RESET ROLE;

\echo
\echo '== 5. Self-audit: findings, score, TLS'
SELECT category, score, findings FROM tradeguard.security_score();
SELECT check_id, level, object, title FROM tradeguard.findings
 WHERE level IN ('critical', 'high') ORDER BY level, check_id;
SELECT ssl, subject, days_left, key_type, key_bits, min_protocol FROM tradeguard.ssl_status;

\echo
\echo '== 6. Security events and status'
SELECT pg_sleep(1);  -- events reach the table through the background worker (and the alert above)
SELECT event_type, severity, role_name, detail->>'column' AS col, detail->'classes' AS classes
  FROM tradeguard.security_events WHERE event_type = 'injection_attempt' ORDER BY id DESC LIMIT 5;
SELECT jsonb_pretty(tradeguard.security_status() - 'checked_at' - 'latest_digest') AS daily_check;
