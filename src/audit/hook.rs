//! The utility hook: protects tradeguard's triggers and schema, and records system changes
//! (DDL on audited tables, GRANT/REVOKE, role changes, ALTER SYSTEM, tradeguard settings) in
//! the same signed trail. Statement texts are never recorded: they can carry passwords.

use std::ffi::{c_char, c_void, CStr};

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::error::AuditError;
use super::{break_glass_active, internal_write_active, record_system};
use crate::common::{partition_ancestors, partition_tree};
use crate::crypto::columns::ENCRYPT_TRIGGER;
use crate::error::{OrRaise, TgError, TgResult};

static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;

/// Installs the hook (called from `_PG_init` while preloading).
pub fn install() {
    unsafe {
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(tradeguard_process_utility);
    }
}

unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

unsafe fn list_ptrs(list: *mut pg_sys::List) -> Vec<*mut c_void> {
    if list.is_null() {
        return vec![];
    }
    let n = (*list).length as usize;
    (0..n).map(|i| (*(*list).elements.add(i)).ptr_value).collect()
}

unsafe fn is_tag(node: *mut c_void, tag: pg_sys::NodeTag) -> bool {
    !node.is_null() && (*(node as *mut pg_sys::Node)).type_ == tag
}

/// Names in a qualified-name list (String nodes).
unsafe fn name_list(list: *mut pg_sys::List) -> Vec<String> {
    list_ptrs(list)
        .into_iter()
        .filter(|p| is_tag(*p, pg_sys::NodeTag::T_String))
        .map(|p| cstr((*(p as *mut pg_sys::String)).sval))
        .collect()
}

unsafe fn range_var_relid(rv: *mut pg_sys::RangeVar) -> Option<pg_sys::Oid> {
    if rv.is_null() {
        return None;
    }
    let oid = pg_sys::RangeVarGetRelidExtended(rv, pg_sys::NoLock as _, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut());
    (oid != pg_sys::InvalidOid).then_some(oid)
}

unsafe fn rel_schema(relid: pg_sys::Oid) -> String {
    let nsp = pg_sys::get_rel_namespace(relid);
    cstr(pg_sys::get_namespace_name(nsp))
}

unsafe fn rel_name(relid: pg_sys::Oid) -> String {
    cstr(pg_sys::get_rel_name(relid))
}

/// The answer of a yes/no catalog query run with `search_path = pg_catalog, pg_temp` (the
/// caller's schemas, an operator `=` it created, cannot change it). Not knowing is "yes":
/// protected, recorded, refused unless break-glass; never fail open.
fn catalog_says(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> bool {
    crate::common::with_catalog_search_path(|| crate::common::spi_first::<bool>(sql, args)).map_or(true, |b| b.unwrap_or(true))
}

fn has_tradeguard_triggers(relid: pg_sys::Oid) -> bool {
    catalog_says(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname LIKE E'tradeguard\\\\_%')",
        &[relid.into()],
    )
}

/// The CREATE TABLE of a CREATE TABLE or CREATE FOREIGN TABLE statement.
unsafe fn create_stmt(stmt: *mut pg_sys::Node) -> Option<*mut pg_sys::CreateStmt> {
    match (*stmt).type_ {
        pg_sys::NodeTag::T_CreateStmt => Some(stmt as *mut pg_sys::CreateStmt),
        pg_sys::NodeTag::T_CreateForeignTableStmt => Some(std::ptr::addr_of_mut!((*(stmt as *mut pg_sys::CreateForeignTableStmt)).base)),
        _ => None,
    }
}

/// A new partition of `parent` gets copies of its tradeguard row triggers, which PostgreSQL
/// allows only to a role that may execute their functions (else its error names no function):
/// says so, and what to grant.
unsafe fn require_trigger_copy(parent: pg_sys::Oid) {
    let missing = crate::common::with_catalog_search_path(|| {
        crate::common::spi_first::<String>(
            "SELECT pg_catalog.string_agg(DISTINCT t.tgfoid::pg_catalog.regproc::text, ', ')
               FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = $1 AND t.tgname LIKE E'tradeguard\\_%' AND (t.tgtype & 1) = 1
                AND NOT pg_catalog.has_function_privilege(t.tgfoid, 'EXECUTE')",
            &[parent.into()],
        )
    });
    match missing {
        Ok(None) => {}
        Ok(Some(functions)) => TgError::from(crate::error::CoreError::PermissionDenied(format!(
            "a partition of {}.{} gets copies of tradeguard's row triggers ({functions}), which needs membership in tradeguard_table_owner (GRANT tradeguard_table_owner TO the role that creates or attaches partitions)",
            rel_schema(parent),
            rel_name(parent)
        )))
        .raise(),
        Err(e) => TgError::from(e).raise(),
    }
}

/// Refusal of a table inheriting from one of `parents` that carries a tradeguard trigger.
unsafe fn inherits_protected(parents: &[*mut pg_sys::RangeVar]) -> Option<String> {
    parents.iter().filter_map(|rv| range_var_relid(*rv)).find(|r| has_tradeguard_triggers(*r)).map(|r| {
        format!(
            "table inheritance from {}.{} (its audit, encryption and guard triggers would not fire for the child's rows; use partitioning)",
            rel_schema(r),
            rel_name(r)
        )
    })
}

/// Objects whose DROP ... CASCADE the hook follows through pg_depend into audited tables: every
/// kind PostgreSQL drops through RemoveObjects (the hook looks the object up exactly as it does
/// next), but types and domains (audited_tables_using_type) and schemas (their tables are
/// recorded as dropped). Not relations: their DROP checks ownership before it locks them, and
/// the hook must not lock a table for a caller who may not drop it.
fn cascade_traced(kind: pg_sys::ObjectType::Type) -> bool {
    use pg_sys::ObjectType::*;
    !matches!(kind, OBJECT_TABLE | OBJECT_INDEX | OBJECT_SEQUENCE | OBJECT_VIEW | OBJECT_MATVIEW | OBJECT_FOREIGN_TABLE | OBJECT_TYPE | OBJECT_DOMAIN | OBJECT_SCHEMA)
}

/// The event triggers that run function `f`.
fn event_triggers_of(f: pg_sys::Oid) -> Vec<String> {
    catalog_first::<Vec<String>>(
        "SELECT pg_catalog.array_agg(evtname::pg_catalog.text ORDER BY evtname) FROM pg_catalog.pg_event_trigger WHERE evtfoid OPERATOR(pg_catalog.=) $1",
        &[f.into()],
    )
    .unwrap_or_default()
}

/// Every event trigger of the database, by name.
fn all_event_triggers() -> Vec<String> {
    catalog_first::<Vec<String>>("SELECT pg_catalog.array_agg(evtname::pg_catalog.text ORDER BY evtname) FROM pg_catalog.pg_event_trigger", &[]).unwrap_or_default()
}

/// What depends on object ($1 class, $2 oid), at any depth. A column reached (objsubid > 0)
/// leads only to what depends on that column, and to what uses its relation's row type (a
/// composite type's field changes every value of that type).
const DEPENDENTS_CTE: &str = "WITH RECURSIVE dep(classid, objid, objsubid) AS (
         SELECT $1::pg_catalog.oid, $2::pg_catalog.oid, 0
       UNION
         SELECT n.classid, n.objid, n.objsubid FROM dep x, LATERAL (
             SELECT d.classid, d.objid, d.objsubid FROM pg_catalog.pg_depend d
              WHERE d.refclassid = x.classid AND d.refobjid = x.objid AND (x.objsubid = 0 OR d.refobjsubid = x.objsubid)
             UNION ALL
             SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, c.reltype, 0 FROM pg_catalog.pg_class c
              WHERE x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = x.objid AND x.objsubid > 0 AND c.reltype <> 0) n)";

/// The audited tables (schema, name) that objects depending on `addr`, at any depth, belong to
/// (a column of a type the object owns, a default or generated column calling it, a constraint,
/// index, trigger, rule or policy using it: what a DROP ... CASCADE of it changes in them), and
/// whether the cascade reaches a member of tradeguard itself (PostgreSQL would then drop the
/// whole extension, trail included).
unsafe fn audited_tables_depending_on(addr: pg_sys::ObjectAddress) -> (Vec<(String, String)>, bool) {
    if addr.objectId == pg_sys::InvalidOid {
        return (Vec::new(), false);
    }
    let ext = pg_sys::get_extension_oid(c"tradeguard".as_ptr(), true);
    let found = crate::common::with_catalog_search_path(|| {
        crate::common::spi_first_row(
            &format!(
                "{DEPENDENTS_CTE}
                 SELECT (SELECT pg_catalog.array_agg(DISTINCT r.rel)
                           FROM (SELECT CASE x.classid
                                 WHEN 'pg_catalog.pg_class'::pg_catalog.regclass
                                      THEN coalesce((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = x.objid), x.objid)
                                 WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid = x.objid)
                                 WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT c.conrelid FROM pg_catalog.pg_constraint c WHERE c.oid = x.objid)
                                 WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT g.tgrelid FROM pg_catalog.pg_trigger g WHERE g.oid = x.objid)
                                 WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT w.ev_class FROM pg_catalog.pg_rewrite w WHERE w.oid = x.objid)
                                 WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = x.objid)
                                 END AS rel FROM dep x) r
                           JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.rel AND t.tgname = 'tradeguard_audit_row'),
                        EXISTS (SELECT 1 FROM dep x
                                 WHERE (x.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND x.objid = $3)
                                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                                WHERE e.classid = x.classid AND e.objid = x.objid AND e.deptype = 'e'
                                                  AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.refobjid = $3))"
            ),
            &[addr.classId.into(), addr.objectId.into(), ext.into()],
            |r| Ok((r.get::<Vec<pg_sys::Oid>>(1)?.unwrap_or_default(), r.get::<bool>(2)?.unwrap_or(true))),
        )
    });
    // Not knowing stops the statement (a change to audited data must be recorded).
    let (tables, reaches_tradeguard) = found.map_err(crate::error::TgError::from).or_raise().unwrap_or((Vec::new(), true));
    // (DROP EXTENSION tradeguard itself: refused while the trail holds rows, see inspect.)
    let itself = addr.classId == pg_sys::ExtensionRelationId && addr.objectId == ext;
    (tables.into_iter().map(|r| (rel_schema(r), rel_name(r))).collect(), reaches_tradeguard && !itself)
}

/// The audited tables (schema, name) with a column whose type is `typid` or is built on it, at
/// any depth: a domain over it, an array of it, a range or multirange over it, a composite type
/// (or a table's row type) with a field of it.
unsafe fn audited_tables_using_type(typid: pg_sys::Oid) -> Vec<(String, String)> {
    if typid == pg_sys::InvalidOid {
        return Vec::new();
    }
    // Not knowing stops the statement (a change to audited data must be recorded).
    let tables = catalog_first::<Vec<pg_sys::Oid>>(
            "WITH RECURSIVE uses(oid) AS (
                 SELECT $1::pg_catalog.oid
               UNION
                 SELECT n.oid FROM uses u, LATERAL (
                     SELECT y.oid FROM pg_catalog.pg_type y
                      WHERE y.typbasetype = u.oid
                         OR (y.typelem = u.oid AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
                     UNION ALL
                     SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngsubtype = u.oid
                     UNION ALL
                     SELECT r.rngmultitypid FROM pg_catalog.pg_range r WHERE r.rngtypid = u.oid
                     UNION ALL
                     SELECT c.reltype FROM pg_catalog.pg_attribute f JOIN pg_catalog.pg_class c ON c.oid = f.attrelid
                      WHERE f.atttypid = u.oid AND f.attnum > 0 AND NOT f.attisdropped AND c.reltype <> 0) n)
             SELECT pg_catalog.array_agg(DISTINCT a.attrelid)
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_trigger t ON t.tgrelid = a.attrelid AND t.tgname = 'tradeguard_audit_row'
              WHERE a.attnum > 0 AND NOT a.attisdropped AND a.atttypid IN (SELECT oid FROM uses)",
            &[typid.into()],
        )
        .unwrap_or_default();
    tables.into_iter().map(|r| (rel_schema(r), rel_name(r))).collect()
}

/// Whether a BEFORE row trigger of `rels` (or the one renamed: old, new name) fires after the
/// encrypt trigger (not knowing stops the statement).
fn late_before_trigger(rels: &[pg_sys::Oid], renamed: Option<(&str, &str)>) -> bool {
    crate::crypto::columns::late_before_triggers(rels, renamed).or_raise().is_some()
}

/// Refusal of a BEFORE row trigger on `relid` (or below it) that fires after the encrypt trigger.
unsafe fn late_trigger_refusal(relid: pg_sys::Oid) -> String {
    format!(
        "BEFORE row triggers of {}.{} that fire after {ENCRYPT_TRIGGER} (name the trigger to sort before it)",
        rel_schema(relid),
        rel_name(relid)
    )
}

/// Whether one of `rels` has a trigger called `name`.
fn has_trigger(rels: &[pg_sys::Oid], name: &str) -> bool {
    catalog_says(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = ANY ($1) AND tgname = $2)",
        &[rels.to_vec().into(), name.into()],
    )
}

/// Whether `relid` carries the audit row trigger (not knowing is "yes").
pub(crate) fn is_audited(relid: pg_sys::Oid) -> bool {
    catalog_says(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = 'tradeguard_audit_row')",
        &[relid.into()],
    )
}

fn audit_rows_exist() -> bool {
    catalog_says("SELECT EXISTS (SELECT 1 FROM tradeguard_audit.log)", &[])
}

/// A column renamed: (old name, new name).
type RenamedColumn = (String, String);

