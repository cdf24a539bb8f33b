//! `encrypt_column`: convert a plaintext column in place, encrypt future writes with a trigger,
//! keep a blind index, and expose a `<table>_decrypted` view to tradeguard_decryptor only.
//!
//! Encrypted columns keep the type `text` and hold the `tg1:` armor of an envelope, so the
//! application keeps writing plaintext values (PostgreSQL's assignment cast turns numbers and
//! timestamps into text) and the trigger replaces them before the row is stored. Each value is
//! bound to `tg:<column id>:<primary key>` so a ciphertext copied to another row or column fails
//! to decrypt. Values that already carry the armor are left alone: conversion is resumable and
//! idempotent, and pg_restore does not encrypt twice.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::AnyNumeric;
use zeroize::Zeroizing;

use super::envelope::{self, ValueType};
use super::error::CryptoError;
use super::keys::{self, Purpose};
use super::value;
use crate::common;
use crate::error::{CoreError, OrRaise, TgResult};

/// One encrypted column of a table, as registered in `tradeguard_audit.encrypted_columns`.
struct ColumnCfg {
    column_id: i32,
    name: String,
    key_name: String,
    value_type: ValueType,
    blind_column: Option<String>,
    blind_key: Option<String>,
    /// The encryption key (id, active version, data key), looked up on first use. Valid as long
    /// as this configuration: both are dropped when keys change (key generation).
    key: RefCell<Option<(u32, u32, Rc<keys::VersionEntry>)>>,
    /// Where the column and its blind index column were found in the row last time (checked
    /// by name on every use, so a changed table is never misread).
    position: std::cell::Cell<(usize, usize)>,
    /// The column's type before it was encrypted (`format_type` text, e.g. `numeric(6,2)`).
    original_type: String,
    /// That type's input function, I/O parameter and typmod (resolved on first use), when
    /// written values must be checked against it: every original type but unlimited text.
    input: std::cell::OnceCell<Option<(pg_sys::Oid, pg_sys::Oid, i32)>>,
    /// The transaction (local id), armor, context and blind index (empty: none) of the last
    /// value an INSERT sealed into this column (ciphertext, key text and MAC only; buffers
    /// reused from row to row). Shared with [`LAST_SEALED`], so that it outlives this
    /// configuration (see there).
    last_sealed: LastSealed,
}

type LastSealed = Rc<RefCell<(u64, Vec<u8>, String, Vec<u8>)>>;

thread_local! {
    /// The last value an INSERT sealed, per encrypted column (by column id), kept apart from the
    /// table configurations: those are dropped whenever keys change in any backend (and rebuilt
    /// on every row when tradeguard is not preloaded), and the UPDATE of an
    /// `INSERT ... ON CONFLICT DO UPDATE SET c = EXCLUDED.c` must still find what its INSERT
    /// sealed. One small entry per column this backend has written to.
    static LAST_SEALED: RefCell<rustc_hash::FxHashMap<i32, LastSealed>> = RefCell::new(rustc_hash::FxHashMap::default());
}

impl ColumnCfg {
    fn seal_into(&self, out: &mut Vec<u8>, vt: ValueType, plaintext: &[u8], context: &str) -> TgResult<()> {
        let cached = self.key.borrow().clone();
        let (key_id, version, entry) = match cached {
            Some(k) => k,
            None => {
                let (info, version, entry) = keys::encryption_key(&self.key_name, Purpose::Encrypt)?;
                let k = (info.key_id, version, entry);
                // Only a preloaded server has a key generation to invalidate the cached key.
                if common::is_preloaded() {
                    *self.key.borrow_mut() = Some(k.clone());
                }
                k
            }
        };
        super::seal_into(out, key_id, version, &entry, vt, plaintext, context)
    }

    /// Refuses a written value the column's original type would refuse (range, length,
    /// precision, syntax): the decrypting view casts back to that type, and a value it cannot
    /// take would make the view fail for every reader (or, for varchar(n), be cut). The error
    /// never contains the value.
    fn check_input<'t>(&self, text: impl FnOnce() -> TgResult<&'t str>) -> TgResult<()> {
        let input = *self.input.get_or_init(|| {
            if matches!(self.original_type.as_str(), "text" | "character varying") {
                return None;
            }
            let name = std::ffi::CString::new(self.original_type.as_str()).ok()?;
            let (mut typid, mut typmod, mut func, mut ioparam) = (pg_sys::InvalidOid, -1i32, pg_sys::InvalidOid, pg_sys::InvalidOid);
            // pg_catalog first: a type of the writer's pg_temp (searched first for type names
            // by default) must not stand in for the original type.
            unsafe {
                common::with_catalog_search_path(|| pg_sys::parseTypeString(name.as_ptr(), &mut typid, &mut typmod, true));
                if typid == pg_sys::InvalidOid {
                    return None;
                }
                pg_sys::getTypeInputInfo(typid, &mut func, &mut ioparam);
            }
            Some((func, ioparam, typmod))
        });
        let Some((func, ioparam, typmod)) = input else { return Ok(()) };
        // Input functions raise plain errors that quote the value: caught, and one that does not
        // is raised instead.
        if super::input_accepts(func, ioparam, typmod, text()?) {
            Ok(())
        } else {
            Err(CryptoError::InvalidInput(format!("column {}: value is not a valid {}", self.name, self.original_type)).into())
        }
    }
}

struct TableCfg {
    columns: Vec<ColumnCfg>,
    /// The primary key columns values are bound to: none, one, or several (composite).
    pk_columns: Vec<String>,
    /// Where each of them was found last time (see `ColumnCfg::position`).
    pk_positions: Vec<std::cell::Cell<usize>>,
}

thread_local! {
    static TABLES: common::shmem::GenerationCache<pg_sys::Oid, Rc<TableCfg>> = RefCell::new((None, rustc_hash::FxHashMap::default()));
}

