#!/usr/bin/env python3
"""tradeguard with a real client: psycopg 3 as the Python trading application.

Run by tests/real_client.sh against its throwaway cluster. Everything goes over TCP with
sslmode=verify-full against the test CA, as a trading application and its analyst would connect;
only the DBA's unblock and seal use the superuser over the Unix socket.
Prints `ok - ...` / `not ok - ...` per check and exits 1 if any failed.

Environment: TG_RC_HOST, TG_RC_PORT, TG_RC_DB, TG_RC_SSLROOTCERT, TG_RC_APP_USER,
TG_RC_APP_PASSWORD, TG_RC_ANALYST_USER, TG_RC_ANALYST_PASSWORD, TG_RC_SU_HOST, TG_RC_SU_USER.
"""
import ipaddress
import os
import sys
import time
import traceback
from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

E = os.environ
HOST, PORT, DB = E["TG_RC_HOST"], E["TG_RC_PORT"], E["TG_RC_DB"]
APP, APP_PW = E["TG_RC_APP_USER"], E["TG_RC_APP_PASSWORD"]
ANALYST, ANALYST_PW = E["TG_RC_ANALYST_USER"], E["TG_RC_ANALYST_PASSWORD"]

PAYLOAD = "x'; DROP TABLE trades; --"
NEW_ACCOUNT = {
    "account_number": "DT-9000-0007",
    "owner_name": "Real Client",
    "email": "real.client@example.jp",
    "api_key": "ak_live_rc_5e0c7a1d93b24f68",
    "api_secret": "sk_live_rc_8b3d1f6a2c9e0475d1",
}

failed = 0


def ok(name):
    print(f"ok - {name}", flush=True)


def not_ok(name, why=""):
    global failed
    failed += 1
    print(f"not ok - {name}" + (f"\n    {why}" if why else ""), flush=True)


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        not_ok(name, why)
    return cond


def tls(user, password):
    """The application's connection: TCP, TLS with the server certificate verified."""
    return dict(host=HOST, port=PORT, dbname=DB, user=user, password=password,
                sslmode="verify-full", sslrootcert=E["TG_RC_SSLROOTCERT"],
                connect_timeout=10, application_name="tradeguard-real-client")


def superuser():
    return psycopg.connect(host=E["TG_RC_SU_HOST"], port=PORT, dbname=DB, user=E["TG_RC_SU_USER"],
                           autocommit=True, application_name="tradeguard-real-client-dba")


def one(conn, query, params=None):
    return conn.execute(query, params).fetchone()


def expect_error(name, conn, query, params, sqlstates):
    """The statement must fail with one of sqlstates; returns the exception."""
    try:
        conn.execute(query, params)
    except psycopg.Error as e:
        check(f"{name} (SQLSTATE {e.sqlstate})", e.sqlstate in sqlstates,
              f"expected {sqlstates}, got {e.sqlstate}: {e.diag.message_primary}")
        return e
    not_ok(name, "the statement succeeded")
    return None


