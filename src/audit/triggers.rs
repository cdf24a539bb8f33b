//! The audit triggers: `audit_trigger` on audited tables builds the row images, signs the audit
//! row and writes it through one cached plan; `protect_trigger` refuses every other write to the
//! protected tables (only tradeguard's own code, and pg_restore in restore mode, may insert).

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgOid;

use pgrx::{FromDatum, IntoDatum};

use super::chain::{self, AuditRow};
use super::error::AuditError;
use super::{audit_key, break_glass_active, internal_write_active, InternalWrite};
use crate::common;
use crate::error::{CoreError, OrRaise, TgResult};

/// What the trigger needs to know about an audited table (cached per backend).
struct TableInfo {
    schema: String,
    table: String,
    exclude: Vec<String>,
    /// Every column but the primary key: deleting them from an image leaves the key.
    non_pk: Vec<String>,
    has_pk: bool,
    /// Encrypted columns: anything there that is not ciphertext is withheld from the trail.
    encrypted: Vec<String>,
}

thread_local! {
    static TABLES: common::shmem::GenerationCache<pg_sys::Oid, Rc<TableInfo>> = RefCell::new((None, rustc_hash::FxHashMap::default()));
    static INSERT_PLAN: RefCell<Option<Rc<OwnedPreparedStatement>>> = const { RefCell::new(None) };
}

fn table_info(relid: pg_sys::Oid) -> TgResult<Rc<TableInfo>> {
    if let Some(p) = TABLES.with(|t| common::shmem::generation_cached(t, &relid)) {
        return Ok(p);
    }
    let row = common::as_owner(|| {
        common::spi_first_row(
                "SELECT n.nspname::text, c.relname::text,
                        coalesce(a.exclude_columns, '{}'), coalesce(a.pk_columns, '{}'),
                        ARRAY(SELECT att.attname::text FROM pg_catalog.pg_attribute att
                               WHERE att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped
                                 AND att.attname::text <> ALL (coalesce(a.pk_columns, '{}'))),
                        ARRAY(SELECT e.column_name FROM tradeguard_audit.encrypted_columns e
                               WHERE e.schema_name = n.nspname AND e.table_name = c.relname)
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   LEFT JOIN tradeguard_audit.audited_tables a ON a.relid = c.oid
                  WHERE c.oid = $1",
                &[relid.into()],
                |r| {
                    Ok((
                        r.get::<String>(1)?.unwrap_or_default(),
                        r.get::<String>(2)?.unwrap_or_default(),
                        r.get::<Vec<String>>(3)?.unwrap_or_default(),
                        r.get::<Vec<String>>(4)?.unwrap_or_default(),
                        r.get::<Vec<String>>(5)?.unwrap_or_default(),
                        r.get::<Vec<String>>(6)?.unwrap_or_default(),
                    ))
                },
        )
    })??;
    // A table whose trigger exists but whose registration is missing (e.g. restored without it)
    // is still audited, without exclusions: never fail open.
    let (schema, table, exclude, pk, non_pk, encrypted) =
        row.ok_or_else(|| CoreError::InvalidArgument("audited relation vanished".into()))?;
    let info = Rc::new(TableInfo { schema, table, exclude, has_pk: !pk.is_empty(), non_pk, encrypted });
    TABLES.with(|p| p.borrow_mut().1.insert(relid, info.clone()));
    Ok(info)
}

/// The one INSERT every audit row goes through (prepared once per backend).
fn insert_plan() -> TgResult<Rc<OwnedPreparedStatement>> {
    if let Some(p) = INSERT_PLAN.with(|p| p.borrow().clone()) {
        return Ok(p);
    }
    let types: Vec<PgOid> = [
        pg_sys::INT8OID, pg_sys::INT8OID, pg_sys::TIMESTAMPTZOID, pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID,
        pg_sys::JSONBOID, pg_sys::JSONBOID, pg_sys::JSONBOID, pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID,
        pg_sys::INETOID, pg_sys::JSONBOID, pg_sys::BYTEAOID,
    ]
    .into_iter()
    .map(PgOid::from)
    .collect();
    let plan = common::as_owner(|| {
        Spi::connect(|client| {
            client
                .prepare_mut(
                    "INSERT INTO tradeguard_audit.log (id, txid, at, schema_name, table_name, operation, pk, old_row,
                         new_row, current_user_name, session_user_name, application_name, client_addr, app_context, signature)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    &types,
                )
                .map(|p| p.keep())
        })
    })??;
    let plan = Rc::new(plan);
    INSERT_PLAN.with(|p| *p.borrow_mut() = Some(plan.clone()));
    Ok(plan)
}

/// A jsonb datum (palloc'd in the current memory context).
#[derive(Clone, Copy)]
pub struct Jsonb(pub pg_sys::Datum);