/// A `format_type` name without its type modifiers, wherever they stand: `timestamp(3) with
/// time zone` is `timestamp with time zone`, `numeric(6,2)[]` is `numeric[]` (an array, which
/// no value type is).
fn type_without_modifiers(name: &str) -> String {
    let mut depth = 0usize;
    let bare: String = name
        .chars()
        .filter(|c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect();
    bare.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn value_type_for(sql_type: &str) -> Option<ValueType> {
    Some(match sql_type {
        "text" | "character varying" | "character" | "name" | "citext" => ValueType::Text,
        "numeric" => ValueType::Numeric,
        "bigint" | "integer" | "smallint" => ValueType::Bigint,
        "double precision" | "real" => ValueType::Float8,
        "timestamp with time zone" => ValueType::Timestamptz,
        "jsonb" => ValueType::Jsonb,
        _ => return None,
    })
}

fn load_table_cfg(relid: pg_sys::Oid) -> TgResult<Rc<TableCfg>> {
    if let Some(cfg) = TABLES.with(|t| common::shmem::generation_cached(t, &relid)) {
        return Ok(cfg);
    }
    let rows = common::as_owner(|| {
        common::spi_rows(
            concat!(
                "WITH registered AS (
                   SELECT e.*, ", crate::registered_relid_sql!(), "::oid AS relid
                     FROM tradeguard_audit.encrypted_columns e
                 ), target AS (
                   SELECT c.relid FROM ", crate::self_and_ancestors_sql!(), " c
                    WHERE EXISTS (SELECT 1 FROM registered r WHERE r.relid = c.relid)
                    ORDER BY c.depth LIMIT 1
                 )
                 SELECT e.column_id, e.column_name, e.key_name, e.value_type, e.blind_column, e.blind_key,
                        coalesce(e.pk_columns, CASE WHEN e.pk_column IS NULL THEN '{}' ELSE ARRAY[e.pk_column] END),
                        e.original_type
                   FROM registered e JOIN target t ON t.relid = e.relid
                  ORDER BY e.column_id"
            ),
            &[relid.into()],
            |r| {
                Ok((
                    r.get::<i32>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<String>(5)?,
                    r.get::<String>(6)?,
                    r.get::<Vec<String>>(7)?.unwrap_or_default(),
                    r.get::<String>(8)?.unwrap_or_else(|| "text".into()),
                ))
            },
        )
    })??;
    let mut pk_columns = Vec::new();
    let mut columns = Vec::new();
    for (column_id, name, key_name, vt, blind_column, blind_key, pk, original_type) in rows {
        pk_columns = pk;
        columns.push(ColumnCfg {
            column_id,
            name,
            key_name,
            value_type: ValueType::parse_name(&vt)?,
            blind_column,
            blind_key,
            key: RefCell::new(None),
            position: std::cell::Cell::new((usize::MAX, usize::MAX)),
            original_type,
            input: std::cell::OnceCell::new(),
            last_sealed: LAST_SEALED.with(|m| m.borrow_mut().entry(column_id).or_default().clone()),
        });
    }
    if columns.is_empty() {
        // The trigger is there but nothing says what to encrypt: refuse the write rather than
        // store plaintext (never fail open).
        return Err(CryptoError::NotConfigured(common::relation_name(relid)).into());
    }
    let pk_positions = pk_columns.iter().map(|_| std::cell::Cell::new(usize::MAX)).collect();
    let cfg = Rc::new(TableCfg { columns, pk_columns, pk_positions });
    TABLES.with(|t| t.borrow_mut().1.insert(relid, cfg.clone()));
    Ok(cfg)
}

/// Appends the context a column value is bound to: `tg:<column id>[:<primary key>]`, where a
/// composite key is written as `<octet length>:<text>` per column ([`composite_key`]).
/// [`context_sql`] is the same text as a SQL expression over the row.
fn push_context(buf: &mut String, column_id: i32, pk: Option<&PkText>) {
    let mut int = itoa::Buffer::new();
    buf.push_str("tg:");
    buf.push_str(int.format(column_id));
    match pk {
        Some(PkText::Int(i)) => {
            buf.push(':');
            buf.push_str(int.format(*i));
        }
        Some(PkText::Text(t)) => {
            buf.push(':');
            buf.push_str(t);
        }
        None => {}
    }
}

/// [`push_context`] as a SQL expression over the row of table `rel` (for the decrypting view
/// and re-encryption).
fn context_sql(column_id: i32, pk_columns: &[String], rel: pg_sys::Oid) -> TgResult<String> {
    let parts = pk_columns.iter().map(|c| key_text_sql(rel, c)).collect::<TgResult<Vec<_>>>()?;
    Ok(match parts.as_slice() {
        [] => format!("'tg:{column_id}'"),
        // A NULL key (possible only once the primary key is gone) binds to the column alone, as
        // in the trigger: never a NULL context, which would make decryption return NULL.
        [pk] => format!("'tg:{column_id}' || coalesce(':' || {pk}, '')"),
        many => {
            let parts: Vec<String> = many.iter().map(|t| format!("pg_catalog.octet_length({t}) || ':' || {t}")).collect();
            format!("'tg:{column_id}' || coalesce(':' || {}, '')", parts.join(" || "))
        }
    })
}

/// The key text [`attribute_text`] binds a value of key column `col` of `rel` to, as SQL: the
/// column's text, except for dates and timestamps, whose text depends on DateStyle and
/// TimeZone: their day or microsecond count since 2000-01-01 (what PostgreSQL stores), or
/// `infinity` / `-infinity`.
fn key_text_sql(rel: pg_sys::Oid, col: &str) -> TgResult<String> {
    let typid = common::spi_first::<pg_sys::Oid>(
        "SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[rel.into(), col.into()],
    )?
    .ok_or_else(|| CoreError::InvalidArgument(format!("key column \"{col}\" not found")))?;
    let c = q(col);
    Ok(match typid {
        pg_sys::DATEOID => format!("CASE WHEN pg_catalog.isfinite({c}) THEN ({c} - DATE '2000-01-01')::text ELSE {c}::text END"),
        pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => format!(
            "CASE WHEN pg_catalog.isfinite({c}) THEN ((pg_catalog.extract('epoch', {c}) - 946684800) * 1000000)::bigint::text ELSE {c}::text END"
        ),
        _ => format!("{c}::text"),
    })
}

/// The text a composite key is bound as: `<octet length>:<text>` for each column, in key order
/// (unambiguous whatever the texts hold).
fn composite_key(parts: &[PkText]) -> PkText {
    let mut out = String::new();
    let (mut int, mut len) = (itoa::Buffer::new(), itoa::Buffer::new());
    for p in parts {
        let text = match p {
            PkText::Int(i) => int.format(*i),
            PkText::Text(t) => t.as_str(),
        };
        out.push_str(len.format(text.len()));
        out.push(':');
        out.push_str(text);
    }
    PkText::Text(out)
}

/// The session's `extra_float_digits` when it is below `min` (a float's text is then rounded).
fn float_digits_below(min: i32) -> Option<i32> {
    // SAFETY: a backend-local GUC variable.
    let digits = unsafe { pg_sys::extra_float_digits };
    (digits < min).then_some(digits)
}

/// Turns the text the application wrote into the typed plaintext encoding.
fn encode_plaintext(vt: ValueType, text: &str) -> TgResult<Zeroizing<Vec<u8>>> {
    let bad = |what: &str| CryptoError::InvalidInput(format!("value is not a valid {what}"));
    Ok(Zeroizing::new(match vt {
        ValueType::Text | ValueType::Jsonb | ValueType::Bytea => text.as_bytes().to_vec(),
        ValueType::Numeric => {
            // A float written to a numeric column arrives as its text too: below 0,
            // extra_float_digits rounds it further than a plaintext numeric column would (pi()
            // as 3 at -14). Refused in such a session (numbers written as numeric are exact).
            if let Some(digits) = float_digits_below(0) {
                return Err(CryptoError::InvalidInput(format!(
                    "a number written to an encrypted numeric column arrives as text, and a float's text is rounded at extra_float_digits = {digits}; set extra_float_digits to 0 or more"
                ))
                .into());
            }
            AnyNumeric::try_from(text).map_err(|_| bad("numeric"))?.to_string().into_bytes()
        }
        ValueType::Bigint => value::encode_bigint(text.trim().parse::<i64>().map_err(|_| bad("bigint"))?).to_vec(),
        ValueType::Float8 => {
            // The column is text now: a float the application writes is cast to text first,
            // with extra_float_digits digits. Below 1 that text is rounded (pi() as 3.1416 at
            // -3), and encrypting it would store another number: refused, never rounded.
            if let Some(digits) = float_digits_below(1) {
                return Err(CryptoError::InvalidInput(format!(
                    "a double precision value written to an encrypted column arrives as text, which extra_float_digits = {digits} rounds; set extra_float_digits to 1 (the default) or more"
                ))
                .into());
            }
            value::encode_float8(text.trim().parse::<f64>().map_err(|_| bad("double precision"))?).to_vec()
        }
        ValueType::Timestamptz => {
            let c = std::ffi::CString::new(text).map_err(|_| bad("timestamptz"))?;
            let ts: TimestampWithTimeZone = unsafe {
                pgrx::direct_function_call(
                    pg_sys::timestamptz_in,
                    &[c.as_c_str().into_datum(), pg_sys::InvalidOid.into_datum(), (-1i32).into_datum()],
                )
                .ok_or_else(|| bad("timestamptz"))?
            };
            // The column is text now: a timestamptz the application writes is cast to text
            // first, in the session's DateStyle. ISO writes a numeric UTC offset; the other
            // styles write the zone's abbreviation, which PostgreSQL 15 reads from its own table
            // (Asia/Shanghai's "CST" is read as US Central: 14 hours off; Europe/Dublin's "IST"
            // as Israel's). A text that ends in a zone name is kept only when it is exactly what
            // this session prints for the instant read from it (the cast's own output, read
            // back right); otherwise refused, never shifted. A numeric offset reads exactly.
            // SAFETY: a backend-local GUC variable.
            let last_word: String = text.trim_end().chars().rev().take_while(|c| c.is_ascii_alphabetic()).collect::<Vec<_>>().into_iter().rev().collect();
            // (Not a zone: PostgreSQL's special inputs, and Z, the UTC designator.)
            let special = ["z", "now", "today", "tomorrow", "yesterday", "epoch", "infinity", "allballs"];
            let zone_named = !last_word.is_empty() && !special.contains(&last_word.to_ascii_lowercase().as_str());
            if unsafe { pg_sys::DateStyle } != pg_sys::USE_ISO_DATES as i32 && zone_named {
                let out: &std::ffi::CStr = unsafe {
                    pgrx::direct_function_call(pg_sys::timestamptz_out, &[ts.into_datum()]).ok_or_else(|| bad("timestamptz"))?
                };
                if out.to_bytes() != text.trim().as_bytes() {
                    return Err(CryptoError::InvalidInput(
                        "a timestamptz value written to an encrypted column arrives as text, and in this session's DateStyle and TimeZone that text does not read back as the same instant (an ambiguous time zone abbreviation); set DateStyle to ISO".into(),
                    )
                    .into());
                }
            }
            value::encode_timestamptz(ts.into_inner()).to_vec()
        }
    }))
}

/// BEFORE INSERT OR UPDATE trigger installed by `encrypt_column` (`tradeguard_zz_encrypt`).
#[pg_trigger]
fn encrypt_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, CoreError> {
    let td = trigger.trigger_data();
    let tuple = encrypt_row(td).or_raise();
    // SAFETY: `tuple` is the trigger's row or a copy of it palloc'd in the trigger's context,
    // described by the relation's tuple descriptor.
    Ok(Some(unsafe {
        PgHeapTuple::from_heap_tuple(pgrx::PgTupleDesc::from_pg_unchecked((*td.tg_relation).rd_att), tuple)
    }))
}

/// The 0-based position of live column `name` in `tupdesc`; position `hint` is tried first
/// (where the column was in the last row).
///
/// # Safety
/// `tupdesc` must be a valid tuple descriptor.
unsafe fn column_index_from(tupdesc: pg_sys::TupleDesc, name: &str, hint: usize) -> TgResult<usize> {
    let atts = (*tupdesc).attrs.as_slice((*tupdesc).natts as usize);
    // The name's bytes then the NUL that ends it (no strlen per row).
    let is = |a: &pg_sys::FormData_pg_attribute| {
        let n = name.len();
        !a.attisdropped
            && n < a.attname.data.len()
            && a.attname.data[n] == 0
            && a.attname.data[..n].iter().zip(name.as_bytes()).all(|(x, y)| *x as u8 == *y)
    };
    if atts.get(hint).is_some_and(is) {
        return Ok(hint);
    }
    atts.iter()
        .position(is)
        .ok_or_else(|| CoreError::InvalidArgument(format!("column \"{name}\" not found")).into())
}

fn atts_name(a: &pg_sys::FormData_pg_attribute) -> String {
    // SAFETY: attname is a NUL-terminated NameData.
    unsafe { std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy().into_owned() }
}

/// The primary key of a written row, as bound into its columns' contexts.
#[derive(PartialEq)]
enum PkText {
    Int(i64),
    Text(String),
}

/// The text of a non-null attribute of type `typid`, through its output function (integers
/// formatted directly: the primary key of every written row goes through here).
///
/// # Safety
/// `d` must be a non-null datum of type `typid`.
unsafe fn attribute_text(d: pg_sys::Datum, typid: pg_sys::Oid) -> PkText {
    match typid {
        pg_sys::INT8OID => PkText::Int(d.value() as i64),
        pg_sys::INT4OID => PkText::Int(d.value() as i32 as i64),
        pg_sys::INT2OID => PkText::Int(d.value() as i16 as i64),
        // Days or microseconds since 2000-01-01, as stored (see key_text_sql).
        pg_sys::DATEOID => match d.value() as i32 {
            i32::MIN => PkText::Text("-infinity".into()),
            i32::MAX => PkText::Text("infinity".into()),
            days => PkText::Int(days as i64),
        },
        pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => match d.value() as i64 {
            i64::MIN => PkText::Text("-infinity".into()),
            i64::MAX => PkText::Text("infinity".into()),
            micros => PkText::Int(micros),
        },
        _ => PkText::Text(common::datum_text(d, typid)),
    }
}

/// The typed plaintext of armored value `raw` if it authenticates under `context` (the column's
/// context for the row's old key, or for the row an INSERT sealed it for); `None` otherwise
/// (the value is then kept as written and must authenticate under the row's context to be
/// read). Never counted or recorded as a decryption: the plaintext only passes through to be
/// sealed again.
fn open_bound(raw: &[u8], context: &str) -> Option<(ValueType, Zeroizing<Vec<u8>>)> {
    let env = envelope::dearmor(std::str::from_utf8(raw).ok()?).ok()?;
    let header = envelope::parse_header(&env).ok()?;
    let (_, entry) = keys::decryption_key(header.key_id, header.key_version).ok()?;
    let plaintext = envelope::open(&entry.key, &env, context.as_bytes()).ok()?;
    Some((header.value_type, plaintext))
}

/// The row's attributes (heap_deform_tuple), the context, the envelope and the armored values
/// (one buffer per encrypted column): reused from row to row.
type Scratch = (Vec<pg_sys::Datum>, Vec<bool>, String, Vec<u8>, Vec<Vec<u64>>);

thread_local! {
    static SCRATCH: RefCell<(Scratch, LastTable)> =
        const { RefCell::new(((Vec::new(), Vec::new(), String::new(), Vec::new(), Vec::new()), None)) };
}

/// The configuration of the table the last row was written to, and the key generation it was
/// loaded under: the next row of the same statement finds it without a lookup.
type LastTable = Option<(pg_sys::Oid, u64, Rc<TableCfg>)>;

/// A `text` datum holding the armor of `envelope`, written once into `buf` (a varlena with a
/// 4-byte header, 8-byte aligned). The datum points into `buf`: it is valid until `buf` is
/// written again, which is long enough for heap_form_tuple to copy it into the new row (no
/// palloc per value).
fn armored_datum(envelope_bytes: &[u8], buf: &mut Vec<u64>) -> TgResult<pg_sys::Datum> {
    // The armor is 4/3 of the envelope: past PostgreSQL's 1 GB value limit it cannot be stored.
    const MAX_ALLOC_SIZE: usize = 0x3fff_ffff; // PostgreSQL's MaxAllocSize
    if envelope_bytes.len() / 3 * 4 + 16 > MAX_ALLOC_SIZE - pg_sys::VARHDRSZ {
        return Err(CryptoError::InvalidInput("value too large to encrypt into a text column (its armor would exceed 1 GB)".into()).into());
    }
    envelope::armor_with(envelope_bytes, |len| {
        let total = len + pg_sys::VARHDRSZ;
        buf.clear();
        buf.resize(total.div_ceil(8), 0);
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, total) };
        // SAFETY: `bytes` is `total` bytes long, 8-byte aligned (more than a varlena needs).
        unsafe { pgrx::set_varsize_4b(bytes.as_mut_ptr() as *mut pg_sys::varlena, total as i32) };
        &mut bytes[pg_sys::VARHDRSZ..]
    })?;
    Ok(pg_sys::Datum::from(buf.as_ptr()))
}

