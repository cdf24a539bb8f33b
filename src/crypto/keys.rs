//! The key store: the root key from `tradeguard.root_key_file`, data keys stored wrapped in
//! `tradeguard_audit.key_versions`, and a per-backend cache of unwrapped keys (zeroed on drop).
//!
//! The cache is valid for one key generation (a shared-memory counter bumped on every key
//! change) when tradeguard is preloaded, and for one transaction otherwise.

use std::cell::RefCell;
use rustc_hash::FxHashMap as HashMap;
use std::path::Path;
use std::rc::Rc;


use super::blind::Normalize;
use super::envelope::DataKey;
use super::error::CryptoError;
use super::rootkey::{self, RootKey};
use crate::common::{self, shmem};
use crate::error::TgResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Encrypt,
    BlindIndex,
}

impl Purpose {
    pub fn parse(s: &str) -> TgResult<Purpose> {
        match s {
            "encrypt" => Ok(Purpose::Encrypt),
            "blind_index" => Ok(Purpose::BlindIndex),
            other => Err(CryptoError::InvalidInput(format!(
                "unknown key purpose \"{other}\"; expected encrypt or blind_index"
            ))
            .into()),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Encrypt => "encrypt",
            Purpose::BlindIndex => "blind_index",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    DecryptOnly,
    Retired,
}

impl Status {
    fn parse(s: &str) -> Status {
        match s {
            "active" => Status::Active,
            "decrypt_only" => Status::DecryptOnly,
            _ => Status::Retired,
        }
    }
}

/// A key name and its current state.
#[derive(Debug)]
pub struct KeyInfo {
    pub key_id: u32,
    pub name: String,
    pub purpose: Purpose,
    pub normalize: Normalize,
    pub active_version: Option<u32>,
}

pub struct VersionEntry {
    pub status: Status,
    pub key: DataKey,
}

#[derive(Default)]
struct Cache {
    stamp: Option<u64>,
    root: Option<(String, Rc<RootKey>)>,
    by_name: HashMap<String, Rc<KeyInfo>>,
    by_id: HashMap<u32, Rc<KeyInfo>>,
    versions: HashMap<(u32, u32), Rc<VersionEntry>>,
    /// The transaction whose snapshot some cached version statuses were read with (REPEATABLE
    /// READ or SERIALIZABLE): they are dropped when it ends (a version retired meanwhile must
    /// not keep decrypting in the next transaction).
    snapshot_of: Option<u64>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn current_stamp() -> u64 {
    // High bit separates the two stamp sources so they never compare equal by accident.
    match shmem::key_generation() {
        Some(g) => g,
        None => (1u64 << 63) | shmem::local_xact_stamp(),
    }
}

/// Drops cached key names and data keys when keys changed since they were loaded.
fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let stamp = current_stamp();
        if c.stamp != Some(stamp) {
            c.by_name.clear();
            c.by_id.clear();
            c.versions.clear();
            // (Read again: the setting may name the same path with another file behind it.)
            c.root = None;
            c.stamp = Some(stamp);
        }
        if c.snapshot_of.is_some_and(|x| x != shmem::local_xact_stamp()) {
            c.versions.clear();
            c.snapshot_of = None;
        }
        f(&mut c)
    })
}

/// Forget everything cached in this backend (after key changes in this transaction).
pub fn invalidate() {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.stamp = None;
        c.by_name.clear();
        c.by_id.clear();
        c.versions.clear();
    });
    shmem::bump_key_generation();
    // Other backends may reload before this transaction commits and cache what they saw then
    // (e.g. the previous active version) under the new generation: bump again once the change
    // is visible, or undone.
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, shmem::bump_key_generation);
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, shmem::bump_key_generation);
    // ... and when a subtransaction rolls back (ROLLBACK TO SAVEPOINT after rotate_key): this
    // backend cached the version it created, which no longer exists; sealing with it would
    // make the values unreadable.
    CHANGED_IN.with(|c| c.set(shmem::local_xact_stamp()));
    SUBXACT_HOOKED.with(|h| {
        if !h.replace(true) {
            unsafe { pgrx::pg_sys::RegisterSubXactCallback(Some(keys_subxact_callback), std::ptr::null_mut()) };
        }
    });
}