impl Jsonb {
    /// Parses JSON text.
    pub fn parse(text: &str) -> TgResult<Jsonb> {
        let c = std::ffi::CString::new(text).map_err(|_| CoreError::InvalidArgument("NUL in JSON".into()))?;
        let d = unsafe { pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(c.as_ptr()))]) };
        d.map(Jsonb).ok_or_else(|| CoreError::InvalidArgument("invalid JSON".into()).into())
    }

    /// The canonical binary form that is signed (jsonb's on-disk representation is canonical:
    /// keys sorted and unique, so equal values have equal bytes).
    pub fn bytes(&self) -> &[u8] {
        varlena_bytes(self.0)
    }

    fn delete_keys(self, keys: &[String]) -> Jsonb {
        if keys.is_empty() {
            return self;
        }
        let arr = keys.to_vec().into_datum();
        Jsonb(unsafe { pgrx::direct_function_call_as_datum(pg_sys::jsonb_delete_array, &[Some(self.0), arr]) }.unwrap_or(self.0))
    }

    fn field_text(self, key: &str) -> Option<String> {
        let k = key.into_datum();
        unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::jsonb_object_field_text, &[Some(self.0), k])
                .map(|d| String::from_datum(d, false).unwrap_or_default())
        }
    }

    fn set(self, key: &str, value: Jsonb) -> Jsonb {
        let path = vec![key.to_string()].into_datum();
        Jsonb(
            unsafe {
                pgrx::direct_function_call_as_datum(
                    pg_sys::jsonb_set,
                    &[Some(self.0), path, Some(value.0), false.into_datum()],
                )
            }
            .unwrap_or(self.0),
        )
    }
}

pub use crate::common::varlena_bytes;

/// The jsonb image of a row: `row_to_json` (types kept: numbers stay numbers), as jsonb.
fn row_image(tuple: *mut pg_sys::HeapTupleData, tupdesc: pg_sys::TupleDesc) -> TgResult<Jsonb> {
    unsafe {
        let rec = pg_sys::heap_copy_tuple_as_datum(tuple, tupdesc);
        let json = pgrx::direct_function_call_as_datum(pg_sys::row_to_json, &[Some(rec)])
            .ok_or_else(|| CoreError::InvalidArgument("row_to_json returned NULL".into()))?;
        let cstr = pg_sys::text_to_cstring(json.cast_mut_ptr::<pg_sys::text>());
        let jb = pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(cstr))])
            .ok_or_else(|| CoreError::InvalidArgument("jsonb_in returned NULL".into()))?;
        Ok(Jsonb(jb))
    }
}

/// One audit row, ready to be signed and written.
pub struct LogRow<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    pub operation: &'a str,
    pub pk: Option<Jsonb>,
    pub old_row: Option<Jsonb>,
    pub new_row: Option<Jsonb>,
}

fn session_text() -> (String, String, Option<String>, Option<String>) {
    unsafe {
        let name = |oid: pg_sys::Oid| {
            let p = pg_sys::GetUserNameFromId(oid, true);
            if p.is_null() { format!("oid:{}", oid.to_u32()) } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() }
        };
        let app = (!pg_sys::application_name.is_null())
            .then(|| std::ffi::CStr::from_ptr(pg_sys::application_name).to_string_lossy().into_owned());
        let port = pg_sys::libpq::be::MyProcPort;
        let addr = if port.is_null() || (*port).remote_host.is_null() {
            None
        } else {
            let h = std::ffi::CStr::from_ptr((*port).remote_host).to_string_lossy().into_owned();
            h.parse::<std::net::IpAddr>().is_ok().then_some(h)
        };
        (name(pg_sys::GetUserId()), name(pg_sys::GetSessionUserId()), app, addr)
    }
}

