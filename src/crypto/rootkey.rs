//! The root key: one 32-byte secret in a file outside the database, from
//! which every other key is derived or under which data keys are wrapped.
//!
//! * File: exactly 32 bytes written as 64 hex characters or as standard
//!   base64 (44 characters with `=` padding, or 43 without); surrounding
//!   whitespace (a trailing newline) is ignored. `RootKey::load` refuses a
//!   file that is not a regular file (symlinks are followed and the target is
//!   checked), that has any group/other permission bit (use mode 0600 or
//!   0400), or that is not owned by the process's effective uid (taken as the
//!   owner of `/proc/self`, Linux only).
//! * Fingerprint: `"tgk1:"` + hex of the first 16 bytes of
//!   HMAC-SHA-256(key = root, "tradeguard root key fingerprint v1"). It
//!   identifies a root key without revealing it.
//! * Derived keys: HKDF-SHA-256(ikm = root, salt = "tradeguard v1",
//!   info = label), 32 bytes. Labels in use: [`LABEL_AUDIT_HMAC`],
//!   [`LABEL_FILE_ENCRYPTION`], [`LABEL_KEY_WRAPPING`].
//! * Wrapped data keys (stored in the database's key table): AES-256-GCM
//!   under `derive("key-wrapping")`, random 96-bit nonce, associated data
//!   `"tradeguard-wrap-v1\0" || name || "\0" || version (u32 BE) || "\0" || purpose`;
//!   stored as `0x01 (format) || nonce (12) || ciphertext (32) || tag (16)`,
//!   61 bytes. Key names must not contain NUL (PostgreSQL text cannot).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::CryptoError;

pub const LABEL_AUDIT_HMAC: &str = "audit-hmac";
pub const LABEL_FILE_ENCRYPTION: &str = "file-encryption";
pub const LABEL_KEY_WRAPPING: &str = "key-wrapping";

pub const FINGERPRINT_PREFIX: &str = "tgk1:";
const FINGERPRINT_MSG: &[u8] = b"tradeguard root key fingerprint v1";
const HKDF_SALT: &[u8] = b"tradeguard v1";

/// Format byte of a wrapped data key.
pub const WRAP_FORMAT_VERSION: u8 = 1;
/// Length of a wrapped data key: version + nonce + 32-byte key + tag.
pub const WRAPPED_LEN: usize = 1 + 12 + 32 + 16;
const WRAP_AAD_PREFIX: &[u8] = b"tradeguard-wrap-v1\0";

/// Key files larger than this are refused before reading.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// The 32-byte root key. Zeroized on drop; `Debug` hides the bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RootKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKey({})", self.fingerprint())
    }
}

/// The effective uid of this process: the owner of `/proc/self`.
pub fn process_uid() -> Result<u32, CryptoError> {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| CryptoError::ProcessUid(e.to_string()))
}