/// Attribute `i` (0-based) of the row being replaced (the trigger's old row), `None` when NULL.
///
/// # Safety
/// `td` must be the data of a firing row trigger.
unsafe fn old_attribute(td: &pg_sys::TriggerData, i: usize) -> Option<pg_sys::Datum> {
    let attno = std::num::NonZeroUsize::new(i + 1).expect("1-based");
    pgrx::heap_getattr_raw(td.tg_trigtuple, attno, (*td.tg_relation).rd_att)
}

/// Refuses an UPDATE that writes blind index column `b` (0-based) by hand while its value is
/// kept: the blind index is computed from the value by the trigger, and one written by hand would
/// let equality search find the row by another value.
fn blind_kept(td: &pg_sys::TriggerData, b: usize, values: &[pg_sys::Datum], nulls: &[bool]) -> TgResult<()> {
    unsafe {
        let old = old_attribute(td, b).map(common::varlena_bytes);
        let new = (!nulls[b]).then(|| common::varlena_bytes(values[b]));
        if old == new {
            return Ok(());
        }
        let tupdesc = (*td.tg_relation).rd_att;
        let name = atts_name(&(*tupdesc).attrs.as_slice((*tupdesc).natts as usize)[b]);
        Err(CryptoError::InvalidInput(format!(
            "column {name}: the blind index is maintained by tradeguard from the encrypted value; write the value instead"
        ))
        .into())
    }
}

/// `bytes` of column `col` as text (written values are checked: the error names the column,
/// never the value).
fn column_utf8<'b>(col: &str, bytes: &'b [u8]) -> Result<&'b str, CryptoError> {
    std::str::from_utf8(bytes).map_err(|_| CryptoError::InvalidInput(format!("column {col}: value is not valid UTF-8")))
}

/// Encrypts the configured columns of the row being written (plaintext values only; values
/// that already carry the armor are kept) and fills the blind index columns. Returns the row
/// itself when nothing changes, else a new row formed from the same attributes (what
/// heap_modify_tuple does, with the row deformed once: the values read and the values
/// written share one array).
fn encrypt_row(td: &pg_sys::TriggerData) -> TgResult<pg_sys::HeapTuple> {
    let event = td.tg_event;
    let by_update = pgrx::trigger_support::trigger_fired_by_update(event);
    if !pgrx::trigger_support::trigger_fired_for_row(event)
        || !pgrx::trigger_support::trigger_fired_before(event)
        || !(by_update || pgrx::trigger_support::trigger_fired_by_insert(event))
    {
        return Err(CoreError::InvalidArgument("tradeguard_zz_encrypt must be a BEFORE row-level INSERT/UPDATE trigger".into()).into());
    }
    let tuple = if by_update { td.tg_newtuple } else { td.tg_trigtuple };
    unsafe {
        let rel = td.tg_relation;
        let tupdesc = (*rel).rd_att;
        let natts = (*tupdesc).natts as usize;
        let atts = (*tupdesc).attrs.as_slice(natts);
        SCRATCH.with(|scratch| {
            let relid = (*rel).rd_id;
            let stamp = common::shmem::key_generation();
            let last = scratch.borrow().1.as_ref().filter(|(r, g, _)| *r == relid && Some(*g) == stamp).map(|(_, _, c)| c.clone());
            let cfg = match last {
                Some(cfg) => cfg,
                None => {
                    // (Loaded with nothing borrowed: it runs SQL.)
                    let cfg = load_table_cfg(relid)?;
                    scratch.borrow_mut().1 = stamp.map(|g| (relid, g, cfg.clone()));
                    cfg
                }
            };
            let (values, nulls, ctx, ct, armor) = &mut scratch.borrow_mut().0;
            if armor.len() < cfg.columns.len() {
                armor.resize_with(cfg.columns.len(), Vec::new);
            }
            values.clear();
            values.resize(natts, pg_sys::Datum::from(0usize));
            nulls.clear();
            nulls.resize(natts, false);
            pg_sys::heap_deform_tuple(tuple, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
            // The key of the new row, and for an UPDATE that changes it, of the old row: values
            // bound to the old key are re-bound.
            let new_part = |i: usize| (!nulls[i]).then(|| attribute_text(values[i], atts[i].atttypid));
            let old_part = |i: usize| old_attribute(td, i).map(|d| attribute_text(d, atts[i].atttypid));
            let position = |k: usize| -> TgResult<usize> {
                let (c, hint) = (&cfg.pk_columns[k], &cfg.pk_positions[k]);
                let i = column_index_from(tupdesc, c, hint.get())?;
                hint.set(i);
                Ok(i)
            };
            let (pk, old_pk) = match cfg.pk_columns.len() {
                0 => (None, None),
                // One column (the usual case): no allocation per row.
                1 => {
                    let i = position(0)?;
                    let pk = new_part(i);
                    let old = if by_update { old_part(i).filter(|old| Some(old) != pk.as_ref()) } else { None };
                    (pk, old)
                }
                n => {
                    let positions = (0..n).map(position).collect::<TgResult<Vec<_>>>()?;
                    let key = |part: &dyn Fn(usize) -> Option<PkText>| {
                        positions.iter().map(|i| part(*i)).collect::<Option<Vec<_>>>().map(|p| composite_key(&p))
                    };
                    let pk = key(&new_part);
                    let old = if by_update { key(&old_part).filter(|old| Some(old) != pk.as_ref()) } else { None };
                    (pk, old)
                }
            };
            let mut changed = false;
            for (col, armor_buf) in cfg.columns.iter().zip(armor.iter_mut()) {
                let (idx_hint, blind_hint) = col.position.get();
                let idx = column_index_from(tupdesc, &col.name, idx_hint)?;
                let blind_idx = col.blind_column.as_deref().map(|b| column_index_from(tupdesc, b, blind_hint)).transpose()?;
                col.position.set((idx, blind_idx.unwrap_or(usize::MAX)));
                if nulls[idx] {
                    if let Some(b) = blind_idx {
                        (nulls[b], changed) = (true, true);
                    }
                    continue;
                }
                if atts[idx].atttypid != pg_sys::TEXTOID {
                    return Err(CoreError::InvalidArgument(format!("encrypted column {} must be of type text", col.name)).into());
                }
                if let Some(b) = blind_idx {
                    if atts[b].atttypid != pg_sys::BYTEAOID {
                        return Err(CoreError::InvalidArgument(format!("blind index column {} must be of type bytea", atts_name(&atts[b]))).into());
                    }
                }
                // Read in place: the plaintext is never copied into Rust-owned memory. Text is
                // encrypted as the bytes PostgreSQL stored (valid in the database encoding).
                let raw = common::varlena_bytes(values[idx]);
                ctx.clear();
                push_context(ctx, col.column_id, pk.as_ref());
                let mut insert_mac: Option<Vec<u8>> = None;
                let mut written_back = false;
                let rebound = if envelope::looks_armored_bytes(raw) {
                    // Ciphertext is kept as written, except (opened and sealed again for this
                    // row, inside the server; the blind index, keyed on the plaintext, stays):
                    // - when the row's key changed and it is bound to the old key;
                    // - when an UPDATE writes the value this backend's last INSERT sealed for
                    //   another row (INSERT ... ON CONFLICT DO UPDATE SET c = EXCLUDED.c: the
                    //   proposed row had its own key, e.g. a consumed serial).
                    let from_old_key = || {
                        let old = old_pk.as_ref()?;
                        let mut old_ctx = String::new();
                        push_context(&mut old_ctx, col.column_id, Some(old));
                        open_bound(raw, &old_ctx)
                    };
                    let from_insert = || {
                        let last = col.last_sealed.borrow();
                        // Only in the transaction that sealed it (a pooled connection serves
                        // other users in other transactions).
                        let same_xact = last.0 == common::shmem::local_xact_stamp();
                        // (The same row's key too: the blind index the INSERT computed comes
                        // with the value.)
                        let opened = (by_update && same_xact && last.1 == raw).then(|| open_bound(raw, &last.2)).flatten();
                        if opened.is_some() && !last.3.is_empty() {
                            insert_mac = Some(last.3.clone());
                        }
                        opened
                    };
                    // reencrypt_column writes each value back unchanged: sealed again here with
                    // the active version (a value that does not open under its row's context
                    // stops it, as decrypting it would).
                    let resealing = resealing_column(&col.name);
                    // The value the row already held (an UPDATE of other columns, SET c = c).
                    let unchanged = || by_update && old_attribute(td, idx).is_some_and(|d| common::varlena_bytes(d) == raw);
                    // A written ciphertext kept (sealed again) only if it holds a value of the
                    // column's type (and text, for a blind index computed from the text written).
                    let fits = |(vt, _): &(ValueType, Zeroizing<Vec<u8>>)| *vt == col.value_type && (blind_idx.is_none() || *vt == ValueType::Text);
                    let foreign = || -> crate::error::TgError {
                        CryptoError::InvalidInput(format!(
                            "column {}: the value is tradeguard ciphertext that does not belong to this row (copied from another row or column, of another type, made for a key version that no longer decrypts, or forged); write the plaintext instead",
                            col.name
                        ))
                        .into()
                    };
                    let opened_old = from_old_key();
                    let bound_to_old_key = opened_old.is_some();
                    match opened_old.or_else(from_insert) {
                        // Bound to the row's old key but not the value the row held: a ciphertext
                        // written with the key change, checked like one written back below (its
                        // type, its input, its blind index), never kept as it came.
                        Some(opened) if bound_to_old_key && !unchanged() => {
                            if !fits(&opened) {
                                return Err(foreign());
                            }
                            written_back = true;
                            Some(opened)
                        }
                        Some(opened) => Some(opened),
                        None if resealing => Some(open_bound(raw, ctx).ok_or(CryptoError::AuthFailed)?),
                        None => {
                            // A value the row already held stays; any other armored value must
                            // open under this row's context (pg_restore loads rows before the
                            // trigger exists): a ciphertext copied from another row or column, or
                            // made up, is refused instead of being stored as if it were this row's.
                            let unchanged = unchanged();
                            if unchanged && old_pk.is_some() {
                                // The row's key changes, and its value (bound to the old key) could
                                // not be opened to bind it to the new one: kept, it would no longer
                                // decrypt anywhere.
                                return Err(CryptoError::InvalidInput(format!(
                                    "column {}: the row's key changes, and its value cannot be opened to bind it to the new key (its key version is retired or no longer decrypts); make that version decryptable again or re-encrypt first",
                                    col.name
                                ))
                                .into());
                            }
                            if unchanged {
                                // Its blind index stays what the trigger computed: written by hand
                                // (UPDATE t SET c_bidx = ...), equality search would find the row by
                                // another value.
                                if let Some(b) = blind_idx {
                                    blind_kept(td, b, values, nulls)?;
                                }
                                continue;
                            }
                            // A ciphertext of this row written back (an older value): sealed again
                            // with the column's key, checked like a plaintext, its blind index
                            // computed again. Of another type than the column's, or for a blind
                            // index over another type than text (computed from the text written),
                            // it is refused like a foreign one.
                            match open_bound(raw, ctx).filter(fits) {
                                Some(o) => {
                                    written_back = true;
                                    Some(o)
                                }
                                None => return Err(foreign()),
                            }
                        }
                    }
                } else {
                    None
                };
                let utf8 = |bytes| column_utf8(&col.name, bytes);
                let text = || utf8(raw);
                // A ciphertext written back is checked like a plaintext written: the decrypting
                // view casts its plaintext back to the column's type (a value minted with
                // encrypt() for this row could otherwise break the view for every reader).
                let written_bigint = match &rebound {
                    Some((ValueType::Bigint, plaintext)) if written_back => Some(value::decode_bigint(plaintext)?.to_string()),
                    _ => None,
                };
                match &rebound {
                    None => col.check_input(|| Ok(text()?))?,
                    Some((ValueType::Text | ValueType::Jsonb | ValueType::Numeric, plaintext)) if written_back => col.check_input(|| Ok(utf8(plaintext)?))?,
                    Some((ValueType::Bigint, _)) if written_back => col.check_input(|| Ok(written_bigint.as_deref().unwrap_or_default()))?,
                    _ => {}
                }
                match (&rebound, col.value_type) {
                    (Some((vt, plaintext)), _) => col.seal_into(ct, *vt, plaintext, ctx)?,
                    (None, ValueType::Text | ValueType::Jsonb | ValueType::Bytea) => col.seal_into(ct, col.value_type, raw, ctx)?,
                    (None, vt) => col.seal_into(ct, vt, &encode_plaintext(vt, text()?)?, ctx)?,
                }
                let blind = match (blind_idx, &col.blind_key, &rebound) {
                    (Some(b), Some(k), None) => Some((b, super::blind_index_impl(text()?, k)?)),
                    // A value written back from another row (ON CONFLICT DO UPDATE SET c =
                    // EXCLUDED.c): its blind index follows it.
                    (Some(b), Some(k), Some((ValueType::Text, plaintext))) if written_back => Some((b, super::blind_index_impl(utf8(plaintext)?, k)?)),
                    (Some(b), Some(_), Some(_)) => match insert_mac.take() {
                        Some(m) => Some((b, m)),
                        // (re-bound to a new key, or sealed again: its blind index stays)
                        None if by_update => {
                            blind_kept(td, b, values, nulls)?;
                            None
                        }
                        None => None,
                    },
                    _ => None,
                };
                // `raw` (the plaintext) is not read past this point: its attribute now holds
                // the armor.
                (values[idx], changed) = (armored_datum(ct, armor_buf)?, true);
                if !by_update && rebound.is_none() {
                    // Remembered for an ON CONFLICT DO UPDATE that may write it to another row:
                    // a value this INSERT encrypted, never a ciphertext it was given (the
                    // proposed row could carry another row's key and ciphertext, and the
                    // conflict then resolve on another unique column).
                    let mut last = col.last_sealed.borrow_mut();
                    let armored = common::varlena_bytes(values[idx]);
                    last.0 = common::shmem::local_xact_stamp();
                    last.1.clear();
                    last.2.clear();
                    last.1.extend_from_slice(armored);
                    last.2.push_str(ctx);
                    last.3.clear();
                    if let Some((_, m)) = &blind {
                        last.3.extend_from_slice(m);
                    }
                }
                // The buffer briefly held the plaintext before it was encrypted in place; it now
                // holds ciphertext only, cleared for the next value.
                ct.clear();
                if let Some((b, mac)) = blind {
                    (values[b], nulls[b]) = (mac.as_slice().into_datum().expect("bytea datum"), false);
                }
            }
            if !changed {
                return Ok(tuple);
            }
            let new = pg_sys::heap_form_tuple(tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
            // The identity of the row being written, as heap_modify_tuple copies it.
            (*(*new).t_data).t_ctid = (*(*tuple).t_data).t_ctid;
            (*new).t_self = (*tuple).t_self;
            (*new).t_tableOid = (*tuple).t_tableOid;
            Ok(new)
        })
    }
}

fn q(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// The first column registered with `encrypt_column` under key `key_name` (id `key_id`) that
/// still holds values sealed with its `version`, as `schema.table.column` (identifiers quoted
/// where needed), and how many (`retire_key` refuses to retire the version then). Values are
/// found by their armor's header (key id and version), in plain SQL run as the table's owner in
/// a security-restricted operation with row security off: the table's code (a partition's CHECK
/// constraint folded by the planner) never runs with the extension owner's rights, and a policy
/// that would hide rows from the owner makes the count fail instead of coming out short. Values
/// sealed by `encrypt()` into other columns, in partitions detached since, in old row images of
/// the audit trail, and rows of transactions still in progress, are not seen.
pub(crate) fn values_on_version(key_name: &str, key_id: u32, version: i32) -> TgResult<Option<(String, i64)>> {
    let registered = common::as_owner(|| {
        common::spi_rows(
            concat!(
                "SELECT e.schema_name, e.table_name, e.column_name, ", crate::registered_relid_sql!(), "::oid
                   FROM tradeguard_audit.encrypted_columns e
                  WHERE e.key_name = $1 AND ", crate::registered_relid_sql!(), " IS NOT NULL ORDER BY e.column_id"
            ),
            &[key_name.into()],
            |r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<pg_sys::Oid>(4)?.unwrap_or(pg_sys::InvalidOid),
                ))
            },
        )
    })??;
    let key = envelope::armor_key_bytes(key_id, version as u32);
    for (schema, table, column, relid) in registered {
        let c = q(&column);
        // `tg1:` + base64: 16 characters decode to the armor's header and the nonce's first bytes.
        // (A row the conversion has not reached yet is plaintext, and a plaintext that starts
        // with `tg1:` but no base64 after it is not decoded either.)
        let count = format!(
            "SELECT pg_catalog.count(*) FROM {}.{} WHERE CASE WHEN {c} OPERATOR(pg_catalog.~) '^tg1:[A-Za-z0-9+/]{{16}}'
               THEN pg_catalog.substr(pg_catalog.decode(pg_catalog.substr({c}, 5, 16), 'base64'), 2, $2) OPERATOR(pg_catalog.=) $1 END",
            q(&schema),
            q(&table)
        );
        let rows = common::as_table_owner(relid, || {
            common::with_local_setting(c"row_security", c"off", || Spi::get_one_with_args::<i64>(&count, &[key.as_slice().into(), (key.len() as i32).into()]))
        })??
        .unwrap_or(0);
        if rows > 0 {
            return Ok(Some((format!("{}.{}.{c}", q(&schema), q(&table)), rows)));
        }
    }
    Ok(None)
}

