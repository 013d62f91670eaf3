"""kill -9 while events are being delivered to a webhook and a file destination: after a restart,
every event acknowledged with 200 reaches every destination at least once."""
import glob
import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402

ROUNDS = [
    # (receiver mode while the daemon is killed, seconds of streaming before the kill)
    ("ok", 1.0),       # batches in flight and being written
    ("hang", 1.0),     # a webhook request in flight, unanswered, when the process dies
    ("fail500", 1.0),  # the webhook batch in retries
    ("ok", 0.3),
]


class Poster(threading.Thread):
    """Posts batches of 50 new events as fast as the daemon answers; remembers the ids of the
    batches answered 200. Errors (the daemon was killed) end the thread."""

    def __init__(self, port, prefix):
        super().__init__(daemon=True)
        self.port = port
        self.prefix = prefix
        self.acked = set()
        self.stop_flag = False
        self.n = 0

    def run(self):
        i = 0
        while not self.stop_flag:
            batch = [support.track_event(f"{self.prefix}-{i + k}", properties={"pad": "x" * 200})
                     for k in range(50)]
            i += 50
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/v1/batch", body=json.dumps({"batch": batch}),
                             headers={"Content-Type": "application/json",
                                      "Authorization": support.basic()})
                r = conn.getresponse()
                r.read()
                conn.close()
            except OSError:
                return
            if r.status == 200:
                self.acked.update(e["messageId"] for e in batch)
            self.n += 1


def read_file_ids(d):
    """messageIds in the file destination's output. A line torn by the kill (only possible as
    the last line of a file) is counted, not parsed."""
    ids, torn = set(), []
    for path in sorted(glob.glob(os.path.join(d.data, "out", "out", "*"))):
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                ids.add(json.loads(line)["messageId"])
            except ValueError:
                torn.append((os.path.basename(path), k, len(lines), line[:80]))
    return ids, torn


class CrashDeliveryTest(unittest.TestCase):
    def test_kill_9_during_delivery(self):
        with support.Receiver() as r:
            d = support.Daemon(destinations=f"""
  - name: hook
    type: webhook
    url: {r.url}
    batch_max_wait: 5ms
    batch_max_events: 100
    request_timeout: 30s
    retry_backoff_base: 20ms
    retry_backoff_max: 200ms
    breaker_failures: 1000
  - name: out
    type: file
    batch_max_wait: 5ms
    batch_max_events: 100
""")
            self.addCleanup(d.cleanup)
            acked = set()
            d.start()
            for n, (mode, secs) in enumerate(ROUNDS):
                r.mode(mode)
                p = Poster(d.port, f"r{n}")
                p.start()
                time.sleep(secs)
                d.kill9()
                p.stop_flag = True
                p.join(15)
                self.assertGreater(len(p.acked), 0, f"round {n}: nothing was acknowledged")
                acked |= p.acked
                r.mode("ok")
                d.start()
            # Everything acknowledged, in every round, reaches both destinations.
            deadline = time.time() + 60
            while time.time() < deadline:
                hook_missing = acked - r.received_ids()
                file_ids, torn = read_file_ids(d)
                file_missing = acked - file_ids
                if not hook_missing and not file_missing:
                    break
                time.sleep(0.2)
            stats = r.stats()
            print(f"\n[crash] {len(ROUNDS)} kill -9 rounds, {len(acked)} events acknowledged; "
                  f"webhook received {stats['events']} events ({stats['events'] - len(acked)} "
                  f"repeats), file holds {len(file_ids)} distinct; torn lines: {len(torn)}",
                  flush=True)
            self.assertEqual(hook_missing, set(), f"{len(hook_missing)} acknowledged events never "
                             f"reached the webhook, e.g. {sorted(hook_missing)[:5]}")
            self.assertEqual(file_missing, set(), f"{len(file_missing)} acknowledged events never "
                             f"reached the file, e.g. {sorted(file_missing)[:5]}")
            for name, k, n_lines, head in torn:
                # Only the end of a file that the next run did not continue can be torn.
                self.assertEqual(k, n_lines - 1, f"torn line inside {name}: {head!r}")


if __name__ == "__main__":
    unittest.main()
