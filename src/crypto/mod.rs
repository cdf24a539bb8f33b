//! Column encryption: AES-256-GCM envelopes with per-name data keys wrapped by a root key,
//! typed decryption, blind indexes, and in-place conversion of columns.
//!
//! Pure modules (no pgrx): `envelope`, `rootkey`, `blind`, `value`, `filefmt`, `error`.
//! SQL layer: this file (values and keys), `keys` (key store), `columns` (encrypt_column).

pub mod activity;
pub mod blind;
pub mod columns;
pub mod envelope;
pub mod error;
pub mod filefmt;
pub mod keys;
pub mod nonce;
pub mod rootkey;
pub mod value;

use pgrx::prelude::*;
use pgrx::AnyNumeric;
use zeroize::Zeroizing;

use crate::common;
use crate::error::{OrRaise, TgResult};
use envelope::ValueType;
use error::CryptoError;
use keys::Purpose;

/// Encrypts already-encoded plaintext bytes under the active version of `key_name`.
pub fn seal_value(key_name: &str, vt: ValueType, plaintext: &[u8], context: &str) -> TgResult<Vec<u8>> {
    let (info, version, entry) = keys::encryption_key(key_name, Purpose::Encrypt)?;
    let mut out = Vec::new();
    seal_into(&mut out, info.key_id, version, &entry, vt, plaintext, context)?;
    Ok(out)
}

/// [`seal_value`] into a caller's buffer, with a key already looked up (and kept) by the caller.
pub fn seal_into(
    out: &mut Vec<u8>,
    key_id: u32,
    version: u32,
    entry: &keys::VersionEntry,
    vt: ValueType,
    plaintext: &[u8],
    context: &str,
) -> TgResult<()> {
    let nonce = nonce::fresh()?;
    activity::count(activity::Op::Encrypt, key_id, version, "");
    envelope::seal_with_nonce_into(out, &entry.key, key_id, version, vt, &nonce, plaintext, context.as_bytes());
    Ok(())
}

/// Authenticates and decrypts an envelope, then checks that it holds the requested type.
pub fn open_value(ct: &[u8], context: &str, want: ValueType) -> TgResult<Zeroizing<Vec<u8>>> {
    if common::security::decryption_frozen() && !common::is_member_of("tradeguard_admin") {
        return Err(CryptoError::DecryptionFrozen.into());
    }
    let header = envelope::parse_header(ct)?;
    let (info, entry) = keys::decryption_key(header.key_id, header.key_version)?;
    let plaintext = envelope::open(&entry.key, ct, context.as_bytes())?;
    value::check_type(&header, want)?;
    activity::count(activity::Op::Decrypt, header.key_id, header.key_version, context);
    if crate::gucs::AUDIT_DECRYPT.get() {
        // One signed audit row per decryption (never the value): writes, so not for parallel plans.
        crate::audit::record_system(
            "DECRYPT",
            "tradeguard",
            &activity::context_label(context),
            serde_json::json!({ "key": info.name, "version": header.key_version, "type": want.name() }),
        )?;
    }
    Ok(plaintext)
}

/// Accepts the binary envelope or its `tg1:` text armor.
fn envelope_bytes(text_or_armor: &str) -> TgResult<Vec<u8>> {
    Ok(envelope::dearmor(text_or_armor)?)
}

fn decode_text(vt: ValueType, pt: &[u8]) -> TgResult<String> {
    Ok(value::decode_str(vt, pt)?.to_owned())
}

// ---------------------------------------------------------------- keys

/// `tradeguard.create_key(name, purpose, normalize)`: a new key with version 1.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn create_key(
    name: &str,
    purpose: default!(&str, "'encrypt'"),
    normalize: default!(&str, "'none'"),
) -> i32 {
    create_key_impl(name, purpose, normalize).or_raise()
}

fn create_key_impl(name: &str, purpose: &str, normalize: &str) -> TgResult<i32> {
    keys::validate_name(name)?;
    let purpose = Purpose::parse(purpose)?;
    let normalize = blind::Normalize::parse(normalize)?;
    if purpose == Purpose::Encrypt && normalize != blind::Normalize::None {
        return Err(CryptoError::InvalidInput("normalize applies to blind_index keys only".into()).into());
    }
    let (wrapped, fingerprint) = keys::new_wrapped_version(name, 1, purpose)?;
    let actor = common::current_role_name();
    let key_id = common::as_owner(|| {
        Spi::connect_mut(|client| {
            let exists = client
                .select("SELECT 1 FROM tradeguard_audit.keys WHERE name = $1", Some(1), &[name.into()])?
                .len();
            if exists > 0 {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            let id = client
                .update(
                    "INSERT INTO tradeguard_audit.keys (name, purpose, normalize, created_by)
                     VALUES ($1, $2, $3, $4) RETURNING key_id",
                    None,
                    &[name.into(), purpose.name().into(), normalize.name().into(), actor.as_str().into()],
                )?
                .first()
                .get_one::<i32>()?
                .unwrap_or_default();
            client.update(
                "INSERT INTO tradeguard_audit.key_versions (key_id, version, status, wrapped, root_fingerprint)
                 VALUES ($1, 1, 'active', $2, $3)",
                None,
                &[id.into(), wrapped.as_slice().into(), fingerprint.as_str().into()],
            )?;
            Ok(Some(id))
        })
    })??;
    keys::invalidate();
    key_id.ok_or_else(|| CryptoError::KeyExists(name.to_owned()).into())
}

/// `tradeguard.rotate_key(name)`: a new version for new writes; older versions keep decrypting.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn rotate_key(name: &str) -> i32 {
    rotate_key_impl(name).or_raise()
}