/// What a statement means for tradeguard.
#[derive(Default)]
struct Inspection {
    /// Refused unless break-glass: the protected thing it touches.
    protected: Option<String>,
    /// Recorded after it succeeds: (operation, schema, object), one row each (a DROP of several
    /// audited tables records each).
    record: Vec<(String, String, String)>,
    /// Partitions of audited tables named by a TRUNCATE: (schema, table) of the audited table,
    /// and the partition. A partition carries a clone of the audited table's row trigger but
    /// not its statement-level TRUNCATE trigger (PostgreSQL does not clone those).
    truncated: Vec<(String, String, String)>,
    /// An audited table whose DDL may change the columns its registration names (primary key,
    /// exclusions), and a column renamed (old, new name).
    refresh: Vec<(pg_sys::Oid, Option<(String, String)>)>,
    /// Tables attached as partitions: their plaintext in columns encrypted through the
    /// partitioned table is converted once they are attached.
    attached: Vec<pg_sys::Oid>,
    /// What a DDL row names besides the command: the triggers and indexes it creates, drops,
    /// renames, enables or disables (an auditor tells a DISABLE from an ENABLE, and which), each
    /// with the table it is on (the row of that table lists it).
    objects: Vec<(pg_sys::Oid, String)>,
    /// A table whose indexes, constraints or policies the statement may add to: afterwards,
    /// none may compare an encrypted column's ciphertext.
    comparisons_on: Option<pg_sys::Oid>,
    /// Tables dropped by name: (oid, schema, table), whose registrations (audited table,
    /// encrypted columns) go with them.
    dropped: Vec<(pg_sys::Oid, String, String)>,
    /// A schema renamed (old, new name): encrypted-column registrations name their schema.
    schema_renamed: Option<(String, String)>,
    /// Schemas dropped (their tables' registrations go with them).
    dropped_schemas: Vec<String>,
    /// A table renamed, moved to another schema or with a column renamed: (oid, schema and
    /// name before, column renamed (old, new)). Encrypted-column registrations and guard
    /// triggers name their table and columns: they follow, so that writes keep working.
    renamed: Option<(pg_sys::Oid, String, String, Option<RenamedColumn>)>,
    /// A column renamed through a parent or a composite type: the other tables it is renamed in
    /// (oid, schema, name), whose registrations follow too.
    column_renamed_in: Vec<(pg_sys::Oid, String, String)>,
    /// A table whose columns the statement adds, drops, retypes or renames: its
    /// `<table>_decrypted` view (if encrypted) is dropped before and made again after, and the
    /// names of the table whose view was dropped.
    rebuild_view: Option<pg_sys::Oid>,
    view_dropped: Option<(String, String)>,
    /// A table some of whose columns the statement drops: registrations of dropped encrypted
    /// (or blind-index) columns go afterwards.
    columns_dropped: Option<pg_sys::Oid>,
    /// The excluded columns of each registration to refresh, as attribute numbers taken before
    /// the statement runs (none for a name no live column has): exclusions follow their columns
    /// through the statement (see [`refresh_registration`]).
    exclusions_before: Vec<(pg_sys::Oid, Vec<i16>)>,
    /// A statement that may drop tables: afterwards, registrations whose table is gone however
    /// it went (a path the inspection did not foresee) are recorded as dropped and forgotten.
    drop_check: bool,
    /// With `drop_check`: the event triggers before the statement (one dropped with its function,
    /// schema, extension, language or owner is recorded afterwards).
    event_triggers_before: Option<Vec<String>>,
}

impl Inspection {
    /// Nothing to do once the statement has run (most statements: BEGIN, COMMIT, SET, ...).
    fn is_empty(&self) -> bool {
        let Inspection {
            protected: _,
            record,
            truncated,
            refresh,
            attached,
            objects: _,
            comparisons_on,
            dropped,
            schema_renamed,
            dropped_schemas,
            renamed,
            column_renamed_in,
            rebuild_view,
            view_dropped,
            columns_dropped,
            exclusions_before: _,
            drop_check,
            event_triggers_before: _,
        } = self;
        !drop_check
            && rebuild_view.is_none()
            && view_dropped.is_none()
            && columns_dropped.is_none()
            && record.is_empty()
            && truncated.is_empty()
            && refresh.is_empty()
            && column_renamed_in.is_empty()
            && attached.is_empty()
            && comparisons_on.is_none()
            && dropped.is_empty()
            && schema_renamed.is_none()
            && dropped_schemas.is_empty()
            && renamed.is_none()
    }

    /// Records the DROP TABLE of every audited relation a drop of `roots` takes with it (see
    /// [`audited_relations_dropped_with`]); their registrations are forgotten afterwards.
    unsafe fn drops(&mut self, roots: &[pg_sys::Oid]) {
        self.drop_check = true;
        for (relid, schema, table) in audited_relations_dropped_with(roots) {
            if !self.record.iter().any(|(op, s, t)| op == "DROP TABLE" && *s == schema && *t == table) {
                self.record.push(("DROP TABLE".into(), schema.clone(), table.clone()));
            }
            if !self.dropped.iter().any(|(r, ..)| *r == relid) {
                self.dropped.push((relid, schema, table));
            }
        }
    }
}

/// The first value of a catalog query run with `search_path = pg_catalog, pg_temp` (see
/// [`catalog_says`]); an error stops the statement (not knowing what a statement reaches must
/// not let it through unrecorded).
fn catalog_first<T: pgrx::FromDatum + pgrx::IntoDatum>(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Option<T> {
    crate::common::with_catalog_search_path(|| crate::common::spi_first::<T>(sql, args)).map_err(TgError::from).or_raise()
}

/// The audited relations (oid, schema, name) that a DROP of `roots` takes with it: the roots,
/// their partitions and their inheritance children at any depth (PostgreSQL drops partitions
/// with their table even without CASCADE, children with CASCADE), those that carry the audit
/// row trigger: audited tables, and partitions of audited tables wherever their schema.
unsafe fn audited_relations_dropped_with(roots: &[pg_sys::Oid]) -> Vec<(pg_sys::Oid, String, String)> {
    if roots.is_empty() {
        return Vec::new();
    }
    let rels = catalog_first::<Vec<pg_sys::Oid>>(
        "WITH RECURSIVE tree(relid) AS (
             SELECT pg_catalog.unnest($1::pg_catalog.oid[])
           UNION
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.relid)
         SELECT pg_catalog.array_agg(DISTINCT t.relid) FROM tree t
          WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = 'tradeguard_audit_row')",
        &[roots.to_vec().into()],
    )
    .unwrap_or_default();
    rels.into_iter().map(|r| (r, rel_schema(r), rel_name(r))).collect()
}

/// The relations an ALTER of `relid` (a table, or a composite type's relation) changes: itself,
/// for a composite type the tables of that type (ALTER TYPE ... CASCADE), and unless ONLY
/// (`recurse`) their partitions and inheritance children at any depth.
unsafe fn altered_relations(relid: pg_sys::Oid, recurse: bool) -> Vec<pg_sys::Oid> {
    catalog_first::<Vec<pg_sys::Oid>>(
        "WITH RECURSIVE start(relid) AS (
             SELECT $1::pg_catalog.oid
           UNION ALL
             SELECT t.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_class t ON t.reloftype = c.reltype
              WHERE c.oid = $1 AND c.relkind = 'c'
         ), tree(relid) AS (
             SELECT relid FROM start
           UNION
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.relid WHERE $2
         )
         SELECT pg_catalog.array_agg(relid) FROM tree",
        &[relid.into(), recurse.into()],
    )
    .unwrap_or_else(|| vec![relid])
}

/// The audited tables whose rows a change of `rels` changes: each relation of `rels` that
/// carries the audit row trigger, as the table it is registered under (a partition: its
/// audited partitioned table; one without a registration: itself). Not knowing stops the
/// statement.
unsafe fn audit_owners(rels: &[pg_sys::Oid]) -> Vec<pg_sys::Oid> {
    crate::common::as_owner(|| {
        catalog_first::<Vec<pg_sys::Oid>>(
            "SELECT pg_catalog.array_agg(DISTINCT coalesce(
                      (WITH RECURSIVE p(rel, n) AS (
                         SELECT r.relid, 0
                         UNION ALL
                         SELECT i.inhparent, p.n + 1 FROM p JOIN pg_catalog.pg_inherits i ON i.inhrelid = p.rel
                           JOIN pg_catalog.pg_class c ON c.oid = p.rel AND c.relispartition)
                       SELECT a.relid::pg_catalog.oid FROM p
                         JOIN tradeguard_audit.audited_tables a ON a.relid::pg_catalog.oid = p.rel::pg_catalog.oid
                        ORDER BY p.n LIMIT 1),
                      r.relid))
               FROM pg_catalog.unnest($1::pg_catalog.oid[]) r(relid)
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = r.relid AND g.tgname = 'tradeguard_audit_row')",
            &[rels.to_vec().into()],
        )
    })
    .or_raise()
    .unwrap_or_default()
}

/// The audited tables a change of `reached` (from `relid`) changes besides `relid` itself and
/// the table `relid` is audited as (a partition's change is recorded once, under its name).
unsafe fn other_audit_owners(relid: pg_sys::Oid, reached: &[pg_sys::Oid]) -> Vec<pg_sys::Oid> {
    let own = audit_owners(&[relid]);
    audit_owners(reached).into_iter().filter(|o| *o != relid && !own.contains(o)).collect()
}

/// Why converting column `col` of `relid` to `new_type` (typmod `new_typmod`, without USING)
/// would change its values, if it would: a cast function, or a conversion through text whose
/// input or output function, was created in the database (any code); or one of PostgreSQL's own
/// conversions that round or drop part of a value (to an integer from numeric or float, to a
/// float of less precision, a smaller numeric scale or time precision, a timestamp to a date or
/// time or from timestamptz, which depends on TimeZone). A binary-coercible cast (text to
/// citext), a domain (only its checks run) and conversions that keep the value or fail are
/// fine. An unknown type is left to PostgreSQL's own error; a catalog that cannot be read counts
/// as a change.
fn conversion_changes_values(relid: pg_sys::Oid, col: &str, new_type: pg_sys::Oid, new_typmod: i32) -> Option<&'static str> {
    if new_type == pg_sys::InvalidOid {
        return None;
    }
    let old = crate::common::with_catalog_search_path(|| {
        crate::common::spi_first_row(
            "SELECT atttypid, atttypmod FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[relid.into(), col.into()],
            |r| Ok((r.get::<pg_sys::Oid>(1)?.unwrap_or_default(), r.get::<i32>(2)?.unwrap_or(-1))),
        )
    });
    let (old_type, old_typmod) = match old {
        Ok(Some(o)) => o,
        Ok(None) => return None,
        Err(_) => return Some("TYPE with a conversion tradeguard could not check"),
    };
    type_change_changes_values(old_type, old_typmod, new_type, new_typmod)
}

/// [`conversion_changes_values`] for a pair of types and typmods: domains are read as their
/// base type with the domain's typmod, arrays as their element types.
fn type_change_changes_values(old_type: pg_sys::Oid, old_typmod: i32, new_type: pg_sys::Oid, new_typmod: i32) -> Option<&'static str> {
    let base = |t: pg_sys::Oid, m: i32| {
        let mut tm = m;
        let b = unsafe { pg_sys::getBaseTypeAndTypmod(t, &mut tm) };
        (b, if m >= 0 { m } else { tm })
    };
    let ((from, old_typmod), (to, new_typmod)) = (base(old_type, old_typmod), base(new_type, new_typmod));
    let (from_elem, to_elem) = unsafe { (pg_sys::get_element_type(from), pg_sys::get_element_type(to)) };
    if from_elem != pg_sys::InvalidOid && to_elem != pg_sys::InvalidOid {
        // Each element is converted as a value of the element type (typmods apply to them).
        return type_change_changes_values(from_elem, old_typmod, to_elem, new_typmod);
    }
    use pg_sys::{MONEYOID as CASHOID, BOXOID, BPCHAROID, CIRCLEOID, DATEOID, FLOAT4OID, FLOAT8OID, INT2OID, INT4OID, INT8OID, INTERVALOID, JSONBOID, JSONOID, LINEOID, LSEGOID, NUMERICOID, PATHOID, POINTOID, POLYGONOID, TEXTOID, TIMEOID, TIMESTAMPOID, TIMESTAMPTZOID, TIMETZOID, VARCHAROID};
    const ROUNDS: &str = "TYPE with a conversion that rounds or drops part of the values";
    let narrower = |f: fn(i32) -> i32| new_typmod >= 0 && (old_typmod < 0 || f(new_typmod) < f(old_typmod));
    if from == to {
        // numeric(p, s): a smaller scale rounds (a smaller precision fails instead); time
        // types: a smaller fractional precision rounds.
        let scale = |m: i32| (m - 4) & 0xffff;
        return match from {
            NUMERICOID if narrower(scale) => Some(ROUNDS),
            TIMESTAMPOID | TIMESTAMPTZOID | TIMEOID | TIMETZOID | INTERVALOID if narrower(|m| m & 0xffff) => Some(ROUNDS),
            _ => None,
        };
    }
    let lossy = matches!(
        (from, to),
        (NUMERICOID | FLOAT4OID | FLOAT8OID, INT2OID | INT4OID | INT8OID)
            | (FLOAT8OID | NUMERICOID | INT4OID | INT8OID, FLOAT4OID)
            | (NUMERICOID | INT8OID, FLOAT8OID)
            | (NUMERICOID | FLOAT4OID | FLOAT8OID, CASHOID)
            | (TIMESTAMPTZOID, TIMESTAMPOID | DATEOID | TIMEOID | TIMETZOID)
            | (TIMESTAMPOID, DATEOID | TIMEOID | TIMESTAMPTZOID)
            | (DATEOID, TIMESTAMPTZOID)
            // jsonb keeps one of duplicate keys and normalises numbers and spacing
            | (JSONOID, JSONBOID)
            // float to numeric keeps 15 (float8) or 6 (float4) significant digits; to text, as
            // many as the session's extra_float_digits asks for (-15: one)
            | (FLOAT4OID | FLOAT8OID, NUMERICOID | TEXTOID | VARCHAROID | BPCHAROID)
            // geometric types print their coordinates as floats
            | (POINTOID | LSEGOID | PATHOID | BOXOID | POLYGONOID | LINEOID | CIRCLEOID, TEXTOID | VARCHAROID | BPCHAROID)
    )
        // money is read with the session's lc_monetary (its number of decimals)
        || (from == CASHOID && to != CASHOID);
    if lossy {
        return Some(ROUNDS);
    }
    catalog_says(
        "WITH c AS (SELECT castfunc, castmethod FROM pg_catalog.pg_cast WHERE castsource = $1 AND casttarget = $2),
              io AS (SELECT (SELECT typoutput::pg_catalog.oid FROM pg_catalog.pg_type WHERE oid = $1) >= 16384
                         OR (SELECT typinput::pg_catalog.oid FROM pg_catalog.pg_type WHERE oid = $2) >= 16384 AS here)
         SELECT CASE WHEN EXISTS (SELECT 1 FROM c)
                     THEN EXISTS (SELECT 1 FROM c WHERE castfunc::pg_catalog.oid >= 16384 OR (castmethod = 'i' AND (SELECT here FROM io)))
                     ELSE (SELECT here FROM io) END",
        &[from.into(), to.into()],
    )
    .then_some("TYPE with a type or cast defined in this database")
}

