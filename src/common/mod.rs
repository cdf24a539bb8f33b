//! Infrastructure shared by every capability: preload detection, privilege elevation for the
//! extension's own catalog access, and small SPI helpers.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;

use crate::error::{CoreError, TgResult};

static PRELOADED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static INTERNAL: Cell<u32> = const { Cell::new(0) };
}

/// While alive, the extension's own code may write its protected tables and change its own
/// triggers (the utility hook and the protect triggers let it through). Only Rust code can
/// create one; nothing in SQL can.
pub struct InternalWrite(());

impl InternalWrite {
    pub fn begin() -> Self {
        INTERNAL.with(|c| c.set(c.get() + 1));
        InternalWrite(())
    }
}

impl Drop for InternalWrite {
    fn drop(&mut self) {
        INTERNAL.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

pub fn internal_write_active() -> bool {
    INTERNAL.with(|c| c.get() > 0)
}

/// Suspends tradeguard's internal rights (see [`InternalWrite`]) until dropped. The utility hook
/// holds one while a statement tradeguard issued itself runs: what that statement sets off (a
/// superuser's event trigger, say) is inspected and refused like anyone's statement, and its
/// writes to the trail are refused, instead of running with tradeguard's rights. tradeguard's
/// own code nested in it begins its own [`InternalWrite`].
pub struct SuspendedInternal(u32);

impl SuspendedInternal {
    pub fn begin() -> Self {
        SuspendedInternal(INTERNAL.with(|c| c.replace(0)))
    }
}

impl Drop for SuspendedInternal {
    fn drop(&mut self) {
        INTERNAL.with(|c| c.set(self.0));
    }
}

/// Called from `_PG_init`: remembers whether we were loaded through `shared_preload_libraries`.
pub fn init() {
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(preloading, Ordering::Relaxed);
    if preloading {
        shmem::init();
        security::init();
        crate::crypto::activity::init();
        // (After the structures above: its start-up hook runs after theirs.)
        persist::install();
        auth::install();
        worker::register();
    }
}

pub mod auth;
pub mod events;
pub mod par;
pub mod persist;
pub mod security;
pub mod shmem;
pub mod worker;

/// True when the library was loaded by the postmaster (hooks, workers and shared memory exist).
pub fn is_preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// Fails with a message that says how to fix it when a feature needs `shared_preload_libraries`.
pub fn require_preload(feature: &'static str) -> TgResult<()> {
    if is_preloaded() {
        Ok(())
    } else {
        Err(CoreError::NotPreloaded { feature }.into())
    }
}

thread_local! {
    static OWNER: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// The role that owns the extension's protected objects (the owner of `tradeguard_audit`).
pub fn owner_oid() -> TgResult<pg_sys::Oid> {
    if let Some(oid) = OWNER.with(|c| {
        let v = c.get();
        (v != pg_sys::InvalidOid).then_some(v)
    }) {
        return Ok(oid);
    }
    // Read-only SPI: a decrypt must never assign a transaction id (parallel plans, standbys).
    let oid = spi_first::<pg_sys::Oid>(
        "SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = 'tradeguard_audit'",
        &[],
    )
    .map_err(CoreError::from)?
    .ok_or(CoreError::NotInstalled)?;
    OWNER.with(|c| c.set(oid));
    Ok(oid)
}

/// Sets setting `name` at the current GUC nest level (undone when that level ends).
///
/// # Safety
/// `value` must be a NUL-terminated string; a nest level opened by the caller must be open.
unsafe fn set_local(name: &std::ffi::CStr, value: *const std::ffi::c_char) {
    pg_sys::set_config_option(
        name.as_ptr(),
        value,
        pg_sys::GucContext::PGC_USERSET,
        pg_sys::GucSource::PGC_S_SESSION,
        pg_sys::GucAction::GUC_ACTION_SAVE,
        true,
        0,
        false,
    );
}

/// [`set_local`] of `search_path`.
///
/// # Safety
/// As for [`set_local`].
unsafe fn set_search_path(value: *const std::ffi::c_char) {
    set_local(c"search_path", value);
}

/// Runs `f` with setting `name` at `value`, the setting as it was restored after it (on ERROR,
/// transaction abort restores it).
pub fn with_local_setting<R>(name: &std::ffi::CStr, value: &std::ffi::CStr, f: impl FnOnce() -> R) -> R {
    unsafe {
        let nest = pg_sys::NewGUCNestLevel();
        set_local(name, value.as_ptr());
        let r = f();
        pg_sys::AtEOXact_GUC(false, nest);
        r
    }
}

/// How a piece of work run by [`in_subtransaction_caught`] failed (its subtransaction is rolled
/// back either way).
pub enum SubxactFailure {
    /// It returned an `Err`.
    Returned(crate::error::TgError),
    /// It raised an ERROR (PostgreSQL's or tradeguard's), kept whole: SQLSTATE and all.
    Raised(Box<pgrx::pg_sys::panic::CaughtError>),
}

impl SubxactFailure {
    /// The SQLSTATE of a raised ERROR.
    pub fn sqlstate(&self) -> Option<pgrx::PgSqlErrorCode> {
        use pgrx::pg_sys::panic::CaughtError as C;
        match self {
            Self::Raised(e) => match &**e {
                C::PostgresError(r) | C::ErrorReport(r) | C::RustPanic { ereport: r, .. } => Some(r.sql_error_code()),
            },
            Self::Returned(_) => None,
        }
    }

    /// The failure as it came: the ERROR raised again (with its SQLSTATE: a cancel stays a
    /// cancel), or the `Err` returned.
    pub fn resume<R>(self) -> TgResult<R> {
        match self {
            Self::Raised(e) => (*e).rethrow(),
            Self::Returned(e) => Err(e),
        }
    }
}

impl std::fmt::Display for SubxactFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use pgrx::pg_sys::panic::CaughtError as C;
        match self {
            Self::Raised(e) => match &**e {
                C::PostgresError(r) | C::ErrorReport(r) | C::RustPanic { ereport: r, .. } => f.write_str(r.message()),
            },
            Self::Returned(e) => write!(f, "{e}"),
        }
    }
}

/// Runs `f` in an internal subtransaction, as a PL/pgSQL block with an EXCEPTION clause does:
/// an ERROR it raises, or an `Err` it returns, rolls back only what it did, and comes back as the
/// error's message; the transaction goes on. (For the background worker: one piece of work that
/// fails must not hold up the others, round after round.)
pub fn in_subtransaction<R>(f: impl FnOnce() -> TgResult<R>) -> Result<R, String> {
    in_subtransaction_caught(f).map_err(|e| e.to_string())
}

/// [`in_subtransaction`], the failure kept whole: a caller that handles one kind of ERROR raises
/// the others again with [`SubxactFailure::resume`] (after the rollback, at its own level).
pub fn in_subtransaction_caught<R>(f: impl FnOnce() -> TgResult<R>) -> Result<R, SubxactFailure> {
    // SAFETY: the subtransaction is begun and ended here, and the caller's memory context and
    // resource owner are put back either way (as pl_exec.c does around an exception block).
    unsafe {
        let (cxt, owner) = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::CurrentMemoryContext = cxt;
        // A snapshot of now for `f`: until it writes, pgrx runs its queries read-only (the new
        // subtransaction has no transaction id yet), on the active snapshot, which would not
        // show what earlier subtransactions of this transaction wrote (the worker's reload of
        // blocks after storing a lockout). Popped by the subtransaction's abort on an ERROR.
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        // (What `f` leaves behind after an ERROR is rolled back with the subtransaction.)
        let f = std::panic::AssertUnwindSafe(f);
        let result = pgrx::PgTryBuilder::new(move || {
            let f = f;
            (f.0)().map_err(SubxactFailure::Returned)
        })
        .catch_others(|e| Err(SubxactFailure::Raised(Box::new(e))))
        .execute();
        if result.is_ok() {
            pg_sys::PopActiveSnapshot();
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) = (cxt, owner);
        result
    }
}

/// Runs `sql`, a `DROP ... IF EXISTS` of an object tradeguard makes again right after, without
/// PostgreSQL's "does not exist, skipping" NOTICE (noise to the caller: nothing it did).
pub fn run_quietly(sql: &str) -> Result<(), pgrx::spi::Error> {
    with_local_setting(c"client_min_messages", c"warning", || Spi::run(sql))
}

/// Runs `f` as the extension owner with `search_path = pg_catalog, pg_temp`, the way a
/// SECURITY DEFINER function with a pinned search_path would, but without losing who the caller
/// is: the caller's role has already passed the EXECUTE check on the SQL function. Used only for
/// the extension's own tables. On ERROR, transaction abort restores both the role and the GUC.
pub fn as_owner<R>(f: impl FnOnce() -> R) -> TgResult<R> {
    let owner = owner_oid()?;
    unsafe {
        let mut saved_uid = pg_sys::InvalidOid;
        let mut saved_ctx: i32 = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_uid, &mut saved_ctx);
        let nest = pg_sys::NewGUCNestLevel();
        pg_sys::SetUserIdAndSecContext(owner, saved_ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        set_search_path(c"pg_catalog, pg_temp".as_ptr());
        let r = f();
        pg_sys::AtEOXact_GUC(true, nest);
        pg_sys::SetUserIdAndSecContext(saved_uid, saved_ctx);
        Ok(r)
    }
}

/// Runs `f` as the owner of table `relid` inside a security-restricted operation (what
/// PostgreSQL does for VACUUM, ANALYZE or REFRESH MATERIALIZED VIEW): for statements on a user
/// table that run its code (triggers, CHECK constraints, index expressions), so that code
/// never runs with the extension owner's rights, whoever called tradeguard.
pub fn as_table_owner<R>(relid: pg_sys::Oid, f: impl FnOnce() -> R) -> TgResult<R> {
    let owner = spi_first::<pg_sys::Oid>("SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1", &[relid.into()])
        .map_err(CoreError::from)?
        .ok_or_else(|| CoreError::InvalidArgument("table vanished".into()))?;
    unsafe {
        let mut saved_uid = pg_sys::InvalidOid;
        let mut saved_ctx: i32 = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_uid, &mut saved_ctx);
        let restricted = (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
        pg_sys::SetUserIdAndSecContext(owner, saved_ctx | restricted);
        // Settings the owner's code changes (search_path, tradeguard.app_context) are rolled
        // back, as PostgreSQL does around index functions: they must not reach the caller.
        let nest = pg_sys::NewGUCNestLevel();
        // The owner's code finds its objects as it would in a session of its own (the
        // server's default search_path, "$user" then being the owner), not through the
        // pg_catalog-only path tradeguard's functions run with.
        let default = pg_sys::GetConfigOptionResetString(c"search_path".as_ptr());
        if !default.is_null() {
            set_search_path(default);
        }
        let r = f();
        pg_sys::AtEOXact_GUC(false, nest);
        pg_sys::SetUserIdAndSecContext(saved_uid, saved_ctx);
        Ok(r)
    }
}

/// Runs `f` with `search_path = pg_catalog, pg_temp` (as the current role): catalog queries
/// tradeguard runs on behalf of a statement (the utility hook's inspection) cannot be steered
/// by objects the caller created in its own schemas (an operator `=` shadowing pg_catalog's).
pub fn with_catalog_search_path<R>(f: impl FnOnce() -> R) -> R {
    unsafe {
        let nest = pg_sys::NewGUCNestLevel();
        set_search_path(c"pg_catalog, pg_temp".as_ptr());
        let r = f();
        // (false: nothing set inside outlives the call)
        pg_sys::AtEOXact_GUC(false, nest);
        r
    }
}

/// `relid` and every partition below it.
pub fn partition_tree(relid: pg_sys::Oid) -> TgResult<Vec<pg_sys::Oid>> {
    related_relations(relid, "SELECT pg_catalog.array_agg(relid::pg_catalog.oid) FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass)")
}

/// `relid` and every table it is a partition of.
pub fn partition_ancestors(relid: pg_sys::Oid) -> TgResult<Vec<pg_sys::Oid>> {
    related_relations(relid, concat!("SELECT pg_catalog.array_agg(x.relid) FROM ", crate::self_and_ancestors_sql!(), " x"))
}

/// `relid` and the relations `query` lists for it (pg_partition_tree lists nothing for a table
/// that is not partitioned).
fn related_relations(relid: pg_sys::Oid, query: &str) -> TgResult<Vec<pg_sys::Oid>> {
    let mut rels = with_catalog_search_path(|| spi_first::<Vec<pg_sys::Oid>>(query, &[relid.into()])).map_err(CoreError::from)?.unwrap_or_default();
    if !rels.contains(&relid) {
        rels.push(relid);
    }
    Ok(rels)
}

/// Whether the current role has the privileges of `role` (membership with inheritance).
pub fn is_member_of(role: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(role) else { return false };
    unsafe {
        let oid = pg_sys::get_role_oid(name.as_ptr(), true);
        oid != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid)
    }
}

