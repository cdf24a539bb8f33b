//! What waits in shared memory survives a clean restart: key use counts and decryption counts
//! not stored yet (those of a database the worker does not serve wait there until
//! `tradeguard.seal()` runs in it), security and login events the worker has not drained, and
//! the failed-login counters (a restart must not give a password guesser a fresh count).
//!
//! As pg_stat_statements does: when the postmaster exits normally (after every other process,
//! the worker included, has exited), it writes them to `pg_stat/tradeguard_pending.json` in the
//! data directory (the data directory's file mode), and the next postmaster reads them back into
//! shared memory when it creates it. The file is removed by the worker when it starts, once the
//! server is up: a start that fails before (a port in use, a failed recovery) exits without
//! writing, and the file is still there for the next one. After a crash nothing is written:
//! what was pending then is lost (README, Known blind spots). An immediate shutdown also ends
//! with a normal exit of the postmaster, but stops the other processes wherever they are: a
//! structure whose lock one of them still held may be half-written, and is left out. The file
//! holds counts, role and database names, client addresses and event details, never key bytes or
//! plaintext; a file that does not parse, or of another format, is logged and ignored.

use std::ffi::c_int;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use pgrx::prelude::*;
use serde::{Deserialize, Serialize};

use super::security::{self, EventKind, EventSlot, FailEntry, FixedStr, FAIL_STEPS};
use crate::crypto::activity::{self, StatSlot};

/// Relative to the data directory (the postmaster's working directory), next to pgstat's own
/// file of the same kind.
const FILE: &str = "pg_stat/tradeguard_pending.json";
/// Bumped when what the file's fields mean changes (e.g. the numbering of `activity::Op` or
/// `security::EventKind`, which it stores as numbers): a file of another format is ignored.
const FORMAT: u32 = 1;

extern "C" {
    /// common/file_perm.h: the mode of files in the data directory (0600, or 0640 when the
    /// cluster allows group access).
    static pg_file_create_mode: c_int;
}

