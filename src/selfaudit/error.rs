//! Errors of the selfaudit capability (mapped to SQLSTATE in `crate::error`).

use pgrx::PgSqlErrorCode as C;

#[derive(Debug, thiserror::Error)]
pub enum SelfAuditError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl SelfAuditError {
    pub fn sqlstate(&self) -> C {
        match self {
            Self::InvalidArgument(_) => C::ERRCODE_INVALID_PARAMETER_VALUE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        None
    }
}