impl RootKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> RootKey {
        RootKey { bytes: *bytes }
    }

    /// A fresh random root key from the operating system's generator.
    pub fn generate() -> Result<RootKey, CryptoError> {
        let mut k = RootKey { bytes: [0; 32] };
        getrandom::getrandom(&mut k.bytes).map_err(CryptoError::random)?;
        Ok(k)
    }

    /// The key as 64 lower-case hex characters (the key file format).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes))
    }

    /// Parses key file content (see the module doc). The error detail never
    /// contains the content.
    pub fn parse(content: &[u8]) -> Result<RootKey, &'static str> {
        let s = std::str::from_utf8(content).map_err(|_| "not text")?;
        let s = s.trim();
        let mut k = RootKey { bytes: [0; 32] };
        match s.len() {
            64 => hex::decode_to_slice(s, &mut k.bytes).map_err(|_| "64 characters but not hex")?,
            43 | 44 => {
                let engine = if s.len() == 44 {
                    base64::engine::general_purpose::STANDARD
                } else {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                };
                let mut buf = Zeroizing::new([0u8; 33]);
                let n = engine
                    .decode_slice(s, &mut buf[..])
                    .map_err(|_| "not valid base64")?;
                if n != 32 {
                    return Err("base64 does not decode to 32 bytes");
                }
                k.bytes.copy_from_slice(&buf[..32]);
            }
            0 => return Err("empty"),
            _ => return Err("wrong length"),
        }
        // Not random: all zeros (made from /dev/zero) or one byte repeated.
        if k.bytes.iter().all(|b| *b == k.bytes[0]) {
            return Err("one byte repeated (not random)");
        }
        Ok(k)
    }

    /// Loads and checks a root key file (see the module doc).
    pub fn load(path: &Path) -> Result<RootKey, CryptoError> {
        let p = path.display().to_string();
        // Open first and check the opened file (follows symlinks; no race
        // between the checks and the read).
        // Non-blocking: opening a FIFO (or another special file) must not hang the backend
        // beyond the reach of its signals before the check below refuses it.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CryptoError::RootKeyMissing { path: p.clone() },
            _ => CryptoError::RootKeyUnreadable {
                path: p.clone(),
                reason: e.to_string(),
            },
        })?;
        let md = f.metadata().map_err(|e| CryptoError::RootKeyUnreadable {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if !md.is_file() {
            return Err(CryptoError::RootKeyNotRegularFile { path: p });
        }
        let mode = md.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::RootKeyPermissions { path: p, mode });
        }
        let euid = process_uid()?;
        if md.uid() != euid {
            return Err(CryptoError::RootKeyOwner {
                path: p,
                owner: md.uid(),
                euid,
            });
        }
        if md.len() > MAX_KEY_FILE_LEN {
            return Err(CryptoError::RootKeyFormat {
                path: p,
                detail: format!("{} bytes long", md.len()),
            });
        }
        let mut content = Zeroizing::new(Vec::with_capacity(128));
        (&mut f)
            .take(MAX_KEY_FILE_LEN + 1)
            .read_to_end(&mut content)
            .map_err(|e| CryptoError::RootKeyUnreadable {
                path: p.clone(),
                reason: e.to_string(),
            })?;
        RootKey::parse(&content).map_err(|d| CryptoError::RootKeyFormat {
            path: p,
            detail: d.to_string(),
        })
    }

    /// `"tgk1:"` + 32 hex characters; identifies the key without revealing it.
    pub fn fingerprint(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .expect("HMAC accepts any key length");
        mac.update(FINGERPRINT_MSG);
        let out = mac.finalize().into_bytes();
        format!("{FINGERPRINT_PREFIX}{}", hex::encode(&out[..16]))
    }

    /// HKDF-SHA-256(ikm = root, salt = "tradeguard v1", info = label).
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), &self.bytes);
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(label.as_bytes(), &mut out[..])
            .expect("32 bytes is a valid HKDF-SHA-256 length");
        out
    }
}

/// Convenience for [`RootKey::fingerprint`].
pub fn fingerprint_of(root: &RootKey) -> String {
    root.fingerprint()
}

/// Whether two fingerprints are the same (ignores case and surrounding space).
pub fn fingerprints_match(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn wrap_aad(name: &str, version: u32, purpose: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(WRAP_AAD_PREFIX.len() + name.len() + purpose.len() + 6);
    a.extend_from_slice(WRAP_AAD_PREFIX);
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(&version.to_be_bytes());
    a.push(0);
    a.extend_from_slice(purpose.as_bytes());
    a
}

fn wrap_cipher(root: &RootKey) -> Aes256Gcm {
    let k = root.derive(LABEL_KEY_WRAPPING);
    Aes256Gcm::new((&*k).into())
}

fn check_name(name: &str) -> Result<(), CryptoError> {
    if name.as_bytes().contains(&0) {
        return Err(CryptoError::InvalidInput(
            "key name must not contain NUL".into(),
        ));
    }
    Ok(())
}

/// Wraps (encrypts) a data key under the root key, bound to its name,
/// version and purpose. Fails only if the random generator fails or the
/// name contains NUL.
pub fn try_wrap_data_key(
    root: &RootKey,
    name: &str,
    version: u32,
    purpose: &str,
    dk: &[u8; 32],
) -> Result<Vec<u8>, CryptoError> {
    check_name(name)?;
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut nonce).map_err(CryptoError::random)?;
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.push(WRAP_FORMAT_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(dk);
    let tag = wrap_cipher(root)
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &wrap_aad(name, version, purpose),
            &mut out[13..],
        )
        .expect("32-byte plaintext is within AES-GCM limits");
    out.extend_from_slice(&tag);
    Ok(out)
}

