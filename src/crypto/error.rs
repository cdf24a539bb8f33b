//! Errors of the tradeguard crypto core.
//!
//! Every message is safe to show to a database user or write to a log: no
//! message contains key material, plaintext, ciphertext bytes or the content
//! of a key file. Messages that concern a key file say how to fix it.

use super::envelope::ValueType;

/// Coarse categories the SQL layer maps to SQLSTATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoErrorKind {
    /// The caller passed an invalid argument (bad option name, wrong
    /// decrypt function for the stored type, oversized input, ...).
    InvalidInput,
    /// The bytes given are not (or no longer) a well-formed tradeguard
    /// ciphertext / file / wrapped key, or a decrypted plaintext does not
    /// decode as its declared type.
    DataCorrupted,
    /// Authenticated decryption failed: wrong key, wrong context, wrong root
    /// key or altered data. Deliberately not more specific.
    AuthFailed,
    /// The root key file is missing, unreadable, badly protected or malformed.
    KeyFile,
    /// Operating-system failure (random number generator, I/O).
    Internal,
    /// A key name, key id or key version that does not exist.
    KeyNotFound,
    /// The key exists but may not be used this way now (retired, wrong purpose, frozen,
    /// wrapped by another root key, not configured).
    KeyState,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    // ---- envelope header -------------------------------------------------
    #[error("ciphertext too short: {len} bytes, a tradeguard ciphertext has at least {min} bytes")]
    TooShort { len: usize, min: usize },
    #[error("not tradeguard ciphertext (bad magic bytes)")]
    BadMagic,
    #[error("unsupported tradeguard ciphertext format version {0} (this build reads version 1); upgrade tradeguard")]
    UnsupportedVersion(u8),
    #[error("unsupported encryption algorithm {0} in tradeguard ciphertext (this build supports 1 = AES-256-GCM)")]
    UnsupportedAlgorithm(u8),
    #[error("unknown value type {0} in tradeguard ciphertext header")]
    UnknownValueType(u8),
    #[error("reserved flags 0x{0:02x} set in tradeguard ciphertext header (corrupt, or written by a newer version)")]
    ReservedFlags(u8),

    // ---- authenticated decryption ----------------------------------------
    #[error("authentication failed: wrong context, wrong key or altered ciphertext")]
    AuthFailed,

    // ---- typed values ----------------------------------------------------
    #[error("value was encrypted as {} but decrypted as {}; use tradeguard.decrypt_{}()", .stored.name(), .requested.name(), .stored.sql_suffix())]
    WrongType {
        stored: ValueType,
        requested: ValueType,
    },
    #[error("decrypted plaintext is corrupt: {0}")]
    CorruptPlaintext(&'static str),
    #[error("unknown value type name \"{0}\"; expected one of text, bytea, numeric, bigint, double precision, timestamptz, jsonb")]
    UnknownValueTypeName(String),

    // ---- armor (text form) -----------------------------------------------
    #[error("not armored tradeguard ciphertext: armored values start with \"tg1:\"")]
    NotArmored,
    #[error("armored tradeguard ciphertext is not valid unpadded standard base64 after \"tg1:\"")]
    BadArmor,

    // ---- root key file ---------------------------------------------------
    #[error(
        "root key file {path} does not exist; create one with: tradeguard-keytool generate {path}"
    )]
    RootKeyMissing { path: String },
    #[error("cannot read root key file {path}: {reason}; check that the file and its directories are readable by the server's operating-system user")]
    RootKeyUnreadable { path: String, reason: String },
    #[error(
        "root key path {path} is not a regular file; point the setting at the key file itself"
    )]
    RootKeyNotRegularFile { path: String },
    #[error("root key file {path} has mode {mode:04o}, readable or writable by group or others; run: chmod 600 {path}")]
    RootKeyPermissions { path: String, mode: u32 },
    #[error("root key file {path} is owned by uid {owner} but this process runs as uid {euid}; run: chown <server os user> {path} (as root)")]
    RootKeyOwner { path: String, owner: u32, euid: u32 },
    #[error("cannot determine this process's uid from /proc/self: {0}")]
    ProcessUid(String),
    #[error("root key file {path} is malformed ({detail}); it must contain exactly 32 bytes written as 64 hex characters or as base64 (44 characters with padding, 43 without); create a new one with: tradeguard-keytool generate <path>")]
    RootKeyFormat { path: String, detail: String },

    // ---- key material / wrapping -----------------------------------------
    #[error("key material must be exactly 32 bytes, got {0}")]
    InvalidKeyLength(usize),
    #[error("wrapped data key is malformed: {0}")]
    WrappedKeyMalformed(String),
    #[error("unsupported wrapped data key format version {0}")]
    UnsupportedWrapVersion(u8),
    #[error("cannot unwrap data key \"{name}\" version {version} (purpose {purpose}): the server's root key is not the one that wrapped it, or the wrapped key was altered or belongs to another key name, version or purpose")]
    UnwrapFailed {
        name: String,
        version: u32,
        purpose: String,
    },

    // ---- blind index -----------------------------------------------------
    #[error("unknown blind index normalization \"{0}\"; expected one of none, trim_lower, digits, email")]
    UnknownNormalize(String),

    // ---- encrypted files -------------------------------------------------
    #[error("not a tradeguard encrypted file (missing TGF1 magic)")]
    NotEncryptedFile,
    #[error(
        "file too large for tradeguard file encryption: {size} bytes, the limit is {max} bytes"
    )]
    FileTooLarge { size: u64, max: u64 },

    // ---- generic -----------------------------------------------------------
    #[error("invalid argument: {0}")]
    InvalidInput(String),
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
    #[error("operating system random number generator failed: {0}")]
    Random(String),

    // ---- key store (SQL layer) --------------------------------------------
    #[error("no root key configured: tradeguard.root_key_file is not set")]
    RootKeyNotConfigured,
    #[error("root key mismatch: data keys were wrapped with root key {stored}, the server has {current}")]
    RootKeyMismatch { stored: String, current: String },
    #[error("unknown key \"{0}\"")]
    UnknownKey(String),
    #[error("unknown key id {key_id} version {version}: the key was dropped or this value comes from another database")]
    UnknownKeyVersion { key_id: u32, version: u32 },
    #[error("key \"{name}\" version {version} is retired and no longer decrypts")]
    KeyRetired { name: String, version: u32 },
    #[error("key \"{name}\" has purpose {purpose}, this operation needs a {needed} key")]
    WrongPurpose { name: String, purpose: &'static str, needed: &'static str },
    #[error("key \"{0}\" already exists")]
    KeyExists(String),
    #[error("invalid key name \"{0}\": use 1-63 characters a-z, 0-9, _, . or -, starting with a letter")]
    InvalidKeyName(String),
    #[error("key \"{name}\" has no version {version}")]
    NoSuchVersion { name: String, version: u32 },
    #[error("key \"{name}\" version {version} is the active version; rotate the key before retiring it")]
    RetireActive { name: String, version: u32 },
    #[error("key \"{name}\" version {version} still encrypts {rows} value(s) of column {column}; retiring it would leave them undecryptable")]
    VersionInUse { name: String, version: u32, column: String, rows: i64 },
    #[error("decryption is frozen by an incident response; only tradeguard_admin members may decrypt")]
    DecryptionFrozen,
    #[error("cannot convert the rows of {table}: {what}; the planner runs that code with the rights of whoever plans a query on the table, and tradeguard picks the rows to convert as the extension owner")]
    OwnerCodeInPlanning { table: String, what: String },
    #[error("{0} has tradeguard's encrypt trigger but no encrypted column is registered for it or a table it is a partition of; the row was not written")]
    NotConfigured(String),
}

