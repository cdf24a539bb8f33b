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
    /// For an UPDATE: the key the row had before it (jsonb text).
    old_key: Option<String>,
    old_img: Option<String>,
    new_img: Option<String>,
    new_parsed: OnceCell<Option<serde_json::Map<String, serde_json::Value>>>,
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
    rec.new_map().is_some_and(|m| m.iter().all(|(k, v)| img.get(k).is_none_or(|w| w == v)))
}

/// The trail rows of `table` recorded under key `key` (jsonb text), oldest first. Sealed rows are
/// found through pk_hash, unsealed ones (few) by a scan.
fn rows_of(schema: &str, table: &str, key: &str) -> TgResult<Vec<Rec>> {
    Ok(Spi::connect(|client| {
        let t = client.select(
            "SELECT l.id, l.operation,
                    CASE WHEN l.operation = 'UPDATE' THEN
                      (SELECT pg_catalog.jsonb_object_agg(f, l.old_row -> f) FROM pg_catalog.jsonb_object_keys(l.pk) f)::text END,
                    l.old_row::text, l.new_row::text
               FROM (SELECT * FROM tradeguard.audit_log a
                      WHERE a.block_no IS NOT NULL AND a.pk_hash = pg_catalog.jsonb_hash_extended($3::jsonb, 0)
                     UNION ALL
                     SELECT * FROM tradeguard.audit_log u WHERE u.block_no IS NULL) l
              WHERE l.schema_name = $1 AND l.table_name = $2 AND l.pk = $3::jsonb
              ORDER BY l.id",
            None,
            &[schema.into(), table.into(), key.into()],
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
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })?)
}

/// The ids `history(tbl, pk)` lists: every trail row recorded under the key, then, for each
/// UPDATE that gave a row the key, that row's earlier rows: walking back under the key it had
/// before, from the newest row that left the row in the state the UPDATE found it in (its image
/// continues into the UPDATE's old image: not another row that had the key, even within a
/// deferred-key transaction), until its INSERT, the UPDATE that gave it that earlier key (the
/// walk goes on under the key before), or a row already listed. Each key's rows are read once.
fn walk(schema: &str, table: &str, pk: &str) -> TgResult<Vec<i64>> {
    let mut keys: HashMap<String, Vec<Rec>> = HashMap::new();
    let mut ids = BTreeSet::new();
    // (key, walk back from before this id, the image the row had then)
    let mut todo: Vec<(String, i64, Option<String>)> = Vec::new();
    let top = rows_of(schema, table, pk)?;
    for r in &top {
        ids.insert(r.id);
        if r.op == "UPDATE" {
            if let Some(old) = r.old_key.as_ref().filter(|k| k.as_str() != pk) {
                todo.push((old.clone(), r.id, r.old_img.clone()));
            }
        }
    }
    keys.insert(pk.to_string(), top);
    while let Some((key, before, img)) = todo.pop() {
        if !keys.contains_key(&key) {
            let rows = rows_of(schema, table, &key)?;
            keys.insert(key.clone(), rows);
        }
        let rows = &keys[&key];
        let mut end = rows.partition_point(|r| r.id < before);
        let mut img: Option<serde_json::Map<String, serde_json::Value>> = img.as_deref().and_then(|t| serde_json::from_str(t).ok());
        loop {
            let Some(want) = img.as_ref() else { break };
            // The newest earlier row of this key that left the row as the next one found it.
            let Some(i) = (0..end).rev().find(|&i| continues(&rows[i], want)) else { break };
            let r = &rows[i];
            if !ids.insert(r.id) || r.op == "INSERT" {
                break;
            }
            match r.old_key.as_ref() {
                Some(old) if old != &key => {
                    todo.push((old.clone(), r.id, r.old_img.clone()));
                    break;
                }
                _ => {
                    img = r.old_img.as_deref().and_then(|t| serde_json::from_str(t).ok());
                    end = i;
                }
            }
        }
    }
    Ok(ids.into_iter().collect())
}

/// `tradeguard.history_ids(tbl, pk)`: the trail row ids `tradeguard.history()` shows (its
/// walk; auditors call `history()`).
#[pg_extern(stable, strict)]
fn history_ids(tbl: pg_sys::Oid, pk: &str) -> Vec<i64> {
    let names = common::spi_first_row(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[tbl.into()],
        |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
    );
    let run = || -> TgResult<Vec<i64>> {
        match names? {
            Some((schema, table)) => walk(&schema, &table, pk),
            None => Ok(Vec::new()),
        }
    };
    run().or_raise()
}
