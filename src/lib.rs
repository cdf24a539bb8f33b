//! tradeguard: the security of a day-trading database, inside PostgreSQL.
//!
//! Each capability lives in its own folder with its SQL surface in `mod.rs`; this file only wires
//! modules, settings, hooks and workers together. The SQL that users see (schemas, roles,
//! grants, views, comments) lives in `sql/` and is loaded in the order stated below.

use pgrx::prelude::*;

pub mod audit;
pub mod common;
pub mod crypto;
pub mod error;
pub mod gucs;
pub mod ids;
pub mod selfaudit;

pgrx::pg_module_magic!();

// Roles and schemas come before every generated function; grants, revokes and comments after.
pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // .cargo/config.toml compiles AES-NI and PCLMULQDQ into the AES-GCM code: refuse to load
    // (an ERROR, never an illegal instruction later) on a CPU without them.
    #[cfg(all(target_arch = "x86_64", target_feature = "aes"))]
    if !(std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")) {
        pgrx::error!("tradeguard: this build needs a CPU with AES-NI and PCLMULQDQ; rebuild without the target features of .cargo/config.toml");
    }
    gucs::init();
    common::init();
    if common::is_preloaded() {
        audit::hook::install();
        audit::redact::install();
    }
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // The test cluster loads tradeguard like production does; the Makefile creates the key file.
        let mut opts = vec!["shared_preload_libraries = 'tradeguard'"];
        if let Ok(path) = std::env::var("TG_TEST_ROOT_KEY") {
            opts.push(Box::leak(format!("tradeguard.root_key_file = '{path}'").into_boxed_str()));
        }
        opts
    }
}