impl CryptoError {
    /// The category of this error, for mapping to a SQLSTATE.
    pub fn kind(&self) -> CryptoErrorKind {
        use CryptoError::*;
        use CryptoErrorKind as K;
        match self {
            TooShort { .. }
            | BadMagic
            | UnsupportedVersion(_)
            | UnsupportedAlgorithm(_)
            | UnknownValueType(_)
            | ReservedFlags(_)
            | CorruptPlaintext(_)
            | NotArmored
            | BadArmor
            | WrappedKeyMalformed(_)
            | UnsupportedWrapVersion(_)
            | NotEncryptedFile => K::DataCorrupted,
            AuthFailed | UnwrapFailed { .. } => K::AuthFailed,
            WrongType { .. }
            | UnknownValueTypeName(_)
            | InvalidKeyLength(_)
            | UnknownNormalize(_)
            | FileTooLarge { .. }
            | InvalidInput(_) => K::InvalidInput,
            RootKeyMissing { .. }
            | RootKeyUnreadable { .. }
            | RootKeyNotRegularFile { .. }
            | RootKeyPermissions { .. }
            | RootKeyOwner { .. }
            | ProcessUid(_)
            | RootKeyFormat { .. } => K::KeyFile,
            Io { .. } | Random(_) => K::Internal,
            UnknownKey(_) | UnknownKeyVersion { .. } | NoSuchVersion { .. } => K::KeyNotFound,
            RootKeyNotConfigured
            | RootKeyMismatch { .. }
            | KeyRetired { .. }
            | WrongPurpose { .. }
            | RetireActive { .. }
            | VersionInUse { .. }
            | OwnerCodeInPlanning { .. }
            | DecryptionFrozen
            | NotConfigured(_) => K::KeyState,
            KeyExists(_) | InvalidKeyName(_) => K::InvalidInput,
        }
    }

