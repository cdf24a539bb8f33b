//! In-database tests of column encryption (`cargo pgrx test`).

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::FromDatum + pgrx::IntoDatum>(q: &str) -> Option<T> {
        Spi::get_one::<T>(q).expect(q)
    }

    #[pg_test]
    fn every_type_round_trips() {
        Spi::run("SELECT tradeguard.create_key('t_all')").unwrap();
        for (lit, dec) in [
            ("'héllo, 世界'::text", "decrypt_text"),
            ("'\\x00ff10'::bytea", "decrypt_bytea"),
            ("123456789012345678901234567890.000000001::numeric", "decrypt_numeric"),
            ("(-9223372036854775807)::bigint", "decrypt_bigint"),
            ("'-0.1'::float8", "decrypt_float8"),
            ("'infinity'::timestamptz", "decrypt_timestamptz"),
            ("'[1, {\"a\": null}, 1.000000000000000000001]'::jsonb", "decrypt_jsonb"),
        ] {
            let q = format!("SELECT tradeguard.{dec}(tradeguard.encrypt({lit}, 't_all', 'ctx'), 'ctx') = {lit}");
            assert_eq!(one::<bool>(&q), Some(true), "{q}");
        }
    }

    #[pg_test]
    fn same_value_twice_gives_different_ciphertexts() {
        Spi::run("SELECT tradeguard.create_key('t_nonce')").unwrap();
        let same = one::<bool>(
            "SELECT tradeguard.encrypt('x'::text, 't_nonce') = tradeguard.encrypt('x'::text, 't_nonce')",
        );
        assert_eq!(same, Some(false));
    }

    #[pg_test]
    fn rotation_in_the_same_transaction_is_seen_at_once() {
        Spi::run("SELECT tradeguard.create_key('t_rot')").unwrap();
        Spi::run("SELECT tradeguard.rotate_key('t_rot')").unwrap();
        let v = one::<i32>("SELECT key_version FROM tradeguard.ciphertext_info(tradeguard.encrypt(1::bigint, 't_rot'))");
        assert_eq!(v, Some(2));
    }

    #[pg_test(error = "tradeguard: authentication failed: wrong context, wrong key or altered ciphertext")]
    fn every_single_bit_flip_is_detected() {
        Spi::run("SELECT tradeguard.create_key('t_flip')").unwrap();
        // Flip a bit of the tag (last byte): never plaintext, never NULL.
        Spi::run(
            "SELECT tradeguard.decrypt_text(set_byte(c, length(c) - 1, get_byte(c, length(c) - 1) # 1))
               FROM (SELECT tradeguard.encrypt('x'::text, 't_flip') AS c) s",
        )
        .unwrap();
    }

    #[pg_test(error = "permission denied for function decrypt_text")]
    fn analyst_cannot_decrypt() {
        Spi::run("SELECT tradeguard.create_key('t_role')").unwrap();
        Spi::run("CREATE TABLE t_sec AS SELECT tradeguard.encrypt('secret'::text, 't_role') AS c").unwrap();
        Spi::run("CREATE ROLE t_analyst; GRANT tradeguard_auditor TO t_analyst; GRANT SELECT ON t_sec TO t_analyst")
            .unwrap();
        Spi::run("SET ROLE t_analyst").unwrap();
        Spi::run("SELECT tradeguard.decrypt_text(c) FROM t_sec").unwrap();
    }

    #[pg_test(error = "permission denied for function create_key")]
    fn encryptor_cannot_manage_keys() {
        Spi::run("CREATE ROLE t_app; GRANT tradeguard_encryptor TO t_app").unwrap();
        Spi::run("SET ROLE t_app").unwrap();
        Spi::run("SELECT tradeguard.create_key('t_nope')").unwrap();
    }

    #[pg_test]
    fn errors_carry_their_sqlstate() {
        Spi::run("SELECT tradeguard.create_key('t_state')").unwrap();
        Spi::run("CREATE TEMP TABLE t_codes (q int, c text)").unwrap();
        let cases = [
            ("SELECT tradeguard.decrypt_text('\\x01'::bytea)", "XX001"),
            ("SELECT tradeguard.encrypt('a'::text, 'no_such')", "42704"),
            ("SELECT tradeguard.decrypt_bigint(tradeguard.encrypt('a'::text, 't_state'))", "22023"),
            ("SELECT tradeguard.decrypt_text(tradeguard.encrypt('a'::text, 't_state', 'x'), 'y')", "28000"),
        ];
        for (i, (q, _)) in cases.iter().enumerate() {
            Spi::run(&format!(
                "DO $$ BEGIN PERFORM ({q}); EXCEPTION WHEN OTHERS THEN INSERT INTO t_codes VALUES ({i}, SQLSTATE); END $$"
            ))
            .unwrap();
        }
        for (i, (q, code)) in cases.iter().enumerate() {
            let got = Spi::get_one::<String>(&format!("SELECT c FROM t_codes WHERE q = {i}")).unwrap();
            assert_eq!(got.as_deref(), Some(*code), "{q}");
        }
    }

    /// A version that a registered column still holds values of is not retired (the values
    /// would no longer decrypt): the error names the column and the count, SQLSTATE 55000.
    /// Re-encrypted, it retires; `force` retires it anyway.
    #[pg_test]
    fn retiring_a_version_still_in_use_is_refused() {
        Spi::run(
            "SELECT tradeguard.create_key('t_ret');
             CREATE TABLE t_ret_tbl (id int PRIMARY KEY, a text, b text);
             INSERT INTO t_ret_tbl VALUES (1, 'a1', 'b1'), (2, 'a2', NULL), (3, NULL, 'b3');
             SELECT tradeguard.encrypt_column('t_ret_tbl', 'a', 't_ret');
             SELECT tradeguard.encrypt_column('t_ret_tbl', 'b', 't_ret');
             SELECT tradeguard.rotate_key('t_ret');
             SELECT tradeguard.reencrypt_column('t_ret_tbl', 'a');",
        )
        .unwrap();
        let err = crate::common::sql_error("SELECT tradeguard.retire_key('t_ret', 1)").unwrap_or_default();
        assert!(err.contains("key \"t_ret\" version 1 still encrypts 2 value(s) of column public.t_ret_tbl.b"), "{err}");
        Spi::run(
            "CREATE TEMP TABLE t_ret_code (c text);
             DO $$ BEGIN PERFORM tradeguard.retire_key('t_ret', 1); EXCEPTION WHEN OTHERS THEN INSERT INTO t_ret_code VALUES (SQLSTATE); END $$",
        )
        .unwrap();
        assert_eq!(one::<String>("SELECT c FROM t_ret_code").as_deref(), Some("55000"));
        assert_eq!(one::<String>("SELECT status FROM tradeguard.keys WHERE name = 't_ret' AND version = 1").as_deref(), Some("decrypt_only"));
        // Moved to version 2: version 1 retires, and every value still decrypts.
        assert_eq!(one::<i64>("SELECT tradeguard.reencrypt_column('t_ret_tbl', 'b')"), Some(2));
        // (a plaintext that starts with `tg1:`, written past the trigger, is not taken for armor)
        Spi::run(
            "CREATE TABLE t_ret_bad (id int PRIMARY KEY, v text); SELECT tradeguard.encrypt_column('t_ret_bad', 'v', 't_ret');
             SET session_replication_role = replica; INSERT INTO t_ret_bad VALUES (1, 'tg1:!! not base64 at all, long enough'); RESET session_replication_role",
        )
        .unwrap();
        Spi::run("SELECT tradeguard.retire_key('t_ret', 1)").unwrap();
        assert_eq!(one::<String>("SELECT string_agg(coalesce(a, '-') || coalesce(b, '-'), ',' ORDER BY id) FROM t_ret_tbl_decrypted").as_deref(), Some("a1b1,a2-,-b3"));
        // force: retired although values remain (they then fail to decrypt, with their own error).
        Spi::run("SELECT tradeguard.rotate_key('t_ret'); INSERT INTO t_ret_tbl VALUES (4, 'a4', 'b4'); SELECT tradeguard.rotate_key('t_ret')").unwrap();
        let err = crate::common::sql_error("SELECT tradeguard.retire_key('t_ret', 3)").unwrap_or_default();
        assert!(err.contains("version 3 still encrypts 1 value(s) of column public.t_ret_tbl.a"), "{err}");
        Spi::run("SELECT tradeguard.retire_key('t_ret', 3, true)").unwrap();
        let err = crate::common::sql_error("SELECT a FROM t_ret_tbl_decrypted WHERE id = 4").unwrap_or_default();
        assert!(err.contains("version 3 is retired"), "{err}");
        // An unknown version is named as such; retiring a retired version again changes nothing.
        let err = crate::common::sql_error("SELECT tradeguard.retire_key('t_ret', 99)").unwrap_or_default();
        assert!(err.contains("has no version 99"), "{err}");
        assert_eq!(
            crate::common::sql_error("SELECT tradeguard.retire_key('t_ret', -1)"),
            Some("tradeguard: invalid argument: key versions count from 1; there is no version -1 of \"t_ret\"".into())
        );
        Spi::run("SELECT tradeguard.retire_key('t_ret', 3)").unwrap();
    }

    /// The count runs the table's code as its owner, never as the extension owner (a partition's
    /// CHECK constraint calling the owner's function, folded by the planner, raises if it runs as
    /// a superuser; so does the conversion's row picking), names the column with its identifiers
    /// quoted, and a forced row-level security policy that would hide rows from the owner makes
    /// it fail instead of counting short.
    #[pg_test]
    fn retire_check_runs_the_tables_code_as_its_owner() {
        Spi::run(
            r#"CREATE ROLE t_ret_owner; GRANT CREATE ON SCHEMA public TO t_ret_owner;
             SELECT tradeguard.create_key('t_ret2');
             SET ROLE t_ret_owner;
             CREATE FUNCTION t_ret_probe(int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS
               $$ BEGIN IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN RAISE EXCEPTION 'owner code ran as a superuser'; END IF; RETURN true; END $$;
             CREATE TABLE "T ret" (id int PRIMARY KEY, "s""x" text) PARTITION BY RANGE (id);
             CREATE TABLE t_ret_p1 PARTITION OF "T ret" FOR VALUES FROM (0) TO (100);
             ALTER TABLE t_ret_p1 ADD CONSTRAINT probe CHECK (t_ret_probe(1));
             INSERT INTO "T ret" VALUES (1, 'x'), (2, 'y');
             CREATE TABLE t_ret_rls (id int PRIMARY KEY, s text);
             INSERT INTO t_ret_rls VALUES (1, 'z');
             RESET ROLE;
             SELECT tradeguard.encrypt_column('"T ret"', 's"x', 't_ret2');
             SELECT tradeguard.encrypt_column('t_ret_rls', 's', 't_ret2');
             SELECT tradeguard.rotate_key('t_ret2');"#,
        )
        .unwrap();
        let err = crate::common::sql_error("SELECT tradeguard.retire_key('t_ret2', 1)").unwrap_or_default();
        assert!(err.contains(r#"still encrypts 2 value(s) of column public."T ret"."s""x""#), "{err}");
        Spi::run(r#"SELECT tradeguard.reencrypt_column('"T ret"', 's"x')"#).unwrap();
        Spi::run(
            "SET ROLE t_ret_owner;
             ALTER TABLE t_ret_rls ENABLE ROW LEVEL SECURITY; ALTER TABLE t_ret_rls FORCE ROW LEVEL SECURITY;
             CREATE POLICY none ON t_ret_rls USING (false);
             RESET ROLE;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let err = crate::common::sql_error("SELECT tradeguard.retire_key('t_ret2', 1)").unwrap_or_default();
        assert!(err.contains("row-level security"), "{err}");
        assert_eq!(one::<String>("SELECT status FROM tradeguard.keys WHERE name = 't_ret2' AND version = 1").as_deref(), Some("decrypt_only"));
    }

    /// The conversion plans its row picking as the extension owner, and the planner runs a
    /// table's index and statistics expressions (their constant parts) as whoever plans: a table
    /// whose index or statistics object calls code its (non-superuser) owner wrote is refused
    /// before anything runs, with the object and the function named; built-in functions pass.
    #[pg_test]
    fn conversion_refuses_owner_code_the_planner_would_run() {
        Spi::run(
            "CREATE ROLE t_opc_owner; GRANT CREATE ON SCHEMA public TO t_opc_owner;
             SELECT tradeguard.create_key('t_opc');
             SET ROLE t_opc_owner;
             CREATE FUNCTION t_opc_probe(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
               $$ BEGIN IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN RAISE EXCEPTION 'owner code ran as a superuser'; END IF; RETURN 1; END $$;
             CREATE FUNCTION t_opc_plus(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2';
             CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = t_opc_plus);
             CREATE TABLE t_opc (id int PRIMARY KEY, s text);
             INSERT INTO t_opc VALUES (1, 'x');
             CREATE INDEX t_opc_lower ON t_opc (lower(s));
             CREATE STATISTICS t_opc_st ON (id + t_opc_probe(1)) FROM t_opc;
             CREATE TABLE t_opc_part (id int, s text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
             CREATE TABLE t_opc_p1 PARTITION OF t_opc_part FOR VALUES FROM (0) TO (100);
             INSERT INTO t_opc_part VALUES (1, 'y');
             CREATE INDEX t_opc_p1_op ON t_opc_p1 ((id ### 1));
             RESET ROLE;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let refused = |sql: &str, what: &str| {
            let err = crate::common::sql_error(sql).unwrap_or_default();
            assert!(err.contains(what) && err.contains("tradeguard picks the rows to convert as the extension owner"), "{sql}: {err}");
            assert!(!err.contains("ran as a superuser"), "{err}");
        };
        refused(
            "SELECT tradeguard.encrypt_column('t_opc', 's', 't_opc')",
            "cannot convert the rows of public.t_opc: statistics object public.t_opc_st calls function public.t_opc_probe(integer), owned by t_opc_owner",
        );
        // Nothing changed: no trigger, no registration.
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 't_opc'::regclass AND tgname = 'tradeguard_zz_encrypt'"), Some(0));
        // Through an operator, on a partition.
        refused("SELECT tradeguard.encrypt_column('t_opc_part', 's', 't_opc')", "index public.t_opc_p1_op calls function public.t_opc_plus(integer,integer)");
        // Without them (the built-in lower() stays), the conversion runs.
        Spi::run("DROP STATISTICS t_opc_st; DROP INDEX t_opc_p1_op").unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.encrypt_column('t_opc', 's', 't_opc')"), Some(1));
        assert_eq!(one::<i64>("SELECT tradeguard.encrypt_column('t_opc_part', 's', 't_opc')"), Some(1));
        // Re-encryption picks rows the same way: a partial-index predicate added since is refused.
        Spi::run("SELECT tradeguard.rotate_key('t_opc'); SET ROLE t_opc_owner; CREATE INDEX t_opc_pred ON t_opc (id) WHERE t_opc_probe(id) > 0; RESET ROLE").unwrap();
        refused("SELECT tradeguard.reencrypt_column('t_opc', 's')", "index public.t_opc_pred calls function public.t_opc_probe(integer)");
        Spi::run("DROP INDEX t_opc_pred").unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.reencrypt_column('t_opc', 's')"), Some(1));
    }

    /// A partition encrypted on its own keeps its registration: encrypting its parent later is
    /// refused with the reason (not PostgreSQL's "trigger already exists").
    #[pg_test]
    fn a_parent_is_not_encrypted_over_a_partition_encrypted_on_its_own() {
        Spi::run(
            "SELECT tradeguard.create_key('t_pown');
             CREATE TABLE t_pown (id int, d date, v text, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
             CREATE TABLE t_pown_2026 PARTITION OF t_pown FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             INSERT INTO t_pown VALUES (1, '2026-02-01', 'secret');
             SELECT tradeguard.encrypt_column('t_pown_2026', 'v', 't_pown')",
        )
        .unwrap();
        let err = crate::common::sql_error("SELECT tradeguard.encrypt_column('t_pown', 'v', 't_pown')").unwrap_or_default();
        assert!(err.contains("cannot encrypt public.t_pown.v: its partition public.t_pown_2026 has columns encrypted on its own"), "{err}");
        // The partition's own encryption still works.
        Spi::run("INSERT INTO t_pown VALUES (2, '2026-03-01', 'two')").unwrap();
        assert_eq!(Spi::get_one::<bool>("SELECT bool_and(tradeguard.is_ciphertext(v)) FROM t_pown"), Ok(Some(true)));
        assert_eq!(Spi::get_one::<String>("SELECT v FROM t_pown_2026_decrypted WHERE id = 2"), Ok(Some("two".into())));
    }

    #[pg_test]
    fn partitioned_table_is_encrypted_in_every_partition() {
        Spi::run("SELECT tradeguard.create_key('t_part')").unwrap();
        Spi::run(
            "CREATE TABLE t_fills_part (id int, venue text, account text, PRIMARY KEY (id, venue)) PARTITION BY LIST (venue);
             CREATE TABLE t_fills_part_x PARTITION OF t_fills_part FOR VALUES IN ('x');
             INSERT INTO t_fills_part VALUES (1, 'x', 'acct-1')",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.encrypt_column('t_fills_part', 'account', 't_part')"), Some(1));
        // A partition made afterwards gets the cloned trigger; writes straight into a
        // partition go through it too.
        Spi::run(
            "CREATE TABLE t_fills_part_y PARTITION OF t_fills_part FOR VALUES IN ('y');
             INSERT INTO t_fills_part VALUES (2, 'y', 'acct-2'), (3, 'x', 'acct-3');
             INSERT INTO t_fills_part_y VALUES (4, 'y', 'acct-4');
             UPDATE t_fills_part SET account = 'acct-1b' WHERE id = 1",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM t_fills_part WHERE NOT tradeguard.is_ciphertext(account)"), Some(0));
        // The composite key (the partition key is part of it) binds the values to their rows.
        assert_eq!(one::<String>("SELECT bound_to_key FROM tradeguard.encrypted_columns WHERE table_name = 't_fills_part'").as_deref(), Some("id, venue"));
        Spi::run("UPDATE t_fills_part SET id = 5 WHERE id = 4").unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(account, ',' ORDER BY id) FROM t_fills_part_decrypted").as_deref(),
            Some("acct-1b,acct-2,acct-3,acct-4")
        );
    }

    #[pg_test]
    fn date_and_timestamp_keys_bind_values_to_their_rows_whatever_the_session_settings() {
        Spi::run(
            "SELECT tradeguard.create_key('t_dk');
             CREATE TABLE t_dfills (id int, trade_date date, placed timestamptz, account text,
                                    PRIMARY KEY (id, trade_date, placed)) PARTITION BY RANGE (trade_date);
             CREATE TABLE t_dfills_all PARTITION OF t_dfills DEFAULT;
             SET LOCAL DateStyle = 'SQL, DMY';
             SET LOCAL TimeZone = 'Asia/Tokyo';
             INSERT INTO t_dfills VALUES
               (1, '2026-03-08', '2026-03-08 01:30:00.123456+00', 'acct-1'),
               (2, '1999-12-31', '1969-07-20 20:17:40-04', 'acct-2'),
               (3, 'infinity', '-infinity', 'acct-3'),
               (4, '2026-11-01', '2026-11-01 01:30:00 America/New_York', 'acct-4');
             SELECT tradeguard.encrypt_column('t_dfills', 'account', 't_dk');
             INSERT INTO t_dfills VALUES (5, '2026-12-05', '2026-12-05 09:00:00.000001+09', 'acct-5')",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT bound_to_key FROM tradeguard.encrypted_columns WHERE table_name = 't_dfills'").as_deref(),
            Some("id, trade_date, placed")
        );
        // Written under one DateStyle and TimeZone, read under others.
        for (style, zone) in [("ISO, MDY", "UTC"), ("German", "America/Los_Angeles"), ("Postgres, YMD", "Pacific/Chatham")] {
            Spi::run(&format!("SET LOCAL DateStyle = '{style}'; SET LOCAL TimeZone = '{zone}'")).unwrap();
            assert_eq!(
                one::<String>("SELECT string_agg(account, ',' ORDER BY id) FROM t_dfills_decrypted").as_deref(),
                Some("acct-1,acct-2,acct-3,acct-4,acct-5"),
                "{style} / {zone}"
            );
        }
        // A value copied to another row is refused there (it would not decrypt as that row's).
        let err = crate::common::sql_error("UPDATE t_dfills SET account = (SELECT account FROM t_dfills WHERE id = 1) WHERE id = 2").unwrap_or_default();
        assert!(err.contains("does not belong to this row"), "{err}");
        // A column encrypted later keeps the table's binding.
        Spi::run("ALTER TABLE t_dfills ADD COLUMN note text; SELECT tradeguard.encrypt_column('t_dfills', 'note', 't_dk')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(DISTINCT bound_to_key) FROM tradeguard.encrypted_columns WHERE table_name = 't_dfills'"),
            Some(1)
        );
    }

    #[pg_test]
    fn registrations_follow_renames() {
        // A DBA renames the table, its encrypted column and its key column, and moves the
        // table to another schema: writes keep being encrypted and the view keeps decrypting.
        Spi::run(
            "SELECT tradeguard.create_key('t_ren_c');
             SELECT tradeguard.create_key('t_ren_c_bi', 'blind_index');
             CREATE TABLE t_ren_c (id int PRIMARY KEY, account text);
             INSERT INTO t_ren_c VALUES (1, 'acct-1');
             SELECT tradeguard.encrypt_column('t_ren_c', 'account', 't_ren_c', 't_ren_c_bi');",
        )
        .unwrap();
        let blind = one::<String>("SELECT blind_column FROM tradeguard_audit.encrypted_columns WHERE table_name = 't_ren_c'").unwrap();
        Spi::run(&format!(
            "ALTER TABLE t_ren_c RENAME TO t_ren2;
             ALTER TABLE t_ren2 RENAME COLUMN account TO acct;
             ALTER TABLE t_ren2 RENAME COLUMN id TO fill_id;
             ALTER TABLE t_ren2 RENAME COLUMN {blind} TO acct_lookup;
             CREATE SCHEMA t_ren_c_s;
             ALTER TABLE t_ren2 SET SCHEMA t_ren_c_s;
             INSERT INTO t_ren_c_s.t_ren2 (fill_id, acct) VALUES (2, 'acct-2');
             UPDATE t_ren_c_s.t_ren2 SET acct = 'acct-1b' WHERE fill_id = 1"
        ))
        .unwrap();
        assert_eq!(
            one::<String>(
                "SELECT schema_name || '.' || table_name || ':' || column_name || ':' || pk_column || ':' || blind_column
                   FROM tradeguard_audit.encrypted_columns WHERE key_name = 't_ren_c'"
            )
            .as_deref(),
            Some("t_ren_c_s.t_ren2:acct:fill_id:acct_lookup")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM t_ren_c_s.t_ren2 WHERE NOT tradeguard.is_ciphertext(acct)"), Some(0));
        // The view follows the table (renamed and moved with it) and its columns.
        assert_eq!(
            one::<String>("SELECT string_agg(acct, ',' ORDER BY fill_id) FROM t_ren_c_s.t_ren2_decrypted").as_deref(),
            Some("acct-1b,acct-2")
        );
        assert_eq!(one::<bool>("SELECT to_regclass('public.t_ren_c_decrypted') IS NULL"), Some(true));
        // The blind index column is still maintained under its new name.
        assert_eq!(
            one::<bool>("SELECT acct_lookup = tradeguard.blind_index('acct-2', 't_ren_c_bi') FROM t_ren_c_s.t_ren2 WHERE fill_id = 2"),
            Some(true)
        );
        // The schema renamed too.
        Spi::run("ALTER SCHEMA t_ren_c_s RENAME TO t_ren_c_s2; INSERT INTO t_ren_c_s2.t_ren2 (fill_id, acct) VALUES (3, 'acct-3')").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM t_ren_c_s2.t_ren2 WHERE NOT tradeguard.is_ciphertext(acct)"), Some(0));
        assert_eq!(one::<String>("SELECT schema_name FROM tradeguard_audit.encrypted_columns WHERE key_name = 't_ren_c'").as_deref(), Some("t_ren_c_s2"));
        // ... and a column added after the renames shows in the view (it is made again).
        Spi::run("ALTER TABLE t_ren_c_s2.t_ren2 ADD COLUMN venue text").unwrap();
        assert_eq!(one::<i64>("SELECT count(venue) + count(*) FROM t_ren_c_s2.t_ren2_decrypted"), Some(3));
        // A key column's type cannot change under its bound values.
        let err = crate::common::sql_error("ALTER TABLE t_ren_c_s2.t_ren2 ALTER COLUMN fill_id TYPE numeric(10,2)").unwrap_or_default();
        assert!(err.contains("cannot change the type of t_ren_c_s2.t_ren2.fill_id"), "{err}");
        // Nor the encrypted column's own (the trigger would write text into another type).
        let err = crate::common::sql_error("ALTER TABLE t_ren_c_s2.t_ren2 ALTER COLUMN acct TYPE jsonb USING NULL").unwrap_or_default();
        assert!(err.contains("cannot change the type of t_ren_c_s2.t_ren2.acct, an encrypted column"), "{err}");
        // Encrypted on a partition only: the partitioned table's key type cannot change either.
        Spi::run(
            "CREATE TABLE t_kp (id int, d date, v text, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
             CREATE TABLE t_kp_1 PARTITION OF t_kp DEFAULT;
             SELECT tradeguard.encrypt_column('t_kp_1', 'v', 't_ren_c')",
        )
        .unwrap();
        let err = crate::common::sql_error("ALTER TABLE t_kp ALTER COLUMN d TYPE timestamp").unwrap_or_default();
        assert!(err.contains("cannot change the type of public.t_kp.d"), "{err}");
        // DROP SCHEMA ... CASCADE takes the registrations of its tables with it, and of a
        // partition in another schema that went with its table.
        Spi::run(
            "CREATE TABLE t_ren_c_s2.t_kq (id int, d date, v text, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
             CREATE TABLE public.t_kq_1 PARTITION OF t_ren_c_s2.t_kq DEFAULT;
             SELECT tradeguard.encrypt_column('public.t_kq_1', 'v', 't_ren_c');
             DROP SCHEMA t_ren_c_s2 CASCADE",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM tradeguard_audit.encrypted_columns WHERE schema_name = 't_ren_c_s2' OR table_name = 't_kq_1'"),
            Some(0)
        );
    }

    #[pg_test(error = "tradeguard: public.t_orphan has tradeguard's encrypt trigger but no encrypted column is registered for it or a table it is a partition of; the row was not written")]
    fn encrypt_trigger_without_registration_fails_closed() {
        Spi::run(
            "CREATE TABLE t_orphan (id int PRIMARY KEY, v text);
             SET LOCAL tradeguard.restore_mode = on;  -- (tradeguard's trigger names are refused otherwise)
             CREATE TRIGGER tradeguard_zz_encrypt BEFORE INSERT OR UPDATE ON t_orphan
                FOR EACH ROW EXECUTE FUNCTION tradeguard.encrypt_trigger();
             SET LOCAL tradeguard.restore_mode = off",
        )
        .unwrap();
        Spi::run("INSERT INTO t_orphan VALUES (1, 'plaintext')").unwrap();
    }

    #[pg_test]
    fn keys_whose_text_depends_on_the_session_are_not_bound() {
        // A double precision key's text follows extra_float_digits (and an interval's
        // IntervalStyle): binding values to it would make them fail to decrypt for a reader
        // with other settings. (Dates and timestamps are bound by their stored value.)
        Spi::run("SELECT tradeguard.create_key('t_fkey')").unwrap();
        Spi::run("CREATE TABLE t_levels (px float8 PRIMARY KEY, v text)").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_levels', 'v', 't_fkey')").unwrap();
        assert_eq!(one::<bool>("SELECT bound_to_key IS NULL FROM tradeguard.encrypted_columns WHERE table_name = 't_levels'"), Some(true));
        Spi::run("SET LOCAL extra_float_digits = 0; INSERT INTO t_levels VALUES (0.1, 'level')").unwrap();
        Spi::run("SET LOCAL extra_float_digits = 3").unwrap();
        assert_eq!(one::<String>("SELECT v FROM t_levels_decrypted").as_deref(), Some("level"));
    }

    #[pg_test]
    fn changing_a_row_key_rebinds_its_values() {
        Spi::run("SELECT tradeguard.create_key('t_pkmove')").unwrap();
        Spi::run("CREATE TABLE t_moved (id int PRIMARY KEY, s text, n numeric)").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_moved', 's', 't_pkmove'); SELECT tradeguard.encrypt_column('t_moved', 'n', 't_pkmove')").unwrap();
        Spi::run("INSERT INTO t_moved VALUES (1, 'one', 1.5), (2, 'two', NULL); UPDATE t_moved SET id = id + 10").unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(id || ':' || s || ':' || coalesce(n::text, '-'), ',' ORDER BY id) FROM t_moved_decrypted").as_deref(),
            Some("11:one:1.5,12:two:-")
        );
    }

    #[pg_test]
    fn a_copied_value_is_not_rebound_by_a_key_change() {
        Spi::run("SELECT tradeguard.create_key('t_pkcopy')").unwrap();
        Spi::run("CREATE TABLE t_copied (id int PRIMARY KEY, s text)").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_copied', 's', 't_pkcopy')").unwrap();
        Spi::run("INSERT INTO t_copied VALUES (1, 'mine'), (2, 'yours')").unwrap();
        // Row 2 takes row 1's ciphertext while its key changes: the value is bound to row 1, not
        // to row 2's old key, so it is not re-bound: it is refused, as it belongs to no key of
        // this row.
        let err = crate::common::sql_error("UPDATE t_copied SET id = 3, s = (SELECT s FROM t_copied WHERE id = 1) WHERE id = 2").unwrap_or_default();
        assert!(err.contains("does not belong to this row"), "{err}");
        assert_eq!(one::<String>("SELECT string_agg(id || ':' || s, ',' ORDER BY id) FROM t_copied_decrypted").as_deref(), Some("1:mine,2:yours"));
    }

    #[pg_test]
    fn composite_keys_bind_values_to_their_rows() {
        Spi::run("SELECT tradeguard.create_key('t_ckey')").unwrap();
        Spi::run("CREATE TABLE t_legs (book text, leg int, secret text, PRIMARY KEY (book, leg))").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_legs', 'secret', 't_ckey')").unwrap();
        // Keys chosen so that a plain concatenation would be the same text for both rows.
        Spi::run("INSERT INTO t_legs VALUES ('a1', 2, 'first'), ('a', 12, 'second')").unwrap();
        assert_eq!(one::<String>("SELECT string_agg(secret, ',' ORDER BY book) FROM t_legs_decrypted").as_deref(), Some("second,first"));
        let err = crate::common::sql_error("UPDATE t_legs SET secret = (SELECT secret FROM t_legs WHERE book = 'a1') WHERE book = 'a'").unwrap_or_default();
        assert!(err.contains("does not belong to this row"), "{err}");
    }

    #[pg_test(error = "tradeguard: invalid argument: cannot encrypt public.t_par.c: the table uses table inheritance, and child tables do not inherit the encrypt trigger (their rows would stay in plaintext); use declarative partitioning")]
    fn inheritance_is_refused() {
        Spi::run("SELECT tradeguard.create_key('t_inh')").unwrap();
        Spi::run("CREATE TABLE t_par (id int PRIMARY KEY, c text); CREATE TABLE t_chi () INHERITS (t_par)").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_par', 'c', 't_inh')").unwrap();
    }

    #[pg_test(error = "tradeguard: invalid argument: cannot encrypt public.t_pkcol.id: it is part of the primary key its values are bound to")]
    fn primary_key_columns_are_refused() {
        Spi::run("SELECT tradeguard.create_key('t_pkcol')").unwrap();
        Spi::run("CREATE TABLE t_pkcol (id text PRIMARY KEY, v text)").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_pkcol', 'id', 't_pkcol')").unwrap();
    }

    #[pg_test(error = "tradeguard: invalid argument: public.t_again.c is already encrypted with key \"t_again\" without a blind index; encrypt_column cannot change its key or blind index (use rotate_key and reencrypt_column for a new key version)")]
    fn a_second_call_cannot_change_the_protection() {
        Spi::run("SELECT tradeguard.create_key('t_again'); SELECT tradeguard.create_key('t_again_bi', 'blind_index')").unwrap();
        Spi::run("CREATE TABLE t_again (id int PRIMARY KEY, c text)").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_again', 'c', 't_again')").unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.encrypt_column('t_again', 'c', 't_again')"), Some(0));
        Spi::run("SELECT tradeguard.encrypt_column('t_again', 'c', 't_again', 't_again_bi')").unwrap();
    }

    #[pg_test]
    fn values_are_checked_against_the_original_type() {
        Spi::run("SELECT tradeguard.create_key('t_types')").unwrap();
        Spi::run("CREATE TABLE t_typed (id int PRIMARY KEY, s varchar(5), n numeric(4,1), i int, j jsonb, t timestamptz)").unwrap();
        for c in ["s", "n", "i", "j", "t"] {
            Spi::run(&format!("SELECT tradeguard.encrypt_column('t_typed', '{c}', 't_types')")).unwrap();
        }
        Spi::run("INSERT INTO t_typed VALUES (1, 'abcde', 123.4, 2147483647, '{\"a\": 1}', '2026-12-05 10:00+00')").unwrap();
        // Each refused INSERT runs in a PL/pgSQL exception block (a subtransaction).
        let refused = crate::common::sql_error;
        for (col, value, ty) in [
            ("s", "'abcdef'", "character varying(5)"),
            ("n", "12345.6", "numeric(4,1)"),
            ("i", "3000000000", "integer"),
            ("j", "'SECRET not json'", "jsonb"),
            ("t", "'SECRET-TS-VALUE'", "timestamp with time zone"),
        ] {
            let msg = refused(&format!("INSERT INTO t_typed (id, {col}) VALUES (2, {value})"));
            assert_eq!(msg, Some(format!("tradeguard: invalid argument: column {col}: value is not a valid {ty}")), "{col}");
        }
        assert_eq!(
            one::<String>("SELECT concat_ws(',', s, n, i, j, t AT TIME ZONE 'UTC') FROM t_typed_decrypted").as_deref(),
            Some("abcde,123.4,2147483647,{\"a\": 1},2026-12-05 10:00:00")
        );
    }

    /// An encrypted column is text: typed values arrive through a cast to text in the session's
    /// settings. Where that text would not read back as the value (a zone abbreviation that
    /// PostgreSQL 15 reads as another zone's, a rounded float), the write is refused; where it
    /// does, the value is stored exactly, whatever the DateStyle.
    #[pg_test]
    fn typed_values_cast_to_text_are_stored_exactly_or_refused() {
        Spi::run("SELECT tradeguard.create_key('t_cast')").unwrap();
        Spi::run("CREATE TABLE t_cast (id int PRIMARY KEY, t timestamptz, f double precision, n numeric)").unwrap();
        for c in ["t", "f", "n"] {
            Spi::run(&format!("SELECT tradeguard.encrypt_column('t_cast', '{c}', 't_cast')")).unwrap();
        }
        let refused = crate::common::sql_error;
        let ts = "'2026-12-07 08:00:00+08'::timestamptz";
        // Asia/Shanghai prints "CST", which PostgreSQL 15 reads as US Central.
        Spi::run("SET LOCAL TimeZone = 'Asia/Shanghai'; SET LOCAL DateStyle = 'Postgres, MDY'").unwrap();
        assert_eq!(
            refused(&format!("INSERT INTO t_cast (id, t) VALUES (1, {ts})")),
            Some("tradeguard: invalid argument: a timestamptz value written to an encrypted column arrives as text, and in this session's DateStyle and TimeZone that text does not read back as the same instant (an ambiguous time zone abbreviation); set DateStyle to ISO".into())
        );
        // Europe/Dublin's summer "IST" is read as Israel's: in the hour after the change to
        // summer time, the instant misread lands in winter time and prints as itself, so only
        // the text the session printed tells (refused).
        Spi::run("SET LOCAL TimeZone = 'Europe/Dublin'").unwrap();
        assert!(refused("INSERT INTO t_cast (id, t) VALUES (1, '2024-03-31 01:30+00'::timestamptz)").is_some_and(|m| m.contains("does not read back as the same instant")));
        // A numeric offset reads exactly, whatever the DateStyle (no cast took place), and so do
        // Z and PostgreSQL's special inputs.
        Spi::run("INSERT INTO t_cast (id, t) VALUES (5, '2026-12-07 08:00:00+08'), (6, 'epoch'), (7, '2026-12-07 00:00:00Z')").unwrap();
        // Tokyo's "JST" reads back: accepted in the same DateStyle.
        Spi::run(&format!("SET LOCAL TimeZone = 'Asia/Tokyo'; INSERT INTO t_cast (id, t) VALUES (2, {ts})")).unwrap();
        Spi::run(&format!("SET LOCAL TimeZone = 'Asia/Shanghai'; SET LOCAL DateStyle = ISO; INSERT INTO t_cast (id, t) VALUES (3, {ts})")).unwrap();
        Spi::run("SET LOCAL extra_float_digits = -3").unwrap();
        assert_eq!(
            refused("INSERT INTO t_cast (id, f) VALUES (4, pi())"),
            Some("tradeguard: invalid argument: a double precision value written to an encrypted column arrives as text, which extra_float_digits = -3 rounds; set extra_float_digits to 1 (the default) or more".into())
        );
        Spi::run("SET LOCAL extra_float_digits = -14").unwrap();
        assert_eq!(
            refused("INSERT INTO t_cast (id, n) VALUES (4, pi())"),
            Some("tradeguard: invalid argument: a number written to an encrypted numeric column arrives as text, and a float's text is rounded at extra_float_digits = -14; set extra_float_digits to 0 or more".into())
        );
        Spi::run("SET LOCAL extra_float_digits = 1; INSERT INTO t_cast (id, f) VALUES (4, pi())").unwrap();
        assert_eq!(
            one::<String>(&format!("SELECT string_agg(id || ':' || (t = {ts}), ',' ORDER BY id) FROM t_cast_decrypted WHERE t IS NOT NULL AND id < 6")).as_deref(),
            Some("2:true,3:true,5:true")
        );
        assert_eq!(one::<bool>("SELECT f = pi() FROM t_cast_decrypted WHERE id = 4"), Some(true));
        assert_eq!(
            one::<bool>("SELECT bool_and(t = CASE id WHEN 6 THEN 'epoch'::timestamptz ELSE '2026-12-07 00:00:00+00' END) FROM t_cast_decrypted WHERE id IN (6, 7)"),
            Some(true)
        );
        // Type modifiers wherever they stand: timestamp(3) with time zone is a timestamptz, and
        // an array of a supported type is refused (not taken for its element type).
        Spi::run("CREATE TABLE t_cast_mod (id int PRIMARY KEY, t timestamp(3) with time zone, v varchar(10)[])").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_cast_mod', 't', 't_cast'); SET LOCAL DateStyle = ISO; INSERT INTO t_cast_mod (id, t) VALUES (1, '2026-12-07 08:00:00.1234+00')").unwrap();
        assert_eq!(one::<String>("SELECT t::text FROM t_cast_mod_decrypted").as_deref(), Some("2026-12-07 16:00:00.123+08"));
        let err = crate::common::sql_error("SELECT tradeguard.encrypt_column('t_cast_mod', 'v', 't_cast')").unwrap_or_default();
        assert!(err.contains("has type character varying(10)[]; encrypt_column supports"), "{err}");
    }

    /// What compares the column's values (a unique index, a CHECK, a foreign key) would compare
    /// ciphertext: refused, naming it. A value that already looks like ciphertext but does not
    /// open for its row (copied from another table) stops the first conversion, which would
    /// otherwise keep it.
    #[pg_test]
    fn conversion_refuses_comparisons_and_foreign_ciphertext() {
        Spi::run(
            "SELECT tradeguard.create_key('t_cmp');
             CREATE TABLE t_cmp (id int PRIMARY KEY, email text, ssn text CHECK (length(ssn) = 11), ref text);
             CREATE UNIQUE INDEX t_cmp_email ON t_cmp (lower(email));
             CREATE TABLE t_cmp_ref (code text PRIMARY KEY); ALTER TABLE t_cmp ADD CONSTRAINT t_cmp_fk FOREIGN KEY (ref) REFERENCES t_cmp_ref",
        )
        .unwrap();
        let refused = |col: &str, what: &str| {
            Some(format!("tradeguard: invalid argument: cannot encrypt public.t_cmp.{col}: {what} would compare its ciphertext, which differs for every value (random nonces); drop it first (for unique equality: a blind index, blind_index_key, with a unique index on it)"))
        };
        assert_eq!(crate::common::sql_error("SELECT tradeguard.encrypt_column('t_cmp', 'email', 't_cmp')"), refused("email", "index public.t_cmp_email"));
        assert_eq!(crate::common::sql_error("SELECT tradeguard.encrypt_column('t_cmp', 'ssn', 't_cmp')"), refused("ssn", "constraint t_cmp_ssn_check"));
        assert_eq!(crate::common::sql_error("SELECT tradeguard.encrypt_column('t_cmp', 'ref', 't_cmp')"), refused("ref", "constraint t_cmp_fk"));
        // A UNIQUE constraint, a row-level security policy, a CHECK over the whole row.
        Spi::run(
            "CREATE TABLE t_cmp2 (id int PRIMARY KEY, a text UNIQUE, b text, c text, CONSTRAINT t_cmp2_row CHECK (length(t_cmp2::text) < 500));
             CREATE POLICY t_cmp2_tier ON t_cmp2 USING (b <> 'vip')",
        )
        .unwrap();
        let refused2 = |col: &str, what: &str| refused(col, what).map(|m| m.replace("public.t_cmp.", "public.t_cmp2."));
        assert_eq!(crate::common::sql_error("SELECT tradeguard.encrypt_column('t_cmp2', 'a', 't_cmp')"), refused2("a", "constraint t_cmp2_a_key, constraint t_cmp2_row"));
        assert_eq!(crate::common::sql_error("SELECT tradeguard.encrypt_column('t_cmp2', 'b', 't_cmp')"), refused2("b", "constraint t_cmp2_row, policy t_cmp2_tier"));
        // Attaching a table with such an index to an encrypted partitioned table is refused too.
        Spi::run(
            "CREATE TABLE t_cmp_pt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
             SELECT tradeguard.encrypt_column('t_cmp_pt', 'v', 't_cmp');
             CREATE TABLE t_cmp_p1 (id int PRIMARY KEY, v text UNIQUE)",
        )
        .unwrap();
        let attach = crate::common::sql_error("ALTER TABLE t_cmp_pt ATTACH PARTITION t_cmp_p1 FOR VALUES FROM (0) TO (10)").unwrap_or_default();
        // ... and so is a partition created with a CHECK on the column.
        let created = crate::common::sql_error("CREATE TABLE t_cmp_p2 PARTITION OF t_cmp_pt (CHECK (v <> 'vip')) FOR VALUES FROM (10) TO (20)").unwrap_or_default();
        assert!(created.contains("would compare the ciphertext of encrypted column v"), "{created}");
        assert!(attach.contains("cannot attach public.t_cmp_p1 to a table whose column v is encrypted: constraint t_cmp_p1_v_key would compare"), "{attach}");
        // A ciphertext of another table's row, copied in before the conversion.
        Spi::run(
            "CREATE TABLE t_cmp_src (id int PRIMARY KEY, v text); SELECT tradeguard.encrypt_column('t_cmp_src', 'v', 't_cmp');
             INSERT INTO t_cmp_src VALUES (1, 'secret');
             CREATE TABLE t_cmp_dst (id int PRIMARY KEY, v text); INSERT INTO t_cmp_dst VALUES (1, 'plain');
             INSERT INTO t_cmp_dst SELECT 2, v FROM t_cmp_src",
        )
        .unwrap();
        let msg = crate::common::sql_error("SELECT tradeguard.encrypt_column('t_cmp_dst', 'v', 't_cmp')").unwrap_or_default();
        assert!(msg.starts_with("tradeguard: invalid argument: cannot encrypt public.t_cmp_dst.v: a value it holds is already tradeguard ciphertext but does not open for its row ("), "{msg}");
        assert_eq!(one::<String>("SELECT v FROM t_cmp_dst WHERE id = 1").as_deref(), Some("plain"));
        // Without the copied value, the conversion runs.
        Spi::run("DELETE FROM t_cmp_dst WHERE id = 2").unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.encrypt_column('t_cmp_dst', 'v', 't_cmp')"), Some(1));
        // Once encrypted, what would compare the ciphertext is refused when added later too; a
        // plain index is not.
        for (sql, what) in [
            ("CREATE UNIQUE INDEX t_cmp_dst_v ON t_cmp_dst (v)", "index public.t_cmp_dst_v"),
            ("ALTER TABLE t_cmp_dst ADD CONSTRAINT t_cmp_dst_nonempty CHECK (v <> '')", "constraint t_cmp_dst_nonempty"),
            ("CREATE POLICY t_cmp_dst_p ON t_cmp_dst USING (v <> 'x')", "policy t_cmp_dst_p"),
        ] {
            assert_eq!(
                crate::common::sql_error(sql),
                Some(format!("tradeguard: invalid argument: {what} on public.t_cmp_dst would compare the ciphertext of encrypted column v, which differs for every value (random nonces); for unique equality, put a unique index on its blind index column")),
                "{sql}"
            );
        }
        Spi::run("CREATE INDEX t_cmp_dst_plain ON t_cmp_dst (v)").unwrap();
    }

    /// A header naming a blind-index key gets the purpose error (55000), not a failed
    /// authentication under an HMAC key used as an AES key.
    #[pg_test]
    fn decrypting_under_a_blind_index_key_is_a_purpose_error() {
        Spi::run("SELECT tradeguard.create_key('t_pe'); SELECT tradeguard.create_key('t_pe_bidx', 'blind_index')").unwrap();
        let forged = "SELECT tradeguard.decrypt_text(overlay(tradeguard.encrypt('x'::text, 't_pe') PLACING int4send(k.key_id) FROM 7 FOR 4))
                        FROM tradeguard_audit.keys k WHERE k.name = 't_pe_bidx'";
        assert_eq!(
            crate::common::sql_error(forged),
            Some("tradeguard: key \"t_pe_bidx\" has purpose blind_index, this operation needs a encrypt key".into())
        );
    }

    /// encrypt_column makes `<table>_decrypted`; a relation of someone else's under that name
    /// is not dropped for it.
    #[pg_test]
    fn another_roles_view_under_the_decrypted_name_is_kept() {
        Spi::run(
            "SELECT tradeguard.create_key('t_vn');
             CREATE ROLE t_vn_victim; GRANT CREATE ON SCHEMA public TO t_vn_victim;
             CREATE TABLE t_vn (id int PRIMARY KEY, c text);
             SET ROLE t_vn_victim; CREATE VIEW t_vn_decrypted AS SELECT 1 AS mine; RESET ROLE",
        )
        .unwrap();
        assert_eq!(
            crate::common::sql_error("SELECT tradeguard.encrypt_column('t_vn', 'c', 't_vn')"),
            Some("tradeguard: invalid argument: cannot encrypt public.t_vn.c: the relation public.t_vn_decrypted is in the place of the decrypting view it makes, and is not tradeguard's: rename or drop it first".into())
        );
        assert_eq!(one::<i32>("SELECT mine FROM t_vn_decrypted"), Some(1));
        // A view of the superuser's (the extension's owner here) without tradeguard's comment is
        // not taken for tradeguard's either.
        Spi::run("DROP VIEW t_vn_decrypted; CREATE VIEW t_vn_decrypted AS SELECT 2 AS mine").unwrap();
        assert!(crate::common::sql_error("SELECT tradeguard.encrypt_column('t_vn', 'c', 't_vn')").is_some());
        assert_eq!(one::<i32>("SELECT mine FROM t_vn_decrypted"), Some(2));
        Spi::run("DROP VIEW t_vn_decrypted").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_vn', 'c', 't_vn'); SELECT tradeguard.encrypt_column('t_vn', 'c', 't_vn')").unwrap();
    }

    #[pg_test]
    fn conversion_counts_rows_of_every_partition_once() {
        Spi::run("SELECT tradeguard.create_key('t_ctid')").unwrap();
        Spi::run(
            "CREATE TABLE t_oc (id int PRIMARY KEY, c text) PARTITION BY RANGE (id);
             CREATE TABLE t_oc1 PARTITION OF t_oc FOR VALUES FROM (0) TO (100);
             CREATE TABLE t_oc2 (id int PRIMARY KEY, c text);
             INSERT INTO t_oc VALUES (1, 'one'); INSERT INTO t_oc2 VALUES (101, 'two')",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.encrypt_column('t_oc', 'c', 't_ctid')"), Some(1));
        // Both first rows sit at ctid (0,1) of their partition. Attaching converts the new
        // partition's plaintext at once; nothing is left for a second call.
        Spi::run("ALTER TABLE t_oc ATTACH PARTITION t_oc2 FOR VALUES FROM (100) TO (200)").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM t_oc WHERE NOT tradeguard.is_ciphertext(c)"), Some(0));
        assert_eq!(one::<i64>("SELECT tradeguard.encrypt_column('t_oc', 'c', 't_ctid')"), Some(0));
        // Re-encryption through the parent, one row per batch: each row once.
        Spi::run("SELECT tradeguard.rotate_key('t_ctid')").unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.reencrypt_column('t_oc', 'c', 1)"), Some(2));
        assert_eq!(one::<String>("SELECT string_agg(c, ',' ORDER BY id) FROM t_oc_decrypted").as_deref(), Some("one,two"));
    }

    #[pg_test]
    fn upsert_with_excluded_values_binds_them_to_the_updated_row() {
        Spi::run("SELECT tradeguard.create_key('t_upsert')").unwrap();
        Spi::run("CREATE TABLE t_up (id serial PRIMARY KEY, email text UNIQUE, secret text)").unwrap();
        Spi::run("SELECT tradeguard.encrypt_column('t_up', 'secret', 't_upsert')").unwrap();
        Spi::run(
            "INSERT INTO t_up (email, secret) VALUES ('a@x', 'first');
             INSERT INTO t_up (email, secret) VALUES ('a@x', 'second') ON CONFLICT (email) DO UPDATE SET secret = EXCLUDED.secret;
             INSERT INTO t_up (email, secret) VALUES ('a@x', 'third'), ('b@x', 'new')
                 ON CONFLICT (email) DO UPDATE SET secret = EXCLUDED.secret",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(email || '=' || secret, ',' ORDER BY email) FROM t_up_decrypted").as_deref(),
            Some("a@x=third,b@x=new")
        );
    }

    #[pg_test]
    fn the_decrypting_view_keeps_the_tables_privileges_and_policies() {
        Spi::run("SELECT tradeguard.create_key('t_rls')").unwrap();
        Spi::run(
            "CREATE TABLE t_desk (id int PRIMARY KEY, desk text, note text);
             SELECT tradeguard.encrypt_column('t_desk', 'note', 't_rls');
             INSERT INTO t_desk VALUES (1, 'fx', 'fx note'), (2, 'rates', 'rates note');
             ALTER TABLE t_desk ENABLE ROW LEVEL SECURITY;
             CREATE POLICY fx_only ON t_desk FOR SELECT USING (desk = 'fx');
             CREATE ROLE t_fx_reader; GRANT tradeguard_decryptor TO t_fx_reader;
             GRANT SELECT ON t_desk TO t_fx_reader;
             CREATE ROLE t_no_select; GRANT tradeguard_decryptor TO t_no_select",
        )
        .unwrap();
        Spi::run("SET ROLE t_fx_reader").unwrap();
        assert_eq!(one::<String>("SELECT string_agg(note, ',') FROM t_desk_decrypted").as_deref(), Some("fx note"));
        Spi::run("RESET ROLE; SET ROLE t_no_select").unwrap();
        assert_eq!(
            crate::common::sql_error("SELECT count(*) FROM t_desk_decrypted").as_deref(),
            Some("permission denied for table t_desk")
        );
    }

    #[pg_test]
    fn conversion_runs_the_tables_code_as_its_owner() {
        // The owner of a table puts a trigger on it; an admin encrypts a column of it: the
        // trigger runs as the table's owner, not as the extension's (a superuser).
        Spi::run(
            "CREATE ROLE t_tab_owner; GRANT CREATE ON SCHEMA public TO t_tab_owner;
             SELECT tradeguard.create_key('t_own'); SELECT tradeguard.create_key('t_own_bidx', 'blind_index');
             SET ROLE t_tab_owner;
             CREATE TABLE t_who (who text, su bool);
             CREATE FUNCTION t_note() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO t_who SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user; RETURN NEW; END $$;
             CREATE TABLE t_acct_conv (id int PRIMARY KEY, secret text);
             INSERT INTO t_acct_conv VALUES (1, 'sk_1050'), (2, 'sk_2025');
             CREATE TRIGGER a_note BEFORE UPDATE ON t_acct_conv FOR EACH ROW EXECUTE FUNCTION t_note();
             CREATE FUNCTION t_steer() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN PERFORM set_config('search_path', 'public, pg_catalog', false); RETURN NEW; END $$;
             CREATE TRIGGER a_steer BEFORE UPDATE ON t_acct_conv FOR EACH ROW EXECUTE FUNCTION t_steer();
             RESET ROLE;
             SET search_path = pg_catalog, public;
             ANALYZE t_acct_conv;
             SELECT tradeguard.encrypt_column('t_acct_conv', 'secret', 't_own')",
        )
        .unwrap();
        // The statistics no longer show the plaintext values.
        assert_eq!(
            one::<bool>("SELECT bool_or(coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '') LIKE '%sk_1050%') FROM pg_stats WHERE tablename = 't_acct_conv' AND attname = 'secret'"),
            Some(false)
        );
        assert_eq!(one::<String>("SELECT string_agg(DISTINCT who || ' ' || su, ', ') FROM t_who").as_deref(), Some("t_tab_owner false"));
        assert_eq!(one::<i64>("SELECT count(*) FROM t_acct_conv WHERE tradeguard.is_ciphertext(secret)"), Some(2));
        // What the owner's code set does not reach the caller's session.
        assert_eq!(one::<String>("SELECT current_setting('search_path')").as_deref(), Some("pg_catalog, public"));
        Spi::run("RESET search_path").unwrap();
        // Re-encryption after a rotation: also as the owner, values moved to the new version,
        // and they still decrypt to what they were.
        Spi::run("SELECT tradeguard.rotate_key('t_own')").unwrap();
        assert_eq!(one::<i64>("SELECT tradeguard.reencrypt_column('t_acct_conv', 'secret')"), Some(2));
        assert_eq!(one::<String>("SELECT string_agg(DISTINCT who || ' ' || su, ', ') FROM t_who").as_deref(), Some("t_tab_owner false"));
        assert_eq!(one::<i64>("SELECT count(*) FROM t_acct_conv WHERE tradeguard.ciphertext_key_version(secret) = 2"), Some(2));
        assert_eq!(one::<String>("SELECT string_agg(secret::text, ',' ORDER BY id) FROM t_acct_conv_decrypted").as_deref(), Some("sk_1050,sk_2025"));
        // A BEFORE row trigger that would fire after the encrypt trigger (name order) is refused;
        // one that fires before it is not.
        let err = crate::common::sql_error("CREATE TRIGGER zz_late BEFORE INSERT ON t_acct_conv FOR EACH ROW EXECUTE FUNCTION t_note()").unwrap_or_default();
        assert!(err.contains("BEFORE row triggers of public.t_acct_conv that fire after tradeguard_zz_encrypt"), "{err}");
        Spi::run("CREATE TRIGGER b_early BEFORE INSERT ON t_acct_conv FOR EACH ROW EXECUTE FUNCTION t_note()").unwrap();
        // ... nor renamed to fire after it.
        let err = crate::common::sql_error("ALTER TRIGGER b_early ON t_acct_conv RENAME TO zz_renamed").unwrap_or_default();
        assert!(err.contains("fire after tradeguard_zz_encrypt"), "{err}");
        // Nor can a column be encrypted on a table that already has one.
        Spi::run(
            "CREATE TABLE t_late (id int PRIMARY KEY, v text);
             CREATE TRIGGER zz_late BEFORE INSERT ON t_late FOR EACH ROW EXECUTE FUNCTION t_note()",
        )
        .unwrap();
        let err = crate::common::sql_error("SELECT tradeguard.encrypt_column('t_late', 'v', 't_own')").unwrap_or_default();
        assert!(err.contains("BEFORE row triggers would fire after tradeguard_zz_encrypt (zz_late)"), "{err}");
        // A blind-index key is not rotated (stored indexes would stop matching).
        let err = crate::common::sql_error("SELECT tradeguard.rotate_key('t_own_bidx')").unwrap_or_default();
        assert!(err.contains("is a blind_index key"), "{err}");
    }

    #[pg_test]
    fn a_table_owner_cannot_reach_into_the_conversion_or_around_the_trigger() {
        Spi::run(
            "CREATE ROLE t_app2; GRANT CREATE ON SCHEMA public TO t_app2;
             SELECT tradeguard.create_key('t_pp_own');
             SET ROLE t_app2;
             CREATE TABLE t_calls (who text);
             -- shadows pg_catalog.unnest(anyarray) for smallint[] in the caller's search_path
             CREATE FUNCTION public.unnest(a smallint[]) RETURNS SETOF smallint LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO public.t_calls VALUES (current_user); RETURN QUERY SELECT x FROM pg_catalog.unnest(a::anyarray) x; END $$;
             CREATE TABLE t_fills (id int PRIMARY KEY, acct text);
             INSERT INTO t_fills VALUES (1, 'acct-1');
             RESET ROLE;
             SELECT tradeguard.encrypt_column('t_fills', 'acct', 't_pp_own')",
        )
        .unwrap();
        // tradeguard's functions run with search_path = pg_catalog, pg_temp: the owner's
        // function was never called with the admin's rights.
        assert_eq!(one::<i64>("SELECT count(*) FROM t_calls"), Some(0));
        // A partitioned table of the owner's, with a BEFORE row trigger that would fire after
        // the encrypt trigger once cloned onto the encrypted table: the ATTACH is refused, and
        // so is such a trigger on a parent of an encrypted partition.
        Spi::run(
            "SET ROLE t_app2;
             CREATE TABLE t_pp_own (id int, acct text) PARTITION BY RANGE (id);
             CREATE FUNCTION t_leak() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.acct := 'PLAIN'; RETURN NEW; END $$;
             CREATE TRIGGER zzz BEFORE INSERT OR UPDATE ON t_pp_own FOR EACH ROW EXECUTE FUNCTION t_leak()",
        )
        .unwrap();
        let err = crate::common::sql_error("ALTER TABLE t_pp_own ATTACH PARTITION t_fills FOR VALUES FROM (0) TO (1000)").unwrap_or_default();
        assert!(err.contains("fire after tradeguard_zz_encrypt on public.t_fills once attached"), "{err}");
        // (Attaching clones tradeguard's triggers: only a superuser may.)
        Spi::run("RESET ROLE; DROP TRIGGER zzz ON t_pp_own; ALTER TABLE t_pp_own ATTACH PARTITION t_fills FOR VALUES FROM (0) TO (1000); SET ROLE t_app2").unwrap();
        let err = crate::common::sql_error("CREATE TRIGGER zzz BEFORE INSERT OR UPDATE ON t_pp_own FOR EACH ROW EXECUTE FUNCTION t_leak()").unwrap_or_default();
        assert!(err.contains("fire after tradeguard_zz_encrypt"), "{err}");
        Spi::run("RESET ROLE; INSERT INTO t_fills VALUES (5, 'acct-5')").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM t_fills WHERE NOT tradeguard.is_ciphertext(acct)"), Some(0));
    }

    #[pg_test]
    fn a_row_may_get_back_its_own_older_ciphertext_but_nothing_else() {
        Spi::run(
            "SELECT tradeguard.create_key('t_wb'); SELECT tradeguard.create_key('t_wb_bidx', 'blind_index');
             CREATE TABLE t_wb (id int PRIMARY KEY, email text);
             SELECT tradeguard.encrypt_column('t_wb', 'email', 't_wb', 't_wb_bidx');
             INSERT INTO t_wb VALUES (1, 'old@example.jp');
             CREATE TEMP TABLE t_wb_old AS SELECT email FROM t_wb WHERE id = 1;
             UPDATE t_wb SET email = 'new@example.jp' WHERE id = 1;
             UPDATE t_wb SET email = (SELECT email FROM t_wb_old) WHERE id = 1",
        )
        .unwrap();
        // The older value is back, sealed again, and its blind index with it.
        assert_eq!(one::<String>("SELECT email FROM t_wb_decrypted WHERE id = 1").as_deref(), Some("old@example.jp"));
        assert_eq!(one::<i64>("SELECT count(*) FROM t_wb WHERE email_bidx = tradeguard.blind_index('old@example.jp', 't_wb_bidx')"), Some(1));
        assert_eq!(one::<bool>("SELECT email <> (SELECT email FROM t_wb_old) FROM t_wb WHERE id = 1"), Some(true));
        // A ciphertext made for this row's context but of another type is refused.
        let env = one::<Vec<u8>>(
            "SELECT tradeguard.encrypt(42::numeric, 't_wb',
                    'tg:' || (SELECT column_id FROM tradeguard_audit.encrypted_columns WHERE table_name = 't_wb') || ':1')",
        )
        .expect("envelope");
        let armored = crate::crypto::envelope::armor(&env).expect("armor");
        let err = crate::common::sql_error(&format!("UPDATE t_wb SET email = '{armored}' WHERE id = 1")).unwrap_or_default();
        assert!(err.contains("does not belong to this row"), "{err}");
        assert_eq!(one::<String>("SELECT email FROM t_wb_decrypted WHERE id = 1").as_deref(), Some("old@example.jp"));
    }

    /// ALTER TABLE of an encrypted table: its decrypted view is made again around the change
    /// (PostgreSQL would refuse a type change or dropped column under it, and would not show an
    /// added or renamed one), unless objects of the user's depend on it.
    #[pg_test]
    fn the_decrypted_view_follows_alter_table() {
        Spi::run(
            "SELECT tradeguard.create_key('t_av');
             CREATE TABLE t_av (id int PRIMARY KEY, qty int, note text, secret text);
             INSERT INTO t_av VALUES (1, 5, 'n', 's');
             SELECT tradeguard.encrypt_column('t_av', 'secret', 't_av');
             ALTER TABLE t_av ALTER COLUMN qty TYPE bigint;
             ALTER TABLE t_av ADD COLUMN venue text;
             ALTER TABLE t_av RENAME COLUMN note TO memo;
             ALTER TABLE t_av DROP COLUMN venue;
             ALTER TABLE t_av ADD COLUMN desk text",
        )
        .unwrap();
        let columns = one::<String>(
            "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
               FROM pg_attribute WHERE attrelid = 't_av_decrypted'::regclass AND attnum > 0",
        );
        assert_eq!(columns.as_deref(), Some("id:integer, qty:bigint, memo:text, secret:text, desk:text"));
        assert_eq!(one::<String>("SELECT secret FROM t_av_decrypted WHERE id = 1").as_deref(), Some("s"));
        assert_eq!(one::<bool>("SELECT has_table_privilege('tradeguard_decryptor', 't_av_decrypted', 'SELECT')"), Some(true));
        // A view of the user's on it: left alone, and PostgreSQL refuses as it would.
        Spi::run("CREATE VIEW t_av_user AS SELECT id FROM t_av_decrypted").unwrap();
        let err = crate::common::sql_error("ALTER TABLE t_av ALTER COLUMN qty TYPE numeric").unwrap_or_default();
        assert!(err.contains("cannot alter type of a column used by a view or rule"), "{err}");
    }

    /// Dropping an encrypted column ends its encryption: refused unless break-glass; then its
    /// registration goes with it, writes go on, and with no encrypted column left the encrypt
    /// trigger goes too. A blind-index column may be dropped.
    #[pg_test]
    fn dropped_encrypted_columns_take_their_registrations() {
        Spi::run(
            "SELECT tradeguard.create_key('t_dc'); SELECT tradeguard.create_key('t_dc_bi', 'blind_index');
             CREATE TABLE t_dc (id int PRIMARY KEY, a text, b text);
             SELECT tradeguard.encrypt_column('t_dc', 'a', 't_dc', 't_dc_bi');
             SELECT tradeguard.encrypt_column('t_dc', 'b', 't_dc');
             ALTER TABLE t_dc DROP COLUMN a_bidx;
             INSERT INTO t_dc VALUES (1, 'x', 'y')",
        )
        .unwrap();
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_dc DROP COLUMN a, ADD COLUMN a text DEFAULT 'plain'"),
            Some(crate::common::refusal("the encrypted column public.t_dc.a (dropping it ends its encryption)"))
        );
        Spi::run(
            "SELECT tradeguard.break_glass('test: retiring an encrypted column');
             ALTER TABLE t_dc DROP COLUMN a;
             INSERT INTO t_dc VALUES (2, 'y2')",
        )
        .unwrap();
        assert_eq!(one::<String>("SELECT b FROM t_dc_decrypted WHERE id = 2").as_deref(), Some("y2"));
        assert_eq!(one::<i64>("SELECT count(*) FROM tradeguard_audit.encrypted_columns WHERE table_name = 't_dc'"), Some(1));
        Spi::run("ALTER TABLE t_dc DROP COLUMN b; INSERT INTO t_dc VALUES (3)").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 't_dc'::regclass AND tgname = 'tradeguard_zz_encrypt'"), Some(0));
    }

    /// Found by an attack review: ways a row could carry off another row's value, lose the
    /// key its value is bound to, or hold a value its view cannot show.
    /// A key change in any backend drops every backend's table configurations: the UPDATE of
    /// an upsert must still find the value its INSERT sealed (a key created between the two, by a
    /// trigger that fires first, stands for another session's create_key or rotate_key; this
    /// failed once in CI when another test created a key at that moment).
    #[pg_test]
    fn upsert_survives_a_key_change_between_its_insert_and_update() {
        Spi::run(
            "SELECT tradeguard.create_key('t_ups');
             CREATE TABLE t_ups (id int PRIMARY KEY, uname text UNIQUE NOT NULL, api_key text);
             INSERT INTO t_ups VALUES (1, 'trader', 'old');
             SELECT tradeguard.encrypt_column('t_ups', 'api_key', 't_ups');
             CREATE FUNCTION t_ups_bump() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN PERFORM tradeguard.create_key('t_ups_' || NEW.id || '_' || md5(random()::text)); RETURN NEW; END $$;
             CREATE TRIGGER a_bump BEFORE UPDATE ON t_ups FOR EACH ROW EXECUTE FUNCTION t_ups_bump();
             INSERT INTO t_ups VALUES (2, 'trader', 'new') ON CONFLICT (uname) DO UPDATE SET api_key = EXCLUDED.api_key",
        )
        .unwrap();
        assert_eq!(one::<String>("SELECT api_key FROM t_ups_decrypted WHERE id = 1").as_deref(), Some("new"));
    }

    #[pg_test]
    fn row_binding_holds_against_upserts_deferred_and_dropped_keys() {
        let refused = crate::common::refusal;
        Spi::run(
            "SELECT tradeguard.create_key('t_rb');
             CREATE TABLE t_users (id int PRIMARY KEY, uname text UNIQUE NOT NULL, api_key text);
             INSERT INTO t_users VALUES (1, 'attacker', 'own'), (2, 'victim', 'VICTIM-SECRET');
             SELECT tradeguard.encrypt_column('t_users', 'api_key', 't_rb')",
        )
        .unwrap();
        // An upsert proposing the victim's key and ciphertext, resolved on another unique column.
        let err = crate::common::sql_error(
            "INSERT INTO t_users (id, uname, api_key) SELECT 2, 'attacker', api_key FROM t_users WHERE id = 2
               ON CONFLICT (uname) DO UPDATE SET api_key = EXCLUDED.api_key",
        )
        .unwrap_or_default();
        assert!(err.contains("does not belong to this row"), "{err}");
        // The plaintext upsert still works (the proposed row's fresh ciphertext follows).
        Spi::run("INSERT INTO t_users VALUES (3, 'attacker', 'new-own') ON CONFLICT (uname) DO UPDATE SET api_key = EXCLUDED.api_key").unwrap();
        assert_eq!(one::<String>("SELECT api_key FROM t_users_decrypted WHERE id = 1").as_deref(), Some("new-own"));
        assert_eq!(one::<String>("SELECT api_key FROM t_users_decrypted WHERE id = 2").as_deref(), Some("VICTIM-SECRET"));

        // A deferrable primary key lets a row hold another's key within a transaction.
        Spi::run("CREATE TABLE t_def (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text)").unwrap();
        let err = crate::common::sql_error("SELECT tradeguard.encrypt_column('t_def', 'v', 't_rb')").unwrap_or_default();
        assert!(err.contains("its primary key is DEFERRABLE"), "{err}");
        // A blind index written by hand is refused (with the value kept, and with a key change).
        Spi::run(
            "SELECT tradeguard.create_key('t_bh', 'blind_index');
             CREATE TABLE t_bh (id int PRIMARY KEY, e text); INSERT INTO t_bh VALUES (1, 'a@x.jp'), (2, 'b@x.jp');
             SELECT tradeguard.encrypt_column('t_bh', 'e', 't_rb', 't_bh')",
        )
        .unwrap();
        let bidx = one::<String>("SELECT column_name FROM tradeguard_audit.encrypted_columns WHERE table_name = 't_bh' AND column_name = 'e'")
            .and_then(|_| one::<String>("SELECT blind_column FROM tradeguard_audit.encrypted_columns WHERE table_name = 't_bh' AND column_name = 'e'"))
            .expect("blind column");
        for sql in [
            format!("UPDATE t_bh SET {bidx} = (SELECT {bidx} FROM t_bh WHERE id = 2) WHERE id = 1"),
            format!("UPDATE t_bh SET id = 3, {bidx} = (SELECT {bidx} FROM t_bh WHERE id = 2) WHERE id = 1"),
        ] {
            let err = crate::common::sql_error(&sql).unwrap_or_default();
            assert!(err.contains("the blind index is maintained by tradeguard"), "{sql}: {err}");
        }
        Spi::run("UPDATE t_bh SET id = 3 WHERE id = 1; UPDATE t_bh SET e = 'c@x.jp' WHERE id = 2").unwrap();
        assert_eq!(one::<i64>(&format!("SELECT count(*) FROM t_bh WHERE {bidx} = tradeguard.blind_index('a@x.jp', 't_bh') AND id = 3")), Some(1));

        // A rotation rolled back with its subtransaction leaves no version in this backend's
        // cache to seal with.
        Spi::run(
            "CREATE TABLE t_sp (id int PRIMARY KEY, v text); SELECT tradeguard.create_key('t_sp'); SELECT tradeguard.encrypt_column('t_sp', 'v', 't_sp');
             DO $$ BEGIN PERFORM tradeguard.rotate_key('t_sp'); INSERT INTO t_sp VALUES (1, 'in the savepoint'); RAISE EXCEPTION 'roll back';
                  EXCEPTION WHEN raise_exception THEN NULL; END $$;
             INSERT INTO t_sp VALUES (2, 'after it')",
        )
        .unwrap();
        assert_eq!(one::<String>("SELECT v FROM t_sp_decrypted WHERE id = 2").as_deref(), Some("after it"));
        assert_eq!(one::<i32>("SELECT tradeguard.ciphertext_key_version(v) FROM t_sp WHERE id = 2"), Some(1));

        // A generated column is refused up front.
        Spi::run("CREATE TABLE t_gen (id int PRIMARY KEY, a text, g text GENERATED ALWAYS AS (upper(a)) STORED)").unwrap();
        assert_eq!(
            crate::common::sql_error("SELECT tradeguard.encrypt_column('t_gen', 'g', 't_rb')").as_deref(),
            Some("tradeguard: invalid argument: column \"g\" is a generated column; encrypt the columns it is computed from instead")
        );
        // NULL arguments get tradeguard's error, not pgrx's.
        for args in ["NULL, 'v', 't_rb'", "'t_def', NULL, 't_rb'", "'t_def', 'v', NULL", "'t_def', 'v', 't_rb', NULL, NULL"] {
            assert_eq!(
                crate::common::sql_error(&format!("SELECT tradeguard.encrypt_column({args})")).as_deref(),
                Some("tradeguard: invalid argument: encrypt_column: tbl, col, key_name and batch_size must not be NULL"),
                "{args}"
            );
        }

        // Dropping the key the values are bound to (or its column) is refused.
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_users DROP CONSTRAINT t_users_pkey"),
            Some(refused("the primary key of public.t_users (id), which its encrypted values are bound to"))
        );
        assert_eq!(
            crate::common::sql_error("ALTER TABLE t_users DROP COLUMN id"),
            Some(refused("the primary key of public.t_users (id), which its encrypted values are bound to"))
        );
        // Dropping another column is not.
        Spi::run("ALTER TABLE t_users ADD COLUMN extra int; ALTER TABLE t_users DROP COLUMN extra").unwrap();

        // A key change while the value's key version no longer decrypts (retired with force: the value
        // is still there).
        Spi::run(
            "CREATE TABLE t_ret (id int PRIMARY KEY, v text); INSERT INTO t_ret VALUES (1, 'one');
             SELECT tradeguard.create_key('t_rb2'); SELECT tradeguard.encrypt_column('t_ret', 'v', 't_rb2');
             SELECT tradeguard.rotate_key('t_rb2'); SELECT tradeguard.retire_key('t_rb2', 1, true)",
        )
        .unwrap();
        let err = crate::common::sql_error("UPDATE t_ret SET id = 100 WHERE id = 1").unwrap_or_default();
        assert!(err.contains("its value cannot be opened to bind it to the new key"), "{err}");

        // A ciphertext minted for a row is checked against the column's type when written back.
        Spi::run(
            "CREATE TABLE t_acct_rb (id int PRIMARY KEY, n int, j jsonb); INSERT INTO t_acct_rb VALUES (1, 1, '{}');
             SELECT tradeguard.encrypt_column('t_acct_rb', 'n', 't_rb'), tradeguard.encrypt_column('t_acct_rb', 'j', 't_rb')",
        )
        .unwrap();
        let cid = |c: &str| one::<i32>(&format!("SELECT column_id FROM tradeguard_audit.encrypted_columns WHERE table_name = 't_acct_rb' AND column_name = '{c}'")).unwrap();
        let env = one::<Vec<u8>>(&format!("SELECT tradeguard.encrypt(99999999999::bigint, 't_rb', 'tg:{}:1')", cid("n"))).expect("envelope");
        let armored = crate::crypto::envelope::armor(&env).expect("armor");
        let err = crate::common::sql_error(&format!("UPDATE t_acct_rb SET n = '{armored}' WHERE id = 1")).unwrap_or_default();
        assert!(err.ends_with("column n: value is not a valid integer"), "{err}");
        assert_eq!(one::<i32>("SELECT n FROM t_acct_rb_decrypted WHERE id = 1"), Some(1));
        // The same with a key change: bound to the row's old key, it is checked all the same
        // (it was sealed again for the new key as it came).
        let err = crate::common::sql_error(&format!("UPDATE t_acct_rb SET id = 2, n = '{armored}' WHERE id = 1")).unwrap_or_default();
        assert!(err.ends_with("column n: value is not a valid integer"), "{err}");
        // ... and one of another type than the column's is refused like a foreign one.
        let text_env = one::<Vec<u8>>(&format!("SELECT tradeguard.encrypt('abc'::text, 't_rb', 'tg:{}:1')", cid("n"))).expect("envelope");
        let text_armored = crate::crypto::envelope::armor(&text_env).expect("armor");
        let err = crate::common::sql_error(&format!("UPDATE t_acct_rb SET id = 2, n = '{text_armored}' WHERE id = 1")).unwrap_or_default();
        assert!(err.contains("column n: the value is tradeguard ciphertext that does not belong to this row"), "{err}");
        // A valid value of the row, written with the key change, is sealed again for the new key;
        // the row's own unchanged value follows its key as before.
        let ok_env = one::<Vec<u8>>(&format!("SELECT tradeguard.encrypt(7::bigint, 't_rb', 'tg:{}:1')", cid("n"))).expect("envelope");
        let ok_armored = crate::crypto::envelope::armor(&ok_env).expect("armor");
        Spi::run(&format!("UPDATE t_acct_rb SET id = 2, n = '{ok_armored}' WHERE id = 1; UPDATE t_acct_rb SET id = 3 WHERE id = 2")).unwrap();
        assert_eq!(one::<i32>("SELECT n FROM t_acct_rb_decrypted WHERE id = 3"), Some(7));
        assert_eq!(one::<String>("SELECT j::text FROM t_acct_rb_decrypted WHERE id = 3").as_deref(), Some("{}"));
        // No jsonb ciphertext of invalid JSON (PostgreSQL's error would quote it).
        let err = crate::common::sql_error(&format!("SELECT tradeguard.encrypt_as('{{\"LEAKME\": ', 't_rb', 'tg:{}:1', 'jsonb')", cid("j"))).unwrap_or_default();
        assert!(err.ends_with("value is not valid jsonb") && !err.contains("LEAKME"), "{err}");
    }
}