def poll(conn, query, params=None, timeout=5.0):
    """Events reach their table through the background worker: poll until the count is > 0."""
    deadline = time.monotonic() + timeout
    while True:
        n = one(conn, query, params)[0]
        if n or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def section(fn):
    """Run one part; an unexpected exception fails it but lets the next parts run."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        not_ok(f"{fn.__name__}: unexpected {type(e).__name__}: {e}".replace("\n", " "),
               traceback.format_exc().replace("\n", "\n    "))
        return None


state = {}


def application():
    with psycopg.connect(**tls(APP, APP_PW), autocommit=True) as app:
        ssl, version = one(app, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        check(f"the application connects over TLS with verify-full ({version})",
              ssl is True and app.info.pgconn.ssl_in_use, f"ssl={ssl}")
        check("it is daytrading_prod", one(app, "SELECT current_user")[0] == APP)

        # One unit of work for trader T-007: a new account, an order, its trade.
        with app.transaction():
            app.execute("SELECT tradeguard.set_context(%s)", [Jsonb({"trader": "T-007"})])
            a = NEW_ACCOUNT
            acct = one(app, """INSERT INTO accounts (account_number, owner_name, email, api_key, api_secret, balance)
                               VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
                       [a["account_number"], a["owner_name"], a["email"], a["api_key"], a["api_secret"],
                        Decimal("75000.00")])[0]
            order = one(app, """INSERT INTO orders (account_id, symbol, side, order_type, quantity, limit_price, note)
                                VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                        [acct, "7974.T", "buy", "limit", Decimal("100"), Decimal("6450.5"),
                         "Nintendo: first tranche"])[0]
            app.execute("UPDATE orders SET status = %s WHERE id = %s", ["filled", order])
            trade = one(app, """INSERT INTO trades (order_id, account_id, symbol, side, quantity, price, fee)
                                VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                        [order, acct, "7974.T", "buy", Decimal("100"), Decimal("6449.0"), Decimal("85")])[0]
        state.update(acct=acct, order=order, trade=trade)
        ok(f"in one transaction with context trader T-007: account {acct}, order {order}, trade {trade}")
        check("the context lasts one transaction",
              one(app, "SELECT coalesce(current_setting('tradeguard.app_context', true), '')")[0] in ("", "{}"))

        # A statement prepared on the server (psycopg prepares repeated queries; here at once).
        for i in range(5):
            app.execute("""INSERT INTO orders (account_id, symbol, side, order_type, quantity, note)
                           VALUES (%s, %s, %s, %s, %s, %s)""",
                        [acct, "7974.T", "sell", "market", Decimal(10 + i), f"scale out {i + 1}/5"], prepare=True)
        check("5 orders through a server-side prepared statement",
              one(app, "SELECT count(*) FROM orders WHERE account_id = %s AND side = 'sell'", [acct])[0] == 5)

        # Encryption is transparent to the application, the table holds ciphertext.
        row = one(app, "SELECT account_number, email, api_key, api_secret FROM accounts_decrypted WHERE id = %s", [acct])
        check("accounts_decrypted returns the plaintext the application wrote",
              row == (a["account_number"], a["email"], a["api_key"], a["api_secret"]), f"got {row}")
        row = one(app, "SELECT account_number, email, api_key, api_secret FROM accounts WHERE id = %s", [acct])
        check("accounts holds ciphertext (tg1:...) in all four encrypted columns",
              all(isinstance(v, str) and v.startswith("tg1:") for v in row)
              and a["api_key"] not in row[2], f"got {row}")
        found = app.execute("SELECT id FROM accounts WHERE email_bidx = tradeguard.blind_index(%s, 'email_bidx')",
                            ["  " + a["email"].upper() + " "]).fetchall()
        check("the account is found by its email blind index (normalised)", found == [(acct,)], f"got {found}")

        # Injection into the guarded column orders.note.
        e = None
        try:
            with app.transaction():
                app.execute("""INSERT INTO orders (account_id, symbol, side, order_type, quantity, note)
                               VALUES (%s, %s, %s, %s, %s, %s)""",
                            [acct, "AAPL", "buy", "market", Decimal("10"), PAYLOAD])
            not_ok("an injection into orders.note is rejected", "the INSERT succeeded")
        except psycopg.Error as exc:
            e = exc
        if e is not None:
            d = e.diag
            check(f"an injection into orders.note is rejected: {type(e).__name__} SQLSTATE {e.sqlstate}",
                  e.sqlstate == "42501" and isinstance(e, psycopg.errors.InsufficientPrivilege),
                  f"got {e.sqlstate}: {d.message_primary}")
            check(f"the error names the column: \"{d.message_primary}\"", "note" in (d.message_primary or ""))
            texts = [str(e), d.message_primary, d.message_detail, d.message_hint, d.context, d.internal_query]
            leaked = [t for t in texts if t and ("DROP TABLE" in t or PAYLOAD in t)]
            check("the error does not echo the payload (message, detail, hint, context)", not leaked, f"{leaked}")
        check("nothing of the rejected order was stored",
              one(app, "SELECT count(*) FROM orders WHERE note LIKE %s", ["%DROP TABLE%"])[0] == 0)
        app.execute("""INSERT INTO orders (account_id, symbol, side, order_type, quantity, note)
                       VALUES (%s, %s, %s, %s, %s, %s)""",
                    [acct, "AAPL", "buy", "market", Decimal("10"), "buy the dip; stop at 220"])
        ok("a normal note (\"buy the dip; stop at 220\") goes through")
        check("trades is still there", one(app, "SELECT count(*) FROM trades")[0] >= 4)


