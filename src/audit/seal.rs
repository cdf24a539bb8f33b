//! Sealing committed audit rows into MAC-chained blocks, and verifying the chain.

use rustc_hash::FxHashMap as HashMap;

use pgrx::prelude::*;

use super::chain::{self, Block, Failure};
use super::error::AuditError;
use super::{audit_key, InternalWrite};
use crate::common;
use crate::error::{CoreError, OrRaise, TgResult};

const MAX_ROWS_PER_BLOCK: i64 = 50_000;

fn now_micros() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// The first row of a `(block number, MAC)` query, if any.
fn block_and_mac(query: &str) -> TgResult<Option<(i64, Vec<u8>)>> {
    Ok(common::spi_first_row(query, &[], |r| {
        Ok((r.get::<i64>(1)?.unwrap_or_default(), r.get::<Vec<u8>>(2)?.unwrap_or_default()))
    })?)
}

/// The MAC a new block chains to: the last block's, or the anchor left by archive_blocks.
fn chain_head() -> TgResult<(i64, Vec<u8>)> {
    match block_and_mac("SELECT block_no, mac FROM tradeguard_audit.blocks ORDER BY block_no DESC LIMIT 1")? {
        Some(last) => Ok(last),
        // (A forged anchor is chained to all the same: verify() names it.)
        None => Ok(anchor()?.map_or((0, chain::GENESIS.to_vec()), |(n, m, _)| (n, m))),
    }
}

/// The last block removed by retention and its MAC, if any, and whether the anchor is authentic
/// (its own MAC checks with the audit key: one written by hand is not).
fn anchor() -> TgResult<Option<(i64, Vec<u8>, bool)>> {
    anchor_at(None)
}

/// The retention anchor left when `through` (or, with None, the last block removed) was
/// archived, as [`anchor`] gives it.
fn anchor_at(through: Option<i64>) -> TgResult<Option<(i64, Vec<u8>, bool)>> {
    let row = common::spi_first_row(
        "SELECT through_block, last_mac, rows_removed, reason, removed_by, mac FROM tradeguard_audit.retention
          WHERE $1::bigint IS NULL OR through_block = $1
          ORDER BY through_block DESC LIMIT 1",
        &[through.into()],
        |r| {
            Ok((
                r.get::<i64>(1)?.unwrap_or_default(),
                r.get::<Vec<u8>>(2)?.unwrap_or_default(),
                r.get::<i64>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<String>(5)?.unwrap_or_default(),
                r.get::<Vec<u8>>(6)?.unwrap_or_default(),
            ))
        },
    )?;
    let Some((through, last_mac, rows, reason, by, mac)) = row else { return Ok(None) };
    let expected = chain::retention_mac(&*audit_key()?, through, &last_mac, rows, &reason, &by);
    let authentic = chain::constant_time_eq(&expected, &mac);
    Ok(Some((through, last_mac, authentic)))
}

/// The committed unsealed rows (those this snapshot sees, but this transaction's own), at most
/// one block's worth, in id order: (id, signature, tuple id).
fn unsealed_rows() -> Result<Vec<(i64, Vec<u8>, String)>, pgrx::spi::Error> {
    common::spi_rows(
        "SELECT id, signature, ctid::text FROM tradeguard_audit.log
          WHERE block_no IS NULL
            AND txid IS DISTINCT FROM pg_catalog.pg_current_xact_id_if_assigned()::text::bigint
          ORDER BY id LIMIT $1",
        &[MAX_ROWS_PER_BLOCK.into()],
        |r| Ok((r.get::<i64>(1)?.unwrap_or_default(), r.get::<Vec<u8>>(2)?.unwrap_or_default(), r.get::<String>(3)?.unwrap_or_default())),
    )
}

/// Seals the committed, unsealed rows (at most one block). Returns (block_no, rows).
fn seal_once() -> TgResult<Option<(i64, i64)>> {
    // A transaction snapshot (REPEATABLE READ, SERIALIZABLE) taken before the seal lock could
    // miss the block another sealer committed meanwhile, and number its own the same.
    // SAFETY: a backend-local variable.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(AuditError::SealIsolation.into());
    }
    let key = audit_key()?;
    common::as_owner(|| -> TgResult<Option<(i64, i64)>> {
        Spi::run("LOCK TABLE tradeguard_audit.seal_lock IN EXCLUSIVE MODE")?;
        // Every committed row this snapshot sees, whatever transactions are still open: a row
        // committed later, with a lower id too, goes into a later block. (Waiting until every
        // older transaction had ended let any login role stop sealing by keeping one open.)
        // In id order, from the partition of unsealed rows and its id index: never the whole
        // trail. Through the index, never a scan of the partition's heap: sealing moves every
        // row out, so between two vacuums the partition is mostly dead rows (at 10k audited
        // changes a second, hundreds of MB by the time autovacuum comes), and the planner,
        // costing random heap reads, would read all of them at each seal. The index scan marks
        // the dead entries it meets once, and skips them after that.
        let rows = common::with_local_setting(c"enable_seqscan", c"off", || {
            common::with_local_setting(c"enable_bitmapscan", c"off", unsealed_rows)
        })?;
        if rows.is_empty() {
            return Ok(None);
        }
        // A row whose id another row has too (sealed already, or unsealed beside it) cannot
        // enter the sealed partition, whose ids are unique: only a forged or copied row can
        // share an id (superuser's restore mode, break-glass). Such rows are left out, so that
        // sealing goes on, and stay unsealed, where verify() names them ("row inserted"). They
        // are looked for only when the block cannot be written (no lookup per sealed row).
        // (Any other failure, a cancel or a lock timeout among them, is raised again as it came.)
        let rows = match common::in_subtransaction_caught(|| write_block(&key, &rows)) {
            Ok(sealed) => return Ok(Some(sealed)),
            Err(failed) if failed.sqlstate() == Some(pgrx::PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION) => {
                let shared = ids_shared(&rows)?;
                if shared.is_empty() {
                    return failed.resume();
                }
                warn_shared_ids(&shared);
                rows.into_iter().filter(|(id, _, _)| !shared.contains(id)).collect::<Vec<_>>()
            }
            Err(failed) => return failed.resume(),
        };
        if rows.is_empty() {
            return Ok(None);
        }
        write_block(&key, &rows).map(Some)
    })?
}

