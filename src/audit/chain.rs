//! Pure logic of the signed audit trail (no pgrx): canonical row encoding, row signatures,
//! Merkle roots of blocks and block MACs.
//!
//! * A row's signature is HMAC-SHA-256(audit key, canonical encoding of every recorded field).
//!   Nobody without the audit key (derived from the root key) can forge or alter a row.
//! * A block seals a set of rows: its Merkle root is computed over their signatures in id order
//!   (leaf = SHA-256(0x00 || signature), node = SHA-256(0x01 || left || right); an odd node is
//!   promoted unchanged), and its MAC is HMAC-SHA-256(audit key, block fields || previous MAC),
//!   so deleting, inserting or reordering rows, or cutting the chain, changes a MAC nobody can
//!   recompute without the key.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::common::par;

type HmacSha256 = Hmac<Sha256>;

/// The fields of one audit row, in the order they are signed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditRow<'a> {
    pub id: i64,
    pub txid: i64,
    pub at_micros: i64,
    pub schema_name: &'a str,
    pub table_name: &'a str,
    pub operation: &'a str,
    /// jsonb fields are signed in their canonical binary form (jsonb's on-disk bytes).
    pub pk: Option<&'a [u8]>,
    pub old_row: Option<&'a [u8]>,
    pub new_row: Option<&'a [u8]>,
    pub current_user: &'a str,
    pub session_user: &'a str,
    pub application_name: Option<&'a str>,
    /// The client address in PostgreSQL's binary inet form.
    pub client_addr: Option<&'a [u8]>,
    pub app_context: Option<&'a [u8]>,
}

fn put(m: &mut HmacSha256, field: Option<&[u8]>) {
    match field {
        // Length-prefixed, with a presence byte: no two different rows encode the same way.
        None => m.update(&[0]),
        Some(b) => {
            m.update(&[1]);
            m.update(&(b.len() as u64).to_be_bytes());
            m.update(b);
        }
    }
}

/// Signs rows with one key: HMAC's keyed inner and outer states are computed once and cloned
/// per row (two SHA-256 blocks fewer per row than keying each time).
#[derive(Clone)]
pub struct RowSigner(HmacSha256);

impl RowSigner {
    pub fn new(key: &[u8; 32]) -> RowSigner {
        let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
        m.update(b"tradeguard-audit-row-v1");
        RowSigner(m)
    }

    pub fn sign(&self, row: &AuditRow<'_>) -> [u8; 32] {
        let mut m = self.0.clone();
        m.update(&row.id.to_be_bytes());
        m.update(&row.txid.to_be_bytes());
        m.update(&row.at_micros.to_be_bytes());
        for f in [
            Some(row.schema_name.as_bytes()),
            Some(row.table_name.as_bytes()),
            Some(row.operation.as_bytes()),
            row.pk,
            row.old_row,
            row.new_row,
            Some(row.current_user.as_bytes()),
            Some(row.session_user.as_bytes()),
            row.application_name.map(str::as_bytes),
            row.client_addr,
            row.app_context,
        ] {
            put(&mut m, f);
        }
        m.finalize().into_bytes().into()
    }

    /// Constant-time comparison of a stored signature with the recomputed one.
    pub fn matches(&self, row: &AuditRow<'_>, stored: &[u8]) -> bool {
        constant_time_eq(&self.sign(row), stored)
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Merkle root over row signatures in id order. The root of no rows is SHA-256 of nothing.
pub fn merkle_root<'a>(leaves: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    merkle_root_threads(&leaves.into_iter().collect::<Vec<_>>(), 1)
}

/// [`merkle_root`], each level's hashes computed by up to `threads` threads (the same root).
pub fn merkle_root_threads(leaves: &[&[u8]], threads: usize) -> [u8; 32] {
    if leaves.is_empty() {
        return Sha256::digest(b"").into();
    }
    let hash = |prefix: u8, parts: &[&[u8]]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([prefix]);
        parts.iter().for_each(|p| h.update(p));
        h.finalize().into()
    };
    let mut level: Vec<[u8; 32]> = par::map(leaves, threads, par::MIN_PER_THREAD, |l| hash(0, &[l]));
    while level.len() > 1 {
        let pairs: Vec<&[[u8; 32]]> = level.chunks(2).collect();
        level = par::map(&pairs, threads, par::MIN_PER_THREAD, |pair| match pair {
            [l, r] => hash(1, &[l, r]),
            // An odd node is promoted unchanged.
            _ => pair[0],
        });
    }
    level[0]
}

