"""Reloading destinations at run time: SIGHUP, `switchyard reload -c` and POST /v1/reload add,
remove and change destinations (cursors: a new one starts at the oldest retained offset, a
changed one keeps its cursor, a removed one loses it); a broken config is refused and the
running config keeps going."""
import collections
import glob
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402
from support import metric_value  # noqa: E402

TOKEN = "reload-token"


def filedest(name, extra=""):
    return f"""
  - name: {name}
    type: file
    batch_max_wait: 10ms
    batch_max_events: 20
{extra}"""


def events(prefix, n):
    return [support.track_event(f"{prefix}-{i}", properties={"i": i}) for i in range(n)]


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.d = support.Daemon(destinations=filedest("a") + filedest("b") + filedest("c"),
                                admin_extra=f"  token: {TOKEN}")
        self.d.start()

    def tearDown(self):
        self.d.cleanup()

    def names(self):
        st, doc = self.d.api("GET", "/v1/destinations", TOKEN)
        self.assertEqual(st, 200, doc)
        return {x["name"] for x in doc["destinations"]} - {"_quarantine"}

    def ids(self, name, pattern="*"):
        evs = []
        for path in sorted(glob.glob(os.path.join(self.d.data, "out", name, pattern))):
            with open(path) as f:
                evs += [__import__("json").loads(line) for line in f if line.strip()]
        return [e["messageId"] for e in evs]

    def caught_up(self, *names):
        text = self.d.metrics()
        end = metric_value(text, "switchyard_log_end_offset")
        return all(metric_value(text, "switchyard_destination_lag_events", {"destination": n}) == 0
                   for n in names) and end is not None

    def test_sighup_adds_removes_and_changes_destinations(self):
        d = self.d
        d.post_events(events("r1", 100))
        support.wait_until(lambda: all(len(set(self.ids(n))) == 100 for n in "abc"), timeout=15,
                           what="r1 delivered to a, b, c")
        support.wait_until(lambda: self.caught_up("a", "b", "c"), timeout=10, what="cursors committed")
        self.assertTrue(os.path.exists(os.path.join(d.data, "cursors", "b.cursor")))

        # Remove b, change c (new file prefix), add d.
        d.rewrite_config(filedest("a") + filedest("c", "    prefix: v2") + filedest("d"))
        d.proc.send_signal(signal.SIGHUP)
        support.wait_until(lambda: self.names() == {"a", "c", "d"}, timeout=10,
                           what="destinations a, c, d after SIGHUP")
        # The new destination starts at the oldest retained offset: it gets the old events.
        support.wait_until(lambda: set(self.ids("d")) == {f"r1-{i}" for i in range(100)}, timeout=15,
                           what="new destination d gets the retained events")
        # The removed one's cursor is gone (it no longer holds back retention).
        support.wait_until(lambda: not os.path.exists(os.path.join(d.data, "cursors", "b.cursor")),
                           timeout=5, what="b's cursor removed")
        self.assertIsNone(metric_value(d.metrics(), "switchyard_destination_lag_events",
                                       {"destination": "b"}))

        d.post_events(events("r2", 50))
        r2 = {f"r2-{i}" for i in range(50)}
        support.wait_until(lambda: all(r2 <= set(self.ids(n)) for n in "acd"), timeout=15,
                           what="r2 delivered to a, c, d")
        time.sleep(0.3)
        self.assertFalse(set(self.ids("b")) & r2, "a removed destination still delivers")
        # The changed destination kept its cursor: its new files hold r2 only, nothing old again.
        new_files = self.ids("c", "v2-*")
        self.assertEqual(collections.Counter(new_files), collections.Counter(r2),
                         "changed destination re-delivered old events or lost new ones")
        self.assertEqual(len(self.ids("c", "events-*")), 100)
        self.assertEqual(len(self.ids("a")), 150)

    def test_cli_and_api_reload(self):
        d = self.d
        d.post_events(events("x", 30))
        support.wait_until(lambda: all(len(self.ids(n)) == 30 for n in "abc"), timeout=15,
                           what="x delivered")
        d.rewrite_config(filedest("a") + filedest("b") + filedest("c") + filedest("e"))
        p = d.cli("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("e", p.stdout)
        self.assertIn("added", p.stdout)
        self.assertEqual(self.names(), {"a", "b", "c", "e"})
        support.wait_until(lambda: len(self.ids("e")) == 30, timeout=15, what="e catches up")

        # The operator API does the same; reloading an unchanged config changes nothing.
        st, doc = d.api("POST", "/v1/reload", TOKEN)
        self.assertEqual(st, 200, doc)
        self.assertIn("added -", doc["result"])
        self.assertIn("changed -", doc["result"])
        self.assertIn("removed -", doc["result"])
        self.assertEqual(self.names(), {"a", "b", "c", "e"})
        # Reload needs the token too.
        st, _ = d.api("POST", "/v1/reload", "wrong")
        self.assertEqual(st, 401)
        time.sleep(0.3)
        self.assertEqual(len(self.ids("e")), 30, "an unchanged destination was restarted and re-sent")

    def test_broken_config_is_refused(self):
        d = self.d
        d.post_events(events("k1", 20))
        support.wait_until(lambda: all(len(self.ids(n)) == 20 for n in "abc"), timeout=15,
                           what="k1 delivered")
        good_text, good_dests = d.config_text, d.destinations_text
        broken = [
            # unknown key on a destination (and a new destination that must not appear)
            filedest("a") + filedest("b") + filedest("c", "    no_such_key: 1") + filedest("z"),
            # unknown destination type
            filedest("a") + filedest("b") + filedest("c") + """
  - name: y
    type: no_such_type
""",
            # a routing rule error
            filedest("a") + filedest("b") + filedest("c") + filedest("w", "    include: []"),
        ]
        for i, dests in enumerate(broken):
            d.rewrite_config(dests)
            before = d.log_text().count("Reload refused")
            d.proc.send_signal(signal.SIGHUP)
            support.wait_until(lambda: d.log_text().count("Reload refused") > before, timeout=10,
                               what=f"'Reload refused' logged for broken config {i}")
            self.assertEqual(self.names(), {"a", "b", "c"})
            st, doc = d.api("POST", "/v1/reload", TOKEN)
            self.assertEqual(st, 200, doc)
            self.assertIn("refused", doc["result"])
        # Not valid YAML at all.
        with open(d.config_path, "w") as f:
            f.write(good_text + "\ndestinations: [unclosed\n  - : :\n")
        before = d.log_text().count("Reload refused")
        d.proc.send_signal(signal.SIGHUP)
        support.wait_until(lambda: d.log_text().count("Reload refused") > before, timeout=10,
                           what="'Reload refused' logged for invalid YAML")
        # Still running on the old config.
        self.assertIsNone(d.proc.poll())
        self.assertEqual(self.names(), {"a", "b", "c"})
        st, _, _ = d.post("/v1/track", support.track_event("k2-0"))
        self.assertEqual(st, 200)
        d.post_events(events("k3", 20))
        want = {"k2-0"} | {f"k3-{i}" for i in range(20)}
        support.wait_until(lambda: all(want <= set(self.ids(n)) for n in "abc"), timeout=15,
                           what="events after the refused reloads delivered")
        for n in "abc":
            self.assertEqual(len(self.ids(n)), 41, n)  # nothing re-delivered by the refusals
        # A fixed config then applies.
        d.rewrite_config(text=good_text)
        d.destinations_text = good_dests
        d.rewrite_config(filedest("a") + filedest("c"))
        d.proc.send_signal(signal.SIGHUP)
        support.wait_until(lambda: self.names() == {"a", "c"}, timeout=10, what="fixed config applied")


if __name__ == "__main__":
    unittest.main()