pub fn rotate_key_impl(name: &str) -> TgResult<i32> {
    let info = keys::key_by_name(name)?;
    if info.purpose == keys::Purpose::BlindIndex {
        // Blind indexes are computed with the active version only and nothing recomputes the
        // stored ones: a new version would make equality search miss every existing row.
        return Err(crate::error::CoreError::InvalidArgument(format!(
            "key \"{name}\" is a blind_index key: rotating it would make equality search miss every row indexed before; create a new blind_index key and encrypt the column again instead"
        ))
        .into());
    }
    let next = common::as_owner(|| {
        common::spi_first::<i32>(
            "SELECT coalesce(max(version), 0) + 1 FROM tradeguard_audit.key_versions WHERE key_id = $1",
            &[(info.key_id as i32).into()],
        )
    })??
    .unwrap_or(1);
    let (wrapped, fingerprint) = keys::new_wrapped_version(&info.name, next as u32, info.purpose)?;
    common::as_owner(|| {
        Spi::connect_mut(|client| {
            client.update(
                "UPDATE tradeguard_audit.key_versions SET status = 'decrypt_only'
                  WHERE key_id = $1 AND status = 'active'",
                None,
                &[(info.key_id as i32).into()],
            )?;
            client.update(
                "INSERT INTO tradeguard_audit.key_versions (key_id, version, status, wrapped, root_fingerprint)
                 VALUES ($1, $2, 'active', $3, $4)",
                None,
                &[(info.key_id as i32).into(), next.into(), wrapped.as_slice().into(), fingerprint.as_str().into()],
            )?;
            Ok::<_, pgrx::spi::Error>(())
        })
    })??;
    keys::invalidate();
    Ok(next)
}

/// `tradeguard.retire_key(name, version)`: that version no longer decrypts. Refused while a
/// column registered with `encrypt_column` still holds values sealed with it.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn retire_key(name: &str, version: i32) {
    retire_key_impl(name, version, false).or_raise()
}

/// `tradeguard.retire_key(name, version, force)`: the same, retired anyway with `force`. (Its own
/// signature, no default: a database created with the two-argument function keeps calling it.)
#[pg_extern(volatile, name = "retire_key")]
#[search_path(pg_catalog, pg_temp)]
fn retire_key_force(name: &str, version: i32, force: bool) {
    retire_key_impl(name, version, force).or_raise()
}

fn retire_key_impl(name: &str, version: i32, force: bool) -> TgResult<()> {
    let info = keys::key_by_name(name)?;
    // (Versions count from 1: a negative one would be named as a huge unsigned number.)
    if version < 1 {
        return Err(CryptoError::InvalidInput(format!("key versions count from 1; there is no version {version} of \"{}\"", info.name)).into());
    }
    if info.active_version == Some(version as u32) {
        return Err(CryptoError::RetireActive { name: info.name.clone(), version: version as u32 }.into());
    }
    // (an unknown or already retired version: nothing to scan the tables for)
    let status = common::as_owner(|| {
        common::spi_first::<String>(
            "SELECT status FROM tradeguard_audit.key_versions WHERE key_id = $1 AND version = $2",
            &[(info.key_id as i32).into(), version.into()],
        )
    })??;
    match status.as_deref() {
        None => return Err(CryptoError::NoSuchVersion { name: info.name.clone(), version: version as u32 }.into()),
        Some("retired") => return Ok(()),
        Some(_) if !force => {
            if let Some((column, rows)) = columns::values_on_version(&info.name, info.key_id, version)? {
                return Err(CryptoError::VersionInUse { name: info.name.clone(), version: version as u32, column, rows }.into());
            }
        }
        Some(_) => {}
    }
    let n = common::as_owner(|| {
        Spi::connect_mut(|client| {
            Ok::<_, pgrx::spi::Error>(
                client
                    .update(
                        "UPDATE tradeguard_audit.key_versions SET status = 'retired', retired_at = now()
                          WHERE key_id = $1 AND version = $2",
                        None,
                        &[(info.key_id as i32).into(), version.into()],
                    )?
                    .len(),
            )
        })
    })??;
    if n == 0 {
        return Err(CryptoError::NoSuchVersion { name: info.name.clone(), version: version as u32 }.into());
    }
    keys::invalidate();
    Ok(())
}