/// The fields of a sealed block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block<'a> {
    pub block_no: i64,
    pub prev_mac: &'a [u8],
    pub merkle_root: &'a [u8],
    pub row_count: i64,
    pub first_id: i64,
    pub last_id: i64,
    pub sealed_at_micros: i64,
}

/// HMAC-SHA-256 of a block, chaining it to the previous block's MAC.
pub fn block_mac(key: &[u8; 32], b: &Block<'_>) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(b"tradeguard-audit-block-v1");
    m.update(&b.block_no.to_be_bytes());
    put(&mut m, Some(b.prev_mac));
    put(&mut m, Some(b.merkle_root));
    m.update(&b.row_count.to_be_bytes());
    m.update(&b.first_id.to_be_bytes());
    m.update(&b.last_id.to_be_bytes());
    m.update(&b.sealed_at_micros.to_be_bytes());
    m.finalize().into_bytes().into()
}

/// MAC of a retention anchor (`tradeguard_audit.retention`): the last archived block and its
/// MAC, which the first remaining block chains to, and what the archive removed and why.
pub fn retention_mac(key: &[u8; 32], through_block: i64, last_mac: &[u8], rows_removed: i64, reason: &str, removed_by: &str) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(b"tradeguard-audit-retention-v1");
    m.update(&through_block.to_be_bytes());
    put(&mut m, Some(last_mac));
    m.update(&rows_removed.to_be_bytes());
    put(&mut m, Some(reason.as_bytes()));
    put(&mut m, Some(removed_by.as_bytes()));
    m.finalize().into_bytes().into()
}