/// What a non-superuser may not replace or alter: to_jsonb, which writes the audit trail's images
/// of arrays and composites, would call it.
const JSON_CAST_FUNCTIONS: &str = "the functions of casts to json or jsonb (to_jsonb would call them to write the audit trail)";

/// json or jsonb, or a domain over either.
fn json_type(t: pg_sys::Oid) -> bool {
    t != pg_sys::InvalidOid && matches!(unsafe { pg_sys::getBaseType(t) }, pg_sys::JSONOID | pg_sys::JSONBOID)
}

/// The columns of `relid`'s primary key when `constraint` names it (else none).
fn primary_key_columns(relid: pg_sys::Oid, constraint: &str) -> Vec<String> {
    catalog_first::<Vec<String>>(
        "SELECT pg_catalog.array_agg(a.attname::text) FROM pg_catalog.pg_constraint c
           JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
          WHERE c.conrelid = $1 AND c.conname = $2 AND c.contype = 'p'",
        &[relid.into(), constraint.into()],
    )
    .unwrap_or_default()
}

/// The relations a TRUNCATE empties: `only` as named, `with_children` with their partitions and
/// inheritance children at any depth, and with CASCADE every table referencing one of them by
/// a foreign key, again and again (as ExecuteTruncate expands them).
unsafe fn truncated_relations(only: &[pg_sys::Oid], with_children: &[pg_sys::Oid], cascade: bool) -> Vec<pg_sys::Oid> {
    catalog_first::<Vec<pg_sys::Oid>>(
        "WITH RECURSIVE down(relid) AS (
             SELECT pg_catalog.unnest($2::pg_catalog.oid[])
           UNION
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down d ON i.inhparent = d.relid
         ), reached(relid) AS (
             SELECT s.relid FROM (SELECT pg_catalog.unnest($1::pg_catalog.oid[]) AS relid UNION SELECT relid FROM down) s
           UNION
             SELECT c.conrelid FROM pg_catalog.pg_constraint c JOIN reached r ON c.confrelid = r.relid
              WHERE $3 AND c.contype = 'f'
         )
         SELECT pg_catalog.array_agg(DISTINCT relid) FROM reached",
        &[only.to_vec().into(), with_children.to_vec().into(), cascade.into()],
    )
    .unwrap_or_default()
}

/// The audited table `relid` is a partition of, when `relid` lacks a TRUNCATE trigger of its
/// own: (schema, table), nearest ancestor first.
fn audited_ancestor(relid: pg_sys::Oid) -> TgResult<Option<(String, String)>> {
    let found = crate::common::as_owner(|| {
        crate::common::spi_first_row(
            concat!(
                "SELECT n.nspname::text, c.relname::text
                   FROM ", crate::self_and_ancestors_sql!(), " x
                   JOIN tradeguard_audit.audited_tables a ON a.relid = x.relid
                   JOIN pg_catalog.pg_class c ON c.oid = x.relid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE x.relid <> $1
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                     WHERE t.tgrelid = $1 AND t.tgname = 'tradeguard_audit_truncate')
                  ORDER BY x.depth LIMIT 1"
            ),
            &[relid.into()],
            |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
        )
    })??;
    Ok(found)
}

/// Trigger state changes that weaken tradeguard's triggers (they are ENABLE ALWAYS; setting
/// ALWAYS again, as pg_restore does, is allowed).
const TRIGGER_STATE_CMDS: [pg_sys::AlterTableType::Type; 7] = [
    pg_sys::AlterTableType::AT_EnableTrig,
    pg_sys::AlterTableType::AT_EnableReplicaTrig,
    pg_sys::AlterTableType::AT_DisableTrig,
    pg_sys::AlterTableType::AT_EnableTrigAll,
    pg_sys::AlterTableType::AT_DisableTrigAll,
    pg_sys::AlterTableType::AT_EnableTrigUser,
    pg_sys::AlterTableType::AT_DisableTrigUser,
];

/// An ALTER TABLE subcommand that enables or disables triggers, as written (`DISABLE TRIGGER
/// name`, `ENABLE ALWAYS TRIGGER name`, `DISABLE TRIGGER ALL`...).
unsafe fn trigger_state_change(cmd: *mut pg_sys::AlterTableCmd) -> Option<String> {
    use pg_sys::AlterTableType as A;
    let name = || cstr((*cmd).name);
    Some(match (*cmd).subtype {
        A::AT_EnableTrig => format!("ENABLE TRIGGER {}", name()),
        A::AT_EnableAlwaysTrig => format!("ENABLE ALWAYS TRIGGER {}", name()),
        A::AT_EnableReplicaTrig => format!("ENABLE REPLICA TRIGGER {}", name()),
        A::AT_DisableTrig => format!("DISABLE TRIGGER {}", name()),
        A::AT_EnableTrigAll => "ENABLE TRIGGER ALL".into(),
        A::AT_DisableTrigAll => "DISABLE TRIGGER ALL".into(),
        A::AT_EnableTrigUser => "ENABLE TRIGGER USER".into(),
        A::AT_DisableTrigUser => "DISABLE TRIGGER USER".into(),
        _ => return None,
    })
}

/// A CREATE TRIGGER as the trail names it: `CREATE [OR REPLACE] TRIGGER name BEFORE INSERT OR
/// UPDATE FOR EACH ROW EXECUTE FUNCTION f` (the function as written; no WHEN clause text).
unsafe fn trigger_definition(s: *mut pg_sys::CreateTrigStmt) -> String {
    let timing = (*s).timing as u32;
    let when = if timing & pg_sys::TRIGGER_TYPE_INSTEAD != 0 {
        "INSTEAD OF"
    } else if timing & pg_sys::TRIGGER_TYPE_BEFORE != 0 {
        "BEFORE"
    } else {
        "AFTER"
    };
    let events = (*s).events as u32;
    let names: Vec<&str> = [
        (pg_sys::TRIGGER_TYPE_INSERT, "INSERT"),
        (pg_sys::TRIGGER_TYPE_UPDATE, "UPDATE"),
        (pg_sys::TRIGGER_TYPE_DELETE, "DELETE"),
        (pg_sys::TRIGGER_TYPE_TRUNCATE, "TRUNCATE"),
    ]
    .into_iter()
    .filter(|(bit, _)| events & bit != 0)
    .map(|(_, n)| n)
    .collect();
    format!(
        "CREATE {}TRIGGER {} {when} {} FOR EACH {}{} EXECUTE FUNCTION {}",
        if (*s).replace { "OR REPLACE " } else { "" },
        cstr((*s).trigname),
        names.join(" OR "),
        if (*s).row { "ROW" } else { "STATEMENT" },
        if (*s).whenClause.is_null() { "" } else { " WHEN (...)" },
        name_list((*s).funcname).join(".")
    )
}

/// A CREATE INDEX as the trail names it: its name (or "unnamed"), UNIQUE, and its key columns
/// (an expression as "expression").
unsafe fn index_definition(s: *mut pg_sys::IndexStmt) -> String {
    let cols: Vec<String> = list_ptrs((*s).indexParams)
        .into_iter()
        .map(|p| p as *mut pg_sys::IndexElem)
        .map(|e| if (*e).name.is_null() { "expression".to_string() } else { cstr((*e).name) })
        .collect();
    format!(
        "CREATE {}INDEX {} ({})",
        if (*s).unique { "UNIQUE " } else { "" },
        if (*s).idxname.is_null() { "(unnamed)".to_string() } else { cstr((*s).idxname) },
        cols.join(", ")
    )
}

/// What an ALTER ... SET/RESET does, named without its value: `SET name`, `RESET name`,
/// `RESET ALL`.
unsafe fn set_action(set: *mut pg_sys::VariableSetStmt) -> String {
    use pg_sys::VariableSetKind::*;
    if set.is_null() {
        return "RESET ALL".into();
    }
    let name = || cstr((*set).name);
    match (*set).kind {
        VAR_RESET_ALL => "RESET ALL".into(),
        VAR_RESET => format!("RESET {}", name()),
        _ => format!("SET {}", name()),
    }
}

/// A role as written in a statement (`CURRENT_USER`, `PUBLIC`... by their keyword; NULL is ALL).
unsafe fn role_spec_name(r: *mut pg_sys::RoleSpec) -> String {
    if r.is_null() {
        return "ALL".into();
    }
    use pg_sys::RoleSpecType::*;
    match (*r).roletype {
        ROLESPEC_CSTRING => cstr((*r).rolename),
        ROLESPEC_CURRENT_ROLE => "CURRENT_ROLE".into(),
        ROLESPEC_CURRENT_USER => "CURRENT_USER".into(),
        ROLESPEC_SESSION_USER => "SESSION_USER".into(),
        _ => "PUBLIC".into(),
    }
}

/// The roles of a list of RoleSpec nodes, comma-separated.
unsafe fn role_specs(list: *mut pg_sys::List) -> String {
    list_ptrs(list).into_iter().map(|p| role_spec_name(p as *mut pg_sys::RoleSpec)).collect::<Vec<_>>().join(", ")
}

/// The first object of a GRANT or REVOKE that is one of tradeguard's schemas or lives in one
/// (a relation, a function, or all of a kind in the schema), described.
unsafe fn grant_objects_in_tradeguard_schemas(s: *mut pg_sys::GrantStmt) -> Option<String> {
    use pg_sys::ObjectType as O;
    let objects = list_ptrs((*s).objects);
    if (*s).targtype == pg_sys::GrantTargetType::ACL_TARGET_ALL_IN_SCHEMA {
        return objects.into_iter().map(|o| cstr((*(o as *mut pg_sys::String)).sval)).find(|n| is_tradeguard_schema(n)).map(|n| format!("all objects in schema {n}"));
    }
    objects.into_iter().find_map(|o| match (*s).objtype {
        O::OBJECT_SCHEMA => Some(cstr((*(o as *mut pg_sys::String)).sval)).filter(|n| is_tradeguard_schema(n)).map(|n| format!("schema {n}")),
        // GRANT SET ON PARAMETER tradeguard.restore_mode would hand a superuser's setting to
        // another role.
        O::OBJECT_PARAMETER_ACL => Some(cstr((*(o as *mut pg_sys::String)).sval))
            .filter(|n| n.to_ascii_lowercase().starts_with("tradeguard."))
            .map(|n| format!("parameter {n}")),
        O::OBJECT_TABLE | O::OBJECT_SEQUENCE => range_var_relid(o as *mut pg_sys::RangeVar)
            .filter(|r| is_tradeguard_namespace(pg_sys::get_rel_namespace(*r)))
            .map(|r| format!("{}.{}", rel_schema(r), rel_name(r))),
        O::OBJECT_FUNCTION | O::OBJECT_PROCEDURE | O::OBJECT_ROUTINE => {
            let f = pg_sys::LookupFuncWithArgs((*s).objtype, o as *mut pg_sys::ObjectWithArgs, true);
            (f != pg_sys::InvalidOid && is_tradeguard_namespace(pg_sys::get_func_namespace(f)))
                .then(|| format!("function {}", cstr(pg_sys::format_procedure_qualified(f))))
        }
        _ => None,
    })
}

/// Whether a namespace is one of tradeguard's.
unsafe fn is_tradeguard_namespace(nsp: pg_sys::Oid) -> bool {
    nsp != pg_sys::InvalidOid && is_tradeguard_schema(&cstr(pg_sys::get_namespace_name(nsp)))
}

/// Whether `name` is one of tradeguard's schemas.
fn is_tradeguard_schema(name: &str) -> bool {
    matches!(name, "tradeguard" | "tradeguard_audit")
}

/// The namespace a new relation would be created in (as PostgreSQL resolves it: the schema
/// written, or the first one of search_path).
unsafe fn creation_namespace(rv: *mut pg_sys::RangeVar) -> pg_sys::Oid {
    if rv.is_null() {
        return pg_sys::InvalidOid;
    }
    if !(*rv).schemaname.is_null() {
        return pg_sys::get_namespace_oid((*rv).schemaname, true);
    }
    pg_sys::RangeVarGetCreationNamespace(rv)
}

