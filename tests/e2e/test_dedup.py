"""messageId dedup at admission (src/admit/README.md): a repeat from the same source inside the
window is answered 200 and not stored; another source's identical id is stored; the window is
rebuilt from the log after kill -9; `dedup.enabled: false` stores every copy."""
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402
from support import metric_value  # noqa: E402

OTHER = support.basic("other-key")


def stuck_destination(tmp, name="stuck"):
    """A file destination below a regular file: every write fails, so its cursor never moves and
    the log keeps everything (the dedup window can be rebuilt from it after a restart)."""
    blocker = os.path.join(tmp, "blocker")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    return f"""
  - name: {name}
    type: file
    path: {blocker}/out
    batch_max_wait: 10ms
    retry_backoff_base: 50ms
    retry_backoff_max: 200ms
"""


def out_dest(d):
    return f"""
  - name: out
    type: file
    path: {d}/out
    batch_max_wait: 10ms
"""


class DedupTest(unittest.TestCase):
    def daemon(self, destinations=None, **kw):
        if destinations is not None:
            tmp = tempfile.mkdtemp(prefix="switchyard-e2e-dedup-")
            self.addCleanup(shutil.rmtree, tmp, True)
            data = os.path.join(tmp, "data")
            kw.update(destinations=destinations(tmp, data), data_dir=data)
        d = support.Daemon(**kw)
        self.addCleanup(d.cleanup)
        return d.start()

    def end_offset(self, d):
        return metric_value(d.metrics(), "switchyard_log_end_offset")

    def dups(self, d, source="web"):
        return metric_value(d.metrics(), "switchyard_events_duplicate_total", {"source": source}) or 0

    def test_same_source_repeat_is_stored_once(self):
        d = self.daemon()
        ev = support.track_event("dup-1")
        for _ in range(2):
            st, _, body = d.post("/v1/track", ev)
            self.assertEqual(st, 200, body)
        # A batch repeating it, plus one new event and an in-batch repeat of that one.
        st, _, body = d.post("/v1/batch", {"batch": [ev, support.track_event("dup-2"),
                                                     support.track_event("dup-2")]})
        self.assertEqual(st, 200, body)
        evs = d.wait_for_events(lambda e: {"dup-1", "dup-2"} <= support.message_ids(e))
        self.assertEqual(self.dups(d), 3)
        self.assertEqual(self.end_offset(d), 2)
        self.assertEqual(metric_value(d.metrics(), "switchyard_events_accepted_total", {"source": "web"}), 2)
        time.sleep(0.3)
        evs = d.read_ndjson()
        self.assertEqual(sorted(e["messageId"] for e in evs), ["dup-1", "dup-2"])
        # Different source, same messageId: a different event, stored.
        st, _, body = d.post("/v1/track", ev, auth=OTHER)
        self.assertEqual(st, 200, body)
        evs = d.wait_for_events(lambda e: len(e) == 3)
        self.assertEqual(sorted(e["messageId"] for e in evs), ["dup-1", "dup-1", "dup-2"])
        self.assertEqual(self.dups(d, "other"), 0)
        st, _, body = d.post("/v1/track", ev, auth=OTHER)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.dups(d, "other"), 1)
        self.assertEqual(self.end_offset(d), 3)

    def test_window_survives_kill_9_while_the_log_is_retained(self):
        d = self.daemon(lambda tmp, data: out_dest(data) + stuck_destination(tmp))
        d.post_events([support.track_event(f"k-{i}") for i in range(20)])
        d.post("/v1/track", support.track_event("k-other"), auth=OTHER)
        d.wait_for_events(lambda e: len(support.message_ids(e)) == 21)
        self.assertEqual(self.end_offset(d), 21)
        d.kill9()
        d.start()
        self.assertEqual(self.end_offset(d), 21)
        self.assertEqual(self.dups(d), 0)
        # Repeats after the restart: 200, not stored again.
        st, _, body = d.post("/v1/track", support.track_event("k-3"))
        self.assertEqual(st, 200, body)
        d.post_events([support.track_event(f"k-{i}") for i in range(20)])
        st, _, body = d.post("/v1/track", support.track_event("k-other"), auth=OTHER)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.end_offset(d), 21)
        self.assertEqual(self.dups(d), 21)
        self.assertEqual(self.dups(d, "other"), 1)
        # ... while a new id is stored, and a known id from the other source still is.
        st, _, body = d.post("/v1/track", support.track_event("k-new"))
        self.assertEqual(st, 200, body)
        st, _, body = d.post("/v1/track", support.track_event("k-5"), auth=OTHER)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.end_offset(d), 23)
        d.wait_for_events(lambda e: {"k-new", "k-5"} <= support.message_ids(e))
        # A graceful restart too.
        self.assertEqual(d.stop(), 0)
        d.start()
        d.post_events([support.track_event("k-new"), support.track_event("k-0")])
        self.assertEqual(self.end_offset(d), 23)
        self.assertEqual(self.dups(d), 2)

    def test_disabled_dedup_stores_every_copy(self):
        d = self.daemon(extra="dedup:\n  enabled: false")
        ev = support.track_event("nodup-1")
        for _ in range(3):
            st, _, body = d.post("/v1/track", ev)
            self.assertEqual(st, 200, body)
        evs = d.wait_for_events(lambda e: len(e) == 3)
        self.assertEqual([e["messageId"] for e in evs], ["nodup-1"] * 3)
        self.assertEqual(self.end_offset(d), 3)
        self.assertEqual(self.dups(d), 0)
        self.assertNotIn("switchyard_dedup_entries", d.metrics())


if __name__ == "__main__":
    unittest.main()