thread_local! {
    /// The local transaction in which this backend last changed keys.
    static CHANGED_IN: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
    static SUBXACT_HOOKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn keys_subxact_callback(
    event: pgrx::pg_sys::SubXactEvent::Type,
    _my: pgrx::pg_sys::SubTransactionId,
    _parent: pgrx::pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pgrx::pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB && CHANGED_IN.with(|c| c.get()) == shmem::local_xact_stamp() {
        // (Never borrowed while PostgreSQL runs: but an abort must not fail here.)
        CACHE.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.stamp = None;
            }
        });
        shmem::bump_key_generation();
    }
}

/// The root key, read once per backend (again if the setting names another file).
pub fn root_key() -> TgResult<Rc<RootKey>> {
    let path = crate::gucs::root_key_file().ok_or(CryptoError::RootKeyNotConfigured)?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((p, k)) = &c.root {
            if *p == path {
                return Ok(k.clone());
            }
        }
        let key = Rc::new(RootKey::load(Path::new(&path))?);
        c.root = Some((path, key.clone()));
        Ok(key)
    })
}

pub fn validate_name(name: &str) -> TgResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CryptoError::InvalidKeyName(name.chars().take(80).collect()).into())
    }
}

const KEY_QUERY: &str = "SELECT k.key_id, k.name, k.purpose, k.normalize,
        (SELECT v.version FROM tradeguard_audit.key_versions v
          WHERE v.key_id = k.key_id AND v.status = 'active')
   FROM tradeguard_audit.keys k WHERE ";

fn load_key(where_clause: &str, arg: pgrx::datum::DatumWithOid<'_>) -> TgResult<Option<KeyInfo>> {
    let q = format!("{KEY_QUERY}{where_clause}");
    let row = common::as_owner(|| {
        common::spi_first_row_as_of(true, &q, &[arg], |row| {
            Ok((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<String>(4)?.unwrap_or_default(),
                row.get::<i32>(5)?,
            ))
        })
    })??;
    let Some((key_id, name, purpose, normalize, active)) = row else {
        return Ok(None);
    };
    Ok(Some(KeyInfo {
        key_id: key_id as u32,
        name,
        purpose: Purpose::parse(&purpose)?,
        normalize: Normalize::parse(&normalize)?,
        active_version: active.map(|v| v as u32),
    }))
}

fn remember(c: &mut Cache, info: KeyInfo) -> Rc<KeyInfo> {
    let info = Rc::new(info);
    c.by_name.insert(info.name.clone(), info.clone());
    c.by_id.insert(info.key_id, info.clone());
    info
}

/// Looks a key up by name.
pub fn key_by_name(name: &str) -> TgResult<Rc<KeyInfo>> {
    if let Some(k) = with_cache(|c| c.by_name.get(name).cloned()) {
        return Ok(k);
    }
    let info = load_key("k.name = $1", name.into())?.ok_or_else(|| CryptoError::UnknownKey(name.chars().take(80).collect()))?;
    Ok(with_cache(|c| remember(c, info)))
}

fn key_by_id(key_id: u32, version: u32) -> TgResult<Rc<KeyInfo>> {
    if let Some(k) = with_cache(|c| c.by_id.get(&key_id).cloned()) {
        return Ok(k);
    }
    let info = load_key("k.key_id = $1", (key_id as i32).into())?
        .ok_or(CryptoError::UnknownKeyVersion { key_id, version })?;
    Ok(with_cache(|c| remember(c, info)))
}

