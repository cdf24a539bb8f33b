//! The client-authentication hook: refuses blocked sources and roles (even with the right
//! password), counts failures per address and per role, and locks them out past the limits.
//! It cannot write tables; events go through the shared-memory queue to the worker.

use std::ffi::{c_char, CStr};

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use super::security::{self, EventKind, EventSlot, FixedStr};

static mut PREV_AUTH: pg_sys::libpq::ClientAuthentication_hook_type = None;

pub fn install() {
    unsafe {
        PREV_AUTH = pg_sys::libpq::ClientAuthentication_hook;
        pg_sys::libpq::ClientAuthentication_hook = Some(tradeguard_client_auth);
    }
}

unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn format_until(until: i64) -> String {
    // PostgreSQL microseconds since 2000-01-01 to an ISO UTC time, without a catalog lookup.
    let secs = until.div_euclid(1_000_000) + 946_684_800;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn auth_event(addr: &str, role: &str, db: &str, success: bool, blocked: bool, reason: &str) -> EventSlot {
    EventSlot {
        kind: EventKind::Auth,
        at: security::now(),
        success,
        blocked,
        event_type: FixedStr::new(if blocked { "blocked_login" } else if success { "login" } else { "login_failed" }),
        severity: FixedStr::new(if blocked { "medium" } else if success { "info" } else { "low" }),
        addr: FixedStr::new(addr),
        role: FixedStr::new(role),
        database: FixedStr::new(db),
        detail: FixedStr::new(reason),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn tradeguard_client_auth(port: *mut pg_sys::libpq::be::Port, status: i32) {
    if let Some(prev) = PREV_AUTH {
        prev(port, status);
    }
    if port.is_null() {
        return;
    }
    let role = text((*port).user_name);
    let db = text((*port).database_name);
    // Unix-socket connections are never counted or locked out: the DBA keeps a way in.
    let Some(ip) = super::client_ip(port) else { return };
    // An IPv4 client on an IPv6 socket (::ffff:a.b.c.d) is that IPv4 address.
    let ip = ip.to_canonical();
    let remote = ip.to_string();
    // An exempt address (a pooler, a proxy, the DBA's workstation) is never counted, locked out
    // or blocked as an address; its logins are recorded and its failures count for their role,
    // apart from the role's other failures: behind a pooler, the per-role limit is what stops
    // password guessing, and a role locked out by failures from elsewhere still logs in there
    // (see security::blocked).
    let exempt = crate::gucs::lockout_exempt().iter().any(|n| n.contains(&ip));
    let source = (!exempt).then_some(&ip);
    let at = security::now();
    if let Some((key, until)) = security::blocked(source, &role, at) {
        security::push(auth_event(&remote, &role, &db, status == pg_sys::STATUS_OK as i32, true, &format!("blocked by {key}")));
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            format!("tradeguard: connection refused: too many failed logins or a block for {key}; blocked until {}", format_until(until)),
            "tradeguard_client_auth",
        )
        .set_hint("ask a tradeguard_admin member to check tradeguard.blocked_sources")
        .report(PgLogLevel::FATAL);
        return;
    }
    if status == pg_sys::STATUS_OK as i32 {
        security::push(auth_event(&remote, &role, &db, true, false, ""));
        return;
    }
    // STATUS_EOF: the client hung up before answering (psql does this once to ask the user for
    // a password). Not a failed attempt.
    if status == pg_sys::STATUS_EOF {
        return;
    }
    security::push(auth_event(&remote, &role, &db, false, false, "authentication failed"));
    for l in security::register_failure(source, &role, at) {
        let detail = serde_json::json!({
            "key": if l.is_role { "role" } else { "source" }, "value": l.key, "until": format_until(l.until),
            "until_us": l.until, "through_exempt_address": l.via_exempt,
        });
        security::push(security::security_event("lockout", "high", Some(&remote), &role, "", &detail.to_string()));
        if !l.stored {
            security::push(security::block_table_full_event(&l.key));
        }
    }
    // The failure is answered only after the delay (PostgreSQL reports it once the hook
    // returns). Not for refused (blocked) attempts: those end at once, without a slot held.
    let delay_ms = crate::gucs::AUTH_FAILURE_DELAY.get();
    if delay_ms > 0 {
        pg_sys::pg_usleep(i64::from(delay_ms) * 1000);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn until_is_formatted_in_utc() {
        assert_eq!(super::format_until(0), "2000-01-01 00:00:00 UTC");
        // 2026-11-25 12:00:00 UTC
        let secs: i64 = 1_795_608_000 - 946_684_800;
        assert_eq!(super::format_until(secs * 1_000_000), "2026-11-25 12:00:00 UTC");
    }
}
