//! Who decrypted what, and how much each key version has encrypted, counted off the query path:
//! each backend counts in local memory and adds its counts to shared memory when its
//! transaction ends; the background worker folds them into `tradeguard_audit` (decrypt activity
//! per hour, key use counts), raises a security event when a role decrypts far more than usual,
//! and rotates a key version automatically before the AES-GCM random-nonce limit.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory};

use crate::common::shmem::{Zeroed, ZeroedLwLock};

use crate::common::security::FixedStr;

pub const STAT_SLOTS: usize = 1024;

#[derive(Copy, Clone, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    Decrypt = 1,
    Encrypt = 2,
}

#[derive(Copy, Clone)]
#[repr(C)]
pub struct StatSlot {
    pub used: bool,
    pub op: u8,
    pub dboid: u32,
    pub roleoid: u32,
    pub key_id: u32,
    pub key_version: u32,
    pub label: FixedStr<64>,
    pub pending: u64,
}

#[repr(C)]
pub struct Stats {
    pub slots: [StatSlot; STAT_SLOTS],
    pub dropped: u64,
}

unsafe impl PGRXSharedMemory for Stats {}

pub static STATS: ZeroedLwLock<Stats> = unsafe { ZeroedLwLock::new(c"tradeguard_key_stats") };

pub fn init() {
    pg_shmem_init!(STATS = Zeroed);
}

/// (operation, role that decrypted (0 for encryptions), key id, version, label).
type Key = (Op, u32, u32, u32, String);

/// Slots kept for the overflow counters (one per database, role and key version, label
/// [`OVERFLOW_LABEL`]): when many distinct columns or contexts fill the others, further
/// decryptions still count against the role and key that made them.
const OVERFLOW_SLOTS: usize = 128;
pub const OVERFLOW_LABEL: &str = "(other contexts: counters full)";

/// A decryption counter: (role, key id, version, label).
type DecryptCounter = (u32, u32, u32, String);

thread_local! {
    static LOCAL: RefCell<HashMap<Key, u64>> = RefCell::new(HashMap::new());
    /// The decryption counter last used: (role, key id, version, label) and its count.
    static LAST: RefCell<Option<(DecryptCounter, u64)>> = const { RefCell::new(None) };
    static ENC_LAST: Cell<(u32, u32, u64)> = const { Cell::new((0, 0, 0)) };
    static HOOKED_LXID: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// The column part of a context: `tg:3:42` → `tg:3`, `accounts.api_key:7` → `accounts.api_key`.
pub fn context_label(context: &str) -> String {
    label_of(context).to_string()
}

/// [`context_label`] as a prefix of `context` (no allocation on the per-value path).
fn label_of(context: &str) -> &str {
    let prefix_chars = |s: &str, n: usize| s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
    // Columns converted by encrypt_column bind to `tg:<column id>[:<primary key>]`.
    if let Some(rest) = context.strip_prefix("tg:") {
        let first = rest.split(':').next().unwrap_or_default();
        return &context[..3 + prefix_chars(first, 20)];
    }
    let base = match context.rfind(':') {
        Some(i) if i > 0 => &context[..i],
        _ => context,
    };
    &base[..prefix_chars(base, 64)]
}

/// Counts one operation; flushed to shared memory at the end of the transaction. The last
/// counter used is kept apart, so a scan over one column hashes and allocates nothing per value.
pub fn count(op: Op, key_id: u32, key_version: u32, context: &str) {
    if !crate::common::is_preloaded() {
        return;
    }
    if op == Op::Encrypt {
        // Encryptions carry no label: a plain counter for the key version last used.
        let (id, version, n) = ENC_LAST.get();
        if (id, version) == (key_id, key_version) && n > 0 {
            ENC_LAST.set((id, version, n + 1));
        } else {
            flush_enc_last();
            ENC_LAST.set((key_id, key_version, 1));
        }
    } else {
        count_decrypt(key_id, key_version, label_of(context));
    }
    let lxid = crate::common::shmem::local_xact_stamp();
    if HOOKED_LXID.with(|h| h.replace(lxid)) != lxid {
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, flush);
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, flush);
        // Parallel workers end their part of the transaction with these instead.
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::ParallelCommit, flush);
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::ParallelAbort, flush);
    }
}

