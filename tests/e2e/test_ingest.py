"""End-to-end tests of the Segment HTTP Tracking API source: routes, auth, content types, gzip,
the stored event field by field, per-spec rejections and quarantine, limits, client IP, CORS,
pixel, settings and keep-alive. Runs the real daemon; standard library only."""
import base64
import datetime
import gzip
import http.client
import json
import os
import re
import select
import socket
import sys
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402
from support import basic, WRITE_KEY  # noqa: E402

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GIF_MAGIC = b"GIF89a"
T0 = "2024-01-01T00:00:00.000Z"       # the client's clock when the call was made
T0_SENT = "2024-01-01T00:00:05.000Z"  # the client's clock when the request was sent (5 s later)


def new_id(prefix="m"):
    return f"{prefix}-{uuid.uuid4().hex}"


def iso_ms(text):
    """Milliseconds since the epoch of an ISO 8601 timestamp such as 2024-01-01T00:00:00.000Z."""
    dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(dt.timestamp() * 1000)


def b64_query(obj):
    raw = json.dumps(obj).encode()
    return urllib.parse.quote(base64.b64encode(raw).decode(), safe="")


def pixel_record_text(rec):
    """Everything a quarantine record holds about a pixel request, decoded: the event if it was
    parsed, else the request target and its decoded `data` parameter."""
    if isinstance(rec.get("event"), dict):
        return json.dumps(rec["event"])
    try:
        target = base64.b64decode(rec.get("raw_base64", "")).decode(errors="replace")
    except ValueError:
        return ""
    text = urllib.parse.unquote(target)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
    for d in query.get("data", []):
        try:
            text += " " + base64.b64decode(d).decode(errors="replace")
        except ValueError:
            pass
    return text


class DaemonTestCase(unittest.TestCase):
    """One daemon per class."""
    daemon_kwargs = {}

    @classmethod
    def setUpClass(cls):
        cls.d = support.Daemon(**cls.daemon_kwargs)
        try:
            cls.d.start()
        except Exception:
            cls.d.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    # helpers ---------------------------------------------------------------------------------
    def post(self, path, body, **kw):
        return self.d.post(path, body, **kw)

    def assert_json_status(self, resp, status, error=None):
        st, hdrs, body = resp
        self.assertEqual(st, status, body)
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"), hdrs)
        doc = json.loads(body)
        if error is not None:
            self.assertEqual(doc.get("error"), error, body)
        return doc

    def stored(self, message_id, timeout=10):
        """The stored event with this messageId (waits for it)."""
        events = self.d.wait_for_events(lambda evs: any(e.get("messageId") == message_id for e in evs),
                                        timeout=timeout)
        return [e for e in events if e.get("messageId") == message_id][0]

    def stored_where(self, pred, count=1, timeout=10):
        events = self.d.wait_for_events(lambda evs: sum(1 for e in evs if pred(e)) >= count,
                                        timeout=timeout)
        return [e for e in events if pred(e)]

    def quarantined(self, pred, timeout=10):
        """The quarantine records matching pred (waits for at least one)."""
        recs = self.d.wait_for_events(lambda rs: any(pred(r) for r in rs), subdir="quarantine",
                                      timeout=timeout)
        return [r for r in recs if pred(r)]

    def quarantined_event(self, message_id, reason):
        recs = self.quarantined(lambda r: isinstance(r.get("event"), dict)
                                and r["event"].get("messageId") == message_id)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["reason"], reason, recs[0])
        return recs[0]

    def assert_not_stored(self, message_ids):
        """Stores a sentinel after the fact; once it is out, nothing sent before it may be."""
        sentinel = new_id("sentinel")
        st, _, body = self.post("/v1/track", {"event": "Sentinel", "userId": "s", "messageId": sentinel})
        self.assertEqual(st, 200, body)
        self.stored(sentinel)
        ids = set(message_ids)
        events = self.d.read_ndjson()
        leaked = [e for e in events if e.get("messageId") in ids]
        self.assertEqual(leaked, [], "events that were refused were stored")
        records = self.d.quarantine()
        leaked = [r for r in records if isinstance(r.get("event"), dict) and r["event"].get("messageId") in ids]
        self.assertEqual(leaked, [], "events refused as a whole body were quarantined")


