//! In-database tests of the audit trail (`cargo pgrx test`). Sealing needs committed rows of
//! finished transactions, so the seal/verify flow is covered by pg_regress (20_audit.sql).

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn every_change_is_recorded_and_signed() {
        Spi::run("CREATE TABLE t_trades (id int PRIMARY KEY, px numeric)").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_trades')").unwrap();
        Spi::run("INSERT INTO t_trades VALUES (1, 10), (2, 20); UPDATE t_trades SET px = 11 WHERE id = 1; DELETE FROM t_trades WHERE id = 2").unwrap();
        let ops = Spi::get_one::<String>(
            "SELECT string_agg(operation, ',' ORDER BY id) FROM tradeguard_audit.log WHERE table_name = 't_trades'",
        )
        .unwrap();
        assert_eq!(ops.as_deref(), Some("AUDIT_TABLE,INSERT,INSERT,UPDATE,DELETE"));
        let unsigned = Spi::get_one::<i64>(
            "SELECT count(*) FROM tradeguard_audit.log WHERE length(signature) <> 32",
        );
        assert_eq!(unsigned, Ok(Some(0)));
    }

    #[pg_test]
    fn truncate_is_recorded() {
        Spi::run("CREATE TABLE t_trunc (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_trunc'); INSERT INTO t_trunc VALUES (1); TRUNCATE t_trunc").unwrap();
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM tradeguard_audit.log WHERE table_name = 't_trunc' AND operation = 'TRUNCATE'",
        );
        assert_eq!(n, Ok(Some(1)));
    }

    #[pg_test(error = "tradeguard: audit rows are written only by tradeguard; UPDATE on tradeguard_audit.log is refused (for the table owner and superusers too)")]
    fn owner_cannot_update_the_trail() {
        Spi::run("CREATE TABLE t_u (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_u'); INSERT INTO t_u VALUES (1)").unwrap();
        Spi::run("UPDATE tradeguard_audit.log SET operation = 'x'").unwrap();
    }

    #[pg_test(error = "tradeguard: audit rows are written only by tradeguard; DELETE on tradeguard_audit.log is refused (for the table owner and superusers too)")]
    fn replica_mode_does_not_bypass_protection() {
        Spi::run("CREATE TABLE t_r (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_r'); INSERT INTO t_r VALUES (1)").unwrap();
        Spi::run("SET session_replication_role = replica").unwrap();
        Spi::run("DELETE FROM tradeguard_audit.log").unwrap();
    }

    #[pg_test(error = "tradeguard: the tradeguard triggers of public.t_d is protected by tradeguard; a tradeguard_admin member must call tradeguard.break_glass(reason) first")]
    fn disable_trigger_is_refused() {
        Spi::run("CREATE TABLE t_d (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_d')").unwrap();
        Spi::run("ALTER TABLE t_d DISABLE TRIGGER ALL").unwrap();
    }

    #[pg_test]
    fn encrypted_columns_never_reach_the_trail_as_plaintext() {
        Spi::run("SELECT tradeguard.create_key('t_audit_enc')").unwrap();
        Spi::run("CREATE TABLE t_acct (id int PRIMARY KEY, api_key text)").unwrap();
        // Rows written before the column was encrypted, and before the table was audited.
        Spi::run("INSERT INTO t_acct VALUES (1, 'sk_live_plaintext_1')").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_acct')").unwrap();
        // Converting the column rewrites the row: its OLD image held plaintext.
        Spi::run("SELECT tradeguard.encrypt_column('t_acct', 'api_key', 't_audit_enc')").unwrap();
        Spi::run("INSERT INTO t_acct VALUES (2, 'sk_live_plaintext_2')").unwrap();
        let withheld = Spi::get_one::<i64>(
            "SELECT count(*) FROM tradeguard_audit.log WHERE old_row->>'api_key' = '[plaintext withheld]'",
        );
        assert_eq!(withheld, Ok(Some(1)), "the conversion's OLD image is withheld");
        let leaks = Spi::get_one::<i64>(
            "SELECT count(*) FROM tradeguard_audit.log
              WHERE coalesce(old_row::text, '') || coalesce(new_row::text, '') LIKE '%sk_live_plaintext%'",
        );
        assert_eq!(leaks, Ok(Some(0)));
    }

    /// The trigger writes images with to_jsonb(record): the same values as row_to_json()::jsonb,
    /// for the awkward types too.
    #[pg_test]
    fn row_images_equal_row_to_json() {
        Spi::run(
            "CREATE TABLE t_odd (id int PRIMARY KEY, f float8, r real, n numeric, t timestamptz, d date, b bool,
                 a int[], j json, jb jsonb, tx text, bi bigint, iv interval, by bytea)",
        )
        .unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_odd')").unwrap();
        Spi::run(
            "INSERT INTO t_odd VALUES
               (1, 'Infinity', 'NaN', 1.50, now(), 'infinity', true, '{1,NULL,3}', '{\"b\":1, \"a\":[1,2]}',
                '{\"x\":null}', E'q\"uo\\\\te\\n', -9223372036854775808, '1 day', '\\xdeadbeef'),
               (2, 1e300, -0.0, 'NaN', '-infinity', now(), NULL, '{}', 'null', '[]', '', 0, NULL, '')",
        )
        .unwrap();
        let same = Spi::get_one::<bool>(
            "SELECT count(*) = 2 AND bool_and(l.new_row = row_to_json(o)::jsonb)
               FROM tradeguard_audit.log l JOIN t_odd o ON l.pk = jsonb_build_object('id', o.id)
              WHERE l.table_name = 't_odd' AND l.operation = 'INSERT'",
        );
        assert_eq!(same, Ok(Some(true)));
    }

    /// Audit rows normally go straight into the heap and the trail's indexes; with an expression
    /// index on the trail (break-glass) they go through an INSERT statement, and both kinds of
    /// row are indexed and signed alike.
    #[pg_test]
    fn expression_index_on_the_trail_falls_back_to_sql() {
        Spi::run("CREATE TABLE t_fb (id int PRIMARY KEY, v text)").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_fb'); INSERT INTO t_fb VALUES (1, 'direct')").unwrap();
        Spi::run("SELECT tradeguard.break_glass('test: expression index on the trail')").unwrap();
        Spi::run("CREATE INDEX t_fb_expr ON tradeguard_audit.log ((lower(table_name)))").unwrap();
        Spi::run("INSERT INTO t_fb VALUES (2, 'through sql')").unwrap();
        Spi::run("SET enable_seqscan = off").unwrap();
        let found = Spi::get_one::<i64>(
            "SELECT count(*) FROM tradeguard_audit.log WHERE lower(table_name) = 't_fb' AND operation = 'INSERT'",
        );
        assert_eq!(found, Ok(Some(2)));
        let by_pk = Spi::get_one::<i64>(
            "SELECT count(*) FROM tradeguard_audit.log WHERE pk IN ('{\"id\": 1}', '{\"id\": 2}') AND table_name = 't_fb'",
        );
        assert_eq!(by_pk, Ok(Some(2)));
    }

    #[pg_test(error = "tradeguard: indexes of tradeguard_audit.log is protected by tradeguard; a tradeguard_admin member must call tradeguard.break_glass(reason) first")]
    fn index_on_the_trail_needs_break_glass() {
        Spi::run("CREATE INDEX ON tradeguard_audit.log (operation)").unwrap();
    }
}
