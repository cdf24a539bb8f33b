//! The audit triggers: `audit_trigger` on audited tables writes a row into the trail through a
//! cached plan; `sign_log_row` (BEFORE INSERT on the trail) signs it; `protect_trigger` refuses
//! every other write to the protected tables.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgOid;

use super::chain::{self, AuditRow};
use super::error::AuditError;
use super::{audit_key, break_glass_active, internal_write_active, InternalWrite};
use crate::common;
use crate::error::{CoreError, OrRaise, TgResult};

struct TablePlan {
    plan: OwnedPreparedStatement,
    rowtype: pg_sys::Oid,
    schema: String,
    table: String,
}

thread_local! {
    static PLANS: RefCell<(Option<u64>, HashMap<pg_sys::Oid, Rc<TablePlan>>)> = RefCell::new((None, HashMap::new()));
}

fn lit(s: &str) -> String {
    pgrx::spi::quote_literal(s)
}

/// Builds (once per backend and table) the INSERT that records a change of `relid`.
fn table_plan(relid: pg_sys::Oid) -> TgResult<Rc<TablePlan>> {
    let stamp = common::shmem::key_generation();
    if let Some(p) = PLANS.with(|p| {
        let mut p = p.borrow_mut();
        if stamp.is_none() || p.0 != stamp {
            p.1.clear();
            p.0 = stamp;
        }
        p.1.get(&relid).cloned()
    }) {
        return Ok(p);
    }
    let info = common::as_owner(|| {
        Spi::connect(|client| {
            let t = client.select(
                "SELECT a.schema_name, a.table_name, a.exclude_columns, a.pk_columns, c.reltype,
                        ARRAY(SELECT e.column_name FROM tradeguard_audit.encrypted_columns e
                               WHERE e.schema_name = a.schema_name AND e.table_name = a.table_name)
                   FROM tradeguard_audit.audited_tables a JOIN pg_catalog.pg_class c ON c.oid = a.relid
                  WHERE a.relid = $1",
                Some(1),
                &[relid.into()],
            )?;
            if t.is_empty() {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            let r = t.first();
            Ok(Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<Vec<String>>(3)?.unwrap_or_default(),
                r.get::<Vec<String>>(4)?.unwrap_or_default(),
                r.get::<pg_sys::Oid>(5)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<Vec<String>>(6)?.unwrap_or_default(),
            )))
        })
    })??;
    // A table whose trigger exists but that is not registered (e.g. restored without its
    // registration) is still audited, without exclusions: never fail open.
    let (schema, table, exclude, pk, rowtype, encrypted) = match info {
        Some(i) => i,
        None => {
            let (s, t, rt) = common::spi_first::<String>(
                "SELECT pg_catalog.format('%s|%s|%s', n.nspname, c.relname, c.reltype) FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[relid.into()],
            )?
            .and_then(|s| {
                let mut it = s.splitn(3, '|');
                Some((it.next()?.to_string(), it.next()?.to_string(), it.next()?.parse::<u32>().ok()?))
            })
            .ok_or_else(|| CoreError::InvalidArgument("audited relation vanished".into()))?;
            (s, t, vec![], vec![], pg_sys::Oid::from(rt), vec![])
        }
    };
    let rowexpr = |param: &str| -> String {
        let mut e = format!("pg_catalog.to_jsonb({param})");
        if !exclude.is_empty() {
            let arr: Vec<String> = exclude.iter().map(|c| lit(c)).collect();
            e = format!("({e} OPERATOR(pg_catalog.-) ARRAY[{}]::text[])", arr.join(", "));
        }
        // Encrypted columns must never reach the trail as plaintext (e.g. while encrypt_column
        // converts a table): anything there that is not tradeguard ciphertext is withheld.
        for c in &encrypted {
            e = format!(
                "pg_catalog.jsonb_set({e}, ARRAY[{l}], CASE WHEN ({e} OPERATOR(pg_catalog.->>) {l}) IS NULL
                    OR tradeguard.is_ciphertext({e} OPERATOR(pg_catalog.->>) {l}) THEN {e} OPERATOR(pg_catalog.->) {l}
                    ELSE '\"[plaintext withheld]\"'::pg_catalog.jsonb END)",
                l = lit(c)
            );
        }
        e
    };
    let pk_expr = if pk.is_empty() {
        "NULL::pg_catalog.jsonb".to_string()
    } else {
        let parts: Vec<String> = pk
            .iter()
            .map(|c| format!("{}, (COALESCE($7, $6)).{}", lit(c), pgrx::spi::quote_identifier(c)))
            .collect();
        format!("pg_catalog.jsonb_build_object({})", parts.join(", "))
    };
    let sql = format!(
        "INSERT INTO tradeguard_audit.log (txid, at, schema_name, table_name, operation, pk, old_row, new_row,
             current_user_name, session_user_name, application_name, client_addr, app_context)
         VALUES ($1, $2, $3, $4, $5, {pk_expr}, {old}, {new}, $8, SESSION_USER,
             pg_catalog.current_setting('application_name'), pg_catalog.inet_client_addr(),
             NULLIF(pg_catalog.current_setting('tradeguard.app_context', true), '')::pg_catalog.jsonb)",
        old = rowexpr("$6"),
        new = rowexpr("$7"),
    );
    let types = [
        PgOid::from(pg_sys::INT8OID),
        PgOid::from(pg_sys::TIMESTAMPTZOID),
        PgOid::from(pg_sys::TEXTOID),
        PgOid::from(pg_sys::TEXTOID),
        PgOid::from(pg_sys::TEXTOID),
        PgOid::from(rowtype),
        PgOid::from(rowtype),
        PgOid::from(pg_sys::TEXTOID),
    ];
    let plan = common::as_owner(|| Spi::connect(|client| client.prepare_mut(sql.as_str(), &types).map(|p| p.keep())))??;
    let plan = Rc::new(TablePlan { plan, rowtype, schema, table });
    PLANS.with(|p| p.borrow_mut().1.insert(relid, plan.clone()));
    Ok(plan)
}

