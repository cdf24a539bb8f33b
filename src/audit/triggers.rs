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
use super::image::{ImagePlan, WITHHELD};
use super::{audit_key, internal_write_active, InternalWrite};
use crate::common;
use crate::error::{CoreError, OrRaise, TgResult};

/// What the trigger needs to know about an audited table (cached per backend).
struct TableInfo {
    schema: String,
    table: String,
    /// Where the names were read from when the table written is the audited table itself (not
    /// a partition of it): its namespace, checked against the relation on every row (a rename
    /// rolled back to a savepoint, or made while this backend cached the names, never leaves
    /// rows under a name the table does not have).
    own_namespace: Option<pg_sys::Oid>,
    exclude: KeyList,
    has_pk: bool,
    /// Encrypted columns: anything there that is not ciphertext is withheld from the trail.
    encrypted: Vec<String>,
    exclude_names: Vec<String>,
    pk_names: Vec<String>,
    /// How rows of the table's current shape become images (made at the first audited row).
    shape: RefCell<Option<Rc<Shape>>>,
    /// Registered by audit_table itself, or through a partitioned table it is a partition of.
    registered_itself: bool,
    registered: bool,
}

/// What is derived from the table's current tuple descriptor (remade after ALTER TABLE).
struct Shape {
    plan: ImagePlan,
    /// Every live column but the primary key: deleting them from a `to_jsonb` image leaves the
    /// key (the generic path).
    non_pk: KeyList,
}

impl TableInfo {
    /// The shape of the table's current tuple descriptor (remade after ALTER TABLE).
    ///
    /// # Safety
    /// `tupdesc` must be the audited relation's tuple descriptor.
    unsafe fn shape(&self, tupdesc: pg_sys::TupleDesc) -> Rc<Shape> {
        let mut s = self.shape.borrow_mut();
        match s.as_ref() {
            Some(shape) if shape.plan.fits(tupdesc) => shape.clone(),
            _ => {
                let plan = ImagePlan::new(tupdesc, &self.exclude_names, &self.pk_names, &self.encrypted);
                let non_pk = KeyList::new(&plan.live_columns_except(&self.pk_names));
                let shape = Rc::new(Shape { plan, non_pk });
                *s = Some(shape.clone());
                shape
            }
        }
    }
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
                // A partition is recorded as the audited table it belongs to (its trigger is a
                // clone of that table's), with that table's exclusions and primary key.
                concat!(
                    "WITH target AS (
                       SELECT coalesce((SELECT c.relid FROM ", crate::self_and_ancestors_sql!(), " c
                                         WHERE EXISTS (SELECT 1 FROM tradeguard_audit.audited_tables a WHERE a.relid = c.relid)
                                         ORDER BY c.depth LIMIT 1), $1::oid) AS relid
                     )
                     SELECT c.oid,
                            coalesce(a.exclude_columns, '{}'), coalesce(a.pk_columns, '{}'),
                            a.relid IS NOT NULL, a.relid IS NOT DISTINCT FROM $1::oid,
                            -- Encrypted columns of the table written or of any table it is a
                            -- partition of (a partition may be audited on its own).
                            -- (The audited table is one of them.)
                            ARRAY(SELECT DISTINCT e.attname::text FROM tradeguard_audit.encrypted_column_list() e
                                    JOIN ", crate::self_and_ancestors_sql!(), " x ON x.relid = e.relid)
                       FROM target t JOIN pg_catalog.pg_class c ON c.oid = t.relid
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                       LEFT JOIN tradeguard_audit.audited_tables a ON a.relid = c.oid"
                ),
                &[relid.into()],
                |r| {
                    Ok((
                        r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                        r.get::<Vec<String>>(2)?.unwrap_or_default(),
                        r.get::<Vec<String>>(3)?.unwrap_or_default(),
                        r.get::<Vec<String>>(6)?.unwrap_or_default(),
                        (r.get::<bool>(4)?.unwrap_or(false), r.get::<bool>(5)?.unwrap_or(false)),
                    ))
                },
        )
    })??;
    // (A table whose trigger exists but whose registration is missing is refused by the
    // trigger: see `registered`.)
    let (target, exclude, pk, encrypted, (registered, registered_itself)) =
        row.ok_or_else(|| CoreError::InvalidArgument("audited relation vanished".into()))?;
    // The names as the catalog has them now (the system caches, not this transaction's
    // snapshot: a REPEATABLE READ transaction sees a rename committed after it began).
    let (namespace, schema, table) = unsafe {
        let namespace = pg_sys::get_rel_namespace(target);
        let (s, t) = (pg_sys::get_namespace_name(namespace), pg_sys::get_rel_name(target));
        if s.is_null() || t.is_null() {
            return Err(CoreError::InvalidArgument("audited relation vanished".into()).into());
        }
        (namespace, std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned(), std::ffi::CStr::from_ptr(t).to_string_lossy().into_owned())
    };
    let info = Rc::new(TableInfo {
        schema,
        table,
        own_namespace: (target == relid).then_some(namespace),
        exclude: KeyList::new(&exclude),
        has_pk: !pk.is_empty(),
        encrypted,
        exclude_names: exclude,
        pk_names: pk,
        shape: RefCell::new(None),
        registered_itself,
        registered,
    });
    TABLES.with(|p| p.borrow_mut().1.insert(relid, info.clone()));
    Ok(info)
}