/// Unwraps (or takes from the cache) one data key version.
fn version_entry(info: &KeyInfo, version: u32) -> TgResult<Rc<VersionEntry>> {
    if let Some(v) = with_cache(|c| c.versions.get(&(info.key_id, version)).cloned()) {
        return Ok(v);
    }
    // As the transaction sees it (a REPEATABLE READ report keeps decrypting the values it sees
    // with a version retired since it began); a version it cannot see yet (the one a rotation
    // made active since, to seal with) as committed now.
    const VERSION_QUERY: &str = "SELECT status, wrapped, root_fingerprint FROM tradeguard_audit.key_versions WHERE key_id = $1 AND version = $2";
    let row = common::as_owner(|| -> Result<_, pgrx::spi::Error> {
        for latest in [false, true] {
            let row = common::spi_first_row_as_of(latest, VERSION_QUERY, &[(info.key_id as i32).into(), (version as i32).into()], |r| {
                Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<Vec<u8>>(2)?.unwrap_or_default(), r.get::<String>(3)?.unwrap_or_default()))
            })?;
            if row.is_some() {
                return Ok(row);
            }
        }
        Ok(None)
    })??;
    let (status, wrapped, stored_fp) = row.ok_or(CryptoError::UnknownKeyVersion { key_id: info.key_id, version })?;
    let root = root_key()?;
    let current_fp = root.fingerprint();
    if !rootkey::fingerprints_match(&stored_fp, &current_fp) {
        return Err(CryptoError::RootKeyMismatch { stored: stored_fp, current: current_fp }.into());
    }
    let raw = rootkey::unwrap_data_key(&root, &info.name, version, info.purpose.name(), &wrapped)?;
    let entry = Rc::new(VersionEntry { status: Status::parse(&status), key: DataKey::from_bytes(&raw) });
    with_cache(|c| {
        if unsafe { pgrx::pg_sys::XactIsoLevel } >= pgrx::pg_sys::XACT_REPEATABLE_READ as i32 {
            c.snapshot_of = Some(shmem::local_xact_stamp());
        }
        c.versions.insert((info.key_id, version), entry.clone())
    });
    Ok(entry)
}

/// The key and version new values are encrypted with.
pub fn encryption_key(name: &str, needed: Purpose) -> TgResult<(Rc<KeyInfo>, u32, Rc<VersionEntry>)> {
    let info = key_by_name(name)?;
    if info.purpose != needed {
        return Err(CryptoError::WrongPurpose {
            name: info.name.clone(),
            purpose: info.purpose.name(),
            needed: needed.name(),
        }
        .into());
    }
    let version = info.active_version.ok_or_else(|| CryptoError::UnknownKey(info.name.clone()))?;
    let entry = version_entry(&info, version)?;
    Ok((info, version, entry))
}

/// The data key for a stored value's key id and version; refuses retired versions.
pub fn decryption_key(key_id: u32, version: u32) -> TgResult<(Rc<KeyInfo>, Rc<VersionEntry>)> {
    let info = key_by_id(key_id, version)?;
    // A header naming a blind-index key (whose bytes are an HMAC key, never an AES key): the
    // purpose error, not a failed authentication under the wrong kind of key.
    if info.purpose != Purpose::Encrypt {
        return Err(CryptoError::WrongPurpose { name: info.name.clone(), purpose: info.purpose.name(), needed: Purpose::Encrypt.name() }.into());
    }
    let entry = version_entry(&info, version)?;
    if entry.status == Status::Retired {
        return Err(CryptoError::KeyRetired { name: info.name.clone(), version }.into());
    }
    Ok((info, entry))
}

/// Creates a new random data key version for `info` wrapped by the root key.
pub fn new_wrapped_version(name: &str, version: u32, purpose: Purpose) -> TgResult<(Vec<u8>, String)> {
    let root = root_key()?;
    let dk = DataKey::generate()?;
    let wrapped = rootkey::try_wrap_data_key(&root, name, version, purpose.name(), dk.as_bytes())?;
    Ok((wrapped, root.fingerprint()))
}


/// The name of a key id, when it exists (for display only).
pub fn key_name_by_id(key_id: u32) -> Option<String> {
    key_by_id(key_id, 0).ok().map(|k| k.name.clone())
}
