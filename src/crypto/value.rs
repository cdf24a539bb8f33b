//! Plaintext encoding of typed values inside an envelope (see envelope.rs).
//!
//! | type        | bytes                                                        |
//! |-------------|--------------------------------------------------------------|
//! | text        | UTF-8                                                        |
//! | bytea       | raw                                                          |
//! | numeric     | UTF-8 of PostgreSQL's canonical output text (`numeric_out`)  |
//! | bigint      | i64, 8 bytes big-endian                                      |
//! | float8      | IEEE-754 bits (`f64::to_bits`), 8 bytes big-endian           |
//! | timestamptz | PostgreSQL's internal i64: microseconds since 2000-01-01 00:00:00 UTC (pgrx `TimestampWithTimeZone` into i64), 8 bytes big-endian; `i64::MAX`/`i64::MIN` are +/-infinity |
//! | jsonb       | UTF-8 of the jsonb's canonical output text (`jsonb_out`)    |
//!
//! Decoding checks the length and UTF-8 and gives
//! [`CryptoError::CorruptPlaintext`] otherwise.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::envelope::{Header, ValueType};
use super::error::CryptoError;

/// Seconds from 1970-01-01 to PostgreSQL's epoch 2000-01-01 (UTC).
pub const PG_EPOCH_UNIX_SECONDS: i64 = 946_684_800;

/// Checks that an envelope holds the type a decrypt function returns.
pub fn check_type(header: &Header, expected: ValueType) -> Result<(), CryptoError> {
    if header.value_type == expected {
        Ok(())
    } else {
        Err(CryptoError::WrongType {
            stored: header.value_type,
            requested: expected,
        })
    }
}

pub fn encode_bigint(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}
pub fn encode_float8(v: f64) -> [u8; 8] {
    v.to_bits().to_be_bytes()
}
/// `pg_micros`: PostgreSQL's internal timestamptz (µs since 2000-01-01 UTC).
pub fn encode_timestamptz(pg_micros: i64) -> [u8; 8] {
    pg_micros.to_be_bytes()
}

fn eight(bytes: &[u8], what: &'static str) -> Result<[u8; 8], CryptoError> {
    bytes
        .try_into()
        .map_err(|_| CryptoError::CorruptPlaintext(what))
}
pub fn decode_bigint(bytes: &[u8]) -> Result<i64, CryptoError> {
    Ok(i64::from_be_bytes(eight(
        bytes,
        "bigint plaintext is not 8 bytes",
    )?))
}
pub fn decode_float8(bytes: &[u8]) -> Result<f64, CryptoError> {
    Ok(f64::from_bits(u64::from_be_bytes(eight(
        bytes,
        "double precision plaintext is not 8 bytes",
    )?)))
}
pub fn decode_timestamptz(bytes: &[u8]) -> Result<i64, CryptoError> {
    Ok(i64::from_be_bytes(eight(
        bytes,
        "timestamptz plaintext is not 8 bytes",
    )?))
}
/// Text, numeric and jsonb plaintexts: valid UTF-8 without NUL (which
/// PostgreSQL text cannot hold); numeric must also be non-empty ASCII.
pub fn decode_str(vt: ValueType, bytes: &[u8]) -> Result<&str, CryptoError> {
    let s = std::str::from_utf8(bytes)
        .map_err(|_| CryptoError::CorruptPlaintext("text plaintext is not valid UTF-8"))?;
    if bytes.contains(&0) {
        return Err(CryptoError::CorruptPlaintext(
            "text plaintext contains a NUL byte",
        ));
    }
    if vt == ValueType::Numeric && (s.is_empty() || !s.is_ascii()) {
        return Err(CryptoError::CorruptPlaintext(
            "numeric plaintext is not a number",
        ));
    }
    Ok(s)
}

/// A decoded plaintext. Zeroized on drop.
#[derive(Debug, Clone, PartialEq, Zeroize, ZeroizeOnDrop)]
pub enum TypedValue {
    Text(String),
    Bytea(Vec<u8>),
    Numeric(String),
    Bigint(i64),
    Float8(f64),
    /// PostgreSQL internal microseconds since 2000-01-01 UTC.
    Timestamptz(i64),
    Jsonb(String),
}