/// The one INSERT every audit row goes through (prepared once per backend).
fn insert_plan() -> TgResult<Rc<OwnedPreparedStatement>> {
    if let Some(p) = INSERT_PLAN.with(|p| p.borrow().clone()) {
        return Ok(p);
    }
    let types: Vec<PgOid> = LOG_TYPES.into_iter().map(PgOid::from).collect();
    let plan = common::as_owner(|| {
        Spi::connect(|client| {
            client
                .prepare_mut(
                    "INSERT INTO tradeguard_audit.log (id, txid, at, schema_name, table_name, operation, pk, old_row,
                         new_row, current_user_name, session_user_name, application_name, client_addr, app_context, signature, pk_hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                    &types,
                )
                .map(|p| p.keep())
        })
    })??;
    let plan = Rc::new(plan);
    INSERT_PLAN.with(|p| *p.borrow_mut() = Some(plan.clone()));
    Ok(plan)
}

/// A `text[]` of column names built once per table configuration, not once per audited row: the
/// array's bytes are kept in Rust memory (freed with the configuration) and passed by pointer.
/// None when empty.
struct KeyList(Option<Vec<u8>>);

impl KeyList {
    fn new(keys: &[String]) -> KeyList {
        if keys.is_empty() {
            return KeyList(None);
        }
        KeyList(keys.to_vec().into_datum().map(|d| unsafe { varlena_copy(d) }))
    }

    fn datum(&self) -> Option<pg_sys::Datum> {
        self.0.as_ref().map(|v| pg_sys::Datum::from(v.as_ptr()))
    }
}

/// `to_jsonb(record)` called directly: its argument type comes from the call expression, so
/// the call carries a constant `record` expression (built once, in TopMemoryContext).
fn to_jsonb_fn() -> *mut pg_sys::FmgrInfo {
    TO_JSONB.with(|c| {
        if c.get().is_null() {
            unsafe {
                pgrx::PgMemoryContexts::TopMemoryContext.switch_to(|_| {
                    let f = pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>()) as *mut pg_sys::FmgrInfo;
                    pg_sys::fmgr_info_cxt(pg_sys::Oid::from(pg_sys::F_TO_JSONB), f, pg_sys::TopMemoryContext);
                    let arg = pg_sys::makeNullConst(pg_sys::RECORDOID, -1, pg_sys::InvalidOid);
                    let args = pg_sys::lappend(std::ptr::null_mut(), arg.cast());
                    let expr = pg_sys::makeFuncExpr(
                        pg_sys::Oid::from(pg_sys::F_TO_JSONB),
                        pg_sys::JSONBOID,
                        args,
                        pg_sys::InvalidOid,
                        pg_sys::InvalidOid,
                        pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
                    );
                    (*f).fn_expr = expr.cast();
                    c.set(f);
                });
            }
        }
        c.get()
    })
}

