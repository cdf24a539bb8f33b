//! Errors of the audit-trail capability (mapped to SQLSTATE in `crate::error`).

use pgrx::PgSqlErrorCode as C;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("audit rows are written only by tradeguard; {0}")]
    ProtectedTable(String),
    #[error("cannot change {what}: protected by tradeguard; a tradeguard_admin member must call tradeguard.break_glass(reason) first")]
    Protected { what: String },
    #[error("trigger {trigger} on {table} may not call tradeguard.audit_trigger(): only the triggers tradeguard.audit_table() creates call it (AFTER ... FOR EACH ROW tradeguard_audit_row, AFTER TRUNCATE tradeguard_audit_truncate)")]
    ForeignTrigger { trigger: String, table: String },
    #[error("trigger {trigger} on {table} calls tradeguard.audit_trigger(), but tradeguard.audit_table() did not set up {table} (or its registration is gone); nothing was written")]
    NotSetUp { trigger: String, table: String },
    #[error("{0} is not audited by tradeguard")]
    NotAudited(String),
    #[error("the audit trail needs the root key to sign rows: {0}")]
    NoKey(String),
    #[error("no block {0} in the audit chain")]
    NoSuchBlock(i64),
    #[error("seal: {0}; nothing was sealed")]
    SealConflict(String),
    #[error("tradeguard.seal() runs in a READ COMMITTED transaction (a REPEATABLE READ or SERIALIZABLE snapshot could miss a block sealed meanwhile)")]
    SealIsolation,
    #[error("block {block} was sealed {age} ago, less than tradeguard.archive_min_age ({min}): only older blocks can be archived")]
    TooRecent { block: i64, age: String, min: String },
}

impl AuditError {
    pub fn sqlstate(&self) -> C {
        match self {
            Self::InvalidArgument(_) => C::ERRCODE_INVALID_PARAMETER_VALUE,
            Self::ProtectedTable(_) | Self::Protected { .. } | Self::ForeignTrigger { .. } | Self::NotSetUp { .. } => C::ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::NotAudited(_) | Self::NoSuchBlock(_) => C::ERRCODE_UNDEFINED_OBJECT,
            Self::NoKey(_) => C::ERRCODE_CONFIG_FILE_ERROR,
            Self::SealConflict(_) => C::ERRCODE_INTERNAL_ERROR,
            Self::TooRecent { .. } | Self::SealIsolation => C::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoKey(_) => Some("set tradeguard.root_key_file (see tradeguard-keytool generate)".into()),
            _ => None,
        }
    }
}
