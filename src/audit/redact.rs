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

fn role_password() -> &'static regex::bytes::Regex {
    static RE: OnceLock<regex::bytes::Regex> = OnceLock::new();
    // CREATE/ALTER ROLE/USER/GROUP (white space or comments between the two words), then
    // PASSWORD anywhere after it in the text: over-redacting a comment or a quoted name is
    // harmless. On bytes: the server's encoding need not be UTF-8, and what is kept is a prefix
    // ending at an ASCII word, so it stays valid in it.
    RE.get_or_init(|| {
        regex::bytes::Regex::new(r"(?is-u)\b(?:create|alter)(?:\s+|/\*.*?\*/|--[^\n]*\n)+(?:role|user|group)\b.*?\bpassword\b")
            .expect("valid regex")
    })
}

thread_local! {
    /// The top-level query text (`debug_query_string`) in which a role statement that sets a
    /// password ran, as seen by the utility hook in its parse tree: its STATEMENT line is hidden
    /// even when the role statement was built at run time (`EXECUTE 'ALTER ' || 'ROLE ...'`).
    /// (With the local transaction: the buffer of the next query may sit at the same address.)
    static PASSWORD_QUERY: std::cell::Cell<(usize, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Called by the utility hook for a CREATE/ALTER ROLE that sets a password.
pub fn password_statement_running() {
    PASSWORD_QUERY.with(|c| c.set((unsafe { pg_sys::debug_query_string } as usize, crate::common::shmem::local_xact_stamp())));
}

/// Where the password part of `text` starts (just after the `PASSWORD` keyword of a role
/// statement), if it has one.
fn password_at(text: &[u8]) -> Option<usize> {
    // (Cheap first test: most log lines never mention a password.)
    if !text.windows(8).any(|w| w.eq_ignore_ascii_case(b"password")) {
        return None;
    }
    role_password().find(text).map(|m| m.end())
}

/// `text` with what follows the `PASSWORD` keyword of a role statement cut, or `None` when it
/// carries none.
pub fn redact(text: &[u8]) -> Option<Vec<u8>> {
    let end = password_at(text)?;
    let mut out = text[..end].to_vec();
    out.extend_from_slice(REDACTED.as_bytes());
    Some(out)
}

/// Whether `message` quotes a piece of `secret`, the password part of a query (see
/// [`password_at`]): a syntax error `at or near "Secret1"`, an unterminated string. Then the
/// message is withheld.
fn quotes_password(secret: &[u8], message: &[u8]) -> bool {
    secret
        .split(|c| c.is_ascii_whitespace() || matches!(c, b'\'' | b'"' | b';' | b',' | b'(' | b')'))
        .filter(|t| t.len() >= 3)
        .filter(|t| !matches!(t.to_ascii_lowercase().as_slice(), b"valid" | b"until" | b"login" | b"nologin" | b"null" | b"encrypted" | b"connection" | b"limit" | b"inherit" | b"with"))
        .any(|t| message.windows(t.len()).any(|w| w == t))
}

/// Replaces `*field` (a palloc'd string of the error being reported) with `with`.
unsafe fn replace_field(field: *mut *mut c_char, with: &[u8]) {
    let c = CString::new(with.to_vec()).unwrap_or_else(|_| CString::new(REDACTED.trim_start()).expect("no NUL"));
    // (Allocated in the current memory context, ErrorContext while an error is reported.)
    *field = pg_sys::pstrdup(c.as_ptr());
}

/// Redacts `*field` in place; whether it had to.
unsafe fn redact_field(field: *mut *mut c_char) -> bool {
    if (*field).is_null() {
        return false;
    }
    match redact(CStr::from_ptr(*field).to_bytes()) {
        Some(r) => {
            replace_field(field, &r);
            true
        }
        None => false,
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn tradeguard_emit_log(edata: *mut pg_sys::ErrorData) {
    if !edata.is_null() && (*edata).output_to_server {
        let mut redacted = false;
        for field in [&mut (*edata).message, &mut (*edata).detail, &mut (*edata).context, &mut (*edata).internalquery] {
            redacted |= redact_field(field);
        }
        let query = pg_sys::debug_query_string;
        let query = if query.is_null() { &[][..] } else { CStr::from_ptr(query).to_bytes() };
        let running = !query.is_empty() && PASSWORD_QUERY.with(|c| c.get()) == (pg_sys::debug_query_string as usize, crate::common::shmem::local_xact_stamp());
        let secret_at = password_at(query);
        let in_query = running || secret_at.is_some();
        // The statement that carries a password, or one whose dynamic SQL did (a DO block's
        // EXECUTE, seen in the CONTEXT line), is not written as STATEMENT.
        if redacted || in_query {
            (*edata).hide_stmt = true;
        }
        // A message quoting the password (a syntax error in the role statement) is withheld.
        let message = (*edata).message;
        if !message.is_null() && secret_at.is_some_and(|at| quotes_password(&query[at..], CStr::from_ptr(message).to_bytes())) {
            replace_field(&mut (*edata).message, b"error in a role statement that sets a password (message withheld by tradeguard)");
        }
    }
    if let Some(prev) = PREV_EMIT_LOG {
        prev(edata);
    }
}

#[cfg(test)]
mod tests {
    use super::{password_at, quotes_password, redact, REDACTED};

    #[test]
    fn role_passwords_are_cut_from_log_lines() {
        for (line, kept) in [
            ("statement: CREATE ROLE bob LOGIN PASSWORD 'LeakMe1'", "statement: CREATE ROLE bob LOGIN PASSWORD"),
            ("statement: create user bob with encrypted password 'LeakMe2' valid until 'infinity'", "statement: create user bob with encrypted password"),
            ("statement: ALTER ROLE \"Bob\"\n  PASSWORD 'SCRAM-SHA-256$4096:abc'", "statement: ALTER ROLE \"Bob\"\n  PASSWORD"),
            ("statement: ALTER USER bob WITH PASSWORD 'md5abc' VALID UNTIL '2030-01-01'", "statement: ALTER USER bob WITH PASSWORD"),
            ("statement: SELECT 1; ALTER GROUP g PASSWORD 'x'", "statement: SELECT 1; ALTER GROUP g PASSWORD"),
            ("SQL statement \"ALTER ROLE r PASSWORD 'x'\"\nPL/pgSQL function f() line 1", "SQL statement \"ALTER ROLE r PASSWORD"),
            ("statement: CREATE/**/ROLE p PASSWORD 'LeakMe3'", "statement: CREATE/**/ROLE p PASSWORD"),
            ("statement: CREATE -- c\nROLE p PASSWORD 'LeakMe4'", "statement: CREATE -- c\nROLE p PASSWORD"),
            ("statement: alter\t/* x */ user p password 'LeakMe5'", "statement: alter\t/* x */ user p password"),
        ] {
            let r = String::from_utf8(redact(line.as_bytes()).expect(line)).unwrap();
            assert_eq!(r, format!("{kept}{REDACTED}"), "{line}");
            assert!(!r.contains("LeakMe"));
        }
        for line in [
            "statement: UPDATE users SET password_hash = $1 WHERE id = $2",
            "statement: ALTER ROLE bob CONNECTION LIMIT 3",
            "statement: SELECT 'create role x' AS t",
            "password authentication failed for user \"bob\"",
            "",
        ] {
            assert_eq!(redact(line.as_bytes()), None, "{line}");
        }
        // A syntax error quoting the password is withheld; one about something else is not.
        // (on the whole query, as the hook reads it)
        let quotes = |q: &[u8], m: &[u8]| password_at(q).is_some_and(|at| quotes_password(&q[at..], m));
        let q = b"ALTER ROLE bob PASSWORD LeakB1 VALID UNTIL 'x'";
        assert!(quotes(q, b"syntax error at or near \"LeakB1\""));
        assert!(quotes(b"ALTER ROLE bob PASSWORD 'LeakB3", b"unterminated quoted string at or near \"'LeakB3\""));
        assert!(!quotes(q, b"role \"bob\" does not exist"));
        assert!(!quotes(b"SELECT 1", b"syntax error at or near \"LeakB1\""));
    }
}
