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
use std::collections::HashMap;
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
#[derive(Debug, Clone)]
struct ColumnCfg {
    column_id: i32,
    name: String,
    key_name: String,
    value_type: ValueType,
    blind_column: Option<String>,
    blind_key: Option<String>,
}

#[derive(Debug)]
struct TableCfg {
    columns: Vec<ColumnCfg>,
    pk_column: Option<String>,
}

thread_local! {
    static TABLES: common::shmem::GenerationCache<pg_sys::Oid, Rc<TableCfg>> = RefCell::new((None, HashMap::new()));
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
        Spi::connect(|client| {
            let t = client.select(
                "SELECT e.column_id, e.column_name, e.key_name, e.value_type, e.blind_column, e.blind_key, e.pk_column
                   FROM tradeguard_audit.encrypted_columns e
                  WHERE pg_catalog.to_regclass(pg_catalog.quote_ident(e.schema_name) || '.' || pg_catalog.quote_ident(e.table_name)) = $1
                  ORDER BY e.column_id",
                None,
                &[relid.into()],
            )?;
            let mut out = Vec::new();
            for r in t {
                out.push((
                    r.get::<i32>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<String>(5)?,
                    r.get::<String>(6)?,
                    r.get::<String>(7)?,
                ));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
    })??;
    let mut pk_column = None;
    let mut columns = Vec::new();
    for (column_id, name, key_name, vt, blind_column, blind_key, pk) in rows {
        pk_column = pk;
        columns.push(ColumnCfg {
            column_id,
            name,
            key_name,
            value_type: ValueType::parse_name(&vt)?,
            blind_column,
            blind_key,
        });
    }
    let cfg = Rc::new(TableCfg { columns, pk_column });
    TABLES.with(|t| t.borrow_mut().1.insert(relid, cfg.clone()));
    Ok(cfg)
}

/// The text output of attribute `name` of the row being written (the primary key for the context).
fn row_attribute_text(trigger: &pgrx::PgTrigger<'_>, name: &str) -> TgResult<Option<String>> {
    let (new, _old, tupdesc) = common::trigger_tuples(trigger);
    unsafe { common::tuple_attr_text(new, tupdesc, name) }
}

/// The context a column value is bound to.
pub fn column_context(column_id: i32, pk: Option<&str>) -> String {
    match pk {
        Some(pk) => format!("tg:{column_id}:{pk}"),
        None => format!("tg:{column_id}"),
    }
}

/// Turns the text the application wrote into the typed plaintext encoding.
fn encode_plaintext(vt: ValueType, text: &str) -> TgResult<Zeroizing<Vec<u8>>> {
    let bad = |what: &str| CryptoError::InvalidInput(format!("value is not a valid {what}"));
    Ok(Zeroizing::new(match vt {
        ValueType::Text | ValueType::Jsonb | ValueType::Bytea => text.as_bytes().to_vec(),
        ValueType::Numeric => AnyNumeric::try_from(text).map_err(|_| bad("numeric"))?.to_string().into_bytes(),
        ValueType::Bigint => value::encode_bigint(text.trim().parse::<i64>().map_err(|_| bad("bigint"))?).to_vec(),
        ValueType::Float8 => value::encode_float8(text.trim().parse::<f64>().map_err(|_| bad("double precision"))?).to_vec(),
        ValueType::Timestamptz => {
            let c = std::ffi::CString::new(text).map_err(|_| bad("timestamptz"))?;
            let ts: TimestampWithTimeZone = unsafe {
                pgrx::direct_function_call(
                    pg_sys::timestamptz_in,
                    &[c.as_c_str().into_datum(), pg_sys::InvalidOid.into_datum(), (-1i32).into_datum()],
                )
                .ok_or_else(|| bad("timestamptz"))?
            };
            value::encode_timestamptz(ts.into_inner()).to_vec()
        }
    }))
}

/// BEFORE INSERT OR UPDATE trigger installed by `encrypt_column` (`tradeguard_zz_encrypt`).
#[pg_trigger]
fn encrypt_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl pgrx::WhoAllocated>>, CoreError> {
    Ok(Some(encrypt_row(trigger).or_raise()))
}

fn encrypt_row<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> TgResult<PgHeapTuple<'a, pgrx::AllocatedByRust>> {
    let relid = trigger.relid().map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
    let new = trigger
        .new()
        .ok_or_else(|| CoreError::InvalidArgument("tradeguard_zz_encrypt must be a row-level INSERT/UPDATE trigger".into()))?;
    let mut new = new.into_owned();
    let cfg = load_table_cfg(relid)?;
    let pk = match &cfg.pk_column {
        Some(c) => row_attribute_text(trigger, c)?,
        None => None,
    };
    for col in &cfg.columns {
        let Some(text) = new
            .get_by_name::<String>(&col.name)
            .map_err(|e| CoreError::InvalidArgument(format!("column {}: {e}", col.name)))?
        else {
            if let Some(b) = &col.blind_column {
                new.set_by_name::<Option<Vec<u8>>>(b, None).map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
            }
            continue;
        };
        let text = Zeroizing::new(text);
        if envelope::looks_armored(&text) {
            continue;
        }
        let ctx = column_context(col.column_id, pk.as_deref());
        let pt = encode_plaintext(col.value_type, &text)?;
        let ct = super::seal_value(&col.key_name, col.value_type, &pt, &ctx)?;
        new.set_by_name(&col.name, envelope::armor(&ct)).map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        if let (Some(b), Some(k)) = (&col.blind_column, &col.blind_key) {
            let idx = super::blind_index_impl(&text, k)?;
            new.set_by_name(b, idx).map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        }
    }
    Ok(new)
}

