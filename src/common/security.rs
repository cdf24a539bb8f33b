//! Shared-memory security state: the event queue (events that must survive a rolled-back
//! transaction or come from the authentication hook, which cannot write tables), failed-login
//! counters, active blocks and the decryption freeze. The background worker drains the queue
//! into `tradeguard_audit` and reloads blocks from there at start-up.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic};

use super::shmem::{Zeroed, ZeroedLwLock};

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
/// Failures of one key are counted in this many steps of tradeguard.lockout_window (any limit
/// up to the settings' maximum is reached: a step counts every failure that falls in it).
pub const FAIL_STEPS: usize = 64;
pub const BLOCK_ENTRIES: usize = 2048;

#[derive(Copy, Clone)]
#[repr(C)]
pub struct FailEntry {
    pub used: bool,
    pub is_role: bool,
    pub key: FixedStr<64>,
    /// The step written next (a ring).
    pub next: u16,
    /// Per step: the time of its first and of its last failure, and how many it holds.
    pub first: [i64; FAIL_STEPS],
    pub last: [i64; FAIL_STEPS],
    pub count: [u32; FAIL_STEPS],
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

pub static EVENTS: ZeroedLwLock<EventQueue> = unsafe { ZeroedLwLock::new(c"tradeguard_events") };
pub static AUTH: ZeroedLwLock<AuthState> = unsafe { ZeroedLwLock::new(c"tradeguard_auth") };
pub static DECRYPT_FROZEN: PgAtomic<AtomicBool> = unsafe { PgAtomic::new(c"tradeguard_decrypt_frozen") };

pub fn init() {
    // All-zero is a valid empty state for both structures.
    pg_shmem_init!(EVENTS = Zeroed);
    pg_shmem_init!(AUTH = Zeroed);
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

/// The critical event of a block that could not be stored: the shared-memory block table is
/// full of blocks that must stay (it holds BLOCK_ENTRIES).
pub fn block_table_full_event(key: &str) -> EventSlot {
    let detail = serde_json::json!({
        "key": key, "capacity": BLOCK_ENTRIES,
        "reason": "the block table in shared memory is full of admin blocks, auto-blocks and role lockouts; lift some (tradeguard.unblock) or block a network instead of its addresses",
    });
    security_event("block_table_full", "critical", None, "", "", &detail.to_string())
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

/// Counts a failure for `key` and returns how many fall inside the window (a step whose last
/// failure is inside counts whole: a count errs towards locking, never below the failures of
/// the window).
fn count_failure(s: &mut AuthState, is_role: bool, key: &str, at: i64, window: i64) -> usize {
    let idx = s
        .fails
        .iter()
        .position(|f| f.used && f.is_role == is_role && f.key.as_str() == key)
        .or_else(|| s.fails.iter().position(|f| !f.used))
        .unwrap_or_else(|| {
            // Full: reuse the entry whose last failure is oldest.
            (0..FAIL_ENTRIES).min_by_key(|&i| s.fails[i].last.iter().copied().max().unwrap_or(0)).unwrap_or(0)
        });
    let f = &mut s.fails[idx];
    if !(f.used && f.is_role == is_role && f.key.as_str() == key) {
        *f = FailEntry {
            used: true,
            is_role,
            key: FixedStr::new(key),
            next: 0,
            first: [0; FAIL_STEPS],
            last: [0; FAIL_STEPS],
            count: [0; FAIL_STEPS],
        };
    }
    // FAIL_STEPS steps of this length span more than the window: a step is only reused once
    // its failures are all older than the window.
    let step = window / (FAIL_STEPS as i64 - 1) + 1;
    let cur = (f.next as usize + FAIL_STEPS - 1) % FAIL_STEPS;
    if f.count[cur] > 0 && at >= f.first[cur] && at - f.first[cur] < step {
        f.count[cur] = f.count[cur].saturating_add(1);
        f.last[cur] = f.last[cur].max(at);
    } else {
        let i = f.next as usize % FAIL_STEPS;
        (f.first[i], f.last[i], f.count[i]) = (at, at, 1);
        f.next = ((i + 1) % FAIL_STEPS) as u16;
    }
    (0..FAIL_STEPS).filter(|&i| f.count[i] > 0 && at - f.last[i] <= window).map(|i| f.count[i] as usize).sum()
}

/// Stores a block; false when the table is full of blocks that must stay (set by an admin or
/// the worker, or role lockouts, none of them expired). A new lockout takes the place of an
/// expired block, else of the address lockout that ends first (an address lockout only ever
/// replaces another one: an attacker with many addresses cannot push a role lockout or an
/// admin's block out).
fn add_block(s: &mut AuthState, is_role: bool, key: &str, until: i64, persisted: bool, now: i64) -> bool {
    let same = |b: &BlockEntry| b.used && b.is_role == is_role && b.key.as_str() == key;
    let soonest = |s: &AuthState, pick: &dyn Fn(&BlockEntry) -> bool| {
        (0..BLOCK_ENTRIES).filter(|&i| pick(&s.blocks[i])).min_by_key(|&i| s.blocks[i].until)
    };
    let idx = s
        .blocks
        .iter()
        .position(same)
        .or_else(|| s.blocks.iter().position(|b| !b.used || b.until <= now))
        .or_else(|| soonest(s, &|b| !b.persisted && !b.is_role))
        .or_else(|| if is_role || persisted { soonest(s, &|b| !b.persisted) } else { None });
    let Some(idx) = idx else { return false };
    let b = &mut s.blocks[idx];
    let (keep_until, was_persisted) = if same(b) { (b.until.max(until), b.persisted) } else { (until, false) };
    *b = BlockEntry { used: true, persisted: persisted || was_persisted, is_role, key: FixedStr::new(key), until: keep_until };
    true
}

/// What failures from `ip` are counted under and the block a lockout sets: the address (/32),
/// or for IPv6 its /64 (one host usually holds a whole /64: counted per address, it could
/// spread its guesses over as many addresses as it likes).
pub fn source_key(ip: &IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => ipnet::Ipv6Net::new(a, 64).map(|n| n.trunc().to_string()).unwrap_or_else(|_| format!("{a}/128")),
    }
}

/// Records a failed login (from `addr`, None for an address exempt from address lockouts) and
/// returns the lockouts it triggers: (is_role, key, until, stored: false when the block table
/// is full of blocks that must stay).
pub fn register_failure(addr: Option<&IpAddr>, role: &str, at: i64) -> Vec<(bool, String, i64, bool)> {
    let window = crate::gucs::LOCKOUT_WINDOW.get() as i64 * 1_000_000;
    let duration = crate::gucs::LOCKOUT_DURATION.get() as i64 * 1_000_000;
    let max_addr = crate::gucs::MAX_FAILED_LOGINS.get() as usize;
    let max_role = crate::gucs::MAX_FAILED_LOGINS_PER_ROLE.get() as usize;
    let mut s = AUTH.exclusive();
    let mut out = Vec::new();
    if let Some(ip) = addr {
        let key = source_key(ip);
        if count_failure(&mut s, false, &key, at, window) >= max_addr && max_addr > 0 {
            let stored = add_block(&mut s, false, &key, at + duration, false, at);
            out.push((false, key, at + duration, stored));
        }
    }
    if count_failure(&mut s, true, role, at, window) >= max_role && max_role > 0 {
        let stored = add_block(&mut s, true, role, at + duration, false, at);
        out.push((true, role.to_string(), at + duration, stored));
    }
    out
}

/// Replaces the persisted blocks with `rows` (key, is_role, until) and sets the freeze flag;
/// returns the keys of the rows that did not fit the block table.
pub fn load_state(rows: &[(String, bool, i64)], frozen: bool) -> Vec<String> {
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
    let (mut left_out, at) = (Vec::new(), now());
    for (key, is_role, until) in rows {
        if !add_block(&mut s, *is_role, key, *until, true, at) {
            left_out.push(key.clone());
        }
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
    left_out
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn state() -> Box<AuthState> {
        // SAFETY: all-zero is the empty state (as in init()); allocated on the heap directly
        // (it is larger than a test thread's stack).
        unsafe { Box::from_raw(std::alloc::alloc_zeroed(std::alloc::Layout::new::<AuthState>()) as *mut AuthState) }
    }

    #[test]
    fn failures_are_counted_past_the_steps_of_the_window() {
        let mut s = state();
        let window = 900 * 1_000_000;
        // 500 failures in 50 s: every one counts (the steps hold many each).
        let counts: Vec<usize> = (0..500).map(|i| count_failure(&mut s, true, "trader1", 1_000_000 + i * 100_000, window)).collect();
        assert_eq!(counts[63], 64);
        assert_eq!(counts[499], 500);
        // One a minute for 20 minutes: only the last 15 minutes count, within one step.
        let mut t = state();
        let n = (0..20).map(|i| count_failure(&mut t, false, "192.0.2.1/32", (i + 1) * 60_000_000, window)).last().unwrap();
        assert!((15..=16).contains(&n), "{n}");
        // Far apart: the window forgets them.
        assert_eq!(count_failure(&mut t, false, "192.0.2.1/32", 10_000 * 1_000_000, window), 1);
    }

    #[test]
    fn address_lockouts_never_push_out_role_lockouts_or_admin_blocks() {
        let mut s = state();
        let now = 1_000_000;
        assert!(add_block(&mut s, true, "trader1", now + 100, false, now));
        assert!(add_block(&mut s, false, "198.51.100.7/32", now + 50, true, now));
        for i in 0..BLOCK_ENTRIES * 2 {
            assert!(add_block(&mut s, false, &format!("10.{}.{}.1/32", i / 256, i % 256), now + 10 + i as i64, false, now));
        }
        let has = |s: &AuthState, role: bool, k: &str| s.blocks.iter().any(|b| b.used && b.is_role == role && b.key.as_str() == k);
        assert!(has(&s, true, "trader1") && has(&s, false, "198.51.100.7/32"));
        // Full of blocks that must stay: a new role lockout pushes out an address lockout; once
        // only persisted blocks are left, nothing new fits and the caller is told.
        let mut p = state();
        for i in 0..BLOCK_ENTRIES {
            assert!(add_block(&mut p, false, &format!("10.0.{}.{}/32", i / 256, i % 256), now + 100, true, now));
        }
        assert!(!add_block(&mut p, true, "trader2", now + 100, false, now));
        assert!(!add_block(&mut p, false, "192.0.2.9/32", now + 100, false, now));
        // An expired block makes room.
        p.blocks[7].until = now - 1;
        assert!(add_block(&mut p, true, "trader2", now + 100, false, now));
        assert!(p.blocks[7].is_role && p.blocks[7].key.as_str() == "trader2");
    }

    #[test]
    fn ipv6_sources_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(source_key(&a), "2001:db8:1:2::/64");
        assert_eq!(source_key(&a), source_key(&b));
        assert_eq!(source_key(&"192.0.2.7".parse().unwrap()), "192.0.2.7/32");
        assert_eq!(source_key(&"::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7/32");
    }
}
