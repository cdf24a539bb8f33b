//! Row images built straight from the row's datums, the same jsonb as `to_jsonb(row)`.
//!
//! `to_jsonb(record)` looks up each column's type category and output function for every row,
//! formats numbers as text and parses them back (`numeric_out` then `numeric_in`), and the
//! trigger then deleted the excluded columns and built the primary key by deleting every other
//! column. An [`ImagePlan`] decides each column's conversion once per table shape and builds the
//! image and the key in one pass as jsonb objects of PostgreSQL's own format (keys put in
//! jsonb's order once per plan, laid out by `JsonbValueToJsonb`), so the bytes are those of
//! `to_jsonb`: numbers are passed as the stored `numeric` (or converted from the integer), text
//! as its stored bytes, dates through `JsonEncodeDateTime` as `to_jsonb` does. A table with a
//! column this plan does not know (arrays, composites, json, floats) keeps the generic
//! `to_jsonb` path. A type created in the database is written as its output function's text,
//! never through a cast to json (which its owner could write to lie).

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::crypto::envelope::looks_armored_bytes;

/// What an encrypted column holding plaintext shows in the trail.
pub const WITHHELD: &str = "[plaintext withheld]";

/// How one column becomes a jsonb scalar (the categories of PostgreSQL's `jsonb_categorize_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// text, varchar, bpchar: the stored bytes are the output.
    Text,
    /// numeric: the stored value (NaN and infinities become strings, as in to_jsonb).
    Numeric,
    /// smallint, integer, bigint (attlen 2, 4, 8): a jsonb number.
    Int(i16),
    Bool,
    /// real, double precision: a jsonb number read from the output text (as to_jsonb does: not
    /// float8_numeric, which keeps 15 digits), NaN and infinities as strings.
    Float(pg_sys::Oid),
    /// date, timestamp, timestamptz: ISO 8601 text through JsonEncodeDateTime.
    DateTime(pg_sys::Oid),
    /// Any other built-in scalar type: its output function's text.
    Other(pg_sys::Oid),
}

struct Col {
    /// 0-based attribute number.
    att: usize,
    name: Vec<u8>,
    kind: Kind,
    in_image: bool,
    in_pk: bool,
    encrypted: bool,
}

/// The conversion of every column of one table shape.
pub struct ImagePlan {
    /// A column needs `to_jsonb`: [`ImagePlan::build`] is not used for this shape.
    pub generic: bool,
    natts: usize,
    cols: Vec<Col>,
    /// The tuple descriptor's attribute names and types, to notice ALTER TABLE.
    shape: Vec<(pg_sys::Oid, bool, Vec<u8>)>,
    /// The columns of the image and of the primary key (indexes into `cols`), in the order
    /// jsonb keeps object keys (shorter first, then bytewise): the objects are formed directly,
    /// without sorting them again for every row.
    image_keys: Vec<usize>,
    pk_keys: Vec<usize>,
    /// For a `generic` shape: the columns of types created in the database (enums, ranges,
    /// types of extensions) as (attribute, name, output function), written as their text in
    /// place of what to_jsonb made of them (it calls a cast to json of such a type).
    pub as_text: Vec<(usize, String, pg_sys::Oid)>,
}

/// The column indexes of `cols` that `pick` keeps, in jsonb key order.
fn jsonb_key_order(cols: &[Col], pick: impl Fn(&Col) -> bool) -> Vec<usize> {
    let mut keys: Vec<usize> = (0..cols.len()).filter(|i| pick(&cols[*i])).collect();
    keys.sort_by(|a, b| {
        let (a, b) = (&cols[*a].name, &cols[*b].name);
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    });
    keys
}

fn att_name(a: &pg_sys::FormData_pg_attribute) -> &[u8] {
    unsafe { CStr::from_ptr(a.attname.data.as_ptr()).to_bytes() }
}

unsafe fn attrs<'a>(tupdesc: pg_sys::TupleDesc) -> &'a [pg_sys::FormData_pg_attribute] {
    (*tupdesc).attrs.as_slice((*tupdesc).natts as usize)
}

