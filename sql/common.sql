-- Foundation: version and runtime status.
COMMENT ON FUNCTION tradeguard.version() IS 'tradeguard version, commit and build';
GRANT EXECUTE ON FUNCTION tradeguard.version() TO tradeguard_admin, tradeguard_encryptor, tradeguard_decryptor, tradeguard_auditor;
COMMENT ON FUNCTION tradeguard.runtime_status() IS 'whether tradeguard is preloaded, its workers run and its keys are loaded';
GRANT EXECUTE ON FUNCTION tradeguard.runtime_status() TO tradeguard_admin, tradeguard_auditor;