impl TypedValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            TypedValue::Text(_) => ValueType::Text,
            TypedValue::Bytea(_) => ValueType::Bytea,
            TypedValue::Numeric(_) => ValueType::Numeric,
            TypedValue::Bigint(_) => ValueType::Bigint,
            TypedValue::Float8(_) => ValueType::Float8,
            TypedValue::Timestamptz(_) => ValueType::Timestamptz,
            TypedValue::Jsonb(_) => ValueType::Jsonb,
        }
    }

    /// The plaintext bytes sealed in an envelope.
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(match self {
            TypedValue::Text(s) | TypedValue::Numeric(s) | TypedValue::Jsonb(s) => {
                s.as_bytes().to_vec()
            }
            TypedValue::Bytea(b) => b.clone(),
            TypedValue::Bigint(v) => encode_bigint(*v).to_vec(),
            TypedValue::Float8(v) => encode_float8(*v).to_vec(),
            TypedValue::Timestamptz(v) => encode_timestamptz(*v).to_vec(),
        })
    }

    pub fn decode(vt: ValueType, bytes: &[u8]) -> Result<TypedValue, CryptoError> {
        Ok(match vt {
            ValueType::Text => TypedValue::Text(decode_str(vt, bytes)?.to_string()),
            ValueType::Numeric => TypedValue::Numeric(decode_str(vt, bytes)?.to_string()),
            ValueType::Jsonb => TypedValue::Jsonb(decode_str(vt, bytes)?.to_string()),
            ValueType::Bytea => TypedValue::Bytea(bytes.to_vec()),
            ValueType::Bigint => TypedValue::Bigint(decode_bigint(bytes)?),
            ValueType::Float8 => TypedValue::Float8(decode_float8(bytes)?),
            ValueType::Timestamptz => TypedValue::Timestamptz(decode_timestamptz(bytes)?),
        })
    }

    /// PostgreSQL-like output text (bytea as `\x` hex, timestamptz in UTC).
    pub fn to_display(&self) -> String {
        match self {
            TypedValue::Text(s) | TypedValue::Numeric(s) | TypedValue::Jsonb(s) => s.clone(),
            TypedValue::Bytea(b) => format!("\\x{}", hex::encode(b)),
            TypedValue::Bigint(v) => v.to_string(),
            TypedValue::Float8(v) => format_float8(*v),
            TypedValue::Timestamptz(v) => format_timestamptz(*v),
        }
    }
}

/// Like PostgreSQL's float8 output with extra_float_digits = 1 (shortest
/// round-trip form), e.g. `0.1`, `1e+21`, `NaN`, `-Infinity`.
pub fn format_float8(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e15).contains(&a) {
        let s = format!("{v:e}"); // e.g. 1e21, 1.5e-7
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = e.strip_prefix('-').map(|d| ('-', d)).unwrap_or(('+', e));
        format!("{m}e{sign}{digits:0>2}")
    } else {
        format!("{v}")
    }
}