/// The kind of a column type, or None for the types only `to_jsonb` handles.
unsafe fn kind_of(typid: pg_sys::Oid, attlen: i16) -> Option<Kind> {
    let base = pg_sys::getBaseType(typid);
    Some(match base {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => Kind::Text,
        pg_sys::NUMERICOID => Kind::Numeric,
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => Kind::Int(attlen),
        pg_sys::BOOLOID => Kind::Bool,
        pg_sys::DATEOID | pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => Kind::DateTime(base),
        pg_sys::FLOAT4OID | pg_sys::FLOAT8OID => Kind::Float(base),
        // json and jsonb are nested; arrays and composites recurse.
        pg_sys::JSONOID | pg_sys::JSONBOID => return None,
        _ if pg_sys::get_element_type(base) != pg_sys::InvalidOid
            || pg_sys::type_is_rowtype(base)
            || matches!(base, pg_sys::ANYARRAYOID | pg_sys::ANYCOMPATIBLEARRAYOID | pg_sys::RECORDARRAYOID) =>
        {
            return None
        }
        // Any other type, built in or created in the database (an enum, a range, a type from an
        // extension): its output function's text, never a cast to json. to_jsonb would call a
        // cast to json of a type created in the database, and whoever owns the type may create
        // one (CREATE CAST (side_t AS json) WITH FUNCTION ...) that makes the trail record any
        // value they like.
        _ => {
            let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
            pg_sys::getTypeOutputInfo(base, &mut out, &mut varlena);
            Kind::Other(out)
        }
    })
}