fn flush_enc_last() {
    let (id, version, n) = ENC_LAST.replace((0, 0, 0));
    if n > 0 {
        LOCAL.with(|l| *l.borrow_mut().entry((Op::Encrypt, 0, id, version, String::new())).or_insert(0) += n);
    }
}

fn count_decrypt(key_id: u32, key_version: u32, label: &str) {
    // The role in effect now, not at the end of the transaction (a SET ROLE before COMMIT must
    // not move the count to another role).
    let role = unsafe { pg_sys::GetUserId().to_u32() };
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match last.as_mut() {
            Some((k, n)) if k.0 == role && k.1 == key_id && k.2 == key_version && k.3 == label => *n += 1,
            _ => {
                if let Some(((role, id, version, label), n)) = last.replace(((role, key_id, key_version, label.to_string()), 1)) {
                    LOCAL.with(|l| *l.borrow_mut().entry((Op::Decrypt, role, id, version, label)).or_insert(0) += n);
                }
            }
        }
    });
}

/// Adds this backend's counts to shared memory (a decryption counts even if its transaction
/// aborts: the plaintext was produced).
fn flush() {
    flush_enc_last();
    let mut local: HashMap<Key, u64> = LOCAL.with(|l| std::mem::take(&mut *l.borrow_mut()));
    if let Some(((role, id, version, label), n)) = LAST.with(|l| l.borrow_mut().take()) {
        *local.entry((Op::Decrypt, role, id, version, label)).or_insert(0) += n;
    }
    if local.is_empty() {
        return;
    }
    let dboid = unsafe { pg_sys::MyDatabaseId.to_u32() };
    add_to_shared(local.into_iter().map(|(k, n)| (dboid, k, n)));
}

/// Adds counts (database, counter, count) to shared memory.
fn add_to_shared(counts: impl IntoIterator<Item = (u32, Key, u64)>) {
    let mut s = STATS.exclusive();
    let mut used = s.slots.iter().filter(|x| x.used).count();
    for (dboid, (op, role, key_id, version, mut label), n) in counts {
        let find = |s: &Stats, label: &str| {
            s.slots.iter().position(|x| {
                x.used && x.op == op as u8 && x.dboid == dboid && x.roleoid == role && x.key_id == key_id
                    && x.key_version == version && x.label.as_str() == label
            })
        };
        let mut idx = find(&s, &label);
        if idx.is_none() && used >= STAT_SLOTS - OVERFLOW_SLOTS {
            // The labelled counters are full: the role's overflow counter for this key version.
            label = OVERFLOW_LABEL.to_string();
            idx = find(&s, &label);
        }
        let idx = idx.or_else(|| s.slots.iter().position(|x| !x.used));
        match idx {
            Some(i) => {
                let x = &mut s.slots[i];
                if !x.used {
                    used += 1;
                    *x = StatSlot {
                        used: true,
                        op: op as u8,
                        dboid,
                        roleoid: role,
                        key_id,
                        key_version: version,
                        label: FixedStr::new(&label),
                        pending: 0,
                    };
                }
                x.pending = x.pending.saturating_add(n);
            }
            None => s.dropped = s.dropped.saturating_add(n),
        }
    }
}

/// Takes the pending counts `wanted` picks (and, with `dropped`, how many were lost), freeing
/// their slots, to be stored by the calling transaction: if it aborts, they go back to shared
/// memory (stored by a later flush, never lost with a failed one).
fn take_to_store(wanted: impl Fn(&StatSlot) -> bool, dropped: bool) -> (Vec<StatSlot>, u64) {
    let mut s = STATS.exclusive();
    let mut out = Vec::new();
    for x in s.slots.iter_mut() {
        if !x.used || !wanted(x) {
            continue;
        }
        if x.pending > 0 {
            out.push(*x);
        }
        x.used = false;
        x.pending = 0;
    }
    let lost = if dropped { std::mem::take(&mut s.dropped) } else { 0 };
    drop(s);
    if !out.is_empty() || lost > 0 {
        if !TAKEN_HOOKED.replace(true) {
            unsafe {
                pg_sys::RegisterXactCallback(Some(taken_xact_callback), std::ptr::null_mut());
                pg_sys::RegisterSubXactCallback(Some(taken_subxact_callback), std::ptr::null_mut());
            }
        }
        let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
        TAKEN.with(|t| t.borrow_mut().push((subxact, out.clone(), lost)));
    }
    (out, lost)
}

