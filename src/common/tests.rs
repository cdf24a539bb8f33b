//! In-database tests of the foundation (`cargo pgrx test`).

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_names_the_crate_version() {
        let v = Spi::get_one::<String>("SELECT tradeguard.version()").unwrap().unwrap();
        assert!(v.starts_with(&format!("tradeguard {} (commit ", env!("CARGO_PKG_VERSION"))), "{v}");
    }

    #[pg_test]
    fn test_cluster_is_preloaded() {
        assert!(crate::common::is_preloaded());
        let active = Spi::get_one::<bool>(
            "SELECT active FROM tradeguard.runtime_status() WHERE component = 'shared_preload_libraries'",
        );
        assert_eq!(active, Ok(Some(true)));
    }

    #[pg_test]
    fn no_function_is_executable_by_public_and_each_has_a_role() {
        let public = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p,
                    LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
              WHERE p.pronamespace IN ('tradeguard'::regnamespace, 'tradeguard_audit'::regnamespace)
                AND a.grantee = 0",
        );
        assert_eq!(public, Ok(Some(0)));
        let ungranted = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p
              WHERE p.pronamespace = 'tradeguard'::regnamespace
                AND p.prorettype <> 'trigger'::regtype
                AND NOT EXISTS (SELECT 1 FROM aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
                                 WHERE r.rolname LIKE 'tradeguard\\_%')",
        );
        assert_eq!(ungranted, Ok(Some(0)));
    }

    /// A role without tradeguard membership can execute no tradeguard function at all.
    #[pg_test]
    fn outsider_can_execute_nothing() {
        Spi::run("CREATE ROLE tg_test_outsider NOLOGIN").unwrap();
        let executable = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p
              WHERE p.pronamespace IN ('tradeguard'::regnamespace, 'tradeguard_audit'::regnamespace)
                AND has_function_privilege('tg_test_outsider', p.oid, 'EXECUTE')",
        );
        assert_eq!(executable, Ok(Some(0)));
    }

    #[pg_test(error = "permission denied for schema tradeguard")]
    fn outsider_is_refused_at_run_time() {
        Spi::run("CREATE ROLE tg_test_outsider2 NOLOGIN").unwrap();
        Spi::run("SET ROLE tg_test_outsider2").unwrap();
        Spi::run("SELECT tradeguard.version()").unwrap();
    }

    #[pg_test]
    fn protected_schema_is_closed_to_public() {
        let usage = Spi::get_one::<bool>(
            "SELECT has_schema_privilege('public', 'tradeguard_audit', 'USAGE')",
        );
        assert_eq!(usage, Ok(Some(false)));
    }
}