/// `tradeguard.encrypt_column(tbl, col, key_name, blind_index_key)`: see the module comment.
/// Returns the number of existing rows converted.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn encrypt_column(
    tbl: Option<pgrx::PgRelation>,
    col: Option<&str>,
    key_name: Option<&str>,
    blind_index_key: default!(Option<&str>, "NULL"),
    batch_size: default!(Option<i32>, 10000),
) -> i64 {
    // (Not STRICT, for the optional blind index key: the other arguments are checked here.)
    let (Some(tbl), Some(col), Some(key_name), Some(batch_size)) = (tbl, col, key_name, batch_size) else {
        return Err::<i64, _>(crate::error::TgError::from(CoreError::InvalidArgument(
            "encrypt_column: tbl, col, key_name and batch_size must not be NULL".into(),
        )))
        .or_raise();
    };
    // Close our reference to the relation first: ALTER TABLE refuses a relation in use.
    let oid = tbl.oid();
    drop(tbl);
    encrypt_column_impl(oid, col, key_name, blind_index_key, batch_size).or_raise()
}

struct TableNames {
    schema: String,
    table: String,
    col_type: String,
    /// The primary key column values are bound to, if the key is one column of a type whose
    /// text is the same in every session.
    pk: Option<String>,
    /// The columns of a composite primary key values are bound to, if every one is of such a
    /// type.
    composite: Option<Vec<String>>,
    /// The primary key's columns and types, whatever they are (for the notice).
    pk_columns: Option<String>,
}