thread_local! {
    /// Counts this transaction took from shared memory to store, by the subtransaction that took
    /// them: they go back if it rolls back (a savepoint included), and are forgotten at commit.
    static TAKEN: RefCell<Vec<(pg_sys::SubTransactionId, Vec<StatSlot>, u64)>> = const { RefCell::new(Vec::new()) };
    static TAKEN_HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// Puts back the taken counts `which` picks (called while a (sub)transaction aborts: never
/// fails).
fn put_back(which: impl Fn(pg_sys::SubTransactionId) -> bool) {
    let back: Vec<(Vec<StatSlot>, u64)> = TAKEN.with(|t| match t.try_borrow_mut() {
        Ok(mut t) => {
            let (back, keep) = std::mem::take(&mut *t).into_iter().partition(|(s, _, _)| which(*s));
            *t = keep;
            back.into_iter().map(|(_, slots, lost)| (slots, lost)).collect()
        }
        Err(_) => Vec::new(),
    });
    for (slots, lost) in back {
        restore(&slots, lost);
    }
}

/// Adds counts taken from shared memory back to it (a rolled-back store, or the counts kept
/// over a restart: see `common::persist`), with those lost.
pub fn restore(slots: &[StatSlot], lost: u64) {
    add_to_shared(slots.iter().map(|x| {
        let op = if x.op == Op::Encrypt as u8 { Op::Encrypt } else { Op::Decrypt };
        (x.dboid, (op, x.roleoid, x.key_id, x.key_version, x.label.as_str().to_string()), x.pending)
    }));
    let mut s = STATS.exclusive();
    s.dropped = s.dropped.saturating_add(lost);
}

/// The counts waiting in shared memory, and how many were lost, left where they are; None if
/// their lock is held (see [`crate::common::shmem::ZeroedLwLock::if_unheld`]).
///
/// # Safety
/// See [`crate::common::shmem::ZeroedLwLock::if_unheld`].
pub unsafe fn pending() -> Option<(Vec<StatSlot>, u64)> {
    let s = unsafe { STATS.if_unheld() }?;
    Some((s.slots.iter().filter(|x| x.used && x.pending > 0).copied().collect(), s.dropped))
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn taken_xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => put_back(|_| true),
        // A prepared transaction can still be rolled back (ROLLBACK PREPARED, possibly by
        // another session after a restart), and nothing would put the counts it took back:
        // refused while the transaction can still abort cleanly (which puts them back).
        XACT_EVENT_PRE_PREPARE if TAKEN.with(|t| t.try_borrow().map(|t| !t.is_empty()).unwrap_or(false)) => {
            use crate::error::OrRaise;
            Err::<(), crate::error::TgError>(
                crate::error::CoreError::CannotPrepare(
                    "this transaction stored key use counts (tradeguard.seal()) and cannot be prepared: a ROLLBACK PREPARED would lose them; call tradeguard.seal() in a transaction of its own",
                )
                .into(),
            )
            .or_raise();
        }
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PREPARE => {
            TAKEN.with(|t| t.try_borrow_mut().map(|mut t| t.clear()).ok());
        }
        _ => {}
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn taken_subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => put_back(|s| s == my),
        // What a committed subtransaction took now belongs to its parent.
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => TAKEN.with(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                t.iter_mut().filter(|(s, _, _)| *s == my).for_each(|(s, _, _)| *s = parent);
            }
        }),
        _ => {}
    }
}

/// What the worker stores: every decryption count (whatever its database: decrypt_activity is
/// kept in the worker's database) and the encryption counts of its own database. Encryption
/// counts of other databases stay in shared memory until `tradeguard.seal()` runs there
/// ([`store_encryptions_here`]): key ids are per database.
pub fn take() -> (Vec<StatSlot>, u64) {
    let mydb = unsafe { pg_sys::MyDatabaseId.to_u32() };
    take_to_store(|x| x.op == Op::Decrypt as u8 || x.dboid == mydb, true)
}

