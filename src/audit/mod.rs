//! Signed, tamper-evident audit trail.
//!
//! `audit_table` installs native row and TRUNCATE triggers; each change becomes a row of
//! `tradeguard_audit.log`, signed with HMAC-SHA-256 under a key derived from the root key
//! (see `chain.rs`). `seal` (and the background worker) puts committed rows into blocks chained
//! by MACs; `verify` recomputes everything and names the first bad block and row.

pub mod chain;
pub mod error;
pub mod hook;
pub mod image;
pub mod redact;
pub mod seal;
pub mod history;
pub mod triggers;

use std::cell::Cell;

use pgrx::prelude::*;
use pgrx::JsonB;
use zeroize::Zeroizing;

use crate::common;
use crate::crypto::rootkey::LABEL_AUDIT_HMAC;
use crate::error::{OrRaise, TgResult};
use error::AuditError;

pub use crate::common::{internal_write_active, InternalWrite};

/// Break-glass of this session: switched on in a transaction at a (sub)transaction nest level;
/// it holds for the session once that transaction commits, and is gone if the (sub)transaction
/// that switched it on aborts (its signed BREAK_GLASS row is rolled back with it).
#[derive(Clone, Copy)]
struct BreakGlass {
    nest: i32,
    committed: bool,
}

thread_local! {
    static BREAK_GLASS: Cell<Option<BreakGlass>> = const { Cell::new(None) };
    static BREAK_GLASS_CALLBACKS: Cell<bool> = const { Cell::new(false) };
}

/// Whether protected changes are allowed now: break-glass is on for the session and the role
/// acting now has `tradeguard_admin`'s privileges (a `SET ROLE` to a role without them, or a
/// SECURITY DEFINER function of such a role, does not carry the admin's break-glass along).
pub fn break_glass_active() -> bool {
    BREAK_GLASS.with(|c| c.get()).is_some() && common::is_member_of("tradeguard_admin")
}

#[pg_guard]
unsafe extern "C-unwind" fn break_glass_xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    BREAK_GLASS.with(|c| match (c.get(), event) {
        (Some(b), XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT) if !b.committed => c.set(Some(BreakGlass { committed: true, ..b })),
        // A prepared transaction may still be rolled back (ROLLBACK PREPARED, with its signed
        // BREAK_GLASS row): the session does not keep break-glass on its strength.
        (Some(b), XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE) if !b.committed => c.set(None),
        _ => {}
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn break_glass_subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    // Called while the subtransaction ending is still the current one.
    let level = pg_sys::GetCurrentTransactionNestLevel();
    BREAK_GLASS.with(|c| match (c.get(), event) {
        (Some(b), SUBXACT_EVENT_ABORT_SUB) if !b.committed && b.nest >= level => c.set(None),
        (Some(b), SUBXACT_EVENT_COMMIT_SUB) if !b.committed && b.nest >= level => {
            c.set(Some(BreakGlass { nest: level - 1, ..b }))
        }
        _ => {}
    });
}

/// The audit signing key: HKDF of the root key; never visible to SQL.
pub fn audit_key() -> TgResult<Zeroizing<[u8; 32]>> {
    let root = crate::crypto::keys::root_key().map_err(|e| AuditError::NoKey(e.to_string()))?;
    // Derived once per root key and backend (HKDF per audited row would show in the write cost).
    AUDIT_KEY.with(|c| {
        let mut c = c.borrow_mut();
        // Derived from this very root key (the root key cache reads the file again when the
        // setting is assigned again, a reload with another file behind the same path included).
        if let Some((r, k)) = c.as_ref() {
            if std::rc::Rc::ptr_eq(r, &root) {
                return Ok(k.clone());
            }
        }
        let k = root.derive(LABEL_AUDIT_HMAC);
        *c = Some((root, k.clone()));
        Ok(k)
    })
}

thread_local! {
    static AUDIT_KEY: std::cell::RefCell<Option<CachedAuditKey>> = const { std::cell::RefCell::new(None) };
}

/// The audit key and the root key it was derived from.
type CachedAuditKey = (std::rc::Rc<crate::crypto::rootkey::RootKey>, Zeroizing<[u8; 32]>);

/// Writes a system row (DDL, role and grant changes, audit_table, break-glass) into the trail;
/// returns its id.
pub fn record_system(operation: &str, schema: &str, object: &str, detail: serde_json::Value) -> TgResult<i64> {
    // Check the key first: the utility hook wants an error it can turn into a WARNING (the DBA
    // must still be able to fix the configuration).
    audit_key()?;
    let actor = common::current_role_name();
    let new_row = triggers::Jsonb::parse(&detail.to_string())?;
    triggers::write_row(
        &triggers::LogRow { schema, table: object, operation, pk: None, old_row: None, new_row: Some(new_row) },
        &actor,
    )
}

struct TableRef {
    schema: String,
    table: String,
    pk: Vec<String>,
}

fn table_ref(oid: pg_sys::Oid) -> TgResult<TableRef> {
    let row = common::spi_first_row(
            "SELECT n.nspname::text, c.relname::text, c.relpersistence = 't',
                    ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                           WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY a.attnum)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1 AND c.relkind IN ('r', 'p')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tradeguard', 'tradeguard_audit')",
            &[oid.into()],
            |r| Ok((r.get::<String>(1)?, r.get::<String>(2)?, r.get::<bool>(3)?, r.get::<Vec<String>>(4)?)),
    )?;
    match row {
        // Gone with its session, its registration would be left naming another table later.
        Some((_, Some(table), Some(true), _)) => {
            Err(AuditError::InvalidArgument(format!("{} is a temporary table (it ends with its session): not audited", q(&table))).into())
        }
        Some((Some(schema), Some(table), _, pk)) => Ok(TableRef { schema, table, pk: pk.unwrap_or_default() }),
        _ => Err(AuditError::InvalidArgument(format!("relation {} is not a user table", oid.to_u32())).into()),
    }
}