thread_local! {
    static TO_JSONB: std::cell::Cell<*mut pg_sys::FmgrInfo> = const { std::cell::Cell::new(std::ptr::null_mut()) };
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

    /// `jsonb_hash_extended(pk, 0)`: the trail's `pk_hash`, what history() looks rows up by.
    pub fn pk_hash(self) -> i64 {
        unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::jsonb_hash_extended, &[Some(self.0), Some(pg_sys::Datum::from(0i64))])
                .map_or(0, |d| d.value() as i64)
        }
    }

    fn delete_keys(self, keys: &KeyList) -> Jsonb {
        match keys.datum() {
            None => self,
            Some(arr) => Jsonb(
                unsafe { pgrx::direct_function_call_as_datum(pg_sys::jsonb_delete_array, &[Some(self.0), Some(arr)]) }
                    .unwrap_or(self.0),
            ),
        }
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

/// The jsonb image of a row: `to_jsonb(row)` (types kept: numbers stay numbers; the same
/// value as `row_to_json(row)::jsonb`).
fn row_image(tuple: *mut pg_sys::HeapTupleData, tupdesc: pg_sys::TupleDesc) -> TgResult<Jsonb> {
    unsafe {
        let rec = pg_sys::heap_copy_tuple_as_datum(tuple, tupdesc);
        Ok(Jsonb(pg_sys::FunctionCall1Coll(to_jsonb_fn(), pg_sys::InvalidOid, rec)))
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

/// What every audit row of a session shares, kept while it stays the same: the session user,
/// `application_name`, the client address (binary inet) and the parsed `tradeguard.app_context`.
struct SessionFacts {
    /// [`role_generation`] when made: the session user's name is looked up again after any
    /// change to pg_authid (a rename).
    roles: u64,
    session_oid: pg_sys::Oid,
    session_user: String,
    app: Option<String>,
    app_raw: Option<Vec<u8>>,
    /// The whole inet varlena (header included): passed to the tuple by pointer.
    addr: Option<Vec<u8>>,
    app_context_src: String,
    /// The whole jsonb varlena of the app context (header included).
    app_context: Option<Vec<u8>>,
}

/// The bytes of a varlena datum, header included (a stable copy that outlives its memory context).
unsafe fn varlena_copy(d: pg_sys::Datum) -> Vec<u8> {
    let v = pg_sys::pg_detoast_datum(d.cast_mut_ptr::<pg_sys::varlena>());
    std::slice::from_raw_parts(v as *const u8, pgrx::varlena::varsize_any(v)).to_vec()
}

fn session_facts() -> TgResult<Rc<SessionFacts>> {
    // Compared as raw bytes on every row; converted to strings only when something changed.
    let session_oid = unsafe { pg_sys::GetSessionUserId() };
    let app_raw = unsafe { (!pg_sys::application_name.is_null()).then(|| std::ffi::CStr::from_ptr(pg_sys::application_name)) };
    let ctx = crate::gucs::APP_CONTEXT.get();
    let ctx_raw = ctx.as_deref().map(|c| c.to_bytes()).unwrap_or_default();
    if let Some(f) = SESSION.with(|s| s.borrow().clone()) {
        if f.roles == role_generation()
            && f.session_oid == session_oid
            && f.app_raw.as_deref() == app_raw.map(|a| a.to_bytes())
            && f.app_context_src.as_bytes() == ctx_raw
        {
            return Ok(f);
        }
    }
    let app = app_raw.map(|a| a.to_string_lossy().into_owned());
    let ctx_src = String::from_utf8_lossy(ctx_raw).into_owned();
    let addr = unsafe {
        common::client_ip(pg_sys::libpq::be::MyProcPort).and_then(|ip| {
            let c = std::ffi::CString::new(ip.to_string()).ok()?;
            pgrx::direct_function_call_as_datum(pg_sys::inet_in, &[Some(pg_sys::Datum::from(c.as_ptr()))]).map(|d| varlena_copy(d))
        })
    };
    let app_context = match ctx_src.as_str() {
        "" => None,
        // The limit set_context() enforces, also for a value set with set_config() or SET:
        // every audit row carries the context.
        s if s.len() > 4096 => {
            return Err(AuditError::InvalidArgument("tradeguard.app_context is larger than 4 kB; set a smaller context".into()).into())
        }
        s => Some(unsafe { varlena_copy(Jsonb::parse(s)?.0) }),
    };
    let f = Rc::new(SessionFacts { roles: role_generation(), session_oid, session_user: common::role_name(session_oid), app_raw: app_raw.map(|a| a.to_bytes().to_vec()), app, addr, app_context_src: ctx_src, app_context });
    SESSION.with(|s| *s.borrow_mut() = Some(f.clone()));
    Ok(f)
}

/// Where audit rows go, looked up once per transaction: the trail table and its sequence.
#[derive(Clone, Copy)]
struct Target {
    xact: u64,
    log: pg_sys::Oid,
    seq: pg_sys::Oid,
}

const LOG_COLUMNS: [&str; 17] = [
    "id", "txid", "at", "schema_name", "table_name", "operation", "pk", "old_row", "new_row", "current_user_name",
    "session_user_name", "application_name", "client_addr", "app_context", "signature", "pk_hash", "block_no",
];

/// The types of LOG_COLUMNS but `block_no` (never set on write): the fallback INSERT's parameters.
const LOG_TYPES: [pg_sys::Oid; 16] = [
    pg_sys::INT8OID, pg_sys::INT8OID, pg_sys::TIMESTAMPTZOID, pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID,
    pg_sys::JSONBOID, pg_sys::JSONBOID, pg_sys::JSONBOID, pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID,
    pg_sys::INETOID, pg_sys::JSONBOID, pg_sys::BYTEAOID, pg_sys::INT8OID,
];

fn target() -> TgResult<Target> {
    let xact = common::shmem::local_xact_stamp();
    if let Some(t) = TARGET.with(|t| t.get()).filter(|t| t.xact == xact) {
        return Ok(t);
    }
    let (log, seq) = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tradeguard_audit".as_ptr(), true);
        // New rows go to the partition of unsealed rows.
        (pg_sys::get_relname_relid(c"log_unsealed".as_ptr(), nsp), pg_sys::get_relname_relid(c"log_id_seq".as_ptr(), nsp))
    };
    if log == pg_sys::InvalidOid || seq == pg_sys::InvalidOid {
        return Err(CoreError::InvalidArgument("the audit trail table tradeguard_audit.log (partition log_unsealed) is missing".into()).into());
    }
    let t = Target { xact, log, seq };
    TARGET.with(|c| c.set(Some(t)));
    Ok(t)
}

/// The trail table and its indexes, opened once per transaction by the first audit row and
/// kept open until commit (not opened, checked and closed again for every audited change).
/// Opened under the top transaction's resource owner, so that a subtransaction ending does not
/// close them; closed before commit or prepare and before any utility statement; on abort the
/// resource owner releases them. Indexes are maintained as the executor does (partial and
/// expression indexes included), with an executor state of the transaction's own.
#[derive(Clone, Copy)]
struct OpenTrail {
    xact: u64,
    relid: pg_sys::Oid,
    /// Null when the trail is not written directly (the other pointers are null too).
    rel: pg_sys::Relation,
    rri: *mut pg_sys::ResultRelInfo,
    estate: *mut pg_sys::EState,
    slot: *mut pg_sys::TupleTableSlot,
}

thread_local! {
    static OPEN_TRAIL: std::cell::Cell<Option<OpenTrail>> = const { std::cell::Cell::new(None) };
    /// Set when the trail's relcache entry is invalidated (an index or column added, ANALYZE):
    /// the next row closes and reopens it, so that a new index also receives the row.
    static TRAIL_STALE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static TRAIL_CALLBACKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn trail_xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PARALLEL_PRE_COMMIT | XACT_EVENT_PRE_PREPARE => close_trail(),
        // The resource owner releases the relation and its indexes.
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => OPEN_TRAIL.with(|o| o.set(None)),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn trail_relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if let Some(o) = OPEN_TRAIL.with(|o| o.get()) {
        if relid == pg_sys::InvalidOid || relid == o.relid {
            TRAIL_STALE.with(|s| s.set(true));
        }
    }
}

/// Runs `f` with the top transaction's resource owner and memory context.
unsafe fn in_top_transaction<R>(f: impl FnOnce() -> R) -> R {
    let (owner, cxt) = (pg_sys::CurrentResourceOwner, pg_sys::CurrentMemoryContext);
    pg_sys::CurrentResourceOwner = pg_sys::TopTransactionResourceOwner;
    pg_sys::CurrentMemoryContext = pg_sys::TopTransactionContext;
    let r = f();
    (pg_sys::CurrentResourceOwner, pg_sys::CurrentMemoryContext) = (owner, cxt);
    r
}

/// Closes the trail if this transaction opened it (before commit, and before any utility
/// statement: see the utility hook).
pub(crate) fn close_trail() {
    if let Some(o) = OPEN_TRAIL.with(|o| o.take()) {
        if !o.rel.is_null() {
            unsafe {
                in_top_transaction(|| {
                    pg_sys::ExecDropSingleTupleTableSlot(o.slot);
                    pg_sys::ExecCloseIndices(o.rri);
                    pg_sys::FreeExecutorState(o.estate);
                    pg_sys::table_close(o.rel, pg_sys::NoLock as i32);
                })
            }
        }
    }
}

/// The trail opened for this transaction. `rel` is null unless the table has exactly
/// LOG_COLUMNS (else rows go through SQL).
unsafe fn open_trail(t: &Target) -> OpenTrail {
    if let Some(o) = OPEN_TRAIL.with(|o| o.get()) {
        if o.xact == t.xact && o.relid == t.log && !TRAIL_STALE.with(|s| s.get()) {
            return o;
        }
    }
    close_trail();
    if !TRAIL_CALLBACKS.with(|c| c.replace(true)) {
        pg_sys::RegisterXactCallback(Some(trail_xact_callback), std::ptr::null_mut());
        pg_sys::CacheRegisterRelcacheCallback(Some(trail_relcache_callback), pg_sys::Datum::from(0usize));
    }
    TRAIL_STALE.with(|s| s.set(false));
    let o = in_top_transaction(|| {
        let none = OpenTrail {
            xact: t.xact,
            relid: t.log,
            rel: std::ptr::null_mut(),
            rri: std::ptr::null_mut(),
            estate: std::ptr::null_mut(),
            slot: std::ptr::null_mut(),
        };
        let rel = pg_sys::table_open(t.log, pg_sys::RowExclusiveLock as i32);
        let desc = (*rel).rd_att;
        let atts = (*desc).attrs.as_slice((*desc).natts as usize);
        let layout_ok = atts.len() == LOG_COLUMNS.len()
            && atts.iter().zip(LOG_COLUMNS).all(|(a, n)| {
                !a.attisdropped && std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_bytes() == n.as_bytes()
            });
        if !layout_ok {
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
            return none;
        }
        let estate = pg_sys::CreateExecutorState();
        let rri = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>()) as *mut pg_sys::ResultRelInfo;
        (*rri).type_ = pg_sys::NodeTag::T_ResultRelInfo;
        pg_sys::InitResultRelInfo(rri, rel, 1, std::ptr::null_mut(), 0);
        pg_sys::ExecOpenIndices(rri, false);
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsHeapTuple);
        OpenTrail { rel, rri, estate, slot, ..none }
    });
    OPEN_TRAIL.with(|c| c.set(Some(o)));
    o
}

