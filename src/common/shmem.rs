//! Shared memory owned by tradeguard (only when preloaded).

use std::sync::atomic::{AtomicU64, Ordering};

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};

/// Bumped whenever keys change (create, rotate, retire) so that every backend drops its cache.
pub static KEY_GENERATION: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"tradeguard_key_generation") };

/// Called from `_PG_init` while the postmaster loads shared_preload_libraries.
pub fn init() {
    pg_shmem_init!(KEY_GENERATION);
}

/// The current key generation, or `None` when tradeguard is not preloaded.
pub fn key_generation() -> Option<u64> {
    super::is_preloaded().then(|| KEY_GENERATION.get().load(Ordering::Acquire))
}

pub fn bump_key_generation() {
    if super::is_preloaded() {
        KEY_GENERATION.get().fetch_add(1, Ordering::AcqRel);
    }
}

/// A number that changes with every local transaction of this backend.
pub fn local_xact_stamp() -> u64 {
    // (0 before the backend has a PGPROC: log lines are also written early in start-up)
    unsafe { if pg_sys::MyProc.is_null() { 0 } else { (*pg_sys::MyProc).lxid as u64 } }
}

/// A per-backend cache that is valid for one key generation (tradeguard preloaded) or is
/// rebuilt on every use (not preloaded): table configurations derived from tradeguard's tables.
/// Keyed by small values (oids): FxHash, not SipHash, since it is looked up once per written row.
pub type GenerationCache<K, V> = std::cell::RefCell<(Option<u64>, rustc_hash::FxHashMap<K, V>)>;

/// The cached value for `key`, after dropping everything cached under an older generation.
pub fn generation_cached<K: Eq + std::hash::Hash, V: Clone>(cache: &GenerationCache<K, V>, key: &K) -> Option<V> {
    let stamp = key_generation();
    let mut c = cache.borrow_mut();
    if stamp.is_none() || c.0 != stamp {
        c.1.clear();
        c.0 = stamp;
    }
    c.1.get(key).cloned()
}