/// The ids of `rows` (in id order) that another row of the trail has too.
fn ids_shared(rows: &[(i64, Vec<u8>, String)]) -> TgResult<std::collections::BTreeSet<i64>> {
    let mut shared: std::collections::BTreeSet<i64> = rows.windows(2).filter(|w| w[0].0 == w[1].0).map(|w| w[0].0).collect();
    let ids: Vec<i64> = rows.iter().map(|(i, _, _)| *i).collect();
    shared.extend(common::spi_rows(
        "SELECT DISTINCT s.id FROM tradeguard_audit.log_sealed s WHERE s.id = ANY ($1)",
        &[ids.into()],
        |r| Ok(r.get::<i64>(1)?.unwrap_or_default()),
    )?);
    Ok(shared)
}

thread_local! {
    /// The shared ids this backend last warned about (the worker seals every 200 ms).
    static WARNED_SHARED: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn warn_shared_ids(shared: &std::collections::BTreeSet<i64>) {
    let ids: Vec<i64> = shared.iter().copied().collect();
    if WARNED_SHARED.with(|w| w.replace(ids.clone())) != ids {
        let list: Vec<String> = ids.iter().take(10).map(|i| i.to_string()).collect();
        pgrx::warning!(
            "tradeguard: audit rows with ids {}{} share their id with another trail row (forged or copied); they are left unsealed and tradeguard.verify() reports them",
            list.join(", "),
            if ids.len() > 10 { ", ..." } else { "" }
        );
    }
}

/// Writes `rows` (committed, unsealed, in id order) as the next block. Returns (block_no, rows).
fn write_block(key: &[u8; 32], rows: &[(i64, Vec<u8>, String)]) -> TgResult<(i64, i64)> {
    let (prev_no, prev_mac) = chain_head()?;
    // (Only a forged block can hold the largest number: verify() names it.)
    let block_no = prev_no
        .checked_add(1)
        .ok_or_else(|| AuditError::SealConflict(format!("the last block is numbered {prev_no}, the largest possible")))?;
    let root = chain::merkle_root(rows.iter().map(|(_, s, _)| s.as_slice()));
    let ids: Vec<i64> = rows.iter().map(|(i, _, _)| *i).collect();
    let sealed_at = now_micros();
    let b = Block {
        block_no,
        prev_mac: &prev_mac,
        merkle_root: &root,
        row_count: ids.len() as i64,
        first_id: ids[0],
        last_id: *ids.last().unwrap(),
        sealed_at_micros: sealed_at,
    };
    let mac = chain::block_mac(key, &b);
    let ts = TimestampWithTimeZone::try_from(sealed_at).map_err(|_| CoreError::InvalidArgument("clock".into()))?;
    let _w = InternalWrite::begin();
    Spi::run_with_args(
        "INSERT INTO tradeguard_audit.blocks (block_no, prev_mac, merkle_root, row_count, first_id, last_id, sealed_at, ids, mac)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            block_no.into(),
            prev_mac.as_slice().into(),
            root.as_slice().into(),
            b.row_count.into(),
            b.first_id.into(),
            b.last_id.into(),
            ts.into(),
            ids.into(),
            mac.as_slice().into(),
        ],
    )?;
    // The same rows as selected, found by their tuple ids (a TID scan: no index, and never
    // the whole trail); only the sealer updates trail rows, under the seal lock, so the
    // ids still hold. Checked: a difference would make verify() fail later. The rows move to
    // the sealed partition, with the key hash history() finds them by.
    let ctids: Vec<String> = rows.iter().map(|(_, _, t)| t.clone()).collect();
    let marked = Spi::connect_mut(|c| {
        c.update(
            "UPDATE tradeguard_audit.log SET block_no = $1, pk_hash = pg_catalog.jsonb_hash_extended(pk, 0)
              WHERE ctid = ANY ($2::text[]::tid[]) AND block_no IS NULL AND id BETWEEN $3 AND $4",
            None,
            &[block_no.into(), ctids.into(), b.first_id.into(), b.last_id.into()],
        )
        .map(|t| t.len() as i64)
    })?;
    if marked != b.row_count {
        return Err(AuditError::SealConflict(format!("block {block_no} would hold {} rows but {marked} were marked", b.row_count)).into());
    }
    Ok((block_no, b.row_count))
}