/// Inserts one trail row straight into the heap and its indexes (what COPY does), without
/// planning and running an INSERT statement per audited change. Returns false, having written
/// nothing, unless the table has exactly LOG_COLUMNS (then the caller goes through SQL).
///
/// # Safety
/// `values`/`nulls` must hold LOG_COLUMNS.len() entries matching LOG_COLUMNS.
unsafe fn insert_direct(t: &Target, values: &mut [pg_sys::Datum], nulls: &mut [bool]) -> bool {
    let o = open_trail(t);
    if o.rel.is_null() {
        return false;
    }
    let tup = pg_sys::heap_form_tuple((*o.rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
    pg_sys::simple_heap_insert(o.rel, tup);
    pg_sys::ExecStoreHeapTuple(tup, o.slot, false);
    let ec = match (*o.estate).es_per_tuple_exprcontext {
        ec if ec.is_null() => in_top_transaction(|| pg_sys::MakePerTupleExprContext(o.estate)),
        ec => ec,
    };
    pg_sys::ExecInsertIndexTuples(o.rri, o.slot, o.estate, false, false, std::ptr::null_mut(), std::ptr::null_mut());
    pg_sys::ExecClearTuple(o.slot);
    pg_sys::MemoryContextReset((*ec).ecxt_per_tuple_memory);
    pg_sys::heap_freetuple(tup);
    true
}

thread_local! {
    /// The row signer for the audit key it was made with (HMAC keyed once per backend). Made
    /// again when the key generation moves (keys changed, or the root key setting was assigned
    /// again: a reload may put another file behind the same path), or, not preloaded, when the
    /// setting names another file.
    static SIGNER: RefCell<Option<(SignerStamp, Rc<chain::RowSigner>)>> = const { RefCell::new(None) };
    static SESSION: RefCell<Option<Rc<SessionFacts>>> = const { RefCell::new(None) };
    static TARGET: std::cell::Cell<Option<Target>> = const { std::cell::Cell::new(None) };
}

/// The row signer of the audit key (HMAC keyed once per backend and root key file).
fn row_signer() -> TgResult<Rc<chain::RowSigner>> {
    let stamp = match common::shmem::key_generation() {
        Some(g) => SignerStamp::Generation(g),
        None => SignerStamp::Path(crate::gucs::ROOT_KEY_FILE.get()),
    };
    if let Some((s, signer)) = SIGNER.with(|c| c.borrow().clone()) {
        if s == stamp {
            return Ok(signer);
        }
    }
    let key = audit_key()?;
    let signer = Rc::new(chain::RowSigner::new(&key));
    SIGNER.with(|c| *c.borrow_mut() = Some((stamp, signer.clone())));
    Ok(signer)
}

/// What a cached row signer was made under.
#[derive(Clone, PartialEq)]
enum SignerStamp {
    Generation(u64),
    Path(Option<std::ffi::CString>),
}

extern "C-unwind" {
    /// commands/sequence.h: the next value of sequence `relid`, checking USAGE or UPDATE on it
    /// only if asked.
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
}

/// Signs and writes one audit row. `actor` is the role acting (`current_user` before any
/// elevation).
pub fn write_row(row: &LogRow<'_>, actor: &str) -> TgResult<i64> {
    let signer = row_signer()?;
    let facts = session_facts()?;
    let t = target()?;
    // The trail's own sequence, found by tradeguard in its own schema: no USAGE check (the
    // caller has none; nextval() would need the owner's identity) and no function-call round.
    // SAFETY: `seq` is the oid of a sequence; errors are caught at the FFI boundary.
    let id = unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| nextval_internal(t.seq, false)) };
    let txid = unsafe { pg_sys::GetTopFullTransactionId().value as i64 };
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let ptr_datum = |v: &Option<Vec<u8>>| v.as_ref().map(|b| pg_sys::Datum::from(b.as_ptr()));
    // The client address is signed in its binary inet form (verify reads it back without
    // converting every row to text).
    let addr_datum = ptr_datum(&facts.addr);
    let ctx_datum = ptr_datum(&facts.app_context);
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
        session_user: &facts.session_user,
        application_name: facts.app.as_deref(),
        client_addr: addr_datum.map(varlena_bytes),
        app_context: ctx_datum.map(varlena_bytes),
    };
    let sig = signer.sign(&signed);
    let _w = InternalWrite::begin();
    // The row, once: written into the heap directly, or else passed to the INSERT.
    let text = |s: &str| s.into_datum();
    let cells: [Option<pg_sys::Datum>; 17] = [
        Some(pg_sys::Datum::from(id)),
        Some(pg_sys::Datum::from(txid)),
        Some(pg_sys::Datum::from(now)),
        text(row.schema),
        text(row.table),
        text(row.operation),
        row.pk.map(|j| j.0),
        row.old_row.map(|j| j.0),
        row.new_row.map(|j| j.0),
        text(actor),
        text(&facts.session_user),
        facts.app.as_deref().and_then(text),
        addr_datum,
        ctx_datum,
        sig.as_slice().into_datum(),
        // pk_hash and block_no: set by the sealer (pk_hash is derived from the signed pk and
        // only sealed rows are found through it; computing it is not the writer's work).
        None,
        None,
    ];
    let mut values = cells.map(|c| c.unwrap_or(pg_sys::Datum::from(0usize)));
    let mut nulls = cells.map(|c| c.is_none());
    if unsafe { insert_direct(&t, &mut values, &mut nulls) } {
        // Without the utility hook (not preloaded) nothing would close the trail before DDL on
        // it later in the transaction: keep it open only for the row.
        if !common::is_preloaded() {
            close_trail();
        }
        return Ok(id);
    }
    let plan = insert_plan()?;
    let args: Vec<pgrx::datum::DatumWithOid> = cells
        .iter()
        .zip(LOG_TYPES)
        .map(|(c, oid)| match c {
            Some(d) => unsafe { pgrx::datum::DatumWithOid::new(*d, oid) },
            None => pgrx::datum::DatumWithOid::null_oid(oid),
        })
        .collect();
    common::as_owner_fast(|| Spi::connect_mut(|client| client.update(&*plan, None, &args).map(|_| ())))??;
    Ok(id)
}

