//! `history()`'s walk: the trail rows of a row, followed back through primary-key changes.
//! The SQL function `tradeguard.history(tbl, pk)` fetches and formats the rows whose ids this
//! returns.

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};

use pgrx::prelude::*;

use crate::common;
use crate::error::{OrRaise, TgResult};

/// One trail row of a key: enough to walk back (images as jsonb text, parsed when compared).
struct Rec {
    id: i64,
    op: String,
    /// For an UPDATE that changed the row's key: the key it had before (jsonb text).
    old_key: Option<String>,
    old_img: Option<String>,
    new_img: Option<String>,
    new_parsed: OnceCell<Option<serde_json::Map<String, serde_json::Value>>>,
    /// Index of the key's last DELETE at or before this row (set when the key is read).
    last_delete: Option<usize>,
}

impl Rec {
    fn new_map(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.new_parsed
            .get_or_init(|| self.new_img.as_deref().and_then(|t| serde_json::from_str(t).ok()))
            .as_ref()
    }
}

/// Whether `img` (a row image) can be the state `rec` left the row in: equal on every column
/// both have (a column added or dropped in between is in only one of them).
fn continues(rec: &Rec, img: &serde_json::Map<String, serde_json::Value>) -> bool {
    rec.new_map().is_none_or(|m| m.iter().all(|(k, v)| img.get(k).is_none_or(|w| w == v)))
}

/// A name the table was recorded under: rows with `lo < id < hi` (its id range under that name).
struct Era {
    schema: String,
    table: String,
    lo: i64,
    hi: i64,
}

/// The names the audited table now called `schema.table` was recorded under, with their id
/// ranges: from the row that registered it (`since_id`), the former names its registration
/// kept (renames, SET SCHEMA, schema renames), then its current name.
///
/// A table audited now reads its registration; one whose auditing unaudit_table paused reads
/// what the pause kept (the same table: its oid). A table with neither has no history: rows
/// recorded under its name belong to another table (dropped, or renamed away), not to it.
fn eras(relid: pg_sys::Oid, schema: &str, table: &str) -> TgResult<Vec<Era>> {
    // (paused_tables is tradeguard's own; the auditor calling history() reads it through this.)
    let registration = common::as_owner(|| {
        common::spi_first_row(
            "SELECT former_names, since_id FROM tradeguard.audited_tables WHERE schema_name = $1 AND table_name = $2
             UNION ALL
             SELECT p.former_names, p.since_id FROM tradeguard_audit.paused_tables p
              WHERE p.relid = $3 AND p.schema_name = $1 AND p.table_name = $2
             LIMIT 1",
            &[schema.into(), table.into(), relid.into()],
            |r| Ok((r.get::<pgrx::JsonB>(1)?, r.get::<i64>(2)?)),
        )
    })??;
    let Some((former, since)) = registration else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut lo = since.unwrap_or(0);
    let names = former.and_then(|j| j.0.as_array().cloned()).unwrap_or_default();
    for n in names {
        let (Some(s), Some(t), Some(hi)) = (n["schema"].as_str(), n["table"].as_str(), n["until"].as_i64()) else { continue };
        out.push(Era { schema: s.to_string(), table: t.to_string(), lo, hi });
        lo = hi;
    }
    out.push(Era { schema: schema.to_string(), table: table.to_string(), lo, hi: i64::MAX });
    Ok(out)
}

/// The trail rows recorded under key `key` (jsonb text) in `eras`, oldest first. Sealed rows
/// are found through pk_hash, unsealed ones (few) by a scan.
fn rows_of(eras: &[Era], key: &str) -> TgResult<Vec<Rec>> {
    let col = |f: fn(&Era) -> &str| eras.iter().map(|e| f(e).to_string()).collect::<Vec<_>>();
    let (schemas, tables) = (col(|e| &e.schema), col(|e| &e.table));
    let (los, his): (Vec<i64>, Vec<i64>) = eras.iter().map(|e| (e.lo, e.hi)).unzip();
    Ok(Spi::connect(|client| {
        let t = client.select(
            "SELECT l.id, l.operation,
                    -- the key the row had before an UPDATE, when it differs as jsonb (1 = 1.0)
                    (SELECT o::text FROM (SELECT pg_catalog.jsonb_object_agg(f, l.old_row -> f) AS o
                                            FROM pg_catalog.jsonb_object_keys(l.pk) f) k
                      WHERE l.operation = 'UPDATE' AND k.o IS DISTINCT FROM l.pk),
                    l.old_row::text, l.new_row::text
               FROM (SELECT * FROM tradeguard.audit_log a
                      WHERE a.block_no IS NOT NULL AND a.pk_hash = pg_catalog.jsonb_hash_extended($3::jsonb, 0)
                     UNION ALL
                     SELECT * FROM tradeguard.audit_log u WHERE u.block_no IS NULL) l
              WHERE l.pk = $3::jsonb
                AND EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]),
                                                 pg_catalog.unnest($4::bigint[]), pg_catalog.unnest($5::bigint[])) e(s, t, lo, hi)
                             WHERE l.schema_name = e.s AND l.table_name = e.t AND l.id > e.lo
                               AND (l.id < e.hi OR e.hi = 9223372036854775807))
              ORDER BY l.id",
            None,
            &[schemas.into(), tables.into(), key.into(), los.into(), his.into()],
        )?;
        let mut out = Vec::new();
        for r in t {
            out.push(Rec {
                id: r.get::<i64>(1)?.unwrap_or_default(),
                op: r.get::<String>(2)?.unwrap_or_default(),
                old_key: r.get::<String>(3)?,
                old_img: r.get::<String>(4)?,
                new_img: r.get::<String>(5)?,
                new_parsed: OnceCell::new(),
                last_delete: None,
            });
        }
        let mut last = None;
        for (i, r) in out.iter_mut().enumerate() {
            if r.op == "DELETE" {
                last = Some(i);
            }
            r.last_delete = last;
        }
        Ok::<_, pgrx::spi::Error>(out)
    })?)
}

