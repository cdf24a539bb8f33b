-- Security state maintained from Rust: shared-memory sync is the extension's business only.
ALTER FUNCTION tradeguard.sync_state() SET SCHEMA tradeguard_audit;
REVOKE ALL ON FUNCTION tradeguard_audit.sync_state() FROM PUBLIC;
COMMENT ON FUNCTION tradeguard_audit.sync_state() IS 'tradeguard: reload active blocks and the decryption freeze into shared memory';