/// The namespace of the function an ObjectWithArgs names, if it exists.
unsafe fn function_namespace(node: *mut c_void, kind: pg_sys::ObjectType::Type) -> pg_sys::Oid {
    if !is_tag(node, pg_sys::NodeTag::T_ObjectWithArgs) {
        return pg_sys::InvalidOid;
    }
    let oid = pg_sys::LookupFuncWithArgs(kind, node as *mut pg_sys::ObjectWithArgs, true);
    if oid == pg_sys::InvalidOid {
        pg_sys::InvalidOid
    } else {
        pg_sys::get_func_namespace(oid)
    }
}

const FUNCTION_KINDS: [pg_sys::ObjectType::Type; 3] =
    [pg_sys::ObjectType::OBJECT_FUNCTION, pg_sys::ObjectType::OBJECT_PROCEDURE, pg_sys::ObjectType::OBJECT_ROUTINE];

/// A relation of tradeguard's schemas, resolved as PostgreSQL resolves the name.
unsafe fn rel_in_tradeguard_schema(rv: *mut pg_sys::RangeVar) -> bool {
    range_var_relid(rv).is_some_and(|r| is_tradeguard_namespace(pg_sys::get_rel_namespace(r)))
}

/// Children of tradeguard's tables, by inheritance or as partitions: their rows would be read
/// as the parent's (a key, a registration, a trail row) from a table outside its protection.
const TRADEGUARD_PARENT: &str = "inheritance from or partitions of tables in tradeguard's schemas";

/// Statements that create, move, replace or detach objects of tradeguard's own schemas (however
/// the names are written: resolved through search_path as PostgreSQL does), refused unless
/// break-glass: what tradeguard itself runs on (the trail's tables, verify(), the protection
/// trigger function) must not change under it.
unsafe fn protected_schema_change(stmt: *mut pg_sys::Node) -> Option<String> {
    use pg_sys::NodeTag as N;
    let t = (*stmt).type_;
    let rel_in = |rv: *mut pg_sys::RangeVar| rel_in_tradeguard_schema(rv);
    if let Some(cs) = create_stmt(stmt) {
        // A table (or foreign table) of tradeguard's schemas as parent: a child by inheritance
        // or a partition (e.g. of the trail, where sealed rows of its range would go).
        if list_ptrs((*cs).inhRelations).into_iter().any(|p| rel_in(p as *mut pg_sys::RangeVar)) {
            return Some(TRADEGUARD_PARENT.into());
        }
    }
    if t == N::T_CreateStmt || t == N::T_CreateForeignTableStmt || t == N::T_CreateSeqStmt || t == N::T_ViewStmt || t == N::T_CreateTableAsStmt {
        let rv = match t {
            N::T_CreateStmt | N::T_CreateForeignTableStmt => (*create_stmt(stmt).expect("a CREATE TABLE")).relation,
            N::T_CreateSeqStmt => (*(stmt as *mut pg_sys::CreateSeqStmt)).sequence,
            N::T_ViewStmt => (*(stmt as *mut pg_sys::ViewStmt)).view,
            _ => {
                let into = (*(stmt as *mut pg_sys::CreateTableAsStmt)).into;
                if into.is_null() { std::ptr::null_mut() } else { (*into).rel }
            }
        };
        if is_tradeguard_namespace(creation_namespace(rv)) {
            return Some("new objects in tradeguard's schemas".into());
        }
    } else if t == N::T_CreateFunctionStmt {
        let mut name: *mut c_char = std::ptr::null_mut();
        let nsp = pg_sys::QualifiedNameGetCreationNamespace((*(stmt as *mut pg_sys::CreateFunctionStmt)).funcname, &mut name);
        if is_tradeguard_namespace(nsp) {
            return Some("functions in tradeguard's schemas".into());
        }
    } else if t == N::T_AlterFunctionStmt {
        let s = stmt as *mut pg_sys::AlterFunctionStmt;
        if is_tradeguard_namespace(function_namespace((*s).func as *mut c_void, (*s).objtype)) {
            return Some("functions in tradeguard's schemas".into());
        }
    } else if t == N::T_AlterObjectSchemaStmt {
        let s = stmt as *mut pg_sys::AlterObjectSchemaStmt;
        let moved_out = if FUNCTION_KINDS.contains(&(*s).objectType) {
            is_tradeguard_namespace(function_namespace((*s).object as *mut c_void, (*s).objectType))
        } else {
            rel_in((*s).relation)
        };
        if moved_out || is_tradeguard_schema(&cstr((*s).newschema)) {
            return Some("the schema of tradeguard's objects".into());
        }
    } else if t == N::T_RenameStmt || t == N::T_AlterOwnerStmt {
        let (kind, object) = if t == N::T_RenameStmt {
            let s = stmt as *mut pg_sys::RenameStmt;
            ((*s).renameType, (*s).object as *mut c_void)
        } else {
            let s = stmt as *mut pg_sys::AlterOwnerStmt;
            ((*s).objectType, (*s).object as *mut c_void)
        };
        if FUNCTION_KINDS.contains(&kind) && is_tradeguard_namespace(function_namespace(object, kind)) {
            return Some("functions in tradeguard's schemas".into());
        }
        if kind == pg_sys::ObjectType::OBJECT_SCHEMA && t == N::T_RenameStmt && is_tradeguard_schema(&cstr((*(stmt as *mut pg_sys::RenameStmt)).subname)) {
            return Some("tradeguard's schemas".into());
        }
        // A view, table, sequence or one of their columns, triggers or rules renamed.
        let rv = if t == N::T_RenameStmt { (*(stmt as *mut pg_sys::RenameStmt)).relation } else { (*(stmt as *mut pg_sys::AlterOwnerStmt)).relation };
        if rel_in(rv) {
            return Some(format!("relations of tradeguard's schemas ({})", cstr((*rv).relname)));
        }
    } else if t == N::T_DropStmt {
        let s = stmt as *mut pg_sys::DropStmt;
        let kind = (*s).removeType;
        for o in list_ptrs((*s).objects) {
            let inside = if FUNCTION_KINDS.contains(&kind) {
                is_tradeguard_namespace(function_namespace(o, kind))
            } else if matches!(
                kind,
                pg_sys::ObjectType::OBJECT_TABLE
                    | pg_sys::ObjectType::OBJECT_INDEX
                    | pg_sys::ObjectType::OBJECT_SEQUENCE
                    | pg_sys::ObjectType::OBJECT_VIEW
                    | pg_sys::ObjectType::OBJECT_MATVIEW
            ) && is_tag(o, N::T_List)
            {
                rel_in(pg_sys::makeRangeVarFromNameList(o as *mut pg_sys::List))
            } else {
                false
            };
            if inside {
                return Some(format!("objects of tradeguard's schemas ({})", name_list(o as *mut pg_sys::List).join(".")));
            }
        }
    } else if t == N::T_RuleStmt || t == N::T_CreateTrigStmt || t == N::T_IndexStmt || t == N::T_AlterTableStmt || t == N::T_AlterSeqStmt {
        // Rules (a view's "_RETURN" replaced), triggers, indexes, ALTER TABLE/VIEW and ALTER
        // SEQUENCE (the trail's id sequence restarted) on tradeguard's relations.
        let rv = match t {
            N::T_RuleStmt => (*(stmt as *mut pg_sys::RuleStmt)).relation,
            N::T_CreateTrigStmt => (*(stmt as *mut pg_sys::CreateTrigStmt)).relation,
            N::T_IndexStmt => (*(stmt as *mut pg_sys::IndexStmt)).relation,
            N::T_AlterTableStmt => (*(stmt as *mut pg_sys::AlterTableStmt)).relation,
            _ => (*(stmt as *mut pg_sys::AlterSeqStmt)).sequence,
        };
        if rel_in(rv) {
            return Some(format!("relations of tradeguard's schemas ({})", cstr((*rv).relname)));
        }
    } else if t == N::T_AlterExtensionContentsStmt && cstr((*(stmt as *mut pg_sys::AlterExtensionContentsStmt)).extname) == "tradeguard" {
        return Some("the members of extension tradeguard".into());
    } else if t == N::T_AlterExtensionContentsStmt {
        // ALTER EXTENSION ... ADD TABLE: DROP EXTENSION would then drop the table with it (as
        // ALTER ... DEPENDS ON EXTENSION would).
        let s = stmt as *mut pg_sys::AlterExtensionContentsStmt;
        let relation_kinds = [pg_sys::ObjectType::OBJECT_TABLE, pg_sys::ObjectType::OBJECT_FOREIGN_TABLE];
        if (*s).action > 0 && relation_kinds.contains(&(*s).objtype) && is_tag((*s).object as *mut c_void, N::T_List) {
            let rv = pg_sys::makeRangeVarFromNameList((*s).object as *mut pg_sys::List);
            if range_var_relid(rv).is_some_and(|r| has_tradeguard_triggers(r) || is_tradeguard_namespace(pg_sys::get_rel_namespace(r))) {
                return Some("extension membership of tradeguard's objects and of protected tables".into());
            }
        }
    } else if t == N::T_CreatePolicyStmt || t == N::T_AlterPolicyStmt {
        let rv = if t == N::T_CreatePolicyStmt {
            (*(stmt as *mut pg_sys::CreatePolicyStmt)).table
        } else {
            (*(stmt as *mut pg_sys::AlterPolicyStmt)).table
        };
        if rel_in(rv) {
            return Some("policies on tradeguard's tables".into());
        }
    }
    None
}