fn table_names(tbl: pg_sys::Oid, col: &str) -> TgResult<TableNames> {
    let row = common::spi_first_row(
            "SELECT n.nspname::text, c.relname::text,
                    (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped),
                    pk.names, pk.stable, pk.described
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               -- The primary key's columns in key order. Row binding uses the key's text, so only
               -- types whose text does not depend on session settings (extra_float_digits,
               -- padding) can be bound; dates and timestamps are bound by their stored value.
               LEFT JOIN LATERAL (
                 SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord) AS names,
                        pg_catalog.bool_and(a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype,
                                                           'text'::regtype, 'varchar'::regtype, 'uuid'::regtype, 'name'::regtype,
                                                           'date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype)) AS stable,
                        pg_catalog.string_agg(pg_catalog.format('%I %s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)), ', '
                                              ORDER BY k.ord) AS described
                   FROM pg_catalog.pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_catalog.pg_attribute a ON a.attnum = k.attnum
                  WHERE i.indrelid = c.oid AND i.indisprimary AND a.attrelid = c.oid AND k.ord <= i.indnkeyatts
               ) pk ON true
              WHERE c.oid = $1 AND c.relkind IN ('r', 'p')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tradeguard', 'tradeguard_audit')
                AND n.nspname NOT LIKE E'pg\\\\_%'",
            &[tbl.into(), col.into()],
            |r| {
                Ok((
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                    r.get::<Vec<String>>(4)?,
                    r.get::<bool>(5)?,
                    r.get::<String>(6)?,
                ))
            },
    )?;
    let Some((Some(schema), Some(table), col_type, key, stable, pk_columns)) = row else {
        return Err(CoreError::InvalidArgument(format!("relation {} is not a user table", tbl.to_u32())).into());
    };
    let col_type = col_type.ok_or_else(|| CoreError::InvalidArgument(format!("column \"{col}\" does not exist in {schema}.{table}")))?;
    // Bound to: one column (registered as pk_column) or several (pk_columns).
    let bound = key.filter(|_| stable == Some(true)).unwrap_or_default();
    let (pk, composite) = match bound.len() {
        0 => (None, None),
        1 => (bound.into_iter().next(), None),
        _ => (None, Some(bound)),
    };
    Ok(TableNames { schema, table, col_type, pk, composite, pk_columns })
}

/// Tables `encrypt_column` cannot protect, refused before anything changes.
fn refuse_unsupported_shape(tbl: pg_sys::Oid, names: &TableNames, col: &str, blind: bool) -> TgResult<()> {
    let refuse = |why: String| -> TgResult<()> {
        Err(CoreError::InvalidArgument(format!("cannot encrypt {}.{}.{col}: {why}", names.schema, names.table)).into())
    };
    // Table inheritance (not partitioning): triggers are not inherited, so rows written into a
    // child would be stored in plaintext.
    let inherits = common::spi_first::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                         WHERE (i.inhparent = $1 OR i.inhrelid = $1) AND NOT c.relispartition)",
        &[tbl.into()],
    )?
    .unwrap_or(false);
    if inherits {
        return refuse("the table uses table inheritance, and child tables do not inherit the encrypt trigger (their rows would stay in plaintext); use declarative partitioning".into());
    }
    // The decrypting view's name: a relation there that is not tradeguard's own view (another
    // role's view or table) would be dropped to make room for it.
    let taken = common::spi_first::<bool>(
        "SELECT NOT coalesce(c.relkind = 'v'
                     AND c.relowner = (SELECT x.extowner FROM pg_catalog.pg_extension x WHERE x.extname = 'tradeguard')
                     AND pg_catalog.obj_description(c.oid, 'pg_class') = $3, false)
           FROM pg_catalog.pg_class c
          WHERE c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = $1) AND c.relname = $2",
        &[names.schema.as_str().into(), format!("{}_decrypted", names.table).into(), decrypted_view_comment(&names.schema, &names.table).into()],
    )?
    .unwrap_or(false);
    if taken {
        return refuse(format!(
            "the relation {}.{} is in the place of the decrypting view it makes, and is not tradeguard's: rename or drop it first",
            pgrx::spi::quote_identifier(&names.schema),
            pgrx::spi::quote_identifier(format!("{}_decrypted", names.table))
        ));
    }
    if names.pk.as_deref() == Some(col) || names.composite.as_ref().is_some_and(|k| k.iter().any(|c| c == col)) {
        return refuse("it is part of the primary key its values are bound to".into());
    }
    // Checked at commit, a deferrable key lets a row take another row's key for a while, write
    // that row's ciphertext (which opens under it) and carry it back to its own key.
    let deferrable = common::spi_first::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'p' AND condeferrable)",
        &[tbl.into()],
    )?
    .unwrap_or(true);
    if deferrable {
        return refuse("its primary key is DEFERRABLE (values are bound to the key, which must hold at every statement)".into());
    }
    // A partition encrypted on its own has an encrypt trigger of the same name, which the
    // parent's would clash with; its values are bound to its own registration, so the parent's
    // trigger could not take them over either.
    let tree = common::partition_tree(tbl)?;
    let own = common::spi_first::<String>(
        "SELECT pg_catalog.string_agg(t.tgrelid::pg_catalog.regclass::text, ', ' ORDER BY t.tgrelid::pg_catalog.regclass::text)
           FROM pg_catalog.pg_trigger t
          WHERE t.tgrelid = ANY ($1) AND t.tgrelid <> $2 AND t.tgname = $3 AND t.tgparentid = 0",
        &[tree.clone().into(), tbl.into(), ENCRYPT_TRIGGER.into()],
    )?;
    if let Some(parts) = own {
        return refuse(format!(
            "its partition {parts} has columns encrypted on its own (bound to that partition); encrypt a partitioned table before its partitions, or keep encrypting the partitions one by one"
        ));
    }
    if let Some(late) = late_before_triggers(&tree, None)? {
        return refuse(format!("BEFORE row triggers would fire after {ENCRYPT_TRIGGER} ({late}): rename them to sort before it"));
    }
    let comparing = comparing_objects(&related_tables(tbl)?, col)?;
    if let Some(what) = comparing {
        return refuse(format!(
            "{what} would compare its ciphertext, which differs for every value (random nonces); drop it first (for unique equality: a blind index, blind_index_key, with a unique index on it)"
        ));
    }
    // Names tradeguard derives must fit PostgreSQL's 63-byte identifiers (else they would be cut).
    let limit = pg_sys::NAMEDATALEN as usize - 1;
    for derived in [format!("{}_decrypted", names.table)]
        .into_iter()
        .chain(blind.then(|| format!("{col}_bidx")))
    {
        if derived.len() > limit {
            return refuse(format!("the name \"{derived}\" it needs is longer than {limit} bytes"));
        }
    }
    Ok(())
}

/// What compares the values of column `col` of the tables `tree` (a unique or exclusion index,
/// a CHECK, UNIQUE, exclusion or foreign-key constraint, a row-level security policy), described;
/// once the column holds ciphertext each of them would compare ciphertext, different for every
/// value (random nonces).
fn comparing_objects(tree: &[pg_sys::Oid], col: &str) -> TgResult<Option<String>> {
    // Found through the catalog's column dependencies (key columns, expressions, predicates):
    // a unique index would no longer stop duplicates, a CHECK or a policy would test the armor,
    // a foreign key would break (and its error would show the value). A CHECK over the whole
    // row depends on the table rather than on a column (its conkey holds 0; a CHECK that reads
    // no column depends on the table too, and is left alone).
    Ok(common::spi_first::<String>(
        "SELECT pg_catalog.string_agg(DISTINCT CASE WHEN i.indexrelid IS NOT NULL
                                                   THEN 'index ' || i.indexrelid::pg_catalog.regclass::text
                                                   WHEN p.oid IS NOT NULL THEN 'policy ' || pg_catalog.quote_ident(p.polname)
                                                   ELSE 'constraint ' || pg_catalog.quote_ident(k.conname) END, ', ')
           FROM pg_catalog.pg_depend d
           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
           LEFT JOIN pg_catalog.pg_index i ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.indexrelid = d.objid
           LEFT JOIN pg_catalog.pg_constraint k ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.oid = d.objid
           LEFT JOIN pg_catalog.pg_policy p ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND p.oid = d.objid
          WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = ANY ($1)
            AND ((a.attname = $2 AND (i.indisunique OR i.indisexclusion OR k.contype IN ('c', 'f', 'u', 'x') OR p.oid IS NOT NULL))
                 OR (d.refobjsubid = 0 AND k.contype = 'c' AND 0 = ANY (k.conkey)))",
        &[tree.to_vec().into(), col.into()],
    )?)
}

