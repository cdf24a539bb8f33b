//! The security event stream (`tradeguard_audit.security_events`), shared by every capability.

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::error::TgResult;

/// Records a security event in the current transaction and writes it to the server log as one
/// WARNING line with the stable prefix `tradeguard:` for log shippers (so that an event whose
/// transaction is rolled back still leaves a trace).
pub fn record(kind: &str, severity: &str, detail: &serde_json::Value) -> TgResult<()> {
    pgrx::warning!("tradeguard: security event {kind} severity={severity} {detail}");
    super::as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tradeguard_audit.security_events (event_type, severity, source, role_name, detail)
             VALUES ($1, $2, pg_catalog.inet_client_addr(), SESSION_USER, $3)",
            &[kind.into(), severity.into(), JsonB(detail.clone()).into()],
        )
    })??;
    Ok(())
}
