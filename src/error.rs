//! One error type per capability, mapped to SQLSTATE codes here and only here.
//!
//! Messages never contain key bytes or plaintext: each capability's enum is built so that the
//! values it carries are names, sizes, ids and fingerprints.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode as C};

use crate::audit::error::AuditError;
use crate::crypto::error::{CryptoError, CryptoErrorKind};
use crate::ids::error::IdsError;
use crate::selfaudit::error::SelfAuditError;

/// Errors of the shared infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{feature} needs tradeguard in shared_preload_libraries")]
    NotPreloaded { feature: &'static str },
    #[error("the tradeguard extension is not installed in this database")]
    NotInstalled,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("internal query failed: {0}")]
    Spi(String),
    #[error("{0}")]
    CannotPrepare(&'static str),
}

impl From<pgrx::spi::Error> for CoreError {
    fn from(e: pgrx::spi::Error) -> Self {
        CoreError::Spi(e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TgError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    SelfAudit(#[from] SelfAuditError),
    #[error(transparent)]
    Ids(#[from] IdsError),
}

impl From<pgrx::spi::Error> for TgError {
    fn from(e: pgrx::spi::Error) -> Self {
        TgError::Core(e.into())
    }
}

pub type TgResult<T> = Result<T, TgError>;

impl TgError {
    /// The SQLSTATE of every tradeguard error.
    pub fn sqlstate(&self) -> C {
        match self {
            TgError::Core(e) => match e {
                CoreError::NotPreloaded { .. } => C::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                CoreError::NotInstalled => C::ERRCODE_UNDEFINED_OBJECT,
                CoreError::InvalidArgument(_) => C::ERRCODE_INVALID_PARAMETER_VALUE,
                CoreError::PermissionDenied(_) => C::ERRCODE_INSUFFICIENT_PRIVILEGE,
                CoreError::Spi(_) => C::ERRCODE_INTERNAL_ERROR,
                CoreError::CannotPrepare(_) => C::ERRCODE_FEATURE_NOT_SUPPORTED,
            },
            TgError::Crypto(e) => match e.kind() {
                CryptoErrorKind::InvalidInput => C::ERRCODE_INVALID_PARAMETER_VALUE,
                CryptoErrorKind::DataCorrupted => C::ERRCODE_DATA_CORRUPTED,
                CryptoErrorKind::AuthFailed => C::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                CryptoErrorKind::KeyFile => C::ERRCODE_CONFIG_FILE_ERROR,
                CryptoErrorKind::Internal => C::ERRCODE_INTERNAL_ERROR,
                CryptoErrorKind::KeyNotFound => C::ERRCODE_UNDEFINED_OBJECT,
                CryptoErrorKind::KeyState => C::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            },
            TgError::Audit(e) => e.sqlstate(),
            TgError::SelfAudit(e) => e.sqlstate(),
            TgError::Ids(e) => e.sqlstate(),
        }
    }

    /// What the user should do about it, where we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            TgError::Core(CoreError::NotPreloaded { .. }) => Some(
                "add 'tradeguard' to shared_preload_libraries in postgresql.conf \
                 (ALTER SYSTEM SET shared_preload_libraries = 'tradeguard') and restart the server"
                    .into(),
            ),
            TgError::Crypto(e) => e.hint().map(str::to_owned),
            TgError::Audit(e) => e.hint(),
            TgError::Ids(e) => e.hint(),
            _ => None,
        }
    }

    /// Raises this error as a PostgreSQL ERROR; never returns.
    pub fn raise(self) -> ! {
        let message = hide_root_key_path(format!("tradeguard: {self}"));
        let hint = self.hint().map(hide_root_key_path);
        let mut report = ErrorReport::new(self.sqlstate(), message, "tradeguard");
        if let Some(h) = hint {
            report = report.set_hint(h);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// `text` with the root key file's path replaced by the setting's name, unless the role the
/// session acts as is a superuser: the path is a superuser's setting, and a role that is not one
/// is told which setting, not where the key lives. The outer role, not the current user: inside
/// tradeguard's SECURITY DEFINER functions (a self-audit check that calls verify()) the current
/// user is the extension's owner.
pub fn hide_root_key_path(text: String) -> String {
    match crate::gucs::root_key_file().filter(|p| text.contains(p.as_str())) {
        Some(path) if !unsafe { pgrx::pg_sys::superuser_arg(pgrx::pg_sys::GetOuterUserId()) } => {
            text.replace(&path, "<tradeguard.root_key_file>")
        }
        _ => text,
    }
}

/// `result.or_raise()`: unwraps or raises the error with its SQLSTATE.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<TgError>> OrRaise<T> for Result<T, E> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.into().raise(),
        }
    }
}
