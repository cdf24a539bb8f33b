//! Every tradeguard setting, declared in one place (`tradeguard.*`).

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `tradeguard.root_key_file`: path of the 32-byte root key (mode 0600, owned by the server user).
pub static ROOT_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `tradeguard.audit_decrypt`: record every individual decryption in the audit trail.
pub static AUDIT_DECRYPT: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `tradeguard.key_rotate_after`: encryptions after which a key version is rotated automatically.
pub static KEY_ROTATE_AFTER: GucSetting<i32> = GucSetting::<i32>::new(1 << 30);

/// `tradeguard.seal_interval`: milliseconds between two seals of the audit trail by the worker.
pub static SEAL_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(200);

/// `tradeguard.database_name`: the database whose audit trail the background worker seals.
pub static DATABASE_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// `tradeguard.app_context`: application context recorded with audit rows (set_context()).
pub static APP_CONTEXT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `tradeguard.restore_mode`: lets pg_restore load already-signed audit rows (superuser only).
pub static RESTORE_MODE: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `tradeguard.restore_mode` in effect: on, for a superuser (a superuser's setting, also when
/// `GRANT SET ON PARAMETER` handed it to another role).
pub fn restore_mode() -> bool {
    RESTORE_MODE.get() && unsafe { pgrx::pg_sys::superuser() }
}

/// `tradeguard.max_failed_logins`: failures from one address within the window before it is blocked.
pub static MAX_FAILED_LOGINS: GucSetting<i32> = GucSetting::<i32>::new(5);
/// `tradeguard.max_failed_logins_per_role`: failures for one role (any address) before it is blocked.
pub static MAX_FAILED_LOGINS_PER_ROLE: GucSetting<i32> = GucSetting::<i32>::new(20);
/// `tradeguard.lockout_window`: seconds over which failures are counted.
pub static LOCKOUT_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(900);
/// `tradeguard.lockout_duration`: seconds a locked-out source or role stays blocked.
pub static LOCKOUT_DURATION: GucSetting<i32> = GucSetting::<i32>::new(900);
/// `tradeguard.lockout_exempt`: comma-separated CIDRs that are never locked out.
pub static LOCKOUT_EXEMPT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `tradeguard.auto_block_score`: risk score (0-100) at which a source is blocked automatically.
pub static AUTO_BLOCK_SCORE: GucSetting<i32> = GucSetting::<i32>::new(80);
/// `tradeguard.auto_block_injection`: whether injection attempts count towards an automatic block.
pub static AUTO_BLOCK_INJECTION: GucSetting<bool> = GucSetting::<bool>::new(false);
/// `tradeguard.alert_min_severity`: events at or above this severity are alerted.
pub static ALERT_MIN_SEVERITY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"high"));

/// `tradeguard.decrypt_alert_threshold`: decryptions per hour by one role of one key below which
/// no anomaly is raised, whatever the role's usual volume.
pub static DECRYPT_ALERT_THRESHOLD: GucSetting<i32> = GucSetting::<i32>::new(10_000);

/// `tradeguard.archive_min_age`: minutes a block must have been sealed for before
/// `archive_blocks` may remove it (0: no minimum).
pub static ARCHIVE_MIN_AGE: GucSetting<i32> = GucSetting::<i32>::new(30 * 24 * 60);

/// `tradeguard.auth_failure_delay`: milliseconds a failed password authentication waits before
/// it is answered (0: none), as the auth_delay module does.
pub static AUTH_FAILURE_DELAY: GucSetting<i32> = GucSetting::<i32>::new(0);

/// `tradeguard.verify_threads`: threads (the backend's own included) that hash the rows
/// verify() checks.
pub static VERIFY_THREADS: GucSetting<i32> = GucSetting::<i32>::new(2);

