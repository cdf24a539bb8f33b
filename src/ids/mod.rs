//! Intrusion detection: the injection check (`check_input`, `is_attack`), guard triggers and
//! the rule catalogue. The detector itself is pure Rust in `engine/` (no pgrx).

pub mod engine;
pub mod error;

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
    let Some(new) = trigger.new() else { return Ok(()) };
    let table = format!(
        "{}.{}",
        trigger.table_schema().unwrap_or_default(),
        trigger.table_name().unwrap_or_default()
    );
    for col in columns {
        let Some(value) = new.get_by_name::<String>(col).map_err(|e| CoreError::InvalidArgument(e.to_string()))? else {
            continue;
        };
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
fn guard_columns(tbl: pgrx::PgRelation, columns: Vec<String>, action: default!(&str, "'reject'")) -> String {
    let oid = tbl.oid();
    drop(tbl);
    guard_columns_impl(oid, &columns, action).or_raise()
}

fn guard_columns_impl(oid: pg_sys::Oid, columns: &[String], action: &str) -> TgResult<String> {
    if action != "reject" && action != "log" {
        return Err(IdsError::UnknownAction(action.chars().take(40).collect()).into());
    }
    if columns.is_empty() {
        return Err(IdsError::InvalidArgument("no columns given".into()).into());
    }
    let table: String = common::spi_first::<String>(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[oid.into()],
    )?
        .ok_or_else(|| IdsError::InvalidArgument("unknown table".into()))?;
    for c in columns {
        let ok = common::spi_first::<bool>(
            "SELECT pg_catalog.format_type(atttypid, NULL) IN ('text', 'character varying', 'character')
               FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[oid.into(), c.as_str().into()],
        )?;
        if ok != Some(true) {
            return Err(IdsError::NotTextColumn { table, column: c.clone() }.into());
        }
    }
    let args: Vec<String> = std::iter::once(action.to_string())
        .chain(columns.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', "''")))
        .collect();
    let _own = common::InternalWrite::begin();
    common::as_owner(|| -> TgResult<()> {
        Spi::run(&format!("DROP TRIGGER IF EXISTS tradeguard_a_guard ON {table}"))?;
        Spi::run(&format!(
            "CREATE TRIGGER tradeguard_a_guard BEFORE INSERT OR UPDATE ON {table}
               FOR EACH ROW EXECUTE FUNCTION tradeguard.guard_trigger({})",
            args.join(", ")
        ))?;
        Spi::run(&format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER tradeguard_a_guard"))?;
        Ok(())
    })??;
    Ok(format!("guarding {} of {table} ({action})", columns.join(", ")))
}

pgrx::extension_sql_file!(
    "../../sql/ids.sql",
    name = "ids_sql",
    requires = [check_input, is_attack, injection_rule_list, guard_trigger, guard_columns]
);
