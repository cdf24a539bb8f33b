//! Encrypted files (configuration files, backups) written by
//! `tradeguard-keytool encrypt-file`.
//!
//! ```text
//! "TGF1" (4 bytes) || envelope
//! ```
//!
//! where the envelope is the format of envelope.rs with key id 0, key
//! version 0, value type bytea, context `"file"`, sealed with the data key
//! `root.derive("file-encryption")`. The whole file is processed in memory;
//! plaintexts are limited to [`MAX_FILE_LEN`] (1 GiB).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::envelope::{self, DataKey, ValueType, MIN_ENVELOPE_LEN};
use super::error::CryptoError;
use super::rootkey::{RootKey, LABEL_FILE_ENCRYPTION};

pub const FILE_MAGIC: [u8; 4] = *b"TGF1";
pub const FILE_CONTEXT: &[u8] = b"file";
/// Largest plaintext accepted: 1 GiB.
pub const MAX_FILE_LEN: u64 = 1 << 30;
/// Largest encrypted file accepted.
pub const MAX_ENCRYPTED_FILE_LEN: u64 = MAX_FILE_LEN + (FILE_MAGIC.len() + MIN_ENVELOPE_LEN) as u64;

fn file_key(root: &RootKey) -> DataKey {
    DataKey::from_bytes(&root.derive(LABEL_FILE_ENCRYPTION))
}

/// Whether `data` starts with the encrypted-file magic.
pub fn is_encrypted_file(data: &[u8]) -> bool {
    data.starts_with(&FILE_MAGIC)
}

pub fn encrypt_bytes(root: &RootKey, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if plaintext.len() as u64 > MAX_FILE_LEN {
        return Err(CryptoError::FileTooLarge {
            size: plaintext.len() as u64,
            max: MAX_FILE_LEN,
        });
    }
    let env = envelope::try_seal(
        &file_key(root),
        0,
        0,
        ValueType::Bytea,
        plaintext,
        FILE_CONTEXT,
    )?;
    let mut out = Vec::with_capacity(FILE_MAGIC.len() + env.len());
    out.extend_from_slice(&FILE_MAGIC);
    out.extend_from_slice(&env);
    Ok(out)
}

pub fn decrypt_bytes(root: &RootKey, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if !is_encrypted_file(data) {
        return Err(CryptoError::NotEncryptedFile);
    }
    if data.len() as u64 > MAX_ENCRYPTED_FILE_LEN {
        return Err(CryptoError::FileTooLarge {
            size: data.len() as u64,
            max: MAX_ENCRYPTED_FILE_LEN,
        });
    }
    let env = &data[FILE_MAGIC.len()..];
    let h = envelope::parse_header(env)?;
    if h.key_id != 0 || h.key_version != 0 || h.value_type != ValueType::Bytea {
        return Err(CryptoError::NotEncryptedFile);
    }
    envelope::open(&file_key(root), env, FILE_CONTEXT)
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> CryptoError {
    move |e| CryptoError::Io {
        what,
        reason: e.to_string(),
    }
}

/// Reads a whole file (`-` = standard input), refusing more than `limit` bytes.
pub fn read_input(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut buf = Zeroizing::new(Vec::new());
    let name = path.display().to_string();
    let mut reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(io_err(format!("cannot open {name}")))?)
    };
    reader
        .by_ref()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(format!("cannot read {name}")))?;
    if buf.len() as u64 > limit {
        return Err(CryptoError::FileTooLarge {
            size: buf.len() as u64,
            max: limit,
        });
    }
    Ok(buf)
}

/// Writes `data` to `path` (`-` = standard output) with mode 0600, through a
/// temporary file in the same directory, so readers never see a partial file.
/// Refuses to replace an existing file unless `force`.
pub fn write_output_private(path: &Path, data: &[u8], force: bool) -> Result<(), CryptoError> {
    let name = path.display().to_string();
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(data)
            .and_then(|_| out.flush())
            .map_err(io_err("cannot write to standard output".into()));
    }
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(CryptoError::InvalidInput(format!(
            "{name} already exists (use --force to replace it)"
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| CryptoError::InvalidInput(format!("{name} is not a file path")))?;
    let mut r = [0u8; 6];
    getrandom::getrandom(&mut r).map_err(CryptoError::random)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        hex::encode(r)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(format!("cannot create {}", tmp.display())))?;
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(io_err(format!("cannot write {}", tmp.display())))?;
        drop(f);
        if force {
            std::fs::rename(&tmp, path).map_err(io_err(format!("cannot replace {name}")))?;
        } else {
            // hard_link never replaces an existing file: no race with the check above.
            std::fs::hard_link(&tmp, path).map_err(io_err(format!("cannot create {name}")))?;
            let _ = std::fs::remove_file(&tmp);
        }
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_and_failures() {
        let root = RootKey::from_bytes(&[9; 32]);
        for pt in [&b""[..], b"listen_addresses = '*'\n", &[0u8; 10_000]] {
            let enc = encrypt_bytes(&root, pt).unwrap();
            assert!(enc.starts_with(b"TGF1TG"));
            assert_eq!(enc.len(), 4 + 42 + pt.len());
            assert_eq!(&decrypt_bytes(&root, &enc).unwrap()[..], pt);
        }
        let enc = encrypt_bytes(&root, b"secret").unwrap();
        assert!(matches!(
            decrypt_bytes(&RootKey::from_bytes(&[8; 32]), &enc),
            Err(CryptoError::AuthFailed)
        ));
        assert!(matches!(
            decrypt_bytes(&root, b"plain text"),
            Err(CryptoError::NotEncryptedFile)
        ));
        assert!(matches!(
            decrypt_bytes(&root, b"TGF1"),
            Err(CryptoError::TooShort { .. })
        ));
        let mut t = enc.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(decrypt_bytes(&root, &t).is_err());
        // A value envelope sealed with the same derived key but a column's
        // key id is not accepted as a file.
        let env = envelope::seal(&file_key(&root), 5, 0, ValueType::Bytea, b"x", FILE_CONTEXT);
        let mut f = FILE_MAGIC.to_vec();
        f.extend_from_slice(&env);
        assert!(matches!(
            decrypt_bytes(&root, &f),
            Err(CryptoError::NotEncryptedFile)
        ));
    }

    #[test]
    fn private_output() {
        let mut r = [0u8; 6];
        getrandom::getrandom(&mut r).unwrap();
        let dir = std::env::temp_dir().join(format!("tg-filefmt-{}", hex::encode(r)));
        std::fs::create_dir(&dir).unwrap();
        let p = dir.join("out.enc");
        write_output_private(&p, b"one", false).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_output_private(&p, b"two", false).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_output_private(&p, b"two", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary file left behind"
        );
        assert_eq!(&read_input(&p, 3).unwrap()[..], b"two");
        assert!(matches!(
            read_input(&p, 2),
            Err(CryptoError::FileTooLarge { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