fn q(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// `tradeguard.encrypt_column(tbl, col, key_name, blind_index_key)`: see the module comment.
/// Returns the number of existing rows converted.
#[pg_extern(volatile)]
fn encrypt_column(
    tbl: pgrx::PgRelation,
    col: &str,
    key_name: &str,
    blind_index_key: default!(Option<&str>, "NULL"),
    batch_size: default!(i32, 10000),
) -> i64 {
    // Close our reference to the relation first: ALTER TABLE refuses a relation in use.
    let oid = tbl.oid();
    drop(tbl);
    encrypt_column_impl(oid, col, key_name, blind_index_key, batch_size).or_raise()
}

struct TableNames {
    schema: String,
    table: String,
    col_type: String,
    pk: Option<String>,
}

fn table_names(tbl: pg_sys::Oid, col: &str) -> TgResult<TableNames> {
    let row = common::spi_first_row(
            "SELECT n.nspname::text, c.relname::text,
                    (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped),
                    (SELECT a.attname::text FROM pg_catalog.pg_index i
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                      WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1 AND c.relkind IN ('r', 'p')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tradeguard', 'tradeguard_audit')
                AND n.nspname NOT LIKE 'pg\\_%'",
            &[tbl.into(), col.into()],
            |r| Ok((r.get::<String>(1)?, r.get::<String>(2)?, r.get::<String>(3)?, r.get::<String>(4)?)),
    )?;
    let Some((Some(schema), Some(table), col_type, pk)) = row else {
        return Err(CoreError::InvalidArgument(format!("relation {} is not a user table", tbl.to_u32())).into());
    };
    let col_type = col_type.ok_or_else(|| CoreError::InvalidArgument(format!("column \"{col}\" does not exist in {schema}.{table}")))?;
    Ok(TableNames { schema, table, col_type, pk })
}

fn encrypt_column_impl(tbl: pg_sys::Oid, col: &str, key_name: &str, blind_key: Option<&str>, batch: i32) -> TgResult<i64> {
    if batch < 1 {
        return Err(CoreError::InvalidArgument("batch_size must be positive".into()).into());
    }
    let names = table_names(tbl, col)?;
    let (schema, table) = (names.schema.as_str(), names.table.as_str());
    keys::encryption_key(key_name, Purpose::Encrypt)?;
    if let Some(b) = blind_key {
        keys::encryption_key(b, Purpose::BlindIndex)?;
    }
    let already: Option<String> = common::as_owner(|| {
        common::spi_first::<String>(
            "SELECT value_type FROM tradeguard_audit.encrypted_columns
              WHERE schema_name = $1 AND table_name = $2 AND column_name = $3",
            &[schema.into(), table.into(), col.into()],
        )
    })??;
    let fq = format!("{}.{}", q(schema), q(table));
    let vt = match &already {
        Some(vt) => ValueType::parse_name(vt)?,
        None => {
            let base = names.col_type.split('(').next().unwrap_or_default().trim();
            let vt = value_type_for(base).ok_or_else(|| {
                CoreError::InvalidArgument(format!(
                    "column \"{col}\" has type {}; encrypt_column supports text, varchar, numeric, integer types, double precision, timestamptz and jsonb",
                    names.col_type
                ))
            })?;
            vt
        }
    };
    let blind_column = blind_key.map(|_| format!("{col}_bidx"));
    // Only our own DDL runs as "internal": user triggers fired by the conversion below must not.
    let own = common::InternalWrite::begin();
    common::as_owner(|| -> TgResult<()> {
        // Our own view depends on the table's columns: rebuild it after the change.
        Spi::run(&format!("DROP VIEW IF EXISTS {}.{}", q(schema), q(&format!("{table}_decrypted"))))?;
        if already.is_none() {
            if names.col_type != "text" {
                Spi::run(&format!("ALTER TABLE {fq} ALTER COLUMN {c} TYPE text USING {c}::text", c = q(col)))?;
            }
            Spi::run_with_args(
                "INSERT INTO tradeguard_audit.encrypted_columns
                   (schema_name, table_name, column_name, key_name, value_type, original_type, pk_column, blind_column, blind_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        Spi::run(&format!("DROP TRIGGER IF EXISTS tradeguard_zz_encrypt ON {fq}"))?;
        Spi::run(&format!(
            "CREATE TRIGGER tradeguard_zz_encrypt BEFORE INSERT OR UPDATE ON {fq}
               FOR EACH ROW EXECUTE FUNCTION tradeguard.encrypt_trigger()"
        ))?;
        Spi::run(&format!("ALTER TABLE {fq} ENABLE ALWAYS TRIGGER tradeguard_zz_encrypt"))?;
        create_decrypted_view(schema, table)?;
        Ok(())
    })??;
    drop(own);
    keys::invalidate();
    TABLES.with(|t| t.borrow_mut().1.clear());
    // Existing rows: rewrite the plaintext ones in batches; the trigger encrypts them.
    let c = q(col);
    update_in_batches(&fq, &format!("{c} = {c}"), &format!("{c} IS NOT NULL AND NOT tradeguard.is_ciphertext({c})"), batch)
}

/// (Re)creates `<table>_decrypted`: every column, encrypted ones decrypted to their original type.
fn create_decrypted_view(schema: &str, table: &str) -> TgResult<()> {
    let cols = Spi::connect(|client| {
        let t = client.select(
            "SELECT a.attname::text, e.column_id, e.value_type, e.original_type, e.pk_column
               FROM pg_catalog.pg_attribute a
               LEFT JOIN tradeguard_audit.encrypted_columns e
                 ON e.schema_name = $1 AND e.table_name = $2 AND e.column_name = a.attname
              WHERE a.attrelid = (pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident($2))::pg_catalog.regclass
                AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            None,
            &[schema.into(), table.into()],
        )?;
        let mut out = Vec::new();
        for r in t {
            out.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<String>(5)?,
            ));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })?;
    let mut select = Vec::new();
    for (name, id, vt, orig, pk) in cols {
        match (id, vt) {
            (Some(id), Some(vt)) => {
                let vt = ValueType::parse_name(&vt)?;
                let ctx = match pk {
                    Some(pk) => format!("'tg:{id}:' || {}::text", q(&pk)),
                    None => format!("'tg:{id}'"),
                };
                let call = format!("tradeguard.decrypt_{}({}, {ctx})", vt.sql_suffix(), q(&name));
                let orig = orig.unwrap_or_else(|| "text".into());
                select.push(format!("({call})::{orig} AS {}", q(&name)));
            }
            _ => select.push(q(&name)),
        }
    }
    let view = format!("{}.{}", q(schema), q(&format!("{table}_decrypted")));
    Spi::run(&format!(
        "CREATE OR REPLACE VIEW {view} AS SELECT {} FROM {}.{}",
        select.join(", "),
        q(schema),
        q(table)
    ))?;
    Spi::run(&format!("REVOKE ALL ON {view} FROM PUBLIC"))?;
    Spi::run(&format!("GRANT SELECT ON {view} TO tradeguard_decryptor"))?;
    Spi::run(&format!(
        "COMMENT ON VIEW {view} IS 'tradeguard: decrypted view of {}.{} (tradeguard_decryptor only)'",
        schema.replace('\'', "''"),
        table.replace('\'', "''")
    ))?;
    Ok(())
}

/// `tradeguard.reencrypt_column(tbl, col, batch_size)`: moves values to the key's newest version.
#[pg_extern(volatile)]
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
        .ok_or_else(|| CoreError::InvalidArgument(format!("column \"{col}\" of {}.{} is not encrypted by tradeguard", names.schema, names.table)))?
        .clone();
    let (info, active, _) = keys::encryption_key(&c.key_name, Purpose::Encrypt)?;
    let fq = format!("{}.{}", q(&names.schema), q(&names.table));
    let ctx = match &cfg.pk_column {
        Some(pk) => format!("'tg:{}:' || {}::text", c.column_id, q(pk)),
        None => format!("'tg:{}'", c.column_id),
    };
    // Re-encryption decrypts to the typed plaintext text and writes it back: the trigger
    // encrypts it with the active version (and recomputes the blind index).
    let plain = format!("(tradeguard.decrypt_{}({}, {ctx}))::text", c.value_type.sql_suffix(), q(col));
    debug_assert_eq!(info.active_version, Some(active));
    let c = q(col);
    update_in_batches(
        &fq,
        &format!("{c} = {plain}"),
        &format!("{c} IS NOT NULL AND tradeguard.ciphertext_key_version({c}) <> {active}"),
        batch,
    )
}

/// Runs `UPDATE <fq> SET <set> WHERE <cond>` on at most `batch` rows at a time (locked with FOR
/// UPDATE, so concurrent writers wait rather than conflict) until no row is left; returns the
/// count. Re-running after an interruption continues where it stopped.
fn update_in_batches(fq: &str, set: &str, cond: &str, batch: i32) -> TgResult<i64> {
    let sql = format!(
        "UPDATE {fq} SET {set} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {fq} WHERE {cond} LIMIT {batch} FOR UPDATE))"
    );
    let mut total = 0i64;
    loop {
        let n = common::as_owner(|| Spi::connect_mut(|client| client.update(&sql, None, &[]).map(|t| t.len() as i64)))??;
        total += n;
        if n < batch as i64 {
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