/// `tradeguard.seal()`: seals everything that can be sealed now; returns the rows sealed. It
/// also stores this database's key use counts (rotating a key due), which the worker does only
/// in its own database.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
pub fn seal() -> i64 {
    let sealed = seal_pending().or_raise();
    common::as_owner(crate::crypto::activity::store_encryptions_here).or_raise().or_raise();
    sealed
}

/// Seals block after block until a block is not full; returns the rows sealed (seal() and the
/// background worker).
pub fn seal_pending() -> TgResult<i64> {
    let mut total = 0;
    while let Some((_, n)) = seal_once()? {
        total += n;
        if n < MAX_ROWS_PER_BLOCK {
            break;
        }
    }
    Ok(total)
}

#[derive(Default)]
struct Report {
    blocks: i64,
    rows: i64,
    bad: Option<(i64, Option<i64>, Failure)>,
}

impl Report {
    fn fail(&mut self, block: i64, id: Option<i64>, why: Failure) {
        if self.bad.is_none() {
            self.bad = Some((block, id, why));
        }
    }
}

struct BlockRow {
    block_no: i64,
    prev_mac: Vec<u8>,
    merkle_root: Vec<u8>,
    row_count: i64,
    first_id: i64,
    last_id: i64,
    sealed_at: i64,
    ids: Vec<i64>,
    mac: Vec<u8>,
}

/// The next (at most) BLOCKS_PER_SLICE blocks numbered from `from` to `to`, in order: the blocks
/// that are there, whatever their numbers (a gap shows as a block not numbered as expected).
fn load_blocks(from: i64, to: i64) -> TgResult<Vec<BlockRow>> {
    Ok(common::spi_rows(
        "SELECT block_no, prev_mac, merkle_root, row_count, first_id, last_id, sealed_at, ids, mac
           FROM tradeguard_audit.blocks WHERE block_no BETWEEN $1 AND $2 ORDER BY block_no LIMIT $3",
        &[from.into(), to.into(), BLOCKS_PER_SLICE.into()],
        |r| {
            let ts: TimestampWithTimeZone = r.get(7)?.unwrap_or(TimestampWithTimeZone::try_from(0i64).unwrap());
            Ok(BlockRow {
                block_no: r.get(1)?.unwrap_or_default(),
                prev_mac: r.get(2)?.unwrap_or_default(),
                merkle_root: r.get(3)?.unwrap_or_default(),
                row_count: r.get(4)?.unwrap_or_default(),
                first_id: r.get(5)?.unwrap_or_default(),
                last_id: r.get(6)?.unwrap_or_default(),
                sealed_at: ts.into_inner(),
                ids: r.get(8)?.unwrap_or_default(),
                mac: r.get(9)?.unwrap_or_default(),
            })
        },
    )?)
}

/// Blocks read at a time by verify() (to bound memory on long chains).
const BLOCKS_PER_SLICE: i64 = 1000;

/// Every column in table order (so the scan hands rows over without projecting them), for a
/// range of blocks (one scan for many blocks, not one per block), and no ORDER BY (rows are put
/// in id order after checking: 48 bytes each instead of whole rows).
const ROW_QUERY: &str = "SELECT id, txid, at, schema_name, table_name, operation, pk, old_row, new_row,
        current_user_name, session_user_name, application_name, client_addr, app_context, signature, pk_hash, block_no
   FROM tradeguard_audit.log WHERE block_no BETWEEN $1 AND $2";

/// What verification keeps of a row: its id, whether its signature is right, and the
/// signature itself (a Merkle leaf).
struct Checked {
    id: i64,
    sig_ok: bool,
    sig: [u8; 32],
}

/// Rows verified per scan, at most (48 bytes each are kept until their block is checked, so a
/// window holds at most about 100 MB). Each window is one scan, often of the whole trail: a
/// trail of up to two million rows is verified in a single pass.
const WINDOW_ROWS: i64 = 2_000_000;

/// Bytes of rows a verification batch copies out before they are checked (a batch is also
/// cut at each fetch of FETCH_ROWS rows).
const BATCH_BYTES: usize = 64 << 20;
const FETCH_ROWS: i64 = 10_000;

/// `tradeguard.verify_threads`: threads, this one included, that hash in verify().
fn verify_threads() -> usize {
    crate::gucs::VERIFY_THREADS.get().max(1) as usize
}