def lockout():
    def login(password):
        try:
            psycopg.connect(**tls(ANALYST, password)).close()
            return None
        except psycopg.OperationalError as e:
            return str(e).strip().replace("\n", " ")

    msgs = [login(f"not-the-password-{i}") for i in range(3)]
    check("3 wrong passwords for daytrading_readonly are refused",
          all(m and "password authentication failed" in m for m in msgs), f"{msgs}")
    m = login(ANALYST_PW)
    check("then the right password is refused too: blocked", m is not None and "blocked" in m.lower(), f"got {m!r}")
    if m:
        print(f"    {m}")

    with superuser() as su:
        n = poll(su, """SELECT count(*) FROM tradeguard.blocked_sources
                         WHERE source = '127.0.0.1/32' AND created_by = 'tradeguard'""")
        check("the lockout is listed in tradeguard.blocked_sources", n >= 1, f"{n} rows")
        n = one(su, "SELECT tradeguard.unblock('127.0.0.1/32')")[0]
        check(f"the DBA (superuser, Unix socket) lifts it: unblock('127.0.0.1/32') = {n}", n >= 1)
        n = one(su, "SELECT tradeguard.unblock_role('daytrading_readonly')")[0]
        check(f"unblock_role('daytrading_readonly') = {n}", n is not None and n >= 0)
        # The worker seals every seal_interval; the DBA seals now so verify() covers everything.
        one(su, "SELECT tradeguard.seal()")
        ok("the DBA seals the audit trail (tradeguard.seal())")