fn q(s: &str) -> String {
    pgrx::spi::quote_identifier(s)
}

/// `tradeguard.audit_table(tbl, exclude_columns)`: installs the audit triggers (idempotent).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn audit_table(tbl: Option<pgrx::PgRelation>, exclude_columns: default!(Option<Vec<String>>, "'{}'")) -> String {
    // Not STRICT: a NULL list of exclusions excludes nothing (a STRICT function would return
    // NULL and audit nothing, silently).
    let Some(tbl) = tbl else {
        AuditError::InvalidArgument("tbl must not be NULL".into()).raise_as();
    };
    let oid = tbl.oid();
    drop(tbl);
    audit_table_impl(oid, exclude_columns.unwrap_or_default()).or_raise()
}

fn audit_table_impl(oid: pg_sys::Oid, exclude: Vec<String>) -> TgResult<String> {
    // The protection hook and the sealing worker exist only when preloaded.
    common::require_preload("the audit trail")?;
    audit_key()?; // fail now, not at the first write, when no root key is configured
    let t = table_ref(oid)?;
    let fq = format!("{}.{}", q(&t.schema), q(&t.table));
    // A misspelt exclusion would silently record the column it meant to leave out.
    let unknown = common::spi_first::<String>(
        "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ') FROM pg_catalog.unnest($2::text[]) x
          WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid = $1 AND a.attname = x AND a.attnum > 0 AND NOT a.attisdropped)",
        &[oid.into(), exclude.clone().into()],
    )?;
    if let Some(unknown) = unknown {
        return Err(AuditError::InvalidArgument(format!("{fq} has no column {unknown} to exclude")).into());
    }
    // Every trail row records the primary key (history() finds a row's changes by it): a key
    // column cannot be left out of the trail.
    let in_key: Vec<String> = exclude.iter().filter(|c| t.pk.contains(c)).map(|c| q(c)).collect();
    if !in_key.is_empty() {
        return Err(AuditError::InvalidArgument(format!(
            "cannot exclude {} of {fq}: the primary key is recorded in every trail row (history() finds a row's changes by it)",
            in_key.join(", ")
        ))
        .into());
    }
    // A partition carries a clone of its audited table's row trigger, which PostgreSQL does not
    // let go while the partitioned table's stays.
    let through = common::spi_first::<String>(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
           FROM pg_catalog.pg_trigger t
           JOIN pg_catalog.pg_trigger p ON p.oid = t.tgparentid
           JOIN pg_catalog.pg_class c ON c.oid = p.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE t.tgrelid = $1 AND t.tgname = 'tradeguard_audit_row'",
        &[oid.into()],
    )?;
    if let Some(parent) = through {
        return Err(AuditError::InvalidArgument(format!("{fq} is a partition of audited table {parent} and audited through it")).into());
    }
    {
        let _w = InternalWrite::begin();
        common::as_owner(|| -> TgResult<()> {
            Spi::run_with_args(
                "INSERT INTO tradeguard_audit.audited_tables (relid, schema_name, table_name, exclude_columns, pk_columns, added_by)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (relid) DO UPDATE SET exclude_columns = EXCLUDED.exclude_columns, pk_columns = EXCLUDED.pk_columns",
                &[
                    oid.into(),
                    t.schema.as_str().into(),
                    t.table.as_str().into(),
                    exclude.clone().into(),
                    t.pk.clone().into(),
                    common::current_role_name().as_str().into(),
                ],
            )?;
            for (name, spec) in [
                ("tradeguard_audit_row", "AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW"),
                ("tradeguard_audit_truncate", "AFTER TRUNCATE ON {t} FOR EACH STATEMENT"),
            ] {
                common::run_quietly(&format!("DROP TRIGGER IF EXISTS {name} ON {fq}"))?;
                Spi::run(&format!(
                    "CREATE TRIGGER {name} {} EXECUTE FUNCTION tradeguard.audit_trigger()",
                    spec.replace("{t}", &fq)
                ))?;
                Spi::run(&format!("ALTER TABLE {fq} ENABLE ALWAYS TRIGGER {name}"))?;
            }
            Ok(())
        })??;
    }
    crate::crypto::keys::invalidate();
    // Table inheritance (not partitioning): a child's rows are written through the child's own
    // triggers, so a parent's audit does not cover them.
    let children = common::spi_first::<String>(
        "SELECT pg_catalog.string_agg(i.inhrelid::regclass::text, ', ' ORDER BY i.inhrelid::regclass::text)
           FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = $1 AND NOT c.relispartition
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = i.inhrelid AND t.tgname = 'tradeguard_audit_row')",
        &[oid.into()],
    )?;
    if let Some(children) = children {
        pgrx::warning!(
            "tradeguard: {fq} has inheritance children that are not audited ({children}): changes to their rows, also through {fq}, are not recorded until audit_table is called on each"
        );
    }
    let id = record_system(
        "AUDIT_TABLE",
        &t.schema,
        &t.table,
        serde_json::json!({ "exclude_columns": exclude, "primary_key": t.pk }),
    )?;
    // history() of the table starts here: rows recorded earlier under its name belong to a
    // table that had the name before (dropped or renamed since). Unless it is the same table,
    // audited again under the same name after unaudit_table: its history continues.
    let _w = InternalWrite::begin();
    common::as_owner(|| -> Result<(), pgrx::spi::Error> {
        end_overtaken_pauses()?;
        Spi::run_with_args(
            "WITH p AS (DELETE FROM tradeguard_audit.paused_tables WHERE relid = $1::oid RETURNING *)
             UPDATE tradeguard_audit.audited_tables a
                SET since_id = coalesce((SELECT p.since_id FROM p WHERE p.schema_name = a.schema_name AND p.table_name = a.table_name), $2),
                    former_names = coalesce((SELECT p.former_names FROM p WHERE p.schema_name = a.schema_name AND p.table_name = a.table_name), a.former_names)
              WHERE a.relid = $1 AND a.since_id IS NULL",
            &[oid.into(), id.into()],
        )
    })??;
    Ok(format!("auditing {fq}"))
}