/// Reads the rows of blocks `lo..=hi` in one scan and checks every signature; returns them by
/// block number.
///
/// The backend reads the fetched tuples and copies the signed fields of each row into a batch
/// of its own memory (a few hundred bytes a row, cheap next to an HMAC), then frees the tuples.
/// With `tradeguard.verify_threads` above 1, helper threads recompute a batch's signatures while
/// the backend reads the next one. They only ever read those Rust-owned copies, never
/// PostgreSQL's memory: a backend that exits in the middle (a FATAL error, such as
/// pg_terminate_backend, exits without unwinding and frees PostgreSQL's memory on its way out)
/// leaves them nothing freed to read. On an ERROR, `std::thread::scope` joins them before the
/// error goes on.
fn scan_rows(signer: &chain::RowSigner, lo: i64, hi: i64, expected: &HashMap<i64, i64>) -> TgResult<HashMap<i64, Vec<Checked>>> {
    let threads = verify_threads();
    // A read-only cursor fetched in batches: a window's rows are never all in memory at once.
    let rows = Spi::connect(|_c| {
        let mut out: HashMap<i64, Vec<Checked>> = HashMap::default();
        unsafe {
            let query = std::ffi::CString::new(ROW_QUERY).expect("no NUL in the query");
            let mut types = [pg_sys::INT8OID, pg_sys::INT8OID];
            let mut args = [pg_sys::Datum::from(lo), pg_sys::Datum::from(hi)];
            // The snapshot SPI gives every other query of verify(): the statement's until the
            // transaction writes, then a new one per command. Read with the statement's older
            // snapshot after the blocks were read with a newer one, the rows of a block sealed
            // in between would look unsealed, and be reported missing.
            let read_only = pg_sys::GetCurrentTransactionIdIfAny() == pg_sys::InvalidTransactionId;
            let portal = pg_sys::SPI_cursor_open_with_args(
                std::ptr::null(),
                query.as_ptr(),
                2,
                types.as_mut_ptr(),
                args.as_mut_ptr(),
                std::ptr::null(),
                read_only,
                0,
            );
            if portal.is_null() {
                return Err(CoreError::InvalidArgument("verify: could not open a cursor over the trail".into()));
            }
            // Detoasted images and pk_hash computations, freed row batch by row batch.
            let mut cxt = pgrx::PgMemoryContexts::new("tradeguard verify batch");
            std::thread::scope(|scope| {
                let mut checker = Checker { scope, signer, threads, in_flight: None, spare: None };
                let mut batch = Batch::default();
                loop {
                    pg_sys::SPI_cursor_fetch(portal, true, FETCH_ROWS);
                    let tt = pg_sys::SPI_tuptable;
                    let n = pg_sys::SPI_processed as usize;
                    if tt.is_null() || n == 0 {
                        break;
                    }
                    let desc = (*tt).tupdesc;
                    // One deform per row (attribute by attribute access re-walks the varlena columns).
                    let natts = (*desc).natts as usize;
                    let mut values = vec![pg_sys::Datum::from(0usize); natts];
                    let mut nulls = vec![false; natts];
                    for i in 0..n {
                        pg_sys::heap_deform_tuple(*(*tt).vals.add(i), desc, values.as_mut_ptr(), nulls.as_mut_ptr());
                        cxt.switch_to(|_| batch.push(&values, &nulls));
                        if batch.bytes.len() > BATCH_BYTES {
                            // Everything of these rows is copied out.
                            cxt.reset();
                            checker.check(std::mem::take(&mut batch), expected, &mut out);
                            batch = checker.fresh();
                        }
                    }
                    cxt.reset();
                    pg_sys::SPI_freetuptable(tt);
                    checker.check(std::mem::take(&mut batch), expected, &mut out);
                    batch = checker.fresh();
                }
                checker.finish(expected, &mut out);
            });
            pg_sys::SPI_cursor_close(portal);
        }
        Ok::<_, CoreError>(out)
    })?;
    Ok(rows)
}

/// Rows read by verify(), their signed fields copied into one buffer.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    rows: Vec<Copied>,
}

/// One row of a [`Batch`]: the fixed fields, and where its variable ones lie in the buffer.
struct Copied {
    id: i64,
    txid: i64,
    at_micros: i64,
    /// schema_name .. app_context (columns 4-14), as (start, end) in the batch's buffer.
    fields: [Option<(usize, usize)>; 11],
    /// The stored signature, when it is 32 bytes long.
    stored: Option<[u8; 32]>,
    /// Whether pk_hash is the one derived from pk.
    hash_ok: bool,
    block: i64,
}

impl Batch {
    /// Copies out the row deformed into `values`/`nulls` (detoasting in the current memory
    /// context).
    unsafe fn push(&mut self, values: &[pg_sys::Datum], nulls: &[bool]) {
        let col = |k: usize| -> Option<pg_sys::Datum> { (!nulls[k - 1]).then_some(values[k - 1]) };
        let int = |k: usize| col(k).map(|d| d.value() as i64).unwrap_or_default();
        let mut fields = [None; 11];
        for (f, k) in fields.iter_mut().zip(4..=14) {
            *f = col(k).map(|d| {
                let b = super::triggers::varlena_bytes(d);
                let start = self.bytes.len();
                self.bytes.extend_from_slice(b);
                (start, self.bytes.len())
            });
        }
        // pk_hash is not signed but derived from the signed pk: a changed one (which would hide
        // the row from history()) counts as an altered row.
        let hash_ok = match (col(7), col(16)) {
            (Some(pk), Some(h)) => super::triggers::Jsonb(pk).pk_hash() == h.value() as i64,
            (None, None) => true,
            _ => false,
        };
        let stored = col(15).map(super::triggers::varlena_bytes).and_then(|b| <[u8; 32]>::try_from(b).ok());
        self.rows.push(Copied { id: int(1), txid: int(2), at_micros: int(3), fields, stored, hash_ok, block: int(17) });
    }