# ----------------------------------------------------------------------------------------------
class RoutesTest(DaemonTestCase):
    SINGLE = [
        ("/v1/track", "track", {"event": "Clicked"}),
        ("/v1/t", "track", {"event": "Clicked"}),
        ("/v1/identify", "identify", {"traits": {"plan": "pro"}}),
        ("/v1/i", "identify", {"traits": {"plan": "pro"}}),
        ("/v1/page", "page", {"name": "Home"}),
        ("/v1/p", "page", {"name": "Home"}),
        ("/v1/screen", "screen", {"name": "Main"}),
        ("/v1/s", "screen", {"name": "Main"}),
        ("/v1/group", "group", {"groupId": "org-42"}),
        ("/v1/g", "group", {"groupId": "org-42"}),
        ("/v1/alias", "alias", {"previousId": "old-id"}),
        ("/v1/a", "alias", {"previousId": "old-id"}),
    ]

    def test_single_event_routes(self):
        sent = []
        for path, typ, extra in self.SINGLE:
            with self.subTest(path=path):
                mid = new_id()
                body = {"userId": "user-1", "messageId": mid, **extra}
                doc = self.assert_json_status(self.post(path, body), 200)
                self.assertEqual(doc.get("success"), True)
                sent.append((path, typ, mid, extra))
        for path, typ, mid, extra in sent:
            with self.subTest(path=path):
                ev = self.stored(mid)
                self.assertEqual(ev["type"], typ)
                for k, v in extra.items():
                    self.assertEqual(ev[k], v)

    def test_route_decides_type_on_single_routes(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/p", {"type": "page", "anonymousId": "a", "messageId": mid}), 200)
        self.assertEqual(self.stored(mid)["type"], "page")

    def test_trailing_slash(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/track/", {"event": "E", "userId": "u", "messageId": mid}), 200)
        self.assertEqual(self.stored(mid)["type"], "track")

    def test_batch_routes(self):
        for path in ("/v1/batch", "/v1/import", "/v1/b"):
            with self.subTest(path=path):
                ids = [new_id() for _ in range(7)]
                batch = [
                    {"type": "track", "event": "E", "userId": "u", "messageId": ids[0]},
                    {"type": "identify", "userId": "u", "traits": {"a": 1}, "messageId": ids[1]},
                    {"type": "page", "anonymousId": "a", "name": "Home", "messageId": ids[2]},
                    {"type": "screen", "anonymousId": "a", "name": "Main", "messageId": ids[3]},
                    {"type": "group", "userId": "u", "groupId": "g", "messageId": ids[4]},
                    {"type": "alias", "userId": "u", "previousId": "p", "messageId": ids[5]},
                    {"type": "track", "event": "E2", "anonymousId": "a", "messageId": ids[6]},
                ]
                doc = self.assert_json_status(self.post(path, {"batch": batch}), 200)
                self.assertNotIn("rejected", doc)
                types = [self.stored(m)["type"] for m in ids]
                self.assertEqual(types, ["track", "identify", "page", "screen", "group", "alias", "track"])

    def test_sdk_metrics_route(self):
        # analytics.js telemetry: a simple (non-preflighted) request without auth; never stored,
        # even when it happens to look like an event.
        mid = new_id()
        body = {"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1}],
                "type": "track", "event": "E", "userId": "u", "messageId": mid, "writeKey": WRITE_KEY}
        st, hdrs, data = self.d.request("POST", "/v1/m", json.dumps(body),
                                        {"Content-Type": "text/plain", "Origin": "https://shop.example"})
        self.assertEqual(st, 200, data)
        self.assertEqual(hdrs.get("access-control-allow-origin"), "https://shop.example")
        self.assert_not_stored([mid])

    def test_unknown_route_404(self):
        for path in ("/v2/track", "/v1/unknown", "/", "/v1/trackx"):
            with self.subTest(path=path):
                self.assert_json_status(self.post(path, {"event": "E", "userId": "u"}), 404, "not_found")

    def test_wrong_method_405(self):
        for method, path in (("GET", "/v1/track"), ("PUT", "/v1/batch"), ("DELETE", "/v1/t"),
                             ("GET", "/v1/m"), ("POST", "/v1/pixel/track"),
                             ("POST", f"/v1/projects/{WRITE_KEY}/settings")):
            with self.subTest(method=method, path=path):
                st, hdrs, body = self.d.request(method, path, b"{}" if method != "GET" else None,
                                                {"Authorization": basic()})
                self.assertEqual(st, 405, body)
                self.assertIn("allow", hdrs)
                self.assertEqual(json.loads(body).get("error"), "method_not_allowed")

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=10)
        try:
            ids = []
            local = None
            requests = [
                ("POST", "/v1/track", {"event": "KA", "userId": "u"}, 200),
                ("POST", "/v1/track", {"userId": "u"}, 400),      # invalid event
                ("POST", "/v1/t", {"event": "KA", "userId": "u"}, 200),
                ("GET", "/v1/track", None, 405),
                ("POST", "/v1/nope", {}, 404),
                ("POST", "/v1/b", {"batch": [{"type": "track", "event": "KA", "userId": "u"}]}, 200),
                ("GET", f"/v1/projects/{WRITE_KEY}/settings", None, 200),
                ("POST", "/v1/identify", {"userId": "u"}, 200),
            ]
            for i, (method, path, body, status) in enumerate(requests):
                data = None
                if body is not None:
                    if "messageId" not in body and path != "/v1/b":
                        body = dict(body, messageId=new_id())
                        ids.append((body["messageId"], status))
                    data = json.dumps(body).encode()
                conn.request(method, path, body=data,
                             headers={"Authorization": basic(), "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, status, f"request {i} {method} {path}")
                self.assertFalse(r.will_close, f"server closed the connection after request {i}")
                name = conn.sock.getsockname()
                if local is None:
                    local = name
                self.assertEqual(name, local, "a new connection was opened")
            for mid, status in ids:
                if status == 200:
                    self.stored(mid)
        finally:
            conn.close()


# ----------------------------------------------------------------------------------------------
class AuthTest(DaemonTestCase):
    def ok(self, path, body, **kw):
        doc = self.assert_json_status(self.post(path, body, **kw), 200)
        self.assertTrue(doc["success"])

    def unauthorized(self, path, body, **kw):
        st, hdrs, data = self.post(path, body, **kw)
        self.assertEqual(st, 401, data)
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"))
        self.assertEqual(json.loads(data)["error"], "unauthorized")
        self.assertIn("www-authenticate", hdrs)

    def test_basic_with_colon(self):
        mid = new_id()
        self.ok("/v1/track", {"event": "E", "userId": "u", "messageId": mid}, auth=basic(colon=True))
        self.assertEqual(self.stored(mid)["event"], "E")

    def test_basic_without_colon(self):
        mid = new_id()
        self.ok("/v1/track", {"event": "E", "userId": "u", "messageId": mid}, auth=basic(colon=False))
        self.stored(mid)

    def test_basic_with_password_ignored(self):
        mid = new_id()
        auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:ignored".encode()).decode()
        self.ok("/v1/track", {"event": "E", "userId": "u", "messageId": mid}, auth=auth)
        self.stored(mid)

    def test_basic_scheme_case_insensitive(self):
        mid = new_id()
        auth = "basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        self.ok("/v1/track", {"event": "E", "userId": "u", "messageId": mid}, auth=auth)
        self.stored(mid)

    def test_second_source_key(self):
        mid = new_id()
        self.ok("/v1/track", {"event": "E", "userId": "u", "messageId": mid}, auth=basic("other-key"))
        self.stored(mid)

    def test_write_key_in_body(self):
        mid = new_id()
        self.ok("/v1/track", {"event": "E", "userId": "u", "messageId": mid, "writeKey": WRITE_KEY}, auth=False)
        ev = self.stored(mid)
        self.assertNotIn("writeKey", ev)

    def test_write_key_in_batch_body(self):
        mid = new_id()
        self.ok("/v1/batch", {"batch": [{"type": "track", "event": "E", "userId": "u", "messageId": mid}],
                              "writeKey": WRITE_KEY, "sentAt": T0_SENT}, auth=False)
        self.assertNotIn("writeKey", self.stored(mid))

    def test_write_key_per_event_in_b(self):
        # analytics.js batching: no Authorization-less top-level key; each event carries writeKey.
        ids = [new_id(), new_id()]
        batch = [{"type": "track", "event": "E", "anonymousId": "a", "messageId": ids[0], "writeKey": WRITE_KEY},
                 {"type": "page", "anonymousId": "a", "messageId": ids[1], "writeKey": WRITE_KEY}]
        self.ok("/v1/b", {"batch": batch, "sentAt": T0_SENT}, auth=False,
                headers={"Content-Type": "text/plain"})
        for m in ids:
            self.assertNotIn("writeKey", self.stored(m))

    def test_write_key_only_on_a_later_event_in_b(self):
        ids = [new_id(), new_id()]
        batch = [{"type": "track", "event": "E", "anonymousId": "a", "messageId": ids[0]},
                 {"type": "track", "event": "E", "anonymousId": "a", "messageId": ids[1], "writeKey": WRITE_KEY}]
        self.ok("/v1/b", {"batch": batch}, auth=False)
        for m in ids:
            self.stored(m)

    def test_401_cases(self):
        refused = []

        def body():
            mid = new_id()
            refused.append(mid)
            return {"event": "E", "userId": "u", "messageId": mid}

        cases = {
            "no auth": dict(auth=False),
            "unknown key": dict(auth=basic("nope")),
            "unknown key no colon": dict(auth=basic("nope", colon=False)),
            "empty key": dict(auth=basic("")),
            "bearer": dict(auth=f"Bearer {WRITE_KEY}"),
            "not base64": dict(auth="Basic %%%not-base64%%%"),
            "raw key": dict(auth=WRITE_KEY),
        }
        for name, kw in cases.items():
            with self.subTest(case=name):
                self.unauthorized("/v1/track", body(), **kw)
        with self.subTest(case="unknown key in body"):
            self.unauthorized("/v1/track", dict(body(), writeKey="nope"), auth=False)
        with self.subTest(case="unknown key per event in /v1/b"):
            b = dict(body(), type="track", writeKey="nope")
            self.unauthorized("/v1/b", {"batch": [b]}, auth=False)
        with self.subTest(case="batch without any key"):
            self.unauthorized("/v1/batch", {"batch": [dict(body(), type="track")]}, auth=False)
        with self.subTest(case="invalid JSON without key"):
            # Nothing about the body is answered before authentication.
            self.unauthorized("/v1/track", b"{not json", auth=False)
        self.assert_not_stored(refused)


# ----------------------------------------------------------------------------------------------
class ContentTest(DaemonTestCase):
    def test_content_types_ignored(self):
        for ctype in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                      "application/json; charset=utf-8", None):
            with self.subTest(content_type=ctype):
                mid = new_id()
                headers = {"Authorization": basic()}
                if ctype:
                    headers["Content-Type"] = ctype
                st, _, body = self.d.request("POST", "/v1/t", json.dumps(
                    {"event": "CT", "userId": "u", "messageId": mid}), headers)
                self.assertEqual(st, 200, body)
                self.assertEqual(self.stored(mid)["event"], "CT")

    def test_gzip_batch_like_rudderstack(self):
        # rudder-sdk-node: gzipped JSON labelled as form data, Basic auth, per-event
        # originalTimestamp and sentAt, batch-level timestamp/sentAt.
        mid = new_id()
        body = {"batch": [{"type": "identify", "userId": "user-123", "traits": {"plan": "pro"},
                           "context": {"traits": {"plan": "pro"},
                                       "library": {"name": "analytics-node", "version": "3.0.13"}},
                           "channel": "server", "originalTimestamp": T0, "sentAt": T0_SENT,
                           "messageId": mid}],
                "timestamp": T0_SENT, "sentAt": T0_SENT}
        data = gzip.compress(json.dumps(body).encode())
        st, _, resp = self.d.request("POST", "/v1/batch", data, {
            "Authorization": basic(), "Content-Type": "application/x-www-form-urlencoded",
            "Content-Encoding": "gzip", "User-Agent": "analytics-node/3.0.13"})
        self.assertEqual(st, 200, resp)
        ev = self.stored(mid)
        self.assertEqual(ev["type"], "identify")
        self.assertEqual(ev["traits"], {"plan": "pro"})
        self.assertEqual(ev["channel"], "server")
        self.assertEqual(ev["context"]["library"], {"name": "analytics-node", "version": "3.0.13"})
        self.assertEqual(ev["originalTimestamp"], T0)
        self.assertEqual(ev["sentAt"], T0_SENT)
        self.assertEqual(iso_ms(ev["receivedAt"]) - iso_ms(ev["timestamp"]), 5000)

    def test_gzip_single_event(self):
        mid = new_id()
        data = gzip.compress(json.dumps({"event": "GZ", "userId": "u", "messageId": mid}).encode())
        st, _, resp = self.d.request("POST", "/v1/track", data, {
            "Authorization": basic(), "Content-Type": "text/plain", "Content-Encoding": "gzip"})
        self.assertEqual(st, 200, resp)
        self.assertEqual(self.stored(mid)["event"], "GZ")

    def test_invalid_gzip(self):
        st, _, resp = self.d.request("POST", "/v1/track", b"this is not gzip", {
            "Authorization": basic(), "Content-Encoding": "gzip"})
        self.assertEqual(st, 400, resp)

    def test_invalid_json_and_shapes(self):
        cases = [
            ("/v1/track", b"{not json", "invalid_json"),
            ("/v1/track", b"", "invalid_json"),
            ("/v1/track", b"[1,2]", "invalid_body"),
            ("/v1/batch", b"{\"events\":[]}", "invalid_batch"),
            ("/v1/batch", b"{\"batch\":{}}", "invalid_batch"),
            ("/v1/batch", b"{\"batch\":[]}", "empty_batch"),
        ]
        for path, body, code in cases:
            with self.subTest(path=path, body=body):
                self.assert_json_status(self.post(path, body), 400, code)


# ----------------------------------------------------------------------------------------------
class StoredEventTest(DaemonTestCase):
    def test_track_field_by_field(self):
        mid = new_id("node-next")
        props = {"order_id": "o-1", "revenue": 12.5, "items": [{"sku": "a", "qty": 2}], "nested": {"x": None}}
        library = {"name": "@segment/analytics-node", "version": "3.1.0"}
        body = {"type": "track", "event": "Order Completed", "userId": "user-123",
                "anonymousId": "anon-abc-456", "properties": props, "messageId": mid,
                "timestamp": T0, "sentAt": T0_SENT, "integrations": {"Mixpanel": False},
                "context": {"library": library, "page": {"path": "/checkout"}},
                "_metadata": {"nodeVersion": "v20.20.2", "jsRuntime": "node"}, "writeKey": WRITE_KEY}
        before = time.time() * 1000
        self.assert_json_status(self.post("/v1/track", body), 200)
        after = time.time() * 1000
        ev = self.stored(mid)
        self.assertEqual(ev["type"], "track")
        self.assertEqual(ev["messageId"], mid)
        self.assertEqual(ev["event"], "Order Completed")
        self.assertEqual(ev["userId"], "user-123")
        self.assertEqual(ev["anonymousId"], "anon-abc-456")
        self.assertEqual(ev["properties"], props)
        self.assertEqual(ev["integrations"], {"Mixpanel": False})
        self.assertEqual(ev["context"]["library"], library)
        self.assertEqual(ev["context"]["page"], {"path": "/checkout"})
        self.assertEqual(ev["context"]["ip"], "127.0.0.1")
        self.assertEqual(ev["_metadata"], {"nodeVersion": "v20.20.2", "jsRuntime": "node"})
        self.assertNotIn("writeKey", ev)
        # The client's timestamp becomes originalTimestamp; sentAt is kept; timestamp is
        # corrected for the device clock: receivedAt − (sentAt − originalTimestamp).
        self.assertEqual(ev["originalTimestamp"], T0)
        self.assertEqual(ev["sentAt"], T0_SENT)
        received = iso_ms(ev["receivedAt"])
        self.assertEqual(iso_ms(ev["timestamp"]), received - 5000)
        self.assertGreaterEqual(received, before - 1000)
        self.assertLessEqual(received, after + 1000)
        self.assertRegex(ev["receivedAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertRegex(ev["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_identify_group_alias_page_screen_fields(self):
        ids = {t: new_id() for t in ("identify", "group", "alias", "page", "screen")}
        self.assert_json_status(self.post("/v1/identify", {
            "userId": "u-1", "traits": {"email": "a@example.com", "age": 30}, "messageId": ids["identify"]}), 200)
        self.assert_json_status(self.post("/v1/group", {
            "userId": "u-1", "groupId": "org-42", "traits": {"name": "Org"}, "messageId": ids["group"]}), 200)
        self.assert_json_status(self.post("/v1/alias", {
            "userId": "u-1", "previousId": "anon-1", "messageId": ids["alias"]}), 200)
        self.assert_json_status(self.post("/v1/page", {
            "anonymousId": "a-1", "name": "Pricing", "category": "Docs",
            "properties": {"url": "https://example.com/pricing"}, "messageId": ids["page"]}), 200)
        self.assert_json_status(self.post("/v1/screen", {
            "anonymousId": "a-1", "name": "Home", "properties": {"x": 1}, "messageId": ids["screen"]}), 200)
        ev = self.stored(ids["identify"])
        self.assertEqual((ev["type"], ev["userId"], ev["traits"]), ("identify", "u-1", {"email": "a@example.com", "age": 30}))
        ev = self.stored(ids["group"])
        self.assertEqual((ev["type"], ev["groupId"], ev["traits"]), ("group", "org-42", {"name": "Org"}))
        ev = self.stored(ids["alias"])
        self.assertEqual((ev["type"], ev["userId"], ev["previousId"]), ("alias", "u-1", "anon-1"))
        ev = self.stored(ids["page"])
        self.assertEqual((ev["type"], ev["anonymousId"], ev["name"], ev["category"], ev["properties"]),
                         ("page", "a-1", "Pricing", "Docs", {"url": "https://example.com/pricing"}))
        self.assertNotIn("userId", ev)
        ev = self.stored(ids["screen"])
        self.assertEqual((ev["type"], ev["name"], ev["properties"]), ("screen", "Home", {"x": 1}))

    def test_numeric_user_id_accepted(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/track", {"event": "E", "userId": 12345, "messageId": mid}), 200)
        self.stored(mid)

    def test_timestamp_without_sent_at(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/track", {"event": "E", "userId": "u", "messageId": mid,
                                                        "timestamp": T0}), 200)
        ev = self.stored(mid)
        self.assertEqual(ev["originalTimestamp"], T0)
        self.assertNotIn("sentAt", ev)
        self.assertEqual(ev["timestamp"], T0)

    def test_explicit_timestamp_beside_original_timestamp(self):
        # RudderStack: originalTimestamp is the device clock; an explicit timestamp (historical
        # import) is the caller's event time and is kept as given.
        mid = new_id()
        self.assert_json_status(self.post("/v1/batch", {"batch": [{
            "type": "track", "event": "E", "userId": "u", "messageId": mid, "originalTimestamp": T0,
            "sentAt": T0_SENT, "timestamp": "2020-06-01T12:00:00.000Z"}]}), 200)
        ev = self.stored(mid)
        self.assertEqual(ev["originalTimestamp"], T0)
        self.assertEqual(ev["timestamp"], "2020-06-01T12:00:00.000Z")

    def test_no_client_times(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/track", {"event": "E", "userId": "u", "messageId": mid}), 200)
        ev = self.stored(mid)
        self.assertNotIn("originalTimestamp", ev)
        self.assertEqual(ev["timestamp"], ev["receivedAt"])

    def test_timezone_offsets(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/track", {
            "event": "E", "userId": "u", "messageId": mid,
            "timestamp": "2024-01-01T02:00:00.000+02:00", "sentAt": "2023-12-31T22:00:07.250-02:00"}), 200)
        ev = self.stored(mid)
        self.assertEqual(ev["originalTimestamp"], "2024-01-01T02:00:00.000+02:00")
        self.assertEqual(iso_ms(ev["receivedAt"]) - iso_ms(ev["timestamp"]), 7250)

    def test_batch_sent_at_applies_to_events(self):
        ids = [new_id(), new_id()]
        batch = [{"type": "track", "event": "E", "userId": "u", "messageId": ids[0], "timestamp": T0},
                 {"type": "track", "event": "E", "userId": "u", "messageId": ids[1],
                  "timestamp": "2024-01-01T00:00:04.000Z"}]
        self.assert_json_status(self.post("/v1/batch", {"batch": batch, "sentAt": T0_SENT}), 200)
        e0, e1 = self.stored(ids[0]), self.stored(ids[1])
        self.assertEqual(e0["sentAt"], T0_SENT)
        self.assertEqual(iso_ms(e0["receivedAt"]) - iso_ms(e0["timestamp"]), 5000)
        self.assertEqual(iso_ms(e1["receivedAt"]) - iso_ms(e1["timestamp"]), 1000)

    def test_batch_context_and_integrations_merge(self):
        ids = [new_id(), new_id()]
        batch = [
            {"type": "track", "event": "E", "userId": "u", "messageId": ids[0],
             "context": {"library": {"name": "own-lib"}, "locale": "fr-FR"},
             "integrations": {"Amplitude": False}},
            {"type": "identify", "userId": "u", "messageId": ids[1]},
        ]
        self.assert_json_status(self.post("/v1/batch", {
            "batch": batch,
            "context": {"library": {"name": "batch-lib"}, "app": {"name": "shop"}},
            "integrations": {"All": True, "Amplitude": True}}), 200)
        e0, e1 = self.stored(ids[0]), self.stored(ids[1])
        # The event's own keys win; batch-level keys it lacks are added.
        self.assertEqual(e0["context"]["library"], {"name": "own-lib"})
        self.assertEqual(e0["context"]["locale"], "fr-FR")
        self.assertEqual(e0["context"]["app"], {"name": "shop"})
        self.assertEqual(e0["context"]["ip"], "127.0.0.1")
        self.assertEqual(e0["integrations"], {"Amplitude": False, "All": True})
        self.assertEqual(e1["context"]["library"], {"name": "batch-lib"})
        self.assertEqual(e1["context"]["app"], {"name": "shop"})
        self.assertEqual(e1["integrations"], {"All": True, "Amplitude": True})
        for e in (e0, e1):
            self.assertEqual(len(e["context"]), len(set(e["context"])))

    def test_client_context_ip_kept(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/track", {"event": "E", "userId": "u", "messageId": mid,
                                                        "context": {"ip": "198.51.100.23"}}), 200)
        self.assertEqual(self.stored(mid)["context"]["ip"], "198.51.100.23")

    def test_message_id_generated_uuid4(self):
        marker = new_id("gen")
        self.assert_json_status(self.post("/v1/track", {"event": marker, "userId": "u"}), 200)
        self.assert_json_status(self.post("/v1/batch", {"batch": [
            {"type": "track", "event": marker, "userId": "u"},
            {"type": "track", "event": marker, "userId": "u", "messageId": None},
            {"type": "track", "event": marker, "userId": "u", "messageId": ""}]}), 200)
        evs = self.stored_where(lambda e: e.get("event") == marker, count=4)
        self.assertEqual(len(evs), 4)
        for e in evs:
            self.assertRegex(e["messageId"], UUID4)
        self.assertEqual(len({e["messageId"] for e in evs}), 4)

    def test_message_id_length_limit(self):
        ok_id = "x" * 100
        marker = new_id("len")
        self.assert_json_status(self.post("/v1/track", {"event": marker, "userId": "u", "messageId": ok_id}), 200)
        ev = self.stored_where(lambda e: e.get("event") == marker)[0]
        self.assertEqual(ev["messageId"], ok_id)
        long_id = "y" * 100 + new_id()
        self.assert_json_status(self.post("/v1/track", {"event": "E", "userId": "u", "messageId": long_id}),
                                400, "message_id_too_long")
        self.quarantined_event(long_id, "message_id_too_long")