/// Signs and writes one audit row through the shared plan. `actor` is the role acting
/// (`current_user` before any elevation).
pub fn write_row(row: &LogRow<'_>, actor: &str) -> TgResult<i64> {
    let key = audit_key()?;
    let plan = insert_plan()?;
    let (_, session_user, app, addr) = session_text();
    let app_context = crate::gucs::APP_CONTEXT
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .map(|s| Jsonb::parse(&s))
        .transpose()?;
    // The cached sequence oid goes stale when the extension is dropped and created again.
    let cached = LOG_SEQ.with(|c| c.get());
    let stale = cached == pg_sys::InvalidOid || unsafe {
        let n = pg_sys::get_rel_name(cached);
        n.is_null() || std::ffi::CStr::from_ptr(n).to_bytes() != b"log_id_seq"
    };
    if stale {
        let oid = common::as_owner(|| {
            common::spi_first::<pg_sys::Oid>("SELECT 'tradeguard_audit.log_id_seq'::pg_catalog.regclass::oid", &[])
        })??
        .ok_or_else(|| CoreError::InvalidArgument("audit sequence missing".into()))?;
        LOG_SEQ.with(|c| c.set(oid));
    }
    let seq = LOG_SEQ.with(|c| c.get());
    // nextval checks USAGE on the sequence: take the id as the extension owner.
    let id = common::as_owner_fast(|| unsafe { pgrx::direct_function_call::<i64>(pg_sys::nextval_oid, &[seq.into_datum()]) })?
        .ok_or_else(|| CoreError::InvalidArgument("audit sequence missing".into()))?;
    let txid = unsafe { pg_sys::GetTopFullTransactionId().value as i64 };
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let at = TimestampWithTimeZone::try_from(now).map_err(|_| CoreError::InvalidArgument("clock".into()))?;
    // The client address travels and is signed in its binary inet form (verify reads it back
    // without converting every row to text).
    let addr_datum = match &addr {
        Some(a) => {
            let c = std::ffi::CString::new(a.as_str()).map_err(|_| CoreError::InvalidArgument("client address".into()))?;
            unsafe { pgrx::direct_function_call_as_datum(pg_sys::inet_in, &[Some(pg_sys::Datum::from(c.as_ptr()))]) }
        }
        None => None,
    };
    let signed = AuditRow {
        id,
        txid,
        at_micros: now,
        schema_name: row.schema,
        table_name: row.table,
        operation: row.operation,
        pk: row.pk.as_ref().map(Jsonb::bytes),
        old_row: row.old_row.as_ref().map(Jsonb::bytes),
        new_row: row.new_row.as_ref().map(Jsonb::bytes),
        current_user: actor,
        session_user: &session_user,
        application_name: app.as_deref(),
        client_addr: addr_datum.map(varlena_bytes),
        app_context: app_context.as_ref().map(Jsonb::bytes),
    };
    let sig = chain::sign_row(&key, &signed);
    let jb = |j: Option<Jsonb>| match j {
        Some(j) => unsafe { pgrx::datum::DatumWithOid::new(j.0, pg_sys::JSONBOID) },
        None => pgrx::datum::DatumWithOid::null_oid(pg_sys::JSONBOID),
    };
    let args = [
        id.into(),
        txid.into(),
        at.into(),
        row.schema.into(),
        row.table.into(),
        row.operation.into(),
        jb(row.pk),
        jb(row.old_row),
        jb(row.new_row),
        actor.into(),
        session_user.as_str().into(),
        app.as_deref().into(),
        match addr_datum {
            Some(d) => unsafe { pgrx::datum::DatumWithOid::new(d, pg_sys::INETOID) },
            None => pgrx::datum::DatumWithOid::null_oid(pg_sys::INETOID),
        },
        jb(app_context),
        sig.as_slice().into(),
    ];
    let _w = InternalWrite::begin();
    common::as_owner_fast(|| Spi::connect_mut(|client| client.update(&*plan, None, &args).map(|_| ())))??;
    Ok(id)
}

thread_local! {
    static LOG_SEQ: std::cell::Cell<pg_sys::Oid> = const { std::cell::Cell::new(pg_sys::InvalidOid) };
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
    let info = table_info(relid)?;
    let op = if pgrx::trigger_support::trigger_fired_by_truncate(event) {
        "TRUNCATE"
    } else if pgrx::trigger_support::trigger_fired_by_insert(event) {
        "INSERT"
    } else if pgrx::trigger_support::trigger_fired_by_update(event) {
        "UPDATE"
    } else {
        "DELETE"
    };
    let (mut pk, mut old_img, mut new_img) = (None, None, None);
    if op != "TRUNCATE" {
        let (new_t, old_t, tupdesc) = common::trigger_tuples(trigger);
        let image = |t: *mut pg_sys::HeapTupleData| -> TgResult<Option<(Jsonb, Jsonb)>> {
            if t.is_null() {
                return Ok(None);
            }
            let full = row_image(t, tupdesc)?;
            let mut img = full.delete_keys(&info.exclude);
            // Encrypted columns must never reach the trail as plaintext (e.g. while
            // encrypt_column converts a table): what is not ciphertext there is withheld.
            for c in &info.encrypted {
                if let Some(v) = img.field_text(c) {
                    if !crate::crypto::envelope::looks_armored(&v) {
                        img = img.set(c, Jsonb::parse("\"[plaintext withheld]\"")?);
                    }
                }
            }
            Ok(Some((full, img)))
        };
        let new_i = image(new_t)?;
        let old_i = image(old_t)?;
        if info.has_pk {
            pk = new_i.as_ref().or(old_i.as_ref()).map(|(full, _)| full.delete_keys(&info.non_pk));
        }
        old_img = old_i.map(|(_, i)| i);
        new_img = new_i.map(|(_, i)| i);
    }
    let actor = common::current_role_name();
    write_row(
        &LogRow { schema: &info.schema, table: &info.table, operation: op, pk, old_row: old_img, new_row: new_img },
        &actor,
    )?;
    Ok(())
}

/// BEFORE UPDATE/DELETE (row) and TRUNCATE (statement) on the protected tables.
#[pg_trigger]
fn protect_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, CoreError> {
    let td = trigger.trigger_data();
    // pg_restore of a signed trail (tradeguard.restore_mode, superuser only) may INSERT blocks;
    // nothing may UPDATE, DELETE or TRUNCATE them but tradeguard itself.
    let restoring_insert = (crate::gucs::RESTORE_MODE.get() || break_glass_active())
        && pgrx::trigger_support::trigger_fired_by_insert(td.tg_event);
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