/// AFTER ROW (INSERT, UPDATE, DELETE) and AFTER STATEMENT (TRUNCATE) trigger of audited tables.
#[pg_trigger]
fn audit_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, CoreError> {
    record_change(trigger).or_raise();
    Ok(None)
}

thread_local! {
    /// Bumped by the pg_authid invalidation callback: names of roles remembered under an older
    /// value are looked up again.
    static ROLE_GENERATION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static ROLE_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe extern "C-unwind" fn role_cache_callback(_arg: pg_sys::Datum, _cacheid: std::ffi::c_int, _hash: u32) {
    ROLE_GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
}

/// Changes whenever pg_authid may have changed (a role renamed, created or dropped, here or in
/// another session: PostgreSQL's invalidation messages), so that role names can be kept across
/// transactions without a catalog lookup each.
fn role_generation() -> u64 {
    if !ROLE_CALLBACK.with(|c| c.get()) {
        // SAFETY: registered once per backend; the callback only bumps a counter.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(pg_sys::SysCacheIdentifier::AUTHOID as i32, Some(role_cache_callback), pg_sys::Datum::from(0usize))
        };
        ROLE_CALLBACK.with(|c| c.set(true));
        // (Names remembered before the callback existed are not trusted.)
        ROLE_GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    }
    ROLE_GENERATION.with(|g| g.get())
}