/// After DDL that may add an index, a constraint or a policy to table `relid`: none may compare
/// the ciphertext of a column encrypted in it (or in a table it is a partition of), as
/// encrypt_column refuses before the conversion (the statement fails).
pub fn refuse_new_comparisons(relid: pg_sys::Oid) -> TgResult<()> {
    // Every table of the partition tree with columns encrypted (through it, or on their own: a
    // partition encrypted alone is compared by what its partitioned tables hold too).
    for rel in common::partition_tree(relid)? {
        let cfg = match load_table_cfg(rel) {
            Ok(cfg) => cfg,
            Err(crate::error::TgError::Crypto(CryptoError::NotConfigured(_))) => continue,
            Err(e) => return Err(e),
        };
        let related = related_tables(rel)?;
        for col in &cfg.columns {
            if let Some(what) = comparing_objects(&related, &col.name)? {
                let fq = common::quoted_relation_name(rel).unwrap_or_default();
                return Err(CoreError::InvalidArgument(format!(
                    "{what} on {fq} would compare the ciphertext of encrypted column {}, which differs for every value (random nonces); for unique equality, put a unique index on its blind index column",
                    col.name
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// `relid`, the partitioned tables above it and the partitions below it: what may compare the
/// values of its columns.
fn related_tables(relid: pg_sys::Oid) -> TgResult<Vec<pg_sys::Oid>> {
    let mut rels = common::partition_ancestors(relid)?;
    rels.extend(common::partition_tree(relid)?.into_iter().filter(|r| *r != relid));
    Ok(rels)
}

/// The encrypt trigger's name: BEFORE row triggers fire in name order, and one that sorts
/// after it would see the sealed value (and could write plaintext back or change the key the
/// value is bound to).
pub const ENCRYPT_TRIGGER: &str = "tradeguard_zz_encrypt";

/// The BEFORE row triggers of `rels` that fire after the encrypt trigger (their quoted names),
/// or, with `renamed` (old, new name), that trigger if it would under its new name.
pub fn late_before_triggers(rels: &[pg_sys::Oid], renamed: Option<(&str, &str)>) -> TgResult<Option<String>> {
    let (only, name) = renamed.unzip();
    Ok(common::with_catalog_search_path(|| {
        common::spi_first::<String>(
            "SELECT pg_catalog.string_agg(DISTINCT pg_catalog.quote_ident(t.tgname), ', ' ORDER BY pg_catalog.quote_ident(t.tgname))
               FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = ANY ($1) AND NOT t.tgisinternal AND t.tgtype::int & 3 = 3
                AND ($2::text IS NULL OR t.tgname = $2)
                AND coalesce($3, t.tgname::text) COLLATE \"C\" > $4::text COLLATE \"C\"",
            &[rels.to_vec().into(), only.into(), name.into(), ENCRYPT_TRIGGER.into()],
        )
    })?)
}

fn encrypt_column_impl(tbl: pg_sys::Oid, col: &str, key_name: &str, blind_key: Option<&str>, batch: i32) -> TgResult<i64> {
    if batch < 1 {
        return Err(CoreError::InvalidArgument("batch_size must be positive".into()).into());
    }
    let mut names = table_names(tbl, col)?;
    // A generated column is computed from the others: its plaintext would come back on every write.
    let generated = common::spi_first::<bool>(
        "SELECT attgenerated <> '' FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[tbl.into(), col.into()],
    )?;
    if generated == Some(true) {
        return Err(CoreError::InvalidArgument(format!("column \"{col}\" is a generated column; encrypt the columns it is computed from instead")).into());
    }
    // One binding per table (the trigger binds every column of a row to the same key): a column
    // added later takes the binding of the columns already registered, even if the table's key
    // or the types tradeguard binds changed since.
    let registered: Option<(Option<String>, Option<Vec<String>>)> = common::as_owner(|| {
        common::spi_first_row(
            "SELECT pk_column, pk_columns FROM tradeguard_audit.encrypted_columns
              WHERE schema_name = $1 AND table_name = $2 ORDER BY column_id LIMIT 1",
            &[names.schema.as_str().into(), names.table.as_str().into()],
            |r| Ok((r.get::<String>(1)?, r.get::<Vec<String>>(2)?)),
        )
    })??;
    if let Some((pk, composite)) = registered {
        (names.pk, names.composite) = (pk, composite.filter(|c| !c.is_empty()));
    }
    let (schema, table) = (names.schema.as_str(), names.table.as_str());
    refuse_unsupported_shape(tbl, &names, col, blind_key.is_some())?;
    keys::encryption_key(key_name, Purpose::Encrypt)?;
    if let Some(b) = blind_key {
        keys::encryption_key(b, Purpose::BlindIndex)?;
    }
    let already: Option<(String, String, Option<String>)> = common::as_owner(|| {
        common::spi_first_row(
            "SELECT value_type, key_name, blind_key FROM tradeguard_audit.encrypted_columns
              WHERE schema_name = $1 AND table_name = $2 AND column_name = $3",
            &[schema.into(), table.into(), col.into()],
            |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default(), r.get::<String>(3)?)),
        )
    })??;
    if let Some((_, registered_key, registered_blind)) = &already {
        // A second call resumes a conversion; it does not change how the column is protected.
        if registered_key != key_name || registered_blind.as_deref() != blind_key {
            return Err(CoreError::InvalidArgument(format!(
                "{schema}.{table}.{col} is already encrypted with key \"{registered_key}\"{}; encrypt_column cannot change its key or blind index (use rotate_key and reencrypt_column for a new key version)",
                registered_blind.as_deref().map(|b| format!(" and blind index key \"{b}\"")).unwrap_or_else(|| " without a blind index".into())
            ))
            .into());
        }
    }
    let already = already.map(|(vt, _, _)| vt);
    let fq = format!("{}.{}", q(schema), q(table));
    // (Before any of the changes below: the conversion plans its row picking as the extension
    // owner.)
    refuse_owner_planner_code(tbl, &fq)?;
    let vt = match &already {
        Some(vt) => ValueType::parse_name(vt)?,
        None => {
            let vt = value_type_for(&type_without_modifiers(&names.col_type)).ok_or_else(|| {
                CoreError::InvalidArgument(format!(
                    "column \"{col}\" has type {}; encrypt_column supports text, varchar, numeric, integer types, double precision, timestamptz and jsonb",
                    names.col_type
                ))
            })?;
            vt
        }
    };
    if already.is_none() && names.pk.is_none() && names.composite.is_none() {
        let why = match &names.pk_columns {
            Some(cols) => format!("its primary key ({cols}) has a column whose text depends on session settings (only integer, numeric, text, varchar, uuid, name, date and timestamp keys are bound)"),
            None => "it has no primary key".into(),
        };
        pgrx::notice!(
            "tradeguard: values of {schema}.{table}.{col} are bound to the column only, not to their row: {why}; a value copied to another row of this column still decrypts"
        );
    }
    let blind_column = blind_key.map(|_| format!("{col}_bidx"));
    let drop_view = || -> TgResult<()> {
        // Our own view depends on the table's columns: rebuilt after the change.
        let _own = common::InternalWrite::begin();
        common::as_owner(|| Spi::run(&format!("DROP VIEW IF EXISTS {}.{}", q(schema), q(&format!("{table}_decrypted")))))??;
        Ok(())
    };
    if already.is_none() && names.col_type != "text" {
        drop_view()?;
        // The rewrite runs the table's own code (CHECK constraints, index expressions): as its
        // owner, restricted, and recorded by the utility hook like any ALTER TABLE. Without
        // USING: PostgreSQL's conversion to text is the same as `c::text` for every type
        // encrypt_column takes (the output function, or text's own casts), and the utility hook
        // sees a conversion that keeps the values (on an audited table a USING needs
        // break-glass, which is the admin's and not the table owner's this runs as).
        common::as_table_owner(tbl, || Spi::run(&format!("ALTER TABLE {fq} ALTER COLUMN {c} TYPE pg_catalog.text", c = q(col))))??;
    }
    // Only our own DDL runs as "internal": no user code runs in it.
    let own = common::InternalWrite::begin();
    common::as_owner(|| -> TgResult<()> {
        common::run_quietly(&format!("DROP VIEW IF EXISTS {}.{}", q(schema), q(&format!("{table}_decrypted"))))?;
        if already.is_none() {
            Spi::run_with_args(
                "INSERT INTO tradeguard_audit.encrypted_columns
                   (schema_name, table_name, column_name, key_name, value_type, original_type, pk_column, blind_column, blind_key, pk_columns)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    schema.into(),
                    table.into(),
                    col.into(),
                    key_name.into(),
                    vt.name().into(),
                    names.col_type.as_str().into(),
                    names.pk.as_deref().into(),
                    blind_column.as_deref().into(),
                    blind_key.into(),
                    names.composite.clone().into(),
                ],
            )?;
        }
        if let Some(b) = &blind_column {
            Spi::run(&format!("ALTER TABLE {fq} ADD COLUMN IF NOT EXISTS {} bytea", q(b)))?;
            Spi::run(&format!(
                "CREATE INDEX IF NOT EXISTS {} ON {fq} ({})",
                q(&format!("{table}_{b}_idx")),
                q(b)
            ))?;
        }
        common::run_quietly(&format!("DROP TRIGGER IF EXISTS {ENCRYPT_TRIGGER} ON {fq}"))?;
        Spi::run(&format!(
            "CREATE TRIGGER {ENCRYPT_TRIGGER} BEFORE INSERT OR UPDATE ON {fq}
               FOR EACH ROW EXECUTE FUNCTION tradeguard.encrypt_trigger()"
        ))?;
        Spi::run(&format!("ALTER TABLE {fq} ENABLE ALWAYS TRIGGER {ENCRYPT_TRIGGER}"))?;
        create_decrypted_view(schema, table)?;
        Ok(())
    })??;
    drop(own);
    keys::invalidate();
    TABLES.with(|t| t.borrow_mut().1.clear());
    if already.is_none() {
        check_existing_ciphertext(tbl, &fq, col)?;
    }
    let n = convert_plaintext(tbl, &fq, col, batch)?;
    if n > 0 {
        // pg_stats still holds the plaintext's most common values and histogram (readable by
        // anyone who may read the table): sampled again from the ciphertext now.
        common::as_owner(|| Spi::run(&format!("ANALYZE {fq}")))??;
    }
    // The trail is append-only: what it recorded before is not rewritten.
    if crate::audit::hook::is_audited(tbl) {
        pgrx::warning!(
            "tradeguard: {schema}.{table} is audited: audit rows written before now keep the values of column {col} in plaintext (the signed trail is never rewritten); rows from now on hold its ciphertext"
        );
    }
    Ok(n)
}

/// Existing rows of `fq`: rewrites the ones whose `col` holds plaintext, in batches; the
/// encrypt trigger encrypts them. Returns the rows converted.
fn convert_plaintext(relid: pg_sys::Oid, fq: &str, col: &str, batch: i32) -> TgResult<i64> {
    let c = q(col);
    update_in_batches(relid, fq, col, &format!("{c} IS NOT NULL AND NOT tradeguard.is_ciphertext({c})"), Some(batch))
}

/// Before a column's first conversion: the values that already look like tradeguard ciphertext,
/// which the conversion keeps as they are, must each open for their row (written back once as
/// `reencrypt_column` writes them: opened and sealed again, or refused). One copied from another
/// row, table or database, or made up, would otherwise be kept, and stop every full read of the
/// decrypting view and every re-encryption of the column.
fn check_existing_ciphertext(relid: pg_sys::Oid, fq: &str, col: &str) -> TgResult<()> {
    let c = q(col);
    let reseal = ResealScope::begin(col);
    let checked = common::in_subtransaction_caught(|| update_in_batches(relid, fq, col, &format!("{c} IS NOT NULL AND tradeguard.is_ciphertext({c})"), None));
    drop(reseal);
    // A value that does not open (authentication, armor, the wrong type) is named as such; any
    // other failure (a cancel, a lock timeout, a skipped row) is raised again as it came.
    use pgrx::PgSqlErrorCode as E;
    match checked {
        Ok(_) => Ok(()),
        Err(failed)
            if matches!(
                failed.sqlstate(),
                Some(E::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION | E::ERRCODE_DATA_CORRUPTED | E::ERRCODE_INVALID_PARAMETER_VALUE)
            ) =>
        {
            Err(CoreError::InvalidArgument(format!(
                "cannot encrypt {fq}.{c}: a value it holds is already tradeguard ciphertext but does not open for its row ({failed}); replace it with its plaintext first"
            ))
            .into())
        }
        Err(failed) => failed.resume(),
    }
}

/// (Re)creates `<table>_decrypted`: every column, encrypted ones decrypted to their original type.
fn create_decrypted_view(schema: &str, table: &str) -> TgResult<()> {
    let oid = common::spi_first::<pg_sys::Oid>(
        "SELECT (pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident($2))::pg_catalog.regclass::oid",
        &[schema.into(), table.into()],
    )?
    .ok_or_else(|| CoreError::InvalidArgument(format!("{schema}.{table} not found")))?;
    let cols = common::spi_rows(
        "SELECT a.attname::text, e.column_id, e.value_type, e.original_type,
                coalesce(e.pk_columns, CASE WHEN e.pk_column IS NULL THEN '{}' ELSE ARRAY[e.pk_column] END)
           FROM pg_catalog.pg_attribute a
           LEFT JOIN tradeguard_audit.encrypted_columns e
             ON e.schema_name = $1 AND e.table_name = $2 AND e.column_name = a.attname
          WHERE a.attrelid = (pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident($2))::pg_catalog.regclass
            AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
        &[schema.into(), table.into()],
        |r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<Vec<String>>(5)?.unwrap_or_default(),
            ))
        },
    )?;
    let mut select = Vec::new();
    for (name, id, vt, orig, pk) in cols {
        match (id, vt) {
            (Some(id), Some(vt)) => {
                let vt = ValueType::parse_name(&vt)?;
                let ctx = context_sql(id, &pk, oid)?;
                let call = format!("tradeguard.decrypt_{}({}, {ctx})", vt.sql_suffix(), q(&name));
                let orig = orig.unwrap_or_else(|| "text".into());
                select.push(format!("({call})::{orig} AS {}", q(&name)));
            }
            _ => select.push(q(&name)),
        }
    }
    let view = format!("{}.{}", q(schema), q(&format!("{table}_decrypted")));
    Spi::run(&format!(
        // security_invoker: the reader's own SELECT privilege and row-level security policies on
        // the table apply; the view only adds decryption (for tradeguard_decryptor members).
        "CREATE OR REPLACE VIEW {view} WITH (security_invoker = true) AS SELECT {} FROM {}.{}",
        select.join(", "),
        q(schema),
        q(table)
    ))?;
    Spi::run(&format!("REVOKE ALL ON {view} FROM PUBLIC"))?;
    Spi::run(&format!("GRANT SELECT ON {view} TO tradeguard_decryptor"))?;
    // quote_literal (E'...' when needed): a name with a backslash stays inside the literal even
    // with standard_conforming_strings off.
    mark_decrypted_view(&view, schema, table)?;
    Ok(())
}

/// Comments view `view` (quoted, qualified) as tradeguard's decrypting view of
/// `schema`.`table`: what tells it from a relation of someone else's under that name.
fn mark_decrypted_view(view: &str, schema: &str, table: &str) -> Result<(), pgrx::spi::Error> {
    Spi::run(&format!("COMMENT ON VIEW {view} IS {}", pgrx::spi::quote_literal(decrypted_view_comment(schema, table))))
}

/// The comment that marks tradeguard's decrypting view of `schema`.`table`.
fn decrypted_view_comment(schema: &str, table: &str) -> String {
    format!("tradeguard: decrypted view of {schema}.{table} (tradeguard_decryptor only)")
}

/// Before an ALTER TABLE that adds, drops, retypes or renames columns of a table with encrypted
/// columns: drops its `<table>_decrypted` view (which selects every column, so PostgreSQL would
/// refuse a type change or a dropped column under it, and would not show an added or renamed
/// one). Returns the table's names when it has a view to make again afterwards
/// ([`rebuild_decrypted_view`]). A view with objects of the user's built on it is left alone
/// (then PostgreSQL refuses a type change or a dropped column under it, as without tradeguard).
pub fn drop_decrypted_view(relid: pg_sys::Oid) -> TgResult<Option<(String, String)>> {
    let _own = common::InternalWrite::begin();
    common::as_owner(|| -> TgResult<Option<(String, String)>> {
        let found = common::spi_first_row(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               CROSS JOIN LATERAL (SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(n.nspname) || '.'
                                          || pg_catalog.quote_ident(c.relname || '_decrypted'))::pg_catalog.oid AS oid) v
              WHERE c.oid = $1 AND v.oid IS NOT NULL
                -- the view encrypt_column made (a relation of the user's under that name is left alone)
                AND (SELECT x.relkind FROM pg_catalog.pg_class x WHERE x.oid = v.oid) = 'v'
                AND pg_catalog.obj_description(v.oid, 'pg_class') LIKE 'tradeguard: decrypted view of %'
                AND EXISTS (SELECT 1 FROM tradeguard_audit.encrypted_columns e WHERE e.schema_name = n.nspname AND e.table_name = c.relname)
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                 WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = v.oid AND d.deptype = 'n'
                                   -- (the view's own rule refers to it too)
                                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r
                                                    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid AND r.ev_class = v.oid))",
            &[relid.into()],
            |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
        )?;
        if let Some((schema, table)) = &found {
            Spi::run(&format!("DROP VIEW {}.{}", q(schema), q(&format!("{table}_decrypted"))))?;
        }
        Ok(found)
    })?
}

