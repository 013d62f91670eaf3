"""Identity stitching, suppression and deletion, end to end through the real daemon: context.
identity on delivered events, identity_link records, merge guards, restart, suppression (and how
soon it takes effect), deletion records with their audit trail, the Redis backend shared by two
collectors, and bad operator requests."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from support import Daemon, free_port, metric_value, wait_until  # noqa: E402

TOKEN = "identity-admin-token"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

DESTS = """
  - name: out
    type: file
    path: {data}/out
    batch_max_wait: 10ms
  - name: links
    type: file
    path: {data}/links
    batch_max_wait: 10ms
    identity_links: true
    deletions: false
"""


def ev(type_="track", user=None, anon=None, device=None, **kw):
    e = {"type": type_, "messageId": str(uuid.uuid4())}
    if type_ == "track":
        e["event"] = kw.pop("event", "Viewed")
    if user:
        e["userId"] = user
    if anon:
        e["anonymousId"] = anon
    if device:
        e["context"] = {"device": {"id": device}}
    e.update(kw)
    return e


class IdentityTest(unittest.TestCase):
    def daemon(self, extra=""):
        d = Daemon(admin_extra=f"  token: {TOKEN}", extra=extra,
                   destinations=DESTS.format(data="{data}"))
        self.addCleanup(d.cleanup)
#The data dir is only known after construction : write the real paths.
        d.rewrite_config(destinations=DESTS.format(data=d.data))
        return d

    def send(self, d, *events):
        st, _, body = d.post("/v1/batch", {"batch": list(events)})
        self.assertEqual(st, 200, body)
        return [e["messageId"] for e in events]

    def delivered(self, d, ids, subdir="out"):
        ids = set(ids)
        evs = d.wait_for_events(lambda es: ids <= {e.get("messageId") for e in es}, subdir)
        return {e["messageId"]: e for e in evs if e.get("messageId") in ids
}

    def test_stitching_links_guards_and_restart(self):
        d = self.daemon().start()
        [before] = self.send(d, ev(anon="a1", event="Browsed"))
        got = self.delivered(d, [before])[before]["context"]["identity"]
        self.assertEqual(got, {"personId": "a1", "personIdType": "anonymousId",
                               "via": [{"type": "anonymousId", "id": "a1"}]})

#Sign - up : the identify links a1 to alice; later anonymous events are alice's.
        [ident, after] = self.send(d, ev("identify", user="alice", anon="a1", traits={"plan": "pro"}),
                                   ev(anon="a1", device="phone-1", event="Browsed"))
        out = self.delivered(d, [ident, after])
        self.assertEqual(out[ident]["context"]["identity"]["personId"], "alice")
        self.assertEqual(out[after]["context"]["identity"],
                         {"personId": "alice", "personIdType": "userId",
                          "via": [{"type": "anonymousId", "id": "a1"},
                                  {"type": "deviceId", "id": "phone-1"}]})

#identity_link records go only to the destination that asked for them.
        links = d.wait_for_events(lambda es: len(es) >= 2, "links")
        kinds = [e.get("type") for e in links]
        recs = [e for e in links if e.get("type") == "identity_link"]
        self.assertEqual(len(recs), 2, kinds)
        first = recs[0]
        self.assertEqual(first["from"], {"type": "anonymousId", "id": "a1"})
        self.assertEqual(first["to"], {"type": "userId", "id": "alice"})
        self.assertEqual(first["personId"], "alice")
        self.assertEqual(first["eventMessageId"], ident)
        self.assertEqual(first["source"], "web")
        self.assertEqual(recs[1]["from"], {"type": "deviceId", "id": "phone-1"})
        self.assertFalse([e for e in d.read_ndjson("out") if e.get("type") == "identity_link"])

#Kiosk : the same anonymous id with a second user is refused(default guard : 1).
        [kiosk] = self.send(d, ev(user="bob", anon="a1"))
        k = self.delivered(d, [kiosk])[kiosk]["context"]["identity"]
        self.assertEqual(k["personId"], "bob")
        self.assertEqual(k["refused"], [{"from": {"type": "anonymousId", "id": "a1"},
                                         "to": {"type": "userId", "id": "bob"},
                                         "reason": "max_user_ids_per_id"}])
        m = d.metrics()
        self.assertEqual(metric_value(m, "switchyard_identity_links_total"), 2)
        self.assertEqual(metric_value(m, "switchyard_identity_links_refused_total",
                                      {"reason": "max_user_ids_per_id"}), 1)
        self.assertGreater(metric_value(m, "switchyard_identity_cache_hits_total"), 0)

#The operator API and CLI show the person.
        st, p = d.api("GET", "/v1/identity/persons?anonymousId=a1", TOKEN)
        self.assertEqual(st, 200, p)
        self.assertEqual(p["personId"], "alice")
        self.assertEqual(sorted((i["type"], i["id"]) for i in p["ids"]),
                         [("anonymousId", "a1"), ("deviceId", "phone-1"), ("userId", "alice")])
        r = d.cli("identity", "person", "--device-id", "phone-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["personId"], "alice")

#Restart : the links are durable, the canonical id is the same.
        self.assertEqual(d.stop(), 0)
        d.start()
        [later] = self.send(d, ev(anon="a1", event="Came back"))
        self.assertEqual(self.delivered(d, [later])[later]["context"]["identity"]["personId"],
                         "alice")

    def test_suppression_is_immediate_survives_restart_and_lifts(self):
        d = self.daemon().start()
        self.send(d, ev("identify", user="carol", anon="c1"))
        st, body = d.api("POST", "/v1/identity/suppressions", TOKEN,
                         {"userId": "carol", "requestedBy": "privacy@example.com",
                          "reason": "objection"})
        self.assertEqual(st, 201, body)
        self.assertEqual(sorted(i["id"] for i in body["suppressed"]), ["c1", "carol"])
#Effective at once : the very next requests are answered 200 and store nothing.
        refused = self.send(d, ev(user="carol"), ev(anon="c1"), ev(anon="c1", user="carol"))
        [other] = self.send(d, ev(user="dave"))
        self.delivered(d, [other])
        delivered_ids = {e.get("messageId") for e in d.read_ndjson("out")}
        self.assertFalse(set(refused) & delivered_ids)
        self.assertFalse([q for q in d.quarantine() if q.get("messageId") in refused])
        self.assertEqual(metric_value(d.metrics(), "switchyard_identity_suppressed_events_total",
                                      {"source": "web"}), 3)

#Survives a restart.
        d.stop()
        d.start()
        [again] = self.send(d, ev(anon="c1"))
        [marker] = self.send(d, ev(user="dave"))
        self.delivered(d, [marker])
        self.assertNotIn(again, {e.get("messageId") for e in d.read_ndjson("out")})
        r = d.cli("identity", "suppressions")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["suppressions"]), 2)

#Lifted : events flow again.
        r = d.cli("identity", "unsuppress", "--anonymous-id", "c1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["lifted"]), 2)
        [back] = self.send(d, ev(user="carol"))
        self.delivered(d, [back])

    def test_deletion_reaches_destinations_and_is_audited(self):
        d = self.daemon().start()
        ids = self.send(d, ev("identify", user="erin", anon="e1"), ev(anon="e2", user="erin"),
                        ev(anon="e1", device="tablet-9"))
        self.delivered(d, ids)
        r = d.cli("identity", "delete", "--user-id", "erin", "--requested-by", "dpo@example.com",
                  "--reason", "GDPR art. 17")
        self.assertEqual(r.returncode, 0, r.stderr)
        req = json.loads(r.stdout)
        self.assertEqual(req["personId"], "erin")
        self.assertEqual(req["requestedBy"], "dpo@example.com")
        self.assertEqual(sorted(i["id"] for i in req["ids"]), ["e1", "e2", "erin", "tablet-9"])
        self.assertEqual([x["name"] for x in req["destinations"]], ["out"])

#The file destination receives the deletion record; `links` does not(deletions : false).
        out = d.wait_for_events(lambda es: any(e.get("type") == "deletion" for e in es))
        dele = [e for e in out if e.get("type") == "deletion"][0]
        self.assertEqual(dele["requestId"], req["id"])
        self.assertEqual(sorted(dele["userIds"]), ["erin"])
        self.assertEqual(sorted(dele["anonymousIds"]), ["e1", "e2"])
        self.assertEqual(dele["deviceIds"], ["tablet-9"])
        self.assertFalse([e for e in d.read_ndjson("links") if e.get("type") == "deletion"])

#The audit trail records the confirmation.
        def confirmed():
            st, doc = d.api("GET", f"/v1/identity/deletions/{req['id']}", TOKEN)
            return st == 200 and doc["status"] == "complete" and doc
        doc = wait_until(confirmed, timeout=20, what="deletion confirmed by out")
        self.assertEqual(doc["destinations"][0]["status"], "confirmed")

#The person is gone from the identity store, and suppressed by default.
        st, p = d.api("GET", "/v1/identity/persons?anonymousId=e1", TOKEN)
        self.assertEqual((st, p["stored"], p["suppressed"]), (200, False, True))
        [dropped] = self.send(d, ev(anon="e2"))
        [marker] = self.send(d, ev(user="frank"))
        self.delivered(d, [marker])
        self.assertNotIn(dropped, {e.get("messageId") for e in d.read_ndjson("out")})

#The audit trail survives a restart.
        d.stop()
        d.start()
        st, doc = d.api("GET", "/v1/identity/deletions", TOKEN)
        self.assertEqual(st, 200)
        self.assertEqual([x["id"] for x in doc["deletions"]], [req["id"]])
        self.assertEqual(doc["deletions"][0]["status"], "complete")

#Without suppression : the person's ids may come back as new.
        self.send(d, ev(anon="g1", user="gina"))
        st, body = d.api("POST", "/v1/identity/deletions", TOKEN,
                         {"anonymousId": "g1", "requestedBy": "ops", "suppress": False})
        self.assertEqual(st, 202, body)
        self.assertFalse(body["suppressed"])
        [back] = self.send(d, ev(anon="g1"))
        self.assertEqual(self.delivered(d, [back])[back]["context"]["identity"]["personId"], "g1")

    def test_bad_operator_requests_get_clear_answers(self):
        d = self.daemon().start()
        cases = [
            ("POST", "/v1/identity/deletions", {"userId": "x"}, 400, "requestedBy"),
            ("POST", "/v1/identity/deletions", {"userId": "x", "anonymousId": "y",
                                                 "requestedBy": "me"}, 400, "only one"),
            ("POST", "/v1/identity/deletions", "{not json", 400, "JSON object"),
            ("POST", "/v1/identity/deletions", {"userId": 5, "requestedBy": "me"}, 400, "string"),
            ("POST", "/v1/identity/suppressions", {"requestedBy": "me"}, 400, "name one id"),
            ("GET", "/v1/identity/persons", None, 400, "name one id"),
            ("GET", "/v1/identity/persons?personId=x&personIdType=email", None, 400, "email"),
            ("DELETE", "/v1/identity/suppressions?userId=nobody", None, 404, "not suppressed"),
            ("GET", "/v1/identity/deletions/no-such-id", None, 404, "no deletion"),
            ("PUT", "/v1/identity/deletions", None, 405, "use GET"),
            ("GET", "/v1/identity/nope", None, 404, "no such identity route"),
        ]
        for method, path, body, status, words in cases:
            with self.subTest(method=method, path=path):
                st, doc = d.api(method, path, TOKEN, body)
                self.assertEqual(st, status, doc)
                self.assertIn(words, doc["message"])
        st, _ = d.api("GET", "/v1/identity/suppressions", None)
        self.assertEqual(st, 401)
#Hostile ids : very long ones are attributed to themselves and never stored.
        long_id = "x" * 5000
        [m] = self.send(d, ev(user="henry", anon=long_id))
        ident = self.delivered(d, [m])[m]["context"]["identity"]
        self.assertEqual(ident["personId"], "henry")
        self.assertEqual(ident["refused"][0]["reason"], "id_too_long")

    def test_identity_off(self):
        d = self.daemon(extra="identity:\n  enabled: false\n").start()
        [m] = self.send(d, ev(anon="a1", user="u1"))
        self.assertNotIn("identity", self.delivered(d, [m])[m]["context"])
        st, doc = d.api("GET", "/v1/identity/suppressions", TOKEN)
        self.assertEqual(st, 503, doc)


class RedisServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sy-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_until(up, timeout=10, what="redis-server listening")

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(os.path.exists(REDIS), "redis-server is not installed")
class RedisIdentityTest(unittest.TestCase):
    def test_two_collectors_share_links_and_suppressions(self):
        redis = RedisServer()
        self.addCleanup(redis.close)
        cfg = (f"identity:\n  store: redis\n  cache_ttl: 200ms\n  suppression_refresh: 200ms\n"
               f"  redis:\n    port: {redis.port}\n    key_prefix: \"e2e:\"\n")
        a = Daemon(admin_extra=f"  token: {TOKEN}", extra=cfg)
        b = Daemon(admin_extra=f"  token: {TOKEN}", extra=cfg)
        for d in (a, b):
            self.addCleanup(d.cleanup)
            d.start()
        st, _, _ = a.post("/v1/identify", {"userId": "ivy", "anonymousId": "i1"})
        self.assertEqual(st, 200)
#Node b sees node a's link (it never saw i1 before, so nothing stale is cached).
        m = str(uuid.uuid4())
        st, _, _ = b.post("/v1/track", {"anonymousId": "i1", "event": "X", "messageId": m})
        self.assertEqual(st, 200)
        got = b.wait_for_events(lambda es: any(e.get("messageId") == m for e in es))
        self.assertEqual([e for e in got if e["messageId"] == m][0]["context"]["identity"]["personId"],
                         "ivy")

#Suppressed through node a : node b refuses within its refresh interval(200 ms here).
        t0 = time.monotonic()
        st, body = a.api("POST", "/v1/identity/suppressions", TOKEN,
                         {"userId": "ivy", "requestedBy": "ops"})
        self.assertEqual(st, 201, body)

        def b_refuses():
            st, _, _ = b.post("/v1/track", {"userId": "ivy", "event": "Y"})
            assert st == 200
            return (metric_value(b.metrics(), "switchyard_identity_suppressed_events_total",
                                 {"source": "web"}) or 0) > 0
        wait_until(b_refuses, timeout=10, interval=0.05, what="suppression effective on node b")
        effective = time.monotonic() - t0
        print(f"suppression effective on the second node after {effective:.2f}s", file=sys.stderr)

#Redis down : events are still accepted and stored, attributed to their own ids.
        redis.proc.send_signal(signal.SIGKILL)
        redis.proc.wait(10)
        m2 = str(uuid.uuid4())
        st, _, _ = a.post("/v1/track", {"anonymousId": "zz-new", "userId": "zz-user",
                                        "event": "Z", "messageId": m2})
        self.assertEqual(st, 200)
        got = a.wait_for_events(lambda es: any(e.get("messageId") == m2 for e in es))
        ident = [e for e in got if e["messageId"] == m2][0]["context"]["identity"]
        self.assertEqual(ident["personId"], "zz-user")
        self.assertIs(ident["resolved"], False)
        self.assertGreater(metric_value(a.metrics(), "switchyard_identity_errors_total"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
