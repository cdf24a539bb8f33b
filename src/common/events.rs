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
    let database = super::current_database_name();
    let text = fit_detail(detail, super::security::DETAIL_CAPACITY);
    if super::security::push(super::security::security_event(kind, severity, addr.as_deref(), &role, &database, &text)) {
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

/// The detail as JSON text of at most `max` bytes, still valid JSON: long lists (rules) give way
/// to their length first, then long strings are cut (a slot cut mid-JSON loses every field).
fn fit_detail(detail: &serde_json::Value, max: usize) -> String {
    let text = detail.to_string();
    if text.len() <= max {
        return text;
    }
    let Some(obj) = detail.as_object() else { return serde_json::json!({ "truncated": true }).to_string() };
    let mut obj = obj.clone();
    let lists: Vec<String> = obj.iter().filter(|(_, v)| v.is_array()).map(|(k, _)| k.clone()).collect();
    for k in lists {
        let items = obj[&k].as_array().cloned().unwrap_or_default();
        obj.insert(format!("{k}_count"), serde_json::json!(items.len()));
        obj.insert(k, serde_json::json!(items.into_iter().take(3).collect::<Vec<_>>()));
    }
    let t = serde_json::to_string(&obj).unwrap_or_default();
    if t.len() <= max {
        return t;
    }
    for v in obj.values_mut() {
        if let Some(s) = v.as_str() {
            if s.len() > 60 {
                let cut: String = s.chars().take(60).collect();
                *v = serde_json::json!(format!("{cut}…"));
            }
        }
    }
    let t = serde_json::to_string(&obj).unwrap_or_default();
    if t.len() <= max {
        return t;
    }
    serde_json::json!({ "truncated": true }).to_string()
}

/// The client's address as text, when connected over TCP.
fn client_addr() -> Option<String> {
    unsafe { super::client_ip(pg_sys::libpq::be::MyProcPort).map(|ip| ip.to_string()) }
}

#[cfg(test)]
mod unit_tests {
    #[test]
    fn long_details_stay_valid_json() {
        let rules: Vec<String> = (0..40).map(|i| format!("sqli.rule_number_{i}")).collect();
        let d = serde_json::json!({ "table": "s.t", "column": "c".repeat(63), "action": "reject", "rules": rules });
        let text = super::fit_detail(&d, 640);
        assert!(text.len() <= 640, "{}", text.len());
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["action"], "reject");
        assert_eq!(back["rules_count"], 40);
        assert_eq!(back["rules"].as_array().unwrap().len(), 3);
        let huge = serde_json::json!({ "a": "x".repeat(5000), "b": "y".repeat(5000) });
        let t = super::fit_detail(&huge, 640);
        assert!(t.len() <= 640 && serde_json::from_str::<serde_json::Value>(&t).is_ok());
        let small = serde_json::json!({ "action": "log" });
        assert_eq!(super::fit_detail(&small, 640), small.to_string());
    }
}