    /// Whether each row's stored signature is the one recomputed (and its pk_hash right),
    /// computed by up to `threads` threads. Pure computation over the batch's own bytes.
    fn signatures_ok(&self, signer: &chain::RowSigner, threads: usize) -> Vec<bool> {
        common::par::map(&self.rows, threads, common::par::MIN_PER_THREAD, |r| {
            let bytes = |i: usize| r.fields[i].map(|(a, b)| &self.bytes[a..b]);
            let text = |i: usize| bytes(i).map(|b| std::str::from_utf8(b).unwrap_or("\u{fffd}"));
            let row = chain::AuditRow {
                id: r.id,
                txid: r.txid,
                at_micros: r.at_micros,
                schema_name: text(0).unwrap_or_default(),
                table_name: text(1).unwrap_or_default(),
                operation: text(2).unwrap_or_default(),
                pk: bytes(3),
                old_row: bytes(4),
                new_row: bytes(5),
                current_user: text(6).unwrap_or_default(),
                session_user: text(7).unwrap_or_default(),
                application_name: text(8),
                client_addr: bytes(9),
                app_context: bytes(10),
            };
            r.hash_ok && r.stored.is_some_and(|s| signer.matches(&row, &s))
        })
    }

    /// Files each checked row under its block.
    fn record(&self, ok: &[bool], expected: &HashMap<i64, i64>, out: &mut HashMap<i64, Vec<Checked>>) {
        for (r, &sig_ok) in self.rows.iter().zip(ok) {
            out.entry(r.block)
                .or_insert_with(|| Vec::with_capacity(expected.get(&r.block).map_or(0, |&n| n.clamp(0, MAX_ROWS_PER_BLOCK) as usize)))
                .push(Checked { id: r.id, sig_ok, sig: r.stored.unwrap_or_default() });
        }
    }
}

/// Checks batches: on this thread with one thread, else on helper threads, one batch at a
/// time while this thread reads the next.
struct Checker<'scope, 'env> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    signer: &'env chain::RowSigner,
    threads: usize,
    in_flight: Option<(std::sync::Arc<Batch>, std::thread::ScopedJoinHandle<'scope, Vec<bool>>)>,
    /// A checked batch, emptied, whose buffers the next one reuses (no page faults from growing
    /// fresh buffers of megabytes at every fetch).
    spare: Option<Batch>,
}

impl Checker<'_, '_> {
    fn check(&mut self, batch: Batch, expected: &HashMap<i64, i64>, out: &mut HashMap<i64, Vec<Checked>>) {
        self.finish(expected, out);
        if batch.rows.is_empty() {
            self.recycle(batch);
            return;
        }
        if self.threads == 1 {
            batch.record(&batch.signatures_ok(self.signer, 1), expected, out);
            self.recycle(batch);
            return;
        }
        let (batch, signer, helpers) = (std::sync::Arc::new(batch), self.signer, self.threads - 1);
        let theirs = batch.clone();
        match common::par::spawn_without_signals(self.scope, move || theirs.signatures_ok(signer, helpers)) {
            Some(handle) => self.in_flight = Some((batch, handle)),
            // No thread could be started: checked here.
            None => batch.record(&batch.signatures_ok(signer, 1), expected, out),
        }
    }

    /// An empty batch, with the buffers of a checked one when there is one.
    fn fresh(&mut self) -> Batch {
        self.spare.take().unwrap_or_default()
    }

    fn recycle(&mut self, mut batch: Batch) {
        batch.bytes.clear();
        batch.rows.clear();
        self.spare = Some(batch);
    }

    /// Waits for the batch being checked, if any, and files its rows.
    fn finish(&mut self, expected: &HashMap<i64, i64>, out: &mut HashMap<i64, Vec<Checked>>) {
        if let Some((batch, handle)) = self.in_flight.take() {
            let ok = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            batch.record(&ok, expected, out);
            // (The helper, finished, has dropped its reference.)
            if let Ok(batch) = std::sync::Arc::try_unwrap(batch) {
                self.recycle(batch);
            }
        }
    }
}

/// Checks one block's rows (verified by scan_rows): membership against the block's id list,
/// then every signature, then the Merkle root.
fn check_block(b: &BlockRow, mut rows: Vec<Checked>, rep: &mut Report) -> TgResult<()> {
    rows.sort_unstable_by_key(|r| r.id);
    rep.rows += rows.len() as i64;
    let mut i = 0;
    let mut j = 0;
    while i < b.ids.len() || j < rows.len() {
        match (b.ids.get(i), rows.get(j).map(|r| r.id)) {
            (Some(&want), Some(got)) if want == got => {
                if !rows[j].sig_ok {
                    rep.fail(b.block_no, Some(got), Failure::RowAltered);
                    return Ok(());
                }
                i += 1;
                j += 1;
            }
            (Some(&want), Some(got)) if want < got => {
                rep.fail(b.block_no, Some(want), Failure::RowMissing);
                return Ok(());
            }
            (Some(&want), None) => {
                rep.fail(b.block_no, Some(want), Failure::RowMissing);
                return Ok(());
            }
            (_, Some(got)) => {
                rep.fail(b.block_no, Some(got), Failure::RowInserted);
                return Ok(());
            }
            (None, None) => break,
        }
    }
    let leaves: Vec<&[u8]> = rows.iter().map(|r| r.sig.as_slice()).collect();
    let root = chain::merkle_root_threads(&leaves, verify_threads());
    if root.as_slice() != b.merkle_root.as_slice() || b.ids.len() as i64 != b.row_count {
        rep.fail(b.block_no, None, Failure::BlockAltered);
    }
    Ok(())
}

