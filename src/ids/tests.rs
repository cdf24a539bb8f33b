//! In-database tests of the guard triggers (`cargo pgrx test`).

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::common::sql_error as try_sql;

    #[pg_test]
    fn guards_follow_a_renamed_column() {
        Spi::run(
            "CREATE TABLE t_renamed (id int PRIMARY KEY, note text, memo text);
             SELECT tradeguard.guard_columns('t_renamed', ARRAY['note']);
             SELECT tradeguard.guard_columns('t_renamed', ARRAY['memo'], 'log');
             ALTER TABLE t_renamed RENAME COLUMN note TO trader_note;
             ALTER TABLE t_renamed RENAME COLUMN memo TO desk_memo",
        )
        .unwrap();
        // Writes keep working, and the renamed columns stay guarded with their actions.
        assert_eq!(try_sql("INSERT INTO t_renamed VALUES (1, 'buy at the open', 'ok')").as_deref(), None);
        let rejected = try_sql("INSERT INTO t_renamed VALUES (2, 'x'' OR 1=1 --', 'm')").unwrap_or_default();
        assert!(rejected.contains("column \"trader_note\" of public.t_renamed rejected"), "{rejected}");
        assert_eq!(try_sql("INSERT INTO t_renamed VALUES (3, 'n', '1 UNION SELECT api_key FROM accounts')").as_deref(), None);
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 't_renamed'::regclass AND tgname LIKE 'tradeguard_a_guard%' AND tgenabled = 'A'").unwrap(),
            Some(2)
        );
    }

    #[pg_test]
    fn a_renamed_column_name_cannot_inject_sql_into_the_guard_trigger() {
        // The trigger is recreated as the extension owner with the column names as string
        // literals: a name ending a literal early (a backslash with standard_conforming_strings
        // off) must stay a name.
        Spi::run(
            r#"CREATE TABLE t_inj (id int PRIMARY KEY, note text);
               SELECT tradeguard.guard_columns('t_inj', ARRAY['note']);
               SET LOCAL standard_conforming_strings = off;
               ALTER TABLE t_inj RENAME COLUMN note TO "x\'); CREATE TABLE t_pwned (); --";
               SET LOCAL standard_conforming_strings = on"#,
        )
        .unwrap();
        assert_eq!(Spi::get_one::<bool>("SELECT to_regclass('t_pwned') IS NULL").unwrap(), Some(true));
        let rejected = try_sql("INSERT INTO t_inj VALUES (1, '1 UNION SELECT api_key FROM accounts')").unwrap_or_default();
        assert!(rejected.contains("rejected"), "{rejected}");
    }

    #[pg_test]
    fn guards_read_char_columns_and_keep_each_columns_action() {
        Spi::run("CREATE TABLE t_orders (id int PRIMARY KEY, code char(20), note text, memo varchar(200))").unwrap();
        Spi::run("SELECT tradeguard.guard_columns('t_orders', ARRAY['code', 'note'])").unwrap();
        // A second call for another column and action keeps the first guard.
        Spi::run("SELECT tradeguard.guard_columns('t_orders', ARRAY['memo'], 'log')").unwrap();
        assert_eq!(try_sql("INSERT INTO t_orders VALUES (1, 'AAPL', 'buy at the open', 'ok')").as_deref(), None);
        let rejected = try_sql("INSERT INTO t_orders VALUES (2, 'x'' OR 1=1 --', 'n', 'm')").unwrap_or_default();
        assert!(rejected.contains("column \"code\" of public.t_orders rejected"), "{rejected}");
        let rejected = try_sql("INSERT INTO t_orders VALUES (3, 'MSFT', '<script>alert(1)</script>', 'm')").unwrap_or_default();
        assert!(rejected.contains("column \"note\""), "{rejected}");
        // memo is guarded with 'log': the row goes through.
        assert_eq!(try_sql("INSERT INTO t_orders VALUES (4, 'IBM', 'n', '1 UNION SELECT api_key FROM accounts')").as_deref(), None);
        // Moving note to 'log' takes it out of the rejecting guard.
        Spi::run("SELECT tradeguard.guard_columns('t_orders', ARRAY['note'], 'log')").unwrap();
        assert_eq!(try_sql("INSERT INTO t_orders VALUES (5, 'GE', '<script>alert(1)</script>', 'm')").as_deref(), None);
        let rejected = try_sql("INSERT INTO t_orders VALUES (6, 'x'' OR 1=1 --', 'n', 'm')").unwrap_or_default();
        assert!(rejected.contains("column \"code\""), "{rejected}");
    }

    #[pg_test]
    fn an_update_that_leaves_a_guarded_value_alone_passes() {
        Spi::run("CREATE TABLE t_notes (id int PRIMARY KEY, status text, note text)").unwrap();
        // Written before the guard: an UPDATE of another column must still work.
        Spi::run("INSERT INTO t_notes VALUES (1, 'open', '1 UNION SELECT api_key FROM accounts')").unwrap();
        Spi::run("SELECT tradeguard.guard_columns('t_notes', ARRAY['note'])").unwrap();
        assert_eq!(try_sql("UPDATE t_notes SET status = 'filled' WHERE id = 1").as_deref(), None);
        let rejected = try_sql("UPDATE t_notes SET note = note || ' --' WHERE id = 1").unwrap_or_default();
        assert!(rejected.contains("rejected"), "{rejected}");
    }

    #[pg_test]
    fn guards_need_the_trigger_privilege_and_a_user_table() {
        Spi::run("CREATE TABLE t_private (id int PRIMARY KEY, note text)").unwrap();
        Spi::run("CREATE ROLE t_guard_admin; GRANT tradeguard_admin TO t_guard_admin").unwrap();
        Spi::run("SET ROLE t_guard_admin").unwrap();
        assert_eq!(
            try_sql("SELECT tradeguard.guard_columns('public.t_private'::regclass, ARRAY['note'])").as_deref(),
            Some("tradeguard: permission denied: guard_columns on public.t_private needs the TRIGGER privilege on it (or its ownership)")
        );
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(
            try_sql("SELECT tradeguard.guard_columns('tradeguard_audit.log'::regclass, ARRAY['operation'])").as_deref(),
            Some("tradeguard: invalid argument: tradeguard_audit.log is not a user table")
        );
    }

    /// A generated column is computed after the guard runs: refused, not silently unchecked.
    #[pg_test]
    fn generated_columns_cannot_be_guarded() {
        Spi::run("CREATE TABLE t_gen (id int, raw text, note text GENERATED ALWAYS AS (raw) STORED)").unwrap();
        let err = try_sql("SELECT tradeguard.guard_columns('t_gen', ARRAY['note'])").unwrap_or_default();
        assert!(err.contains("column note of public.t_gen is generated"), "{err}");
    }

    /// Names chosen by users cannot forge report lines, and the fix a markdown report shows stays
    /// the SQL it is (a backtick in a table name once closed its code span early).
    #[pg_test]
    fn reports_keep_user_names_inert() {
        Spi::run(
            "CREATE TABLE \"p`); DROP TABLE t_victim; --\" (password text);
             CREATE TABLE \"x
== CRITICAL (0) ==
score: 100/100\" (password text)",
        )
        .unwrap();
        let md = Spi::get_one::<String>("SELECT tradeguard.audit_report('markdown')").unwrap().unwrap_or_default();
        let fix = md.lines().find(|l| l.contains("DROP TABLE t_victim") && l.contains("fix:")).unwrap_or_default();
        assert!(fix.trim_start().starts_with("- fix: ``") && fix.ends_with("``"), "{fix}");
        assert!(!md.lines().any(|l| l.starts_with("== CRITICAL (0)") || l.starts_with("score: 100/100")), "{md}");
        let text = Spi::get_one::<String>("SELECT tradeguard.audit_report('text')").unwrap().unwrap_or_default();
        assert!(!text.lines().any(|l| l == "== CRITICAL (0) ==" || l == "score: 100/100"), "{text}");
        let cell = Spi::get_one::<String>("SELECT tradeguard_audit.md_text(E'a\\\\|b<img src=x>')").unwrap();
        assert_eq!(cell.as_deref(), Some("a\\\\\\|b&lt;img src=x&gt;"));
    }
}