/// AFTER ROW (INSERT, UPDATE, DELETE) and AFTER STATEMENT (TRUNCATE) trigger of audited tables.
#[pg_trigger]
fn audit_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, CoreError> {
    record_change(trigger).or_raise();
    Ok(None)
}

fn record_change(trigger: &pgrx::PgTrigger<'_>) -> TgResult<()> {
    let td = trigger.trigger_data();
    let event = td.tg_event;
    let relid = trigger.relid().map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
    let plan = table_plan(relid)?;
    let op = if pgrx::trigger_support::trigger_fired_by_truncate(event) {
        "TRUNCATE"
    } else if pgrx::trigger_support::trigger_fired_by_insert(event) {
        "INSERT"
    } else if pgrx::trigger_support::trigger_fired_by_update(event) {
        "UPDATE"
    } else {
        "DELETE"
    };
    let (new_t, old_t, tupdesc) = if op == "TRUNCATE" {
        (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut())
    } else {
        common::trigger_tuples(trigger)
    };
    let as_datum = |t: *mut pg_sys::HeapTupleData| -> Option<pg_sys::Datum> {
        (!t.is_null()).then(|| unsafe { pg_sys::heap_copy_tuple_as_datum(t, tupdesc) })
    };
    let (old_d, new_d) = (as_datum(old_t), as_datum(new_t));
    let txid = unsafe { pg_sys::GetTopFullTransactionId().value as i64 };
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let at = TimestampWithTimeZone::try_from(now).map_err(|_| CoreError::InvalidArgument("clock".into()))?;
    let actor = common::current_role_name();
    let row_arg = |d: Option<pg_sys::Datum>| match d {
        Some(d) => unsafe { pgrx::datum::DatumWithOid::new(d, plan.rowtype) },
        None => pgrx::datum::DatumWithOid::null_oid(plan.rowtype),
    };
    let args = [
        txid.into(),
        at.into(),
        plan.schema.as_str().into(),
        plan.table.as_str().into(),
        op.into(),
        row_arg(old_d),
        row_arg(new_d),
        actor.as_str().into(),
    ];
    let _w = InternalWrite::begin();
    common::as_owner(|| Spi::connect_mut(|client| client.update(&plan.plan, None, &args).map(|_| ())))??;
    Ok(())
}

/// BEFORE INSERT on `tradeguard_audit.log`: signs rows written by tradeguard, refuses others.
#[pg_trigger]
fn sign_log_row<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl pgrx::WhoAllocated>>, CoreError> {
    Ok(Some(sign_row(trigger).or_raise()))
}

fn text_of(t: *mut pg_sys::HeapTupleData, d: pg_sys::TupleDesc, name: &str) -> TgResult<Option<String>> {
    unsafe { common::tuple_attr_text(t, d, name) }
}

