"""Warehouse loaders end to end through the real daemon: the Segment warehouse schema in SQLite
(the shipped default) and in a real PostgreSQL server started here, schema evolution, type
conflicts kept in _discards, the column budget and _extra, hostile names, deletions, the
quarantine table, database outages, and a daemon killed mid-load (rows = distinct ids)."""
import base64
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import unittest
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from support import BIN, SOURCE_DIR, Daemon, free_port, metric_value, wait_until  # noqa: E402
from postgres_server import PostgresServer  # noqa: E402

TOKEN = "warehouse-admin-token"
NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def ev(type_="track", user=None, anon=None, **kw):
    e = {"type": type_, "messageId": kw.pop("messageId", str(uuid.uuid4()))}
    if type_ == "track":
        e["event"] = kw.pop("event", "Viewed")
    if user:
        e["userId"] = user
    if anon:
        e["anonymousId"] = anon
    if not user and not anon:
        e["anonymousId"] = "anon-" + e["messageId"][:8]
    e.update(kw)
    return e


class SqliteWarehouse:
    """Reads the daemon's SQLite warehouse (tables are <source>_<table>)."""

    def __init__(self, path):
        self.path = path

    def rows(self, sql, args=()):
        if not os.path.exists(self.path):
            return []
        db = sqlite3.connect(self.path, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            raise
        finally:
            db.close()

    def tables(self):
        return sorted(r[0] for r in self.rows(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))

    def columns(self, table):
        return {r[1]: r[2] for r in self.rows(f'PRAGMA table_info("{table}")')}


class PostgresWarehouse:
    """Reads a PostgreSQL warehouse (tables are "<source>"."<table>")."""

    def __init__(self, server):
        self.pg = server

    def rows(self, sql):
        return self.pg.query(sql)


def wait_rows(fn, want, timeout=30, what="rows"):
    last = [None]

    def ok():
        try:
            last[0] = fn()
        except (RuntimeError, IndexError) as e:  # the table does not exist yet
            last[0] = str(e)
        return last[0] == want
    try:
        wait_until(ok, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: wanted {want!r}, last saw {last[0]!r}")


class WarehouseCase(unittest.TestCase):
    def daemon(self, dest, extra="", admin=True):
        d = Daemon(admin_extra=f"  token: {TOKEN}" if admin else "", extra=extra,
                   destinations="\n  - name: placeholder\n    type: file\n    path: /tmp/x\n")
        self.addCleanup(d.cleanup)
        d.rewrite_config(destinations=dest.replace("{data}", d.data))
        return d

    def send(self, d, *events, key=None):
        st, _, body = d.post("/v1/batch", {"batch": list(events)})
        self.assertEqual(st, 200, body)


SQLITE_DEST = """
  - name: wh
    type: sqlite
    path: {data}/warehouse.db
    batch_max_wait: 10ms
    identity_links: true
    quarantine: true
"""


class SqliteTest(WarehouseCase):
    def start(self, dest=SQLITE_DEST, extra=""):
        d = self.daemon(dest, extra)
        d.start()
        return d, SqliteWarehouse(os.path.join(d.data, "warehouse.db"))

    def test_segment_schema(self):
        d, wh = self.start()
        track = ev(user="u1", anon="a1", event="Order Completed",
                   timestamp="2024-05-01T12:00:00.250Z",
                   properties={"orderId": "o-1", "total": 12.5, "items": 3, "paid": True,
                               "tags": ["x", "y"], "shipping": {"address": {"city": "Oslo"}}},
                   context={"library": {"name": "analytics.js", "version": "2.1.0"}})
        ident = ev("identify", user="u1", anon="a1", traits={"email": "u1@example.com",
                                                             "plan": "pro"})
        page = ev("page", anon="a2", name="Home", properties={"path": "/", "title": "Home"})
        screen = ev("screen", user="u3", name="Cart", properties={"items": 2})
        group = ev("group", user="u1", groupId="g-7", traits={"employees": 40})
        alias = ev("alias", user="u1", previousId="a1")
        self.send(d, track, ident, page, screen, group, alias)
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_aliases"), [(1,)], what="aliases")
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_order_completed"), [(1,)])

        tables = wh.tables()
        for t in ["web_tracks", "web_order_completed", "web_identifies", "web_users", "web_pages",
                  "web_screens", "web_groups", "web_aliases", "web_identity_links"]:
            self.assertIn(t, tables)
        self.assertIn("_switchyard_tables", tables)
        cols = wh.columns("web_order_completed")
        self.assertEqual(cols["id"], "TEXT")
        self.assertEqual(cols["received_at"], "TIMESTAMP")
        self.assertEqual(cols["total"], "REAL")
        self.assertEqual(cols["items"], "INTEGER")
        self.assertEqual(cols["paid"], "BOOLEAN")
        self.assertEqual(cols["tags"], "TEXT")
        self.assertIn("shipping_address_city", cols)
        self.assertIn("context_library_name", cols)
        # Enrichment and identity show up as columns too.
        self.assertIn("context_identity_person_id", cols)

        row = wh.rows("SELECT id, user_id, anonymous_id, event, event_text, timestamp, order_id, "
                      "total, items, paid, tags, shipping_address_city, context_library_version "
                      "FROM web_order_completed")[0]
        self.assertEqual(row, (track["messageId"], "u1", "a1", "Order Completed",
                               "Order Completed", "2024-05-01T12:00:00.250000Z", "o-1", 12.5, 3,
                               1, '["x","y"]', "Oslo", "2.1.0"))
        self.assertEqual(wh.rows("SELECT id, event FROM web_tracks"),
                         [(track["messageId"], "Order Completed")])
        # received_at and uuid_ts are set; the load came after the receipt.
        [(rec, loaded)] = wh.rows("SELECT received_at, uuid_ts FROM web_tracks")
        self.assertRegex(rec, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertGreaterEqual(loaded, rec)
        self.assertEqual(wh.rows("SELECT id, email, plan FROM web_users"),
                         [("u1", "u1@example.com", "pro")])
        self.assertEqual(wh.rows("SELECT email FROM web_identifies"), [("u1@example.com",)])
        self.assertEqual(wh.rows("SELECT name, path FROM web_pages"), [("Home", "/")])
        self.assertEqual(wh.rows("SELECT name, items FROM web_screens"), [("Cart", 2)])
        self.assertEqual(wh.rows("SELECT group_id, employees FROM web_groups"), [("g-7", 40)])
        self.assertEqual(wh.rows("SELECT previous_id, user_id FROM web_aliases"), [("a1", "u1")])
        links = wh.rows("SELECT from_id, to_id, person_id FROM web_identity_links")
        self.assertIn(("a1", "u1", "u1"), links)

        # Later traits win in users; an older identify does not overwrite them.
        self.send(d, ev("identify", user="u1", traits={"plan": "enterprise"}))
        wait_rows(lambda: wh.rows("SELECT plan, email FROM web_users"),
                  [("enterprise", "u1@example.com")])

    def test_evolution_conflicts_and_budget(self):
        dest = SQLITE_DEST + "    max_columns: 24\n"
        d, wh = self.start(dest)
        first = ev(event="Bought", properties={"price": 10, "qty": 1})
        self.send(d, first)
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_bought"), [(1,)])
        self.assertEqual(wh.columns("web_bought")["price"], "INTEGER")

        # A new key adds a column; values that do not fit the existing type are kept in
        # _discards with the reason, and their rows are stored without them.
        second = ev(event="Bought", properties={"price": 10.5, "qty": True, "color": "red"})
        third = ev(event="Bought", properties={"price": "cheap", "qty": 2.0})
        self.send(d, second, third)
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_bought"), [(3,)])
        self.assertEqual(wh.columns("web_bought")["color"], "TEXT")
        got = dict((r[0], r[1:]) for r in wh.rows("SELECT id, price, qty, color FROM web_bought"))
        self.assertEqual(got[first["messageId"]], (10, 1, None))
        self.assertEqual(got[second["messageId"]], (None, 1, "red"))  # true fits integer
        self.assertEqual(got[third["messageId"]], (None, 2, None))    # 2.0 fits integer
        disc = wh.rows("SELECT table_name, column_name, row_id, column_type, value, reason "
                       "FROM web__discards ORDER BY value")
        self.assertIn(("bought", "price", third["messageId"], "integer", '"cheap"',
                       "a text value does not fit the integer column"), disc)
        self.assertIn(("bought", "price", second["messageId"], "integer", "10.5",
                       "a float value does not fit the integer column"), disc)
        # The same conflicts are in tracks.
        self.assertIn(("tracks", "price", third["messageId"], "integer", '"cheap"',
                       "a text value does not fit the integer column"), disc)

        # Beyond the column budget, values go to _extra as JSON.
        many = {f"k{i:02d}": i for i in range(40)}
        wide = ev(event="Wide", properties=many)
        self.send(d, wide)
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_wide"), [(1,)])
        cols = wh.columns("web_wide")
        self.assertLessEqual(len([c for c in cols if c != "_extra"]), 24)
        self.assertIn("_extra", cols)
        [(extra,)] = wh.rows("SELECT _extra FROM web_wide")
        stored = {c: wh.rows(f'SELECT "{c}" FROM web_wide')[0][0] for c in cols if c in many}
        stored.update(json.loads(extra))
        for k, v in many.items():
            self.assertEqual(stored.get(k), v, k)  # every value is somewhere, none lost
        self.assertGreater(metric_value(d.metrics(), "switchyard_warehouse_extra_values_total",
                                        {"destination": "wh"}), 0)
        self.assertGreater(metric_value(d.metrics(), "switchyard_warehouse_discards_total",
                                        {"destination": "wh"}), 0)

    def test_hostile_names_cannot_inject(self):
        d, wh = self.start()
        hostile = ['x"; DROP TABLE web_tracks; --', "Robert'); DROP TABLE web_users;--",
                   "select", "a" * 300, "\u00e9v\u00e9nement \U0001F600", "1st place", "__proto__",
                   "CamelCase", "camel_case", "\\\"\\", "sqlite_master", "_switchyard_tables"]
        events = [ev(event=name, properties={name: i, "ok": True}) for i, name in
                  enumerate(hostile)]
        self.send(d, *events)
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_tracks"), [(len(hostile),)])
        for t in wh.tables():
            self.assertRegex(t, r"^[a-z0-9_]+$", t)
        for t in wh.tables():
            if t.startswith("web_"):
                self.assertRegex(t[4:], NAME)
                for c in wh.columns(t):
                    self.assertRegex(c, NAME)
        self.assertIn("web_select_", wh.tables())
        # Names are stored as sent in the event column.
        self.assertEqual(sorted(r[0] for r in wh.rows("SELECT event FROM web_tracks")),
                         sorted(hostile))

    def test_deletion_removes_the_person(self):
        d, wh = self.start()
        keep = ev(user="other", event="Viewed")
        self.send(d, ev("identify", user="erin", anon="e1", traits={"email": "e@x"}),
                  ev(anon="e1", event="Viewed"), ev(user="erin", event="Viewed"), keep)
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_tracks"), [(3,)])
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_users"), [(1,)])
        self.assertTrue(wh.rows("SELECT count(*) FROM web_identity_links")[0][0] >= 1)
        r = d.cli("identity", "delete", "--user-id", "erin", "--requested-by", "dpo@example.com")
        self.assertEqual(r.returncode, 0, r.stderr)
        req = json.loads(r.stdout)
        wait_rows(lambda: wh.rows("SELECT id FROM web_tracks"), [(keep["messageId"],)],
                  what="only the other user's track is left")
        for t in ["web_identifies", "web_users", "web_identity_links", "web_viewed"]:
            left = wh.rows(f"SELECT * FROM {t}")
            self.assertFalse([r for r in left if "erin" in r or "e1" in r], (t, left))

        def confirmed():
            st, doc = d.api("GET", f"/v1/identity/deletions/{req['id']}", TOKEN)
            return st == 200 and doc["status"] == "complete"
        wait_until(confirmed, timeout=20, what="deletion confirmed by the warehouse")

    def test_quarantine_table(self):
        d, wh = self.start()
        good = ev(event="Fine")
        st, _, body = d.post("/v1/batch", {"batch": [good, {"type": "track", "userId": "qq",
                                                            "messageId": "bad-1"}]})
        self.assertEqual(st, 200, body)
        wait_rows(lambda: wh.rows("SELECT count(*) FROM web_quarantine"), [(1,)])
        [(reason, user, mid, event)] = wh.rows(
            "SELECT reason, user_id, message_id, event FROM web_quarantine")
        self.assertTrue(reason)
        self.assertEqual((user, mid), ("qq", "bad-1"))
        self.assertEqual(json.loads(event)["messageId"], "bad-1")

    def test_killed_mid_load_restart_has_no_duplicates(self):
        dest = SQLITE_DEST + "    batch_max_events: 200\n"
        d, wh = self.start(dest)
        n = 6000
        events = [ev(event="Load Test", properties={"i": i}) for i in range(n)]
        for i in range(0, n, 500):
            self.send(d, *events[i:i + 500])
        wait_until(lambda: wh.rows("SELECT count(*) FROM web_tracks")[0][0] > 0, timeout=30,
                   what="some rows loaded")
        d.kill9()
        loaded_at_kill = wh.rows("SELECT count(*) FROM web_tracks")[0][0]
        d.start()
        wait_rows(lambda: wh.rows("SELECT count(*), count(DISTINCT id) FROM web_tracks"),
                  [(n, n)], timeout=60, what="every event exactly once after the restart")
        wait_rows(lambda: wh.rows("SELECT count(*), count(DISTINCT id) FROM web_load_test"),
                  [(n, n)], timeout=60)
        self.assertLessEqual(loaded_at_kill, n)

    def test_shipped_config_writes_the_default_warehouse(self):
        tmp = os.path.join(self.tmp_dir(), "run")
        os.makedirs(tmp)
        port, admin = free_port(), free_port()
        env = dict(os.environ, SWITCHYARD_DATA_DIR=os.path.join(tmp, "data"),
                   SWITCHYARD_LISTEN=f"127.0.0.1:{port}",
                   SWITCHYARD_ADMIN_LISTEN=f"127.0.0.1:{admin}")
        proc = subprocess.Popen([BIN, "run", "-c",
                                 os.path.join(SOURCE_DIR, "config", "switchyard.yaml")],
                                cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        auth = base64.b64encode(b"demo-write-key:").decode()
        body = json.dumps({"type": "track", "event": "Signed Up", "userId": "q1",
                           "messageId": "quick-1"}).encode()

        def post():
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/track", data=body,
                                             headers={"Authorization": "Basic " + auth,
                                                      "Content-Type": "application/json"})
                return urllib.request.urlopen(req, timeout=5).status == 200
            except OSError:
                return False
        wait_until(post, timeout=20, what="the shipped config answers")
        wh = SqliteWarehouse(os.path.join(tmp, "data", "warehouse.db"))
        wait_rows(lambda: wh.rows("SELECT id, user_id FROM demo_signed_up"), [("quick-1", "q1")],
                  what="a row in data/warehouse.db")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def tmp_dir(self):
        t = tempfile.mkdtemp(prefix="switchyard-wh-")
        self.addCleanup(shutil.rmtree, t, True)
        return t


def pg_dest(pg, extra=""):
    return f"""
  - name: pg
    type: postgres
    dsn: "{pg.dsn}"
    batch_max_wait: 10ms
    retry_backoff_base: 50ms
    retry_backoff_max: 500ms
    retry_max_attempts: 1000
    breaker_failures: 1000
    identity_links: true
    quarantine: true
{extra}"""


class PostgresTest(WarehouseCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PostgresServer()
        cls.pg.start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()

    def fresh_db(self):
        name = "wh_" + uuid.uuid4().hex[:10]
        self.pg.query(f"CREATE DATABASE {name}")
        return self.pg.with_database(name)

    def test_schema_evolution_and_values_postgres_rejects(self):
        pg = self.fresh_db()
        d = self.daemon(pg_dest(pg))
        d.start()
        a = ev(user="u1", anon="a1", event="Order Completed",
               properties={"total": 3, "note": "ok", "when": "2024-05-01T10:00:00+02:00"})
        b = ev(user="u2", event="Order Completed",
               properties={"total": "n/a", "note": "nul\u0000inside", "extra": {"deep": [1]}})
        ident = ev("identify", user="u1", traits={"email": "u1@example.com"})
        self.send(d, a, ident)
        wait_rows(lambda: pg.query('SELECT count(*) FROM "web"."order_completed"'), [["1"]])
        self.send(d, b)  # a later batch: its values meet the columns the first one created
        wait_rows(lambda: pg.query('SELECT count(*) FROM "web"."order_completed"'), [["2"]])
        cols = dict(pg.query("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema='web' AND table_name='order_completed'"))
        self.assertEqual(cols["total"], "bigint")
        self.assertEqual(cols["when_"], "timestamp with time zone")  # a reserved word
        self.assertEqual(cols["received_at"], "timestamp with time zone")
        self.assertEqual(cols["extra_deep"], "text")
        rows = dict((r[0], r[1:]) for r in pg.query(
            'SELECT id, total, note, when_ FROM "web"."order_completed"'))
        self.assertEqual(rows[a["messageId"]], ["3", "ok", "2024-05-01 08:00:00+00"])
        self.assertEqual(rows[b["messageId"]], ["", "", ""])
        disc = pg.query('SELECT table_name, column_name, row_id, value, reason '
                        'FROM "web"."_discards" ORDER BY column_name, table_name')
        self.assertIn(["order_completed", "note", b["messageId"], '"nul\\u0000inside"',
                       "the text contains U+0000, which this database cannot store"], disc)
        self.assertIn(["order_completed", "total", b["messageId"], '"n/a"',
                       "a text value does not fit the integer column"], disc)
        self.assertEqual(pg.query('SELECT id, email FROM "web"."users"'),
                         [["u1", "u1@example.com"]])
        self.assertEqual(pg.query("SELECT obj_description('web'::regnamespace)"),
                         [["switchyard warehouse"]])

    def test_outage_and_restart_lose_nothing(self):
        pg = self.fresh_db()
        d = self.daemon(pg_dest(pg))
        d.start()
        first = [ev(event="Before") for _ in range(50)]
        self.send(d, *first)
        wait_rows(lambda: pg.query('SELECT count(*) FROM "web"."before"'), [["50"]])
        self.pg.stop()
        during = [ev(event="During", properties={"n": i}) for i in range(300)]
        for i in range(0, 300, 100):
            self.send(d, *during[i:i + 100])  # accepted: durable in the log meanwhile
        wait_until(lambda: metric_value(d.metrics(), "switchyard_warehouse_load_failures_total",
                                        {"destination": "pg"}) > 0, timeout=20,
                   what="failed loads counted")
        self.pg.start()
        wait_rows(lambda: pg.query('SELECT count(*), count(DISTINCT id) FROM "web"."during"'),
                  [["300", "300"]], timeout=60, what="all rows after the server is back")

    def test_daemon_killed_mid_load_restart_has_no_duplicates(self):
        pg = self.fresh_db()
        d = self.daemon(pg_dest(pg, "    batch_max_events: 250\n"))
        d.start()
        n = 6000
        events = [ev(event="Kill Test", properties={"i": i}) for i in range(n)]
        for i in range(0, n, 500):
            self.send(d, *events[i:i + 500])
        wait_rows(lambda: int(pg.query('SELECT count(*) FROM "web"."tracks"')[0][0]) > 0, True,
                  what="some rows loaded")
        d.kill9()
        d.start()
        wait_rows(lambda: pg.query('SELECT count(*), count(DISTINCT id) FROM "web"."kill_test"'),
                  [[str(n), str(n)]], timeout=90, what="every event exactly once")
        wait_rows(lambda: pg.query('SELECT count(*), count(DISTINCT id) FROM "web"."tracks"'),
                  [[str(n), str(n)]], timeout=30)

    def test_permission_denied_is_retried_until_granted(self):
        pg = self.fresh_db()
        role = "loader_" + uuid.uuid4().hex[:6]
        pg.query(f"CREATE ROLE {role} LOGIN")
        pg.query(f"REVOKE CREATE ON DATABASE {pg.database} FROM PUBLIC")
        limited = pg.with_user(role)
        d = self.daemon(pg_dest(limited))
        d.start()
        e = ev(event="Gated")
        self.send(d, e)
        wait_until(lambda: metric_value(d.metrics(), "switchyard_warehouse_load_failures_total",
                                        {"destination": "pg"}) > 0, timeout=20,
                   what="permission failures counted")
        self.assertIn("42501", d.log_text())
        pg.query(f"GRANT CREATE ON DATABASE {pg.database} TO {role}")
        wait_rows(lambda: pg.query('SELECT id FROM "web"."gated"'), [[e["messageId"]]],
                  timeout=30, what="loaded once granted")

    def test_rows_postgres_refuses_are_kept_whole(self):
        pg = self.fresh_db()
        d = self.daemon(pg_dest(pg))
        d.start()
        first = ev(event="Checked", properties={"code": "ok"})
        self.send(d, first)
        wait_rows(lambda: pg.query('SELECT count(*) FROM "web"."checked"'), [["1"]])
        # An operator narrows a column: COPY now refuses a longer value, naming its line.
        pg.query('ALTER TABLE "web"."checked" ADD CONSTRAINT short_code CHECK (length(code) < 5)')
        good = [ev(event="Checked", properties={"code": f"c{i}"}) for i in range(3)]
        bad = ev(event="Checked", properties={"code": "far too long"})
        self.send(d, good[0], bad, good[1], good[2])
        wait_rows(lambda: pg.query('SELECT count(*) FROM "web"."checked"'), [["4"]])
        [[col, row_id, value, reason]] = pg.query(
            'SELECT column_name, row_id, value, reason FROM "web"."_discards" '
            "WHERE table_name = 'checked'")
        self.assertEqual((col, row_id), ("", bad["messageId"]))
        self.assertEqual(json.loads(value)["properties"]["code"], "far too long")
        self.assertIn("short_code", reason)
        self.assertIn("23514", reason)
        self.assertGreater(metric_value(d.metrics(), "switchyard_warehouse_refused_rows_total",
                                        {"destination": "pg"}), 0)

    def test_deletion_and_links(self):
        pg = self.fresh_db()
        d = self.daemon(pg_dest(pg))
        d.start()
        keep = ev(user="other", event="Seen")
        self.send(d, ev("identify", user="zoe", anon="z1", traits={"email": "z@x"}),
                  ev(anon="z1", event="Seen"), keep)
        wait_rows(lambda: pg.query('SELECT count(*) FROM "web"."seen"'), [["2"]])
        wait_rows(lambda: pg.query('SELECT count(*) FROM "web"."users"'), [["1"]])
        self.assertEqual(pg.query('SELECT from_id, to_id FROM "web"."identity_links"'),
                         [["z1", "zoe"]])
        r = d.cli("identity", "delete", "--user-id", "zoe", "--requested-by", "dpo@example.com")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_rows(lambda: pg.query('SELECT id FROM "web"."seen"'), [[keep["messageId"]]])
        for t in ["identifies", "users", "identity_links"]:
            self.assertEqual(pg.query(f'SELECT count(*) FROM "web"."{t}"'), [["0"]], t)


if __name__ == "__main__":
    unittest.main()
