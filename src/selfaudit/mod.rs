//! Self-audit: findings over roles, privileges, pg_hba, TLS, settings and files.
//!
//! The checks themselves are SQL (`sql/selfaudit.sql`, run by SECURITY DEFINER functions with a
//! pinned search_path); this file provides what SQL cannot see: file modes and owners, the
//! server's uid, and parsed certificates (x509-parser). These helpers live in the protected
//! schema and are executable by nobody but the extension owner.

pub mod error;

use std::os::unix::fs::MetadataExt;

use pgrx::prelude::*;

use crate::error::OrRaise;
use error::SelfAuditError;

/// `tradeguard_audit.file_info(path)`: stat of a path (symlinks followed) with the server's rights.
#[pg_extern(volatile, strict)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // (pgrx spells a function's result columns as a tuple type)
fn file_info(
    path: &str,
) -> TableIterator<
    'static,
    (
        name!(path, String),
        name!(present, bool),
        name!(is_dir, Option<bool>),
        name!(mode, Option<i32>),
        name!(owner_uid, Option<i32>),
        name!(size, Option<i64>),
    ),
> {
    // The file a symlink points to (a Kubernetes secret mount, a symlinked data directory): its
    // mode and owner are what protect it, and what chmod and chown change.
    let row = match std::fs::metadata(path) {
        Ok(m) => (
            path.to_string(),
            true,
            Some(m.is_dir()),
            Some((m.mode() & 0o7777) as i32),
            Some(m.uid() as i32),
            Some(m.size() as i64),
        ),
        Err(_) => (path.to_string(), false, None, None, None, None),
    };
    TableIterator::once(row)
}

/// `tradeguard_audit.server_uid()`: the OS uid the server runs as.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn server_uid() -> i32 {
    std::fs::metadata("/proc/self").map(|m| m.uid() as i32).unwrap_or(-1)
}

type CertRow = (String, String, TimestampWithTimeZone, TimestampWithTimeZone, String, i32, String, bool);

fn unix_to_ts(secs: i64) -> TimestampWithTimeZone {
    // PostgreSQL timestamps count microseconds from 2000-01-01.
    TimestampWithTimeZone::try_from((secs - 946_684_800) * 1_000_000).unwrap_or(TimestampWithTimeZone::try_from(0i64).unwrap())
}

fn cert_row(path: &str) -> Result<CertRow, SelfAuditError> {
    let bad = |why: String| SelfAuditError::Certificate { path: path.to_string(), why };
    let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&data).map_err(|e| bad(format!("not PEM: {e}")))?;
    let cert = pem.parse_x509().map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let (key_type, key_bits) = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(r)) => ("rsa".to_string(), r.key_size() as i32),
        Ok(x509_parser::public_key::PublicKey::EC(e)) => ("ec".to_string(), e.key_size() as i32),
        Ok(other) => (format!("{other:?}").split('(').next().unwrap_or("other").to_lowercase(), other.key_size() as i32),
        Err(_) => ("unknown".to_string(), 0),
    };
    let sig_oid = &cert.signature_algorithm.algorithm;
    let sig = x509_parser::objects::oid2sn(sig_oid, x509_parser::objects::oid_registry())
        .map(str::to_string)
        .unwrap_or_else(|_| sig_oid.to_id_string());
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    Ok((
        subject.clone(),
        issuer.clone(),
        unix_to_ts(cert.validity().not_before.timestamp()),
        unix_to_ts(cert.validity().not_after.timestamp()),
        key_type,
        key_bits,
        sig,
        subject == issuer,
    ))
}

/// `tradeguard_audit.cert_info(path)`: the parsed PEM certificate at `path`.
#[pg_extern(volatile, strict)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // (pgrx spells a function's result columns as a tuple type)
fn cert_info(
    path: &str,
) -> TableIterator<
    'static,
    (
        name!(subject, String),
        name!(issuer, String),
        name!(not_before, TimestampWithTimeZone),
        name!(not_after, TimestampWithTimeZone),
        name!(key_type, String),
        name!(key_bits, i32),
        name!(signature_algorithm, String),
        name!(self_signed, bool),
    ),
> {
    TableIterator::once(cert_row(path).map_err(crate::error::TgError::from).or_raise())
}