/// The signed fields of a log row, read back as text exactly as `verify` reads them.
pub struct RowTexts {
    pub id: i64,
    pub txid: i64,
    pub at_micros: i64,
    pub schema_name: String,
    pub table_name: String,
    pub operation: String,
    pub pk: Option<String>,
    pub old_row: Option<String>,
    pub new_row: Option<String>,
    pub current_user: String,
    pub session_user: String,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub app_context: Option<String>,
}

impl RowTexts {
    pub fn as_row(&self) -> AuditRow<'_> {
        AuditRow {
            id: self.id,
            txid: self.txid,
            at_micros: self.at_micros,
            schema_name: &self.schema_name,
            table_name: &self.table_name,
            operation: &self.operation,
            pk: self.pk.as_deref(),
            old_row: self.old_row.as_deref(),
            new_row: self.new_row.as_deref(),
            current_user: &self.current_user,
            session_user: &self.session_user,
            application_name: self.application_name.as_deref(),
            client_addr: self.client_addr.as_deref(),
            app_context: self.app_context.as_deref(),
        }
    }
}

fn sign_row<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> TgResult<PgHeapTuple<'a, pgrx::AllocatedByRust>> {
    let new = trigger.new().ok_or_else(|| CoreError::InvalidArgument("sign_log_row is a row INSERT trigger".into()))?;
    if !internal_write_active() {
        if crate::gucs::RESTORE_MODE.get() || break_glass_active() {
            // pg_restore of an already-signed trail: keep the row as it is; verify() checks it.
            return Ok(new.into_owned());
        }
        return Err(AuditError::ProtectedTable("direct INSERT into tradeguard_audit.log is refused".into()).into());
    }
    let (t, _, d) = common::trigger_tuples(trigger);
    let num = |name: &str| -> TgResult<i64> {
        Ok(new
            .get_by_name::<i64>(name)
            .map_err(|e| CoreError::InvalidArgument(e.to_string()))?
            .unwrap_or_default())
    };
    let at: TimestampWithTimeZone = new
        .get_by_name("at")
        .map_err(|e| CoreError::InvalidArgument(e.to_string()))?
        .ok_or_else(|| CoreError::InvalidArgument("at is NULL".into()))?;
    let rt = RowTexts {
        id: num("id")?,
        txid: num("txid")?,
        at_micros: at.into_inner(),
        schema_name: text_of(t, d, "schema_name")?.unwrap_or_default(),
        table_name: text_of(t, d, "table_name")?.unwrap_or_default(),
        operation: text_of(t, d, "operation")?.unwrap_or_default(),
        pk: text_of(t, d, "pk")?,
        old_row: text_of(t, d, "old_row")?,
        new_row: text_of(t, d, "new_row")?,
        current_user: text_of(t, d, "current_user_name")?.unwrap_or_default(),
        session_user: text_of(t, d, "session_user_name")?.unwrap_or_default(),
        application_name: text_of(t, d, "application_name")?,
        client_addr: text_of(t, d, "client_addr")?,
        app_context: text_of(t, d, "app_context")?,
    };
    let key = audit_key()?;
    let sig = chain::sign_row(&key, &rt.as_row());
    let mut new = new.into_owned();
    new.set_by_name("signature", sig.to_vec()).map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
    new.set_by_name::<Option<i64>>("block_no", None).map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
    Ok(new)
}

/// BEFORE UPDATE/DELETE (row) and TRUNCATE (statement) on the protected tables.
#[pg_trigger]
fn protect_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, CoreError> {
    let td = trigger.trigger_data();
    // pg_restore of a signed trail (tradeguard.restore_mode, superuser only) may INSERT blocks;
    // nothing may UPDATE, DELETE or TRUNCATE them but tradeguard itself.
    let restoring_insert = crate::gucs::RESTORE_MODE.get() && pgrx::trigger_support::trigger_fired_by_insert(td.tg_event);
    if internal_write_active() || restoring_insert || (break_glass_active() && crate::gucs::RESTORE_MODE.get()) {
        let row = if pgrx::trigger_support::trigger_fired_by_delete(td.tg_event) { trigger.old() } else { trigger.new() };
        return Ok(row);
    }
    let table = trigger.table_name().unwrap_or_default();
    let op = format!("{}", trigger.op().map_err(|e| CoreError::InvalidArgument(e.to_string()))?);
    Err::<(), _>(crate::error::TgError::from(AuditError::ProtectedTable(format!(
        "{op} on tradeguard_audit.{table} is refused (for the table owner and superusers too)"
    ))))
    .or_raise();
    Ok(None)
}