// (Two branches set the same protection, for different statements: kept apart for their
// conditions.)
#[allow(clippy::if_same_then_else)]
unsafe fn inspect(stmt: *mut pg_sys::Node, tag: &str) -> Inspection {
    let mut ins = Inspection { protected: protected_schema_change(stmt), ..Default::default() };
    let t = (*stmt).type_;
    use pg_sys::NodeTag as N;
    if t == N::T_AlterTableStmt {
        let s = stmt as *mut pg_sys::AlterTableStmt;
        if let Some(relid) = range_var_relid((*s).relation) {
            let schema = rel_schema(relid);
            let name = rel_name(relid);
            if schema == "tradeguard_audit" {
                ins.protected = Some(format!("table tradeguard_audit.{name}"));
            }
            // What the statement changes besides the table named: its partitions and children
            // (unless ONLY), the tables of a composite type; and their audited tables.
            let reached = altered_relations(relid, (*(*s).relation).inh);
            let others = other_audit_owners(relid, &reached);
            let audited_data = is_audited(relid) || !others.is_empty();
            // (The table named first: its partitions answer through it.)
            let tables: Vec<pg_sys::Oid> = std::iter::once(relid).chain(reached.iter().copied().filter(|r| *r != relid)).collect();
            for c in list_ptrs((*s).cmds) {
                let cmd = c as *mut pg_sys::AlterTableCmd;
                use pg_sys::AlterTableType as A;
                if matches!((*cmd).subtype, A::AT_AddConstraint | A::AT_AddIndex | A::AT_AddIndexConstraint) {
                    ins.comparisons_on = Some(relid);
                }
                if let Some(what) = trigger_state_change(cmd) {
                    ins.objects.push((relid, what));
                }
                if matches!((*cmd).subtype, A::AT_AddColumn | A::AT_DropColumn | A::AT_AlterColumnType) {
                    ins.rebuild_view = Some(relid);
                }
                if (*cmd).subtype == A::AT_DropColumn {
                    ins.columns_dropped = Some(relid);
                }
                if (*cmd).subtype == pg_sys::AlterTableType::AT_AddInherit && is_tag((*cmd).def as *mut c_void, N::T_RangeVar) {
                    let parent = (*cmd).def as *mut pg_sys::RangeVar;
                    // As for CREATE TABLE ... INHERITS: a parent with tradeguard triggers, or any
                    // table of tradeguard's schemas (its owner could otherwise add rows to it).
                    if let Some(what) = inherits_protected(&[parent]).or_else(|| rel_in_tradeguard_schema(parent).then(|| TRADEGUARD_PARENT.into())) {
                        ins.protected = Some(what);
                    }
                }
                let attach = (*cmd).subtype == pg_sys::AlterTableType::AT_AttachPartition;
                let partition_cmd = attach || (*cmd).subtype == pg_sys::AlterTableType::AT_DetachPartition;
                let part = if partition_cmd && is_tag((*cmd).def as *mut c_void, N::T_PartitionCmd) {
                    range_var_relid((*((*cmd).def as *mut pg_sys::PartitionCmd)).name)
                } else {
                    None
                };
                if let Some(part) = part {
                    if attach {
                        require_trigger_copy(relid);
                        ins.attached.push(part);
                        // Triggers of the tables above are cloned onto the attached table and its
                        // partitions: the encrypt trigger may come from either side, and so may a
                        // BEFORE row trigger that would fire after it.
                        let rels: Vec<pg_sys::Oid> =
                            partition_ancestors(relid).or_raise().into_iter().chain(partition_tree(part).or_raise()).collect();
                        if has_trigger(&rels, ENCRYPT_TRIGGER) && late_before_trigger(&rels, None) {
                            ins.protected = Some(format!(
                                "BEFORE row triggers that would fire after {ENCRYPT_TRIGGER} on {}.{} once attached (name them to sort before it)",
                                rel_schema(part),
                                rel_name(part)
                            ));
                        }
                    }
                    // An audited partition of an unaudited table, attached or detached (to or
                    // from an audited table, it is recorded as that table's DDL below).
                    if is_audited(part) && !is_audited(relid) {
                        ins.record.push(("DDL".into(), rel_schema(part), rel_name(part)));
                    }
                }
                if (*cmd).subtype == pg_sys::AlterTableType::AT_AlterColumnType {
                    // Encrypted values are bound to the text of their row's key: a new type for a
                    // key column (date to timestamp, numeric scale) would change it and leave every
                    // value of the table undecryptable.
                    // (Also where the column is reached through a parent or a composite type.)
                    let col = cstr((*cmd).name);
                    for &r in &tables {
                        let role = crate::crypto::columns::protected_column_role(r, &col).unwrap_or_else(|_| Some("a column tradeguard could not check".into()));
                        if let Some(role) = role {
                            ins.protected = Some(format!("the type of {}.{}.{col}, {role} (changing it would leave the values unreadable)", rel_schema(r), rel_name(r)));
                            break;
                        }
                    }
                    // USING computes new values for every row, and so may a conversion defined in
                    // this database (a type's input function, a cast function): a change of audited
                    // data that no row trigger sees (the trail would show values jump under a DDL
                    // record). PostgreSQL's own casts keep the value (or fail).
                    let def = (*cmd).def as *mut pg_sys::ColumnDef;
                    if is_tag(def as *mut c_void, N::T_ColumnDef) && audited_data {
                        let why = if !(*def).raw_default.is_null() {
                            Some("TYPE ... USING")
                        } else {
                            let new_type = pg_sys::LookupTypeNameOid(std::ptr::null_mut(), (*def).typeName, true);
                            let (mut typid, mut typmod) = (pg_sys::InvalidOid, -1i32);
                            if new_type != pg_sys::InvalidOid {
                                pg_sys::typenameTypeIdAndMod(std::ptr::null_mut(), (*def).typeName, &mut typid, &mut typmod);
                            }
                            conversion_changes_values(relid, &col, new_type, typmod)
                        };
                        if let Some(why) = why {
                            ins.protected = Some(format!(
                                "the values of audited table {schema}.{name} through ALTER COLUMN {col} {why} (the rewritten values would not be recorded row by row)"
                            ));
                        }
                    }
                }
                if matches!((*cmd).subtype, pg_sys::AlterTableType::AT_DropConstraint | pg_sys::AlterTableType::AT_DropColumn) {
                    // Encrypted values are bound to their row's primary key: without it, rows
                    // could share a key (and so each other's values) or have none.
                    let name = cstr((*cmd).name);
                    let columns = if (*cmd).subtype == pg_sys::AlterTableType::AT_DropColumn { vec![name] } else { primary_key_columns(relid, &name) };
                    'key: for col in columns {
                        for &r in &tables {
                            let role = crate::crypto::columns::protected_column_role(r, &col).unwrap_or_else(|_| Some(String::new()));
                            // An encrypted column dropped ends its encryption: a column of that
                            // name written later (added, renamed) would hold plaintext.
                            if role.as_deref().is_some_and(|role| role.starts_with("an encrypted column")) {
                                if (*cmd).subtype == pg_sys::AlterTableType::AT_DropColumn {
                                    ins.protected = Some(format!("the encrypted column {}.{}.{col} (dropping it ends its encryption)", rel_schema(r), rel_name(r)));
                                    break 'key;
                                }
                            } else if role.is_some_and(|role| !role.starts_with("the blind index")) {
                                ins.protected = Some(format!(
                                    "the primary key of {}.{} ({col}), which its encrypted values are bound to",
                                    rel_schema(r),
                                    rel_name(r)
                                ));
                                break 'key;
                            }
                        }
                    }
                }
                if TRIGGER_STATE_CMDS.contains(&(*cmd).subtype) {
                    let trig = cstr((*cmd).name);
                    let all = trig.is_empty();
                    if (trig.starts_with("tradeguard_") || all) && has_tradeguard_triggers(relid) {
                        ins.protected = Some(format!("the tradeguard triggers of {schema}.{name}"));
                    }
                }
            }
            if is_audited(relid) {
                ins.record.push(("DDL".into(), schema, name));
                ins.refresh.push((relid, None));
            }
            for o in others {
                ins.record.push(("DDL".into(), rel_schema(o), rel_name(o)));
                ins.refresh.push((o, None));
            }
        }
    } else if t == N::T_DropStmt {
        let s = stmt as *mut pg_sys::DropStmt;
        let kind = (*s).removeType;
        if (*s).behavior == pg_sys::DropBehavior::DROP_CASCADE && cascade_traced(kind) {
            // DROP FUNCTION/EXTENSION/... CASCADE: the columns, defaults, generated columns,
            // constraints and triggers of audited tables it takes with it.
            for o in list_ptrs((*s).objects) {
                // As DROP itself looks the object up next (same lock, before its ownership check).
                // (It always writes the relation pointer: none for these kinds, closed if any.)
                let mut rel: pg_sys::Relation = std::ptr::null_mut();
                let addr = pg_sys::get_object_address(kind, o as *mut pg_sys::Node, &mut rel, pg_sys::AccessExclusiveLock as i32, true);
                if !rel.is_null() {
                    pg_sys::relation_close(rel, pg_sys::NoLock as i32);
                }
                let (tables, reaches_tradeguard) = audited_tables_depending_on(addr);
                if reaches_tradeguard {
                    ins.protected = Some("extension tradeguard (the cascade reaches its objects: PostgreSQL would drop the extension and its trail)".into());
                }
                for (schema, table) in tables {
                    if !ins.record.iter().any(|(_, s, t)| *s == schema && *t == table) {
                        ins.record.push(("DDL".into(), schema, table));
                    }
                }
            }
        }
        for o in list_ptrs((*s).objects) {
            if matches!(kind, pg_sys::ObjectType::OBJECT_TYPE | pg_sys::ObjectType::OBJECT_DOMAIN) && is_tag(o, N::T_TypeName) {
                // DROP TYPE/DOMAIN ... CASCADE drops the audited columns of that type.
                for (schema, table) in audited_tables_using_type(pg_sys::LookupTypeNameOid(std::ptr::null_mut(), o as *mut pg_sys::TypeName, true)) {
                    ins.record.push(("DDL".into(), schema, table));
                }
                continue;
            }
            let names = if is_tag(o, N::T_List) { name_list(o as *mut pg_sys::List) } else if is_tag(o, N::T_String) {
                vec![cstr((*(o as *mut pg_sys::String)).sval)]
            } else {
                vec![]
            };
            let last = names.last().cloned().unwrap_or_default();
            if kind == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER {
                ins.record.push((tag.to_string(), String::new(), last.clone()));
            } else if kind == pg_sys::ObjectType::OBJECT_TRIGGER && last.starts_with("tradeguard_") {
                ins.protected = Some(format!("trigger {last}"));
            } else if matches!(kind, pg_sys::ObjectType::OBJECT_TRIGGER | pg_sys::ObjectType::OBJECT_RULE) && names.len() >= 2 {
                // DROP TRIGGER/RULE name ON table: the list is the table's name, then the object's.
                let table = pg_sys::list_copy_head(o as *mut pg_sys::List, (names.len() - 1) as i32);
                if let Some(relid) = range_var_relid(pg_sys::makeRangeVarFromNameList(table)) {
                    if is_audited(relid) {
                        ins.record.push(("DDL".into(), rel_schema(relid), rel_name(relid)));
                        let what = if kind == pg_sys::ObjectType::OBJECT_TRIGGER { "TRIGGER" } else { "RULE" };
                        ins.objects.push((relid, format!("DROP {what} {last}")));
                    }
                }
            } else if kind == pg_sys::ObjectType::OBJECT_INDEX {
                // An index of an audited table (a unique one decides which writes succeed).
                let table = range_var_relid(pg_sys::makeRangeVarFromNameList(o as *mut pg_sys::List)).map(|i| pg_sys::IndexGetRelation(i, true));
                if let Some(relid) = table.filter(|r| *r != pg_sys::InvalidOid && is_audited(*r)) {
                    ins.record.push(("DDL".into(), rel_schema(relid), rel_name(relid)));
                    ins.objects.push((relid, format!("DROP INDEX {last}")));
                }
            } else if kind == pg_sys::ObjectType::OBJECT_SCHEMA && last == "tradeguard_audit" {
                ins.protected = Some("schema tradeguard_audit".into());
            } else if kind == pg_sys::ObjectType::OBJECT_SCHEMA && !is_tradeguard_schema(&last) {
                // DROP SCHEMA ... CASCADE drops its tables without a DROP TABLE the hook sees:
                // their registrations must not outlive them (a new table of the same name would
                // inherit them).
                ins.dropped_schemas.push(last.clone());
                // ... and its audited tables, with their partitions and children elsewhere, and
                // partitions of audited tables elsewhere that it holds, are dropped as surely as
                // by DROP TABLE: recorded.
                ins.drops(&catalog_first::<Vec<pg_sys::Oid>>(
                    "SELECT pg_catalog.array_agg(c.oid) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'f')",
                    &[last.as_str().into()],
                )
                .unwrap_or_default());
            } else if kind == pg_sys::ObjectType::OBJECT_EXTENSION && last == "tradeguard" && audit_rows_exist() {
                ins.protected = Some("extension tradeguard (it holds the audit trail)".into());
            } else if kind == pg_sys::ObjectType::OBJECT_EXTENSION {
                // Its member tables (and their partitions and children) go with it.
                ins.drops(&catalog_first::<Vec<pg_sys::Oid>>(
                    "SELECT pg_catalog.array_agg(d.objid) FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                      WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.extname = $1
                        AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'e'",
                    &[last.as_str().into()],
                )
                .unwrap_or_default());
            } else if names.len() >= 2 && names[names.len() - 2] == "tradeguard_audit" {
                ins.protected = Some(format!("tradeguard_audit.{last}"));
            } else if matches!(kind, pg_sys::ObjectType::OBJECT_TABLE | pg_sys::ObjectType::OBJECT_FOREIGN_TABLE) {
                let rv = pg_sys::makeRangeVarFromNameList(o as *mut pg_sys::List);
                if let Some(relid) = range_var_relid(rv) {
                    ins.dropped.push((relid, rel_schema(relid), rel_name(relid)));
                    // The table if audited, and audited partitions and children it takes with it.
                    ins.drops(&[relid]);
                }
            }
        }
        if (*s).behavior == pg_sys::DropBehavior::DROP_CASCADE {
            ins.drop_check = true;
        }
    } else if (t == N::T_RenameStmt && (*(stmt as *mut pg_sys::RenameStmt)).renameType == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER)
        || (t == N::T_AlterOwnerStmt && (*(stmt as *mut pg_sys::AlterOwnerStmt)).objectType == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER)
    {
        // ALTER EVENT TRIGGER ... RENAME TO / OWNER TO (the other forms are AlterEventTrigStmt).
        let object = if t == N::T_RenameStmt { (*(stmt as *mut pg_sys::RenameStmt)).object } else { (*(stmt as *mut pg_sys::AlterOwnerStmt)).object };
        let name = if is_tag(object as *mut c_void, N::T_String) { cstr((*(object as *mut pg_sys::String)).sval) } else { String::new() };
        ins.record.push((tag.to_string(), String::new(), name));
    } else if t == N::T_RenameStmt && (*(stmt as *mut pg_sys::RenameStmt)).renameType == pg_sys::ObjectType::OBJECT_ROLE {
        let s = stmt as *mut pg_sys::RenameStmt;
        ins.record.push((tag.to_string(), String::new(), format!("{} RENAME TO {}", cstr((*s).subname), cstr((*s).newname))));
    } else if t == N::T_RenameStmt && (*(stmt as *mut pg_sys::RenameStmt)).renameType == pg_sys::ObjectType::OBJECT_SCHEMA {
        let s = stmt as *mut pg_sys::RenameStmt;
        let (old, new) = (cstr((*s).subname), cstr((*s).newname));
        // tradeguard's own schemas are refused above (or renamed under break-glass: then there
        // is nothing of the user's to follow, and the registrations' table is being moved).
        if !is_tradeguard_schema(&old) {
            if schema_has_audited_tables(&old) {
                ins.record.push(("DDL".into(), old.clone(), format!("schema renamed to {new}")));
            }
            ins.schema_renamed = Some((old, new));
        }
    } else if t == N::T_RenameStmt {
        let s = stmt as *mut pg_sys::RenameStmt;
        if (*s).renameType == pg_sys::ObjectType::OBJECT_TRIGGER {
            let (old, new) = (cstr((*s).subname), cstr((*s).newname));
            if old.starts_with("tradeguard_") || new.starts_with("tradeguard_") {
                ins.protected = Some(format!("trigger {old}"));
            } else if let Some(relid) = range_var_relid((*s).relation) {
                // Renamed to fire after the encrypt trigger (BEFORE row triggers fire in name order).
                if has_trigger(&partition_tree(relid).or_raise(), ENCRYPT_TRIGGER) && late_before_trigger(&[relid], Some((&old, &new))) {
                    ins.protected = Some(late_trigger_refusal(relid));
                }
            }
        }
        if let Some(relid) = range_var_relid((*s).relation).filter(|_| (*s).renameType == pg_sys::ObjectType::OBJECT_TRIGGER) {
            ins.objects.push((relid, format!("RENAME TRIGGER {} TO {}", cstr((*s).subname), cstr((*s).newname))));
        }
        // ALTER INDEX ... RENAME of an index of an audited table.
        let index_of = range_var_relid((*s).relation)
            .filter(|_| (*s).renameType == pg_sys::ObjectType::OBJECT_INDEX)
            .map(|i| pg_sys::IndexGetRelation(i, true))
            .filter(|r| *r != pg_sys::InvalidOid && is_audited(*r));
        if let Some(table) = index_of {
            ins.record.push(("DDL".into(), rel_schema(table), rel_name(table)));
            ins.objects.push((table, format!("RENAME INDEX {} TO {}", cstr((*(*s).relation).relname), cstr((*s).newname))));
        }
        if let Some(relid) = range_var_relid((*s).relation) {
            use pg_sys::ObjectType::*;
            let column = matches!((*s).renameType, OBJECT_COLUMN | OBJECT_ATTRIBUTE);
            let renamed = column.then(|| (cstr((*s).subname), cstr((*s).newname)));
            // ALTER INDEX, SEQUENCE, VIEW ... RENAME TO rename a table too (PostgreSQL allows it).
            let relation = matches!(
                (*s).renameType,
                OBJECT_TABLE | OBJECT_INDEX | OBJECT_SEQUENCE | OBJECT_VIEW | OBJECT_MATVIEW | OBJECT_FOREIGN_TABLE
            );
            if column || relation {
                ins.renamed = Some((relid, rel_schema(relid), rel_name(relid), renamed.clone()));
            }
            if rel_schema(relid) == "tradeguard_audit" {
                ins.protected = Some(format!("tradeguard_audit.{}", rel_name(relid)));
            } else if is_audited(relid) {
                ins.record.push(("DDL".into(), rel_schema(relid), rel_name(relid)));
                ins.refresh.push((relid, renamed.clone()));
            }
            if column {
                ins.rebuild_view = Some(relid);
                // Renamed in the partitions and children too (unless ONLY), and for a composite
                // type's attribute (CASCADE), in the tables of that type.
                let reached = altered_relations(relid, (*(*s).relation).inh);
                for o in other_audit_owners(relid, &reached) {
                    ins.record.push(("DDL".into(), rel_schema(o), rel_name(o)));
                    ins.refresh.push((o, renamed.clone()));
                }
                ins.column_renamed_in = reached.into_iter().filter(|r| *r != relid).map(|r| (r, rel_schema(r), rel_name(r))).collect();
            }
        }
    } else if t == N::T_CreateTrigStmt || t == N::T_IndexStmt || t == N::T_RuleStmt {
        // Triggers, indexes and rules change what a write to a table does.
        let (rv, what) = if t == N::T_CreateTrigStmt {
            ((*(stmt as *mut pg_sys::CreateTrigStmt)).relation, "triggers")
        } else if t == N::T_IndexStmt {
            ((*(stmt as *mut pg_sys::IndexStmt)).relation, "indexes")
        } else {
            ((*(stmt as *mut pg_sys::RuleStmt)).relation, "rules")
        };
        if let Some(relid) = range_var_relid(rv) {
            if rel_schema(relid) == "tradeguard_audit" {
                ins.protected = Some(format!("{what} of tradeguard_audit.{}", rel_name(relid)));
            } else if is_audited(relid) {
                ins.record.push(("DDL".into(), rel_schema(relid), rel_name(relid)));
            }
            if t == N::T_CreateTrigStmt {
                ins.objects.push((relid, trigger_definition(stmt as *mut pg_sys::CreateTrigStmt)));
            } else if t == N::T_IndexStmt {
                ins.comparisons_on = Some(relid);
                ins.objects.push((relid, index_definition(stmt as *mut pg_sys::IndexStmt)));
            }
            if t == N::T_CreateTrigStmt {
                let s = stmt as *mut pg_sys::CreateTrigStmt;
                let name = cstr((*s).trigname);
                if name.starts_with("tradeguard_") && (has_trigger(&[relid], &name) || !crate::gucs::restore_mode()) {
                    // CREATE OR REPLACE TRIGGER would swap the function behind one of ours; a
                    // new one under tradeguard's names is tradeguard's to make (audit_table,
                    // encrypt_column, guard_columns), or pg_restore's in restore mode.
                    ins.protected = Some(format!("the tradeguard triggers of {}.{}", rel_schema(relid), rel_name(relid)));
                } else if (*s).row
                    && (*s).timing as u32 & pg_sys::TRIGGER_TYPE_BEFORE != 0
                    && name.as_str() > ENCRYPT_TRIGGER
                    && has_trigger(&partition_tree(relid).or_raise(), ENCRYPT_TRIGGER)
                {
                    // BEFORE row triggers fire in name order: one after the encrypt trigger
                    // would see (or write, in clear) the sealed values.
                    ins.protected = Some(late_trigger_refusal(relid));
                }
            }
        }
    } else if t == N::T_AlterObjectSchemaStmt {
        // SET SCHEMA of an audited table (tradeguard's own objects are refused above).
        if let Some(relid) = range_var_relid((*(stmt as *mut pg_sys::AlterObjectSchemaStmt)).relation) {
            if (*(stmt as *mut pg_sys::AlterObjectSchemaStmt)).objectType == pg_sys::ObjectType::OBJECT_TABLE {
                ins.renamed = Some((relid, rel_schema(relid), rel_name(relid), None));
            }
            if is_audited(relid) {
                ins.record.push(("DDL".into(), rel_schema(relid), rel_name(relid)));
            }
        }
    } else if t == N::T_TruncateStmt {
        let s = stmt as *mut pg_sys::TruncateStmt;
        let (mut only, mut with_children) = (Vec::new(), Vec::new());
        for rv in list_ptrs((*s).relations) {
            let rv = rv as *mut pg_sys::RangeVar;
            if let Some(relid) = range_var_relid(rv) {
                if (*rv).inh { with_children.push(relid) } else { only.push(relid) }
            }
        }
        // Every relation it empties (partitions and, with CASCADE, referencing tables included):
        // a partition has no TRUNCATE trigger of its own, so its audited table records it,
        // unless that table is emptied too (its own trigger records that).
        let reached = truncated_relations(&only, &with_children, (*s).behavior == pg_sys::DropBehavior::DROP_CASCADE);
        let reached_names: Vec<(String, String)> = reached.iter().map(|r| (rel_schema(*r), rel_name(*r))).collect();
        for (relid, (schema, name)) in reached.iter().zip(&reached_names) {
            // A sub-partition emptied with its partition is recorded with it, once.
            let parent = catalog_first::<pg_sys::Oid>("SELECT inhparent FROM pg_catalog.pg_inherits WHERE inhrelid = $1", &[(*relid).into()]);
            if parent.is_some_and(|p| reached.contains(&p)) {
                continue;
            }
            // Not knowing whether it must be recorded stops the TRUNCATE (never fail open).
            match audited_ancestor(*relid) {
                Ok(Some(ancestor)) if !reached_names.contains(&ancestor) => {
                    ins.truncated.push((ancestor.0, ancestor.1, format!("{schema}.{name}")))
                }
                Ok(_) => {}
                Err(e) => e.raise(),
            }
        }
    } else if t == N::T_GrantRoleStmt {
        // "granted roles TO grantees" (role names only; never options that could carry secrets).
        let s = stmt as *mut pg_sys::GrantRoleStmt;
        let granted: Vec<String> = list_ptrs((*s).granted_roles)
            .into_iter()
            .filter(|p| is_tag(*p, N::T_AccessPriv))
            .map(|p| cstr((*(p as *mut pg_sys::AccessPriv)).priv_name))
            .collect();
        let grantees = role_specs((*s).grantee_roles);
        let dir = if (*s).is_grant { "TO" } else { "FROM" };
        ins.record.push((tag.to_string(), String::new(), format!("{} {dir} {grantees}", granted.join(", "))));
    } else if t == N::T_GrantStmt || t == N::T_AlterDefaultPrivilegesStmt {
        let (grant, in_schemas) = if t == N::T_GrantStmt {
            (stmt as *mut pg_sys::GrantStmt, Vec::new())
        } else {
            let s = stmt as *mut pg_sys::AlterDefaultPrivilegesStmt;
            let schemas = list_ptrs((*s).options)
                .into_iter()
                .map(|o| o as *mut pg_sys::DefElem)
                .filter(|d| cstr((**d).defname) == "schemas")
                .flat_map(|d| name_list((*d).arg as *mut pg_sys::List))
                .collect();
            ((*s).action, schemas)
        };
        let grantees = role_specs((*grant).grantees);
        // Privileges on tradeguard's schemas and what they hold (USAGE on tradeguard_audit, a
        // table of the trail, a function to PUBLIC) are tradeguard's to set: break-glass (or a
        // superuser's restore mode, for the privileges a dump carries; recorded either way).
        let ours = if t == N::T_GrantStmt { grant_objects_in_tradeguard_schemas(grant) } else { in_schemas.into_iter().find(|n| is_tradeguard_schema(n)).map(|n| format!("default privileges in schema {n}")) };
        if let Some(what) = ours.as_ref().filter(|_| !crate::gucs::restore_mode()) {
            ins.protected = Some(format!("privileges on {what}"));
        }
        let detail = match ours {
            Some(what) => format!("{what} {} {grantees}", if (*grant).is_grant { "TO" } else { "FROM" }),
            None => grantees,
        };
        ins.record.push((tag.to_string(), String::new(), detail));
    } else if t == N::T_CreateRoleStmt {
        ins.record.push((tag.to_string(), String::new(), cstr((*(stmt as *mut pg_sys::CreateRoleStmt)).role)));
    } else if t == N::T_AlterRoleStmt || t == N::T_AlterRoleSetStmt || t == N::T_DropRoleStmt {
        let who = match t {
            N::T_AlterRoleStmt => role_spec_name((*(stmt as *mut pg_sys::AlterRoleStmt)).role),
            N::T_AlterRoleSetStmt => {
                // ALTER ROLE ... SET name (never the value): a role default such as
                // tradeguard.restore_mode = on is told apart from any other ALTER ROLE.
                let a = stmt as *mut pg_sys::AlterRoleSetStmt;
                let db = if (*a).database.is_null() { String::new() } else { format!(" IN DATABASE {}", cstr((*a).database)) };
                format!("{}{db} {}", role_spec_name((*a).role), set_action((*a).setstmt))
            }
            _ => role_specs((*(stmt as *mut pg_sys::DropRoleStmt)).roles),
        };
        ins.record.push((tag.to_string(), String::new(), who));
    } else if let Some(s) = create_stmt(stmt) {
        // A child by table inheritance (not a partition) of a protected table, a foreign table
        // too: the parent's triggers do not fire for the child's rows.
        if (*s).partbound.is_null() {
            let parents: Vec<*mut pg_sys::RangeVar> = list_ptrs((*s).inhRelations).into_iter().map(|p| p as *mut pg_sys::RangeVar).collect();
            if let Some(what) = inherits_protected(&parents) {
                ins.protected = Some(what);
            }
        } else if let Some(parent) = list_ptrs((*s).inhRelations).first().and_then(|p| range_var_relid(*p as *mut pg_sys::RangeVar)) {
            require_trigger_copy(parent);
            // (Its own CHECK constraints and indexes join the partitioned table's tree.)
            ins.comparisons_on = Some(parent);
            // A new partition of an audited table (its rows are recorded from the first one).
            for o in audit_owners(&[parent]) {
                ins.record.push(("DDL".into(), rel_schema(o), rel_name(o)));
            }
        }
    } else if t == N::T_AlterEnumStmt && !(*(stmt as *mut pg_sys::AlterEnumStmt)).oldVal.is_null() {
        // ALTER TYPE ... RENAME VALUE changes what stored values of audited columns mean.
        let tn = pg_sys::makeTypeNameFromNameList((*(stmt as *mut pg_sys::AlterEnumStmt)).typeName);
        for (schema, table) in audited_tables_using_type(pg_sys::LookupTypeNameOid(std::ptr::null_mut(), tn, true)) {
            ins.record.push(("DDL".into(), schema, table));
        }
    } else if t == N::T_AlterObjectDependsStmt {
        // ALTER ... DEPENDS ON EXTENSION: the object would go with that extension's DROP,
        // unrecorded (a tradeguard trigger, an audited or encrypted table, tradeguard's own).
        let s = stmt as *mut pg_sys::AlterObjectDependsStmt;
        let on_relation = range_var_relid((*s).relation).is_some_and(|r| has_tradeguard_triggers(r) || is_tradeguard_namespace(pg_sys::get_rel_namespace(r)));
        let function = FUNCTION_KINDS.contains(&(*s).objectType) && is_tradeguard_namespace(function_namespace((*s).object as *mut c_void, (*s).objectType));
        if on_relation || function {
            ins.protected = Some("extension dependencies of tradeguard's objects and of protected tables".into());
        }
    } else if t == N::T_ReassignOwnedStmt {
        // Owners of audited tables change with it (ALTER ... OWNER TO of one table is DDL).
        let s = stmt as *mut pg_sys::ReassignOwnedStmt;
        ins.record.push((tag.to_string(), String::new(), format!("{} TO {}", role_specs((*s).roles), role_spec_name((*s).newrole))));
    } else if t == N::T_DropOwnedStmt {
        // DROP OWNED BY would drop audited or encrypted tables without their DROP TABLE being
        // recorded or their registrations removed.
        let roles: Vec<pg_sys::Oid> =
            list_ptrs((*(stmt as *mut pg_sys::DropOwnedStmt)).roles).into_iter().map(|r| pg_sys::get_rolespec_oid(r as *mut pg_sys::RoleSpec, true)).collect();
        let owns = catalog_says(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid
                             WHERE c.relowner = ANY ($1) AND t.tgname LIKE E'tradeguard\\\\_%')",
            &[roles.into()],
        );
        if owns {
            ins.protected = Some("DROP OWNED BY of roles that own audited or encrypted tables (DROP TABLE them first: each drop is recorded)".into());
        }
        ins.drop_check = true;
    } else if t == N::T_CreateEventTrigStmt || t == N::T_AlterEventTrigStmt {
        // An event trigger runs a superuser's code inside every DDL statement that fires it
        // (tradeguard's own included): who installed or changed one is recorded.
        let name = if t == N::T_CreateEventTrigStmt {
            cstr((*(stmt as *mut pg_sys::CreateEventTrigStmt)).trigname)
        } else {
            cstr((*(stmt as *mut pg_sys::AlterEventTrigStmt)).trigname)
        };
        ins.record.push((tag.to_string(), String::new(), name));
    } else if t == N::T_CreateCastStmt && !pg_sys::superuser() {
        // to_jsonb calls a cast to json of a type created in the database: the type's owner
        // could make the trail record what they like for columns of that type in arrays and
        // composites (scalars are written through the type's output function instead).
        let target = pg_sys::typenameTypeId(std::ptr::null_mut(), (*(stmt as *mut pg_sys::CreateCastStmt)).targettype);
        if json_type(target) {
            ins.protected = Some("casts to json or jsonb (to_jsonb would call them to write the audit trail)".into());
        }
    } else if t == N::T_CreateFunctionStmt && (*(stmt as *mut pg_sys::CreateFunctionStmt)).replace && !pg_sys::superuser() && {
        let mut name: *mut c_char = std::ptr::null_mut();
        let nsp = pg_sys::QualifiedNameGetCreationNamespace((*(stmt as *mut pg_sys::CreateFunctionStmt)).funcname, &mut name);
        catalog_says(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
                             WHERE c.casttarget IN ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype)
                               AND p.proname OPERATOR(pg_catalog.=) $1 AND p.pronamespace OPERATOR(pg_catalog.=) $2)",
            &[cstr(name).as_str().into(), nsp.into()],
        )
    } {
        ins.protected = Some(JSON_CAST_FUNCTIONS.into());
    } else if t == N::T_AlterFunctionStmt && !pg_sys::superuser() && {
        let s = stmt as *mut pg_sys::AlterFunctionStmt;
        let f = pg_sys::LookupFuncWithArgs((*s).objtype, (*s).func, true);
        f != pg_sys::InvalidOid
            && catalog_says(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castfunc = $1
                                 AND c.casttarget IN ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype))",
                &[f.into()],
            )
    } {
        ins.protected = Some(JSON_CAST_FUNCTIONS.into());
    } else if t == N::T_CreateFunctionStmt && (*(stmt as *mut pg_sys::CreateFunctionStmt)).replace {
        // CREATE OR REPLACE of an event trigger's function changes what the event trigger runs,
        // as surely as ALTER EVENT TRIGGER: recorded, with the event trigger's name. The function
        // replaced is the one of that name with no input arguments in the schema it is created in
        // (as PostgreSQL resolves it; an event trigger's function takes none).
        let s = stmt as *mut pg_sys::CreateFunctionStmt;
        let inputs = list_ptrs((*s).parameters).into_iter().any(|p| {
            use pg_sys::FunctionParameterMode::*;
            matches!((*(p as *mut pg_sys::FunctionParameter)).mode, FUNC_PARAM_IN | FUNC_PARAM_INOUT | FUNC_PARAM_VARIADIC | FUNC_PARAM_DEFAULT)
        });
        if !inputs {
            let mut name: *mut c_char = std::ptr::null_mut();
            let nsp = pg_sys::QualifiedNameGetCreationNamespace((*s).funcname, &mut name);
            let f = catalog_first::<pg_sys::Oid>(
                "SELECT oid FROM pg_catalog.pg_proc WHERE proname OPERATOR(pg_catalog.=) $1 AND pronamespace OPERATOR(pg_catalog.=) $2 AND pronargs OPERATOR(pg_catalog.=) 0",
                &[cstr(name).as_str().into(), nsp.into()],
            );
            for evt in f.map(event_triggers_of).unwrap_or_default() {
                ins.record.push((tag.to_string(), String::new(), format!("{}.{} (the function of event trigger {evt})", cstr(pg_sys::get_namespace_name(nsp)), cstr(name))));
            }
        }
    } else if t == N::T_AlterFunctionStmt {
        // ALTER FUNCTION of an event trigger's function (SET search_path, SECURITY DEFINER, ...):
        // recorded like a replacement.
        let s = stmt as *mut pg_sys::AlterFunctionStmt;
        let f = pg_sys::LookupFuncWithArgs((*s).objtype, (*s).func, true);
        if f != pg_sys::InvalidOid {
            for evt in event_triggers_of(f) {
                ins.record.push((tag.to_string(), String::new(), format!("{}.{} (the function of event trigger {evt})", cstr(pg_sys::get_namespace_name(pg_sys::get_func_namespace(f))), cstr(pg_sys::get_func_name(f)))));
            }
        }
    } else if t == N::T_CreatePolicyStmt || t == N::T_AlterPolicyStmt {
        let rv = if t == N::T_CreatePolicyStmt { (*(stmt as *mut pg_sys::CreatePolicyStmt)).table } else { (*(stmt as *mut pg_sys::AlterPolicyStmt)).table };
        ins.comparisons_on = range_var_relid(rv);
    } else if t == N::T_AlterDatabaseSetStmt {
        // ALTER DATABASE ... SET tradeguard.*: the setting for every later session there.
        let s = stmt as *mut pg_sys::AlterDatabaseSetStmt;
        let name = if (*s).setstmt.is_null() { String::new() } else { cstr((*(*s).setstmt).name) };
        // (Setting names are case-insensitive: "TradeGuard.restore_mode" is the same setting.)
        if name.to_ascii_lowercase().starts_with("tradeguard.") || (*s).setstmt.is_null() || (*(*s).setstmt).kind == pg_sys::VariableSetKind::VAR_RESET_ALL {
            ins.record.push((tag.to_string(), String::new(), format!("{} {}", cstr((*s).dbname), set_action((*s).setstmt))));
        }
    } else if t == N::T_AlterSystemStmt {
        let s = stmt as *mut pg_sys::AlterSystemStmt;
        ins.record.push(("ALTER SYSTEM".into(), String::new(), set_action((*s).setstmt)));
    } else if t == N::T_VariableSetStmt {
        let s = stmt as *mut pg_sys::VariableSetStmt;
        let name = cstr((*s).name);
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("tradeguard.") && lower != "tradeguard.app_context" {
            ins.record.push(("SET".into(), String::new(), name));
        } else if lower == "session_authorization" && !pg_sys::RecoveryInProgress() && !pg_sys::XactReadOnly {
            // (Not on a standby or in a read-only transaction: nothing can be written there.)
            // A superuser acting as another role: the rows written next name that role as both
            // current and session user; this row names the switch.
            let target = match list_ptrs((*s).args).first() {
                Some(a) if is_tag(*a, N::T_A_Const) && is_tag(std::ptr::addr_of_mut!((*(*a as *mut pg_sys::A_Const)).val) as *mut c_void, N::T_String) => {
                    cstr((*(*a as *mut pg_sys::A_Const)).val.sval.sval)
                }
                _ => "DEFAULT".into(),
            };
            let who = cstr(pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), true));
            ins.record.push(("SET".into(), String::new(), format!("session_authorization {who} -> {target}")));
        }
    }
    ins
}