/// Ends the pauses (unaudit_table) whose name another audited table now holds, registered under
/// it or renamed or moved to it: rows recorded under the name are no longer all the paused
/// table's, so its history() must not continue across them. Run as the extension owner.
pub(crate) fn end_overtaken_pauses() -> Result<(), pgrx::spi::Error> {
    Spi::run(
        "DELETE FROM tradeguard_audit.paused_tables p USING tradeguard_audit.audited_tables a
          WHERE p.schema_name = a.schema_name AND p.table_name = a.table_name AND p.relid <> a.relid::pg_catalog.oid",
    )
}

/// `tradeguard.unaudit_table(tbl)` (admin): removes the triggers; recorded in the trail.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn unaudit_table(tbl: pgrx::PgRelation) -> String {
    let oid = tbl.oid();
    drop(tbl);
    unaudit_table_impl(oid).or_raise()
}

fn unaudit_table_impl(oid: pg_sys::Oid) -> TgResult<String> {
    let t = table_ref(oid)?;
    let fq = format!("{}.{}", q(&t.schema), q(&t.table));
    let removed = {
        let _w = InternalWrite::begin();
        common::as_owner(|| -> TgResult<usize> {
            Spi::run(&format!("DROP TRIGGER IF EXISTS tradeguard_audit_row ON {fq}"))?;
            Spi::run(&format!("DROP TRIGGER IF EXISTS tradeguard_audit_truncate ON {fq}"))?;
            // Kept for audit_table on the same table again (its history() continues).
            Spi::run_with_args(
                "INSERT INTO tradeguard_audit.paused_tables (relid, schema_name, table_name, former_names, since_id)
                 SELECT relid::oid, schema_name, table_name, former_names, since_id
                   FROM tradeguard_audit.audited_tables WHERE relid = $1 AND since_id IS NOT NULL
                 ON CONFLICT (relid) DO UPDATE SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name,
                     former_names = EXCLUDED.former_names, since_id = EXCLUDED.since_id, paused_at = EXCLUDED.paused_at",
                &[oid.into()],
            )?;
            Ok(Spi::connect_mut(|c| {
                c.update("DELETE FROM tradeguard_audit.audited_tables WHERE relid = $1", None, &[oid.into()])
                    .map(|t| t.len())
            })?)
        })??
    };
    if removed == 0 {
        return Err(AuditError::NotAudited(fq).into());
    }
    crate::crypto::keys::invalidate();
    record_system("UNAUDIT_TABLE", &t.schema, &t.table, serde_json::json!({}))?;
    Ok(format!("no longer auditing {fq}"))
}

