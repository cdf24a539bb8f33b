//! Intrusion detection: the injection check (`check_input`, `is_attack`), guard triggers and
//! the rule catalogue. The detector itself is pure Rust in `engine/` (no pgrx).

pub mod engine;
pub mod error;
#[cfg(feature = "pg_test")]
mod tests;

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::common;
use crate::error::{CoreError, OrRaise, TgResult};
use engine::Context;
use error::IdsError;

fn context(s: &str) -> TgResult<Context> {
    Context::parse(s).ok_or_else(|| IdsError::UnknownContext(s.chars().take(40).collect()).into())
}

/// `tradeguard.check_input(value, context)`: the verdict with its evidence.
#[pg_extern(immutable, parallel_safe, strict)]
fn check_input(
    value: &str,
    context: default!(&str, "'auto'"),
) -> TableIterator<
    'static,
    (
        name!(is_attack, bool),
        name!(score, i32),
        name!(classes, Vec<String>),
        name!(findings, JsonB),
    ),
> {
    let ctx = self::context(context).or_raise();
    let v = engine::check(value, ctx);
    TableIterator::once((
        v.is_attack,
        v.score as i32,
        v.classes.iter().map(|c| c.as_str().to_string()).collect(),
        JsonB(v.findings_json()),
    ))
}

/// `tradeguard.is_attack(value, context)`: the fast path for filters and triggers.
#[pg_extern(immutable, parallel_safe, strict)]
fn is_attack(value: &str, context: default!(&str, "'auto'")) -> bool {
    engine::is_attack(value, self::context(context).or_raise())
}

/// `tradeguard.injection_rules`: rule id, class, description.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn injection_rule_list() -> TableIterator<
    'static,
    (name!(rule_id, String), name!(class, String), name!(description, String), name!(ruleset_version, String)),
> {
    TableIterator::new(engine::rules().iter().map(|r| {
        (
            r.id.to_string(),
            r.class.as_str().to_string(),
            r.description.to_string(),
            engine::RULESET_VERSION.to_string(),
        )
    }))
}

/// BEFORE INSERT OR UPDATE trigger installed by `guard_columns` (`tradeguard_a_guard`).
/// Arguments: action (`reject` or `log`), then the guarded column names.
#[pg_trigger]
fn guard_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl pgrx::WhoAllocated>>, CoreError> {
    guard_row(trigger).or_raise();
    Ok(trigger.new())
}

fn guard_row(trigger: &pgrx::PgTrigger<'_>) -> TgResult<()> {
    let args = trigger.extra_args().map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
    let (action, columns) = args.split_first().ok_or_else(|| CoreError::InvalidArgument("guard trigger without arguments".into()))?;
    let td = trigger.trigger_data();
    let by_update = pgrx::trigger_support::trigger_fired_by_update(td.tg_event);
    let new_t = if by_update { td.tg_newtuple } else { td.tg_trigtuple };
    if new_t.is_null() {
        return Ok(());
    }
    let table = format!(
        "{}.{}",
        trigger.table_schema().unwrap_or_default(),
        trigger.table_name().unwrap_or_default()
    );
    let tupdesc = unsafe { (*td.tg_relation).rd_att };
    for col in columns {
        // text, varchar and char(n) alike: the stored bytes (char(n) with its padding).
        let attno = unsafe { pg_sys::SPI_fnumber(tupdesc, std::ffi::CString::new(col.as_str()).unwrap_or_default().as_ptr()) };
        if attno <= 0 {
            return Err(IdsError::NotTextColumn { table: table.clone(), column: col.clone() }.into());
        }
        let attno = std::num::NonZeroUsize::new(attno as usize).expect("positive");
        let Some(datum) = (unsafe { pgrx::heap_getattr_raw(new_t, attno, tupdesc) }) else { continue };
        let typlen = unsafe { (*tupdesc).attrs.as_slice((*tupdesc).natts as usize)[attno.get() - 1].attlen };
        if typlen != -1 {
            return Err(IdsError::NotTextColumn { table: table.clone(), column: col.clone() }.into());
        }
        let bytes = common::varlena_bytes(datum);
        // An UPDATE that leaves the value as it was is not a new write of it.
        if by_update {
            let old = unsafe { pgrx::heap_getattr_raw(td.tg_trigtuple, attno, tupdesc) };
            if old.is_some_and(|o| common::varlena_bytes(o) == bytes) {
                continue;
            }
        }
        let value = String::from_utf8_lossy(bytes);
        let verdict = engine::check(&value, Context::Auto);
        if !verdict.is_attack {
            continue;
        }
        let classes: Vec<&str> = verdict.classes.iter().map(|c| c.as_str()).collect();
        let rules: Vec<&str> = verdict.findings.iter().map(|f| f.rule_id).collect();
        let detail = serde_json::json!({
            "table": table, "column": col, "action": action, "score": verdict.score,
            "classes": classes, "rules": rules, "value_length": value.len(),
        });
        common::events::record("injection_attempt", if action == "reject" { "high" } else { "medium" }, &detail)?;
        if action == "reject" {
            return Err(IdsError::Rejected {
                table: table.clone(),
                column: col.clone(),
                classes: classes.join("/"),
                rules: rules.join(","),
            }
            .into());
        }
    }
    Ok(())
}

/// `tradeguard.guard_columns(tbl, columns, action)`: installs the guard trigger.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn guard_columns(tbl: pgrx::PgRelation, columns: Vec<String>, action: default!(&str, "'reject'")) -> String {
    let oid = tbl.oid();
    drop(tbl);
    guard_columns_impl(oid, &columns, action).or_raise()
}