/// Whether `stmt` is a CREATE/ALTER ROLE (USER, GROUP) with a PASSWORD option.
unsafe fn sets_password(stmt: *mut pg_sys::Node) -> bool {
    let options = if is_tag(stmt as *mut c_void, pg_sys::NodeTag::T_CreateRoleStmt) {
        (*(stmt as *mut pg_sys::CreateRoleStmt)).options
    } else if is_tag(stmt as *mut c_void, pg_sys::NodeTag::T_AlterRoleStmt) {
        (*(stmt as *mut pg_sys::AlterRoleStmt)).options
    } else {
        return false;
    };
    list_ptrs(options).into_iter().any(|o| is_tag(o, pg_sys::NodeTag::T_DefElem) && cstr((*(o as *mut pg_sys::DefElem)).defname) == "password")
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn tradeguard_process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let stmt = (*pstmt).utilityStmt;
    if sets_password(stmt) {
        super::redact::password_statement_running();
    }
    // BEGIN, COMMIT, SAVEPOINT...: nothing to inspect, and no catalog lookup on their path.
    let transaction_stmt = !stmt.is_null() && (*stmt).type_ == pg_sys::NodeTag::T_TransactionStmt;
    let tradeguard = if !transaction_stmt && pg_sys::IsTransactionState() {
        pg_sys::get_extension_oid(c"tradeguard".as_ptr(), true)
    } else {
        pg_sys::InvalidOid
    };
    // Only tradeguard's own install and update scripts are left alone: another extension's
    // script (or an event trigger it sets off) is inspected like any statement.
    let own_script = pg_sys::creating_extension && pg_sys::CurrentExtensionObject == tradeguard;
    let internal = internal_write_active();
    let relevant = !stmt.is_null()
        && !transaction_stmt
        && tradeguard != pg_sys::InvalidOid
        && !own_script
        && !internal;
    let mut ins = Inspection::default();
    if relevant {
        let tag = cstr(pg_sys::CreateCommandName(stmt));
        // Names in the statement resolve through the caller's search_path, as PostgreSQL will
        // resolve them; tradeguard's own catalog queries pin theirs (catalog_says).
        ins = inspect(stmt, &tag);
        if ins.drop_check {
            ins.event_triggers_before = Some(all_event_triggers());
        }
        // pg_restore in restore mode recreates the dump's other extensions before it copies the
        // trail: rows recorded for their scripts' GRANT/REVOKE would take ids the restored
        // trail holds. Restore mode is a superuser's (its writes raise restore_mode_write).
        if pg_sys::creating_extension && crate::gucs::restore_mode() {
            ins.record.clear();
        }
        // What the registrations to refresh exclude, before the statement changes any column.
        for (relid, _) in &ins.refresh {
            if !ins.exclusions_before.iter().any(|(r, _)| r == relid) {
                match excluded_attnums(*relid) {
                    Ok(a) => ins.exclusions_before.push((*relid, a)),
                    Err(e) => e.raise(),
                }
            }
        }
        if let Some(what) = &ins.protected {
            if !break_glass_active() {
                TgError::from(AuditError::Protected { what: what.clone() }).raise();
            }
            // Named as the break-glass change it is, and recorded on what it changed as well.
            ins.record.insert(0, ("BREAK_GLASS_CHANGE".into(), "tradeguard".into(), what.clone()));
        }
        // Fail closed: a change that must be recorded does not run when it cannot be signed.
        // ALTER SYSTEM and SET stay possible (with a WARNING) so the DBA can repair the key setting.
        let must_sign = ins.record.iter().any(|(op, _, _)| op != "ALTER SYSTEM" && op != "SET");
        if must_sign || !ins.truncated.is_empty() {
            if let Err(e) = super::audit_key() {
                e.raise();
            }
        }
    }
    // (Only for the table's owner: PostgreSQL checks ownership before it locks anything, and a
    // caller who may not alter the table must not get its view locked either.)
    if let Some(relid) = ins.rebuild_view.filter(|r| pg_sys::pg_class_ownercheck(*r, pg_sys::GetUserId())) {
        ins.view_dropped = crate::crypto::columns::drop_decrypted_view(relid).or_raise();
    }
    // The trail may be open from audit rows written earlier in this transaction: DDL on it
    // (CREATE INDEX, ALTER, TRUNCATE, DROP EXTENSION) refuses a table in use by this session.
    if !stmt.is_null() {
        super::triggers::close_trail();
    }
    // A statement tradeguard issued itself (not inspected above) runs without tradeguard's
    // rights: an event trigger it fires runs the owner's code, which is inspected, and whose
    // writes to the trail are refused, like any other.
    let suspended = (internal && !stmt.is_null() && !transaction_stmt).then(crate::common::SuspendedInternal::begin);
    match PREV_UTILITY {
        // (Guarded: an error raised below unwinds through this frame, and `suspended` is dropped.)
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc)),
        None => pg_sys::standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc),
    }
    drop(suspended);
    // (protected alone needs nothing afterwards: a refused statement never gets here, and an
    // allowed one is in `record`.)
    if !ins.is_empty() {
        crate::common::with_catalog_search_path(|| after_statement(stmt, &ins));
    }
}