/// Stores the pending counts (called by the worker inside a transaction, in its database).
pub fn store() -> crate::error::TgResult<()> {
    let (slots, dropped) = take();
    let mydb = unsafe { pg_sys::MyDatabaseId.to_u32() };
    for x in &slots {
        if x.op == Op::Decrypt as u8 {
            // (Key ids are per database: another database's key is named by its id.)
            let key_name = if x.dboid == mydb { super::keys::key_name_by_id(x.key_id) } else { None }
                .unwrap_or_else(|| format!("#{}", x.key_id));
            let role = crate::common::role_name(pg_sys::Oid::from(x.roleoid));
            let db = unsafe {
                let p = pg_sys::get_database_name(pg_sys::Oid::from(x.dboid));
                if p.is_null() { format!("oid:{}", x.dboid) } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() }
            };
            Spi::run_with_args(
                "INSERT INTO tradeguard_audit.decrypt_activity AS a (hour, database_name, role_name, key_name, context, decryptions)
                 VALUES (pg_catalog.date_trunc('hour', pg_catalog.now()), $1, $2, $3, $4, $5)
                 ON CONFLICT (hour, database_name, role_name, key_name, context)
                 DO UPDATE SET decryptions = a.decryptions + EXCLUDED.decryptions, last_at = pg_catalog.now()",
                &[db.as_str().into(), role.as_str().into(), key_name.as_str().into(), x.label.as_str().into(), (x.pending as i64).into()],
            )?;
        }
    }
    let rotate = store_encryptions(&slots)?;
    if dropped > 0 {
        crate::common::events::record("stats_dropped", "high", &serde_json::json!({ "dropped": dropped }))?;
    }
    if !slots.is_empty() {
        let _ = crate::common::spi_first::<i32>("SELECT tradeguard_audit.check_decrypt_anomalies()", &[]);
    }
    rotate_due(rotate)
}

/// Stores this database's encryption counts (`tradeguard.seal()`: in a database the worker
/// does not serve, the only way they reach `keys.use_count` and rotate a key in time).
pub fn store_encryptions_here() -> crate::error::TgResult<()> {
    if !crate::common::is_preloaded() {
        return Ok(());
    }
    let mydb = unsafe { pg_sys::MyDatabaseId.to_u32() };
    let (slots, _) = take_to_store(|x| x.op == Op::Encrypt as u8 && x.dboid == mydb, false);
    let rotate = store_encryptions(&slots)?;
    rotate_due(rotate)
}

/// Adds the encryption counts of this database among `slots` to `key_versions.use_count`;
/// returns the keys whose active version reached `tradeguard.key_rotate_after`.
fn store_encryptions(slots: &[StatSlot]) -> crate::error::TgResult<Vec<String>> {
    let mydb = unsafe { pg_sys::MyDatabaseId.to_u32() };
    let mut rotate: Vec<String> = Vec::new();
    for x in slots {
        if x.op == Op::Encrypt as u8 && x.dboid == mydb {
            let Some(key_name) = super::keys::key_name_by_id(x.key_id) else { continue };
            let args = [
                (x.key_id as i32).into(),
                (x.key_version as i32).into(),
                (x.pending as i64).into(),
                (crate::gucs::KEY_ROTATE_AFTER.get() as i64).into(),
            ];
            let over = Spi::connect_mut(|c| {
                let t = c.update(
                    "UPDATE tradeguard_audit.key_versions SET use_count = use_count + $3
                      WHERE key_id = $1 AND version = $2
                      RETURNING status = 'active' AND use_count >= $4",
                    None,
                    &args,
                )?;
                if t.is_empty() { Ok::<_, pgrx::spi::Error>(None) } else { t.first().get::<bool>(1) }
            })?;
            if over == Some(true) {
                rotate.push(key_name);
            }
        }
    }
    Ok(rotate)
}

/// Rotates each key of `names` (their active version reached `tradeguard.key_rotate_after`).
fn rotate_due(names: Vec<String>) -> crate::error::TgResult<()> {
    for name in names {
        let v = super::rotate_key_impl(&name)?;
        crate::common::events::record(
            "key_rotated",
            "medium",
            &serde_json::json!({ "key": name, "new_version": v, "reason": "tradeguard.key_rotate_after reached" }),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_drop_the_row_part() {
        assert_eq!(super::context_label("tg:3:42"), "tg:3");
        assert_eq!(super::context_label("tg:3"), "tg:3");
        assert_eq!(super::context_label("accounts.api_key:7"), "accounts.api_key");
        assert_eq!(super::context_label(""), "");
        assert_eq!(super::context_label("nocolon"), "nocolon");
        assert_eq!(super::context_label(&format!("tg:{}:1", "é".repeat(30))), format!("tg:{}", "é".repeat(20)));
        assert_eq!(super::context_label(&format!("{}:1", "ü".repeat(70))), "ü".repeat(64));
    }
}