/// Formats PostgreSQL internal microseconds as `YYYY-MM-DD HH:MM:SS[.ffffff]+00`
/// (UTC, ` BC` suffix for years before 1), `infinity` / `-infinity`.
pub fn format_timestamptz(pg_micros: i64) -> String {
    if pg_micros == i64::MAX {
        return "infinity".into();
    }
    if pg_micros == i64::MIN {
        return "-infinity".into();
    }
    const DAY: i64 = 86_400_000_000;
    let days = pg_micros.div_euclid(DAY) + PG_EPOCH_UNIX_SECONDS / 86_400;
    let tod = pg_micros.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let (secs, frac) = (tod / 1_000_000, tod % 1_000_000);
    let (year, bc) = if y <= 0 { (1 - y, " BC") } else { (y, "") };
    let mut s = format!(
        "{year:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str("+00");
    s.push_str(bc);
    s
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{open, parse_header, seal, DataKey};
    use super::*;

    #[test]
    fn round_trip_every_type_through_envelope() {
        let k = DataKey::from_bytes(&[3; 32]);
        let values = [
            TypedValue::Text("héllo wörld".into()),
            TypedValue::Text(String::new()),
            TypedValue::Bytea(vec![0, 1, 2, 255]),
            TypedValue::Numeric("-12345.678900".into()),
            TypedValue::Numeric("NaN".into()),
            TypedValue::Bigint(i64::MIN),
            TypedValue::Bigint(-1),
            TypedValue::Float8(0.1),
            TypedValue::Float8(f64::NEG_INFINITY),
            TypedValue::Float8(-0.0),
            TypedValue::Timestamptz(0),
            TypedValue::Timestamptz(i64::MAX),
            TypedValue::Jsonb(r#"{"a": [1, 2]}"#.into()),
        ];
        for v in values {
            let env = seal(&k, 1, 1, v.value_type(), &v.encode(), b"c");
            let h = parse_header(&env).unwrap();
            check_type(&h, v.value_type()).unwrap();
            let back = TypedValue::decode(h.value_type, &open(&k, &env, b"c").unwrap()).unwrap();
            match (&v, &back) {
                (TypedValue::Float8(a), TypedValue::Float8(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits())
                }
                _ => assert_eq!(v, back),
            }
        }
        let env = seal(&k, 1, 1, ValueType::Float8, &encode_float8(f64::NAN), b"");
        assert!(decode_float8(&open(&k, &env, b"").unwrap())
            .unwrap()
            .is_nan());
    }

    #[test]
    fn layout() {
        assert_eq!(encode_bigint(1), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(encode_float8(1.0), [0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_timestamptz(-1), [0xff; 8]);
    }

    #[test]
    fn corrupt_plaintexts() {
        for vt in [ValueType::Bigint, ValueType::Float8, ValueType::Timestamptz] {
            for n in [0usize, 7, 9] {
                let e = TypedValue::decode(vt, &vec![0; n]).unwrap_err();
                assert!(matches!(e, CryptoError::CorruptPlaintext(_)), "{e}");
            }
        }
        for vt in [ValueType::Text, ValueType::Numeric, ValueType::Jsonb] {
            assert!(matches!(
                TypedValue::decode(vt, &[0xff, 0xfe]),
                Err(CryptoError::CorruptPlaintext(_))
            ));
            assert!(matches!(
                TypedValue::decode(vt, b"a\0b"),
                Err(CryptoError::CorruptPlaintext(_))
            ));
        }
        assert!(TypedValue::decode(ValueType::Numeric, b"").is_err());
        assert!(TypedValue::decode(ValueType::Text, b"").is_ok());
        assert!(TypedValue::decode(ValueType::Bytea, &[0xff]).is_ok());
    }

    #[test]
    fn wrong_type() {
        let h = Header {
            version: 1,
            algorithm: 1,
            value_type: ValueType::Numeric,
            key_id: 1,
            key_version: 1,
        };
        let e = check_type(&h, ValueType::Text).unwrap_err();
        assert!(matches!(
            e,
            CryptoError::WrongType {
                stored: ValueType::Numeric,
                requested: ValueType::Text
            }
        ));
        assert!(e.to_string().contains("use tradeguard.decrypt_numeric()"));
    }

    #[test]
    fn display() {
        assert_eq!(format_timestamptz(0), "2000-01-01 00:00:00+00");
        assert_eq!(format_timestamptz(-1), "1999-12-31 23:59:59.999999+00");
        // 2024-02-29 12:34:56.5 UTC = unix 1709210096.5
        assert_eq!(
            format_timestamptz((1_709_210_096 - PG_EPOCH_UNIX_SECONDS) * 1_000_000 + 500_000),
            "2024-02-29 12:34:56.5+00"
        );
        // 0001-01-01 00:00:00 UTC = unix -62135596800; one day earlier is 1 BC.
        let y1 = (-62_135_596_800 - PG_EPOCH_UNIX_SECONDS) * 1_000_000;
        assert_eq!(format_timestamptz(y1), "0001-01-01 00:00:00+00");
        assert_eq!(
            format_timestamptz(y1 - 86_400_000_000),
            "0001-12-31 00:00:00+00 BC"
        );
        assert_eq!(format_timestamptz(i64::MIN), "-infinity");
        assert_eq!(format_float8(0.1), "0.1");
        assert_eq!(format_float8(1e21), "1e+21");
        assert_eq!(format_float8(1.5e-7), "1.5e-07");
        assert_eq!(format_float8(-2.0), "-2");
        assert_eq!(format_float8(f64::NAN), "NaN");
        assert_eq!(TypedValue::Bytea(vec![0xde, 0xad]).to_display(), "\\xdead");
    }
}