/// The trigger of each action: a column is guarded by at most one of them.
fn guard_trigger_name(action: &str) -> &'static str {
    if action == "log" {
        "tradeguard_a_guard_log"
    } else {
        "tradeguard_a_guard"
    }
}

fn guard_columns_impl(oid: pg_sys::Oid, columns: &[String], action: &str) -> TgResult<String> {
    if action != "reject" && action != "log" {
        return Err(IdsError::UnknownAction(action.chars().take(40).collect()).into());
    }
    if columns.is_empty() {
        return Err(IdsError::InvalidArgument("no columns given".into()).into());
    }
    let (table, own): (String, bool) = common::spi_first_row(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname),
                n.nspname IN ('tradeguard', 'tradeguard_audit', 'pg_catalog', 'information_schema') OR n.nspname LIKE E'pg\\\\_%'
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1 AND c.relkind IN ('r', 'p')",
        &[oid.into()],
        |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<bool>(2)?.unwrap_or(true))),
    )?
    .ok_or_else(|| IdsError::InvalidArgument("not a user table".into()))?;
    if own {
        return Err(IdsError::InvalidArgument(format!("{table} is not a user table")).into());
    }
    // The trigger is installed as the extension owner: the caller must be allowed to create
    // triggers on the table themselves.
    let may = common::spi_first::<bool>("SELECT pg_catalog.has_table_privilege($1, 'TRIGGER')", &[oid.into()])?.unwrap_or(false);
    if !may {
        return Err(CoreError::PermissionDenied(format!("guard_columns on {table} needs the TRIGGER privilege on it (or its ownership)")).into());
    }
    for c in columns {
        let ok = common::spi_first::<bool>(
            "SELECT pg_catalog.format_type(atttypid, NULL) IN ('text', 'character varying', 'character')
               FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[oid.into(), c.as_str().into()],
        )?;
        if ok != Some(true) {
            return Err(IdsError::NotTextColumn { table, column: c.clone() }.into());
        }
        // A generated column is computed after BEFORE triggers: the guard would see NULL.
        let generated = common::spi_first::<bool>(
            "SELECT attgenerated <> '' FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[oid.into(), c.as_str().into()],
        )?;
        if generated != Some(false) {
            return Err(IdsError::InvalidArgument(format!(
                "column {c} of {table} is generated: its value is computed after the guard runs; guard the columns it is computed from"
            ))
            .into());
        }
    }
    let other = if action == "log" { "reject" } else { "log" };
    let mut mine = guarded_columns(oid, guard_trigger_name(action))?;
    for c in columns {
        if !mine.contains(c) {
            mine.push(c.clone());
        }
    }
    let theirs: Vec<String> = guarded_columns(oid, guard_trigger_name(other))?.into_iter().filter(|c| !columns.contains(c)).collect();
    install_guards(&table, &[(action, &mine), (other, &theirs)])?;
    Ok(format!("guarding {} of {table} ({action})", mine.join(", ")))
}

/// Columns a guard trigger of the table checks (its arguments after the action). The
/// arguments are NUL-terminated in `tgargs`, read as bytes (a name may hold a backslash).
fn guarded_columns(oid: pg_sys::Oid, trigger: &str) -> TgResult<Vec<String>> {
    let row = common::as_owner(|| {
        common::spi_first_row(
            "SELECT t.tgargs, t.tgnargs::int FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND t.tgname = $2",
            &[oid.into(), trigger.into()],
            |r| Ok((r.get::<Vec<u8>>(1)?.unwrap_or_default(), r.get::<i32>(2)?.unwrap_or_default())),
        )
    })??;
    Ok(row
        .map(|(args, n)| {
            args.split(|b| *b == 0)
                .take(n.max(0) as usize)
                .skip(1)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default())
}

/// (Re)creates the guard trigger of each action over its columns (none: no trigger).
/// `table` is the quoted, qualified name.
fn install_guards(table: &str, guards: &[(&str, &Vec<String>)]) -> TgResult<()> {
    let _own = common::InternalWrite::begin();
    common::as_owner(|| -> TgResult<()> {
        for (act, cols) in guards {
            let name = guard_trigger_name(act);
            common::run_quietly(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"))?;
            if cols.is_empty() {
                continue;
            }
            let args: Vec<String> = std::iter::once(act.to_string())
                .chain(cols.iter().cloned())
                // quote_literal (E'...' when needed): a column name with a backslash stays inside
                // the literal even with standard_conforming_strings off.
                .map(pgrx::spi::quote_literal)
                .collect();
            Spi::run(&format!(
                "CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table}
                   FOR EACH ROW EXECUTE FUNCTION tradeguard.guard_trigger({})",
                args.join(", ")
            ))?;
            Spi::run(&format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"))?;
        }
        Ok(())
    })?
}

/// Follows a guarded column renamed (the utility hook calls it after ALTER TABLE ... RENAME
/// COLUMN): the guard triggers name their columns, and would otherwise refuse every write.
pub fn follow_column_rename(oid: pg_sys::Oid, old: &str, new: &str) -> TgResult<()> {
    for act in ["reject", "log"] {
        let cols = guarded_columns(oid, guard_trigger_name(act))?;
        if !cols.iter().any(|c| c == old) {
            continue;
        }
        let cols: Vec<String> = cols.into_iter().map(|c| if c == old { new.to_string() } else { c }).collect();
        let table = common::quoted_relation_name(oid).ok_or_else(|| IdsError::InvalidArgument("the renamed table vanished".into()))?;
        install_guards(&table, &[(act, &cols)])?;
    }
    Ok(())
}

pgrx::extension_sql_file!(
    "../../sql/ids.sql",
    name = "ids_sql",
    requires = [check_input, is_attack, injection_rule_list, guard_trigger, guard_columns]
);