# ----------------------------------------------------------------------------------------------
class RejectionTest(DaemonTestCase):
    # (route, event, reason); the event gets a unique messageId.
    SINGLE_CASES = [
        ("/v1/track", {"userId": "u"}, "missing_event"),
        ("/v1/track", {"userId": "u", "event": ""}, "missing_event"),
        ("/v1/track", {"userId": "u", "event": None}, "missing_event"),
        ("/v1/track", {"userId": "u", "event": 5}, "invalid_event"),
        ("/v1/track", {"event": "E"}, "missing_id"),
        ("/v1/track", {"event": "E", "userId": "", "anonymousId": None}, "missing_id"),
        ("/v1/track", {"event": "E", "userId": {"a": 1}}, "invalid_user_id"),
        ("/v1/track", {"event": "E", "anonymousId": ["a"]}, "invalid_anonymous_id"),
        ("/v1/identify", {"traits": {}}, "missing_id"),
        ("/v1/alias", {"userId": "u"}, "missing_previous_id"),
        ("/v1/alias", {"userId": "u", "previousId": True}, "invalid_previous_id"),
        ("/v1/group", {"userId": "u"}, "missing_group_id"),
        ("/v1/group", {"userId": "u", "groupId": []}, "invalid_group_id"),
        ("/v1/track", {"userId": "u", "event": "E", "context": "x"}, "invalid_context"),
        ("/v1/track", {"userId": "u", "event": "E", "integrations": 1}, "invalid_integrations"),
    ]

    def test_single_route_rejections(self):
        for path, ev, reason in self.SINGLE_CASES:
            with self.subTest(path=path, reason=reason, ev=ev):
                mid = new_id()
                body = dict(ev, messageId=mid)
                doc = self.assert_json_status(self.post(path, body), 400, reason)
                self.assertEqual(doc["success"], False)
                self.assertTrue(doc.get("message"))
                rec = self.quarantined_event(mid, reason)
                self.assertEqual(rec["event"], body)
                self.assertEqual(rec["source"], "web")
                self.assertTrue(rec.get("message"))

    def test_invalid_message_id_type(self):
        marker = new_id("mid-type")
        doc = self.assert_json_status(self.post("/v1/track", {"event": marker, "userId": "u", "messageId": 42}),
                                      400, "invalid_message_id")
        self.assertFalse(doc["success"])
        self.quarantined(lambda r: isinstance(r.get("event"), dict) and r["event"].get("event") == marker
                         and r["reason"] == "invalid_message_id")

    def test_partial_batch(self):
        ids = [new_id() for _ in range(9)]
        batch = [
            {"type": "track", "event": "Good", "userId": "u", "messageId": ids[0]},                 # 0 ok
            {"event": "NoType", "userId": "u", "messageId": ids[1]},                                # 1
            {"type": "bogus", "userId": "u", "messageId": ids[2]},                                  # 2
            {"type": "track", "userId": "u", "messageId": ids[3]},                                  # 3
            {"type": "identify", "traits": {"a": 1}, "messageId": ids[4]},                          # 4
            {"type": "alias", "userId": "u", "messageId": ids[5]},                                  # 5
            {"type": "group", "userId": "u", "messageId": ids[6]},                                  # 6
            {"type": "page", "anonymousId": "a", "messageId": ids[7]},                              # 7 ok
            {"type": "track", "event": "E", "userId": "u", "messageId": "z" * 101},                 # 8
            "not an object",                                                                        # 9
            {"type": "identify", "userId": "u", "messageId": ids[8]},                               # 10 ok
        ]
        doc = self.assert_json_status(self.post("/v1/batch", {"batch": batch}), 200)
        self.assertEqual(doc["accepted"], 3)
        expected = {1: "missing_type", 2: "invalid_type", 3: "missing_event", 4: "missing_id",
                    5: "missing_previous_id", 6: "missing_group_id", 8: "message_id_too_long",
                    9: "not_an_object"}
        got = {r["index"]: r["reason"] for r in doc["rejected"]}
        self.assertEqual(got, expected)
        for r in doc["rejected"]:
            self.assertTrue(r["message"])
        for i in (0, 7, 10):
            mid = batch[i]["messageId"]
            self.assertEqual(self.stored(mid)["messageId"], mid)
        for i in (1, 2, 3, 4, 5, 6):
            rec = self.quarantined_event(batch[i]["messageId"], expected[i])
            self.assertEqual(rec["event"], batch[i])
            self.assertEqual(rec["index"], i)
            self.assertEqual(rec["route"], "/v1/batch")
            self.assertEqual(rec["source"], "web")
        rec = self.quarantined_event("z" * 101, "message_id_too_long")
        self.assertEqual(rec["index"], 8)
        recs = self.quarantined(lambda r: r.get("reason") == "not_an_object" and r.get("event") == "not an object")
        self.assertEqual(recs[0]["index"], 9)
        # Rejected events are not delivered.
        self.assert_not_stored_delivered([batch[i]["messageId"] for i in (1, 2, 3, 4, 5, 6)])

    def assert_not_stored_delivered(self, ids):
        sentinel = new_id("sentinel")
        self.assert_json_status(self.post("/v1/track", {"event": "S", "userId": "s", "messageId": sentinel}), 200)
        self.stored(sentinel)
        leaked = [e for e in self.d.read_ndjson() if e.get("messageId") in set(ids)]
        self.assertEqual(leaked, [])

    def test_all_rejected_batch_is_200(self):
        mid = new_id()
        doc = self.assert_json_status(self.post("/v1/batch", {"batch": [{"type": "track", "userId": "u",
                                                                           "messageId": mid}]}), 200)
        self.assertEqual(doc["accepted"], 0)
        self.assertEqual(doc["rejected"], [{"index": 0, "reason": "missing_event",
                                            "message": doc["rejected"][0]["message"]}])
        self.quarantined_event(mid, "missing_event")


