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

    /// A table owner who may execute tradeguard.audit_trigger() (tradeguard_table_owner, with
    /// USAGE on the schema through another tradeguard role, as the demo's application owner)
    /// cannot have it sign rows from a trigger of their own: BEFORE (which would skip the change
    /// and still record it), INSTEAD OF on a view, or AFTER under another name.
    #[pg_test]
    fn only_tradeguards_own_triggers_may_call_the_audit_trigger() {
        Spi::run(
            "CREATE ROLE t_ft_owner; GRANT tradeguard_table_owner, tradeguard_auditor TO t_ft_owner;
             GRANT CREATE ON SCHEMA public TO t_ft_owner;
             SET ROLE t_ft_owner;
             CREATE TABLE t_ft (id int PRIMARY KEY, px int); INSERT INTO t_ft VALUES (1, 3);
             CREATE TABLE t_ft_plain (id int PRIMARY KEY);
             CREATE VIEW t_ft_view AS SELECT id FROM t_ft_plain;
             RESET ROLE;
             SELECT tradeguard.audit_table('t_ft');
             SET ROLE t_ft_owner;
             CREATE TRIGGER a_shadow BEFORE UPDATE OR DELETE ON t_ft FOR EACH ROW EXECUTE FUNCTION tradeguard.audit_trigger();
             CREATE TRIGGER a_copy AFTER INSERT ON t_ft_plain FOR EACH ROW EXECUTE FUNCTION tradeguard.audit_trigger();
             CREATE TRIGGER a_view INSTEAD OF INSERT ON t_ft_view FOR EACH ROW EXECUTE FUNCTION tradeguard.audit_trigger()",
        )
        .unwrap();
        let refused = |trigger: &str, table: &str| {
            Some(format!("tradeguard: trigger {trigger} on public.{table} may not call tradeguard.audit_trigger(): only the triggers tradeguard.audit_table() creates call it (AFTER ... FOR EACH ROW tradeguard_audit_row, AFTER TRUNCATE tradeguard_audit_truncate)"))
        };
        assert_eq!(crate::common::sql_error("UPDATE t_ft SET px = 999 WHERE id = 1"), refused("a_shadow", "t_ft"));
        assert_eq!(crate::common::sql_error("DELETE FROM t_ft WHERE id = 1"), refused("a_shadow", "t_ft"));
        assert_eq!(crate::common::sql_error("INSERT INTO t_ft_plain VALUES (1)"), refused("a_copy", "t_ft_plain"));
        assert_eq!(crate::common::sql_error("INSERT INTO t_ft_view VALUES (1)"), refused("a_view", "t_ft_view"));
        // tradeguard's trigger names are tradeguard's to use (refused, WHEN clause or not) ...
        assert_eq!(
            crate::common::sql_error(
                "CREATE TRIGGER tradeguard_audit_row AFTER INSERT ON t_ft_plain FOR EACH ROW WHEN (NEW.id > 5) EXECUTE FUNCTION tradeguard.audit_trigger()"
            ),
            Some(crate::common::refusal("the tradeguard triggers of public.t_ft_plain"))
        );
        Spi::run("DROP TRIGGER a_shadow ON t_ft; DROP TRIGGER a_copy ON t_ft_plain; UPDATE t_ft SET px = 4 WHERE id = 1; RESET ROLE").unwrap();
        // ... and one made anyway (a superuser's restore mode) on a table audit_table did not set
        // up writes nothing, and neither does a statement trigger on a partition of an audited
        // table (its TRUNCATE is the hook's to record, naming the partition).
        Spi::run(
            "CREATE TABLE t_ft_pt (id int PRIMARY KEY) PARTITION BY RANGE (id);
             CREATE TABLE t_ft_p1 PARTITION OF t_ft_pt FOR VALUES FROM (0) TO (10);
             SELECT tradeguard.audit_table('t_ft_pt');
             SET LOCAL tradeguard.restore_mode = on;
             CREATE TRIGGER tradeguard_audit_row AFTER INSERT ON t_ft_plain FOR EACH ROW EXECUTE FUNCTION tradeguard.audit_trigger();
             CREATE TRIGGER tradeguard_audit_truncate AFTER TRUNCATE ON t_ft_p1 FOR EACH STATEMENT EXECUTE FUNCTION tradeguard.audit_trigger();
             SET LOCAL tradeguard.restore_mode = off",
        )
        .unwrap();
        let not_set_up = |trigger: &str, table: &str| {
            Some(format!("tradeguard: trigger {trigger} on public.{table} calls tradeguard.audit_trigger(), but tradeguard.audit_table() did not set up public.{table} (or its registration is gone); nothing was written"))
        };
        assert_eq!(crate::common::sql_error("INSERT INTO t_ft_plain VALUES (7)"), not_set_up("tradeguard_audit_row", "t_ft_plain"));
        assert_eq!(crate::common::sql_error("TRUNCATE t_ft_p1"), not_set_up("tradeguard_audit_truncate", "t_ft_p1"));
        // The partition's own clone of the row trigger records as before.
        Spi::run("INSERT INTO t_ft_pt VALUES (1)").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE table_name = 't_ft_pt' AND operation = 'INSERT'"),
            Ok(Some(1))
        );
        // What the trail holds: the one real change, and nothing of the refused ones.
        let ops = Spi::get_one::<String>(
            "SELECT string_agg(operation || coalesce(':' || (new_row ->> 'px'), ''), ',' ORDER BY id) FROM tradeguard_audit.log
              WHERE table_name IN ('t_ft', 't_ft_plain', 't_ft_view') AND operation <> 'DDL'",
        );
        assert_eq!(ops, Ok(Some("AUDIT_TABLE,UPDATE:4".into())));
    }

    /// audit_table refuses what it could not keep: a primary-key column left out (every row
    /// records the key), a temporary table; a NULL list of exclusions excludes nothing.
    #[pg_test]
    fn audit_table_refuses_key_exclusions_and_temporary_tables() {
        Spi::run("CREATE TABLE t_acct (acct_no text PRIMARY KEY, ssn text, bal int); CREATE TEMP TABLE t_tmp (id int PRIMARY KEY)").unwrap();
        assert_eq!(
            crate::common::sql_error("SELECT tradeguard.audit_table('t_acct', ARRAY['acct_no', 'ssn'])"),
            Some("tradeguard: invalid argument: cannot exclude acct_no of public.t_acct: the primary key is recorded in every trail row (history() finds a row's changes by it)".into())
        );
        assert_eq!(
            crate::common::sql_error("SELECT tradeguard.audit_table('t_tmp')"),
            Some("tradeguard: invalid argument: t_tmp is a temporary table (it ends with its session): not audited".into())
        );
        Spi::run("SELECT tradeguard.audit_table('t_acct', NULL); INSERT INTO t_acct VALUES ('A-1', 'S', 5)").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT new_row ->> 'ssn' FROM tradeguard_audit.log WHERE table_name = 't_acct' AND operation = 'INSERT'"),
            Ok(Some("S".into()))
        );
    }

    /// Privileges on tradeguard's schemas and their objects (USAGE on the trail's schema, a
    /// trail table, all tables in it, default privileges there, a function to PUBLIC) change
    /// only under break-glass; the user's own grants are recorded, naming what they were on.
    #[pg_test]
    fn privileges_on_tradeguards_schemas_need_break_glass() {
        Spi::run("CREATE ROLE t_gr_nobody").unwrap();
        for (sql, what) in [
            ("GRANT USAGE ON SCHEMA tradeguard_audit TO t_gr_nobody", "schema tradeguard_audit"),
            ("GRANT SELECT ON tradeguard_audit.log TO t_gr_nobody", "tradeguard_audit.log"),
            ("GRANT UPDATE ON ALL TABLES IN SCHEMA tradeguard_audit TO t_gr_nobody", "all objects in schema tradeguard_audit"),
            ("ALTER DEFAULT PRIVILEGES IN SCHEMA tradeguard_audit GRANT SELECT ON TABLES TO t_gr_nobody", "default privileges in schema tradeguard_audit"),
            ("GRANT EXECUTE ON FUNCTION tradeguard.seal() TO PUBLIC", "function tradeguard.seal()"),
            ("REVOKE EXECUTE ON FUNCTION tradeguard.verify(bigint, bigint) FROM tradeguard_auditor", "function tradeguard.verify(bigint,bigint)"),
            ("GRANT SET ON PARAMETER tradeguard.restore_mode TO t_gr_nobody", "parameter tradeguard.restore_mode"),
        ] {
            assert_eq!(crate::common::sql_error(sql), Some(crate::common::refusal(&format!("privileges on {what}"))), "{sql}");
        }
        assert_eq!(Spi::get_one::<bool>("SELECT has_schema_privilege('t_gr_nobody', 'tradeguard_audit', 'USAGE')"), Ok(Some(false)));
        Spi::run("CREATE TABLE t_gr (id int); GRANT SELECT ON t_gr TO t_gr_nobody").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT table_name FROM tradeguard_audit.log WHERE operation = 'GRANT' ORDER BY id DESC LIMIT 1"),
            Ok(Some("t_gr_nobody".into()))
        );
    }

    /// DDL rows of an audited table name the triggers and indexes the statement changes: an
    /// auditor tells a DISABLE from an ENABLE, and which trigger (break-glass changes too).
    #[pg_test]
    fn ddl_rows_name_the_triggers_and_indexes_they_change() {
        Spi::run(
            "CREATE TABLE t_obj (id int PRIMARY KEY, q int); SELECT tradeguard.audit_table('t_obj');
             CREATE FUNCTION t_obj_noop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$;
             CREATE INDEX t_obj_q ON t_obj (q); ALTER INDEX t_obj_q RENAME TO t_obj_q2; DROP INDEX t_obj_q2;
             CREATE TRIGGER t_obj_after AFTER INSERT ON t_obj FOR EACH ROW EXECUTE FUNCTION t_obj_noop();
             ALTER TABLE t_obj DISABLE TRIGGER t_obj_after; DROP TRIGGER t_obj_after ON t_obj;
             SELECT tradeguard.break_glass('test: name the trigger change');
             ALTER TABLE t_obj DISABLE TRIGGER tradeguard_audit_row; ALTER TABLE t_obj ENABLE ALWAYS TRIGGER tradeguard_audit_row",
        )
        .unwrap();
        let objects = Spi::get_one::<String>(
            "SELECT string_agg(new_row -> 'objects' ->> 0, '; ' ORDER BY id) FROM tradeguard_audit.log
              WHERE table_name = 't_obj' AND operation = 'DDL' AND new_row ? 'objects'",
        );
        assert_eq!(
            objects,
            Ok(Some(
                "CREATE INDEX t_obj_q (q); RENAME INDEX t_obj_q TO t_obj_q2; DROP INDEX t_obj_q2; CREATE TRIGGER t_obj_after AFTER INSERT FOR EACH ROW EXECUTE FUNCTION t_obj_noop; DISABLE TRIGGER t_obj_after; DROP TRIGGER t_obj_after; DISABLE TRIGGER tradeguard_audit_row; ENABLE ALWAYS TRIGGER tradeguard_audit_row".into()
            ))
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT new_row -> 'objects' ->> 0 FROM tradeguard_audit.log WHERE operation = 'BREAK_GLASS_CHANGE' ORDER BY id LIMIT 1"),
            Ok(Some("DISABLE TRIGGER tradeguard_audit_row".into()))
        );
        // An unnamed index is described by its columns; a DROP of indexes of two audited tables
        // lists each on its own table's row.
        Spi::run(
            "CREATE TABLE t_obj2 (id int PRIMARY KEY, q int); SELECT tradeguard.audit_table('t_obj2');
             CREATE UNIQUE INDEX ON t_obj2 (q, (q + 1)); CREATE INDEX t_obj_a ON t_obj (q); CREATE INDEX t_obj2_b ON t_obj2 (q);
             DROP INDEX t_obj_a, t_obj2_b",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT string_agg(table_name || ': ' || (new_row -> 'objects')::text, '; ' ORDER BY id) FROM tradeguard_audit.log
                  WHERE table_name IN ('t_obj', 't_obj2') AND operation = 'DDL' AND new_row ->> 'command' IN ('CREATE INDEX', 'DROP INDEX') AND id > (SELECT max(id) FROM tradeguard_audit.log WHERE operation = 'AUDIT_TABLE')"
            ),
            Ok(Some(
                "t_obj2: [\"CREATE UNIQUE INDEX (unnamed) (q, expression)\"]; t_obj: [\"CREATE INDEX t_obj_a (q)\"]; t_obj2: [\"CREATE INDEX t_obj2_b (q)\"]; t_obj: [\"DROP INDEX t_obj_a\"]; t_obj2: [\"DROP INDEX t_obj2_b\"]".into()
            ))
        );
        // A role default names the setting (never its value).
        let db = Spi::get_one::<String>("SELECT current_database()::text").unwrap().unwrap();
        Spi::run(&format!(
            "CREATE ROLE t_obj_role; ALTER ROLE t_obj_role SET tradeguard.verify_threads = 1;
             ALTER ROLE t_obj_role IN DATABASE {db} RESET tradeguard.verify_threads; ALTER ROLE t_obj_role RESET ALL"
        ))
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT string_agg(table_name, '; ' ORDER BY id) FROM tradeguard_audit.log WHERE operation = 'ALTER ROLE' AND table_name LIKE 't_obj_role %'"),
            Ok(Some(format!("t_obj_role SET tradeguard.verify_threads; t_obj_role IN DATABASE {db} RESET tradeguard.verify_threads; t_obj_role RESET ALL")))
        );
    }

    /// history() of a table is the history of that table: a table created under the name of a
    /// dropped audited one has none of its rows; one whose auditing is paused keeps the names
    /// it was recorded under.
    #[pg_test]
    fn history_belongs_to_the_table_not_to_its_name() {
        Spi::run(
            "CREATE TABLE t_hx (id int PRIMARY KEY, bal int); SELECT tradeguard.audit_table('t_hx');
             INSERT INTO t_hx VALUES (1, 100); DROP TABLE t_hx;
             CREATE TABLE t_hx (id int PRIMARY KEY, bal int); INSERT INTO t_hx VALUES (1, 5)",
        )
        .unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM tradeguard.history('t_hx', '{\"id\": 1}')"), Ok(Some(0)));
        Spi::run(
            "CREATE TABLE t_rx (id int PRIMARY KEY, v int); SELECT tradeguard.audit_table('t_rx');
             INSERT INTO t_rx VALUES (1, 1); ALTER TABLE t_rx RENAME TO t_ry; UPDATE t_ry SET v = 2;
             SELECT tradeguard.unaudit_table('t_ry')",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT string_agg(operation, ',' ORDER BY id) FROM tradeguard.history('t_ry', '{\"id\": 1}')"),
            Ok(Some("INSERT,UPDATE".into()))
        );
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
        Spi::run("CREATE TABLE t_u_own (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_u_own'); INSERT INTO t_u_own VALUES (1)").unwrap();
        Spi::run("UPDATE tradeguard_audit.log SET operation = 'x'").unwrap();
    }

    #[pg_test(error = "tradeguard: audit rows are written only by tradeguard; DELETE on tradeguard_audit.log is refused (for the table owner and superusers too)")]
    fn replica_mode_does_not_bypass_protection() {
        Spi::run("CREATE TABLE t_r (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_r'); INSERT INTO t_r VALUES (1)").unwrap();
        Spi::run("SET session_replication_role = replica").unwrap();
        Spi::run("DELETE FROM tradeguard_audit.log").unwrap();
    }

    /// UPDATE and DELETE are refused per statement (sealing moves rows without a row trigger
    /// call each): on the trail and on each partition named directly, whether rows match or not,
    /// in replica mode too. (Sealing, which moves rows, is in pg_regress: 20_audit.sql.)
    #[pg_test]
    fn partitions_refuse_updates_and_deletes_by_name() {
        Spi::run("CREATE TABLE t_pn (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_pn'); INSERT INTO t_pn VALUES (1), (2), (3)").unwrap();
        let refused = |op: &str| Some(format!("tradeguard: audit rows are written only by tradeguard; {op} on tradeguard_audit.log is refused (for the table owner and superusers too)"));
        for replica in [false, true] {
            if replica {
                Spi::run("SET LOCAL session_replication_role = replica").unwrap();
            }
            for part in ["log", "log_sealed", "log_unsealed"] {
                let t = format!("tradeguard_audit.{part}");
                assert_eq!(crate::common::sql_error(&format!("UPDATE {t} SET operation = 'x' WHERE table_name = 't_pn'")), refused("UPDATE"), "{t}");
                assert_eq!(crate::common::sql_error(&format!("UPDATE {t} SET operation = 'x' WHERE false")), refused("UPDATE"), "{t}");
                assert_eq!(crate::common::sql_error(&format!("DELETE FROM {t} WHERE table_name = 't_pn'")), refused("DELETE"), "{t}");
            }
        }
        Spi::run("RESET session_replication_role").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE table_name = 't_pn' AND operation = 'INSERT'"), Ok(Some(3)));
    }

    /// Role names are kept across rows and transactions, but a rename shows from the next row
    /// on (the pg_authid invalidation), also within the transaction that renamed it.
    #[pg_test]
    fn a_renamed_role_is_recorded_under_its_new_name() {
        Spi::run(
            "CREATE ROLE t_rn_trader; CREATE TABLE t_rn (id int PRIMARY KEY); GRANT INSERT ON t_rn TO t_rn_trader;
             SELECT tradeguard.audit_table('t_rn');
             SET ROLE t_rn_trader; INSERT INTO t_rn VALUES (1); INSERT INTO t_rn VALUES (2); RESET ROLE;
             ALTER ROLE t_rn_trader RENAME TO t_rn_desk;
             SET ROLE t_rn_desk; INSERT INTO t_rn VALUES (3); RESET ROLE",
        )
        .unwrap();
        let names = Spi::get_one::<String>(
            "SELECT string_agg(current_user_name, ',' ORDER BY id) FROM tradeguard_audit.log WHERE table_name = 't_rn' AND operation = 'INSERT'",
        );
        assert_eq!(names, Ok(Some("t_rn_trader,t_rn_trader,t_rn_desk".into())));
    }

    #[pg_test(error = "tradeguard: cannot change the tradeguard triggers of public.t_d: protected by tradeguard; a tradeguard_admin member must call tradeguard.break_glass(reason) first")]
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

    /// encrypt_column on a numeric column of an audited table converts it without break-glass
    /// (its conversion to text keeps the values: no USING the utility hook would refuse), run as
    /// the table's owner, and the values come back as numbers.
    #[pg_test]
    fn a_numeric_column_of_an_audited_table_is_encrypted_without_break_glass() {
        Spi::run(
            "SELECT tradeguard.create_key('t_audnum');
             CREATE ROLE t_audnum_owner; CREATE TABLE t_audnum (id int PRIMARY KEY, bal numeric(12,2));
             ALTER TABLE t_audnum OWNER TO t_audnum_owner;
             INSERT INTO t_audnum VALUES (1, 12.50);
             SELECT tradeguard.audit_table('t_audnum');
             SELECT tradeguard.encrypt_column('t_audnum', 'bal', 't_audnum')",
        )
        .unwrap();
        assert_eq!(Spi::get_one::<bool>("SELECT tradeguard.is_ciphertext(bal) FROM t_audnum"), Ok(Some(true)));
        assert_eq!(Spi::get_one::<String>("SELECT bal::text FROM t_audnum_decrypted WHERE id = 1"), Ok(Some("12.50".into())));
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

    /// Tables whose columns are all of the common scalar types get their images from the
    /// trigger's own builder, not from to_jsonb(record): the same jsonb, to the text form
    /// (number scales, padding, time zones, NaN and infinities as strings).
    #[pg_test]
    fn built_images_equal_to_jsonb() {
        Spi::run("CREATE DOMAIN t_price AS numeric(18,4) CHECK (VALUE >= 0); CREATE DOMAIN t_qty AS bigint; CREATE TYPE t_side AS ENUM ('buy', 'sell')").unwrap();
        Spi::run(
            "CREATE TABLE t_fast (id bigint PRIMARY KEY, s smallint, i int, n numeric, p t_price, q t_qty, tx text,
                 vc varchar(10), ch char(5), b bool, d date, ts timestamp, tz timestamptz, u uuid, ip inet,
                 iv interval, nm name, tm time, secret text, f float8, r real, side t_side)",
        )
        .unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_fast', '{secret}')").unwrap();
        Spi::run("SET TimeZone = 'Asia/Tokyo'").unwrap();
        Spi::run(
            r#"INSERT INTO t_fast VALUES
               (1, -32768, 2147483647, 1.50, 12.3, 9223372036854775807, E'q"uo\\te\n\u00e9\t', 'abc', 'ab', true,
                'infinity', '2026-11-25 01:02:03.456789', now(), gen_random_uuid(), '10.1.2.3/8', '1 day 2 hours',
                'nm', '12:34', 'hidden'),
               (2, NULL, 0, 'NaN', 0, -1, '', NULL, NULL, false, '-infinity', '-infinity', 'infinity', NULL, '::1',
                NULL, NULL, NULL, NULL),
               (3, 1, -1, 'Infinity', 99999999999999.9999, 0, 'x', 'y', 'z', NULL, '2000-01-01', NULL,
                '1999-12-31 23:59:59+09', NULL, NULL, '-1 mon', '', '00:00', 's'),
               (4, 2, 2, '-Infinity', 0.0001, 42, 'a', 'b', 'c', true, now(), now(), now(), NULL, NULL, NULL, NULL, NULL, NULL),
               (5, 3, 3, -0.000000000000000000001, 1, 1, 'a', 'b', 'c', true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"#,
        )
        .unwrap();
        Spi::run(
            "UPDATE t_fast SET f = 'Infinity', r = 'NaN', side = 'sell' WHERE id = 1;
             UPDATE t_fast SET f = 1e300, r = -0.0, side = 'buy' WHERE id = 2;
             UPDATE t_fast SET f = 0.1, r = 1.5e-7 WHERE id = 4;
             UPDATE t_fast SET f = -2849.7, r = 3.4028235e38 WHERE id = 5",
        )
        .unwrap();
        Spi::run("UPDATE t_fast SET n = n * 2, secret = 'still hidden' WHERE id IN (1, 5)").unwrap();
        Spi::run("DELETE FROM t_fast WHERE id = 3").unwrap();
        // Each remaining row against the image of its latest change.
        let same = Spi::get_one::<bool>(
            "SELECT count(*) = 4 AND bool_and(l.new_row::text = (to_jsonb(o) - 'secret')::text
                                         AND l.pk::text = jsonb_build_object('id', o.id)::text)
               FROM t_fast o
               JOIN LATERAL (SELECT * FROM tradeguard_audit.log x
                              WHERE x.table_name = 't_fast' AND x.pk = jsonb_build_object('id', o.id)
                              ORDER BY x.id DESC LIMIT 1) l ON true",
        );
        assert_eq!(same, Ok(Some(true)));
        // The first UPDATEs' old images and the DELETE's image, against the rows as inserted.
        let old_ok = Spi::get_one::<bool>(
            "SELECT count(*) = 5 AND bool_and(u.old_row::text = i.new_row::text)
               FROM tradeguard_audit.log u JOIN tradeguard_audit.log i ON i.pk = u.pk AND i.operation = 'INSERT'
              WHERE u.table_name = 't_fast' AND i.table_name = 't_fast' AND u.operation IN ('UPDATE', 'DELETE')
                AND u.id = (SELECT min(x.id) FROM tradeguard_audit.log x WHERE x.table_name = 't_fast' AND x.pk = u.pk AND x.operation <> 'INSERT')",
        );
        assert_eq!(old_ok, Ok(Some(true)));
        let leaked = Spi::get_one::<i64>(
            "SELECT count(*) FROM tradeguard_audit.log WHERE table_name = 't_fast' AND (new_row ? 'secret' OR old_row ? 'secret')",
        );
        assert_eq!(leaked, Ok(Some(0)));
    }

    /// A column added or renamed in the same session shows in the next image; the primary key
    /// image stays the key.
    #[pg_test]
    fn images_follow_alter_table() {
        Spi::run("CREATE TABLE t_alt (id int PRIMARY KEY, px numeric)").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_alt'); INSERT INTO t_alt VALUES (1, 10)").unwrap();
        Spi::run("SELECT tradeguard.break_glass('test: alter an audited table')").unwrap();
        Spi::run("ALTER TABLE t_alt ADD COLUMN venue text DEFAULT 'XTKS'; ALTER TABLE t_alt RENAME COLUMN px TO price").unwrap();
        Spi::run("INSERT INTO t_alt VALUES (2, 20)").unwrap();
        let row = Spi::get_two::<String, String>(
            "SELECT new_row::text, pk::text FROM tradeguard_audit.log WHERE table_name = 't_alt' AND operation = 'INSERT' ORDER BY id DESC LIMIT 1",
        )
        .unwrap();
        assert_eq!(row, (Some(r#"{"id": 2, "price": 20, "venue": "XTKS"}"#.into()), Some(r#"{"id": 2}"#.into())));
    }

    /// The same for a table on the `to_jsonb` path (a jsonb column): the primary key image is
    /// cut from the columns the table has now, not those it had at its first audited row.
    #[pg_test]
    fn generic_images_follow_alter_table() {
        Spi::run("CREATE TABLE t_galt (id int PRIMARY KEY, px float8, meta jsonb)").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_galt'); INSERT INTO t_galt VALUES (1, 10.5, '{}')").unwrap();
        Spi::run("SELECT tradeguard.break_glass('test: alter an audited table')").unwrap();
        Spi::run("ALTER TABLE t_galt ADD COLUMN venue text DEFAULT 'XTKS'").unwrap();
        Spi::run("INSERT INTO t_galt VALUES (2, 20.5, '{\"a\": 1}')").unwrap();
        let row = Spi::get_two::<String, String>(
            "SELECT new_row::text, pk::text FROM tradeguard_audit.log WHERE table_name = 't_galt' AND operation = 'INSERT' ORDER BY id DESC LIMIT 1",
        )
        .unwrap();
        assert_eq!(row, (Some(r#"{"id": 2, "px": 20.5, "meta": {"a": 1}, "venue": "XTKS"}"#.into()), Some(r#"{"id": 2}"#.into())));
    }

    /// What the trail records of a value does not depend on code or settings of the writer:
    /// a cast to json its owner writes for a type (to_jsonb would call it), or the session's
    /// extra_float_digits (-15 prints 2849.7 as 3e+03).
    #[pg_test]
    fn images_ignore_the_writers_casts_and_float_digits() {
        Spi::run(
            "CREATE ROLE t_castr; GRANT CREATE ON SCHEMA public TO t_castr;
             SET ROLE t_castr;
             CREATE TYPE t_side2 AS ENUM ('buy', 'sell');
             CREATE TABLE t_cast (id int PRIMARY KEY, side t_side2, px float8, meta jsonb);
             CREATE FUNCTION t_side_json(t_side2) RETURNS json IMMUTABLE LANGUAGE sql AS $$ SELECT '\"buy\"'::json $$;
             RESET ROLE;
             SELECT tradeguard.audit_table('t_cast')",
        )
        .unwrap();
        // The type's owner may not create the cast, nor rewrite the function of one a superuser
        // created.
        Spi::run("SET ROLE t_castr").unwrap();
        let err = crate::common::sql_error("CREATE CAST (t_side2 AS json) WITH FUNCTION t_side_json(t_side2)").unwrap_or_default();
        assert!(err.contains("casts to json or jsonb"), "{err}");
        Spi::run("RESET ROLE; CREATE CAST (t_side2 AS json) WITH FUNCTION t_side_json(t_side2)").unwrap();
        Spi::run("SET ROLE t_castr").unwrap();
        let err = crate::common::sql_error(
            "CREATE OR REPLACE FUNCTION t_side_json(t_side2) RETURNS json IMMUTABLE LANGUAGE sql AS $$ SELECT '\"sell\"'::json $$",
        )
        .unwrap_or_default();
        assert!(err.contains("the functions of casts to json"), "{err}");
        let err = crate::common::sql_error("ALTER FUNCTION t_side_json(t_side2) SET search_path = public").unwrap_or_default();
        assert!(err.contains("the functions of casts to json"), "{err}");
        // The trail writes the value through the type's output function, cast or not (on the
        // to_jsonb path too, here for the jsonb column), and floats with every digit.
        Spi::run(
            "SET extra_float_digits = -15;
             INSERT INTO t_cast VALUES (1, 'sell', 2849.7, '{}');
             UPDATE t_cast SET side = 'buy', px = 2849.75 WHERE id = 1",
        )
        .unwrap();
        Spi::run("RESET ROLE").unwrap();
        let rows = Spi::get_one::<String>(
            "SELECT string_agg(coalesce(old_row->>'side', '-') || '/' || (new_row->>'side') || ' ' || (new_row->>'px'), '; ' ORDER BY id)
               FROM tradeguard_audit.log WHERE table_name = 't_cast' AND operation IN ('INSERT', 'UPDATE')",
        );
        assert_eq!(rows, Ok(Some("-/sell 2849.7; sell/buy 2849.75".into())));
        // The session's setting is left as it was.
        assert_eq!(Spi::get_one::<String>("SHOW extra_float_digits"), Ok(Some("-15".into())));
        Spi::run("RESET extra_float_digits").unwrap();
    }

    /// The trail stays open for the transaction: an index added in the same transaction (break-
    /// glass) receives the rows written after it.
    #[pg_test]
    fn index_added_mid_transaction_gets_later_rows() {
        Spi::run("CREATE TABLE t_ix (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_ix'); INSERT INTO t_ix VALUES (1)").unwrap();
        Spi::run("SELECT tradeguard.break_glass('test: index on the trail')").unwrap();
        Spi::run("CREATE INDEX t_ix_op ON tradeguard_audit.log (operation, table_name)").unwrap();
        Spi::run("INSERT INTO t_ix VALUES (2), (3)").unwrap();
        Spi::run("SET enable_seqscan = off; SET enable_bitmapscan = off").unwrap();
        Spi::run(
            "CREATE FUNCTION t_plan(q text) RETURNS text LANGUAGE plpgsql AS $$
             DECLARE r text; o text := ''; BEGIN FOR r IN EXECUTE 'EXPLAIN ' || q LOOP o := o || r; END LOOP; RETURN o; END $$",
        )
        .unwrap();
        let q = "SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'INSERT' AND table_name = 't_ix'";
        let plan = Spi::get_one_with_args::<String>("SELECT t_plan($1)", &[q.into()]).unwrap().unwrap_or_default();
        // (The trail is partitioned: the index is made on each partition; new rows are in
        // log_unsealed.)
        assert!(plan.contains("using log_unsealed_operation_table_name_idx"), "the count must read the new index: {plan}");
        assert_eq!(Spi::get_one::<i64>(q), Ok(Some(3)));
    }

    /// Audit rows go straight into the heap and the trail's indexes, an expression index added
    /// under break-glass included.
    #[pg_test]
    fn expression_index_on_the_trail_is_maintained() {
        Spi::run("CREATE TABLE t_fb (id int PRIMARY KEY, v text)").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_fb'); INSERT INTO t_fb VALUES (1, 'direct')").unwrap();
        Spi::run("SELECT tradeguard.break_glass('test: expression index on the trail')").unwrap();
        Spi::run("CREATE INDEX t_fb_expr ON tradeguard_audit.log ((lower(table_name)))").unwrap();
        Spi::run("INSERT INTO t_fb VALUES (2, 'after the index')").unwrap();
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

    #[pg_test(error = "tradeguard: cannot change indexes of tradeguard_audit.log: protected by tradeguard; a tradeguard_admin member must call tradeguard.break_glass(reason) first")]
    fn index_on_the_trail_needs_break_glass() {
        Spi::run("CREATE INDEX ON tradeguard_audit.log (operation)").unwrap();
    }

    #[pg_test]
    fn partitions_are_recorded_as_their_audited_table() {
        Spi::run(
            "CREATE TABLE t_ptrades (id int, day date, qty int, note text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
             CREATE TABLE t_ptrades_1 PARTITION OF t_ptrades FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
             SELECT tradeguard.audit_table('t_ptrades', '{note}');
             CREATE TABLE t_ptrades_2 PARTITION OF t_ptrades FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
             INSERT INTO t_ptrades VALUES (1, '2026-01-05', 10, 'n'), (2, '2026-02-05', 20, 'n');
             UPDATE t_ptrades_2 SET qty = 21 WHERE id = 2;
             TRUNCATE t_ptrades_1",
        )
        .unwrap();
        let rows = Spi::get_one::<String>(
            "SELECT string_agg(operation || ' ' || table_name || ' ' || coalesce(pk::text, '-') || ' ' || coalesce(new_row::text, '-'), '; ' ORDER BY id)
               FROM tradeguard_audit.log WHERE table_name LIKE 't_ptrades%' AND operation <> 'AUDIT_TABLE'",
        )
        .unwrap();
        assert_eq!(
            rows.as_deref(),
            Some(
                "DDL t_ptrades - {\"command\": \"CREATE TABLE\"}; \
                 INSERT t_ptrades {\"id\": 1, \"day\": \"2026-01-05\"} {\"id\": 1, \"day\": \"2026-01-05\", \"qty\": 10}; \
                 INSERT t_ptrades {\"id\": 2, \"day\": \"2026-02-05\"} {\"id\": 2, \"day\": \"2026-02-05\", \"qty\": 20}; \
                 UPDATE t_ptrades {\"id\": 2, \"day\": \"2026-02-05\"} {\"id\": 2, \"day\": \"2026-02-05\", \"qty\": 21}; \
                 TRUNCATE t_ptrades - {\"command\": \"TRUNCATE TABLE\", \"partition\": \"public.t_ptrades_1\"}"
            )
        );
        let history = Spi::get_one::<i64>("SELECT count(*) FROM tradeguard.history('t_ptrades', '{\"id\": 2, \"day\": \"2026-02-05\"}')");
        assert_eq!(history, Ok(Some(2)));
    }

    #[pg_test]
    fn a_renamed_schema_is_recorded_and_followed() {
        Spi::run(
            "CREATE SCHEMA t_sch; CREATE TABLE t_sch.fills (id int PRIMARY KEY, qty int);
             SELECT tradeguard.audit_table('t_sch.fills');
             ALTER SCHEMA t_sch RENAME TO t_sch2;
             INSERT INTO t_sch2.fills VALUES (1, 5)",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT string_agg(operation || ' ' || schema_name || ' ' || table_name, '; ' ORDER BY id)
                   FROM tradeguard_audit.log WHERE schema_name IN ('t_sch', 't_sch2') AND operation <> 'AUDIT_TABLE'"
            )
            .unwrap()
            .as_deref(),
            Some("DDL t_sch schema renamed to t_sch2; INSERT t_sch2 fills")
        );
        // DROP SCHEMA ... CASCADE drops the audited table: recorded like DROP TABLE.
        Spi::run("DROP SCHEMA t_sch2 CASCADE").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'DROP TABLE' AND schema_name = 't_sch2' AND table_name = 'fills'"),
            Ok(Some(1))
        );
    }

    /// unaudit_table then audit_table of the same table: its history() continues (with the gap
    /// unrecorded); another table audited under a paused table's name ends that continuation.
    #[pg_test]
    fn history_continues_after_auditing_is_resumed() {
        let history = |t: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT string_agg(operation || ' ' || coalesce(changes -> 'qty' ->> 'new', changes ->> 'qty'), ', ' ORDER BY id)
                   FROM tradeguard.history('{t}', '{{\"id\": 1}}')"
            ))
        };
        Spi::run(
            "CREATE TABLE t_pa (id int PRIMARY KEY, qty int);
             SELECT tradeguard.audit_table('t_pa');
             INSERT INTO t_pa VALUES (1, 1);
             ALTER TABLE t_pa RENAME TO t_pa2; UPDATE t_pa2 SET qty = 2; ALTER TABLE t_pa2 RENAME TO t_pa;
             SELECT tradeguard.unaudit_table('t_pa');
             UPDATE t_pa SET qty = 3;
             SELECT tradeguard.audit_table('t_pa');
             UPDATE t_pa SET qty = 4",
        )
        .unwrap();
        // The row's earlier changes (under both names it had while audited) and the new one;
        // the change made while unaudited is not in the trail.
        assert_eq!(history("t_pa"), Ok(Some("INSERT 1, UPDATE 2, UPDATE 4".to_string())));
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.paused_tables"), Ok(Some(0)));
        // Paused, renamed away; another table is audited under its name, then dropped; the
        // first gets its name back: its history starts anew (rows under the name are not all
        // its own).
        Spi::run(
            "SELECT tradeguard.unaudit_table('t_pa');
             ALTER TABLE t_pa RENAME TO t_pa_away;
             CREATE TABLE t_pa (id int PRIMARY KEY, qty int);
             SELECT tradeguard.audit_table('t_pa');
             INSERT INTO t_pa VALUES (1, 100);
             SELECT tradeguard.break_glass('test: drop an audited table');
             DROP TABLE t_pa;
             ALTER TABLE t_pa_away RENAME TO t_pa;
             SELECT tradeguard.audit_table('t_pa');
             UPDATE t_pa SET qty = 5",
        )
        .unwrap();
        assert_eq!(history("t_pa"), Ok(Some("UPDATE 5".to_string())));
        // Paused, renamed away; an audited table is renamed to its name and writes under it,
        // then leaves; the first gets its name back: its history starts anew.
        Spi::run(
            "CREATE TABLE t_pb (id int PRIMARY KEY, qty int); SELECT tradeguard.audit_table('t_pb');
             INSERT INTO t_pb VALUES (1, 1);
             SELECT tradeguard.unaudit_table('t_pb'); ALTER TABLE t_pb RENAME TO t_pb_away;
             CREATE TABLE t_px_hist (id int PRIMARY KEY, qty int); SELECT tradeguard.audit_table('t_px_hist');
             ALTER TABLE t_px_hist RENAME TO t_pb; INSERT INTO t_pb VALUES (1, 50); ALTER TABLE t_pb RENAME TO t_px_hist;
             ALTER TABLE t_pb_away RENAME TO t_pb; SELECT tradeguard.audit_table('t_pb');
             UPDATE t_pb SET qty = 6",
        )
        .unwrap();
        assert_eq!(history("t_pb"), Ok(Some("UPDATE 6".to_string())));
        // A dropped paused table leaves nothing behind.
        Spi::run("SELECT tradeguard.unaudit_table('t_pa'); DROP TABLE t_pa").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.paused_tables"), Ok(Some(0)));
    }

    #[pg_test]
    fn history_follows_the_table_through_renames() {
        Spi::run(
            "CREATE SCHEMA t_hs; CREATE TABLE t_hs.orders (id int PRIMARY KEY, qty int);
             SELECT tradeguard.audit_table('t_hs.orders');
             INSERT INTO t_hs.orders VALUES (1, 1);
             ALTER TABLE t_hs.orders RENAME TO orders_2026;
             UPDATE t_hs.orders_2026 SET qty = 2;
             SELECT tradeguard.seal();
             CREATE SCHEMA t_hs_archive; ALTER TABLE t_hs.orders_2026 SET SCHEMA t_hs_archive;
             UPDATE t_hs_archive.orders_2026 SET qty = 3;
             ALTER SCHEMA t_hs_archive RENAME TO t_hs_old;
             UPDATE t_hs_old.orders_2026 SET qty = 4;
             -- a new table takes the first name: its history starts after the rename
             CREATE TABLE t_hs.orders (id int PRIMARY KEY, qty int);
             SELECT tradeguard.audit_table('t_hs.orders');
             INSERT INTO t_hs.orders VALUES (1, 100)",
        )
        .unwrap();
        let history = |t: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT string_agg(operation || ' ' || coalesce(changes -> 'qty' ->> 'new', changes ->> 'qty'), ', ' ORDER BY id)
                   FROM tradeguard.history('{t}', '{{\"id\": 1}}')"
            ))
        };
        assert_eq!(history("t_hs_old.orders_2026"), Ok(Some("INSERT 1, UPDATE 2, UPDATE 3, UPDATE 4".to_string())));
        assert_eq!(history("t_hs.orders"), Ok(Some("INSERT 100".to_string())));
        let names = Spi::get_one::<String>(
            "SELECT schema_name || '.' || table_name || ' ' || (SELECT string_agg(f ->> 'schema' || '.' || (f ->> 'table'), ', ')
                                                             FROM jsonb_array_elements(former_names) f)
               FROM tradeguard.audited_tables WHERE table_name = 'orders_2026'",
        );
        assert_eq!(names, Ok(Some("t_hs_old.orders_2026 t_hs.orders, t_hs.orders_2026, t_hs_archive.orders_2026".to_string())));
        let renamed_to = Spi::get_one::<String>(
            "SELECT string_agg(coalesce(new_row ->> 'renamed_to', new_row ->> 'schema_renamed_to'), ', ' ORDER BY id)
               FROM tradeguard_audit.log WHERE operation = 'DDL' AND schema_name LIKE 't_hs%'",
        );
        assert_eq!(renamed_to, Ok(Some("[\"t_hs\", \"orders_2026\"], [\"t_hs_archive\", \"orders_2026\"], t_hs_old".to_string())));
        // Still so once the renamed table is gone: the new table's history starts at its
        // registration.
        Spi::run("DROP TABLE t_hs_old.orders_2026").unwrap();
        assert_eq!(history("t_hs.orders"), Ok(Some("INSERT 100".to_string())));
    }

    #[pg_test]
    fn rows_are_recorded_under_the_name_the_table_has() {
        Spi::run(
            "CREATE TABLE t_nm (id int PRIMARY KEY, q int);
             SELECT tradeguard.audit_table('t_nm');
             INSERT INTO t_nm VALUES (1, 1);
             CREATE SCHEMA t_nm_s; ALTER TABLE t_nm SET SCHEMA t_nm_s;
             UPDATE t_nm_s.t_nm SET q = 2;
             -- PostgreSQL lets ALTER INDEX rename a table
             ALTER INDEX t_nm_s.t_nm RENAME TO t_nm2;
             UPDATE t_nm_s.t_nm2 SET q = 3;
             -- a rename rolled back with its subtransaction
             DO $$ BEGIN
               ALTER TABLE t_nm_s.t_nm2 RENAME TO t_nm3; UPDATE t_nm_s.t_nm3 SET q = 4;
               RAISE EXCEPTION 'undo';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$;
             UPDATE t_nm_s.t_nm2 SET q = 5",
        )
        .unwrap();
        let rows = Spi::get_one::<String>(
            "SELECT string_agg(schema_name || '.' || table_name || ' ' || coalesce(new_row ->> 'q', ''), ', ' ORDER BY id)
               FROM tradeguard_audit.log WHERE operation IN ('INSERT', 'UPDATE') AND table_name LIKE 't_nm%'",
        );
        assert_eq!(rows, Ok(Some("public.t_nm 1, t_nm_s.t_nm 2, t_nm_s.t_nm2 3, t_nm_s.t_nm2 5".to_string())));
        let history = Spi::get_one::<String>(
            "SELECT string_agg(changes -> 'q' ->> 'new', ', ' ORDER BY id) FROM tradeguard.history('t_nm_s.t_nm2', '{\"id\": 1}')",
        );
        assert_eq!(history, Ok(Some("2, 3, 5".to_string())));
    }

    #[pg_test]
    fn a_row_left_unsealed_is_a_finding_and_a_runtime_status() {
        {
            // A committed row left unsealed for ten minutes (written the way tradeguard writes).
            let _w = crate::common::InternalWrite::begin();
            Spi::run(
                "INSERT INTO tradeguard_audit.log (txid, at, schema_name, table_name, operation, current_user_name, session_user_name, signature)
                 VALUES (1, now() - interval '10 minutes', 'public', 't_unsealed', 'INSERT', 'x', 'x', '\\x00')",
            )
            .unwrap();
        }
        let finding = Spi::get_one::<String>("SELECT object || ': ' || detail FROM tradeguard_audit.run_check('audit_seal_backlog')");
        assert!(finding.as_ref().is_ok_and(|f| f.as_deref().is_some_and(|f| f.starts_with("tradeguard_audit.log: ") && f.contains("audit rows are not sealed yet"))), "{finding:?}");
        let status = Spi::get_one::<bool>("SELECT active FROM tradeguard.runtime_status() WHERE component = 'audit sealing'");
        assert_eq!(status, Ok(Some(false)));
    }

    #[pg_test]
    fn history_follows_the_row_back_through_key_changes() {
        Spi::run(
            "CREATE TABLE t_rekey (id int PRIMARY KEY, qty int);
             SELECT tradeguard.audit_table('t_rekey');
             INSERT INTO t_rekey VALUES (5, 1);
             UPDATE t_rekey SET qty = 2 WHERE id = 5;
             SELECT tradeguard.seal();
             UPDATE t_rekey SET id = 6 WHERE id = 5;
             UPDATE t_rekey SET qty = 3 WHERE id = 6;
             -- key 5 is used again by another row; key 7 lives twice, then becomes 8
             INSERT INTO t_rekey VALUES (5, 50);
             INSERT INTO t_rekey VALUES (7, 70);
             DELETE FROM t_rekey WHERE id = 7;
             INSERT INTO t_rekey VALUES (7, 71);
             UPDATE t_rekey SET id = 8 WHERE id = 7",
        )
        .unwrap();
        let hist = |pk: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT string_agg(operation || ' ' || changes::text, '; ' ORDER BY id) FROM tradeguard.history('t_rekey', '{pk}')"
            ))
            .unwrap()
            .unwrap_or_default()
        };
        assert_eq!(
            hist(r#"{"id": 6}"#),
            r#"INSERT {"id": 5, "qty": 1}; UPDATE {"qty": {"new": 2, "old": 1}}; UPDATE {"id": {"new": 6, "old": 5}}; UPDATE {"qty": {"new": 3, "old": 2}}"#
        );
        // The key's own rows, every life of it (the row that left for key 6 and the new one).
        assert_eq!(hist(r#"{"id": 5}"#), r#"INSERT {"id": 5, "qty": 1}; UPDATE {"qty": {"new": 2, "old": 1}}; INSERT {"id": 5, "qty": 50}"#);
        // Back through a key change, only the row that changed key: not the deleted row 7.
        assert_eq!(hist(r#"{"id": 8}"#), r#"INSERT {"id": 7, "qty": 71}; UPDATE {"id": {"new": 8, "old": 7}}"#);
        // A key freed by an UPDATE (not a DELETE) and taken by another row: only that row.
        Spi::run(
            "INSERT INTO t_rekey VALUES (1, 10); UPDATE t_rekey SET id = 11 WHERE id = 1;
             INSERT INTO t_rekey VALUES (1, 20); UPDATE t_rekey SET id = 2 WHERE id = 1",
        )
        .unwrap();
        assert_eq!(hist(r#"{"id": 2}"#), r#"INSERT {"id": 1, "qty": 20}; UPDATE {"id": {"new": 2, "old": 1}}"#);
        // A row whose key goes back and forth: every change once, read in linear time.
        Spi::run(
            "INSERT INTO t_rekey VALUES (100, 0);
             DO $d$ BEGIN FOR i IN 1..30 LOOP
               UPDATE t_rekey SET id = 201 - id WHERE id IN (100, 101);
             END LOOP; END $d$",
        )
        .unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM tradeguard.history('t_rekey', '{\"id\": 100}')"), Ok(Some(31)));
        // A numeric key written 1, 1.0, 1.00...: one key (no key change, read once), and a key
        // change made under another TimeZone (the images' timestamps are spelled differently).
        Spi::run(
            "CREATE TABLE t_nk (id numeric PRIMARY KEY, at timestamptz);
             SELECT tradeguard.audit_table('t_nk');
             INSERT INTO t_nk VALUES (1, '2026-12-05 10:00+00');
             DO $d$ BEGIN FOR i IN 1..20 LOOP
               UPDATE t_nk SET id = round(id, i) WHERE id = 1;
             END LOOP; END $d$;
             SET LOCAL TimeZone = 'UTC';
             UPDATE t_nk SET id = 2 WHERE id = 1;
             SET LOCAL TimeZone = 'Asia/Tokyo';
             UPDATE t_nk SET id = 3 WHERE id = 2",
        )
        .unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM tradeguard.history('t_nk', '{\"id\": 3}')"), Ok(Some(23)));
        // Two rows swapping keys under a deferred key: each keeps its own changes.
        Spi::run(
            "CREATE TABLE t_swap (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, who text);
             SELECT tradeguard.audit_table('t_swap');
             INSERT INTO t_swap VALUES (1, 'X'), (2, 'Y');
             UPDATE t_swap SET id = 2 WHERE who = 'X';
             UPDATE t_swap SET id = 1 WHERE who = 'Y'",
        )
        .unwrap();
        let swap = Spi::get_one::<String>(
            "SELECT string_agg(operation || ' ' || changes::text, '; ' ORDER BY id) FROM tradeguard.history('t_swap', '{\"id\": 1}')",
        )
        .unwrap()
        .unwrap_or_default();
        assert_eq!(
            swap,
            r#"INSERT {"id": 1, "who": "X"}; INSERT {"id": 2, "who": "Y"}; UPDATE {"id": {"new": 1, "old": 2}}"#
        );
    }

    #[pg_test]
    fn a_partition_audited_on_its_own_withholds_plaintext() {
        Spi::run("SELECT tradeguard.create_key('t_lp')").unwrap();
        Spi::run(
            "CREATE TABLE t_lp (id int PRIMARY KEY, c text) PARTITION BY RANGE (id);
             CREATE TABLE t_lp1 PARTITION OF t_lp FOR VALUES FROM (0) TO (100);
             SELECT tradeguard.encrypt_column('t_lp', 'c', 't_lp');
             CREATE TABLE t_lp2 (id int PRIMARY KEY, c text);
             INSERT INTO t_lp2 VALUES (150, 'LEAKME');
             SELECT tradeguard.audit_table('t_lp2');
             ALTER TABLE t_lp ATTACH PARTITION t_lp2 FOR VALUES FROM (100) TO (200)",
        )
        .unwrap();
        // Attaching converts the row; the conversion's old image held the plaintext.
        let old = Spi::get_one::<String>("SELECT old_row->>'c' FROM tradeguard_audit.log WHERE table_name = 't_lp2' AND operation = 'UPDATE'");
        assert_eq!(old, Ok(Some("[plaintext withheld]".to_string())));
        let leaked = Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM tradeguard_audit.log l WHERE l::text LIKE '%LEAKME%')");
        assert_eq!(leaked, Ok(Some(false)));
        assert_eq!(Spi::get_one::<bool>("SELECT tradeguard.is_ciphertext(c) FROM t_lp2"), Ok(Some(true)));
    }

    #[pg_test(error = "tradeguard: invalid argument: public.t_excl has no column nosuchcol to exclude")]
    fn excluding_an_unknown_column_is_refused() {
        Spi::run("CREATE TABLE t_excl (id int PRIMARY KEY, note text)").unwrap();
        Spi::run("SELECT tradeguard.audit_table('t_excl', '{note,nosuchcol}')").unwrap();
    }

    #[pg_test(error = "tradeguard: cannot change the tradeguard triggers of public.t_glass: protected by tradeguard; a tradeguard_admin member must call tradeguard.break_glass(reason) first")]
    fn break_glass_ends_with_the_subtransaction_that_rolled_back() {
        Spi::run("CREATE TABLE t_glass (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_glass')").unwrap();
        // Its signed BREAK_GLASS row is rolled back: break-glass must not outlive it.
        Spi::run(
            "DO $$ BEGIN PERFORM tradeguard.break_glass('test: rolled back glass'); RAISE EXCEPTION 'undo';
                   EXCEPTION WHEN OTHERS THEN NULL; END $$",
        )
        .unwrap();
        Spi::run("ALTER TABLE t_glass DISABLE TRIGGER tradeguard_audit_row").unwrap();
    }

    /// Break-glass is the admin's: a SET ROLE to a role without tradeguard_admin's privileges
    /// (here the table's owner) does not carry it along; RESET ROLE brings it back.
    #[pg_test]
    fn break_glass_does_not_follow_set_role() {
        Spi::run(
            "CREATE ROLE t_bg_owner; CREATE TABLE t_bg (id int PRIMARY KEY); ALTER TABLE t_bg OWNER TO t_bg_owner;
             SELECT tradeguard.audit_table('t_bg');
             SELECT tradeguard.break_glass('test: break-glass and SET ROLE')",
        )
        .unwrap();
        Spi::run("SET ROLE t_bg_owner").unwrap();
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_bg DISABLE TRIGGER tradeguard_audit_row"),
            Some(crate::common::refusal("the tradeguard triggers of public.t_bg"))
        );
        Spi::run("RESET ROLE").unwrap();
        Spi::run("ALTER TABLE t_bg DISABLE TRIGGER tradeguard_audit_row; ALTER TABLE t_bg ENABLE ALWAYS TRIGGER tradeguard_audit_row").unwrap();
    }

    #[pg_test(error = "tradeguard: audit rows are written only by tradeguard; INSERT on tradeguard_audit.blocks is refused (for the table owner and superusers too)")]
    fn break_glass_alone_does_not_insert_blocks() {
        Spi::run("SELECT tradeguard.break_glass('test: forge a block')").unwrap();
        Spi::run(
            "INSERT INTO tradeguard_audit.blocks (block_no, prev_mac, merkle_root, row_count, first_id, last_id, sealed_at, ids, mac)
             VALUES (77, '\\x00', '\\x00', 0, 0, 0, now(), '{}', '\\x00')",
        )
        .unwrap();
    }

    #[pg_test(error = "tradeguard: audit rows are written only by tradeguard; DELETE on tradeguard_audit.log is refused (for the table owner and superusers too)")]
    fn break_glass_and_restore_mode_do_not_delete_rows() {
        Spi::run("CREATE TABLE t_bgr (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_bgr'); INSERT INTO t_bgr VALUES (1)").unwrap();
        Spi::run("SELECT tradeguard.break_glass('test: restore mode and break-glass together'); SET tradeguard.restore_mode = on").unwrap();
        Spi::run("DELETE FROM tradeguard_audit.log WHERE table_name = 't_bgr'").unwrap();
    }

    /// Restore mode lets pg_restore write trail rows, each once: a copy of a row the trail holds
    /// is refused when written (whichever partition holds it: the sealed rows' unique index
    /// covers its own partition only), instead of stopping sealing later.
    #[pg_test]
    fn restore_mode_refuses_a_second_copy_of_a_trail_row() {
        Spi::run("CREATE TABLE t_rdup (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_rdup'); INSERT INTO t_rdup VALUES (1)").unwrap();
        let id = Spi::get_one::<i64>("SELECT max(id) FROM tradeguard_audit.log WHERE table_name = 't_rdup'").unwrap().unwrap();
        Spi::run("SET LOCAL tradeguard.restore_mode = on").unwrap();
        let err = crate::common::sql_error(&format!(
            "INSERT INTO tradeguard_audit.log SELECT id, txid, at, schema_name, table_name, operation, pk, old_row, new_row,
                    current_user_name, session_user_name, application_name, client_addr, app_context, signature, NULL, NULL
               FROM tradeguard_audit.log WHERE id = {id}"
        ));
        assert_eq!(
            err,
            Some(format!(
                "tradeguard: audit rows are written only by tradeguard; restore mode: trail row id {id} is already in tradeguard_audit.log (a row is restored once)"
            ))
        );
        Spi::run("SET LOCAL tradeguard.restore_mode = off").unwrap();
        assert_eq!(Spi::get_one::<i64>(&format!("SELECT count(*) FROM tradeguard_audit.log WHERE id = {id}")), Ok(Some(1)));
    }

    #[pg_test(error = "tradeguard: audit rows are written only by tradeguard; INSERT on tradeguard_audit.retention is refused (for the table owner and superusers too)")]
    fn the_retention_anchor_cannot_be_forged() {
        Spi::run("INSERT INTO tradeguard_audit.retention VALUES (3, '\\x00', 'forged anchor', 'nobody', 0)").unwrap();
    }

    #[pg_test]
    fn tradeguards_schemas_cannot_be_changed_around_it() {
        let refused = crate::common::refusal;
        for (sql, what) in [
            ("ALTER TABLE tradeguard_audit.blocks SET SCHEMA public", "the schema of tradeguard's objects".to_string()),
            ("ALTER FUNCTION tradeguard.seal() SET SCHEMA public", "the schema of tradeguard's objects".to_string()),
            ("SET LOCAL search_path = tradeguard_audit; CREATE TABLE log2 (id int)", "new objects in tradeguard's schemas".to_string()),
            ("SET LOCAL search_path = tradeguard_audit; CREATE SEQUENCE log_id_seq2", "new objects in tradeguard's schemas".to_string()),
            (
                "CREATE OR REPLACE FUNCTION tradeguard.protect_trigger() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
                "functions in tradeguard's schemas".to_string(),
            ),
            ("ALTER FUNCTION tradeguard.verify(bigint, bigint) RENAME TO verify_real", "functions in tradeguard's schemas".to_string()),
            ("ALTER EXTENSION tradeguard DROP TABLE tradeguard_audit.log", "the members of extension tradeguard".to_string()),
            ("SET LOCAL search_path = tradeguard_audit; DROP INDEX log_block", "objects of tradeguard's schemas (log_block)".to_string()),
            ("CREATE POLICY p ON tradeguard_audit.log USING (true)", "policies on tradeguard's tables".to_string()),
            // Sealed rows of block 999 would go to a table outside the protected schema.
            (
                "CREATE TABLE public.t_part PARTITION OF tradeguard_audit.log FOR VALUES IN (999)",
                "inheritance from or partitions of tables in tradeguard's schemas".to_string(),
            ),
            // A child added later, of a table without triggers: its rows would be read as
            // registrations (the child has the same columns, so only the hook stops it).
            (
                "CREATE TABLE public.t_reg (LIKE tradeguard_audit.encrypted_columns);
                 ALTER TABLE public.t_reg INHERIT tradeguard_audit.encrypted_columns",
                "inheritance from or partitions of tables in tradeguard's schemas".to_string(),
            ),
            (
                "CREATE TABLE public.t_child () INHERITS (tradeguard_audit.blocks)",
                "table inheritance from tradeguard_audit.blocks (its audit, encryption and guard triggers would not fire for the child's rows; use partitioning)".to_string(),
            ),
            (
                "CREATE FOREIGN DATA WRAPPER t_fdw; CREATE SERVER t_srv FOREIGN DATA WRAPPER t_fdw;
                 CREATE FOREIGN TABLE tradeguard_audit.t_ft (id int) SERVER t_srv",
                "new objects in tradeguard's schemas".to_string(),
            ),
        ] {
            assert_eq!(crate::common::sql_error(sql), Some(refused(&what)), "{sql}");
        }
    }

    #[pg_test]
    fn the_hook_cannot_be_steered_or_sidestepped() {
        let refused = crate::common::refusal;
        Spi::run(
            "CREATE ROLE t_shadow; GRANT CREATE ON SCHEMA public TO t_shadow;
             CREATE TABLE t_sh (id int PRIMARY KEY); ALTER TABLE t_sh OWNER TO t_shadow;
             SELECT tradeguard.audit_table('t_sh')",
        )
        .unwrap();
        // The table's owner shadows pg_catalog's = for oids: the hook's checks still see the
        // audit triggers.
        Spi::run(
            "SET ROLE t_shadow;
             CREATE FUNCTION public.t_never(oid, oid) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT false';
             CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.t_never);
             SET search_path = public, pg_catalog",
        )
        .unwrap();
        assert_eq!(crate::common::sql_error("ALTER TABLE t_sh DISABLE TRIGGER ALL"), Some(refused("the tradeguard triggers of public.t_sh")));
        Spi::run("RESET search_path; RESET ROLE").unwrap();
        for (sql, what) in [
            ("ALTER TRIGGER tradeguard_audit_row ON t_sh DEPENDS ON EXTENSION plpgsql", "extension dependencies of tradeguard's objects and of protected tables"),
            ("DROP OWNED BY t_shadow", "DROP OWNED BY of roles that own audited or encrypted tables (DROP TABLE them first: each drop is recorded)"),
            (
                "CREATE OR REPLACE TRIGGER tradeguard_audit_row BEFORE UPDATE ON t_sh FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
                "the tradeguard triggers of public.t_sh",
            ),
            (
                "CREATE OR REPLACE RULE \"_RETURN\" AS ON SELECT TO tradeguard.audit_log DO INSTEAD SELECT * FROM tradeguard.audit_log",
                "relations of tradeguard's schemas (audit_log)",
            ),
            ("ALTER VIEW tradeguard.audit_log RENAME TO audit_log2", "relations of tradeguard's schemas (audit_log)"),
            ("ALTER SEQUENCE tradeguard_audit.log_id_seq RESTART WITH 1", "relations of tradeguard's schemas (log_id_seq)"),
        ] {
            assert_eq!(crate::common::sql_error(sql), Some(refused(what)), "{sql}");
        }
        // The commands recorded as DDL on `table`, oldest first.
        let ddl_of = |table: &str| {
            Spi::get_one_with_args::<String>(
                "SELECT string_agg(new_row ->> 'command', ', ' ORDER BY id) FROM tradeguard_audit.log WHERE table_name = $1 AND operation = 'DDL'",
                &[table.into()],
            )
        };
        // Changes to audited data made through its types are recorded; table inheritance from
        // an audited table (whose triggers would not fire for the child) is refused.
        Spi::run(
            "CREATE TYPE t_side AS ENUM ('buy', 'sell'); CREATE DOMAIN t_px AS numeric;
             CREATE TABLE t_en (id int PRIMARY KEY, side t_side, px t_px); SELECT tradeguard.audit_table('t_en');
             ALTER TYPE t_side RENAME VALUE 'buy' TO 'tmp';
             ALTER TYPE t_side ADD VALUE 'short';
             DROP DOMAIN t_px CASCADE",
        )
        .unwrap();
        assert_eq!(ddl_of("t_en"), Ok(Some("ALTER TYPE, DROP DOMAIN".to_string())));
        // Types nested deeper: a composite with a field of the enum, a domain over a domain, a
        // range over a domain of numeric.
        Spi::run(
            "CREATE TYPE t_leg AS (side t_side, qty int); CREATE DOMAIN t_q0 AS int; CREATE DOMAIN t_q1 AS t_q0;
             CREATE DOMAIN t_n0 AS numeric; CREATE TYPE t_band AS RANGE (subtype = t_n0);
             CREATE TABLE t_nest (id int PRIMARY KEY, legs t_leg[], q t_q1, band t_band); SELECT tradeguard.audit_table('t_nest');
             ALTER TYPE t_side RENAME VALUE 'tmp' TO 'buy';
             DROP DOMAIN t_q0 CASCADE;
             DROP DOMAIN t_n0 CASCADE",
        )
        .unwrap();
        assert_eq!(ddl_of("t_nest"), Ok(Some("ALTER TYPE, DROP DOMAIN, DROP DOMAIN".to_string())));
        // Other drops that cascade into audited tables: a function a generated column and a
        // default call, an extension whose type a column uses. A drop that reaches no audited
        // table records nothing.
        Spi::run(
            "CREATE FUNCTION t_fee(numeric) RETURNS numeric IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 0.001';
             CREATE FUNCTION t_venue() RETURNS text LANGUAGE sql AS 'SELECT ''XTKS''';
             CREATE FUNCTION t_unused() RETURNS int LANGUAGE sql AS 'SELECT 1';
             CREATE EXTENSION citext;
             CREATE TABLE t_casc (id int PRIMARY KEY, px numeric, fee numeric GENERATED ALWAYS AS (t_fee(px)) STORED,
                                  venue text DEFAULT t_venue(), email citext);
             SELECT tradeguard.audit_table('t_casc');
             DROP FUNCTION t_fee(numeric) CASCADE;
             DROP FUNCTION t_venue CASCADE;
             DROP FUNCTION t_unused() CASCADE;
             DROP EXTENSION citext CASCADE",
        )
        .unwrap();
        assert_eq!(ddl_of("t_casc"), Ok(Some("DROP FUNCTION, DROP FUNCTION, DROP EXTENSION".to_string())));
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 't_casc'::regclass AND attnum > 0 AND NOT attisdropped"
            ),
            Ok(Some("id,px,venue".to_string()))
        );
        // A composite type with a field of an extension's type, used by an audited column: the
        // extension's drop changes its values. A text search configuration a generated column
        // uses. A cascade that would reach tradeguard's own objects (PostgreSQL would drop the
        // whole extension with them) is refused.
        Spi::run(
            "CREATE EXTENSION citext; CREATE TYPE t_pair AS (a citext, b int);
             CREATE TEXT SEARCH CONFIGURATION t_cfg (COPY = simple);
             CREATE TABLE t_casc2 (id int PRIMARY KEY, p t_pair, note text, doc tsvector GENERATED ALWAYS AS (to_tsvector('t_cfg', note)) STORED);
             SELECT tradeguard.audit_table('t_casc2');
             DROP EXTENSION citext CASCADE;
             DROP TEXT SEARCH CONFIGURATION t_cfg CASCADE",
        )
        .unwrap();
        assert_eq!(ddl_of("t_casc2"), Ok(Some("DROP EXTENSION, DROP TEXT SEARCH CONFIGURATION".to_string())));
        assert_eq!(
            crate::common::sql_error("DROP EXTENSION plpgsql CASCADE"),
            Some(refused("extension tradeguard (the cascade reaches its objects: PostgreSQL would drop the extension and its trail)"))
        );
        // Missing objects of every traced kind: the lookup finds nothing, nothing is recorded,
        // the statement runs (IF EXISTS) as it would without the hook.
        Spi::run(
            "DROP FUNCTION IF EXISTS t_nope() CASCADE; DROP PROCEDURE IF EXISTS t_nope() CASCADE;
             DROP ROUTINE IF EXISTS t_nope CASCADE; DROP AGGREGATE IF EXISTS t_nope(int) CASCADE;
             DROP OPERATOR IF EXISTS ### (int, int) CASCADE; DROP EXTENSION IF EXISTS t_nope CASCADE;
             DROP COLLATION IF EXISTS t_nope CASCADE",
        )
        .unwrap();
        assert_eq!(
            crate::common::sql_error("CREATE TABLE t_child () INHERITS (t_en)"),
            Some(refused("table inheritance from public.t_en (its audit, encryption and guard triggers would not fire for the child's rows; use partitioning)"))
        );
        // A foreign table too.
        assert_eq!(
            crate::common::sql_error(
                "CREATE FOREIGN DATA WRAPPER t_fdw2; CREATE SERVER t_srv2 FOREIGN DATA WRAPPER t_fdw2;
                 CREATE FOREIGN TABLE t_fchild () INHERITS (t_en) SERVER t_srv2"
            ),
            Some(refused("table inheritance from public.t_en (its audit, encryption and guard triggers would not fire for the child's rows; use partitioning)"))
        );
        // A change that cannot be recorded does not happen (here: an oversized context).
        Spi::run("SELECT set_config('tradeguard.app_context', json_build_object('x', repeat('y', 5000))::text, true)").unwrap();
        let err = crate::common::sql_error("GRANT SELECT ON t_sh TO PUBLIC").unwrap_or_default();
        assert!(err.contains("app_context is larger than 4 kB"), "{err}");
        Spi::run("SELECT set_config('tradeguard.app_context', '', true)").unwrap();
        assert_eq!(Spi::get_one::<bool>("SELECT has_table_privilege('public', 't_sh', 'SELECT')"), Ok(Some(false)));
    }

    #[pg_test]
    fn the_registration_follows_renamed_columns_and_new_keys() {
        Spi::run(
            "CREATE TABLE t_ren (id int PRIMARY KEY, note text, qty int);
             SELECT tradeguard.audit_table('t_ren', '{note}');
             ALTER TABLE t_ren RENAME COLUMN note TO note2;
             ALTER TABLE t_ren RENAME COLUMN id TO tid;
             INSERT INTO t_ren VALUES (1, 'secret note', 5);
             CREATE TABLE t_nokey (id int, v text);
             SELECT tradeguard.audit_table('t_nokey');
             ALTER TABLE t_nokey ADD PRIMARY KEY (id);
             INSERT INTO t_nokey VALUES (7, 'x')",
        )
        .unwrap();
        let row = Spi::get_one::<String>(
            "SELECT pk::text || ' ' || new_row::text FROM tradeguard_audit.log WHERE table_name = 't_ren' AND operation = 'INSERT'",
        );
        assert_eq!(row, Ok(Some("{\"tid\": 1} {\"qty\": 5, \"tid\": 1}".to_string())));
        let pk = Spi::get_one::<String>("SELECT pk::text FROM tradeguard_audit.log WHERE table_name = 't_nokey' AND operation = 'INSERT'");
        assert_eq!(pk, Ok(Some("{\"id\": 7}".to_string())));
    }

    #[pg_test]
    fn role_changes_name_their_roles() {
        Spi::run(
            "CREATE ROLE t_trader; CREATE ROLE t_desk_head;
             GRANT t_trader TO t_desk_head;
             ALTER ROLE t_trader PASSWORD 'never-recorded';
             ALTER ROLE t_trader RENAME TO t_trader2;
             GRANT SELECT ON pg_catalog.pg_class TO t_desk_head;
             REVOKE SELECT ON pg_catalog.pg_class FROM t_desk_head;
             DROP ROLE t_trader2, t_desk_head",
        )
        .unwrap();
        let rows = Spi::get_one::<String>(
            "SELECT string_agg(operation || ': ' || table_name, '; ' ORDER BY id) FROM tradeguard_audit.log
              WHERE operation IN ('CREATE ROLE', 'GRANT ROLE', 'ALTER ROLE', 'GRANT', 'REVOKE', 'DROP ROLE') AND table_name LIKE '%t\\_%'",
        );
        assert_eq!(
            rows,
            Ok(Some(
                "CREATE ROLE: t_trader; CREATE ROLE: t_desk_head; GRANT ROLE: t_trader TO t_desk_head; ALTER ROLE: t_trader; \
                 ALTER ROLE: t_trader RENAME TO t_trader2; GRANT: t_desk_head; REVOKE: t_desk_head; DROP ROLE: t_trader2, t_desk_head"
                    .to_string()
            ))
        );
        let leaked = Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM tradeguard_audit.log WHERE log::text LIKE '%never-recorded%')");
        assert_eq!(leaked, Ok(Some(false)));
    }

    #[pg_test(error = "tradeguard: invalid argument: tradeguard.app_context is larger than 4 kB; set a smaller context")]
    fn an_oversized_context_set_by_set_config_is_refused() {
        Spi::run("CREATE TABLE t_ctx (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_ctx')").unwrap();
        Spi::run("SELECT set_config('tradeguard.app_context', json_build_object('x', repeat('y', 5000))::text, true)").unwrap();
        Spi::run("INSERT INTO t_ctx VALUES (1)").unwrap();
    }

    #[pg_test]
    fn dropped_triggers_and_schema_moves_of_audited_tables_are_recorded() {
        Spi::run(
            "CREATE TABLE t_mv (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_mv');
             CREATE FUNCTION t_noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
             CREATE TRIGGER t_extra BEFORE INSERT ON t_mv FOR EACH ROW EXECUTE FUNCTION t_noop();
             DROP TRIGGER t_extra ON t_mv;
             CREATE SCHEMA t_other; ALTER TABLE t_mv SET SCHEMA t_other",
        )
        .unwrap();
        let rows = Spi::get_one::<String>(
            "SELECT string_agg(new_row->>'command', ', ' ORDER BY id) FROM tradeguard_audit.log
              WHERE operation = 'DDL' AND table_name = 't_mv'",
        );
        assert_eq!(rows, Ok(Some("CREATE TRIGGER, DROP TRIGGER, ALTER TABLE".to_string())));
    }

    #[pg_test]
    fn a_dropped_table_takes_its_registrations_with_it() {
        Spi::run(
            "SELECT tradeguard.create_key('t_gone');
             CREATE TABLE t_gone (id int PRIMARY KEY, secret text);
             SELECT tradeguard.audit_table('t_gone');
             SELECT tradeguard.encrypt_column('t_gone', 'secret', 't_gone');
             DROP TABLE t_gone CASCADE",
        )
        .unwrap();
        let left = Spi::get_one::<i64>(
            "SELECT (SELECT count(*) FROM tradeguard.audited_tables WHERE table_name = 't_gone')
                  + (SELECT count(*) FROM tradeguard.encrypted_columns WHERE table_name = 't_gone')",
        );
        assert_eq!(left, Ok(Some(0)));
        let dropped = Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'DROP TABLE' AND table_name = 't_gone'");
        assert_eq!(dropped, Ok(Some(1)));
    }

    /// ALTER TABLE and RENAME COLUMN of an unaudited parent, and ALTER TYPE ... CASCADE of a
    /// composite type, change audited children, partitions and typed tables: refused where they
    /// would rewrite values, else recorded on them, with their registrations kept up to date.
    #[pg_test]
    fn alters_through_parents_and_types_reach_audited_tables() {
        let refused = crate::common::refusal;
        let ddl_on = |table: &str| {
            Spi::get_one_with_args::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'DDL' AND table_name = $1", &[table.into()]).unwrap().unwrap()
        };
        let excluded = |table: &str| {
            Spi::get_one_with_args::<Vec<String>>("SELECT exclude_columns FROM tradeguard_audit.audited_tables WHERE table_name = $1", &[table.into()])
                .unwrap()
                .unwrap_or_default()
        };
        Spi::run(
            "CREATE TABLE t_opar (id int, amount numeric, note text);
             CREATE TABLE t_ochild (PRIMARY KEY (id)) INHERITS (t_opar);
             SELECT tradeguard.audit_table('t_ochild', '{note}');
             INSERT INTO t_ochild VALUES (1, 100, 'confidential');
             CREATE TABLE t_pp_alt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
             CREATE TABLE t_pp1 PARTITION OF t_pp_alt FOR VALUES FROM (0) TO (100);
             SELECT tradeguard.audit_table('t_pp1');
             INSERT INTO t_pp_alt VALUES (1, 'orig')",
        )
        .unwrap();
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_opar ALTER COLUMN amount TYPE numeric USING amount * 1000"),
            Some(refused("the values of audited table public.t_opar through ALTER COLUMN amount TYPE ... USING (the rewritten values would not be recorded row by row)"))
        );
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_pp_alt ALTER COLUMN v TYPE text USING 'forged-' || v"),
            Some(refused("the values of audited table public.t_pp_alt through ALTER COLUMN v TYPE ... USING (the rewritten values would not be recorded row by row)"))
        );
        // Renamed through the parent: recorded on the child, whose exclusion follows.
        let before = ddl_on("t_ochild");
        Spi::run("ALTER TABLE t_opar RENAME COLUMN note TO note_x; UPDATE t_ochild SET amount = amount + 1").unwrap();
        assert_eq!(ddl_on("t_ochild"), before + 1);
        assert_eq!(excluded("t_ochild"), vec!["note_x".to_string()]);
        let leaked = Spi::get_one::<bool>("SELECT bool_or(new_row::text LIKE '%confidential%') FROM tradeguard_audit.log WHERE table_name = 't_ochild'");
        assert_eq!(leaked, Ok(Some(false)));
        Spi::run("ALTER TABLE t_opar DROP COLUMN amount").unwrap();
        assert_eq!(ddl_on("t_ochild"), before + 2);

        // A typed table changed through its type.
        Spi::run(
            "CREATE TYPE t_ct AS (id int, v text, secret text);
             CREATE TABLE t_tt OF t_ct (PRIMARY KEY (id));
             SELECT tradeguard.audit_table('t_tt', '{secret}');
             INSERT INTO t_tt VALUES (1, 'orig', 'hidden');
             ALTER TYPE t_ct RENAME ATTRIBUTE secret TO sec2 CASCADE;
             UPDATE t_tt SET v = 'x'",
        )
        .unwrap();
        assert_eq!(excluded("t_tt"), vec!["sec2".to_string()]);
        let leaked = Spi::get_one::<bool>("SELECT bool_or(coalesce(old_row::text, '') || coalesce(new_row::text, '') LIKE '%hidden%') FROM tradeguard_audit.log WHERE table_name = 't_tt'");
        assert_eq!(leaked, Ok(Some(false)));
        let before = ddl_on("t_tt");
        Spi::run("ALTER TYPE t_ct DROP ATTRIBUTE v CASCADE").unwrap();
        assert_eq!(ddl_on("t_tt"), before + 1);

        // A conversion defined in this database can rewrite every value without USING.
        Spi::run(
            "CREATE TYPE t_money2 AS (amount numeric);
             CREATE FUNCTION t_to_money2(text) RETURNS t_money2 LANGUAGE sql IMMUTABLE AS $$ SELECT ROW(999999)::t_money2 $$;
             CREATE CAST (text AS t_money2) WITH FUNCTION t_to_money2(text) AS ASSIGNMENT;
             CREATE TABLE t_acct_alt (id int PRIMARY KEY, balance text);
             SELECT tradeguard.audit_table('t_acct_alt')",
        )
        .unwrap();
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_acct_alt ALTER COLUMN balance TYPE t_money2"),
            Some(refused("the values of audited table public.t_acct_alt through ALTER COLUMN balance TYPE with a type or cast defined in this database (the rewritten values would not be recorded row by row)"))
        );
        // PostgreSQL's own conversions that round are refused too; those that keep the value
        // (or fail), a domain and a binary-coercible cast of an extension are recorded as DDL.
        Spi::run("CREATE TABLE t_px_alt (id int PRIMARY KEY, price numeric(12,4), qty int, at timestamptz); SELECT tradeguard.audit_table('t_px_alt')").unwrap();
        for (sql, col) in [
            ("ALTER TABLE t_px_alt ALTER COLUMN price TYPE numeric(12,2)", "price"),
            ("ALTER TABLE t_px_alt ALTER COLUMN price TYPE integer", "price"),
            ("ALTER TABLE t_px_alt ALTER COLUMN at TYPE date", "at"),
        ] {
            assert_eq!(
                crate::common::sql_error(sql),
                Some(refused(&format!("the values of audited table public.t_px_alt through ALTER COLUMN {col} TYPE with a conversion that rounds or drops part of the values (the rewritten values would not be recorded row by row)"))),
                "{sql}"
            );
        }
        // Nor through a domain's typmod, an array's elements, money or jsonb.
        // Floats to numeric or text (15 digits, or as few as extra_float_digits asks for), money
        // to anything (read with lc_monetary) and geometric types to text round too.
        Spi::run(
            "CREATE DOMAIN t_n2 AS numeric(12,2);
             ALTER TABLE t_px_alt ADD COLUMN a numeric(12,4)[], ADD COLUMN j json, ADD COLUMN f float8, ADD COLUMN r real,
                 ADD COLUMN m money, ADD COLUMN pt point",
        )
        .unwrap();
        for (sql, col) in [
            ("ALTER TABLE t_px_alt ALTER COLUMN price TYPE t_n2", "price"),
            ("ALTER TABLE t_px_alt ALTER COLUMN a TYPE numeric(12,2)[]", "a"),
            ("ALTER TABLE t_px_alt ALTER COLUMN price TYPE money", "price"),
            ("ALTER TABLE t_px_alt ALTER COLUMN j TYPE jsonb", "j"),
            ("ALTER TABLE t_px_alt ALTER COLUMN f TYPE numeric", "f"),
            ("ALTER TABLE t_px_alt ALTER COLUMN r TYPE numeric", "r"),
            ("ALTER TABLE t_px_alt ALTER COLUMN f TYPE text", "f"),
            ("ALTER TABLE t_px_alt ALTER COLUMN m TYPE numeric", "m"),
            ("ALTER TABLE t_px_alt ALTER COLUMN pt TYPE text", "pt"),
        ] {
            let err = crate::common::sql_error(sql).unwrap_or_default();
            assert!(err.contains(&format!("ALTER COLUMN {col} TYPE with a conversion that rounds")), "{sql}: {err}");
        }
        Spi::run("ALTER TABLE t_px_alt ALTER COLUMN qty TYPE bigint; ALTER TABLE t_px_alt ALTER COLUMN price TYPE numeric(14,4); ALTER TABLE t_px_alt ALTER COLUMN r TYPE float8").unwrap();
        Spi::run(
            "ALTER TABLE t_acct_alt ALTER COLUMN balance TYPE varchar(20);
             CREATE DOMAIN t_sym AS varchar(20) CHECK (VALUE <> '');
             ALTER TABLE t_acct_alt ALTER COLUMN balance TYPE t_sym;
             CREATE EXTENSION citext;
             ALTER TABLE t_acct_alt ALTER COLUMN balance TYPE citext",
        )
        .unwrap();

        // ATTACH PARTITION names the table whose rows join, and SET SESSION AUTHORIZATION the
        // role a superuser acts as.
        Spi::run(
            "CREATE TABLE t_ap (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
             SELECT tradeguard.audit_table('t_ap');
             CREATE TABLE t_ap3 (id int NOT NULL, k int NOT NULL, v text);
             INSERT INTO t_ap3 VALUES (7, 25, 'brought in');
             ALTER TABLE t_ap ATTACH PARTITION t_ap3 FOR VALUES FROM (20) TO (30);
             CREATE ROLE t_trader_alt; GRANT ALL ON t_ap TO t_trader_alt;
             SET LOCAL SESSION AUTHORIZATION t_trader_alt; RESET SESSION AUTHORIZATION",
        )
        .unwrap();
        let attached = Spi::get_one::<String>("SELECT new_row ->> 'attached' FROM tradeguard_audit.log WHERE operation = 'DDL' AND table_name = 't_ap' ORDER BY id DESC LIMIT 1");
        assert_eq!(attached, Ok(Some("[\"public.t_ap3\"]".into())));
        let switches = Spi::get_one::<String>("SELECT string_agg(table_name, '; ' ORDER BY id) FROM tradeguard_audit.log WHERE operation = 'SET' AND table_name LIKE 'session_authorization%'");
        assert_eq!(switches, Ok(Some("session_authorization postgres -> t_trader_alt; session_authorization t_trader_alt -> DEFAULT".into())));

        // Under break-glass the refused change runs, recorded as such and on the table it changed.
        let before = ddl_on("t_acct_alt");
        Spi::run(
            "SELECT tradeguard.break_glass('test: a migration that rewrites values');
             ALTER TABLE t_acct_alt ALTER COLUMN balance TYPE text USING balance || '';
             SELECT tradeguard.break_glass_end()",
        )
        .unwrap();
        assert_eq!(ddl_on("t_acct_alt"), before + 1);
        let why = Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'BREAK_GLASS_CHANGE' AND table_name LIKE 'the values of audited table public.t_acct_alt%'");
        assert_eq!(why, Ok(Some(1)));
        // REASSIGN OWNED names its roles.
        Spi::run("CREATE ROLE t_from; CREATE ROLE t_to; REASSIGN OWNED BY t_from TO t_to").unwrap();
        let reassigned = Spi::get_one::<String>("SELECT table_name FROM tradeguard_audit.log WHERE operation = 'REASSIGN OWNED'");
        assert_eq!(reassigned, Ok(Some("t_from TO t_to".into())));
    }

    /// verify() over blocks the chain does not hold is an error, never "ok" nor "chain broken".
    #[pg_test]
    fn verify_refuses_ranges_outside_the_chain() {
        assert_eq!(crate::common::sql_error("SELECT * FROM tradeguard.verify(5, 1)"), Some("tradeguard: invalid argument: to_block 1 is before from_block 5".into()));
        let all = Spi::get_one::<bool>("SELECT ok FROM tradeguard.verify(NULL, NULL)");
        assert_eq!(all, Ok(Some(true)));
    }

    /// The owner of an audited partitioned table (not a superuser) adds partitions once it is a
    /// member of tradeguard_table_owner; before, the refusal says what to grant.
    #[pg_test]
    fn table_owners_add_partitions_through_tradeguard_table_owner() {
        Spi::run(
            "CREATE ROLE t_powner; GRANT CREATE ON SCHEMA public TO t_powner;
             CREATE TABLE t_days (id int, day date, qty int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
             ALTER TABLE t_days OWNER TO t_powner;
             SELECT tradeguard.audit_table('t_days')",
        )
        .unwrap();
        assert_eq!(
            crate::common::sql_error(
                "SET LOCAL ROLE t_powner; CREATE TABLE t_days_1 PARTITION OF t_days FOR VALUES FROM ('2026-01-01') TO ('2026-01-02')"
            ),
            Some(
                "tradeguard: permission denied: a partition of public.t_days gets copies of tradeguard's row triggers (tradeguard.audit_trigger), \
                 which needs membership in tradeguard_table_owner (GRANT tradeguard_table_owner TO the role that creates or attaches partitions)"
                    .into()
            )
        );
        Spi::run(
            "GRANT tradeguard_table_owner TO t_powner;
             SET LOCAL ROLE t_powner;
             CREATE TABLE t_days_1 PARTITION OF t_days FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
             CREATE TABLE t_days_2 (LIKE t_days);
             ALTER TABLE t_days ATTACH PARTITION t_days_2 FOR VALUES FROM ('2026-01-02') TO ('2026-01-03');
             INSERT INTO t_days VALUES (1, '2026-01-01', 5), (2, '2026-01-02', 6);
             RESET ROLE",
        )
        .unwrap();
        let recorded = Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE table_name = 't_days' AND operation = 'INSERT'");
        assert_eq!(recorded, Ok(Some(2)));
        // The membership names no function: a trigger of its own with them needs the schema.
        assert_eq!(
            crate::common::sql_error(
                "SET LOCAL ROLE t_powner; CREATE TRIGGER t_mine AFTER INSERT ON t_days_1 FOR EACH ROW EXECUTE FUNCTION tradeguard.audit_trigger()"
            ),
            Some("permission denied for schema tradeguard".into())
        );
    }

    /// Audited tables and partitions emptied or dropped by a statement that names another
    /// relation: a parent, a referenced table, a schema, an extension they belong to.
    #[pg_test]
    fn drops_and_truncates_that_reach_audited_tables_are_recorded() {
        let refused = crate::common::refusal;
        // What the trail recorded after a given id, as "operation schema.table [partition]".
        let since = || Spi::get_one::<i64>("SELECT coalesce(max(id), 0) FROM tradeguard_audit.log").unwrap().unwrap();
        let recorded = |from: i64| {
            Spi::get_one_with_args::<String>(
                "SELECT string_agg(operation || ' ' || schema_name || '.' || table_name || coalesce(' ' || (new_row ->> 'partition'), ''), '; ' ORDER BY id)
                   FROM tradeguard_audit.log WHERE id > $1 AND operation IN ('DROP TABLE', 'TRUNCATE')",
                &[from.into()],
            )
            .unwrap()
            .unwrap_or_default()
        };
        let registered = |table: &str| {
            Spi::get_one_with_args::<i64>("SELECT count(*) FROM tradeguard.audited_tables WHERE table_name = $1", &[table.into()]).unwrap().unwrap()
        };
        // An unaudited partitioned table dropped with its audited partition (no CASCADE needed),
        // and an unaudited parent dropped with CASCADE with its audited inheritance child.
        Spi::run(
            "CREATE TABLE t_u (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
             CREATE TABLE t_u1 PARTITION OF t_u FOR VALUES IN (1);
             CREATE TABLE t_xp (id int PRIMARY KEY, v text);
             CREATE TABLE t_xc (id int PRIMARY KEY, v text);
             ALTER TABLE t_xc INHERIT t_xp;
             SELECT tradeguard.audit_table('t_u1'), tradeguard.audit_table('t_xc');
             INSERT INTO t_u VALUES (1, 1, 'one'); INSERT INTO t_xc VALUES (1, 'old')",
        )
        .unwrap();
        let from = since();
        Spi::run("DROP TABLE t_u; DROP TABLE t_xp CASCADE").unwrap();
        assert_eq!(recorded(from), "DROP TABLE public.t_u1; DROP TABLE public.t_xc");
        assert_eq!((registered("t_u1"), registered("t_xc")), (0, 0));
        // A new table of the same name starts anew.
        Spi::run("CREATE TABLE t_xc (id int PRIMARY KEY, v text); SELECT tradeguard.audit_table('t_xc'); INSERT INTO t_xc VALUES (1, 'new')").unwrap();
        let history = Spi::get_one::<String>("SELECT string_agg(changes::text, '; ') FROM tradeguard.history('t_xc', '{\"id\": 1}')");
        assert!(history.as_ref().is_ok_and(|h| h.as_deref().is_some_and(|h| h.contains("new") && !h.contains("old"))), "{history:?}");

        // TRUNCATE ... CASCADE through a foreign key on a partition of an audited table.
        Spi::run(
            "CREATE TABLE t_ref (id int PRIMARY KEY); INSERT INTO t_ref VALUES (1);
             CREATE TABLE t_p (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
             CREATE TABLE t_p1 PARTITION OF t_p FOR VALUES IN (1);
             SELECT tradeguard.audit_table('t_p');
             INSERT INTO t_p VALUES (1, 1, 'one');
             ALTER TABLE t_p1 ADD CONSTRAINT t_p1_fk FOREIGN KEY (id) REFERENCES t_ref (id)",
        )
        .unwrap();
        let from = since();
        Spi::run("TRUNCATE t_ref CASCADE").unwrap();
        assert_eq!(recorded(from), "TRUNCATE public.t_p public.t_p1");
        // The audited table itself emptied: its own trigger records it, once.
        Spi::run("INSERT INTO t_ref VALUES (1); INSERT INTO t_p VALUES (1, 1, 'one')").unwrap();
        let from = since();
        Spi::run("TRUNCATE t_p").unwrap();
        assert_eq!(recorded(from), "TRUNCATE public.t_p");

        // DROP SCHEMA ... CASCADE of a schema holding a partition of an audited table elsewhere.
        Spi::run(
            "CREATE SCHEMA t_s3;
             CREATE TABLE t_q (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
             CREATE TABLE t_q1 PARTITION OF t_q FOR VALUES IN (1);
             CREATE TABLE t_s3.t_q2 PARTITION OF t_q FOR VALUES IN (2);
             SELECT tradeguard.audit_table('t_q');
             INSERT INTO t_q VALUES (1, 1, 'one'), (2, 2, 'two')",
        )
        .unwrap();
        let from = since();
        Spi::run("DROP SCHEMA t_s3 CASCADE").unwrap();
        assert_eq!(recorded(from), "DROP TABLE t_s3.t_q2");

        // A table of another extension: adding an audited one is refused; one audited after it
        // was added goes with DROP EXTENSION, recorded.
        Spi::run("CREATE EXTENSION pg_trgm; CREATE TABLE t_member (id int PRIMARY KEY)").unwrap();
        // A partition of an audited table is audited through it.
        assert_eq!(
            crate::common::sql_error("SELECT tradeguard.audit_table('t_q1')"),
            Some("tradeguard: invalid argument: public.t_q1 is a partition of audited table public.t_q and audited through it".into())
        );
        assert_eq!(
            crate::common::sql_error("ALTER EXTENSION pg_trgm ADD TABLE t_q"),
            Some(refused("extension membership of tradeguard's objects and of protected tables"))
        );
        Spi::run("ALTER EXTENSION pg_trgm ADD TABLE t_member; SELECT tradeguard.audit_table('t_member'); INSERT INTO t_member VALUES (1)").unwrap();
        let from = since();
        Spi::run("DROP EXTENSION pg_trgm").unwrap();
        assert_eq!(recorded(from), "DROP TABLE public.t_member");
        assert_eq!(registered("t_member"), 0);

        // New values computed for every row by a DDL statement.
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_q ALTER COLUMN v TYPE text USING 'forged'"),
            Some(refused("the values of audited table public.t_q through ALTER COLUMN v TYPE ... USING (the rewritten values would not be recorded row by row)"))
        );
    }
    /// An event trigger fired by the DDL tradeguard runs itself (audit_table's CREATE TRIGGER)
    /// gets none of tradeguard's rights: its writes to the trail and its changes to protected
    /// triggers are refused as anyone's. Creating, changing and dropping it are recorded.
    #[pg_test]
    fn an_event_trigger_gets_no_rights_from_tradeguards_own_ddl() {
        Spi::run("CREATE TABLE t_et (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_et'); INSERT INTO t_et VALUES (1); CREATE TABLE t_et2 (id int PRIMARY KEY)").unwrap();
        let logged = |op: &str, name: &str| {
            Spi::get_one::<i64>(&format!("SELECT count(*) FROM tradeguard_audit.log WHERE operation = '{op}' AND table_name = '{name}'")).unwrap().unwrap()
        };
        Spi::run(
            "CREATE FUNCTION public.t_et_evil() RETURNS event_trigger LANGUAGE plpgsql AS
               $$ BEGIN DELETE FROM tradeguard_audit.log WHERE table_name = 't_et'; END $$;
             CREATE EVENT TRIGGER t_et_evil ON ddl_command_end WHEN TAG IN ('CREATE TRIGGER') EXECUTE FUNCTION public.t_et_evil()",
        )
        .unwrap();
        assert_eq!(logged("CREATE EVENT TRIGGER", "t_et_evil"), 1);
        let err = crate::common::sql_error("SELECT tradeguard.audit_table('t_et2')").unwrap_or_default();
        assert!(err.contains("DELETE on tradeguard_audit.log is refused"), "{err}");
        Spi::run(
            "CREATE OR REPLACE FUNCTION public.t_et_evil() RETURNS event_trigger LANGUAGE plpgsql AS
               $$ BEGIN ALTER TABLE public.t_et DISABLE TRIGGER ALL; END $$",
        )
        .unwrap();
        let err = crate::common::sql_error("SELECT tradeguard.audit_table('t_et2')").unwrap_or_default();
        assert!(err.contains("the tradeguard triggers of public.t_et: protected by tradeguard"), "{err}");
        // Replacing its function changes what it runs: recorded with its name.
        assert_eq!(logged("CREATE FUNCTION", "public.t_et_evil (the function of event trigger t_et_evil)"), 1);
        // So is an ALTER FUNCTION of it; an overload of the same name with arguments is another
        // function (not recorded).
        Spi::run(
            "ALTER FUNCTION public.t_et_evil() SET search_path = public;
             CREATE OR REPLACE FUNCTION public.t_et_evil(int) RETURNS int LANGUAGE sql AS 'SELECT 1';
             CREATE OR REPLACE FUNCTION public.t_et_evil(int) RETURNS int LANGUAGE sql AS 'SELECT 2'",
        )
        .unwrap();
        assert_eq!(logged("ALTER FUNCTION", "public.t_et_evil (the function of event trigger t_et_evil)"), 1);
        assert_eq!(logged("CREATE FUNCTION", "public.t_et_evil (the function of event trigger t_et_evil)"), 1);
        assert_eq!(logged("INSERT", "t_et"), 1);
        assert_eq!(
            Spi::get_one::<bool>("SELECT bool_and(tgenabled = 'A') FROM pg_trigger WHERE tgrelid = 't_et'::regclass AND tgname LIKE 'tradeguard%'"),
            Ok(Some(true))
        );
        Spi::run("ALTER EVENT TRIGGER t_et_evil DISABLE; ALTER EVENT TRIGGER t_et_evil RENAME TO t_et_evil2; ALTER EVENT TRIGGER t_et_evil2 OWNER TO CURRENT_USER; DROP EVENT TRIGGER t_et_evil2").unwrap();
        assert_eq!(logged("ALTER EVENT TRIGGER", "t_et_evil"), 2);
        assert_eq!(logged("ALTER EVENT TRIGGER", "t_et_evil2"), 1);
        assert_eq!(logged("DROP EVENT TRIGGER", "t_et_evil2"), 1);
        // An event trigger dropped with its function (DROP FUNCTION ... CASCADE) is recorded too.
        Spi::run(
            "CREATE FUNCTION public.t_et_f2() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
             CREATE EVENT TRIGGER t_et_cas ON ddl_command_end EXECUTE FUNCTION public.t_et_f2();
             DROP FUNCTION public.t_et_f2() CASCADE",
        )
        .unwrap();
        assert_eq!(logged("DROP EVENT TRIGGER", "t_et_cas"), 1);
        // ... and one that goes with its function's schema (DROP SCHEMA ... CASCADE).
        Spi::run(
            "CREATE SCHEMA t_et_s; CREATE FUNCTION t_et_s.f3() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
             CREATE EVENT TRIGGER t_et_s3 ON ddl_command_end EXECUTE FUNCTION t_et_s.f3();
             DROP SCHEMA t_et_s CASCADE",
        )
        .unwrap();
        assert_eq!(logged("DROP EVENT TRIGGER", "t_et_s3"), 1);
        // Without it, audit_table works as before.
        Spi::run("SELECT tradeguard.audit_table('t_et2')").unwrap();
    }

    /// Exclusions follow the columns they name: a renamed excluded column stays excluded; once
    /// dropped, its exclusion goes, and a column later given its name is recorded.
    #[pg_test]
    fn an_exclusion_goes_with_its_dropped_column() {
        let excluded = |t: &str| {
            Spi::get_one::<Vec<String>>(&format!("SELECT exclude_columns FROM tradeguard.audited_tables WHERE table_name = '{t}'")).unwrap().unwrap()
        };
        let last_new = |t: &str| {
            Spi::get_one::<pgrx::JsonB>(&format!("SELECT new_row FROM tradeguard_audit.log WHERE table_name = '{t}' ORDER BY id DESC LIMIT 1"))
                .unwrap()
                .map(|j| j.0.to_string())
                .unwrap_or_default()
        };
        Spi::run("CREATE TABLE t_exd (id int PRIMARY KEY, price numeric, note text); SELECT tradeguard.audit_table('t_exd', ARRAY['note']); INSERT INTO t_exd VALUES (1, 10, 'secret')").unwrap();
        assert_eq!(last_new("t_exd"), r#"{"id":1,"price":10}"#);
        Spi::run("ALTER TABLE t_exd DROP COLUMN note").unwrap();
        assert!(excluded("t_exd").is_empty());
        Spi::run("ALTER TABLE t_exd RENAME COLUMN price TO note; UPDATE t_exd SET note = 999 WHERE id = 1").unwrap();
        assert_eq!(last_new("t_exd"), r#"{"id":1,"note":999}"#);

        // Dropped and added again in one statement: the new column is recorded.
        Spi::run("CREATE TABLE t_exd2 (id int PRIMARY KEY, note text); SELECT tradeguard.audit_table('t_exd2', ARRAY['note'])").unwrap();
        Spi::run("ALTER TABLE t_exd2 DROP COLUMN note, ADD COLUMN note text; INSERT INTO t_exd2 VALUES (1, 'visible')").unwrap();
        assert!(excluded("t_exd2").is_empty());
        assert_eq!(last_new("t_exd2"), r#"{"id":1,"note":"visible"}"#);

        // Renamed, it stays excluded; a column renamed to a name whose column is gone is not.
        Spi::run("CREATE TABLE t_exd3 (id int PRIMARY KEY, secret text, other text); SELECT tradeguard.audit_table('t_exd3', ARRAY['secret'])").unwrap();
        Spi::run("ALTER TABLE t_exd3 RENAME COLUMN secret TO hidden; INSERT INTO t_exd3 VALUES (1, 'x', 'y')").unwrap();
        assert_eq!(excluded("t_exd3"), vec!["hidden".to_string()]);
        assert_eq!(last_new("t_exd3"), r#"{"id":1,"other":"y"}"#);

        // A statement that adds or drops nothing leaves the exclusion alone.
        Spi::run("ALTER TABLE t_exd3 ADD COLUMN IF NOT EXISTS hidden text; INSERT INTO t_exd3 VALUES (2, 'x', 'z')").unwrap();
        assert_eq!(excluded("t_exd3"), vec!["hidden".to_string()]);
        assert_eq!(last_new("t_exd3"), r#"{"id":2,"other":"z"}"#);
        // The registrations are written by audit_table and unaudit_table only.
        let err = crate::common::sql_error("UPDATE tradeguard_audit.audited_tables SET exclude_columns = '{other}' WHERE table_name = 't_exd3'").unwrap_or_default();
        assert!(err.contains("UPDATE on tradeguard_audit.audited_tables is refused"), "{err}");
    }

    /// Per-database settings of tradeguard (ALTER DATABASE ... SET tradeguard.*) are recorded like
    /// ALTER ROLE ... SET; audited_tables.trigger_enabled covers the TRUNCATE trigger too.
    #[pg_test]
    fn database_settings_and_the_truncate_trigger_are_watched() {
        let db = Spi::get_one::<String>("SELECT current_database()::text").unwrap().unwrap();
        Spi::run(&format!("ALTER DATABASE {db} SET tradeguard.restore_mode = on; ALTER DATABASE {db} RESET tradeguard.restore_mode")).unwrap();
        assert_eq!(
            Spi::get_one::<String>(&format!(
                "SELECT string_agg(table_name, '; ' ORDER BY id) FROM tradeguard_audit.log WHERE operation = 'ALTER DATABASE' AND table_name LIKE '{db} %'"
            )),
            Ok(Some(format!("{db} SET tradeguard.restore_mode; {db} RESET tradeguard.restore_mode")))
        );
        // (setting names are case-insensitive)
        Spi::run("SET LOCAL \"TradeGuard.Restore_Mode\" = on; SET LOCAL tradeguard.restore_mode = off").unwrap();
        Spi::run("CREATE ROLE t_sa_role; SET LOCAL \"Session_Authorization\" = 't_sa_role'; RESET SESSION AUTHORIZATION").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'SET' AND table_name LIKE 'session_authorization % -> t_sa_role'"),
            Ok(Some(1))
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM tradeguard_audit.log WHERE operation = 'SET' AND lower(table_name) = 'tradeguard.restore_mode'"),
            Ok(Some(2))
        );
        Spi::run("CREATE TABLE t_tte (id int PRIMARY KEY); SELECT tradeguard.audit_table('t_tte')").unwrap();
        let enabled = || Spi::get_one::<bool>("SELECT trigger_enabled FROM tradeguard.audited_tables WHERE table_name = 't_tte'").unwrap();
        assert_eq!(enabled(), Some(true));
        Spi::run("SELECT tradeguard.break_glass('test: disable the truncate trigger'); ALTER TABLE t_tte DISABLE TRIGGER tradeguard_audit_truncate").unwrap();
        assert_eq!(enabled(), Some(false));
    }
}