    /// What to do about it, where there is something to do.
    pub fn hint(&self) -> Option<&'static str> {
        use CryptoError::*;
        match self {
            RootKeyNotConfigured => Some("set tradeguard.root_key_file in postgresql.conf to a key made by `tradeguard-keytool generate`, then reload"),
            RootKeyMismatch { .. } => Some("point tradeguard.root_key_file at the root key these data keys were created with (check it with `tradeguard-keytool check <file> <fingerprint>`)"),
            RootKeyPermissions { .. } | RootKeyOwner { .. } => Some("the key file must be owned by the server's OS user and have mode 0600 or 0400"),
            WrongType { .. } => Some("use the decrypt function of the type the value was encrypted as"),
            AuthFailed => Some("check the context argument: it must be the same as at encryption"),
            KeyRetired { .. } => Some("re-encrypt values with tradeguard.reencrypt_column() before retiring a key version"),
            UnknownKey(_) => Some("create it with tradeguard.create_key(name)"),
            VersionInUse { .. } => Some("move the column to the active version with tradeguard.reencrypt_column() first, or call retire_key(name, version, true) to retire it anyway"),
            OwnerCodeInPlanning { .. } => Some("drop that index or statistics object for the conversion and create it again afterwards, or have a superuser own the function"),
            NotConfigured(_) => Some("run tradeguard.encrypt_column() for the table (or its partitioned parent) again, or drop the trigger tradeguard_zz_encrypt with break-glass"),
            _ => None,
        }
    }

    pub(super) fn random(e: getrandom::Error) -> CryptoError {
        CryptoError::Random(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_clear() {
        let e = CryptoError::WrongType {
            stored: ValueType::Numeric,
            requested: ValueType::Text,
        };
        assert_eq!(
            e.to_string(),
            "value was encrypted as numeric but decrypted as text; use tradeguard.decrypt_numeric()"
        );
        assert_eq!(e.kind(), CryptoErrorKind::InvalidInput);
        let e = CryptoError::RootKeyPermissions {
            path: "/k".into(),
            mode: 0o644,
        };
        assert_eq!(
            e.to_string(),
            "root key file /k has mode 0644, readable or writable by group or others; run: chmod 600 /k"
        );
        assert_eq!(e.kind(), CryptoErrorKind::KeyFile);
        assert_eq!(CryptoError::AuthFailed.kind(), CryptoErrorKind::AuthFailed);
    }
}