/// `current_user` by name, remembered for the role until pg_authid changes (no catalog lookup
/// per audited row or transaction; a role renamed since shows under its new name).
fn actor_name() -> Rc<str> {
    let key = (unsafe { pg_sys::GetUserId() }, role_generation());
    ACTOR.with(|a| {
        let mut a = a.borrow_mut();
        match a.as_ref() {
            Some((k, name)) if *k == key => name.clone(),
            _ => {
                let name: Rc<str> = common::role_name(key.0).into();
                *a = Some((key, name.clone()));
                name
            }
        }
    })
}

thread_local! {
    static ACTOR: RefCell<Option<(ActorStamp, Rc<str>)>> = const { RefCell::new(None) };
}

/// What a cached actor name was looked up under: the role and the role cache's generation.
type ActorStamp = (pg_sys::Oid, u64);

/// Refuses a call of the audit trigger function by any trigger but the two `audit_table` creates.
/// A table owner who may execute the function (`tradeguard_table_owner`, for partitions' clones
/// of the triggers) could otherwise name it in a trigger of their own: fired BEFORE (or INSTEAD
/// OF, on a view) it would sign rows for changes that never happen, since it returns NULL.
/// Trigger names are unique per table, so these two cannot be doubled on an audited table.
fn check_own_trigger(trigger: &pgrx::PgTrigger<'_>) -> TgResult<()> {
    use pgrx::trigger_support::*;
    let td = trigger.trigger_data();
    let event = td.tg_event;
    let name = trigger.name().unwrap_or("?");
    // SAFETY: the trigger manager passes the firing trigger's catalog entry.
    let plain = unsafe {
        let t = td.tg_trigger;
        !t.is_null() && (*t).tgqual.is_null() && (*t).tgnattr == 0 && (*t).tgconstraint == pg_sys::InvalidOid && (*t).tgnargs == 0
    };
    let ours = plain
        && trigger_fired_after(event)
        && match name {
            "tradeguard_audit_row" => trigger_fired_for_row(event) && !trigger_fired_by_truncate(event),
            "tradeguard_audit_truncate" => trigger_fired_for_statement(event) && trigger_fired_by_truncate(event),
            _ => false,
        };
    if ours {
        return Ok(());
    }
    let table = trigger.relid().ok().and_then(common::quoted_relation_name).unwrap_or_else(|| "?".into());
    Err(AuditError::ForeignTrigger { trigger: pgrx::spi::quote_identifier(name), table }.into())
}

