"""Tracking plans at ingest, over the real daemon: per-kind policies (allow, omit, quarantine,
block), shadow mode, metrics, SIGHUP reload that never replaces a working plan with a broken
one, and `switchyard check` / `switchyard plan` errors with file:line:col."""
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import BIN, Daemon, metric_value, wait_until  # noqa: E402

TOKEN = "op-token"
SRC = os.environ.get("SWITCHYARD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLAN = os.path.join(SRC, "tests", "fixtures", "plans", "web.yaml")


def order(mid, **props):
    p = {"order_id": "ord_1", "revenue": 10}
    p.update(props)
    return {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": mid,
            "properties": {k: v for k, v in p.items() if v is not None}}


class TrackingPlanTest(unittest.TestCase):
    def daemon(self, enforcement):
        d = Daemon(sources=f"""
  - name: web
    write_keys: [test-key]
    plan: web
    plan_enforcement:
{enforcement}
""", extra="plans:\n  - name: web\n    files: [plans]\n", admin_extra=f"  token: {TOKEN}")
        os.makedirs(os.path.join(d.tmp, "plans"))
        shutil.copy(PLAN, os.path.join(d.tmp, "plans", "web.yaml"))
        self.addCleanup(d.cleanup)
        return d.start()

    def by_id(self, d, ids, subdir="out"):
        recs = d.wait_for_events(lambda rs: ids <= {r.get("messageId") for r in rs}, subdir=subdir)
        return {r["messageId"]: r for r in recs}

    def test_policies_per_violation_kind(self):
        d = self.daemon("""      wrong_type: omit
      missing_required: quarantine
      unplanned_event: block
      bad_value: allow""")
        batch = [
            order("ok"),
            order("badvalue", currency="GBP"),
            order("wrongtype", revenue="ten", currency="EUR"),
            order("missing", order_id=None),
            {"type": "track", "userId": "u1", "event": "Nobody Planned This", "messageId": "unplanned"},
            {"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "alias"},
        ]
        st, _, body = d.post("/v1/batch", {"batch": batch})
        self.assertEqual(st, 200, body)
        out = self.by_id(d, {"ok", "badvalue", "wrongtype", "alias"})
        self.assertEqual(out["ok"]["context"]["trackingPlan"], {"name": "web", "version": "2026-11-01"})
        self.assertNotIn("violations", out["ok"]["context"])
        v = out["badvalue"]["context"]["violations"]
        self.assertEqual(v, [{"path": "properties.currency", "kind": "bad_value",
                              "expected": "one of [USD, EUR]", "actual": 'string "GBP"'}])
        self.assertEqual(out["badvalue"]["properties"]["currency"], "GBP")  # allow keeps it
        self.assertNotIn("revenue", out["wrongtype"]["properties"])         # omit drops it
        self.assertEqual(out["wrongtype"]["properties"]["currency"], "EUR")
        self.assertEqual(out["wrongtype"]["context"]["violations"][0]["kind"], "wrong_type")
        q = {r["messageId"]: r for r in d.wait_for_events(
            lambda rs: {"missing", "unplanned"} <= {r.get("messageId") for r in rs},
            subdir="quarantine")}
        self.assertEqual(q["missing"]["reason"], "plan_violation")
        self.assertEqual(q["missing"]["violations"][0]["kind"], "missing_required")
        self.assertEqual(q["missing"]["event"]["messageId"], "missing")
        self.assertEqual(q["unplanned"]["reason"], "plan_blocked")
        self.assertIn("Nobody Planned This", q["unplanned"]["message"])
        ids = {e["messageId"] for e in d.read_ndjson("out")}
        self.assertFalse({"missing", "unplanned"} & ids)
        m = d.metrics()
        # valid: "ok" and the alias (alias is never checked).
        for result, n in (("valid", 2), ("tagged", 1), ("omitted", 1), ("quarantined", 1),
                          ("blocked", 1)):
            self.assertEqual(metric_value(m, "switchyard_plan_events_total",
                                          {"source": "web", "result": result}), n, result)
        self.assertEqual(metric_value(m, "switchyard_plan_violations_total",
                                      {"event": "(unplanned)", "kind": "unplanned_event"}), 1)
        self.assertEqual(metric_value(m, "switchyard_plan_violations_total",
                                      {"event": "Order Completed", "kind": "wrong_type"}), 1)

    def test_shadow_mode_changes_nothing(self):
        d = self.daemon("""      mode: shadow
      missing_required: block
      unplanned_event: block""")
        batch = [order("s1", order_id=None),
                 {"type": "track", "userId": "u1", "event": "Unknown", "messageId": "s2"}]
        self.assertEqual(d.post("/v1/batch", {"batch": batch})[0], 200)
        out = self.by_id(d, {"s1", "s2"})
        self.assertNotIn("violations", out["s1"].get("context", {}))
        self.assertNotIn("trackingPlan", out["s1"].get("context", {}))
        m = d.metrics()
        self.assertEqual(metric_value(m, "switchyard_plan_events_total",
                                      {"source": "web", "result": "tagged"}), 2)

    def test_reload_keeps_the_working_plan_when_the_new_one_is_broken(self):
        d = self.daemon("      unplanned_event: block")
        path = os.path.join(d.tmp, "plans", "web.yaml")
        with open(path) as f:
            good = f.read()
        with open(path, "w") as f:
            f.write(good.replace("  - name: Signed Up\n", "  - name: Signed Up\n    bogus_key: 1\n"))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "keeps its running version" in d.log_text(), what="reload refusal logged")
        self.assertIn("unknown key 'bogus_key'", d.log_text())
        # The old plan still runs: an unplanned event is still blocked, a planned one passes.
        d.post("/v1/batch", {"batch": [order("r1"), {"type": "track", "userId": "u", "event": "Refunded",
                                                     "messageId": "r2"}]})
        self.by_id(d, {"r1"})
        self.by_id(d, {"r2"}, subdir="quarantine")
        # A fixed plan that plans the event replaces it.
        with open(path, "w") as f:
            f.write(good.replace("track:\n", "track:\n  - name: Refunded\n", 1))
        d.proc.send_signal(signal.SIGHUP)
        sent = []

        def refunded_is_planned():
            mid = f"r3-{len(sent)}"
            sent.append(mid)
            d.post("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "Refunded",
                                            "messageId": mid}]})
            time.sleep(0.2)
            return mid in {e["messageId"] for e in d.read_ndjson("out")}
        wait_until(refunded_is_planned, timeout=20, interval=0.1, what="the fixed plan in use")

    def test_quarantined_events_replay_once_the_plan_is_fixed(self):
        d = self.daemon("      missing_required: quarantine", )
        d.post("/v1/batch", {"batch": [order("q1", order_id=None), order("q2")]})
        self.by_id(d, {"q1"}, subdir="quarantine")
        st, doc = d.api("GET", "/v1/quarantine?reason=plan_violation", TOKEN)
        self.assertEqual(st, 200, doc)
        self.assertEqual([e["messageId"] for e in doc["entries"]], ["q1"])
        self.assertFalse(doc["entries"][0]["replayed"])
        # Same plan: still failing, nothing appended.
        st, doc = d.api("POST", "/v1/quarantine/replay?reason=plan_violation", TOKEN)
        self.assertEqual((st, doc["replayed"], doc["still_failing"]), (200, 0, 1), doc)
        # The plan is fixed (order_id optional) and reloaded: the event goes through, once.
        path = os.path.join(d.tmp, "plans", "web.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("order_id: { type: string, required: true,",
                                 "order_id: { type: string,"))
        r = d.cli("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("1 source plan(s) reloaded", r.stdout)
        r = d.cli("quarantine", "replay", "--reason", "plan_violation")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"replayed":1', r.stdout)
        out = self.by_id(d, {"q1", "q2"})
        self.assertEqual(out["q1"]["context"]["trackingPlan"]["name"], "web")
        st, doc = d.api("POST", "/v1/quarantine/replay", TOKEN)
        self.assertEqual((doc["replayed"], doc["already_replayed"]), (0, 1), doc)
        st, doc = d.api("GET", "/v1/quarantine", TOKEN)
        self.assertTrue(doc["entries"][0]["replayed"])
        self.assertEqual(sum(1 for e in d.read_ndjson("out") if e["messageId"] == "q1"), 1)

    def test_check_and_plan_commands_report_positions(self):
        d = Daemon(sources="""
  - name: web
    write_keys: [test-key]
    plan: web
""", extra="plans:\n  - name: web\n    files: [broken.yaml]\n")
        self.addCleanup(d.cleanup)
        with open(os.path.join(d.tmp, "broken.yaml"), "w") as f:
            f.write("name: web\ntrack:\n  - name: A\n    properties:\n      x: {type: strin}\n")
        r = d.cli("check")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("plans: web: " + os.path.join(d.tmp, "broken.yaml") + ":5:", r.stderr)
        r = subprocess.run([BIN, "plan", "lint", os.path.join(d.tmp, "broken.yaml")],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("broken.yaml:5:", r.stderr)
        fixtures = os.path.join(SRC, "tests", "fixtures", "plans")
        r = subprocess.run([BIN, "plan", "test", "--plan", PLAN, os.path.join(fixtures, "good.ndjson")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([BIN, "plan", "test", "--plan", PLAN, os.path.join(fixtures, "bad.ndjson")],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("wrong_type", r.stdout)
        r = subprocess.run([BIN, "plan", "docs", PLAN], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("Order Completed", r.stdout)


if __name__ == "__main__":
    unittest.main()