/// [`try_wrap_data_key`] that panics on failure (random generator failure or
/// a NUL in the name, which PostgreSQL text cannot contain).
pub fn wrap_data_key(
    root: &RootKey,
    name: &str,
    version: u32,
    purpose: &str,
    dk: &[u8; 32],
) -> Vec<u8> {
    match try_wrap_data_key(root, name, version, purpose, dk) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Unwraps a data key; fails with [`CryptoError::UnwrapFailed`] for a wrong
/// root key, name, version or purpose or altered bytes. Never panics.
pub fn unwrap_data_key(
    root: &RootKey,
    name: &str,
    version: u32,
    purpose: &str,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    check_name(name)?;
    if wrapped.len() != WRAPPED_LEN {
        return Err(CryptoError::WrappedKeyMalformed(format!(
            "{} bytes, expected {WRAPPED_LEN}",
            wrapped.len()
        )));
    }
    if wrapped[0] != WRAP_FORMAT_VERSION {
        return Err(CryptoError::UnsupportedWrapVersion(wrapped[0]));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&wrapped[13..45]);
    wrap_cipher(root)
        .decrypt_in_place_detached(
            Nonce::from_slice(&wrapped[1..13]),
            &wrap_aad(name, version, purpose),
            &mut key[..],
            Tag::from_slice(&wrapped[45..]),
        )
        .map_err(|_| CryptoError::UnwrapFailed {
            name: name.to_string(),
            version,
            purpose: purpose.to_string(),
        })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let mut r = [0u8; 8];
            getrandom::getrandom(&mut r).unwrap();
            let p = std::env::temp_dir().join(format!("tg-rootkey-{tag}-{}", hex::encode(r)));
            std::fs::create_dir(&p).unwrap();
            TempDir(p)
        }
        fn file(&self, name: &str, content: &[u8], mode: u32) -> PathBuf {
            let p = self.0.join(name);
            let mut f = std::fs::File::create(&p).unwrap();
            f.write_all(content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixed() -> RootKey {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        RootKey::from_bytes(&b)
    }

    #[test]
    fn fingerprint_is_stable() {
        // Literal: changing it breaks every deployed key table.
        assert_eq!(
            fixed().fingerprint(),
            "tgk1:21f8a86b5889ffbdb43e0987d2d1184e"
        );
        assert_eq!(RootKey::from_bytes(&[0; 32]).fingerprint().len(), 5 + 32);
        assert_ne!(
            fixed().fingerprint(),
            RootKey::from_bytes(&[0; 32]).fingerprint()
        );
        assert_eq!(fingerprint_of(&fixed()), fixed().fingerprint());
        assert!(fingerprints_match(" TGK1:ABCD\n", "tgk1:abcd"));
    }

    #[test]
    fn derive_is_stable_and_label_separated() {
        let r = fixed();
        assert_eq!(
            hex::encode(*r.derive("audit-hmac")),
            "c6bae1f717d5b3067c24e11c113497599b2b8c59105855dfc10f781db747a35a"
        );
        assert_ne!(
            *r.derive(LABEL_AUDIT_HMAC),
            *r.derive(LABEL_FILE_ENCRYPTION)
        );
        assert_ne!(
            *r.derive(LABEL_KEY_WRAPPING),
            *r.derive(LABEL_FILE_ENCRYPTION)
        );
    }

    #[test]
    fn debug_hides_key() {
        let d = format!("{:?}", fixed());
        assert!(d.starts_with("RootKey(tgk1:"));
        assert!(!d.contains("000102"));
    }

    #[test]
    fn load_hex_and_base64_forms() {
        let t = TempDir::new("forms");
        let r = fixed();
        let hexs = hex::encode(r.bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(r.bytes);
        let b64np = base64::engine::general_purpose::STANDARD_NO_PAD.encode(r.bytes);
        assert_eq!((b64.len(), b64np.len()), (44, 43));
        for (i, c) in [
            format!("{hexs}\n"),
            hexs.to_uppercase(),
            format!("  {b64}\n\n"),
            b64np.clone(),
        ]
        .iter()
        .enumerate()
        {
            let p = t.file(&format!("k{i}"), c.as_bytes(), 0o600);
            assert_eq!(
                RootKey::load(&p).unwrap().fingerprint(),
                r.fingerprint(),
                "form {i}"
            );
        }
        let p = t.file("ro", format!("{hexs}\n").as_bytes(), 0o400);
        assert!(RootKey::load(&p).is_ok());
        // Symlink to a good file is allowed.
        let link = t.0.join("link");
        std::os::unix::fs::symlink(t.0.join("ro"), &link).unwrap();
        assert!(RootKey::load(&link).is_ok());
    }

    #[test]
    fn load_refusals() {
        let t = TempDir::new("refuse");
        let hexs = hex::encode(fixed().bytes);
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606] {
            let p = t.file(&format!("m{mode:o}"), hexs.as_bytes(), mode);
            let e = RootKey::load(&p).unwrap_err();
            assert!(
                matches!(e, CryptoError::RootKeyPermissions { mode: m, .. } if m == mode),
                "{e}"
            );
            assert!(e
                .to_string()
                .contains(&format!("chmod 600 {}", p.display())));
        }
        // Symlink to a badly protected file: the target's mode is checked.
        let link = t.0.join("link644");
        std::os::unix::fs::symlink(t.0.join("m644"), &link).unwrap();
        assert!(matches!(
            RootKey::load(&link),
            Err(CryptoError::RootKeyPermissions { .. })
        ));

        let bad: [(&str, &[u8]); 11] = [
            ("zeros", &[b'0'; 64]),
            ("repeated", &[b'a'; 64]),
            ("zeros64", b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ("short", b"00112233"),
            ("empty", b"\n"),
            ("hex63", &[b'a'; 63]),
            ("nothex", &[b'z'; 64]),
            ("b64bad", &[b'*'; 44]),
            ("hex33", &[b'a'; 66]),
            ("binary", &[0xff; 32]),
            ("b64short", b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="),
        ];
        for (name, content) in bad {
            let p = t.file(name, content, 0o600);
            let e = RootKey::load(&p).unwrap_err();
            assert!(
                matches!(e, CryptoError::RootKeyFormat { .. }),
                "{name}: {e}"
            );
            assert!(e.to_string().contains("tradeguard-keytool generate"));
            assert!(!e.to_string().contains("aaaa") && !e.to_string().contains("zzzz"));
        }
        // A FIFO is refused at once (opening it must not wait for a writer).
        let fifo = t.0.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            RootKey::load(&fifo),
            Err(CryptoError::RootKeyNotRegularFile { .. })
        ));
        let big = t.file("big", &vec![b'a'; 5000], 0o600);
        assert!(matches!(
            RootKey::load(&big),
            Err(CryptoError::RootKeyFormat { .. })
        ));

        assert!(matches!(
            RootKey::load(&t.0.join("nope")),
            Err(CryptoError::RootKeyMissing { .. })
        ));
        assert!(matches!(
            RootKey::load(&t.0),
            Err(CryptoError::RootKeyNotRegularFile { .. })
        ));
        // Owner check: only testable as root (chown to nobody); skipped otherwise.
        let p = t.file("owner", hexs.as_bytes(), 0o600);
        if process_uid().unwrap() == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            let e = RootKey::load(&p).unwrap_err();
            assert!(
                matches!(
                    e,
                    CryptoError::RootKeyOwner {
                        owner: 65534,
                        euid: 0,
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("chown"));
        }
    }

    #[test]
    fn wrap_unwrap() {
        let r = fixed();
        let dk = [0x5a; 32];
        let w = wrap_data_key(&r, "customers", 3, "encrypt", &dk);
        assert_eq!(w.len(), WRAPPED_LEN);
        assert_eq!(w[0], 1);
        assert_eq!(
            *unwrap_data_key(&r, "customers", 3, "encrypt", &w).unwrap(),
            dk
        );
        assert_ne!(w, wrap_data_key(&r, "customers", 3, "encrypt", &dk));
        for (n, v, p) in [
            ("customer", 3, "encrypt"),
            ("customers", 4, "encrypt"),
            ("customers", 3, "blind_index"),
        ] {
            let e = unwrap_data_key(&r, n, v, p, &w).unwrap_err();
            assert!(matches!(e, CryptoError::UnwrapFailed { .. }), "{e}");
        }
        let other = RootKey::from_bytes(&[1; 32]);
        assert!(matches!(
            unwrap_data_key(&other, "customers", 3, "encrypt", &w),
            Err(CryptoError::UnwrapFailed { .. })
        ));
        for i in 0..w.len() {
            let mut t = w.clone();
            t[i] ^= 0x01;
            assert!(unwrap_data_key(&r, "customers", 3, "encrypt", &t).is_err());
        }
        assert!(matches!(
            unwrap_data_key(&r, "customers", 3, "encrypt", &w[..60]),
            Err(CryptoError::WrappedKeyMalformed(_))
        ));
        let mut t = w.clone();
        t[0] = 2;
        assert!(matches!(
            unwrap_data_key(&r, "customers", 3, "encrypt", &t),
            Err(CryptoError::UnsupportedWrapVersion(2))
        ));
        assert!(try_wrap_data_key(&r, "a\0b", 1, "encrypt", &dk).is_err());
    }
}