/// After ALTER TABLE ... DROP COLUMN of table `relid`: the registrations of the encrypted columns
/// it dropped go, and a dropped blind-index column is no longer filled (else the trigger would
/// look for them and refuse every write). With no encrypted column left, the encrypt trigger
/// goes too. Returns whether the table still has encrypted columns (a view to make again).
pub fn forget_dropped_columns(relid: pg_sys::Oid) -> TgResult<bool> {
    let _own = common::InternalWrite::begin();
    let (left, changed) = common::as_owner(|| -> TgResult<(bool, bool)> {
        let Some((schema, table)) = common::relation_parts(relid) else {
            return Ok((false, false));
        };
        let live = "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = $3 AND a.attname = {col} AND a.attnum > 0 AND NOT a.attisdropped)";
        let dropped = common::spi_first::<i64>(
            &format!(
                "WITH d AS (DELETE FROM tradeguard_audit.encrypted_columns e
                             WHERE e.schema_name = $1 AND e.table_name = $2 AND NOT {} RETURNING 1)
                 SELECT count(*) FROM d",
                live.replace("{col}", "e.column_name")
            ),
            &[schema.as_str().into(), table.as_str().into(), relid.into()],
        )?
        .unwrap_or(0);
        let unblinded = common::spi_first::<i64>(
            &format!(
                "WITH u AS (UPDATE tradeguard_audit.encrypted_columns e SET blind_column = NULL, blind_key = NULL
                             WHERE e.schema_name = $1 AND e.table_name = $2 AND e.blind_column IS NOT NULL AND NOT {} RETURNING 1)
                 SELECT count(*) FROM u",
                live.replace("{col}", "e.blind_column")
            ),
            &[schema.as_str().into(), table.as_str().into(), relid.into()],
        )?
        .unwrap_or(0);
        let left = common::spi_first::<bool>(
            "SELECT EXISTS (SELECT 1 FROM tradeguard_audit.encrypted_columns WHERE schema_name = $1 AND table_name = $2)",
            &[schema.as_str().into(), table.as_str().into()],
        )?
        .unwrap_or(true);
        if !left && dropped > 0 {
            common::run_quietly(&format!("DROP TRIGGER IF EXISTS {ENCRYPT_TRIGGER} ON {}.{}", q(&schema), q(&table)))?;
        }
        Ok((left, dropped + unblinded > 0))
    })??;
    if changed {
        keys::invalidate();
    }
    Ok(left)
}

/// After the ALTER: the `<table>_decrypted` view again, over the table's columns as they are now.
pub fn rebuild_decrypted_view(schema: &str, table: &str) -> TgResult<()> {
    let _own = common::InternalWrite::begin();
    common::as_owner(|| create_decrypted_view(schema, table))?
}

/// `tradeguard.reencrypt_column(tbl, col, batch_size)`: moves values to the key's newest version.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn reencrypt_column(tbl: pgrx::PgRelation, col: &str, batch_size: default!(i32, 10000)) -> i64 {
    let oid = tbl.oid();
    drop(tbl);
    reencrypt_column_impl(oid, col, batch_size).or_raise()
}

fn reencrypt_column_impl(tbl: pg_sys::Oid, col: &str, batch: i32) -> TgResult<i64> {
    if batch < 1 {
        return Err(CoreError::InvalidArgument("batch_size must be positive".into()).into());
    }
    let names = table_names(tbl, col)?;
    let cfg = load_table_cfg(tbl)?;
    let c = cfg
        .columns
        .iter()
        .find(|c| c.name == col)
        .ok_or_else(|| CoreError::InvalidArgument(format!("column \"{col}\" of {}.{} is not encrypted by tradeguard", names.schema, names.table)))?;
    let (info, active, _) = keys::encryption_key(&c.key_name, Purpose::Encrypt)?;
    let fq = format!("{}.{}", q(&names.schema), q(&names.table));
    // Each row is written back as it is; the encrypt trigger opens the value under the row's
    // context and seals it again with the active version (the plaintext never leaves the
    // server's memory; the blind index, keyed on the plaintext, stays).
    debug_assert_eq!(info.active_version, Some(active));
    let reseal = ResealScope::begin(col);
    let c = q(col);
    let n = update_in_batches(tbl, &fq, col, &format!("{c} IS NOT NULL AND tradeguard.ciphertext_key_version({c}) < {active}"), Some(batch));
    drop(reseal);
    n
}

/// Whether `reencrypt_column` is moving this column to the active key version now.
fn resealing_column(name: &str) -> bool {
    RESEAL.with(|r| r.borrow().as_deref() == Some(name))
}

thread_local! {
    /// The column `reencrypt_column` is moving to the active key version (while its UPDATE runs).
    static RESEAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// While alive, the encrypt trigger seals values of this column written back unchanged again
/// with the active key version (ended on drop, and by an error: the transaction aborts).
struct ResealScope(Option<String>);

impl ResealScope {
    fn begin(col: &str) -> ResealScope {
        ResealScope(RESEAL.with(|r| r.borrow_mut().replace(col.to_string())))
    }
}

impl Drop for ResealScope {
    fn drop(&mut self) {
        // (A reencrypt_column called from a trigger during another one restores the outer one.)
        RESEAL.with(|r| *r.borrow_mut() = self.0.take());
    }
}

/// Follows a table renamed or moved to another schema (`schema`.`table` before) or a column
/// renamed (`column`: old, new name) in the encrypted-column registrations, which name their
/// table and columns (names survive pg_dump, OIDs do not). The utility hook calls it after the
/// statement; without it the encrypt trigger would refuse every write (never fail open).
pub fn follow_rename(relid: pg_sys::Oid, schema: &str, table: &str, column: Option<&(String, String)>) -> TgResult<()> {
    let (old, new) = column.map_or((None, None), |(o, n)| (Some(o.as_str()), Some(n.as_str())));
    let changed = {
        let _w = crate::audit::InternalWrite::begin();
        common::as_owner(|| {
            common::spi_first::<i64>(
                "WITH moved AS (
                   UPDATE tradeguard_audit.encrypted_columns e
                      SET schema_name = n.nspname, table_name = c.relname,
                          column_name = CASE WHEN e.column_name = $4 THEN $5 ELSE e.column_name END,
                          pk_column = CASE WHEN e.pk_column = $4 THEN $5 ELSE e.pk_column END,
                          blind_column = CASE WHEN e.blind_column = $4 THEN $5 ELSE e.blind_column END,
                          pk_columns = CASE WHEN $4::text IS NULL THEN e.pk_columns
                                            ELSE pg_catalog.array_replace(e.pk_columns, $4::text, $5::text) END
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.oid = $1 AND e.schema_name = $2 AND e.table_name = $3
                   RETURNING 1)
                 SELECT count(*) FROM moved",
                &[relid.into(), schema.into(), table.into(), old.into(), new.into()],
            )
        })??
        .unwrap_or(0)
    };
    if changed > 0 {
        keys::invalidate();
        if column.is_none() {
            move_decrypted_view(relid, schema, table)?;
        }
    }
    Ok(())
}

/// After the table `schema`.`table` was renamed or moved to another schema: its decrypting
/// view follows it (renamed, not made again: grants and objects built on it stay), unless the
/// new name is taken or too long, when it keeps its name.
fn move_decrypted_view(relid: pg_sys::Oid, schema: &str, table: &str) -> TgResult<()> {
    let _w = crate::audit::InternalWrite::begin();
    common::as_owner(|| -> TgResult<()> {
        let view = format!("{table}_decrypted");
        let found = common::spi_first_row(
            "SELECT n.nspname::text, c.relname::text,
                    -- (a view's row type takes the name among types too)
                    NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class x WHERE x.relnamespace = n.oid AND x.relname = c.relname || '_decrypted')
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type y WHERE y.typnamespace = n.oid AND y.typname = c.relname || '_decrypted')
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_class v JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
                             WHERE vn.nspname = $2 AND v.relname = $3 AND v.relkind = 'v'
                               AND pg_catalog.obj_description(v.oid, 'pg_class') LIKE 'tradeguard: decrypted view of %')",
            &[relid.into(), schema.into(), view.as_str().into()],
            |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default(), r.get::<bool>(3)?.unwrap_or(false))),
        )?;
        let Some((new_schema, new_table, free)) = found else { return Ok(()) };
        let target = format!("{new_table}_decrypted");
        if !free || target.len() >= pg_sys::NAMEDATALEN as usize {
            // Kept under its old name, it names its table's new name in its comment, so that a
            // table created later under the old name does not take it for its own.
            mark_decrypted_view(&format!("{}.{}", q(schema), q(&view)), &new_schema, &new_table)?;
            return Ok(());
        }
        if new_schema != schema {
            Spi::run(&format!("ALTER VIEW {}.{} SET SCHEMA {}", q(schema), q(&view), q(&new_schema)))?;
        }
        if target != view {
            Spi::run(&format!("ALTER VIEW {}.{} RENAME TO {}", q(&new_schema), q(&view), q(&target)))?;
        }
        mark_decrypted_view(&format!("{}.{}", q(&new_schema), q(&target)), &new_schema, &new_table)?;
        Ok(())
    })?
}

/// Follows `ALTER SCHEMA old RENAME TO new` in the encrypted-column registrations.
pub fn follow_schema_rename(old: &str, new: &str) -> TgResult<()> {
    {
        let _w = crate::audit::InternalWrite::begin();
        common::as_owner(|| {
            Spi::run_with_args(
                "UPDATE tradeguard_audit.encrypted_columns SET schema_name = $2 WHERE schema_name = $1",
                &[old.into(), new.into()],
            )
        })??;
    }
    // Audit triggers cache their table's schema name too: every backend refreshes.
    keys::invalidate();
    Ok(())
}

/// What `col` of `relid` (or of a table it is a partition of, or of one of its partitions) is
/// to encrypted values: a key column they are bound to, the encrypted column itself or its
/// blind index column (a new type for any of them leaves the values unreadable).
pub fn protected_column_role(relid: pg_sys::Oid, col: &str) -> TgResult<Option<String>> {
    Ok(common::as_owner(|| {
        common::spi_first::<String>(
            concat!(
                "SELECT CASE WHEN e.column_name = $2 THEN 'an encrypted column'
                             WHEN e.blind_column = $2 THEN 'the blind index column of ' || e.column_name
                             ELSE 'a key column encrypted values of the table are bound to' END
                   FROM tradeguard_audit.encrypted_columns e
                   JOIN (SELECT a.relid FROM ", crate::self_and_ancestors_sql!(), " a
                         UNION ALL
                         -- partitions below (encrypted on their own): the new type reaches them too
                         SELECT t.relid FROM pg_catalog.pg_partition_tree($1::regclass) t) x
                     ON x.relid = ", crate::registered_relid_sql!(), "
                  WHERE e.pk_column = $2 OR $2 = ANY (e.pk_columns) OR e.column_name = $2 OR e.blind_column = $2
                  LIMIT 1"
            ),
            &[relid.into(), col.into()],
        )
    })??)
}