fn verify_impl(from: i64, to: Option<i64>) -> TgResult<Report> {
    if let Some(t) = to.filter(|t| *t < from) {
        return Err(AuditError::InvalidArgument(format!("to_block {t} is before from_block {from}")).into());
    }
    let key = audit_key()?;
    let signer = chain::RowSigner::new(&key);
    common::as_owner(|| -> TgResult<Report> {
        let mut rep = Report::default();
        let (first, last) = common::spi_first_row("SELECT min(block_no), max(block_no) FROM tradeguard_audit.blocks", &[], |r| {
            Ok((r.get::<i64>(1)?, r.get::<i64>(2)?))
        })?
        .unwrap_or((None, None));
        // Rows no block can hold: a block number below the chain's first block (zero, negative,
        // archived) when checking from the start, or, with no block at all, any block number.
        let below_first = |first: Option<i64>| -> TgResult<Option<(i64, i64)>> {
            Ok(common::spi_first_row(
                "SELECT block_no, id FROM tradeguard_audit.log
                  WHERE block_no IS NOT NULL AND ($1::bigint IS NULL OR block_no < $1)
                  ORDER BY block_no, id LIMIT 1",
                &[first.into()],
                |r| Ok((r.get::<i64>(1)?.unwrap_or_default(), r.get::<i64>(2)?.unwrap_or_default())),
            )?)
        };
        let Some(first) = first else {
            if let Some((blk, id)) = below_first(None)? {
                rep.fail(blk, Some(id), Failure::RowInserted);
            }
            return Ok(rep);
        };
        // Checking from the start (block 1, or the first block left after archiving) starts
        // at the first block there is, also one numbered below 1: a block no seal makes, so it
        // cannot chain (see `expected_prev`).
        let from_start = from <= first.max(1);
        if from_start {
            if let Some((blk, id)) = below_first(Some(first))? {
                rep.fail(blk, Some(id), Failure::RowInserted);
                return Ok(rep);
            }
        }
        let last = last.unwrap_or(first);
        // Asking for blocks outside the chain is a mistake, not tampering: say so (never an
        // "ok" over no block, nor a broken chain where nothing was checked).
        if from > last {
            return Err(AuditError::NoSuchBlock(from).into());
        }
        if let Some(t) = to.filter(|t| *t < first) {
            return Err(AuditError::InvalidArgument(format!(
                "blocks up to {t} are not in the chain, which starts at block {first} (earlier blocks were archived)"
            ))
            .into());
        }
        let from = if from_start { first } else { from };
        let to = to.unwrap_or(i64::MAX);
        // What block `from` must chain to.
        let mut expected_prev: Vec<u8> = if from == 1 {
            chain::GENESIS.to_vec()
        } else {
            match common::spi_first::<Vec<u8>>(
                "SELECT mac FROM tradeguard_audit.blocks WHERE block_no = $1",
                &[(from - 1).into()],
            )? {
                Some(m) => m,
                None => match anchor()? {
                    Some((n, m, true)) if n == from - 1 => m,
                    _ => {
                        rep.fail(from, None, Failure::ChainBroken);
                        return Ok(rep);
                    }
                },
            }
        };
        let mut expected_no = from;
        // Blocks are read in slices, each the next blocks there are (never a range of numbers,
        // which a gap could leave empty and end the check early), up to the last one.
        let end = to.min(last);
        let mut lo = from;
        while lo <= end {
            let blocks = load_blocks(lo, end)?;
            let mut window: (i64, HashMap<i64, Vec<Checked>>) = (i64::MIN, HashMap::default());
            for (k, b) in blocks.iter().enumerate() {
                if b.block_no != expected_no || b.prev_mac != expected_prev {
                    rep.fail(expected_no.min(b.block_no), None, Failure::ChainBroken);
                    return Ok(rep);
                }
                let mac = chain::block_mac(
                    &key,
                    &Block {
                        block_no: b.block_no,
                        prev_mac: &b.prev_mac,
                        merkle_root: &b.merkle_root,
                        row_count: b.row_count,
                        first_id: b.first_id,
                        last_id: b.last_id,
                        sealed_at_micros: b.sealed_at,
                    },
                );
                if mac.as_slice() != b.mac.as_slice() {
                    rep.fail(b.block_no, None, Failure::BlockAltered);
                    return Ok(rep);
                }
                if b.block_no > window.0 {
                    // The next blocks, up to WINDOW_ROWS rows (at least this block), in one scan.
                    let mut rows = 0i64;
                    let last = blocks[k..]
                        .iter()
                        .take_while(|x| {
                            rows = rows.saturating_add(x.row_count.max(0));
                            x.block_no == b.block_no || rows <= WINDOW_ROWS
                        })
                        .last()
                        .map_or(b.block_no, |x| x.block_no);
                    let expected: HashMap<i64, i64> = blocks[k..]
                        .iter()
                        .take_while(|x| x.block_no <= last)
                        .map(|x| (x.block_no, x.row_count))
                        .collect();
                    window = (last, scan_rows(&signer, b.block_no, last, &expected)?);
                }
                check_block(b, window.1.remove(&b.block_no).unwrap_or_default(), &mut rep)?;
                rep.blocks += 1;
                if rep.bad.is_some() {
                    return Ok(rep);
                }
                expected_prev = b.mac.clone();
                expected_no += 1;
            }
            match blocks.last() {
                Some(b) => lo = b.block_no.saturating_add(1),
                None => break,
            }
            if blocks.len() < BLOCKS_PER_SLICE as usize || lo == i64::MAX {
                break;
            }
        }
        // A row that claims a block beyond the chain. (Every block from `from` to the last one
        // exists and was checked above, rows claiming one of them included: one index range
        // scan past the last block is all that is left, not a second pass over the trail.)
        if to == i64::MAX {
            if let Some(id) = common::spi_first::<i64>(
                "SELECT min(l.id) FROM tradeguard_audit.log l
                  WHERE l.block_no > $1
                    AND NOT EXISTS (SELECT 1 FROM tradeguard_audit.blocks b WHERE b.block_no = l.block_no)",
                &[(expected_no - 1).into()],
            )? {
                let blk = common::spi_first::<i64>(
                    "SELECT block_no FROM tradeguard_audit.log WHERE id = $1 AND block_no > $2",
                    &[id.into(), (expected_no - 1).into()],
                )?;
                rep.fail(blk.unwrap_or_default(), Some(id), Failure::RowInserted);
            }
            // An unsealed row that shares its id with another trail row: forged or copied (the
            // sealer leaves such rows out; ids come from one sequence).
            if let Some(id) = common::spi_first::<i64>(
                "SELECT min(u.id) FROM tradeguard_audit.log_unsealed u
                  WHERE EXISTS (SELECT 1 FROM tradeguard_audit.log_sealed s WHERE s.id = u.id)
                     OR EXISTS (SELECT 1 FROM tradeguard_audit.log_unsealed d WHERE d.id = u.id AND d.ctid <> u.ctid)",
                &[],
            )? {
                rep.fail(expected_no, Some(id), Failure::RowInserted);
            }
            // An unsealed row of a transaction that had not ended when this snapshot was taken
            // can only be visible if it is this transaction's own; any other is forged (it would
            // never be sealed, so no block would ever check it).
            if let Some(id) = common::spi_first::<i64>(
                "SELECT min(id) FROM tradeguard_audit.log
                  WHERE block_no IS NULL
                    AND txid >= pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint
                    AND txid IS DISTINCT FROM pg_catalog.pg_current_xact_id_if_assigned()::text::bigint",
                &[],
            )? {
                rep.fail(expected_no, Some(id), Failure::RowInserted);
            }
        }
        Ok(rep)
    })?
}