pgrx::extension_sql_file!(
    "../../sql/selfaudit.sql",
    name = "selfaudit_sql",
    requires = [file_info, server_uid, cert_info, "crypto_sql", "audit_sql", "ids_sql"]
);

#[cfg(test)]
mod unit_tests {
    #[test]
    fn unix_epoch_maps_to_postgres_epoch() {
        // 2000-01-01T00:00:00Z is 946684800 in Unix time and 0 in PostgreSQL's.
        assert_eq!(super::unix_to_ts(946_684_800).into_inner(), 0);
        assert_eq!(super::unix_to_ts(946_684_801).into_inner(), 1_000_000);
    }
}

#[cfg(feature = "pg_test")]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn marked_columns_of_any_type_are_reported_until_encrypted() {
        Spi::run(
            "CREATE TABLE public.t_acct_sa (id int PRIMARY KEY, balance numeric, ssn bigint, blob bytea, note text);
             SELECT tradeguard.mark_sensitive('public.t_acct_sa', c) FROM unnest('{balance,ssn,note}'::name[]) c",
        )
        .unwrap();
        let reported = Spi::get_one::<String>(
            "SELECT string_agg(object, ',' ORDER BY object) FROM tradeguard.findings
              WHERE check_id = 'sensitive_column_plaintext' AND object LIKE '%t_acct_sa.%'",
        );
        assert_eq!(reported, Ok(Some("public.t_acct_sa.balance,public.t_acct_sa.note,public.t_acct_sa.ssn".to_string())));
        Spi::run("SELECT tradeguard.create_key('t_acct_sa'); SELECT tradeguard.encrypt_column('public.t_acct_sa', 'balance', 't_acct_sa')").unwrap();
        let reported = Spi::get_one::<String>(
            "SELECT string_agg(object, ',' ORDER BY object) FROM tradeguard.findings
              WHERE check_id = 'sensitive_column_plaintext' AND object LIKE '%t_acct_sa.%'",
        );
        assert_eq!(reported, Ok(Some("public.t_acct_sa.note,public.t_acct_sa.ssn".to_string())));
    }

    /// An acceptance of a privileges finding covers the detail it had: a wider one is open again.
    #[pg_test]
    fn an_acceptance_does_not_cover_a_wider_finding() {
        Spi::run(
            "CREATE ROLE t_ro; SELECT tradeguard.role_profile('t_ro', 'readonly');
             CREATE TABLE public.t_g1 (id int); CREATE TABLE public.t_g2 (id int);
             GRANT INSERT ON public.t_g1 TO t_ro;
             SELECT tradeguard.accept_finding(md5('readonly_role_can_write:t_ro'), 'scratch table, reviewed', now() + interval '7 days')",
        )
        .unwrap();
        let accepted = || Spi::get_one::<bool>("SELECT accepted FROM tradeguard.findings WHERE check_id = 'readonly_role_can_write' AND object = 't_ro'");
        assert_eq!(accepted(), Ok(Some(true)));
        Spi::run("GRANT INSERT, DELETE ON public.t_g2 TO t_ro").unwrap();
        assert_eq!(accepted(), Ok(Some(false)));
    }

    /// A partition or an updatable view PUBLIC may write through is reported like a table.
    #[pg_test]
    fn writable_partitions_and_views_are_reported() {
        Spi::run(
            "CREATE TABLE public.t_po (id int, k int) PARTITION BY LIST (k);
             CREATE TABLE public.t_po_1 PARTITION OF public.t_po FOR VALUES IN (1);
             GRANT INSERT, UPDATE, DELETE ON public.t_po_1 TO PUBLIC;
             CREATE VIEW public.t_po_rw AS SELECT * FROM public.t_po;
             GRANT INSERT ON public.t_po_rw TO PUBLIC",
        )
        .unwrap();
        let reported = Spi::get_one::<String>(
            "SELECT string_agg(object, ',' ORDER BY object) FROM tradeguard.findings
              WHERE check_id = 'table_writable_by_public' AND object LIKE '%t_po%'",
        );
        assert_eq!(reported, Ok(Some("public.t_po_1,public.t_po_rw".to_string())));
    }
}