/// What the hook does once the statement has run: records it, and brings registrations up to
/// date with it.
unsafe fn after_statement(stmt: *mut pg_sys::Node, ins: &Inspection) {
    for (schema, table, partition) in &ins.truncated {
        // Recorded like the audited table's own TRUNCATE trigger would, naming the partition.
        let detail = serde_json::json!({ "command": "TRUNCATE TABLE", "partition": partition });
        if let Err(e) = record_system("TRUNCATE", schema, table, detail) {
            e.raise();
        }
    }
    if !ins.dropped.is_empty() {
        // A table created later under the same name must not inherit them.
        if let Err(e) = forget_dropped(&ins.dropped) {
            e.raise();
        }
    }
    if let Some(relid) = ins.comparisons_on {
        if let Err(e) = crate::crypto::columns::refuse_new_comparisons(relid) {
            e.raise();
        }
    }
    for part in &ins.attached {
        // The encrypt trigger was cloned onto the attached table; its existing rows are
        // converted now, in the same transaction (or the ATTACH fails): no plaintext at rest
        // in an encrypted partitioned table.
        if let Err(e) = crate::crypto::columns::convert_attached_partition(*part) {
            e.raise();
        }
    }
    // Registrations whose table is gone (DROP SCHEMA, and any path the inspection did not
    // foresee): forgotten, and recorded below as dropped unless already.
    let vanished = if ins.drop_check { forget_vanished(&ins.dropped_schemas).or_raise() } else { Vec::new() };
    let vanished: Vec<(String, String, String)> = vanished
        .into_iter()
        .filter(|(schema, table)| !ins.record.iter().any(|(op, s, t)| op == "DROP TABLE" && s == schema && t == table))
        .map(|(schema, table)| ("DROP TABLE".to_string(), schema, table))
        .collect();
    if let Some((old, new)) = &ins.schema_renamed {
        if let Err(e) = crate::crypto::columns::follow_schema_rename(old, new) {
            e.raise();
        }
    }
    if let Some((relid, schema, table, column)) = &ins.renamed {
        // The renamed table, then the tables a column rename reached through it (its partitions
        // and children).
        let reached = if column.is_some() { &ins.column_renamed_in[..] } else { &[] };
        for (rel, schema, table) in std::iter::once((relid, schema, table)).chain(reached.iter().map(|(r, s, t)| (r, s, t))) {
            let followed = crate::crypto::columns::follow_rename(*rel, schema, table, column.as_ref()).and_then(|_| match column {
                // (A partition's guard triggers are copies of its parent's, which follow with it.)
                Some((old, new)) if rel == relid || !pg_sys::get_rel_relispartition(*rel) => crate::ids::follow_column_rename(*rel, old, new),
                _ => Ok(()),
            });
            if let Err(e) = followed {
                e.raise();
            }
        }
    }
    let encrypted_left = match ins.columns_dropped {
        Some(relid) => crate::crypto::columns::forget_dropped_columns(relid).or_raise(),
        None => true,
    };
    if let Some((schema, table)) = ins.view_dropped.as_ref().filter(|_| encrypted_left) {
        if let Err(e) = crate::crypto::columns::rebuild_decrypted_view(schema, table) {
            e.raise();
        }
    }
    for (relid, _) in &ins.refresh {
        // The registration follows the table: its exclusions follow their columns, and the
        // primary key recorded is the table's current one.
        let before = ins.exclusions_before.iter().find(|(r, _)| r == relid).map(|(_, a)| &a[..]);
        if let Err(e) = refresh_registration(*relid, before) {
            e.raise();
        }
    }
    // Event triggers that went with what the statement dropped (a function, schema, extension,
    // language, or DROP OWNED): recorded like DROP EVENT TRIGGER.
    let vanished_event_triggers: Vec<(String, String, String)> = match &ins.event_triggers_before {
        Some(before) => {
            let now = all_event_triggers();
            before
                .iter()
                .filter(|e| !now.contains(e) && !ins.record.iter().any(|(op, _, t)| op == "DROP EVENT TRIGGER" && t == *e))
                .map(|e| ("DROP EVENT TRIGGER".to_string(), String::new(), e.clone()))
                .collect()
        }
        None => Vec::new(),
    };
    for (op, schema, object) in ins.record.iter().chain(&vanished).chain(&vanished_event_triggers) {
        // The extension may be gone now (DROP EXTENSION under break-glass).
        if pg_sys::get_extension_oid(c"tradeguard".as_ptr(), true) == pg_sys::InvalidOid {
            pgrx::warning!("tradeguard: {op} {object} done under break-glass; the extension and its trail are gone");
            return;
        }
        let tag = cstr(pg_sys::CreateCommandName(stmt));
        let mut detail = serde_json::json!({ "command": tag });
        // (A DDL row lists what was changed on its table; a break-glass row all of it.)
        let objects: Vec<&String> = ins
            .objects
            .iter()
            .filter(|(rel, _)| op == "BREAK_GLASS_CHANGE" || (op == "DDL" && rel_schema(*rel) == *schema && rel_name(*rel) == *object))
            .map(|(_, what)| what)
            .collect();
        if !objects.is_empty() {
            detail["objects"] = serde_json::json!(objects);
        }
        // ATTACH PARTITION: its rows join the audited table without a row record each.
        if op == "DDL" && !ins.attached.is_empty() {
            detail["attached"] = ins.attached.iter().map(|p| format!("{}.{}", rel_schema(*p), rel_name(*p))).collect();
        }
        // A renamed or moved audited table, or a renamed schema that holds audited tables: the
        // row names where it went, and the registration keeps the names it had (history()
        // follows them back).
        let table_moved = ins
            .renamed
            .as_ref()
            .filter(|(_, s, t, column)| column.is_none() && op == "DDL" && s == schema && t == object)
            .map(|(relid, ..)| (*relid, rel_schema(*relid), rel_name(*relid)));
        let schema_moved = ins.schema_renamed.as_ref().filter(|(old, _)| op == "DDL" && old == schema && object.starts_with("schema renamed"));
        if let Some((_, s, t)) = &table_moved {
            detail["renamed_to"] = serde_json::json!([s, t]);
        }
        if let Some((_, new)) = schema_moved {
            detail["schema_renamed_to"] = serde_json::json!(new);
        }
        let id = match record(op, schema, object, detail) {
            Ok(id) => Some(id),
            // ALTER SYSTEM and SET stay possible so the DBA can repair the key setting.
            Err(e) if op == "ALTER SYSTEM" || op == "SET" => {
                pgrx::warning!("{}", crate::error::hide_root_key_path(format!("tradeguard: could not record {tag} in the audit trail: {e}")));
                None
            }
            // Fail closed: the statement has run, and its transaction now rolls back with it.
            Err(e) => e.raise(),
        };
        let followed = match (&table_moved, schema_moved) {
            (Some((relid, s, t)), _) => follow_names(Some(*relid), (schema, s), Some((object, t)), id),
            (None, Some((old, new))) => follow_names(None, (old, new), None, id),
            _ => Ok(()),
        };
        if let Err(e) = followed {
            e.raise();
        }
    }
}