/// `tradeguard.set_context(ctx, is_local)`: application context recorded with each audit row.
#[pg_extern(volatile)]
fn set_context(ctx: JsonB, is_local: default!(bool, true)) -> JsonB {
    let text = ctx.0.to_string();
    if text.len() > 4096 {
        AuditError::InvalidArgument("context larger than 4 kB".into()).raise_as();
    }
    common::spi_first::<String>(
        "SELECT pg_catalog.set_config('tradeguard.app_context', $1, $2)",
        &[text.as_str().into(), is_local.into()],
    )
    .map_err(crate::error::TgError::from)
    .or_raise();
    ctx
}

impl AuditError {
    fn raise_as(self) -> ! {
        crate::error::TgError::from(self).raise()
    }
}

/// `tradeguard.break_glass(reason)` (admin): allows protected changes in this session; recorded.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn break_glass(reason: &str) -> String {
    if reason.trim().chars().count() < 8 {
        AuditError::InvalidArgument("give a reason of at least 8 characters".into()).raise_as();
    }
    record_system("BREAK_GLASS", "tradeguard", "session", serde_json::json!({ "reason": reason, "on": true }))
        .or_raise();
    common::events::record(
        "break_glass",
        "high",
        &serde_json::json!({ "reason": reason }),
    )
    .or_raise();
    unsafe {
        if !BREAK_GLASS_CALLBACKS.with(|c| c.replace(true)) {
            pg_sys::RegisterXactCallback(Some(break_glass_xact_callback), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(break_glass_subxact_callback), std::ptr::null_mut());
        }
        let nest = pg_sys::GetCurrentTransactionNestLevel();
        BREAK_GLASS.with(|c| c.set(Some(BreakGlass { nest, committed: false })));
    }
    "break-glass enabled for this session; every protected change is recorded".into()
}

/// `tradeguard.break_glass_end()`: ends break-glass for this session.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn break_glass_end() -> bool {
    let was = BREAK_GLASS.with(|c| c.replace(None)).is_some();
    if was {
        record_system("BREAK_GLASS", "tradeguard", "session", serde_json::json!({ "on": false })).or_raise();
    }
    was
}

pgrx::extension_sql_file!(
    "../../sql/audit.sql",
    name = "audit_sql",
    requires = [
        audit_table, unaudit_table, set_context, break_glass, break_glass_end,
        triggers::audit_trigger, triggers::protect_trigger,
        seal::seal, seal::verify, seal::audit_digest, seal::verify_digest, seal::archive_blocks,
        history::history_ids, "ids_sql"
    ]
);

#[cfg(feature = "pg_test")]
mod tests;
