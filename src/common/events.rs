//! The security event stream (`tradeguard_audit.security_events`), shared by every capability.

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::error::TgResult;

/// Records a security event in the current transaction and writes it to the server log as one
/// WARNING line with the stable prefix `tradeguard:` for log shippers (so that an event whose
/// transaction is rolled back still leaves a trace).
pub fn record(kind: &str, severity: &str, detail: &serde_json::Value) -> TgResult<()> {
    // Preloaded: through shared memory, so the event survives a rolled-back transaction
    // (a rejected injection rolls back the very statement that raised it).
    let addr = client_addr();
    let role = unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), true);
        if name.is_null() { String::new() } else { std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned() }
    };
    if super::security::push(super::security::security_event(kind, severity, addr.as_deref(), &role, &detail.to_string())) {
        return Ok(());
    }
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

/// The client's address as text, when connected over TCP.
fn client_addr() -> Option<String> {
    unsafe {
        let port = pg_sys::libpq::be::MyProcPort;
        if port.is_null() || (*port).remote_host.is_null() {
            return None;
        }
        let s = std::ffi::CStr::from_ptr((*port).remote_host).to_string_lossy().into_owned();
        s.parse::<std::net::IpAddr>().is_ok().then_some(s)
    }
}
