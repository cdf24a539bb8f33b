//! The sealing background worker: every `tradeguard.seal_interval` it seals committed audit
//! rows of the database named by `tradeguard.database_name`, off the writers' commit path.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;

/// Registers the worker (called from `_PG_init` while preloading).
pub fn register() {
    BackgroundWorkerBuilder::new("tradeguard sealer")
        .set_type("tradeguard sealer")
        .set_function("tradeguard_sealer_main")
        .set_library("tradeguard")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn tradeguard_sealer_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = crate::gucs::database_name();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    loop {
        let ms = crate::gucs::SEAL_INTERVAL.get().max(10) as u64;
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(ms))) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        BackgroundWorker::transaction(|| {
            let installed = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'tradeguard')",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if installed {
                while let Ok(Some((_, n))) = super::seal::seal_once() {
                    if n < 50_000 {
                        break;
                    }
                }
            }
        });
    }
}
