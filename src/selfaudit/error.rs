//! Errors of the self-audit capability (mapped to SQLSTATE in `crate::error`).

use pgrx::PgSqlErrorCode as C;

#[derive(Debug, thiserror::Error)]
pub enum SelfAuditError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cannot read certificate {path}: {why}")]
    Certificate { path: String, why: String },
}

impl SelfAuditError {
    pub fn sqlstate(&self) -> C {
        match self {
            Self::InvalidArgument(_) => C::ERRCODE_INVALID_PARAMETER_VALUE,
            Self::Certificate { .. } => C::ERRCODE_CONFIG_FILE_ERROR,
        }
    }

    pub fn hint(&self) -> Option<String> {
        None
    }
}