/// Set once the file has been read: shared memory made again after a crash does not read it
/// a second time (what it held may have been stored since).
static LOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Pending {
    format: u32,
    counts: Vec<Count>,
    counts_dropped: u64,
    events: Vec<Event>,
    events_dropped: u64,
    #[serde(default)]
    failures: Vec<Failures>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Count {
    op: u8,
    database: u32,
    role: u32,
    key_id: u32,
    version: u32,
    label: String,
    n: u64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Event {
    kind: u8,
    at: i64,
    success: bool,
    blocked: bool,
    event_type: String,
    severity: String,
    addr: String,
    role: String,
    database: String,
    detail: String,
}

/// The failed logins counted for one address or role: the steps of the window that hold any.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Failures {
    key: String,
    is_role: bool,
    via_exempt: bool,
    next: u16,
    steps: Vec<Step>,
    refused_until: i64,
    /// Until when the key was blocked at shutdown, if it was. When that block ends, a running
    /// server clears the key's failures (a lifted block starts from a clean slate): a block
    /// that ended while the server was down must not leave them behind to lock the key out
    /// again at its next mistake.
    #[serde(default)]
    locked_until: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Step {
    step: u16,
    first: i64,
    last: i64,
    count: u32,
}

impl Failures {
    fn of((f, locked_until): &(FailEntry, Option<i64>)) -> Failures {
        let steps = (0..FAIL_STEPS)
            .filter(|&i| f.count[i] > 0)
            .map(|i| Step { step: i as u16, first: f.first[i], last: f.last[i], count: f.count[i] })
            .collect();
        Failures {
            key: f.key.as_str().to_string(),
            is_role: f.is_role,
            via_exempt: f.via_exempt,
            next: f.next,
            steps,
            refused_until: f.refused_until,
            locked_until: *locked_until,
        }
    }

    /// The entry, if it names a key, its steps fit the window's ring, and the block it was
    /// under at shutdown (if any) has not ended by `now`.
    fn entry(&self, now: i64) -> Option<FailEntry> {
        if self.key.is_empty() || self.next as usize >= FAIL_STEPS || self.steps.iter().any(|s| s.step as usize >= FAIL_STEPS) {
            return None;
        }
        if self.locked_until.is_some_and(|until| until <= now) {
            return None;
        }
        let mut e = FailEntry {
            used: true,
            is_role: self.is_role,
            via_exempt: self.via_exempt,
            key: FixedStr::new(&self.key),
            next: self.next,
            first: [0; FAIL_STEPS],
            last: [0; FAIL_STEPS],
            count: [0; FAIL_STEPS],
            refused_until: self.refused_until,
        };
        for s in &self.steps {
            let i = s.step as usize;
            (e.first[i], e.last[i], e.count[i]) = (s.first, s.last, s.count);
        }
        Some(e)
    }
}

impl Count {
    fn of(x: &StatSlot) -> Count {
        Count {
            op: x.op,
            database: x.dboid,
            role: x.roleoid,
            key_id: x.key_id,
            version: x.key_version,
            label: x.label.as_str().to_string(),
            n: x.pending,
        }
    }

    /// The slot, if the entry is one tradeguard writes (a known operation, a count).
    fn slot(&self) -> Option<StatSlot> {
        let known = self.op == activity::Op::Encrypt as u8 || self.op == activity::Op::Decrypt as u8;
        (known && self.n > 0).then(|| StatSlot {
            used: true,
            op: self.op,
            dboid: self.database,
            roleoid: self.role,
            key_id: self.key_id,
            key_version: self.version,
            label: FixedStr::new(&self.label),
            pending: self.n,
        })
    }
}

impl Event {
    fn of(e: &EventSlot) -> Event {
        Event {
            kind: e.kind as u8,
            at: e.at,
            success: e.success,
            blocked: e.blocked,
            event_type: e.event_type.as_str().to_string(),
            severity: e.severity.as_str().to_string(),
            addr: e.addr.as_str().to_string(),
            role: e.role.as_str().to_string(),
            database: e.database.as_str().to_string(),
            detail: e.detail.as_str().to_string(),
        }
    }

    /// The queue slot, if the entry is of a kind the worker stores.
    fn slot(&self) -> Option<EventSlot> {
        let kind = match self.kind {
            k if k == EventKind::Security as u8 => EventKind::Security,
            k if k == EventKind::Auth as u8 => EventKind::Auth,
            _ => return None,
        };
        Some(EventSlot {
            kind,
            at: self.at,
            success: self.success,
            blocked: self.blocked,
            event_type: FixedStr::new(&self.event_type),
            severity: FixedStr::new(&self.severity),
            addr: FixedStr::new(&self.addr),
            role: FixedStr::new(&self.role),
            database: FixedStr::new(&self.database),
            detail: FixedStr::new(&self.detail),
        })
    }
}

static mut PREV_SHMEM_STARTUP_HOOK: pg_sys::shmem_startup_hook_type = None;

/// Called from `_PG_init` (preloaded) after the shared-memory structures are registered: this
/// hook runs after theirs.
pub fn install() {
    unsafe {
        PREV_SHMEM_STARTUP_HOOK = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    unsafe {
        if let Some(prev) = PREV_SHMEM_STARTUP_HOOK {
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| prev());
        }
        // The postmaster (or a single-user backend): it made shared memory, and its exit is the
        // last one.
        if pg_sys::IsUnderPostmaster {
            return;
        }
        if !LOADED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            load();
        }
        pg_sys::on_shmem_exit(Some(shmem_exit), pg_sys::Datum::from(0usize));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_exit(code: c_int, _arg: pg_sys::Datum) {
    // After a crash shared memory may be half-written: nothing is saved.
    if code != 0 {
        return;
    }
    // SAFETY: every other process has exited.
    let (pending, skipped) = unsafe { snapshot() };
    for what in skipped {
        pgrx::log!("tradeguard: pending {what} not kept: a process was stopped while writing them");
    }
    if pending.counts.is_empty()
        && pending.events.is_empty()
        && pending.failures.is_empty()
        && pending.counts_dropped == 0
        && pending.events_dropped == 0
    {
        // (A file from an earlier start that no worker removed must not be read again.)
        forget();
        return;
    }
    match save(&pending) {
        Ok(()) => pgrx::log!(
            "tradeguard: kept {} pending key and decryption counts, {} security events and {} failed-login counters in {FILE} for the next start",
            pending.counts.len(),
            pending.events.len(),
            pending.failures.len()
        ),
        Err(e) => pgrx::log!("tradeguard: could not write {FILE}: {e}; pending counts and events are lost"),
    }
}

/// What waits in shared memory now, and what was left out: a structure whose lock a stopped
/// process still holds (an immediate shutdown).
///
/// # Safety
/// No other process may be running (see `ZeroedLwLock::if_unheld`).
unsafe fn snapshot() -> (Pending, Vec<&'static str>) {
    let mut skipped = Vec::new();
    let (counts, counts_dropped) = unsafe { activity::pending() }.unwrap_or_else(|| {
        skipped.push("key and decryption counts");
        (Vec::new(), 0)
    });
    let (events, events_dropped) = unsafe { security::pending_events() }.unwrap_or_else(|| {
        skipped.push("security events");
        (Vec::new(), 0)
    });
    let failures = unsafe { security::pending_failures() }.unwrap_or_else(|| {
        skipped.push("failed-login counters");
        Vec::new()
    });
    let pending = Pending {
        format: FORMAT,
        counts: counts.iter().map(Count::of).collect(),
        counts_dropped,
        events: events.iter().map(Event::of).collect(),
        events_dropped,
        failures: failures.iter().map(Failures::of).collect(),
    };
    (pending, skipped)
}

/// Written to a temporary file, flushed, renamed, and the rename flushed: the file is whole or
/// absent.
fn save(pending: &Pending) -> std::io::Result<()> {
    let tmp = format!("{FILE}.tmp");
    // (A file left by an earlier failed write would keep its mode.)
    let _ = std::fs::remove_file(&tmp);
    // SAFETY: a global set once from the data directory's permissions at start-up.
    let mode = unsafe { pg_file_create_mode } as u32 & 0o640;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    f.write_all(&serde_json::to_vec(pending)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, FILE)?;
    std::fs::File::open("pg_stat")?.sync_all()
}

/// Removes the file once the server is up (the worker, as it starts): what it held is in shared
/// memory, and stored from there.
pub fn forget() {
    match std::fs::remove_file(FILE) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => pgrx::log!("tradeguard: could not remove {FILE}: {e}"),
    }
}

fn parse(bytes: &[u8]) -> Result<Pending, String> {
    let p: Pending = serde_json::from_slice(bytes).map_err(|e| format!("not readable: {e}"))?;
    if p.format != FORMAT {
        return Err(format!("format {} is not {FORMAT}", p.format));
    }
    Ok(p)
}

/// Reads the file back into shared memory (at start-up, before any other process exists). The
/// file stays until the worker starts ([`forget`]).
fn load() {
    let bytes = match std::fs::read(FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            pgrx::log!("tradeguard: could not read {FILE}: {e}");
            return;
        }
    };
    match parse(&bytes) {
        Ok(p) => {
            let counts: Vec<StatSlot> = p.counts.iter().filter_map(Count::slot).collect();
            let events: Vec<EventSlot> = p.events.iter().filter_map(Event::slot).collect();
            let now = unsafe { pg_sys::GetCurrentTimestamp() };
            let failures: Vec<FailEntry> = p.failures.iter().filter_map(|f| f.entry(now)).collect();
            activity::restore(&counts, p.counts_dropped);
            security::restore_events(&events, p.events_dropped);
            security::restore_failures(&failures);
            pgrx::log!(
                "tradeguard: restored {} pending key and decryption counts, {} security events and {} failed-login counters from the last shutdown",
                counts.len(),
                events.len(),
                failures.len()
            );
        }
        Err(e) => {
            pgrx::log!("tradeguard: ignored {FILE}: {e}");
            forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Pending {
        Pending {
            format: FORMAT,
            counts: vec![Count { op: 2, database: 5, role: 0, key_id: 3, version: 1, label: String::new(), n: 1200 }],
            counts_dropped: 7,
            events: vec![Event {
                kind: EventKind::Auth as u8,
                at: 42,
                success: false,
                blocked: true,
                event_type: "auth".into(),
                severity: "high".into(),
                addr: "192.0.2.1".into(),
                role: "trader".into(),
                database: "daytrading_prod".into(),
                detail: "authentication failed".into(),
            }],
            events_dropped: 1,
            failures: vec![Failures {
                key: "192.0.2.0/24".into(),
                is_role: false,
                via_exempt: false,
                next: 3,
                steps: vec![Step { step: 1, first: 10, last: 20, count: 2 }, Step { step: 2, first: 30, last: 30, count: 1 }],
                refused_until: 0,
                locked_until: None,
            }],
        }
    }

    #[test]
    fn round_trip() {
        let p = sample();
        assert_eq!(parse(&serde_json::to_vec(&p).unwrap()).unwrap(), p);
        let slot = p.counts[0].slot().unwrap();
        assert_eq!(Count::of(&slot), p.counts[0]);
        let event = p.events[0].slot().unwrap();
        assert_eq!(Event::of(&event), p.events[0]);
        let entry = p.failures[0].entry(100).unwrap();
        assert_eq!((entry.count[1], entry.count[2], entry.count[0], entry.last[1]), (2, 1, 0, 20));
        assert_eq!(Failures::of(&(entry, None)), p.failures[0]);
        // Blocked at shutdown: kept while the block lasts, dropped once it has ended.
        let mut locked = sample().failures.remove(0);
        locked.locked_until = Some(500);
        assert!(locked.entry(499).is_some());
        assert!(locked.entry(500).is_none());
        // A file from before the counters were kept reads as none.
        let old = br#"{"format":1,"counts":[],"counts_dropped":0,"events":[],"events_dropped":0}"#;
        assert!(parse(old).unwrap().failures.is_empty());
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        assert!(parse(b"").is_err());
        assert!(parse(b"{\"format\": 1").is_err());
        let mut p = sample();
        p.format = 2;
        assert!(parse(&serde_json::to_vec(&p).unwrap()).unwrap_err().contains("format 2"));
        // Unknown operations and event kinds, and empty counts, are skipped one by one.
        let mut p = sample();
        p.counts[0].op = 9;
        assert!(p.counts[0].slot().is_none());
        p.counts[0].op = 1;
        p.counts[0].n = 0;
        assert!(p.counts[0].slot().is_none());
        p.events[0].kind = EventKind::Empty as u8;
        assert!(p.events[0].slot().is_none());
        p.events[0].kind = 200;
        assert!(p.events[0].slot().is_none());
        // Steps outside the window's ring, or no key: left out.
        p.failures[0].steps[0].step = FAIL_STEPS as u16;
        assert!(p.failures[0].entry(0).is_none());
        p.failures[0].steps[0].step = 0;
        p.failures[0].next = FAIL_STEPS as u16;
        assert!(p.failures[0].entry(0).is_none());
        p.failures[0].next = 0;
        p.failures[0].key.clear();
        assert!(p.failures[0].entry(0).is_none());
    }

    #[test]
    fn long_text_is_cut_to_the_slot() {
        let mut p = sample();
        p.events[0].role = "é".repeat(100);
        let slot = p.events[0].slot().unwrap();
        assert!(slot.role.as_str().len() <= 64 && slot.role.as_str().chars().all(|c| c == 'é'));
    }
}
