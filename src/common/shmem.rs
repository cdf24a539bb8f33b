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

/// The current key generation, or `None` when tradeguard is not preloaded. It also moves when
/// this backend sees `tradeguard.root_key_file` set again (a reload, even to the same path: the
/// file may have changed): data keys unwrapped with the old root key are dropped with
/// everything else cached under the old generation, so a session does not go on encrypting
/// and decrypting with keys the server no longer has.
pub fn key_generation() -> Option<u64> {
    super::is_preloaded().then(|| KEY_GENERATION.get().load(Ordering::Acquire).wrapping_add(root_setting_epoch() << 40))
}

/// Counts the values `tradeguard.root_key_file` has had in this backend (each assignment, a
/// reload included: see `gucs::ROOT_KEY_FILE_ASSIGNMENTS`).
fn root_setting_epoch() -> u64 {
    crate::gucs::ROOT_KEY_FILE_ASSIGNMENTS.load(Ordering::Relaxed)
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

/// A lightweight-locked `T` in shared memory that starts all-zero, written in place.
/// `pgrx::PgLwLock` takes its initial value by value: the postmaster builds it on its stack
/// and copies it on the way (several times in a debug build), and tradeguard's tables are large
/// enough (hundreds of KB each) to overflow the postmaster's stack together. `T` must be valid
/// all-zero.
pub struct ZeroedLwLock<T> {
    name: &'static std::ffi::CStr,
    data: std::cell::UnsafeCell<*mut T>,
    lock: std::cell::UnsafeCell<*mut pg_sys::LWLock>,
}

// SAFETY: the data is only reached through the LWLock (share / exclusive guards).
unsafe impl<T: pgrx::PGRXSharedMemory> Sync for ZeroedLwLock<T> {}

/// The initial value of a [`ZeroedLwLock`]: nothing (its memory is zeroed).
pub struct Zeroed;
// SAFETY: a unit value; nothing is shared through it.
unsafe impl pgrx::PGRXSharedMemory for Zeroed {}

impl<T> ZeroedLwLock<T> {
    /// # Safety
    /// `name` must be unique among shared-memory structures and LWLock tranches, and `T` valid
    /// when all its bytes are zero.
    pub const unsafe fn new(name: &'static std::ffi::CStr) -> Self {
        ZeroedLwLock { name, data: std::cell::UnsafeCell::new(std::ptr::null_mut()), lock: std::cell::UnsafeCell::new(std::ptr::null_mut()) }
    }

    fn acquire(&self, mode: pg_sys::LWLockMode::Type) -> (*mut T, *mut pg_sys::LWLock) {
        // SAFETY: set once by on_shmem_startup in the postmaster, inherited by every backend.
        let (data, lock) = unsafe { (*self.data.get(), *self.lock.get()) };
        assert!(!data.is_null(), "tradeguard: shared memory {:?} was not initialised", self.name);
        unsafe { pg_sys::LWLockAcquire(lock, mode) };
        (data, lock)
    }

    /// The data, read without taking its lock, if no process holds the lock exclusively or is
    /// changing its wait list: None otherwise (an immediate shutdown stops processes wherever
    /// they are, and what a stopped writer was writing may be half-written). Neither acquires
    /// nor releases the lock: releasing a lock whose wait-list spinlock a stopped process holds
    /// would spin until a PANIC.
    ///
    /// # Safety
    /// No other process may be running (the postmaster exiting, after every other process).
    pub unsafe fn if_unheld(&self) -> Option<&T> {
        // lwlock.c's state bits (PostgreSQL 15).
        const LW_FLAG_LOCKED: u32 = 1 << 28;
        const LW_VAL_EXCLUSIVE: u32 = 1 << 24;
        unsafe {
            let (data, lock) = (*self.data.get(), *self.lock.get());
            if data.is_null() || lock.is_null() {
                return None;
            }
            let state = std::sync::atomic::AtomicU32::from_ptr(&raw mut (*lock).state.value).load(Ordering::SeqCst);
            (state & (LW_FLAG_LOCKED | LW_VAL_EXCLUSIVE) == 0).then(|| &*data)
        }
    }

    pub fn share(&self) -> ShareGuard<'_, T> {
        let (data, lock) = self.acquire(pg_sys::LWLockMode::LW_SHARED);
        ShareGuard { data: unsafe { &*data }, lock }
    }

    pub fn exclusive(&self) -> ExclusiveGuard<'_, T> {
        let (data, lock) = self.acquire(pg_sys::LWLockMode::LW_EXCLUSIVE);
        ExclusiveGuard { data: unsafe { &mut *data }, lock }
    }
}

impl<T: pgrx::PGRXSharedMemory> pgrx::PgSharedMemoryInitialization for ZeroedLwLock<T> {
    type Value = Zeroed;

    unsafe fn on_shmem_request(&'static self) {
        unsafe {
            pg_sys::RequestAddinShmemSpace(std::mem::size_of::<T>());
            pg_sys::RequestNamedLWLockTranche(self.name.as_ptr(), 1);
        }
    }

    unsafe fn on_shmem_startup(&'static self, _: Zeroed) {
        unsafe {
            // AddinShmemInitLock
            let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
            pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
            let mut found = false;
            let data = pg_sys::ShmemInitStruct(self.name.as_ptr(), std::mem::size_of::<T>(), &mut found).cast::<T>();
            assert!(data.is_aligned(), "shared memory is not aligned");
            if !found {
                std::ptr::write_bytes(data, 0, 1);
            }
            *self.data.get() = data;
            *self.lock.get() = &raw mut (*pg_sys::GetNamedLWLockTranche(self.name.as_ptr())).lock;
            pg_sys::LWLockRelease(init_lock);
        }
    }
}

/// Releases `lock` unless an ERROR is unwinding (PostgreSQL's error recovery releases every
/// LWLock then, and holds no interrupts any more).
unsafe fn release(lock: *mut pg_sys::LWLock) {
    unsafe {
        if pg_sys::InterruptHoldoffCount > 0 {
            pg_sys::LWLockRelease(lock);
        }
    }
}

pub struct ShareGuard<'a, T> {
    data: &'a T,
    lock: *mut pg_sys::LWLock,
}

impl<T> std::ops::Deref for ShareGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data
    }
}

impl<T> Drop for ShareGuard<'_, T> {
    fn drop(&mut self) {
        unsafe { release(self.lock) }
    }
}

pub struct ExclusiveGuard<'a, T> {
    data: &'a mut T,
    lock: *mut pg_sys::LWLock,
}

impl<T> std::ops::Deref for ExclusiveGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data
    }
}

impl<T> std::ops::DerefMut for ExclusiveGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.data
    }
}

impl<T> Drop for ExclusiveGuard<'_, T> {
    fn drop(&mut self) {
        unsafe { release(self.lock) }
    }
}