# ----------------------------------------------------------------------------------------------
def raw_request(port, head, body, early_wait=0.5, timeout=20):
    """Sends `head` (request line and headers), waits briefly for an early answer (a server may
    refuse a declared Content-Length before the body), sends the body if none came, and returns
    the response status. Tolerates the server closing while the body is still being sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        r, _, _ = select.select([s], [], [], early_wait)
        if not r:
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        resp = http.client.HTTPResponse(s)
        resp.begin()
        data = resp.read()
        return resp.status, data
    finally:
        s.close()


class LimitsTest(DaemonTestCase):
    def padded_event(self, size, mid, typ=None):
        """A track event whose minified JSON is exactly `size` bytes."""
        ev = {"event": "Big", "userId": "u", "messageId": mid, "properties": {"pad": ""}}
        if typ:
            ev = {"type": typ, **ev}
        base = len(json.dumps(ev, separators=(",", ":")))
        ev["properties"]["pad"] = "p" * (size - base)
        text = json.dumps(ev, separators=(",", ":"))
        assert len(text) == size, (len(text), size)
        return ev, text

    def test_event_at_32kib_is_accepted(self):
        mid = new_id()
        _, text = self.padded_event(32 * 1024, mid)
        self.assert_json_status(self.post("/v1/track", text), 200)
        self.stored(mid)

    def test_event_over_32kib_single_route(self):
        mid = new_id()
        _, text = self.padded_event(32 * 1024 + 1, mid)
        self.assert_json_status(self.post("/v1/track", text), 400, "event_too_large")

    def test_event_over_32kib_in_batch(self):
        ok_mid, big_mid = new_id(), new_id()
        big, _ = self.padded_event(32 * 1024 + 1, big_mid, typ="track")
        near, _ = self.padded_event(32 * 1024, ok_mid, typ="track")
        doc = self.assert_json_status(self.post("/v1/batch", {"batch": [near, big]}), 200)
        self.assertEqual(doc["accepted"], 1)
        self.assertEqual([(r["index"], r["reason"]) for r in doc["rejected"]], [(1, "event_too_large")])
        self.stored(ok_mid)
        self.quarantined_event(big_mid, "event_too_large")

    def batch_body(self, size, marker):
        """A /v1/batch body of exactly `size` bytes, made of events well under 32 KiB."""
        events = []
        per = 20000
        body = {"batch": events}
        while True:
            ev = {"type": "track", "event": marker, "userId": "u", "properties": {"pad": "p" * per}}
            events.append(ev)
            if len(json.dumps(body, separators=(",", ":"))) >= size:
                break
        excess = len(json.dumps(body, separators=(",", ":"))) - size
        last = events[-1]["properties"]
        last["pad"] = last["pad"][:len(last["pad"]) - excess]
        text = json.dumps(body, separators=(",", ":"))
        assert len(text) == size, (len(text), size)
        return text, len(events)

    def test_batch_at_500kib_is_accepted(self):
        marker = new_id("b500")
        text, n = self.batch_body(500 * 1024, marker)
        doc = self.assert_json_status(self.post("/v1/batch", text), 200)
        self.assertNotIn("rejected", doc)
        self.stored_where(lambda e: e.get("event") == marker, count=n)

    def test_batch_over_500kib(self):
        marker = new_id("b501")
        text, _ = self.batch_body(500 * 1024 + 1, marker)
        self.assert_json_status(self.post("/v1/batch", text), 400, "batch_too_large")
        # Same limit after gzip inflation.
        st, _, body = self.d.request("POST", "/v1/batch", gzip.compress(text.encode()),
                                     {"Authorization": basic(), "Content-Encoding": "gzip"})
        self.assertEqual(st, 400, body)
        self.assertEqual(json.loads(body)["error"], "batch_too_large")

    def test_event_count_limit(self):
        marker = new_id("n")
        events = [{"type": "track", "event": marker, "userId": "u"} for _ in range(2500)]
        doc = self.assert_json_status(self.post("/v1/batch", {"batch": events}), 200)
        self.assertNotIn("rejected", doc)
        events.append({"type": "track", "event": marker + "-over", "userId": "u"})
        self.assert_json_status(self.post("/v1/batch", {"batch": events}), 400, "too_many_events")
        self.stored_where(lambda e: e.get("event") == marker, count=2500, timeout=20)

    def test_body_over_1mib_is_413(self):
        size = 1024 * 1024 + 1
        body = b"{\"batch\":[" + b" " * (size - 12) + b"]}"
        self.assertEqual(len(body), size)
        head = (f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {basic()}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()
        status, data = raw_request(self.d.port, head, body)
        self.assertEqual(status, 413, data)

    def test_body_over_1mib_chunked_is_413(self):
        size = 1024 * 1024 + 1
        body = b"{\"batch\":[" + b" " * (size - 12) + b"]}"
        chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        head = (f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {basic()}\r\n"
                f"Transfer-Encoding: chunked\r\n\r\n").encode()
        status, data = raw_request(self.d.port, head, chunked)
        self.assertEqual(status, 413, data)

    def test_gzip_inflating_over_1mib_is_413(self):
        body = b"{\"batch\":[" + b" " * (2 * 1024 * 1024) + b"]}"
        st, _, data = self.d.request("POST", "/v1/batch", gzip.compress(body),
                                     {"Authorization": basic(), "Content-Encoding": "gzip"})
        self.assertEqual(st, 413, data)

    def test_body_at_1mib_reaches_the_batch_limit(self):
        # Exactly the hard cap passes the HTTP layer, and the 500 KiB batch limit answers.
        size = 1024 * 1024
        body = b"{\"batch\":[" + b" " * (size - 12) + b"]}"
        st, _, data = self.d.request("POST", "/v1/batch", body, {"Authorization": basic()})
        self.assertEqual(st, 400, data)
        self.assertEqual(json.loads(data)["error"], "batch_too_large")


# ----------------------------------------------------------------------------------------------
class UntrustedProxyTest(DaemonTestCase):
    def test_xff_ignored_from_untrusted_peer(self):
        mid = new_id()
        self.assert_json_status(self.post("/v1/track", {"event": "E", "userId": "u", "messageId": mid},
                                          headers={"X-Forwarded-For": "203.0.113.9"}), 200)
        self.assertEqual(self.stored(mid)["context"]["ip"], "127.0.0.1")


STRICT_SOURCES = f"""
  - name: web
    write_keys: [{WRITE_KEY}]
    allowed_origins: ["https://shop.example", "https://www.shop.example"]
  - name: other
    write_keys: [other-key]
    allowed_origins: []