/// Registers all settings; called once from `_PG_init`.
pub fn init() {
    GucRegistry::define_int_guc(
        c"tradeguard.decrypt_alert_threshold",
        c"Decryptions per hour by one role with one key that raise a decrypt_anomaly event when also 10x the role's usual volume.",
        c"",
        &DECRYPT_ALERT_THRESHOLD,
        1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::default(),
    );
    for (name, short, setting, min, max, unit) in [
        (c"tradeguard.max_failed_logins", c"Failed logins from one client address within tradeguard.lockout_window before it is blocked (0 disables).", &MAX_FAILED_LOGINS, 0, 1_000_000, GucFlags::default()),
        (c"tradeguard.max_failed_logins_per_role", c"Failed logins for one role from any address within tradeguard.lockout_window before the role is blocked (0 disables).", &MAX_FAILED_LOGINS_PER_ROLE, 0, 1_000_000, GucFlags::default()),
        (c"tradeguard.lockout_window", c"Seconds over which failed logins are counted.", &LOCKOUT_WINDOW, 1, 86_400 * 7, GucFlags::UNIT_S),
        (c"tradeguard.lockout_duration", c"Seconds a locked-out address or role stays blocked.", &LOCKOUT_DURATION, 1, 86_400 * 365, GucFlags::UNIT_S),
        (c"tradeguard.auto_block_score", c"Risk score (0-100) over the last hour at which a source is blocked automatically (0 disables).", &AUTO_BLOCK_SCORE, 0, 100, GucFlags::default()),
    ] {
        GucRegistry::define_int_guc(name, short, c"", setting, min, max, GucContext::Sighup, unit);
    }
    GucRegistry::define_string_guc(
        c"tradeguard.lockout_exempt",
        c"Comma-separated CIDRs never locked out (the DBA's own addresses).",
        c"Local Unix-socket connections are never locked out either.",
        &LOCKOUT_EXEMPT,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tradeguard.alert_min_severity",
        c"Security events at or above this severity (info, low, medium, high, critical) raise an alert.",
        c"Alerts are sent with NOTIFY tradeguard_alert and written to the server log with the prefix tradeguard:.",
        &ALERT_MIN_SEVERITY,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tradeguard.seal_interval",
        c"Milliseconds between two seals of the audit trail by the background worker.",
        c"Each seal puts the committed, unsealed audit rows into a new block of the hash chain.",
        &SEAL_INTERVAL,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"tradeguard.auth_failure_delay",
        c"Milliseconds a failed authentication over TCP waits before it is answered (0: none).",
        c"Slows password guessing on each connection, on top of the lockout. Each waiting attempt holds a connection slot: keep it short.",
        &AUTH_FAILURE_DELAY,
        0,
        10_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"tradeguard.verify_threads",
        c"Threads, the backend's own included, that recompute row signatures and Merkle roots in verify().",
        c"1 keeps verify() on one core. The extra threads only hash bytes the backend read; they never call into PostgreSQL.",
        &VERIFY_THREADS,
        1,
        16,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tradeguard.archive_min_age",
        c"How long a block of the audit trail must have been sealed before archive_blocks may remove it.",
        c"Recent evidence stays in the trail whoever asks: archiving newer blocks is refused. Superusers only (an admin cannot shorten it); 0 removes the minimum.",
        &ARCHIVE_MIN_AGE,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MIN,
    );
    GucRegistry::define_string_guc(
        c"tradeguard.database_name",
        c"Database whose audit trail and security events the tradeguard background worker serves.",
        c"Other databases seal with tradeguard.seal(). The worker reads it when it starts (it restarts if the database goes away).",
        &DATABASE_NAME,
        // Not PGC_POSTMASTER: those cannot be defined when the library is loaded after start-up.
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tradeguard.app_context",
        c"Application context (JSON) recorded with each audit row; set it with tradeguard.set_context().",
        c"",
        &APP_CONTEXT,
        GucContext::Userset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"tradeguard.auto_block_injection",
        c"Count injection attempts towards tradeguard.auto_block_score when deciding an automatic block.",
        c"Off by default: an injection attempt sent through an application carries the application server's address, and blocking it would stop the application.",
        &AUTO_BLOCK_INJECTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"tradeguard.restore_mode",
        c"Accept already-signed audit rows during pg_restore (verify() still checks them).",
        c"Set it only for a restore: PGOPTIONS='-c tradeguard.restore_mode=on' pg_restore ...",
        &RESTORE_MODE,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SAFETY: the hook only counts (it cannot fail, as an assign hook must not).
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"tradeguard.root_key_file",
            c"Path of the tradeguard root key file (32 random bytes, hex or base64, mode 0600).",
            c"Keep it outside the data directory. Data keys are stored wrapped by this key; without it nothing decrypts.",
            &ROOT_KEY_FILE,
            GucContext::Sighup,
            GucFlags::SUPERUSER_ONLY,
            None,
            Some(root_key_file_assigned),
            None,
        );
    }
    GucRegistry::define_bool_guc(
        c"tradeguard.audit_decrypt",
        c"Record each individual decryption in the audit trail.",
        c"Decryptions are always counted per role, key and column (tradeguard.decrypt_activity); this adds one signed audit row per call, which makes the decrypting query write.",
        &AUDIT_DECRYPT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tradeguard.key_rotate_after",
        c"Encryptions with one data key version after which tradeguard rotates the key automatically.",
        c"AES-GCM with random 96-bit nonces must stay well below 2^32 encryptions per key.",
        &KEY_ROTATE_AFTER,
        1000,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// How many times `tradeguard.root_key_file` has been assigned in this process (at start-up and
/// at each reload that sets it, even to the same path: the file may have changed). Read by
/// `common::shmem::key_generation` on every key lookup: a counter, not a comparison of paths.
pub static ROOT_KEY_FILE_ASSIGNMENTS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C-unwind" fn root_key_file_assigned(_newval: *const std::ffi::c_char, _extra: *mut std::ffi::c_void) {
    ROOT_KEY_FILE_ASSIGNMENTS.fetch_add(1, Ordering::Relaxed);
}

/// The configured root key path, if any.
pub fn root_key_file() -> Option<String> {
    ROOT_KEY_FILE.get().map(|c| c.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
}

/// The database the background worker connects to.
pub fn database_name() -> String {
    DATABASE_NAME.get().map(|c| c.to_string_lossy().into_owned()).unwrap_or_else(|| "postgres".into())
}

/// The CIDRs in `tradeguard.lockout_exempt` that parse.
pub fn lockout_exempt() -> Vec<ipnet::IpNet> {
    LOCKOUT_EXEMPT
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| {
            let s = s.trim();
            s.parse::<ipnet::IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
        })
        .collect()
}