/// Rows of each key read so far, under the first spelling of the key met; other spellings of an
/// equal key (`1.0` for `1` in a numeric key) point to it, so no key is read twice.
#[derive(Default)]
struct Keys {
    rows: HashMap<String, Vec<Rec>>,
    alias: HashMap<String, String>,
}

impl Keys {
    /// The spelling `key` is read under (reading its rows the first time).
    fn load(&mut self, eras: &[Era], key: &str) -> TgResult<String> {
        if self.rows.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(k) = self.alias.get(key) {
            return Ok(k.clone());
        }
        let known: Vec<String> = self.rows.keys().cloned().collect();
        let same = common::spi_first::<String>(
            "SELECT k FROM pg_catalog.unnest($1::text[]) k WHERE k::jsonb = $2::jsonb LIMIT 1",
            &[known.into(), key.into()],
        )?;
        match same {
            Some(k) => {
                self.alias.insert(key.to_string(), k.clone());
                Ok(k)
            }
            None => {
                self.rows.insert(key.to_string(), rows_of(eras, key)?);
                Ok(key.to_string())
            }
        }
    }
}

/// How many earlier rows of a key are compared with the state a row was found in, to tell the
/// row's own predecessor from another row's (two rows swapping keys); past that, the newest.
const MATCH_WINDOW: usize = 64;

/// The ids `history(tbl, pk)` lists: every trail row recorded under the key, then, for each
/// UPDATE that gave a row the key, that row's earlier rows, walking back under the key it had
/// before: until its INSERT, a DELETE (an earlier row that had the key), the UPDATE that gave it
/// that earlier key (the walk goes on under the key before), or a row already listed. Each step
/// takes the newest earlier row of the key; when rows of two rows interleave (keys swapped in a
/// deferred-key transaction), the newest one whose image continues into the state the next
/// row found is preferred. Each key's rows are read once.
fn walk(eras: &[Era], pk: &str) -> TgResult<Vec<i64>> {
    let mut keys = Keys::default();
    let mut ids = BTreeSet::new();
    // (key, walk back from before this id, the image the row had then)
    let mut todo: Vec<(String, i64, Option<String>)> = Vec::new();
    let top = keys.load(eras, pk)?;
    for r in &keys.rows[&top] {
        ids.insert(r.id);
        if let Some(old) = &r.old_key {
            todo.push((old.clone(), r.id, r.old_img.clone()));
        }
    }
    while let Some((key, before, img)) = todo.pop() {
        let key = keys.load(eras, &key)?;
        let rows = &keys.rows[&key];
        let mut end = rows.partition_point(|r| r.id < before);
        let mut img = img;
        loop {
            // Candidates: the earlier rows back to the key's last DELETE.
            let floor = if end == 0 { 0 } else { rows[end - 1].last_delete.map_or(0, |d| d + 1) };
            if floor >= end {
                break;
            }
            let want: Option<serde_json::Map<String, serde_json::Value>> = img.as_deref().and_then(|t| serde_json::from_str(t).ok());
            let i = want
                .as_ref()
                .and_then(|w| (floor..end).rev().take(MATCH_WINDOW).find(|&i| continues(&rows[i], w)))
                .unwrap_or(end - 1);
            let r = &rows[i];
            if !ids.insert(r.id) || r.op == "INSERT" {
                break;
            }
            if let Some(old) = &r.old_key {
                todo.push((old.clone(), r.id, r.old_img.clone()));
                break;
            }
            img = r.old_img.clone();
            end = i;
        }
    }
    Ok(ids.into_iter().collect())
}

/// `tradeguard.history_ids(tbl, pk)`: the trail row ids `tradeguard.history()` shows (its
/// walk; auditors call `history()`).
#[pg_extern(stable, strict)]
#[search_path(pg_catalog, pg_temp)]
fn history_ids(tbl: pg_sys::Oid, pk: &str) -> Vec<i64> {
    let names = common::spi_first_row(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[tbl.into()],
        |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
    );
    let run = || -> TgResult<Vec<i64>> {
        match names? {
            Some((schema, table)) => walk(&eras(tbl, &schema, &table)?, pk),
            None => Ok(Vec::new()),
        }
    };
    run().or_raise()
}
