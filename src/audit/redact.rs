//! Passwords out of the server log. `log_statement = 'ddl'` or `'mod'` (the demo's setting, the
//! guide's "log changed SQL") writes `CREATE ROLE ... PASSWORD '...'` as it was typed, and any
//! error in such a statement writes it again as `STATEMENT:`. The log hook cuts what follows the
//! `PASSWORD` keyword of a role statement from every message part it appears in, and hides the
//! `STATEMENT:` line of a statement that carries one. (The trail never holds statement texts.)

use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_EMIT_LOG: pg_sys::emit_log_hook_type = None;

/// What replaces the password and the rest of the statement.
pub const REDACTED: &str = " [password redacted by tradeguard]";

/// Installs the hook (called from `_PG_init` while preloading).
pub fn install() {
    unsafe {
        PREV_EMIT_LOG = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(tradeguard_emit_log);
    }
}

fn role_password() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    // CREATE/ALTER ROLE/USER/GROUP, then PASSWORD (ENCRYPTED/UNENCRYPTED PASSWORD too) anywhere
    // after it in the text: over-redacting a comment or a quoted name is harmless.
    RE.get_or_init(|| regex::Regex::new(r"(?is)\b(?:create|alter)\s+(?:role|user|group)\b.*?\bpassword\b").expect("valid regex"))
}

/// `text` with what follows the `PASSWORD` keyword of a role statement cut, or `None` when it
/// carries none.
pub fn redact(text: &str) -> Option<String> {
    // (Cheap first test: most log lines never mention a password.)
    if !text.as_bytes().windows(8).any(|w| w.eq_ignore_ascii_case(b"password")) {
        return None;
    }
    let m = role_password().find(text)?;
    Some(format!("{}{REDACTED}", &text[..m.end()]))
}

/// Replaces `*field` (a palloc'd string of the error being reported) with its redaction.
unsafe fn redact_field(field: *mut *mut c_char) {
    if (*field).is_null() {
        return;
    }
    let text = CStr::from_ptr(*field).to_string_lossy();
    if let Some(r) = redact(&text) {
        let c = CString::new(r).unwrap_or_else(|_| CString::new(REDACTED.trim_start()).expect("no NUL"));
        // (Allocated in the current memory context, ErrorContext while an error is reported.)
        *field = pg_sys::pstrdup(c.as_ptr());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn tradeguard_emit_log(edata: *mut pg_sys::ErrorData) {
    if !edata.is_null() && (*edata).output_to_server {
        redact_field(&mut (*edata).message);
        redact_field(&mut (*edata).detail);
        redact_field(&mut (*edata).context);
        redact_field(&mut (*edata).internalquery);
        let query = pg_sys::debug_query_string;
        if !(*edata).hide_stmt && !query.is_null() && redact(&CStr::from_ptr(query).to_string_lossy()).is_some() {
            (*edata).hide_stmt = true;
        }
    }
    if let Some(prev) = PREV_EMIT_LOG {
        prev(edata);
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, REDACTED};

    #[test]
    fn role_passwords_are_cut_from_log_lines() {
        for (line, kept) in [
            ("statement: CREATE ROLE bob LOGIN PASSWORD 'LeakMe1'", "statement: CREATE ROLE bob LOGIN PASSWORD"),
            ("statement: create user bob with encrypted password 'LeakMe2' valid until 'infinity'", "statement: create user bob with encrypted password"),
            ("statement: ALTER ROLE \"Bob\"\n  PASSWORD 'SCRAM-SHA-256$4096:abc'", "statement: ALTER ROLE \"Bob\"\n  PASSWORD"),
            ("statement: ALTER USER bob WITH PASSWORD 'md5abc' VALID UNTIL '2030-01-01'", "statement: ALTER USER bob WITH PASSWORD"),
            ("statement: SELECT 1; ALTER GROUP g PASSWORD 'x'", "statement: SELECT 1; ALTER GROUP g PASSWORD"),
            ("SQL statement \"ALTER ROLE r PASSWORD 'x'\"\nPL/pgSQL function f() line 1", "SQL statement \"ALTER ROLE r PASSWORD"),
        ] {
            assert_eq!(redact(line).as_deref(), Some(format!("{kept}{REDACTED}").as_str()), "{line}");
            assert!(!redact(line).unwrap().contains("LeakMe"));
        }
        for line in [
            "statement: UPDATE users SET password_hash = $1 WHERE id = $2",
            "statement: ALTER ROLE bob CONNECTION LIMIT 3",
            "statement: SELECT 'create role x' AS t",
            "password authentication failed for user \"bob\"",
            "",
        ] {
            assert_eq!(redact(line), None, "{line}");
        }
    }
}