fn record_change(trigger: &pgrx::PgTrigger<'_>) -> TgResult<()> {
    check_own_trigger(trigger)?;
    let td = trigger.trigger_data();
    let event = td.tg_event;
    let relid = trigger.relid().map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
    let mut info = table_info(relid)?;
    // The table audit_table registered, or a partition of it through the clone of its row
    // trigger (a statement trigger is not cloned: TRUNCATE of a partition is the hook's to
    // record). Anything else, a trigger under tradeguard's name on a table audit_table never set
    // up (or whose registration is gone), writes nothing: refused, never recorded by guess.
    // SAFETY: the trigger manager passes the firing trigger's catalog entry.
    let clone = unsafe { (*td.tg_trigger).tgisclone };
    let set_up = if pgrx::trigger_support::trigger_fired_by_truncate(event) {
        info.registered_itself
    } else {
        info.registered && (info.registered_itself || clone)
    };
    if !set_up {
        let table = common::quoted_relation_name(relid).unwrap_or_else(|| "?".into());
        return Err(AuditError::NotSetUp { trigger: pgrx::spi::quote_identifier(trigger.name().unwrap_or("?")), table }.into());
    }
    // SAFETY: the trigger's relation is open and described by its relcache entry.
    let current = unsafe {
        let form = (*td.tg_relation).rd_rel;
        info.own_namespace.is_none_or(|nsp| {
            (*form).relnamespace == nsp && std::ffi::CStr::from_ptr((*form).relname.data.as_ptr()).to_bytes() == info.table.as_bytes()
        })
    };
    if !current {
        TABLES.with(|t| t.borrow_mut().1.remove(&relid));
        info = table_info(relid)?;
    }
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
        let _floats = ExactFloats::begin();
        let (new_t, old_t, tupdesc) = common::trigger_tuples(trigger);
        let shape = unsafe { info.shape(tupdesc) };
        let plan = &shape.plan;
        let fast = || -> Option<Images> {
            let build = |t: *mut pg_sys::HeapTupleData, want_pk: bool| -> Option<Option<(Jsonb, Option<Jsonb>)>> {
                if t.is_null() {
                    return Some(None);
                }
                let (img, pk) = unsafe { plan.build(t, tupdesc, want_pk)? };
                Some(Some((Jsonb(img), pk.map(Jsonb))))
            };
            let new_i = build(new_t, info.has_pk)?;
            let old_i = build(old_t, info.has_pk && new_i.is_none())?;
            let pk = new_i.as_ref().or(old_i.as_ref()).and_then(|(_, pk)| *pk);
            Some((pk, old_i.map(|(i, _)| i), new_i.map(|(i, _)| i)))
        };
        match (!plan.generic).then(fast).flatten() {
            Some(images) => (pk, old_img, new_img) = images,
            None => (pk, old_img, new_img) = generic_images(&info, &shape.non_pk, &plan.as_text, new_t, old_t, tupdesc)?,
        }
    }
    let actor = actor_name();
    write_row(
        &LogRow { schema: &info.schema, table: &info.table, operation: op, pk, old_row: old_img, new_row: new_img },
        &actor,
    )?;
    Ok(())
}

/// Holds `extra_float_digits` at 1 (the shortest text that reads back as the same float) while
/// row images are built, when the session set it lower: floats (and the coordinates of
/// geometric types) are written with as many digits as it asks for, and a writer could
/// otherwise have the trail record 3000 for 2849.7 (`SET extra_float_digits = -15`). The
/// setting itself is not changed (no GUC nesting per row): its variable is restored on the way
/// out, also when an error unwinds.
struct ExactFloats(Option<i32>);

impl ExactFloats {
    fn begin() -> Self {
        // SAFETY: a backend-local variable read by float output functions only.
        unsafe {
            let digits = pg_sys::extra_float_digits;
            if digits < 1 {
                pg_sys::extra_float_digits = 1;
                return ExactFloats(Some(digits));
            }
        }
        ExactFloats(None)
    }
}

impl Drop for ExactFloats {
    fn drop(&mut self) {
        // (Unless code the images ran, a cast to json, set the GUC meanwhile: its value stands.)
        if let Some(digits) = self.0 {
            unsafe {
                if pg_sys::extra_float_digits == 1 {
                    pg_sys::extra_float_digits = digits;
                }
            }
        }
    }
}

/// The images through `to_jsonb(row)` (tables with columns [`ImagePlan`] does not convert):
/// (primary key, old row, new row).
type Images = (Option<Jsonb>, Option<Jsonb>, Option<Jsonb>);