/// The MAC that precedes block 1: fixed, so a chain cannot be restarted silently.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Why verification failed, as reported by `tradeguard.verify()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    RowAltered,
    RowMissing,
    RowInserted,
    BlockAltered,
    ChainBroken,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::RowAltered => "row altered",
            Failure::RowMissing => "row missing",
            Failure::RowInserted => "row inserted",
            Failure::BlockAltered => "block altered",
            Failure::ChainBroken => "chain broken",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One-shot signing with a fresh signer (what the trigger and verify do with a kept one).
    fn sign_row(key: &[u8; 32], row: &AuditRow<'_>) -> [u8; 32] {
        RowSigner::new(key).sign(row)
    }

    fn signature_matches(key: &[u8; 32], row: &AuditRow<'_>, stored: &[u8]) -> bool {
        RowSigner::new(key).matches(row, stored)
    }

    fn row(id: i64) -> AuditRow<'static> {
        AuditRow {
            id,
            txid: 700 + id,
            at_micros: 1_000_000 * id,
            schema_name: "public",
            table_name: "trades",
            operation: "INSERT",
            pk: Some(br#"{"id": 1}"#),
            old_row: None,
            new_row: Some(br#"{"id": 1, "price": 2849.5}"#),
            current_user: "daytrading_prod",
            session_user: "daytrading_prod",
            application_name: Some("psql"),
            client_addr: Some(b"\x02\x20\x00\x04\x7f\x00\x00\x01"),
            app_context: None,
        }
    }

    const KEY: [u8; 32] = [7u8; 32];

    #[test]
    fn any_field_change_changes_the_signature() {
        let base = sign_row(&KEY, &row(1));
        let mut r = row(1);
        r.new_row = Some(br#"{"id": 1, "price": 2849.6}"#);
        assert_ne!(sign_row(&KEY, &r), base);
        let mut r = row(1);
        r.old_row = Some(b"");
        assert_ne!(sign_row(&KEY, &r), base, "NULL and empty differ");
        let mut r = row(1);
        r.current_user = "postgres";
        assert_ne!(sign_row(&KEY, &r), base);
        assert_ne!(sign_row(&[8u8; 32], &row(1)), base, "another key, another signature");
        assert!(signature_matches(&KEY, &row(1), &base));
        assert!(!signature_matches(&KEY, &row(2), &base));
        assert!(!signature_matches(&KEY, &row(1), &base[..31]));
    }

    /// The signed encoding, spelled out independently of RowSigner: a reused signer and a
    /// fresh one both give HMAC-SHA-256 over exactly these bytes.
    #[test]
    fn signature_is_hmac_of_the_documented_encoding() {
        let r = row(3);
        let mut bytes = b"tradeguard-audit-row-v1".to_vec();
        for n in [r.id, r.txid, r.at_micros] {
            bytes.extend_from_slice(&n.to_be_bytes());
        }
        let fields = [
            Some(r.schema_name.as_bytes()),
            Some(r.table_name.as_bytes()),
            Some(r.operation.as_bytes()),
            r.pk,
            r.old_row,
            r.new_row,
            Some(r.current_user.as_bytes()),
            Some(r.session_user.as_bytes()),
            r.application_name.map(str::as_bytes),
            r.client_addr,
            r.app_context,
        ];
        for f in fields {
            match f {
                None => bytes.push(0),
                Some(b) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&(b.len() as u64).to_be_bytes());
                    bytes.extend_from_slice(b);
                }
            }
        }
        let mut m = HmacSha256::new_from_slice(&KEY).unwrap();
        m.update(&bytes);
        let want: [u8; 32] = m.finalize().into_bytes().into();
        assert_eq!(sign_row(&KEY, &r), want);
        let signer = RowSigner::new(&KEY);
        assert_eq!(signer.sign(&row(1)), sign_row(&KEY, &row(1)));
        assert_eq!(signer.sign(&r), want, "a signer is not changed by signing");
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = row(1);
        a.schema_name = "ab";
        a.table_name = "c";
        let mut b = row(1);
        b.schema_name = "a";
        b.table_name = "bc";
        assert_ne!(sign_row(&KEY, &a), sign_row(&KEY, &b));
    }

    #[test]
    fn merkle_root_depends_on_every_leaf_and_order() {
        let sigs: Vec<[u8; 32]> = (1..=5).map(|i| sign_row(&KEY, &row(i))).collect();
        let root = merkle_root(sigs.iter().map(|s| &s[..]));
        let mut swapped = sigs.clone();
        swapped.swap(1, 2);
        assert_ne!(root, merkle_root(swapped.iter().map(|s| &s[..])));
        assert_ne!(root, merkle_root(sigs[..4].iter().map(|s| &s[..])));
        assert_eq!(root, merkle_root(sigs.iter().map(|s| &s[..])));
        // A single leaf is hashed, not passed through: a block root is never a raw signature.
        assert_ne!(merkle_root([&sigs[0][..]]), sigs[0]);
    }

    #[test]
    fn merkle_root_is_the_documented_tree_for_any_thread_count() {
        let h = |parts: &[&[u8]]| -> [u8; 32] {
            let mut d = Sha256::new();
            parts.iter().for_each(|p| d.update(p));
            d.finalize().into()
        };
        // Three leaves, by the construction in the module's documentation.
        let sigs: Vec<[u8; 32]> = (1..=3).map(|i| sign_row(&KEY, &row(i))).collect();
        let leaf = |s: &[u8; 32]| h(&[&[0], s]);
        let (l1, l2, l3) = (leaf(&sigs[0]), leaf(&sigs[1]), leaf(&sigs[2]));
        let want = h(&[&[1], &h(&[&[1], &l1, &l2]), &l3]);
        assert_eq!(merkle_root(sigs.iter().map(|s| &s[..])), want);
        assert_eq!(merkle_root(std::iter::empty()), h(&[]));
        // Large enough to be shared between threads, odd and even sizes: the same root.
        for n in [2048usize, 4097, 5000] {
            let sigs: Vec<[u8; 32]> = (0..n).map(|i| h(&[&i.to_be_bytes()])).collect();
            let leaves: Vec<&[u8]> = sigs.iter().map(|s| &s[..]).collect();
            let one = merkle_root_threads(&leaves, 1);
            assert_eq!(one, merkle_root(leaves.iter().copied()));
            for threads in [2, 3, 4] {
                assert_eq!(merkle_root_threads(&leaves, threads), one, "n={n} threads={threads}");
            }
        }
    }

    #[test]
    fn block_mac_chains() {
        let root = [1u8; 32];
        let b1 = Block { block_no: 1, prev_mac: &GENESIS, merkle_root: &root, row_count: 3, first_id: 1, last_id: 3, sealed_at_micros: 5 };
        let m1 = block_mac(&KEY, &b1);
        let b2 = Block { block_no: 2, prev_mac: &m1, merkle_root: &root, row_count: 3, first_id: 4, last_id: 6, sealed_at_micros: 6 };
        let m2 = block_mac(&KEY, &b2);
        let forged_prev = [9u8; 32];
        let b2x = Block { prev_mac: &forged_prev, ..b2.clone() };
        assert_ne!(block_mac(&KEY, &b2x), m2);
        let b1x = Block { row_count: 2, ..b1.clone() };
        assert_ne!(block_mac(&KEY, &b1x), m1);
    }
}