/// Keeps audited-table registrations under their tables' current names, and the names they had
/// before with the id of the trail row that recorded the change (`until`): rows up to it were
/// recorded under the former name. A table moved (`relid`, `schemas` and `tables`: old and new
/// names), or every table of a renamed schema (`schemas`: old, new).
fn follow_names(relid: Option<pg_sys::Oid>, schemas: (&str, &str), tables: Option<(&str, &str)>, until: Option<i64>) -> TgResult<()> {
    let (old_table, new_table) = tables.unzip();
    let _w = super::InternalWrite::begin();
    crate::common::as_owner(|| {
        Spi::run_with_args(
            "UPDATE tradeguard_audit.audited_tables a
                SET schema_name = $3, table_name = coalesce($5, a.table_name),
                    former_names = a.former_names || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                        'schema', $2::text, 'table', coalesce($4, a.table_name),
                        'until', coalesce($6, (SELECT s.last_value FROM tradeguard_audit.log_id_seq s))))
              WHERE CASE WHEN $1 IS NULL THEN a.schema_name = $2 ELSE a.relid = $1 END
                AND ($2::text, coalesce($4, a.table_name)) IS DISTINCT FROM ($3::text, coalesce($5, a.table_name))",
            &[relid.into(), schemas.0.into(), schemas.1.into(), old_table.into(), new_table.into(), until.into()],
        )?;
        super::end_overtaken_pauses()
    })??;
    // The audit triggers of every backend record the new names from the next row on.
    crate::crypto::keys::invalidate();
    Ok(())
}

/// The audited tables in schema `name`.
fn audited_tables_in_schema(name: &str) -> Vec<String> {
    let found = || -> TgResult<Vec<String>> {
        Ok(crate::common::as_owner(|| {
            crate::common::spi_first::<Vec<String>>(
                "SELECT pg_catalog.array_agg(c.relname::text ORDER BY c.relname)
                   FROM tradeguard_audit.audited_tables a
                   JOIN pg_catalog.pg_class c ON c.oid = a.relid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1",
                &[name.into()],
            )
        })??
        .unwrap_or_default())
    };
    // Not knowing stops the statement (never drop or move audited tables unrecorded).
    found().or_raise()
}

/// Whether schema `name` holds an audited table (its rename is recorded).
fn schema_has_audited_tables(name: &str) -> bool {
    !audited_tables_in_schema(name).is_empty()
}

/// After a statement that may drop tables: the encrypted-column registrations of tables gone
/// (and of the dropped `schemas`), and the audited-table registrations and pauses whose table
/// is gone. Returns the audited tables (schema, name) whose registration went.
fn forget_vanished(schemas: &[String]) -> TgResult<Vec<(String, String)>> {
    // The extension may be gone now (DROP EXTENSION under break-glass).
    if unsafe { pg_sys::get_extension_oid(c"tradeguard".as_ptr(), true) } == pg_sys::InvalidOid {
        return Ok(Vec::new());
    }
    let _w = super::InternalWrite::begin();
    let gone = crate::common::as_owner(|| -> TgResult<Vec<(String, String)>> {
        // The schema's tables, and tables elsewhere it took with it (a partition of one of its
        // tables in another schema).
        Spi::run_with_args(
            concat!(
                "DELETE FROM tradeguard_audit.encrypted_columns e
                  WHERE e.schema_name = ANY ($1) OR ", crate::registered_relid_sql!(), " IS NULL"
            ),
            &[schemas.to_vec().into()],
        )?;
        let gone = Spi::connect_mut(|c| {
            let rows = c.update(
                "DELETE FROM tradeguard_audit.audited_tables a
                  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = a.relid)
                  RETURNING a.schema_name, a.table_name",
                None,
                &[],
            )?;
            let mut out = Vec::new();
            for r in rows {
                out.push((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default()));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })?;
        Spi::run(
            "DELETE FROM tradeguard_audit.paused_tables p
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p.relid)",
        )?;
        Ok(gone)
    })??;
    // (Every backend drops its caches on this: only when a registration went.)
    if !gone.is_empty() || !schemas.is_empty() {
        crate::crypto::keys::invalidate();
    }
    Ok(gone)
}

fn forget_dropped(dropped: &[(pg_sys::Oid, String, String)]) -> TgResult<()> {
    let _w = super::InternalWrite::begin();
    crate::common::as_owner(|| -> TgResult<()> {
        for (relid, schema, table) in dropped {
            Spi::run_with_args("DELETE FROM tradeguard_audit.audited_tables WHERE relid = $1", &[(*relid).into()])?;
            Spi::run_with_args("DELETE FROM tradeguard_audit.paused_tables WHERE relid = $1", &[(*relid).into()])?;
            Spi::run_with_args(
                "DELETE FROM tradeguard_audit.encrypted_columns WHERE schema_name = $1 AND table_name = $2",
                &[schema.as_str().into(), table.as_str().into()],
            )?;
        }
        Ok(())
    })??;
    crate::crypto::keys::invalidate();
    Ok(())
}

/// The attribute numbers of the live columns audited table `relid` excludes now (taken before a
/// statement that may change its columns).
fn excluded_attnums(relid: pg_sys::Oid) -> TgResult<Vec<i16>> {
    Ok(crate::common::as_owner(|| {
        crate::common::spi_first::<Vec<i16>>(
            "SELECT coalesce(pg_catalog.array_agg(t.attnum ORDER BY x.n), '{}')
               FROM tradeguard_audit.audited_tables a,
                    pg_catalog.unnest(a.exclude_columns) WITH ORDINALITY AS x(col, n),
                    pg_catalog.pg_attribute t
              WHERE a.relid = $1 AND t.attrelid = a.relid AND t.attname = x.col AND t.attnum > 0 AND NOT t.attisdropped",
            &[relid.into()],
        )
    })??
    .unwrap_or_default())
}

/// Brings the registration of audited table `relid` up to date after DDL: its primary key, and
/// its exclusions, which follow the columns they named before the statement (`before`, by
/// attribute number): a renamed excluded column stays excluded under its new name; a dropped one
/// takes its exclusion with it, so that a column added or renamed to its name later is recorded,
/// not hidden; a statement that adds or drops nothing (`ADD COLUMN IF NOT EXISTS`, a parent's
/// column merged into a child's own) leaves it alone.
fn refresh_registration(relid: pg_sys::Oid, before: Option<&[i16]>) -> TgResult<()> {
    // The primary key as audit_table reads it.
    let pk = super::table_ref(relid)?.pk;
    let _w = super::InternalWrite::begin();
    // (Exclusions taken before the statement, always, for every registration it refreshes; were
    // they missing, they are left as they are rather than cleared.)
    crate::common::as_owner(|| {
        Spi::run_with_args(
            "UPDATE tradeguard_audit.audited_tables a
                SET exclude_columns = CASE WHEN $2::int2[] IS NULL THEN a.exclude_columns ELSE ARRAY(
                      SELECT t.attname::text
                        FROM pg_catalog.unnest($2::int2[]) WITH ORDINALITY AS x(attnum, n)
                        JOIN pg_catalog.pg_attribute t ON t.attrelid = a.relid AND t.attnum = x.attnum AND NOT t.attisdropped
                       ORDER BY x.n) END,
                    pk_columns = $3
              WHERE a.relid = $1",
            &[relid.into(), before.map(|b| b.to_vec()).into(), pk.into()],
        )
    })??;
    // A key that now takes in an excluded column (ADD PRIMARY KEY over it) would put its values
    // into every row's signed key: the statement fails, as audit_table refuses such exclusions.
    let excluded_in_key = crate::common::as_owner(|| {
        crate::common::spi_first::<String>(
            "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ')
               FROM tradeguard_audit.audited_tables a, pg_catalog.unnest(a.exclude_columns) x
              WHERE a.relid = $1 AND x = ANY (a.pk_columns)",
            &[relid.into()],
        )
    })??;
    if let Some(cols) = excluded_in_key {
        return Err(AuditError::InvalidArgument(format!(
            "the primary key of audited table {}.{} would take in {cols}, which the trail excludes (every trail row records the key): audit the table again without excluding it first",
            unsafe { rel_schema(relid) },
            unsafe { rel_name(relid) }
        ))
        .into());
    }
    crate::crypto::keys::invalidate();
    Ok(())
}

fn record(op: &str, schema: &str, object: &str, detail: serde_json::Value) -> TgResult<i64> {
    record_system(op, if schema.is_empty() { "pg_catalog" } else { schema }, object, detail)
}
