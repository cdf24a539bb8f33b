//! Arbitrary bytes into every parser of the crypto core that reads
//! untrusted input: envelope header parsing and opening (fixed key and
//! context), armor decoding, typed plaintext decoding, data key unwrapping
//! and encrypted-file decryption. None of them may panic; a fresh envelope
//! of the same bytes must round-trip.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../src/crypto/core.rs"]
mod crypto;

use crypto::envelope::{self, DataKey, ValueType};
use crypto::{filefmt, rootkey, value};

struct Keys {
    data: DataKey,
    /// The key of the round trip at the end: its envelopes never authenticate under `data`.
    round_trip: DataKey,
    root: rootkey::RootKey,
    /// A valid envelope of b"fuzz" under `data` and CONTEXT, mixed into inputs. Its nonce is
    /// fixed: libFuzzer learns its bytes (from the comparison below) and keeps them in the
    /// corpus, and with a random nonce such an input would be another valid envelope in the
    /// next run, reported as an altered envelope that was accepted.
    valid: Vec<u8>,
}

const CONTEXT: &[u8] = b"fuzz.table.column:1";

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        // Not the key of earlier versions of this target (0x5a), whose random-nonce envelopes
        // may still sit in local corpora.
        let data = DataKey::from_bytes(&[0x5b; 32]);
        let valid = envelope::seal_with_nonce(&data, 1, 1, ValueType::Text, &[0x11; 12], b"fuzz", CONTEXT);
        Keys {
            data,
            round_trip: DataKey::from_bytes(&[0x3c; 32]),
            root: rootkey::RootKey::from_bytes(&[0xa5; 32]),
            valid,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let k = keys();

    // Header + open, as given and with the context taken from the input.
    let header = envelope::parse_header(data);
    let opened = envelope::open(&k.data, data, CONTEXT);
    if opened.is_ok() {
        assert!(
            header.is_ok(),
            "open accepted an envelope whose header does not parse"
        );
    }
    if let Some((&n, rest)) = data.split_first() {
        let n = (n as usize).min(rest.len());
        let _ = envelope::open(&k.data, &rest[n..], &rest[..n]);
    }
    // The valid envelope with the input spliced over part of it.
    if !data.is_empty() {
        let mut m = k.valid.clone();
        let at = data[0] as usize % m.len();
        for (i, b) in data[1..].iter().enumerate().take(m.len() - at) {
            m[at + i] = *b;
        }
        let r = envelope::open(&k.data, &m, CONTEXT);
        if m != k.valid {
            assert!(r.is_err(), "altered envelope accepted");
        }
    }

    // Typed plaintext decoding.
    if let Ok(h) = header {
        let _ = value::check_type(&h, ValueType::Text);
    }
    for vt in ValueType::ALL {
        if let Ok(v) = value::TypedValue::decode(vt, data) {
            let _ = v.to_display();
        }
    }

    // Text forms.
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = envelope::looks_armored(s);
        if let Ok(env) = envelope::dearmor(s) {
            assert_eq!(envelope::armor(&env).expect("dearmor returns valid envelopes"), s, "armor is not canonical");
            let _ = envelope::open(&k.data, &env, CONTEXT);
        }
        let _ = rootkey::RootKey::parse(data);
    }

    // Wrapped keys and encrypted files.
    let _ = rootkey::unwrap_data_key(&k.root, "fuzz", 1, "encrypt", data);
    let _ = filefmt::decrypt_bytes(&k.root, data);

    // Round trip of the input as a plaintext.
    let env = envelope::seal(&k.round_trip, 7, 3, ValueType::Bytea, data, CONTEXT);
    assert_eq!(&envelope::open(&k.round_trip, &env, CONTEXT).unwrap()[..], data);
});
