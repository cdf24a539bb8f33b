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
        self.buf.get(..self.len as usize).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
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
    /// Failures of a role through an exempt address (a pooler): counted apart from the role's
    /// other failures (see [`BlockEntry::exempt_too`]).
    pub via_exempt: bool,
    pub key: FixedStr<64>,
    /// The step written next (a ring).
    pub next: u16,
    /// Per step: the time of its first and of its last failure, and how many it holds.
    pub first: [i64; FAIL_STEPS],
    pub last: [i64; FAIL_STEPS],
    pub count: [u32; FAIL_STEPS],
    /// Until when the key is refused because its lockout did not fit the block table.
    pub refused_until: i64,
}

#[derive(Copy, Clone)]
#[repr(C)]
pub struct BlockEntry {
    pub used: bool,
    pub kind: BlockKind,
    pub key: FixedStr<64>,
    pub until: i64,
}

/// What a block is.
#[derive(Copy, Clone, Default)]
#[repr(C)]
pub struct BlockKind {
    pub is_role: bool,
    /// Loaded from tradeguard_audit.blocked_sources (a sync replaces these).
    pub persisted: bool,
    /// An address lockout: the only kind another block may take the place of (an attacker
    /// with many addresses must not push out a role lockout or an admin's block).
    pub evictable: bool,
    /// A role lockout that applies through exempt addresses too: one caused by failures
    /// through them. A role locked by failures from elsewhere still logs in through an exempt
    /// pooler (or anyone could lock the pooled application out).
    pub exempt_too: bool,
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
        q.dropped = q.dropped.saturating_add(1);
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
        "reason": "the block table in shared memory is full of admin blocks, auto-blocks and role lockouts; the key is refused through its failure counter meanwhile; lift some blocks (tradeguard.unblock) or block a network instead of its addresses",
    });
    security_event("block_table_full", "critical", None, "", "", &detail.to_string())
}

/// Takes the queued events (and the count of those dropped) for the calling transaction to
/// store: if it aborts (an ERROR while storing them ends the worker), they are queued again, to
/// be stored by a later round, never lost with a failed one.
pub fn drain() -> (Vec<EventSlot>, u64) {
    let mut q = EVENTS.exclusive();
    let mut out = Vec::with_capacity((q.head - q.tail) as usize);
    while q.tail < q.head {
        let i = (q.tail % QUEUE_LEN as u64) as usize;
        out.push(q.slots[i]);
        q.tail += 1;
    }
    let dropped = std::mem::take(&mut q.dropped);
    drop(q);
    if !out.is_empty() || dropped > 0 {
        if !DRAINED_HOOKED.replace(true) {
            unsafe { pg_sys::RegisterXactCallback(Some(drained_xact_callback), std::ptr::null_mut()) };
        }
        DRAINED.with(|d| d.borrow_mut().push((out.clone(), dropped)));
    }
    (out, dropped)
}