def analyst():
    with psycopg.connect(**tls(ANALYST, ANALYST_PW), autocommit=True) as an:
        ok("after unblock the analyst logs in with the right password")
        ssl, = one(an, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        check("the analyst connects over TLS with verify-full", ssl is True and an.info.pgconn.ssl_in_use)
        check("it is daytrading_readonly", one(an, "SELECT current_user")[0] == ANALYST)

        order, acct = state.get("order"), state.get("acct")
        if order is not None:
            rows = an.execute("""SELECT operation, changed_by, app_context->>'trader', client_addr, changes
                                   FROM tradeguard.history('orders', %s)""", [Jsonb({"id": order})]).fetchall()
            ops = [r[0] for r in rows]
            check(f"history('orders', id {order}) shows {ops}", ops == ["INSERT", "UPDATE"], f"{rows}")
            if rows:
                op, by, trader, addr, changes = rows[0]
                check("the INSERT was made by daytrading_prod for trader T-007 from 127.0.0.1",
                      by == APP and trader == "T-007" and addr == ipaddress.ip_address("127.0.0.1"),
                      f"by={by} trader={trader} addr={addr}")
                check("the INSERT records the order", changes.get("symbol") == "7974.T"
                      and changes.get("note") == "Nintendo: first tranche", f"{changes}")
            if len(rows) > 1:
                check("the UPDATE records status new -> filled",
                      rows[1][4].get("status") == {"old": "new", "new": "filled"}, f"{rows[1][4]}")
        if acct is not None:
            rows = an.execute("SELECT changes FROM tradeguard.history('accounts', %s)",
                              [Jsonb({"id": acct})]).fetchall()
            check("the audit trail of the new account holds ciphertext, never the plaintext api_key",
                  len(rows) == 1 and str(rows[0][0].get("api_key", "")).startswith("tg1:")
                  and NEW_ACCOUNT["api_key"] not in str(rows[0][0]), f"{rows}")
            v, = one(an, "SELECT api_key FROM accounts WHERE id = %s", [acct])
            check("the analyst sees only ciphertext in accounts.api_key", v.startswith("tg1:"), v)

        total, high = one(an, """SELECT count(*), count(*) FILTER (WHERE level IN ('critical', 'high'))
                                   FROM tradeguard.findings""")
        check(f"tradeguard.findings is readable: {total} findings, {high} critical/high", total >= 0)

        status, = one(an, "SELECT tradeguard.security_status()")
        keys = {"blocked_sources", "audit_chain", "events_24h", "failed_logins_last_hour",
                "last_self_audit", "alerts_24h", "decryption_frozen", "open_incidents"}
        check("security_status() is a dict with the expected keys",
              isinstance(status, dict) and keys <= status.keys(),
              f"missing {keys - set(status or {})}")
        if isinstance(status, dict):
            check("security_status(): no active block after unblock",
                  (status.get("blocked_sources") or {}).get("count") == 0, f"{status.get('blocked_sources')}")
            check(f"security_status(): failed_logins_last_hour = {status.get('failed_logins_last_hour')} (>= 3)",
                  (status.get("failed_logins_last_hour") or 0) >= 3)
            check("security_status(): the self-audit has run", status.get("last_self_audit") is not None)
            check(f"security_status(): audit_chain ok ({status.get('audit_chain')})",
                  (status.get("audit_chain") or {}).get("ok") is True)

        n = poll(an, """SELECT count(*) FROM tradeguard.security_events
                         WHERE event_type = 'injection_attempt' AND role_name = %s
                           AND detail->>'table' LIKE '%%orders' AND detail->>'column' = 'note'""", [APP])
        check(f"security_events shows the injection attempt on orders.note by {APP} ({n})", n >= 1)
        leaks = one(an, """SELECT count(*) FROM tradeguard.security_events
                            WHERE detail::text LIKE '%%DROP TABLE%%'""")[0]
        check("the injection event does not store the payload", leaks == 0, f"{leaks} events")
        n = poll(an, """SELECT count(*) FROM tradeguard.security_events
                         WHERE event_type = 'lockout' AND detail->>'key' = 'source'""")
        check(f"security_events shows the lockout ({n})", n >= 1)
        n = poll(an, "SELECT count(*) FROM tradeguard.security_events WHERE event_type = 'unblock'")
        check(f"security_events shows the DBA's unblock ({n})", n >= 1)

        row = one(an, "SELECT ok, blocks_checked, rows_checked, reason FROM tradeguard.verify()")
        check(f"tradeguard.verify() is ok ({row[1]} blocks, {row[2]} rows)", row[0] is True, f"{row}")

        expect_error("the analyst is refused accounts_decrypted", an,
                     "SELECT api_key FROM accounts_decrypted LIMIT 1", None, {"42501"})
        expect_error("the analyst is refused tradeguard.decrypt_text", an,
                     "SELECT tradeguard.decrypt_text(api_key) FROM accounts LIMIT 1", None, {"42501"})
        expect_error("the analyst cannot INSERT into orders", an,
                     "INSERT INTO orders (account_id, symbol, side, order_type, quantity) VALUES (%s, %s, %s, %s, %s)",
                     [acct or 1, "AAPL", "buy", "market", Decimal("1")], {"42501", "25006"})

    # Last (a refused connection may count as a failed login): plain TCP without TLS is refused.
    try:
        psycopg.connect(**{**tls(ANALYST, ANALYST_PW), "sslmode": "disable"}).close()
        not_ok("a connection without TLS is refused", "it connected")
    except psycopg.OperationalError as e:
        m = str(e).strip().replace("\n", " ")
        check("a connection without TLS is refused (pg_hba: host ... reject)", "pg_hba.conf" in m, m)


print(f"# psycopg {psycopg.__version__} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}) "
      f"-> {HOST}:{PORT}/{DB} sslmode=verify-full", flush=True)
section(application)
section(lockout)
section(analyst)
print(f"# real client: {failed} failed", flush=True)
sys.exit(1 if failed else 0)
