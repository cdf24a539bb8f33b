//! Shared-memory security state: the event queue (events that must survive a rolled-back
//! transaction or come from the authentication hook, which cannot write tables), failed-login
//! counters, active blocks and the decryption freeze. The background worker drains the queue
//! into `tradeguard_audit` and reloads blocks from there at start-up.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic, PgLwLock};

/// A fixed-capacity string that lives in shared memory.
#[derive(Copy, Clone)]
#[repr(C)]
pub struct FixedStr<const N: usize> {
    len: u16,
    buf: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    pub fn new(s: &str) -> Self {
        let mut f = FixedStr { len: 0, buf: [0; N] };
        // Cut on a char boundary so the stored text stays valid UTF-8.
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        f.buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        f.len = end as u16;
        f
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

pub const QUEUE_LEN: usize = 1024;

#[derive(Copy, Clone, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    Empty = 0,
    Security = 1,
    Auth = 2,
}

#[derive(Copy, Clone)]
#[repr(C)]
pub struct EventSlot {
    pub kind: EventKind,
    pub at: i64,
    pub success: bool,
    pub blocked: bool,
    pub event_type: FixedStr<32>,
    pub severity: FixedStr<16>,
    pub addr: FixedStr<64>,
    pub role: FixedStr<64>,
    pub database: FixedStr<64>,
    pub detail: FixedStr<DETAIL_CAPACITY>,
}

#[repr(C)]
pub struct EventQueue {
    pub head: u64,
    pub tail: u64,
    pub dropped: u64,
    pub slots: [EventSlot; QUEUE_LEN],
}

unsafe impl PGRXSharedMemory for EventQueue {}

pub const FAIL_ENTRIES: usize = 512;
pub const FAIL_TIMES: usize = 64;
pub const BLOCK_ENTRIES: usize = 256;

#[derive(Copy, Clone)]
#[repr(C)]
pub struct FailEntry {
    pub used: bool,
    pub is_role: bool,
    pub key: FixedStr<64>,
    pub next: u16,
    pub times: [i64; FAIL_TIMES],
}

#[derive(Copy, Clone)]
#[repr(C)]
pub struct BlockEntry {
    pub used: bool,
    /// Loaded from tradeguard_audit.blocked_sources (a sync replaces these).
    pub persisted: bool,
    pub is_role: bool,
    pub key: FixedStr<64>,
    pub until: i64,
}

#[repr(C)]
pub struct AuthState {
    pub fails: [FailEntry; FAIL_ENTRIES],
    pub blocks: [BlockEntry; BLOCK_ENTRIES],
}

unsafe impl PGRXSharedMemory for AuthState {}

pub static EVENTS: PgLwLock<EventQueue> = unsafe { PgLwLock::new(c"tradeguard_events") };
pub static AUTH: PgLwLock<AuthState> = unsafe { PgLwLock::new(c"tradeguard_auth") };
pub static DECRYPT_FROZEN: PgAtomic<AtomicBool> = unsafe { PgAtomic::new(c"tradeguard_decrypt_frozen") };

pub fn init() {
    // All-zero is a valid empty state for both structures (no Default for large arrays).
    pg_shmem_init!(EVENTS = unsafe { std::mem::zeroed() });
    pg_shmem_init!(AUTH = unsafe { std::mem::zeroed() });
    pg_shmem_init!(DECRYPT_FROZEN);
}

pub fn now() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Queues an event; returns false when tradeguard is not preloaded.
pub fn push(slot: EventSlot) -> bool {
    if !super::is_preloaded() {
        return false;
    }
    let mut q = EVENTS.exclusive();
    if q.head - q.tail >= QUEUE_LEN as u64 {
        q.dropped += 1;
        return true;
    }
    let i = (q.head % QUEUE_LEN as u64) as usize;
    q.slots[i] = slot;
    q.head += 1;
    true
}

/// Bytes of an event's detail that fit its shared-memory slot.
pub const DETAIL_CAPACITY: usize = 640;

pub fn security_event(event_type: &str, severity: &str, addr: Option<&str>, role: &str, database: &str, detail: &str) -> EventSlot {
    EventSlot {
        kind: EventKind::Security,
        at: now(),
        success: false,
        blocked: false,
        event_type: FixedStr::new(event_type),
        severity: FixedStr::new(severity),
        addr: FixedStr::new(addr.unwrap_or("")),
        role: FixedStr::new(role),
        database: FixedStr::new(database),
        detail: FixedStr::new(detail),
    }
}

/// Takes every queued event (the worker stores them) and the number dropped since last time.
pub fn drain() -> (Vec<EventSlot>, u64) {
    let mut q = EVENTS.exclusive();
    let mut out = Vec::with_capacity((q.head - q.tail) as usize);
    while q.tail < q.head {
        let i = (q.tail % QUEUE_LEN as u64) as usize;
        out.push(q.slots[i]);
        q.tail += 1;
    }
    let dropped = std::mem::take(&mut q.dropped);
    (out, dropped)
}

pub fn decryption_frozen() -> bool {
    super::is_preloaded() && DECRYPT_FROZEN.get().load(Ordering::Acquire)
}

fn addr_matches(block_key: &str, addr: &IpAddr) -> bool {
    match block_key.parse::<ipnet::IpNet>() {
        Ok(net) => net.contains(addr),
        Err(_) => block_key.parse::<IpAddr>().map(|a| a == *addr).unwrap_or(false),
    }
}

/// The active block (key, until) that applies to this address or role, if any.
pub fn blocked(addr: Option<&IpAddr>, role: &str, at: i64) -> Option<(String, i64)> {
    let s = AUTH.share();
    s.blocks.iter().filter(|b| b.used && b.until > at).find_map(|b| {
        let hit = if b.is_role { b.key.as_str() == role } else { addr.is_some_and(|a| addr_matches(b.key.as_str(), a)) };
        hit.then(|| (b.key.as_str().to_string(), b.until))
    })
}

/// Counts a failure for `key` and returns how many fall inside the window.
fn count_failure(s: &mut AuthState, is_role: bool, key: &str, at: i64, window: i64) -> usize {
    let idx = s
        .fails
        .iter()
        .position(|f| f.used && f.is_role == is_role && f.key.as_str() == key)
        .or_else(|| s.fails.iter().position(|f| !f.used))
        .unwrap_or_else(|| {
            // Full: reuse the entry whose last failure is oldest.
            (0..FAIL_ENTRIES).min_by_key(|&i| s.fails[i].times.iter().copied().max().unwrap_or(0)).unwrap_or(0)
        });
    let f = &mut s.fails[idx];
    if !(f.used && f.is_role == is_role && f.key.as_str() == key) {
        *f = FailEntry { used: true, is_role, key: FixedStr::new(key), next: 0, times: [0; FAIL_TIMES] };
    }
    f.times[f.next as usize % FAIL_TIMES] = at;
    f.next = ((f.next as usize + 1) % FAIL_TIMES) as u16;
    f.times.iter().filter(|&&t| t > 0 && at - t <= window).count()
}

fn add_block(s: &mut AuthState, is_role: bool, key: &str, until: i64, persisted: bool) {
    let idx = s
        .blocks
        .iter()
        .position(|b| b.used && b.is_role == is_role && b.key.as_str() == key)
        .or_else(|| s.blocks.iter().position(|b| !b.used))
        .unwrap_or_else(|| (0..BLOCK_ENTRIES).min_by_key(|&i| s.blocks[i].until).unwrap_or(0));
    let b = &mut s.blocks[idx];
    let keep_until = if b.used && b.is_role == is_role && b.key.as_str() == key { b.until.max(until) } else { until };
    *b = BlockEntry { used: true, persisted, is_role, key: FixedStr::new(key), until: keep_until };
}

/// Records a failed login and returns the lockouts it triggers: (is_role, key, until).
pub fn register_failure(addr: Option<&str>, role: &str, at: i64) -> Vec<(bool, String, i64)> {
    let window = crate::gucs::LOCKOUT_WINDOW.get() as i64 * 1_000_000;
    let duration = crate::gucs::LOCKOUT_DURATION.get() as i64 * 1_000_000;
    let max_addr = crate::gucs::MAX_FAILED_LOGINS.get() as usize;
    let max_role = crate::gucs::MAX_FAILED_LOGINS_PER_ROLE.get() as usize;
    let mut s = AUTH.exclusive();
    let mut out = Vec::new();
    if let Some(a) = addr {
        if count_failure(&mut s, false, a, at, window) >= max_addr && max_addr > 0 {
            let key = match a.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => format!("{a}/32"),
                Ok(IpAddr::V6(_)) => format!("{a}/128"),
                Err(_) => a.to_string(),
            };
            add_block(&mut s, false, &key, at + duration, false);
            out.push((false, key, at + duration));
        }
    }
    if count_failure(&mut s, true, role, at, window) >= max_role && max_role > 0 {
        add_block(&mut s, true, role, at + duration, false);
        out.push((true, role.to_string(), at + duration));
    }
    out
}

/// Replaces the persisted blocks with `rows` (key, is_role, until) and sets the freeze flag.
pub fn load_state(rows: &[(String, bool, i64)], frozen: bool) {
    let mut s = AUTH.exclusive();
    let mut lifted = Vec::new();
    for b in s.blocks.iter_mut() {
        if b.persisted && b.used {
            if !rows.iter().any(|(k, r, _)| *r == b.is_role && k == b.key.as_str()) {
                lifted.push(b.key.as_str().to_string());
            }
            b.used = false;
        }
    }
    for (key, is_role, until) in rows {
        add_block(&mut s, *is_role, key, *until, true);
    }
    // A lifted block starts from a clean slate: its old failures no longer count.
    for key in lifted {
        let bare = key.split('/').next().unwrap_or(&key).to_string();
        for f in s.fails.iter_mut() {
            if f.used && (f.key.as_str() == key || f.key.as_str() == bare) {
                f.used = false;
            }
        }
    }
    drop(s);
    DECRYPT_FROZEN.get().store(frozen, Ordering::Release);
}