impl ImagePlan {
    /// The plan for `tupdesc` (`generic` when a column needs the `to_jsonb` path).
    ///
    /// # Safety
    /// `tupdesc` must be a valid tuple descriptor.
    pub unsafe fn new(tupdesc: pg_sys::TupleDesc, exclude: &[String], pk: &[String], encrypted: &[String]) -> ImagePlan {
        let atts = attrs(tupdesc);
        let shape = atts.iter().map(|a| (a.atttypid, a.attisdropped, att_name(a).to_vec())).collect();
        let cols = Self::columns(atts, exclude, pk, encrypted);
        let generic = cols.is_none();
        let cols = cols.unwrap_or_default();
        let (image_keys, pk_keys) = (jsonb_key_order(&cols, |c| c.in_image), jsonb_key_order(&cols, |c| c.in_pk));
        let as_text = if generic {
            atts.iter()
                .enumerate()
                .filter(|(_, a)| !a.attisdropped)
                .filter_map(|(i, a)| match kind_of(a.atttypid, a.attlen) {
                    Some(Kind::Other(out)) if u32::from(pg_sys::getBaseType(a.atttypid)) >= pg_sys::FirstNormalObjectId => {
                        Some((i, String::from_utf8_lossy(att_name(a)).into_owned(), out))
                    }
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        ImagePlan { generic, natts: atts.len(), cols, shape, image_keys, pk_keys, as_text }
    }

    unsafe fn columns(atts: &[pg_sys::FormData_pg_attribute], exclude: &[String], pk: &[String], encrypted: &[String]) -> Option<Vec<Col>> {
        let has = |list: &[String], name: &[u8]| list.iter().any(|c| c.as_bytes() == name);
        let mut cols = Vec::new();
        for (i, a) in atts.iter().enumerate() {
            if a.attisdropped {
                continue;
            }
            let name = att_name(a).to_vec();
            let (in_image, in_pk, encrypted) = (!has(exclude, &name), has(pk, &name), has(encrypted, &name));
            if !in_image && !in_pk {
                continue;
            }
            let kind = kind_of(a.atttypid, a.attlen)?;
            if encrypted && kind != Kind::Text {
                return None;
            }
            cols.push(Col { att: i, name, kind, in_image, in_pk, encrypted });
        }
        Some(cols)
    }

    /// Whether `tupdesc` still has the shape this plan was made for (same names, types, order).
    ///
    /// # Safety
    /// `tupdesc` must be a valid tuple descriptor.
    pub unsafe fn fits(&self, tupdesc: pg_sys::TupleDesc) -> bool {
        let atts = attrs(tupdesc);
        atts.len() == self.natts
            && atts.iter().zip(&self.shape).all(|(a, (t, d, n))| a.atttypid == *t && a.attisdropped == *d && att_name(a) == n.as_slice())
    }

    /// The live columns of this shape whose names are not in `keep`.
    pub fn live_columns_except(&self, keep: &[String]) -> Vec<String> {
        self.shape
            .iter()
            .filter(|(_, dropped, name)| !dropped && !keep.iter().any(|k| k.as_bytes() == name.as_slice()))
            .map(|(_, _, name)| String::from_utf8_lossy(name).into_owned())
            .collect()
    }

    /// The row's image (excluded columns left out, plaintext in encrypted columns withheld) and,
    /// when `want_pk`, its primary key columns; both palloc'd jsonb datums. None when a value
    /// is too long for a jsonb string (the generic path raises PostgreSQL's own error).
    ///
    /// # Safety
    /// `tuple` must be described by `tupdesc`, which must fit this plan.
    pub unsafe fn build(
        &self,
        tuple: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
        want_pk: bool,
    ) -> Option<(pg_sys::Datum, Option<pg_sys::Datum>)> {
        let mut values = vec![pg_sys::Datum::from(0usize); self.natts];
        let mut nulls = vec![false; self.natts];
        pg_sys::heap_deform_tuple(tuple, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
        let mut scalars = Vec::with_capacity(self.cols.len());
        for c in &self.cols {
            scalars.push(scalar(c, values[c.att], nulls[c.att])?);
        }
        // An object of distinct keys in jsonb order is what pushJsonbValue would make of them
        // (it sorts the keys at the end of the object); JsonbValueToJsonb lays it out as is.
        let object = |keys: &[usize]| {
            let mut pairs: Vec<pg_sys::JsonbPair> = keys
                .iter()
                .enumerate()
                .map(|(order, &i)| pg_sys::JsonbPair {
                    key: string_value(self.cols[i].name.as_ptr(), self.cols[i].name.len()),
                    value: scalars[i],
                    order: order as u32,
                })
                .collect();
            let mut object = pg_sys::JsonbValue {
                type_: pg_sys::jbvType::jbvObject,
                val: pg_sys::JsonbValue__bindgen_ty_1 {
                    object: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_3 { nPairs: pairs.len() as i32, pairs: pairs.as_mut_ptr() },
                },
            };
            pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(&mut object))
        };
        let image = object(&self.image_keys);
        let pk = want_pk.then(|| object(&self.pk_keys));
        Some((image, pk))
    }
}

fn string_value(ptr: *const u8, len: usize) -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvString,
        val: pg_sys::JsonbValue__bindgen_ty_1 {
            string: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 { len: len as i32, val: ptr as *mut std::ffi::c_char },
        },
    }
}

/// A C string from PostgreSQL as a jsonb string (None if too long for one).
unsafe fn cstring_value(s: *mut std::ffi::c_char) -> Option<pg_sys::JsonbValue> {
    let len = CStr::from_ptr(s).to_bytes().len();
    (len <= pg_sys::JENTRY_OFFLENMASK as usize).then(|| string_value(s as *const u8, len))
}

unsafe fn scalar(c: &Col, d: pg_sys::Datum, isnull: bool) -> Option<pg_sys::JsonbValue> {
    if isnull {
        return Some(pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvNull, val: std::mem::zeroed() });
    }
    let numeric = |n: pg_sys::Numeric| pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvNumeric,
        val: pg_sys::JsonbValue__bindgen_ty_1 { numeric: n },
    };
    Some(match c.kind {
        Kind::Text => {
            let bytes = crate::common::varlena_bytes(d);
            if bytes.len() > pg_sys::JENTRY_OFFLENMASK as usize {
                return None;
            }
            // Encrypted columns must never reach the trail as plaintext (e.g. while
            // encrypt_column converts a table): what is not ciphertext there is withheld.
            if c.encrypted && !looks_armored_bytes(bytes) {
                string_value(WITHHELD.as_ptr(), WITHHELD.len())
            } else {
                string_value(bytes.as_ptr(), bytes.len())
            }
        }
        Kind::Numeric => {
            // The 4-byte-header form, as numeric_in makes it (a stored value may be short).
            let n = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as pg_sys::Numeric;
            if pg_sys::numeric_is_nan(n) || pg_sys::numeric_is_inf(n) {
                // to_jsonb turns what is not a JSON number into a string.
                cstring_value(pg_sys::OidOutputFunctionCall(pg_sys::Oid::from(pg_sys::F_NUMERIC_OUT), d))?
            } else {
                numeric(n)
            }
        }
        Kind::Int(len) => {
            let v = match len {
                2 => d.value() as i16 as i64,
                4 => d.value() as i32 as i64,
                _ => d.value() as i64,
            };
            numeric(pg_sys::int64_to_numeric(v))
        }
        Kind::Bool => pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvBool, val: pg_sys::JsonbValue__bindgen_ty_1 { boolean: d.value() != 0 } },
        Kind::Float(t) => {
            let (finite, out) = if t == pg_sys::FLOAT4OID {
                (f32::from_bits(d.value() as u32).is_finite(), pg_sys::F_FLOAT4OUT)
            } else {
                (f64::from_bits(d.value() as u64).is_finite(), pg_sys::F_FLOAT8OUT)
            };
            let text = pg_sys::OidOutputFunctionCall(pg_sys::Oid::from(out), d);
            if finite {
                // A finite float's text is a JSON number ("-0", "1e+300", "0.1").
                let n = pgrx::direct_function_call_as_datum(
                    pg_sys::numeric_in,
                    &[Some(pg_sys::Datum::from(text)), Some(pg_sys::Datum::from(pg_sys::InvalidOid)), Some(pg_sys::Datum::from(-1i32))],
                )?;
                numeric(n.cast_mut_ptr())
            } else {
                cstring_value(text)?
            }
        }
        Kind::DateTime(t) => cstring_value(pg_sys::JsonEncodeDateTime(std::ptr::null_mut(), d, t, std::ptr::null()))?,
        Kind::Other(out) => cstring_value(pg_sys::OidOutputFunctionCall(out, d))?,
    })
}