/// Runs `f` as the extension owner without touching `search_path`: only for executing plans
/// tradeguard prepared itself (fully schema-qualified) and builtin calls such as `nextval`,
/// on the audit hot path where a GUC nest level per row would cost more than the write.
pub fn as_owner_fast<R>(f: impl FnOnce() -> R) -> TgResult<R> {
    let owner = owner_oid()?;
    unsafe {
        let mut saved_uid = pg_sys::InvalidOid;
        let mut saved_ctx: i32 = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_uid, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(owner, saved_ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        let r = f();
        pg_sys::SetUserIdAndSecContext(saved_uid, saved_ctx);
        Ok(r)
    }
}

/// The role the caller is acting as (`current_user`), by name.
pub fn current_role_name() -> String {
    role_name(unsafe { pg_sys::GetUserId() })
}

/// SQL text (for `concat!`): the relation `$1` and the partitioned tables it is a partition of,
/// nearest first, as `(relid oid, depth bigint)`. Triggers made on a partitioned table are cloned
/// onto its partitions, where they fire with the partition's oid: configuration registered for
/// the partitioned table is found through this. Read from pg_inherits, not
/// `pg_partition_ancestors()`, which stops at a partition whose `DETACH ... CONCURRENTLY` was
/// interrupted (still a partition, its triggers still cloned, until `FINALIZE`).
#[macro_export]
macro_rules! self_and_ancestors_sql {
    () => {
        "(WITH RECURSIVE up(relid, depth) AS (
            SELECT $1::oid, 0::bigint
            UNION ALL
            SELECT i.inhparent, up.depth + 1
              FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.relid
              JOIN pg_catalog.pg_class c ON c.oid = up.relid AND c.relispartition)
          SELECT relid, depth FROM up)"
    };
}