// ---------------------------------------------------------------- encrypt

#[pg_extern(name = "encrypt", volatile, parallel_safe)]
fn encrypt_text(value: &str, key_name: &str, context: default!(&str, "''")) -> Vec<u8> {
    seal_value(key_name, ValueType::Text, value.as_bytes(), context).or_raise()
}

#[pg_extern(name = "encrypt", volatile, parallel_safe)]
fn encrypt_bytea(value: &[u8], key_name: &str, context: default!(&str, "''")) -> Vec<u8> {
    seal_value(key_name, ValueType::Bytea, value, context).or_raise()
}

#[pg_extern(name = "encrypt", volatile, parallel_safe)]
fn encrypt_numeric(value: AnyNumeric, key_name: &str, context: default!(&str, "''")) -> Vec<u8> {
    let text = Zeroizing::new(value.to_string());
    seal_value(key_name, ValueType::Numeric, text.as_bytes(), context).or_raise()
}

#[pg_extern(name = "encrypt", volatile, parallel_safe)]
fn encrypt_bigint(value: i64, key_name: &str, context: default!(&str, "''")) -> Vec<u8> {
    seal_value(key_name, ValueType::Bigint, &value::encode_bigint(value), context).or_raise()
}

#[pg_extern(name = "encrypt", volatile, parallel_safe)]
fn encrypt_float8(value: f64, key_name: &str, context: default!(&str, "''")) -> Vec<u8> {
    seal_value(key_name, ValueType::Float8, &value::encode_float8(value), context).or_raise()
}

#[pg_extern(name = "encrypt", volatile, parallel_safe)]
fn encrypt_timestamptz(value: TimestampWithTimeZone, key_name: &str, context: default!(&str, "''")) -> Vec<u8> {
    let micros: i64 = value.into_inner();
    seal_value(key_name, ValueType::Timestamptz, &value::encode_timestamptz(micros), context).or_raise()
}

/// Encrypts the text form of a value of `type_name` (used by the jsonb overload in SQL).
#[pg_extern(volatile, parallel_safe)]
fn encrypt_as(value: &str, key_name: &str, context: &str, type_name: &str) -> Vec<u8> {
    let vt = ValueType::parse_name(type_name).or_raise();
    // A jsonb ciphertext always opens to valid jsonb (its decryption casts it).
    if vt == ValueType::Jsonb && !valid_input(pg_sys::JSONBOID, value) {
        crate::error::TgError::from(CryptoError::InvalidInput("value is not valid jsonb".into())).raise();
    }
    seal_value(key_name, vt, value.as_bytes(), context).or_raise()
}

