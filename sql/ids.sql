-- Intrusion detection: security events, rule catalogue, grants.

CREATE TABLE tradeguard_audit.security_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    event_type  text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    source      inet,
    role_name   text,
    detail      jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE tradeguard_audit.security_events IS 'tradeguard: security events (injection attempts, lockouts, blocks, break-glass)';
SELECT pg_catalog.pg_extension_config_dump('tradeguard_audit.security_events', '');

CREATE VIEW tradeguard.security_events AS
SELECT id, at, event_type, severity, source, role_name, detail FROM tradeguard_audit.security_events;
COMMENT ON VIEW tradeguard.security_events IS 'tradeguard: the security event stream';

CREATE VIEW tradeguard.injection_rules AS SELECT * FROM tradeguard.injection_rule_list();
COMMENT ON VIEW tradeguard.injection_rules IS 'tradeguard: injection-check rules (id, class, description, ruleset version)';

COMMENT ON FUNCTION tradeguard.check_input(text, text) IS 'tradeguard: injection verdict (sqli, xss, cmdi, traversal) with score and evidence';
COMMENT ON FUNCTION tradeguard.is_attack(text, text) IS 'tradeguard: true when the value looks like an injection attack';
COMMENT ON FUNCTION tradeguard.guard_columns(regclass, text[], text) IS 'tradeguard: reject or log injection attempts written into these columns';

-- Anyone the application or the analysts act as may check inputs; guards are admin business.
GRANT EXECUTE ON FUNCTION tradeguard.check_input(text, text), tradeguard.is_attack(text, text),
    tradeguard.injection_rule_list()
  TO tradeguard_encryptor, tradeguard_decryptor, tradeguard_auditor;
GRANT EXECUTE ON FUNCTION tradeguard.guard_columns(regclass, text[], text) TO tradeguard_admin;
GRANT SELECT ON tradeguard.injection_rules TO tradeguard_auditor, tradeguard_encryptor, tradeguard_decryptor;
GRANT SELECT ON tradeguard.security_events TO tradeguard_auditor;