/// The name of the database this backend is connected to ("" if it cannot be read).
pub fn current_database_name() -> String {
    unsafe {
        let p = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if p.is_null() { String::new() } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() }
    }
}

/// SQL text (for `concat!`): the relation an `encrypted_columns` row `e` names, as a regclass
/// (NULL when no such table exists). Registrations name their table (names survive pg_dump).
#[macro_export]
macro_rules! registered_relid_sql {
    () => {
        "pg_catalog.to_regclass(pg_catalog.quote_ident(e.schema_name) || '.' || pg_catalog.quote_ident(e.table_name))"
    };
}

/// (schema, name) of a relation, if it exists.
pub fn relation_parts(relid: pg_sys::Oid) -> Option<(String, String)> {
    unsafe {
        let (nsp, rel) = (pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)), pg_sys::get_rel_name(relid));
        if nsp.is_null() || rel.is_null() {
            return None;
        }
        let text = |p: *mut std::ffi::c_char| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
        Some((text(nsp), text(rel)))
    }
}

/// `schema.table` of a relation (for messages), or `relation <oid>` if it no longer exists.
pub fn relation_name(relid: pg_sys::Oid) -> String {
    relation_parts(relid).map_or_else(|| format!("relation {}", relid.to_u32()), |(nsp, rel)| format!("{nsp}.{rel}"))
}