/// `tradeguard.verify(from_block, to_block)`: recomputes every signature, Merkle root and MAC.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // (pgrx spells a function's result columns as a tuple type)
pub fn verify(
    from_block: default!(Option<i64>, 1),
    to_block: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(blocks_checked, i64),
        name!(rows_checked, i64),
        name!(first_bad_block, Option<i64>),
        name!(first_bad_id, Option<i64>),
        name!(reason, Option<String>),
    ),
> {
    let rep = verify_impl(from_block.unwrap_or(1), to_block).or_raise();
    let (bb, bid, why) = match rep.bad {
        Some((b, id, why)) => (Some(b), id, Some(why.as_str().to_string())),
        None => (None, None, None),
    };
    TableIterator::once((rep.bad.is_none(), rep.blocks, rep.rows, bb, bid, why))
}

/// `tradeguard.audit_digest()`: the latest block and its MAC, to keep outside the database.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
pub fn audit_digest() -> TableIterator<'static, (name!(block_no, i64), name!(hash, String), name!(sealed_at, Option<TimestampWithTimeZone>))> {
    let row = common::as_owner(|| {
        common::spi_first_row(
            "SELECT block_no, pg_catalog.encode(mac, 'hex'), sealed_at FROM tradeguard_audit.blocks ORDER BY block_no DESC LIMIT 1",
            &[],
            |r| {
                Ok((
                    r.get::<i64>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<TimestampWithTimeZone>(3)?,
                ))
            },
        )
    })
    .and_then(|r| r.map_err(Into::into))
    .or_raise();
    TableIterator::new(row.into_iter().collect::<Vec<_>>())
}