/// Whether `text` is valid input for the built-in type `typid`. Input functions raise errors
/// that quote the value (and PostgreSQL's JSON errors show it as context): caught here, and
/// never shown.
fn valid_input(typid: pg_sys::Oid, text: &str) -> bool {
    let (mut func, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
    unsafe { pg_sys::getTypeInputInfo(typid, &mut func, &mut ioparam) };
    input_accepts(func, ioparam, -1, text)
}

/// Whether input function `func` (with its I/O parameter and typmod) accepts `text`; its error,
/// which would quote the value, is caught and never shown.
pub(crate) fn input_accepts(func: pg_sys::Oid, ioparam: pg_sys::Oid, typmod: i32, text: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(text) else { return false };
    pgrx::PgTryBuilder::new(|| unsafe {
        pg_sys::OidInputFunctionCall(func, c.as_ptr() as *mut std::ffi::c_char, ioparam, typmod);
        true
    })
    .catch_others(|_| false)
    .execute()
}

// ---------------------------------------------------------------- decrypt

macro_rules! decrypt_pair {
    ($bytea_fn:ident, $text_fn:ident, $sql:literal, $ret:ty, $body:expr) => {
        #[pg_extern(name = $sql, stable, parallel_safe)]
        fn $bytea_fn(value: &[u8], context: default!(&str, "''")) -> $ret {
            let f: fn(&[u8], &str) -> TgResult<$ret> = $body;
            f(value, context).or_raise()
        }
        #[pg_extern(name = $sql, stable, parallel_safe)]
        fn $text_fn(value: &str, context: default!(&str, "''")) -> $ret {
            let f: fn(&[u8], &str) -> TgResult<$ret> = $body;
            envelope_bytes(value).and_then(|b| f(&b, context)).or_raise()
        }
    };
}

decrypt_pair!(decrypt_text_b, decrypt_text_t, "decrypt_text", String, |b, c| {
    let pt = open_value(b, c, ValueType::Text)?;
    decode_text(ValueType::Text, &pt)
});
decrypt_pair!(decrypt_bytea_b, decrypt_bytea_t, "decrypt_bytea", Vec<u8>, |b, c| {
    Ok(open_value(b, c, ValueType::Bytea)?.to_vec())
});
decrypt_pair!(decrypt_numeric_b, decrypt_numeric_t, "decrypt_numeric", AnyNumeric, |b, c| {
    let pt = open_value(b, c, ValueType::Numeric)?;
    let s = value::decode_str(ValueType::Numeric, &pt)?;
    AnyNumeric::try_from(s).map_err(|_| CryptoError::CorruptPlaintext("numeric").into())
});
decrypt_pair!(decrypt_bigint_b, decrypt_bigint_t, "decrypt_bigint", i64, |b, c| {
    Ok(value::decode_bigint(&open_value(b, c, ValueType::Bigint)?)?)
});
decrypt_pair!(decrypt_float8_b, decrypt_float8_t, "decrypt_float8", f64, |b, c| {
    Ok(value::decode_float8(&open_value(b, c, ValueType::Float8)?)?)
});
decrypt_pair!(decrypt_timestamptz_b, decrypt_timestamptz_t, "decrypt_timestamptz", TimestampWithTimeZone, |b, c| {
    let micros = value::decode_timestamptz(&open_value(b, c, ValueType::Timestamptz)?)?;
    TimestampWithTimeZone::try_from(micros).map_err(|_| CryptoError::CorruptPlaintext("timestamptz").into())
});
decrypt_pair!(decrypt_as_jsonb_b, decrypt_as_jsonb_t, "decrypt_jsonb_text", String, |b, c| {
    let pt = open_value(b, c, ValueType::Jsonb)?;
    let text = decode_text(ValueType::Jsonb, &pt)?;
    // decrypt_jsonb casts it: an invalid one would be quoted by PostgreSQL's error.
    if !valid_input(pg_sys::JSONBOID, &text) {
        return Err(CryptoError::CorruptPlaintext("jsonb").into());
    }
    Ok(text)
});

/// `tradeguard.blind_index(value, key_name)`: keyed HMAC-SHA-256 for equality search.
#[pg_extern(stable, parallel_safe)]
fn blind_index(value: &str, key_name: &str) -> Vec<u8> {
    blind_index_impl(value, key_name).or_raise()
}

pub fn blind_index_impl(value: &str, key_name: &str) -> TgResult<Vec<u8>> {
    let (info, _version, entry) = keys::encryption_key(key_name, Purpose::BlindIndex)?;
    Ok(blind::blind_index(entry.key.as_bytes(), info.normalize, value).to_vec())
}

/// `tradeguard.ciphertext_info(value)`: what a ciphertext header says (no secrets).
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn ciphertext_info(
    value: &[u8],
) -> TableIterator<
    'static,
    (
        name!(format_version, i32),
        name!(algorithm, String),
        name!(value_type, String),
        name!(key_name, Option<String>),
        name!(key_version, i32),
        name!(bytes, i32),
    ),
> {
    let h = envelope::parse_header(value).or_raise();
    let name = keys::key_name_by_id(h.key_id);
    TableIterator::once((
        h.version as i32,
        "AES-256-GCM".to_string(),
        h.value_type.name().to_string(),
        name,
        h.key_version as i32,
        value.len() as i32,
    ))
}

/// `tradeguard.root_key_fingerprint()`: the fingerprint of the loaded root key (never the key).
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn root_key_fingerprint() -> String {
    keys::root_key().map(|k| k.fingerprint()).or_raise()
}

pgrx::extension_sql_file!(
    "../../sql/crypto.sql",
    name = "crypto_sql",
    requires = [
        create_key, rotate_key, retire_key, encrypt_text, encrypt_bytea, encrypt_numeric, encrypt_bigint,
        encrypt_float8, encrypt_timestamptz, encrypt_as, decrypt_text_b, decrypt_text_t, decrypt_bytea_b,
        decrypt_bytea_t, decrypt_numeric_b, decrypt_numeric_t, decrypt_bigint_b, decrypt_bigint_t,
        decrypt_float8_b, decrypt_float8_t, decrypt_timestamptz_b, decrypt_timestamptz_t, decrypt_as_jsonb_b,
        decrypt_as_jsonb_t, blind_index, ciphertext_info, root_key_fingerprint,
        columns::encrypt_column, columns::reencrypt_column, columns::encrypt_trigger,
        columns::is_ciphertext, columns::ciphertext_key_version
    ]
);

#[cfg(feature = "pg_test")]
mod tests;
