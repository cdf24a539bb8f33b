//! Errors of the intrusion-detection capability (mapped to SQLSTATE in `crate::error`).

use pgrx::PgSqlErrorCode as C;

#[derive(Debug, thiserror::Error)]
pub enum IdsError {
    #[error("unknown input context \"{0}\"; expected auto, identifier, free_text, url or path")]
    UnknownContext(String),
    #[error("unknown guard action \"{0}\"; expected reject or log")]
    UnknownAction(String),
    #[error("column \"{column}\" does not exist in {table} or is not a text column")]
    NotTextColumn { table: String, column: String },
    /// Raised by guard triggers: names the column and the classes, never the value.
    #[error("possible {classes} attack in column \"{column}\" of {table} rejected (rules: {rules})")]
    Rejected { table: String, column: String, classes: String, rules: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl IdsError {
    pub fn sqlstate(&self) -> C {
        match self {
            Self::Rejected { .. } => C::ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::NotTextColumn { .. } => C::ERRCODE_UNDEFINED_COLUMN,
            _ => C::ERRCODE_INVALID_PARAMETER_VALUE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Rejected { .. } => Some(
                "the value was rejected by tradeguard.guard_columns(); see tradeguard.check_input() for the verdict".into(),
            ),
            _ => None,
        }
    }
}
