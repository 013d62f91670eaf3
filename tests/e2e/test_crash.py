"""kill -9 while clients post: every event that got a 2xx must reach the output after a restart on
the same data dir (duplicates allowed, losses not). Also torn tails appended to the newest log
segment after a crash."""
import glob
import http.client
import json
import os
import random
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402


class Poster:
    """N client threads posting small batches with distinct messageIds on keep-alive connections,
    recording every messageId whose batch was answered 2xx."""

    def __init__(self, daemon, prefix, threads=4, batch=5):
        self.d = daemon
        self.prefix = prefix
        self.batch = batch
        self.acked = set()
        self.sent = 0
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, tid):
        conn = None
        n = 0
        auth = support.basic()
        while not self.stop_flag.is_set():
            ids = [f"{self.prefix}-t{tid}-{n}-{i}" for i in range(self.batch)]
            n += 1
            body = json.dumps({"batch": [support.track_event(m, user_id=f"user{tid}") for m in ids]})
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=5)
                conn.request("POST", "/v1/batch", body=body,
                             headers={"Authorization": auth, "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.sent += 1
                    if 200 <= r.status < 300:
                        self.acked.update(ids)
            except (OSError, http.client.HTTPException):
                # The daemon was killed (or is restarting): that batch is simply not acknowledged.
                if conn is not None:
                    conn.close()
                conn = None
                if self.stop_flag.wait(0.02):
                    break
        if conn is not None:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)

    def acked_count(self):
        with self.lock:
            return len(self.acked)


def newest_segment(data_dir):
    segs = sorted(glob.glob(os.path.join(data_dir, "log", "*.seg")))
    assert segs, "no log segments"
    return segs[-1]


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.d = support.Daemon(server="  threads: 2\n")
        self.d.start()

    def tearDown(self):
        self.d.cleanup()

    def wait_all_delivered(self, acked, timeout=40):
        missing = set()

        def done(evs):
            missing.clear()
            missing.update(acked - support.message_ids(evs))
            return not missing

        try:
            return self.d.wait_for_events(done, timeout=timeout)
        except AssertionError:
            self.fail(f"{len(missing)} of {len(acked)} acknowledged events lost, e.g. {sorted(missing)[:5]}")

    def post_and_kill(self, prefix, seconds):
        p = Poster(self.d, prefix).start()
        # Kill mid-flight: only once the clients are demonstrably getting answers.
        support.wait_until(lambda: p.acked_count() > 0, 10, what="first acknowledged batch")
        time.sleep(seconds)  # load duration, not synchronisation
        self.d.kill9()
        p.stop()
        self.assertGreater(len(p.acked), 0)
        return p

    def test_kill9_cycles_lose_nothing_acknowledged(self):
        acked = set()
        rng = random.Random(1234)
        for cycle in range(3):
            p = self.post_and_kill(f"c{cycle}", rng.uniform(1.5, 3.0))
            acked |= p.acked
            self.d.start()
            self.wait_all_delivered(acked)
        # After the last restart the daemon still takes and delivers new events.
        st, _, body = self.d.post("/v1/track", support.track_event("after-crashes"))
        self.assertEqual(st, 200, body)
        self.wait_all_delivered(acked | {"after-crashes"})

    def test_torn_tail_after_kill(self):
        acked = set()
        tails = [
            ("random garbage", bytes(random.Random(7).getrandbits(8) for _ in range(333))),
            # A frame header announcing 4096 bytes followed by only a few of them.
            ("short frame", struct.pack("<II", 4096, 0xDEADBEEF) + b'{"type":"track"'),
            # A complete frame whose CRC does not match.
            ("bad crc", struct.pack("<II", 16, 0x12345678) + b"0123456789abcdef"),
            ("zeros", b"\0" * 4096),
        ]
        for i, (name, tail) in enumerate(tails):
            with self.subTest(tail=name):
                p = self.post_and_kill(f"torn{i}", 1.0)
                acked |= p.acked
                seg = newest_segment(self.d.data)
                size = os.path.getsize(seg)
                with open(seg, "ab") as f:
                    f.write(tail)
                self.d.start()
                self.wait_all_delivered(acked)
                # New appends land after the recovered end and are delivered too.
                mid = f"after-torn-{i}"
                st, _, body = self.d.post("/v1/track", support.track_event(mid))
                self.assertEqual(st, 200, body)
                acked.add(mid)
                self.wait_all_delivered(acked)
                self.assertGreaterEqual(os.path.getsize(newest_segment(self.d.data)), size)


if __name__ == "__main__":
    unittest.main()