fn generic_images(
    info: &TableInfo,
    non_pk: &KeyList,
    as_text: &[(usize, String, pg_sys::Oid)],
    new_t: *mut pg_sys::HeapTupleData,
    old_t: *mut pg_sys::HeapTupleData,
    tupdesc: pg_sys::TupleDesc,
) -> TgResult<Images> {
    let image = |t: *mut pg_sys::HeapTupleData| -> TgResult<Option<(Jsonb, Jsonb)>> {
        if t.is_null() {
            return Ok(None);
        }
        let mut full = row_image(t, tupdesc)?;
        // Columns of types created in the database: their output text, not a cast to json.
        for (att, name, out) in as_text {
            let attno = std::num::NonZeroUsize::new(att + 1).expect("1-based");
            if let Some(d) = unsafe { pgrx::heap_getattr_raw(t, attno, tupdesc) } {
                let text = unsafe { std::ffi::CStr::from_ptr(pg_sys::OidOutputFunctionCall(*out, d)) }.to_string_lossy().into_owned();
                full = full.set(name, Jsonb::parse(&serde_json::Value::String(text).to_string())?);
            }
        }
        let mut img = full.delete_keys(&info.exclude);
        for c in &info.encrypted {
            if let Some(v) = img.field_text(c) {
                if !crate::crypto::envelope::looks_armored(&v) {
                    img = img.set(c, Jsonb::parse(&format!("\"{WITHHELD}\""))?);
                }
            }
        }
        Ok(Some((full, img)))
    };
    let new_i = image(new_t)?;
    let old_i = image(old_t)?;
    let pk = if info.has_pk { new_i.as_ref().or(old_i.as_ref()).map(|(full, _)| full.delete_keys(non_pk)) } else { None };
    Ok((pk, old_i.map(|(_, i)| i), new_i.map(|(_, i)| i)))
}

/// BEFORE UPDATE/DELETE (row) and TRUNCATE (statement) on the protected tables.
#[pg_trigger]
fn protect_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, CoreError> {
    let td = trigger.trigger_data();
    // pg_restore of a signed trail (tradeguard.restore_mode, superuser only) may INSERT rows;
    // nothing else may write them but tradeguard itself (break-glass alone does not: a row or
    // block inserted by hand would not be recorded anywhere).
    let restoring = crate::gucs::restore_mode() && pgrx::trigger_support::trigger_fired_by_insert(td.tg_event);
    let internal = internal_write_active();
    // (The trail's partitions are named as the trail.)
    let table = || match trigger.table_name().unwrap_or_default() {
        t if t == "log_sealed" || t == "log_unsealed" => "log".to_string(),
        t => t,
    };
    let op = || trigger.op().map(|o| o.to_string()).map_err(|e| CoreError::InvalidArgument(e.to_string()));
    if internal || restoring {
        if !internal && first_restore_write_of_transaction() {
            // However restore mode was turned on (SET is recorded by the utility hook;
            // set_config(), PGOPTIONS and the configuration file are not), the first write it
            // lets through in a transaction is a security event.
            let detail = serde_json::json!({ "table": format!("tradeguard_audit.{}", table()), "operation": op()? });
            common::events::record("restore_mode_write", "high", &detail).or_raise();
        }
        let row = if pgrx::trigger_support::trigger_fired_by_delete(td.tg_event) { trigger.old() } else { trigger.new() };
        if !internal && table() == "log" {
            // A restored trail row whose id the trail already holds (in either partition: the
            // sealed rows' unique index covers its own partition only) would stop sealing later.
            let id = row.as_ref().map(|r| r.get_by_name::<i64>("id")).transpose().map_err(|e| CoreError::InvalidArgument(e.to_string()))?.flatten();
            let taken = common::with_catalog_search_path(|| {
                common::spi_first::<bool>("SELECT EXISTS (SELECT 1 FROM tradeguard_audit.log WHERE id = $1)", &[id.into()])
            })
            .map_err(CoreError::from)?;
            if taken != Some(false) {
                Err::<(), _>(crate::error::TgError::from(AuditError::ProtectedTable(format!(
                    "restore mode: trail row id {} is already in tradeguard_audit.log (a row is restored once)",
                    id.map_or("NULL".into(), |i| i.to_string())
                ))))
                .or_raise();
            }
        }
        return Ok(row);
    }
    let (table, op) = (table(), op()?);
    Err::<(), _>(crate::error::TgError::from(AuditError::ProtectedTable(format!(
        "{op} on tradeguard_audit.{table} is refused (for the table owner and superusers too)"
    ))))
    .or_raise();
    Ok(None)
}

thread_local! {
    /// The transaction that last raised `restore_mode_write`.
    static RESTORE_EVENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether no restore-mode write was let through earlier in this transaction.
fn first_restore_write_of_transaction() -> bool {
    let xact = common::shmem::local_xact_stamp();
    RESTORE_EVENT.with(|e| e.replace(xact)) != xact
}