/// `schema.table` of a relation quoted for SQL text (both parts quoted as identifiers), if it
/// exists.
pub fn quoted_relation_name(relid: pg_sys::Oid) -> Option<String> {
    relation_parts(relid).map(|(nsp, rel)| format!("{}.{}", pgrx::spi::quote_identifier(nsp), pgrx::spi::quote_identifier(rel)))
}

/// A role's name, or `oid:<n>` for a role that no longer exists.
pub fn role_name(oid: pg_sys::Oid) -> String {
    unsafe {
        let name = pg_sys::GetUserNameFromId(oid, true);
        if name.is_null() {
            format!("oid:{}", oid.to_u32())
        } else {
            std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

/// The address of a client connected over TCP, read from its socket. Never the text of
/// `port->remote_host`: with `log_hostname = on` that holds the client's reverse-DNS name,
/// which the client's network chooses (it could even read as another address). None for a
/// Unix-socket connection.
///
/// # Safety
/// `port` must be null or the backend's `Port`.
pub unsafe fn client_ip(port: *const pg_sys::libpq::be::Port) -> Option<std::net::IpAddr> {
    if port.is_null() {
        return None;
    }
    let raddr = &(*port).raddr;
    let storage = std::ptr::addr_of!(raddr.addr) as *const u8;
    let len = raddr.salen as usize;
    // sockaddr_storage is large and aligned enough for either family.
    match raddr.addr.ss_family as i32 {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            let a = &*(storage as *const libc::sockaddr_in);
            Some(std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let a = &*(storage as *const libc::sockaddr_in6);
            Some(std::net::Ipv6Addr::from(a.sin6_addr.s6_addr).into())
        }
        _ => None,
    }
}

/// Build identification shown by `tradeguard.version()`.
pub fn version_string() -> String {
    format!(
        "tradeguard {} (commit {}, built {}, {} build, PostgreSQL {})",
        env!("CARGO_PKG_VERSION"),
        env!("TG_GIT_COMMIT"),
        env!("TG_BUILD_DATE"),
        if cfg!(debug_assertions) { "debug" } else { "release" },
        pg_sys::get_pg_major_version_num(),
    )
}

/// `tradeguard.version()`: the extension version, commit and build.
#[pg_extern(stable, parallel_safe)]
fn version() -> String {
    version_string()
}

/// `tradeguard.runtime_status()`: one row per component and whether it is active.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn runtime_status() -> TableIterator<'static, (name!(component, String), name!(active, bool), name!(detail, String))> {
    let preloaded = is_preloaded();
    let mut rows = vec![(
        "shared_preload_libraries".to_string(),
        preloaded,
        if preloaded {
            "tradeguard is preloaded: hooks, workers and shared memory are available".to_string()
        } else {
            "not preloaded: add 'tradeguard' to shared_preload_libraries and restart".to_string()
        },
    )];
    let worker_db = spi_first::<String>(
        "SELECT datname::text FROM pg_catalog.pg_stat_activity WHERE backend_type = 'tradeguard worker' LIMIT 1",
        &[],
    )
    .ok()
    .flatten();
    rows.push((
        "background worker".to_string(),
        worker_db.is_some(),
        match worker_db {
            Some(db) => format!("serving database {db} (tradeguard.database_name = {})", crate::gucs::database_name()),
            None => format!("not running (tradeguard.database_name = {})", crate::gucs::database_name()),
        },
    ));
    let root = crate::crypto::keys::root_key();
    rows.push((
        "root key".to_string(),
        root.is_ok(),
        match root {
            Ok(k) => format!("loaded, fingerprint {}", k.fingerprint()),
            Err(e) => e.to_string(),
        },
    ));
    // Sealing keeps up when no committed row waits more than a minute (the trail is read as
    // the extension owner: the caller may not read it).
    let backlog = as_owner(|| {
        spi_first_row(
            "SELECT pg_catalog.count(*), coalesce(pg_catalog.date_part('epoch', pg_catalog.now() - pg_catalog.min(at)), 0)::float8
               FROM tradeguard_audit.log WHERE block_no IS NULL",
            &[],
            |r| Ok((r.get::<i64>(1)?.unwrap_or(0), r.get::<f64>(2)?.unwrap_or(0.0))),
        )
    });
    if let Ok(Ok(Some((waiting, oldest)))) = backlog {
        rows.push((
            "audit sealing".to_string(),
            oldest < 60.0,
            if waiting == 0 {
                "every audit row is sealed".to_string()
            } else {
                format!("{waiting} audit rows wait to be sealed, the oldest for {oldest:.0} s")
            },
        ));
    }
    TableIterator::new(rows)
}

pgrx::extension_sql_file!("../../sql/common.sql", name = "common_sql", requires = [version, runtime_status]);

/// In-database tests: compiled only by `cargo pgrx test` (feature `pg_test`).
#[cfg(feature = "pg_test")]
mod tests;

/// For in-database tests: the message of the utility hook's refusal of `what` outside
/// break-glass.
#[cfg(feature = "pg_test")]
pub fn refusal(what: &str) -> String {
    format!("tradeguard: cannot change {what}: protected by tradeguard; a tradeguard_admin member must call tradeguard.break_glass(reason) first")
}

/// For in-database tests: the error message `sql` raises, run inside a PL/pgSQL exception block
/// (a subtransaction, so the test's transaction goes on); `None` when it succeeds.
#[cfg(feature = "pg_test")]
pub fn sql_error(sql: &str) -> Option<String> {
    let missing = Spi::get_one::<bool>("SELECT pg_catalog.to_regprocedure('pg_temp.tg_sql_error(text)') IS NULL")
        .expect("pg_temp lookup")
        .unwrap_or(true);
    if missing {
        Spi::run(
            "CREATE FUNCTION pg_temp.tg_sql_error(q text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE q; RETURN NULL; EXCEPTION WHEN OTHERS THEN RETURN SQLERRM; END $f$",
        )
        .expect("create pg_temp.tg_sql_error");
    }
    Spi::get_one::<String>(&format!("SELECT pg_temp.tg_sql_error({})", pgrx::spi::quote_literal(sql))).expect("pg_temp.tg_sql_error")
}

/// The first row of a read-only query mapped by `f`, or `None` when there is no row.
/// (pgrx's `Spi::get_one` treats "no row" as an error, and marks the transaction as writing.)
pub fn spi_first_row<T>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: impl FnOnce(&pgrx::spi::SpiTupleTable<'_>) -> Result<T, pgrx::spi::Error>,
) -> Result<Option<T>, pgrx::spi::Error> {
    Spi::connect(|client| {
        let t = client.select(query, Some(1), args)?;
        if t.is_empty() {
            Ok(None)
        } else {
            f(&t.first()).map(Some)
        }
    })
}

/// Every row of a read-only query, each mapped by `f`.
pub fn spi_rows<T>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    mut f: impl FnMut(&pgrx::spi::SpiHeapTupleData<'_>) -> Result<T, pgrx::spi::Error>,
) -> Result<Vec<T>, pgrx::spi::Error> {
    Spi::connect(|client| client.select(query, None, args)?.map(|r| f(&r)).collect())
}

/// [`spi_first_row`], with the latest committed state when `latest` (a fresh snapshot, as
/// PostgreSQL reads its catalogs) instead of the transaction's: under REPEATABLE READ or
/// SERIALIZABLE the transaction's snapshot would miss a key rotated or retired since it began,
/// and a value would be sealed with a version that no longer decrypts. The transaction's own
/// earlier changes are seen either way; without `latest` it reads as [`spi_first_row`] does.
pub fn spi_first_row_as_of<T>(
    latest: bool,
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: impl FnOnce(&FirstRow) -> Result<T, pgrx::spi::Error>,
) -> Result<Option<T>, pgrx::spi::Error> {
    let q = std::ffi::CString::new(query).expect("query text without NUL");
    Spi::connect(|_client| unsafe {
        let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
        let (mut values, nulls): (Vec<pg_sys::Datum>, Vec<std::ffi::c_char>) = args
            .iter()
            .map(|a| match a.datum() {
                Some(d) => (d.sans_lifetime(), b' ' as std::ffi::c_char),
                None => (pg_sys::Datum::from(0usize), b'n' as std::ffi::c_char),
            })
            .unzip();
        // (Errors in either call are raised by PostgreSQL.)
        let plan = pg_sys::SPI_prepare(q.as_ptr(), types.len() as i32, types.as_mut_ptr());
        // (A parallel worker cannot take a snapshot: it reads with the one it was given. It only
        // decrypts: no INSERT or UPDATE runs in parallel mode.)
        let snapshot = if latest && !pg_sys::IsInParallelMode() { pg_sys::GetLatestSnapshot() } else { std::ptr::null_mut() };
        // (Without a snapshot, SPI's own choice, as pgrx's select makes it: the active snapshot
        // until the transaction writes, a new one per command after that.)
        let read_only = !snapshot.is_null() || pg_sys::GetCurrentTransactionIdIfAny() == pg_sys::InvalidTransactionId;
        let rc = pg_sys::SPI_execute_snapshot(
            plan,
            values.as_mut_ptr(),
            nulls.as_ptr(),
            snapshot,
            std::ptr::null_mut(),
            read_only,
            false,
            1,
        );
        if rc != pg_sys::SPI_OK_SELECT as i32 {
            return Err(pgrx::spi::SpiError::SpiError(pgrx::spi::SpiErrorCodes::OpUnknown));
        }
        let tt = pg_sys::SPI_tuptable;
        if tt.is_null() || pg_sys::SPI_processed == 0 {
            return Ok(None);
        }
        f(&FirstRow { tuple: *(*tt).vals, desc: (*tt).tupdesc }).map(Some)
    })
}

/// A row read by [`spi_first_row_as_of`] (valid inside its callback).
pub struct FirstRow {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl FirstRow {
    /// Column `n` (1-based), `None` when NULL.
    pub fn get<T: pgrx::FromDatum>(&self, n: i32) -> Result<Option<T>, pgrx::spi::Error> {
        unsafe {
            let mut isnull = false;
            let d = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut isnull);
            Ok(T::from_polymorphic_datum(d, isnull, pg_sys::SPI_gettypeid(self.desc, n)))
        }
    }
}

/// First column of the first row, or `None` when the query returns no row or NULL.
pub fn spi_first<T: pgrx::FromDatum + pgrx::IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<Option<T>, pgrx::spi::Error> {
    Ok(spi_first_row(query, args, |r| r.get::<T>(1))?.flatten())
}

/// A datum's text through its type's output function.
///
/// # Safety
/// `datum` must be a valid, non-null datum of type `typid`.
pub unsafe fn datum_text(datum: pg_sys::Datum, typid: pg_sys::Oid) -> String {
    let mut func = pg_sys::InvalidOid;
    let mut varlena = false;
    pg_sys::getTypeOutputInfo(typid, &mut func, &mut varlena);
    let cstr = pg_sys::OidOutputFunctionCall(func, datum);
    let s = std::ffi::CStr::from_ptr(cstr).to_string_lossy().into_owned();
    pg_sys::pfree(cstr.cast());
    s
}

/// The row a row-level trigger is writing (NEW for INSERT/UPDATE, OLD for DELETE) and the
/// row it replaces (OLD for UPDATE/DELETE).
pub fn trigger_tuples(trigger: &pgrx::PgTrigger<'_>) -> (*mut pg_sys::HeapTupleData, *mut pg_sys::HeapTupleData, pg_sys::TupleDesc) {
    let td = trigger.trigger_data();
    unsafe {
        let tupdesc = (*td.tg_relation).rd_att;
        if pgrx::trigger_support::trigger_fired_by_update(td.tg_event) {
            (td.tg_newtuple, td.tg_trigtuple, tupdesc)
        } else if pgrx::trigger_support::trigger_fired_by_delete(td.tg_event) {
            (std::ptr::null_mut(), td.tg_trigtuple, tupdesc)
        } else {
            (td.tg_trigtuple, std::ptr::null_mut(), tupdesc)
        }
    }
}

pgrx::extension_sql_file!("../../sql/security_base.sql", name = "security_base", requires = [worker::sync_state]);

pgrx::extension_sql_file!(
    "../../sql/security.sql",
    name = "security_sql",
    requires = ["security_base", "ids_sql", "audit_sql", "selfaudit_sql"]
);

/// The bytes of any varlena datum: detoasted when compressed or out of line, read in place
/// (short header included) otherwise, so verify() copies nothing for ordinary rows.
/// Plain in-line values (the usual case, once per written row) are read without a call into
/// PostgreSQL.
pub fn varlena_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    use pgrx::varlena::{varatt_is_1b, varatt_is_1b_e, varatt_is_4b_u};
    unsafe {
        let v = d.cast_mut_ptr::<pg_sys::varlena>();
        let inline = (varatt_is_1b(v) && !varatt_is_1b_e(v)) || varatt_is_4b_u(v);
        let v = if inline { v } else { pg_sys::pg_detoast_datum_packed(v) };
        pgrx::varlena::varlena_to_byte_slice(v)
    }
}