"""


class TrustedProxyTest(DaemonTestCase):
    daemon_kwargs = {"server": '  trusted_proxies: ["127.0.0.1/32"]', "sources": STRICT_SOURCES}

    def ip_for(self, xff):
        mid = new_id()
        headers = {} if xff is None else {"X-Forwarded-For": xff}
        self.assert_json_status(self.post("/v1/track", {"event": "E", "userId": "u", "messageId": mid},
                                          headers=headers), 200)
        return self.stored(mid)["context"]["ip"]

    def test_xff_from_trusted_peer(self):
        self.assertEqual(self.ip_for("203.0.113.9"), "203.0.113.9")

    def test_xff_rightmost_untrusted_hop(self):
        # The client can write anything left of the proxy's own entry.
        self.assertEqual(self.ip_for("198.51.100.7, 203.0.113.9"), "203.0.113.9")
        self.assertEqual(self.ip_for("198.51.100.7, 203.0.113.9, 127.0.0.1"), "203.0.113.9")

    def test_no_xff_uses_peer(self):
        self.assertEqual(self.ip_for(None), "127.0.0.1")

    def test_garbage_xff_falls_back_to_peer(self):
        self.assertEqual(self.ip_for("not-an-ip"), "127.0.0.1")

    def test_ipv6_xff(self):
        self.assertEqual(self.ip_for("2001:db8::1"), "2001:db8::1")

    def test_preflight_disallowed_origin_403(self):
        for origin in ("https://evil.example", "https://shop.example.evil", "http://shop.example", None):
            with self.subTest(origin=origin):
                headers = {"Access-Control-Request-Method": "POST",
                           "Access-Control-Request-Headers": "authorization"}
                if origin:
                    headers["Origin"] = origin
                st, hdrs, body = self.d.request("OPTIONS", "/v1/t", headers=headers)
                self.assertEqual(st, 403, body)
                self.assertNotIn("access-control-allow-origin", hdrs)

    def test_preflight_second_exact_origin(self):
        st, hdrs, _ = self.d.request("OPTIONS", "/v1/b", headers={
            "Origin": "https://www.shop.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(st, 204)
        self.assertEqual(hdrs.get("access-control-allow-origin"), "https://www.shop.example")
        self.assertEqual(hdrs.get("access-control-allow-credentials"), "true")

    def test_actual_request_disallowed_origin_has_no_acao(self):
        mid = new_id()
        st, hdrs, body = self.post("/v1/t", {"event": "E", "userId": "u", "messageId": mid},
                                   headers={"Origin": "https://evil.example"})
        self.assertEqual(st, 200, body)
        self.assertNotIn("access-control-allow-origin", hdrs)


# ----------------------------------------------------------------------------------------------
class CorsTest(DaemonTestCase):
    """Default sources: 'web' allows https://shop.example exactly; 'other' allows "*"."""

    def preflight(self, origin, path="/v1/t", req_headers="authorization,x-retry-count"):
        return self.d.request("OPTIONS", path, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": req_headers})

    def assert_allow_headers(self, hdrs):
        allowed = {h.strip().lower() for h in hdrs.get("access-control-allow-headers", "").split(",")}
        for h in ("authorization", "content-type", "x-retry-count"):
            self.assertIn(h, allowed)
        self.assertIn("POST", hdrs.get("access-control-allow-methods", ""))
        self.assertIn("origin", hdrs.get("vary", "").lower())

    def test_preflight_exact_origin_with_credentials(self):
        for path in ("/v1/t", "/v1/b", "/v1/track", "/v1/batch", "/v1/i", "/v1/m"):
            with self.subTest(path=path):
                st, hdrs, _ = self.preflight("https://shop.example", path)
                self.assertEqual(st, 204)
                self.assertEqual(hdrs.get("access-control-allow-origin"), "https://shop.example")
                self.assertEqual(hdrs.get("access-control-allow-credentials"), "true")
                self.assert_allow_headers(hdrs)

    def test_preflight_star_origin_without_credentials(self):
        st, hdrs, _ = self.preflight("https://anything.example")
        self.assertEqual(st, 204)
        self.assertEqual(hdrs.get("access-control-allow-origin"), "*")
        self.assertNotIn("access-control-allow-credentials", hdrs)
        self.assert_allow_headers(hdrs)

    def test_actual_request_exact_origin(self):
        mid = new_id()
        st, hdrs, body = self.post("/v1/t", {"event": "E", "userId": "u", "messageId": mid},
                                   headers={"Origin": "https://shop.example", "Content-Type": "text/plain"})
        self.assertEqual(st, 200, body)
        self.assertEqual(hdrs.get("access-control-allow-origin"), "https://shop.example")
        self.assertEqual(hdrs.get("access-control-allow-credentials"), "true")
        self.assertIn("origin", hdrs.get("vary", "").lower())
        self.assertIn("retry-after", hdrs.get("access-control-expose-headers", "").lower())
        self.stored(mid)

    def test_actual_request_star_source(self):
        mid = new_id()
        st, hdrs, body = self.post("/v1/t", {"event": "E", "userId": "u", "messageId": mid},
                                   auth=basic("other-key"), headers={"Origin": "https://anything.example"})
        self.assertEqual(st, 200, body)
        self.assertEqual(hdrs.get("access-control-allow-origin"), "*")
        self.assertNotIn("access-control-allow-credentials", hdrs)
        self.assertIn("retry-after", hdrs.get("access-control-expose-headers", "").lower())
        self.stored(mid)

    def test_actual_request_origin_not_in_this_sources_list(self):
        # test-key's source allows only https://shop.example.
        mid = new_id()
        st, hdrs, body = self.post("/v1/t", {"event": "E", "userId": "u", "messageId": mid},
                                   headers={"Origin": "https://evil.example"})
        self.assertEqual(st, 200, body)
        self.assertNotIn("access-control-allow-origin", hdrs)

    def test_error_answers_carry_cors(self):
        # A browser can only read an error if it carries CORS headers.
        st, hdrs, _ = self.post("/v1/t", {"userId": "u", "messageId": new_id()},
                                headers={"Origin": "https://shop.example"})
        self.assertEqual(st, 400)
        self.assertEqual(hdrs.get("access-control-allow-origin"), "https://shop.example")
        st, hdrs, _ = self.post("/v1/t", {"event": "E", "userId": "u"}, auth=basic("nope"),
                                headers={"Origin": "https://shop.example"})
        self.assertEqual(st, 401)
        self.assertEqual(hdrs.get("access-control-allow-origin"), "https://shop.example")

    def test_no_origin_no_cors_headers(self):
        st, hdrs, _ = self.post("/v1/t", {"event": "E", "userId": "u", "messageId": new_id()})
        self.assertEqual(st, 200)
        self.assertNotIn("access-control-allow-origin", hdrs)


# ----------------------------------------------------------------------------------------------
class PixelSettingsTest(DaemonTestCase):
    def assert_gif(self, resp):
        st, hdrs, body = resp
        self.assertEqual(st, 200, body)
        self.assertEqual(hdrs.get("content-type"), "image/gif")
        self.assertTrue(body.startswith(GIF_MAGIC), body[:10])
        self.assertIn("no-store", hdrs.get("cache-control", ""))

    def test_pixel_valid(self):
        mid = new_id()
        data = b64_query({"event": "Email Opened", "userId": "u-px", "messageId": mid, "writeKey": WRITE_KEY,
                          "properties": {"campaign": "spring"}, "timestamp": T0})
        self.assert_gif(self.d.request("GET", f"/v1/pixel/track?data={data}"))
        ev = self.stored(mid)
        self.assertEqual(ev["type"], "track")
        self.assertEqual(ev["event"], "Email Opened")
        self.assertEqual(ev["userId"], "u-px")
        self.assertEqual(ev["properties"], {"campaign": "spring"})
        self.assertEqual(ev["originalTimestamp"], T0)
        self.assertEqual(ev["context"]["ip"], "127.0.0.1")
        self.assertNotIn("writeKey", ev)

    def test_pixel_page_with_other_params(self):
        mid = new_id()
        data = b64_query({"name": "Landing", "anonymousId": "a", "messageId": mid, "writeKey": WRITE_KEY})
        self.assert_gif(self.d.request("GET", f"/v1/pixel/page?cb=123&data={data}&x=y"))
        self.assertEqual(self.stored(mid)["type"], "page")

    def test_pixel_invalid_base64(self):
        marker = new_id("px")
        self.assert_gif(self.d.request("GET", f"/v1/pixel/track?data=%%%{marker}!!!"))
        recs = self.quarantined(lambda r: marker in pixel_record_text(r))
        self.assertEqual(recs[0]["reason"], "invalid_pixel_data")

    def test_pixel_missing_data(self):
        self.assert_gif(self.d.request("GET", "/v1/pixel/track"))

    def test_pixel_invalid_event_quarantined(self):
        mid = new_id()
        data = b64_query({"userId": "u", "messageId": mid, "writeKey": WRITE_KEY})  # track without event
        self.assert_gif(self.d.request("GET", f"/v1/pixel/track?data={data}"))
        self.quarantined_event(mid, "missing_event")

    def test_pixel_unknown_key_quarantined(self):
        mid = new_id()
        data = b64_query({"event": "E", "userId": "u", "messageId": mid, "writeKey": "nope"})
        self.assert_gif(self.d.request("GET", f"/v1/pixel/track?data={data}"))
        recs = self.quarantined(lambda r: mid in pixel_record_text(r))
        self.assertEqual(recs[0]["reason"], "unauthorized")
        self.assert_not_stored([mid])

    def test_pixel_unknown_type(self):
        mid = new_id()
        data = b64_query({"event": "E", "userId": "u", "messageId": mid, "writeKey": WRITE_KEY})
        self.assert_gif(self.d.request("GET", f"/v1/pixel/bogus?data={data}"))
        recs = self.quarantined(lambda r: mid in pixel_record_text(r))
        self.assertEqual(recs[0]["reason"], "invalid_type")
        self.assert_not_stored([mid])

    def test_settings_known_key(self):
        st, hdrs, body = self.d.request("GET", f"/v1/projects/{WRITE_KEY}/settings",
                                        headers={"Origin": "https://anywhere.example"})
        self.assertEqual(st, 200, body)
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"))
        doc = json.loads(body)
        seg = doc["integrations"]["Segment.io"]
        self.assertEqual(seg["apiKey"], WRITE_KEY)
        self.assertEqual(seg["apiHost"], f"127.0.0.1:{self.d.port}/v1")
        self.assertIn("access-control-allow-origin", hdrs)

    def test_settings_unknown_key(self):
        self.assert_json_status(self.d.request("GET", "/v1/projects/nope/settings"), 404)


if __name__ == "__main__":
    unittest.main()
