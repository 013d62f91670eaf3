"""Operations surface: /healthz, /readyz, /metrics (documented names, values that move) and JSON
process logs (one JSON object per stderr line)."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402

DOCUMENTED = [
    "switchyard_http_requests_total",
    "switchyard_events_accepted_total",
    "switchyard_events_rejected_total",
    "switchyard_log_appended_bytes_total",
    "switchyard_log_fsync_seconds_count",
    "switchyard_log_fsync_seconds_sum",
    "switchyard_destination_lag_events",
]


def stuck_destination(tmp, name="stuck"):
    """A file destination below a regular file: every write fails and is retried forever."""
    blocker = os.path.join(tmp, 'blocker "quoted" \\ dir')
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    return f"""
  - name: {name}
    type: file
    path: '{blocker}/out'
    batch_max_wait: 10ms
    retry_backoff_base: 10ms
    retry_backoff_max: 50ms
"""


class OpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        probe = support.Daemon()
        tmp = probe.tmp
        data = probe.data
        probe.cleanup()
        os.makedirs(tmp, exist_ok=True)
        cls.tmp = tmp
        cls.d = support.Daemon(data_dir=data, destinations=f"""
  - name: out
    type: file
    path: {data}/out
    batch_max_wait: 10ms
""" + stuck_destination(tmp))
        # JSON process logs at debug level, so start-up, retries and shutdown all log something.
        text = cls.d.config_text.replace("logging:\n  level: warn", "logging:\n  level: debug\n  format: json")
        assert text != cls.d.config_text
        with open(cls.d.config_path, "w") as f:
            f.write(text)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def admin(self, method, path):
        return self.d.request(method, path, port=self.d.admin_port)

    def test_health_endpoints(self):
        st, hdrs, body = self.admin("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["status"], "ok")
        st, _, body = self.admin("GET", "/readyz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["status"], "ready")
        st, hdrs, body = self.admin("HEAD", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(body, b"")
        st, _, body = self.admin("GET", "/nope")
        self.assertEqual(st, 404)
        j = json.loads(body)
        self.assertIn("error", j)
        self.assertIn("message", j)
        st, _, body = self.admin("POST", "/healthz")
        self.assertEqual(st, 405)
        j = json.loads(body)
        self.assertIn("error", j)
        self.assertIn("message", j)
        # HEAD on a keep-alive connection must not leave body bytes that break the next answer.
        s = support.raw_connect(self.d.admin_port)
        try:
            s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            got, closed = support.read_until_eof(s, 5)
        finally:
            s.close()
        self.assertTrue(closed)
        head_end = got.index(b"\r\n\r\n") + 4
        self.assertTrue(got[head_end:].startswith(b"HTTP/1.1 200"), got)

    def test_metrics_names_and_movement(self):
        st, hdrs, _ = self.admin("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"), hdrs)
        m0 = self.d.metrics()

        def val(text, name, **labels):
            return support.metric_value(text, name, labels or None) or 0.0

        ids = [f"ops-{i}" for i in range(10)]
        st, _, body = self.d.post("/v1/batch", {"batch": [support.track_event(m) for m in ids]})
        self.assertEqual(st, 200, body)
        st, _, body = self.d.post("/v1/track", {"event": "E"})
        self.assertEqual(st, 400, body)
        self.d.wait_for_events(lambda e: set(ids) <= support.message_ids(e))

        m1 = self.d.metrics()
        for name in DOCUMENTED:
            self.assertIn(name, m1, f"{name} missing from /metrics")
        self.assertIn("switchyard_log_fsync_seconds_bucket", m1)
        self.assertGreaterEqual(val(m1, "switchyard_http_requests_total", route="/v1/batch", status="200")
                                - val(m0, "switchyard_http_requests_total", route="/v1/batch", status="200"), 1)
        self.assertGreaterEqual(val(m1, "switchyard_http_requests_total", route="/v1/track", status="400")
                                - val(m0, "switchyard_http_requests_total", route="/v1/track", status="400"), 1)
        self.assertGreaterEqual(val(m1, "switchyard_events_accepted_total", source="web")
                                - val(m0, "switchyard_events_accepted_total", source="web"), 10)
        self.assertGreaterEqual(val(m1, "switchyard_events_rejected_total", reason="missing_id")
                                - val(m0, "switchyard_events_rejected_total", reason="missing_id"), 1)
        self.assertGreater(val(m1, "switchyard_log_appended_bytes_total"),
                           val(m0, "switchyard_log_appended_bytes_total"))
        self.assertGreater(val(m1, "switchyard_log_fsync_seconds_count"),
                           val(m0, "switchyard_log_fsync_seconds_count"))
        # The working destination catches up to lag 0; the stuck one lags by at least the 10 events
        # (and does not hold the other back).
        support.wait_until(lambda: val(self.d.metrics(), "switchyard_destination_lag_events",
                                       destination="out") == 0, 10, what="out lag 0")
        support.wait_until(lambda: val(self.d.metrics(), "switchyard_destination_lag_events",
                                       destination="stuck") >= 10, 10, what="stuck lag >= 10")
        support.wait_until(lambda: val(self.d.metrics(), "switchyard_destination_healthy",
                                       destination="stuck") == 0, 10, what="stuck unhealthy")

    def test_zz_json_logs(self):
        # Runs last: stop the daemon so start-up, retry and shutdown lines are all in the file.
        st, _, _ = self.d.post("/v1/track", support.track_event("json-log"))
        self.assertEqual(st, 200)
        support.wait_until(lambda: "retry" in self.d.log_text().lower() or "fail" in self.d.log_text().lower(),
                           10, what="a retry warning in the process log")
        self.assertEqual(self.d.stop(), 0)
        lines = self.d.log_text().splitlines()
        self.assertGreater(len(lines), 3)
        levels = set()
        for line in lines:
            try:
                j = json.loads(line)
            except ValueError:
                self.fail(f"stderr line is not JSON: {line!r}")
            self.assertIsInstance(j, dict, line)
            for k in ("time", "level", "msg"):
                self.assertIn(k, j, line)
            levels.add(j["level"])
        self.assertTrue(levels & {"info", "debug"}, levels)
        self.assertTrue(any('"quoted"' in json.loads(l)["msg"] for l in lines),
                        "the failing path with quotes and a backslash should be logged verbatim")


if __name__ == "__main__":
    unittest.main()