/// `tradeguard.verify_digest(block_no, hash)`: true when the chain still contains that block
/// with that hash and verifies from it to its end (a truncated tail or a rewritten chain fails).
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
pub fn verify_digest(block_no: i64, hash: &str) -> bool {
    let stored = common::as_owner(|| {
        common::spi_first::<String>(
            "SELECT pg_catalog.encode(mac, 'hex') FROM tradeguard_audit.blocks WHERE block_no = $1",
            &[block_no.into()],
        )
    })
    .and_then(|r| r.map_err(Into::into))
    .or_raise();
    let Some(stored) = stored else {
        return archived_digest_holds(block_no, hash).or_raise();
    };
    if !stored.eq_ignore_ascii_case(hash.trim()) {
        return false;
    }
    verify_impl(block_no, None).or_raise().bad.is_none()
}

/// A digest of a block archive_blocks removed holds when an authentic retention anchor recorded
/// that block's MAC (archiving verified the chain up to it) and the chain left verifies from its
/// first block on (anchored, through the anchors, to that one).
fn archived_digest_holds(block_no: i64, hash: &str) -> TgResult<bool> {
    common::as_owner(|| -> TgResult<bool> {
        let Some((_, last_mac, true)) = anchor_at(Some(block_no))? else { return Ok(false) };
        if !hex::encode(&last_mac).eq_ignore_ascii_case(hash.trim()) {
            return Ok(false);
        }
        let any_block = common::spi_first::<i64>("SELECT min(block_no) FROM tradeguard_audit.blocks", &[])?;
        Ok(match any_block {
            Some(_) => verify_impl(1, None)?.bad.is_none(),
            // Everything archived: the latest anchor is where the chain ends.
            None => anchor()?.is_some_and(|(n, _, authentic)| authentic && n >= block_no),
        })
    })?
}

/// `tradeguard.archive_blocks(through_block, reason)` (admin): drops sealed blocks and their rows
/// up to `through_block`, keeping the last removed MAC as the anchor verify() starts from.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
pub fn archive_blocks(through_block: Option<i64>, reason: Option<&str>) -> i64 {
    // Not STRICT: a NULL argument is a mistake to say, not a silent NULL (nothing archived).
    let (Some(through_block), Some(reason)) = (through_block, reason) else {
        AuditError::InvalidArgument("archive_blocks: through_block and reason must not be NULL".into()).raise_as();
    };
    archive_impl(through_block, reason).or_raise()
}

fn archive_impl(through: i64, reason: &str) -> TgResult<i64> {
    if reason.trim().chars().count() < 8 {
        return Err(AuditError::InvalidArgument("give a reason of at least 8 characters".into()).into());
    }
    // Blocks are sealed in order: `through` is the newest one that would go.
    let min_age = crate::gucs::ARCHIVE_MIN_AGE.get();
    if min_age > 0 {
        let too_recent = common::as_owner(|| {
            common::spi_first_row(
                "SELECT pg_catalog.date_trunc('second', pg_catalog.now() - sealed_at)::text,
                        pg_catalog.current_setting('tradeguard.archive_min_age')
                   FROM tradeguard_audit.blocks
                  WHERE block_no = $1 AND sealed_at > pg_catalog.now() - pg_catalog.make_interval(mins => $2)",
                &[through.into(), min_age.into()],
                |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
            )
        })??;
        if let Some((age, min)) = too_recent {
            return Err(AuditError::TooRecent { block: through, age, min }.into());
        }
    }
    let rep = verify_impl(1, Some(through))?;
    if let Some((b, _, why)) = rep.bad {
        return Err(AuditError::InvalidArgument(format!(
            "refusing to archive a chain that does not verify (block {b}: {})",
            why.as_str()
        ))
        .into());
    }
    let removed = common::as_owner(|| -> TgResult<i64> {
        let mac = common::spi_first::<Vec<u8>>(
            "SELECT mac FROM tradeguard_audit.blocks WHERE block_no = $1",
            &[through.into()],
        )?
        .ok_or(AuditError::NoSuchBlock(through))?;
        let _w = InternalWrite::begin();
        let n = Spi::connect_mut(|c| {
            c.update("DELETE FROM tradeguard_audit.log WHERE block_no <= $1", None, &[through.into()]).map(|t| t.len() as i64)
        })?;
        Spi::run_with_args("DELETE FROM tradeguard_audit.blocks WHERE block_no <= $1", &[through.into()])?;
        let by = common::current_role_name();
        let anchor_mac = chain::retention_mac(&*audit_key()?, through, &mac, n, reason, &by);
        Spi::run_with_args(
            "INSERT INTO tradeguard_audit.retention (through_block, last_mac, reason, removed_by, rows_removed, mac)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[through.into(), mac.into(), reason.into(), by.as_str().into(), n.into(), anchor_mac.as_slice().into()],
        )?;
        Ok(n)
    })??;
    super::record_system(
        "ARCHIVE_BLOCKS",
        "tradeguard_audit",
        "blocks",
        serde_json::json!({ "through_block": through, "rows_removed": removed, "reason": reason }),
    )?;
    // Also an alert (high): trail rows leave the database, however old.
    common::events::record("audit_archived", "high", &serde_json::json!({ "through_block": through, "rows_removed": removed, "reason": reason }))?;
    Ok(removed)
}