thread_local! {
    /// Events this transaction drained from the queue, until it ends.
    static DRAINED: std::cell::RefCell<Vec<(Vec<EventSlot>, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
    static DRAINED_HOOKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn drained_xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    let Ok(mut drained) = DRAINED.with(|d| d.try_borrow_mut().map(|mut d| std::mem::take(&mut *d))) else { return };
    match event {
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => {
            for (events, dropped) in drained.drain(..) {
                restore_events(&events, dropped);
            }
        }
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PREPARE => {}
        // (Not ended yet: kept.)
        _ => DRAINED.with(|d| d.borrow_mut().append(&mut drained)),
    }
}

/// The events waiting in the queue, and how many were dropped, left where they are; None if
/// the queue's lock is held (see [`super::shmem::ZeroedLwLock::if_unheld`]).
///
/// # Safety
/// See [`super::shmem::ZeroedLwLock::if_unheld`].
pub unsafe fn pending_events() -> Option<(Vec<EventSlot>, u64)> {
    let q = unsafe { EVENTS.if_unheld() }?;
    Some(((q.tail..q.head).take(QUEUE_LEN).map(|n| q.slots[(n % QUEUE_LEN as u64) as usize]).collect(), q.dropped))
}

/// The failed-login counters in use, left where they are; None if their lock is taken (see
/// [`super::shmem::ZeroedLwLock::if_unheld`]).
///
/// # Safety
/// See [`super::shmem::ZeroedLwLock::if_unheld`].
pub unsafe fn pending_failures() -> Option<Vec<(FailEntry, Option<i64>)>> {
    let s = unsafe { AUTH.if_unheld() }?;
    Some(s.fails.iter().filter(|f| f.used).map(|f| (*f, locked_until(s, f))).collect())
}

/// Until when the key of `f` is blocked (by a block of its kind or by its own refusal), if it is.
fn locked_until(s: &AuthState, f: &FailEntry) -> Option<i64> {
    let block = s.blocks.iter().filter(|b| b.used && b.kind.is_role == f.is_role && b.key.as_str() == f.key.as_str()).map(|b| b.until).max();
    let refused = (f.refused_until > 0).then_some(f.refused_until);
    block.max(refused)
}

/// Puts back failed-login counters kept over a restart (see `common::persist`), into free
/// entries (those that do not fit are left out).
pub fn restore_failures(entries: &[FailEntry]) {
    let mut s = AUTH.exclusive();
    let mut free = s.fails.iter_mut().filter(|f| !f.used);
    for e in entries {
        match free.next() {
            Some(f) => *f = *e,
            None => break,
        }
    }
}

/// Queues events kept over a restart (see `common::persist`), with those dropped.
pub fn restore_events(events: &[EventSlot], dropped: u64) {
    for e in events {
        push(*e);
    }
    let mut q = EVENTS.exclusive();
    q.dropped = q.dropped.saturating_add(dropped);
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

/// The active block (key, until) that applies to a login of `role` from `addr` (None for an
/// exempt address: then only role lockouts caused through exempt addresses apply), if any;
/// also a lockout that did not fit the block table.
pub fn blocked(addr: Option<&IpAddr>, role: &str, at: i64) -> Option<(String, i64)> {
    let s = AUTH.share();
    let exempt_path = addr.is_none();
    let hit = s.blocks.iter().filter(|b| b.used && b.until > at).find_map(|b| {
        let hit = if b.kind.is_role {
            b.key.as_str() == role && (b.kind.exempt_too || !exempt_path)
        } else {
            addr.is_some_and(|a| addr_matches(b.key.as_str(), a))
        };
        hit.then(|| (b.key.as_str().to_string(), b.until))
    });
    hit.or_else(|| {
        let source = addr.map(source_key);
        s.fails.iter().filter(|f| f.used && f.refused_until > at).find_map(|f| {
            let hit = if f.is_role {
                f.key.as_str() == role && (f.via_exempt || !exempt_path)
            } else {
                source.as_deref() == Some(f.key.as_str())
            };
            hit.then(|| (f.key.as_str().to_string(), f.refused_until))
        })
    })
}

/// Counts a failure for `key` and returns how many fall inside the window, and the key's entry
/// in `s.fails` (a step whose last
/// failure is inside counts whole: a count errs towards locking, never below the failures of
/// the window).
fn count_failure(s: &mut AuthState, is_role: bool, via_exempt: bool, key: &str, at: i64, window: i64) -> (usize, usize) {
    let is = |f: &FailEntry| f.used && f.is_role == is_role && f.via_exempt == via_exempt && f.key.as_str() == key;
    let idx = s
        .fails
        .iter()
        .position(is)
        .or_else(|| s.fails.iter().position(|f| !f.used))
        .unwrap_or_else(|| {
            // Full: reuse the entry whose last failure is oldest.
            (0..FAIL_ENTRIES).min_by_key(|&i| s.fails[i].last.iter().copied().max().unwrap_or(0)).unwrap_or(0)
        });
    let f = &mut s.fails[idx];
    if !is(f) {
        *f = FailEntry {
            used: true,
            is_role,
            via_exempt,
            key: FixedStr::new(key),
            next: 0,
            first: [0; FAIL_STEPS],
            last: [0; FAIL_STEPS],
            count: [0; FAIL_STEPS],
            refused_until: 0,
        };
    }
    // FAIL_STEPS steps of this length span more than the window: a step is only reused once
    // its failures are all older than the window. (Backends read the clock before they take
    // the lock: a failure a little older than the current step's first belongs to it.)
    let step = window / (FAIL_STEPS as i64 - 1) + 1;
    let cur = (f.next as usize + FAIL_STEPS - 1) % FAIL_STEPS;
    if f.count[cur] > 0 && at - f.first[cur] < step {
        f.count[cur] = f.count[cur].saturating_add(1);
        f.last[cur] = f.last[cur].max(at);
    } else {
        let i = f.next as usize % FAIL_STEPS;
        (f.first[i], f.last[i], f.count[i]) = (at, at, 1);
        f.next = ((i + 1) % FAIL_STEPS) as u16;
    }
    let n = (0..FAIL_STEPS).filter(|&i| f.count[i] > 0 && at - f.last[i] <= window).map(|i| f.count[i] as usize).sum();
    (n, idx)
}

/// Stores a block; false when the table is full of blocks that must stay. A new block takes
/// the place of an expired one, else of the address lockout that ends first: an address
/// lockout is the only kind a block may push out (an attacker with many addresses cannot push
/// out a role lockout, an auto-block or an admin's block).
fn add_block(s: &mut AuthState, kind: BlockKind, key: &str, until: i64, now: i64) -> bool {
    let same = |b: &BlockEntry| b.used && b.kind.is_role == kind.is_role && b.key.as_str() == key;
    let idx = s
        .blocks
        .iter()
        .position(same)
        .or_else(|| s.blocks.iter().position(|b| !b.used || b.until <= now))
        .or_else(|| (0..BLOCK_ENTRIES).filter(|&i| s.blocks[i].kind.evictable).min_by_key(|&i| s.blocks[i].until));
    let Some(idx) = idx else { return false };
    let b = &mut s.blocks[idx];
    // The same key blocked again: the longer and wider of the two.
    let (until, kind) = if same(b) {
        let merged = BlockKind {
            is_role: kind.is_role,
            persisted: kind.persisted || b.kind.persisted,
            evictable: kind.evictable && b.kind.evictable,
            exempt_too: kind.exempt_too || b.kind.exempt_too,
        };
        (b.until.max(until), merged)
    } else {
        (until, kind)
    };
    *b = BlockEntry { used: true, kind, key: FixedStr::new(key), until };
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

/// A lockout [`register_failure`] set.
pub struct Lockout {
    pub is_role: bool,
    pub key: String,
    pub until: i64,
    /// False when the block table was full of blocks that must stay: the key is refused through
    /// its failure counter instead, until `until`.
    pub stored: bool,
    /// A role lockout caused by failures through an exempt address.
    pub via_exempt: bool,
}

/// Records a failed login of `role` from `addr` (None for an exempt address: counted for the
/// role only, apart from its other failures) and returns the lockouts it triggers.
pub fn register_failure(addr: Option<&IpAddr>, role: &str, at: i64) -> Vec<Lockout> {
    let window = crate::gucs::LOCKOUT_WINDOW.get() as i64 * 1_000_000;
    let duration = crate::gucs::LOCKOUT_DURATION.get() as i64 * 1_000_000;
    let max_addr = crate::gucs::MAX_FAILED_LOGINS.get() as usize;
    let max_role = crate::gucs::MAX_FAILED_LOGINS_PER_ROLE.get() as usize;
    let via_exempt = addr.is_none();
    let mut s = AUTH.exclusive();
    let mut out = Vec::new();
    // The lockout of the key counted in entry `f` of `s.fails`.
    let mut lock = |s: &mut AuthState, f: usize, is_role: bool, key: String| {
        let exempt_too = is_role && via_exempt;
        let kind = BlockKind { is_role, persisted: false, evictable: !is_role, exempt_too };
        let stored = add_block(s, kind, &key, at + duration, at);
        if !stored {
            s.fails[f].refused_until = at + duration;
        }
        out.push(Lockout { is_role, key, until: at + duration, stored, via_exempt: exempt_too });
    };
    if let Some(ip) = addr {
        let key = source_key(ip);
        let (n, f) = count_failure(&mut s, false, false, &key, at, window);
        if n >= max_addr && max_addr > 0 {
            lock(&mut s, f, false, key);
        }
    }
    let (n, f) = count_failure(&mut s, true, via_exempt, role, at, window);
    if n >= max_role && max_role > 0 {
        lock(&mut s, f, true, role.to_string());
    }
    out
}

/// A row of tradeguard_audit.blocked_sources, as the worker loads it.
pub struct StoredBlock {
    /// The source (CIDR text) or the role.
    pub key: String,
    pub is_role: bool,
    pub until: i64,
    /// An address lockout the hook set (the worker stored it).
    pub lockout: bool,
    /// A role lockout caused through an exempt address.
    pub exempt_too: bool,
}

/// Replaces the persisted blocks with `rows` and sets the freeze flag; returns the keys of the
/// rows that did not fit the block table. Blocks that must stay are loaded first, address
/// lockouts last (they give way when the table is full).
pub fn load_state(rows: &[StoredBlock], frozen: bool) -> Vec<String> {
    let mut s = AUTH.exclusive();
    let mut lifted = Vec::new();
    for b in s.blocks.iter_mut() {
        if b.kind.persisted && b.used {
            if !rows.iter().any(|r| r.is_role == b.kind.is_role && r.key == b.key.as_str()) {
                lifted.push(b.key.as_str().to_string());
            }
            b.used = false;
        }
    }
    let (mut left_out, at) = (Vec::new(), now());
    let mut order: Vec<&StoredBlock> = rows.iter().collect();
    order.sort_by_key(|r| r.lockout);
    for r in order {
        let kind = BlockKind { is_role: r.is_role, persisted: true, evictable: r.lockout && !r.is_role, exempt_too: r.exempt_too };
        if !add_block(&mut s, kind, &r.key, r.until, at) {
            left_out.push(r.key.clone());
        }
    }
    // A lifted block starts from a clean slate: its old failures no longer count (an address's
    // are counted under its block key, see source_key).
    for key in lifted {
        for f in s.fails.iter_mut() {
            if f.used && f.key.as_str() == key {
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
        let counts: Vec<usize> = (0..500).map(|i| count_failure(&mut s, true, false, "trader1", 1_000_000 + i * 100_000, window).0).collect();
        assert_eq!(counts[63], 64);
        assert_eq!(counts[499], 500);
        // One a minute for 20 minutes: only the last 15 minutes count, within one step.
        let mut t = state();
        let n = (0..20).map(|i| count_failure(&mut t, false, false, "192.0.2.1/32", (i + 1) * 60_000_000, window).0).last().unwrap();
        assert!((15..=16).contains(&n), "{n}");
        // Far apart: the window forgets them.
        assert_eq!(count_failure(&mut t, false, false, "192.0.2.1/32", 10_000 * 1_000_000, window).0, 1);
        // A failure stamped a little before the current step's first (its backend read the clock
        // before taking the lock) joins that step instead of opening one.
        let mut u = state();
        count_failure(&mut u, true, false, "trader1", 5_000_000, window);
        assert_eq!(count_failure(&mut u, true, false, "trader1", 4_999_000, window).0, 2);
        assert_eq!(u.fails[0].next, 1);
        // Through an exempt address, a role's failures are counted apart.
        assert_eq!(count_failure(&mut u, true, true, "trader1", 5_000_001, window).0, 1);
    }

    #[test]
    fn address_lockouts_never_push_out_role_lockouts_or_admin_blocks() {
        let mut s = state();
        let now = 1_000_000;
        let addr = BlockKind { evictable: true, ..Default::default() };
        let role = BlockKind { is_role: true, ..Default::default() };
        let admin = BlockKind { persisted: true, ..Default::default() };
        assert!(add_block(&mut s, role, "trader1", now + 100, now));
        assert!(add_block(&mut s, admin, "198.51.100.7/32", now + 50, now));
        for i in 0..BLOCK_ENTRIES * 2 {
            assert!(add_block(&mut s, addr, &format!("10.{}.{}.1/32", i / 256, i % 256), now + 10 + i as i64, now));
        }
        let has = |s: &AuthState, role: bool, k: &str| s.blocks.iter().any(|b| b.used && b.kind.is_role == role && b.key.as_str() == k);
        assert!(has(&s, true, "trader1") && has(&s, false, "198.51.100.7/32"));
        // A synced address lockout (persisted) still gives way.
        let synced = BlockKind { persisted: true, evictable: true, ..Default::default() };
        let mut q = state();
        for i in 0..BLOCK_ENTRIES {
            assert!(add_block(&mut q, synced, &format!("10.1.{}.{}/32", i / 256, i % 256), now + 100, now));
        }
        assert!(add_block(&mut q, admin, "203.0.113.0/24", now + 100, now));
        assert!(add_block(&mut q, role, "trader3", now + 100, now));
        // Full of blocks that must stay: nothing new fits and the caller is told.
        let mut p = state();
        for i in 0..BLOCK_ENTRIES {
            assert!(add_block(&mut p, admin, &format!("10.0.{}.{}/32", i / 256, i % 256), now + 100, now));
        }
        assert!(!add_block(&mut p, role, "trader2", now + 100, now));
        assert!(!add_block(&mut p, addr, "192.0.2.9/32", now + 100, now));
        // An expired block makes room.
        p.blocks[7].until = now - 1;
        assert!(add_block(&mut p, role, "trader2", now + 100, now));
        assert!(p.blocks[7].kind.is_role && p.blocks[7].key.as_str() == "trader2");
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