/// Converts the plaintext rows of a table just attached as a partition of a table with
/// encrypted columns (the utility hook calls it after ATTACH PARTITION). Returns the rows
/// converted; 0 when nothing above the table is encrypted.
pub fn convert_attached_partition(relid: pg_sys::Oid) -> TgResult<i64> {
    let cfg = match load_table_cfg(relid) {
        Ok(cfg) => cfg,
        Err(crate::error::TgError::Crypto(CryptoError::NotConfigured(_))) => return Ok(0),
        Err(e) => return Err(e),
    };
    let fq = common::quoted_relation_name(relid).ok_or_else(|| CoreError::InvalidArgument("attached table vanished".into()))?;
    let mut total = 0;
    let tree = common::partition_tree(relid)?;
    for col in &cfg.columns {
        // What would compare ciphertext refuses the table attached, as encrypt_column refuses
        // it. (Values that already look like ciphertext are kept as they are, as after a
        // DETACH: checking them would rewrite every row of a partition attached again.)
        if let Some(what) = comparing_objects(&tree, &col.name)? {
            return Err(CoreError::InvalidArgument(format!(
                "cannot attach {fq} to a table whose column {} is encrypted: {what} would compare its ciphertext, which differs for every value (random nonces); drop it first",
                col.name
            ))
            .into());
        }
        total += convert_plaintext(relid, &fq, &col.name, 10_000)?;
    }
    if total > 0 {
        // (pg_stats of the attached table held its plaintext.)
        common::as_owner(|| Spi::run(&format!("ANALYZE {fq}")))??;
    }
    Ok(total)
}

/// The first index or statistics object of table `relid` or of a table below it (partitions,
/// inheritance children: a query on the table plans them too) that
/// calls a function (directly or through an operator) whose owner is not a superuser, described
/// for an error. The planner runs such code with the planning role's rights: it folds the
/// constant parts of statistics expressions for every query on the table, and of index
/// expressions and partial-index predicates when a backend first loads them.
const OWNER_PLANNER_CODE_SQL: &str = "
    WITH RECURSIVE tree AS (SELECT $1::pg_catalog.oid AS relid
                            UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid),
    objs AS (SELECT 'statistics object ' || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(s.stxname) AS what,
                    'pg_catalog.pg_statistic_ext'::pg_catalog.regclass::pg_catalog.oid AS classid, s.oid AS objid
               FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
              WHERE s.stxrelid IN (SELECT relid FROM tree)
             UNION ALL
             SELECT 'index ' || i.indexrelid::pg_catalog.regclass::pg_catalog.text,
                    'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, i.indexrelid
               FROM pg_catalog.pg_index i WHERE i.indrelid IN (SELECT relid FROM tree)),
    calls AS (SELECT o.what,
                     CASE WHEN d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid THEN d.refobjid
                          ELSE op.oprcode::pg_catalog.oid END AS fn
                FROM objs o JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid
                LEFT JOIN pg_catalog.pg_operator op
                  ON op.oid = d.refobjid AND d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass::pg_catalog.oid
               WHERE d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid,
                                      'pg_catalog.pg_operator'::pg_catalog.regclass::pg_catalog.oid))
    SELECT c.what || ' calls function ' || c.fn::pg_catalog.regprocedure::pg_catalog.text || ', owned by ' || pg_catalog.quote_ident(r.rolname)
      FROM calls c JOIN pg_catalog.pg_proc p ON p.oid = c.fn JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
     WHERE NOT r.rolsuper
     ORDER BY 1 LIMIT 1";

/// Refuses to plan queries on table `fq` (`relid`) as the extension owner while the planner
/// would run the table owner's code in them (see [`OWNER_PLANNER_CODE_SQL`]); the table and its
/// partitions are locked first (SHARE UPDATE EXCLUSIVE, which writers do not wait for), so that
/// no index or statistics object is added before the transaction ends.
fn refuse_owner_planner_code(relid: pg_sys::Oid, fq: &str) -> TgResult<()> {
    let found = common::as_owner(|| -> TgResult<Option<String>> {
        Spi::run(&format!("LOCK TABLE {fq} IN SHARE UPDATE EXCLUSIVE MODE"))?;
        Ok(common::spi_first::<String>(OWNER_PLANNER_CODE_SQL, &[relid.into()])?)
    })??;
    match found {
        Some(what) => Err(CryptoError::OwnerCodeInPlanning { table: fq.to_string(), what }.into()),
        None => Ok(()),
    }
}

/// The rows a pass of [`update_in_batches`] picked (relations and tuple ids): the same rows
/// picked again mean the write did not convert them.
type BatchIdentity = (Vec<pg_sys::Oid>, Vec<(u16, u16, u16)>);

/// Writes back (`SET col = col`: the encrypt trigger does the work) the rows of `fq` (table
/// `relid`) that match `cond`, at most `batch` at a time, until none is left; returns the count.
/// Re-running after an interruption continues where it stopped. The rows are chosen and locked
/// (FOR UPDATE: concurrent writers wait rather than conflict) as the extension owner, which
/// sees every row, without constraint exclusion (the planner would fold the table's CHECK
/// constraints with the extension owner's rights);
/// the UPDATE, which fires the table's own triggers and checks, runs as the
/// table's owner in a security-restricted operation.
fn update_in_batches(relid: pg_sys::Oid, fq: &str, col: &str, cond: &str, batch: Option<i32>) -> TgResult<i64> {
    refuse_owner_planner_code(relid, fq)?;
    // Rows are named by (tableoid, ctid): in a partitioned table the same ctid exists in
    // several partitions. (No batch size: every matching row, once.)
    let limit = batch.map_or("ALL".to_string(), |b| b.to_string());
    let pick = format!("SELECT pg_catalog.array_agg(tableoid), pg_catalog.array_agg(ctid) FROM (SELECT tableoid, ctid FROM {fq} WHERE {cond} LIMIT {limit} FOR UPDATE) s");
    let c = q(col);
    let write = format!(
        "UPDATE {fq} AS tg_t SET {c} = tg_t.{c}
           FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.tid[])) AS tg_s (tg_rel, tg_row)
          WHERE tg_t.tableoid OPERATOR(pg_catalog.=) tg_s.tg_rel AND tg_t.ctid OPERATOR(pg_catalog.=) tg_s.tg_row"
    );
    let mut total = 0i64;
    let mut last_pick: Option<BatchIdentity> = None;
    loop {
        // (Not read-only: FOR UPDATE locks the rows.)
        // (without constraint exclusion: the table's CHECK constraints are its owner's code, which
        // the planner would fold with the extension owner's rights)
        let picked = common::as_owner(|| {
            common::with_local_setting(c"constraint_exclusion", c"off", || {
                Spi::connect_mut(|client| {
                    let t = client.update(&pick, Some(1), &[])?;
                    let r = t.first();
                    Ok::<_, pgrx::spi::Error>((
                        r.get::<Vec<pg_sys::Oid>>(1)?.unwrap_or_default(),
                        r.get::<pgrx::datum::Array<pg_sys::ItemPointerData>>(2)?.map(|a| a.iter().flatten().collect::<Vec<_>>()).unwrap_or_default(),
                    ))
                })
            })
        })??;
        let (rels, rows) = picked;
        if rels.is_empty() {
            return Ok(total);
        }
        let identity = (rels.clone(), rows.iter().map(|t| (t.ip_blkid.bi_hi, t.ip_blkid.bi_lo, t.ip_posid)).collect::<Vec<_>>());
        if last_pick.as_ref() == Some(&identity) {
            // Written, yet still plaintext (or still on the old version): a rule or trigger
            // of the table redirects or undoes the write.
            return Err(CoreError::InvalidArgument(format!(
                "{} rows of {fq} were written but not converted: a rule or trigger of the table redirects or undoes the write",
                rels.len()
            ))
            .into());
        }
        last_pick = Some(identity);
        let n = common::as_table_owner(relid, || {
            Spi::connect_mut(|client| client.update(&write, None, &[rels.clone().into(), rows.clone().into()]).map(|t| t.len() as i64))
        })??;
        if n == 0 {
            // The owner cannot see them (FORCE ROW LEVEL SECURITY): stop rather than loop.
            return Err(CoreError::InvalidArgument(format!(
                "{} rows of {fq} could not be rewritten as the table's owner: a trigger or rule of the table skipped them, or row-level security hides them from the owner",
                rels.len()
            ))
            .into());
        }
        // Rows a trigger of the table skipped (returned NULL for) are picked again: the loop
        // ends when none is left, or stops above when none could be written.
        total += n;
        if batch.is_none() {
            // One pass over every matching row: each must have been written (a trigger of the
            // table that skips some would leave them unchecked).
            if n < rels.len() as i64 {
                return Err(CoreError::InvalidArgument(format!(
                    "{} of {} rows of {fq} could not be rewritten as the table's owner: a trigger or rule of the table skipped them",
                    rels.len() as i64 - n,
                    rels.len()
                ))
                .into());
            }
            return Ok(total);
        }
    }
}

/// `tradeguard.is_ciphertext(text)`: true when the value is tradeguard's text armor.
#[pg_extern(immutable, parallel_safe)]
fn is_ciphertext(value: &str) -> bool {
    envelope::looks_armored(value)
}

/// `tradeguard.ciphertext_key_version(text)`: the key version of an armored value.
#[pg_extern(immutable, parallel_safe)]
fn ciphertext_key_version(value: &str) -> i32 {
    envelope::dearmor(value)
        .and_then(|b| envelope::parse_header(&b))
        .map(|h| h.key_version as i32)
        .map_err(crate::error::TgError::from)
        .or_raise()
}

#[cfg(test)]
mod unit_tests {
    use super::{composite_key, push_context, PkText};

    #[test]
    fn context_text() {
        for i in [0i64, 1, -1, 9, 10, 42, -4711, i32::MAX as i64, i64::MAX, i64::MIN] {
            let mut s = String::new();
            push_context(&mut s, 7, Some(&PkText::Int(i)));
            assert_eq!(s, format!("tg:7:{i}"));
        }
        let mut s = String::new();
        push_context(&mut s, 12, Some(&PkText::Text("DT-1000-0001".into())));
        assert_eq!(s, "tg:12:DT-1000-0001");
        s.clear();
        push_context(&mut s, 3, None);
        assert_eq!(s, "tg:3");
    }

    #[test]
    fn composite_keys_are_length_prefixed() {
        let key = |parts: Vec<PkText>| {
            let mut s = String::new();
            push_context(&mut s, 5, Some(&composite_key(&parts)));
            s
        };
        assert_eq!(key(vec![PkText::Text("a1".into()), PkText::Int(2)]), "tg:5:2:a11:2");
        assert_eq!(key(vec![PkText::Text("a".into()), PkText::Int(12)]), "tg:5:1:a2:12");
        // Lengths are in bytes, as octet_length() counts them in the view's expression.
        assert_eq!(key(vec![PkText::Text("東京".into()), PkText::Int(-7)]), "tg:5:6:東京2:-7");
    }
}
