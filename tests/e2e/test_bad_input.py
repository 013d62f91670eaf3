"""Hostile and malformed input against the public listener: bad JSON, bad encodings, size limits,
gzip bombs, request smuggling, slow clients, connection limits. The daemon must answer each with
the documented status and a JSON error body, store nothing it should not, and stay healthy."""
import gzip
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402

MAX_BODY = 256 * 1024


def auth_header():
    return support.basic()


def raw_post(path, body, headers=(), version="HTTP/1.1"):
    """A raw POST with the given extra header lines (list of 'Name: value'); no framing header is
    added, so the caller controls Content-Length / Transfer-Encoding exactly."""
    if isinstance(body, str):
        body = body.encode()
    head = [f"POST {path} {version}", "Host: 127.0.0.1", "Authorization: " + auth_header(),
            "Content-Type: application/json"]
    head += list(headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def framed_post(path, body, extra=()):
    if isinstance(body, str):
        body = body.encode()
    return raw_post(path, body, [f"Content-Length: {len(body)}"] + list(extra))


def chunked(body, size=4096):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = support.Daemon(server=f"""  header_timeout: 1s
  body_timeout: 1s
  max_body_bytes: {MAX_BODY}
  threads: 2
""")
        cls.d.start()
        cls.smuggled_ids = set()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    # Helpers --------------------------------------------------------------------------------
    def assert_json_error(self, status, body, expect_status=None, code=None):
        if expect_status is not None:
            self.assertEqual(status, expect_status, body[:300])
        try:
            j = json.loads(body)
        except ValueError:
            self.fail(f"error body is not JSON: {body[:300]!r}")
        self.assertIsInstance(j, dict, body[:300])
        self.assertIn("error", j, body[:300])
        self.assertIn("message", j, body[:300])
        self.assertIsInstance(j["error"], str)
        self.assertIsInstance(j["message"], str)
        if code is not None:
            self.assertEqual(j["error"], code, body[:300])
        return j

    def post_expect(self, path, body, status, code=None, headers=None):
        st, _, data = self.d.post(path, body, headers=headers)
        self.assert_json_error(st, data, status, code)

    def exchange_expect_close(self, data, status, timeout=8, code=None):
        """Sends raw bytes, expects exactly one response with `status`, then EOF."""
        got, closed = support.raw_exchange(self.d.port, data, timeout=timeout)
        self.assertTrue(closed, f"connection still open after {timeout}s; got {got[:300]!r}")
        responses = support.parse_http_responses(got)
        self.assertEqual(len(responses), 1, f"expected exactly one response, got {got[:600]!r}")
        st, hdrs, body = responses[0]
        self.assert_json_error(st, body, status, code)
        return hdrs

    def wait_marker(self, tag):
        """Posts a marker event and waits until it is delivered, so that anything posted before it
        has had its chance to reach the output too."""
        mid = f"marker-{tag}-{time.time_ns()}"
        st, _, body = self.d.post("/v1/track", support.track_event(mid))
        self.assertEqual(st, 200, body)
        return self.d.wait_for_events(lambda evs: mid in support.message_ids(evs))

    # Body content ---------------------------------------------------------------------------
    def test_invalid_json(self):
        for body in ['{"userId":"u1","event":', "not json", "{'single':'quotes'}", "", "[]", "null"]:
            with self.subTest(body=body):
                st, _, data = self.d.post("/v1/track", body)
                self.assert_json_error(st, data, 400)
        st, _, data = self.d.post("/v1/batch", '{"batch":[{"type":"track"')
        self.assert_json_error(st, data, 400, "invalid_json")

    def test_invalid_utf8_in_string(self):
        for raw in [b'{"userId":"u\xff\xfe1","event":"E","messageId":"bad-utf8-1"}',
                    b'{"userId":"u1","event":"E\xc3","messageId":"bad-utf8-2"}',
                    b'{"userId":"u1","event":"E","properties":{"k":"\xed\xa0\x80"},"messageId":"bad-utf8-3"}']:
            with self.subTest(raw=raw):
                st, _, data = self.d.post("/v1/track", raw)
                self.assert_json_error(st, data, 400)
        evs = self.wait_marker("utf8")
        self.assertFalse({"bad-utf8-1", "bad-utf8-2", "bad-utf8-3"} & support.message_ids(evs))

    def test_deep_nesting(self):
        depth = 10000
        arrays = "[" * depth + "]" * depth
        objects = '{"a":' * depth + "1" + "}" * depth
        for path, body in [("/v1/track", arrays), ("/v1/track", objects), ("/v1/batch", arrays),
                           ("/v1/batch", '{"batch":' + arrays + "}"),
                           ("/v1/track", '{"userId":"u","event":"E","messageId":"deep-1","properties":'
                            + objects + "}"),
                           ("/v1/batch", '{"batch":[{"type":"track","userId":"u","event":"E",'
                            '"messageId":"deep-2","properties":' + objects + "}]}")]:
            with self.subTest(path=path, start=body[:40]):
                st, _, data = self.d.post(path, body)
                self.assert_json_error(st, data, 400)
        self.assertIsNone(self.d.proc.poll(), "daemon died on deep nesting")
        evs = self.wait_marker("deep")
        self.assertFalse({"deep-1", "deep-2"} & support.message_ids(evs))

    def test_missing_ids_and_wrong_types(self):
        cases = [
            ({"type": "track", "event": "E"}, "missing_id"),
            ({"event": "E", "userId": "", "anonymousId": None}, "missing_id"),
            ({"event": "E", "userId": {"id": 1}}, "invalid_user_id"),
            ({"event": "E", "userId": ["u"]}, "invalid_user_id"),
            ({"event": "E", "anonymousId": True}, "invalid_anonymous_id"),
            ({"event": "E", "userId": "u", "messageId": 42}, "invalid_message_id"),
            ({"event": "E", "userId": "u", "messageId": "m" * 101}, "message_id_too_long"),
            ({"event": "E", "userId": "u", "context": "ctx"}, "invalid_context"),
            ({"event": "E", "userId": "u", "integrations": []}, "invalid_integrations"),
            ({"userId": "u"}, "missing_event"),
            ({"userId": "u", "event": 7}, "invalid_event"),
        ]
        for body, code in cases:
            with self.subTest(body=body):
                self.post_expect("/v1/track", body, 400, code)
        # In a batch, the bad event is refused and the good one kept.
        st, _, data = self.d.post("/v1/batch", {"batch": [
            support.track_event("batch-good-1"),
            {"type": "track", "event": "E", "userId": {"x": 1}, "messageId": "batch-bad-1"},
            {"type": "track", "event": "E", "messageId": "batch-bad-2"},
        ]})
        self.assertEqual(st, 200, data)
        j = json.loads(data)
        self.assertEqual(j.get("accepted"), 1, data)
        self.assertEqual(sorted(r["index"] for r in j["rejected"]), [1, 2], data)
        evs = self.d.wait_for_events(lambda e: "batch-good-1" in support.message_ids(e))
        self.assertFalse({"batch-bad-1", "batch-bad-2"} & support.message_ids(evs))

    # Sizes and encodings ----------------------------------------------------------------------
    def test_oversize_content_length_refused_before_body(self):
        # Announce 100 MB, send only the headers and a few bytes: the 413 must come without the
        # server waiting for the rest.
        s = support.raw_connect(self.d.port)
        try:
            s.sendall(raw_post("/v1/batch", b'{"batch":[', ["Content-Length: 100000000"]))
            t0 = time.time()
            got, closed = support.read_until_eof(s, timeout=5)
        finally:
            s.close()
        self.assertTrue(closed, f"no answer/close within 5s: {got[:300]!r}")
        self.assertLess(time.time() - t0, 4)
        responses = support.parse_http_responses(got)
        self.assertEqual(len(responses), 1, got[:600])
        self.assert_json_error(responses[0][0], responses[0][2], 413)

    def test_oversize_body_just_over_limit(self):
        body = b'{"batch":[],"pad":"' + b"x" * MAX_BODY + b'"}'
        self.exchange_expect_close(framed_post("/v1/batch", body), 413)

    def test_oversize_chunked_body(self):
        body = b'{"batch":[],"pad":"' + b"x" * (4 * MAX_BODY) + b'"}'
        self.exchange_expect_close(raw_post("/v1/batch", chunked(body, 16384),
                                            ["Transfer-Encoding: chunked"]), 413)
        # A single oversize chunk, announced by its size line.
        self.exchange_expect_close(raw_post("/v1/batch", b"%x\r\n" % (8 * MAX_BODY) + b"x" * 1000,
                                            ["Transfer-Encoding: chunked"]), 413)

    def test_gzip_ok_and_bomb(self):
        good = gzip.compress(json.dumps({"batch": [support.track_event("gzip-good-1")]}).encode())
        st, _, data = self.d.post("/v1/batch", good, headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 200, data)

        bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), 9)
        self.assertLess(len(bomb), 100 * 1024)
        pid = self.d.proc.pid
        rss0 = support.proc_status_kib(pid, "VmRSS")
        hwm0 = support.proc_status_kib(pid, "VmHWM")
        for _ in range(3):
            got, closed = support.raw_exchange(
                self.d.port, framed_post("/v1/batch", bomb, ["Content-Encoding: gzip"]), timeout=10)
            self.assertTrue(closed)
            (st, _, body), = support.parse_http_responses(got)
            self.assert_json_error(st, body, 413)
        # The same bomb with a gzip member concatenated after a valid one.
        got, _ = support.raw_exchange(
            self.d.port, framed_post("/v1/batch", good + bomb, ["Content-Encoding: gzip"]))
        (st, _, body), = support.parse_http_responses(got)
        self.assert_json_error(st, body, 413)
        rss1 = support.proc_status_kib(pid, "VmRSS")
        hwm1 = support.proc_status_kib(pid, "VmHWM")
        self.assertLess(rss1 - rss0, 64 * 1024, f"VmRSS grew from {rss0} to {rss1} KiB")
        self.assertLess(hwm1 - hwm0, 64 * 1024, f"VmHWM grew from {hwm0} to {hwm1} KiB")
        self.d.wait_for_events(lambda e: "gzip-good-1" in support.message_ids(e))

    def test_invalid_gzip_and_unsupported_encoding(self):
        good = gzip.compress(b'{"userId":"u","event":"E"}')
        for body in [b"definitely not gzip", good[:-10], b"\x1f\x8b\x08\x00" + b"\xff" * 64]:
            with self.subTest(body=body[:20]):
                self.exchange_expect_close(framed_post("/v1/track", body, ["Content-Encoding: gzip"]), 400)
        for enc in ["br", "zstd", "compress", "gzip, br"]:
            with self.subTest(enc=enc):
                self.exchange_expect_close(framed_post("/v1/track", good, [f"Content-Encoding: {enc}"]), 415)

    def test_header_too_large(self):
        self.exchange_expect_close(framed_post("/v1/track", b"{}", ["X-Big: " + "a" * 20000]), 431)
        many = [f"X-H{i}: {'b' * 100}" for i in range(300)]
        self.exchange_expect_close(framed_post("/v1/track", b"{}", many), 431)

    # Smuggling --------------------------------------------------------------------------------
    def smuggle_payload(self, tag):
        mid = f"smuggled-{tag}"
        self.smuggled_ids.add(mid)
        return json.dumps(support.track_event(mid, user_id="smuggler")).encode()

    def inner_request(self, tag):
        return framed_post("/v1/track", self.smuggle_payload(tag + "-inner"))

    def test_smuggling_framing_is_refused(self):
        cases = {}
        ev = self.smuggle_payload("te-cl")
        cases["te+cl"] = raw_post("/v1/track", b"0\r\n\r\n" + self.inner_request("te-cl"),
                                  [f"Content-Length: 5", "Transfer-Encoding: chunked"])
        cases["cl+te"] = raw_post("/v1/track", chunked(ev) + self.inner_request("cl-te"),
                                  ["Transfer-Encoding: chunked", f"Content-Length: {len(ev) + 10}"])
        ev = self.smuggle_payload("cl-same")
        cases["two equal CL"] = raw_post("/v1/track", ev, [f"Content-Length: {len(ev)}"] * 2)
        ev = self.smuggle_payload("cl-diff")
        cases["two different CL"] = raw_post("/v1/track", ev + self.inner_request("cl-diff"),
                                             [f"Content-Length: {len(ev)}", "Content-Length: 0"])
        ev = self.smuggle_payload("cl-list")
        cases["CL list"] = raw_post("/v1/track", ev, [f"Content-Length: {len(ev)},{len(ev)}"])
        cases["CL 1,1"] = raw_post("/v1/track", b"{" + self.inner_request("cl-11"), ["Content-Length: 1,1"])
        ev = self.smuggle_payload("cl-plus")
        cases["CL +N"] = raw_post("/v1/track", ev, [f"Content-Length: +{len(ev)}"])
        cases["CL negative"] = raw_post("/v1/track", ev, ["Content-Length: -1"])
        cases["CL hex"] = raw_post("/v1/track", ev, [f"Content-Length: 0x{len(ev):x}"])
        ev = self.smuggle_payload("te-gzip-chunked")
        cases["TE gzip, chunked"] = raw_post("/v1/track", chunked(ev), ["Transfer-Encoding: gzip, chunked"])
        ev = self.smuggle_payload("te-xchunked")
        cases["TE xchunked"] = raw_post("/v1/track", chunked(ev) + self.inner_request("te-xchunked"),
                                        ["Transfer-Encoding: xchunked"])
        ev = self.smuggle_payload("te-chunked-identity")
        cases["TE chunked, identity"] = raw_post("/v1/track", chunked(ev),
                                                 ["Transfer-Encoding: chunked, identity"])
        ev = self.smuggle_payload("te-twice")
        cases["TE twice"] = raw_post("/v1/track", chunked(ev),
                                     ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"])
        ev = self.smuggle_payload("te-identity")
        cases["TE identity"] = raw_post("/v1/track", ev, ["Transfer-Encoding: identity"])
        # A second request hidden in a chunked body behind a malformed chunk framing.
        cases["chunk bare LF"] = raw_post(
            "/v1/track", b"0\n\n" + self.inner_request("bare-lf"), ["Transfer-Encoding: chunked"])
        cases["chunk size garbage"] = raw_post(
            "/v1/track", b"zz\r\n" + self.inner_request("chunk-garbage") + b"\r\n0\r\n\r\n",
            ["Transfer-Encoding: chunked"])
        cases["chunk size overflow"] = raw_post(
            "/v1/track", b"10000000000000000001\r\n" + self.inner_request("chunk-overflow") + b"\r\n0\r\n\r\n",
            ["Transfer-Encoding: chunked"])
        for name, data in cases.items():
            with self.subTest(case=name):
                hdrs = self.exchange_expect_close(data, 400)
                self.assertEqual(hdrs.get("connection", "").lower(), "close", hdrs)
        self.assertIsNone(self.d.proc.poll())
        evs = self.wait_marker("smuggling")
        ids = support.message_ids(evs) | support.message_ids(self.d.quarantine())
        self.assertFalse(ids & self.smuggled_ids, f"smuggled events were stored: {ids & self.smuggled_ids}")

    def test_request_hidden_in_body_is_not_executed(self):
        # A well-framed request whose body carries a second request: the body is just (invalid)
        # JSON to the server. Exactly one 400 comes back for it; the hidden request is neither
        # answered nor stored, and the connection stays in sync (the next real request on it is
        # answered normally).
        hidden = self.inner_request("hidden-in-body")
        body = b'{"userId":"u","event":"E"}\r\n\r\n' + hidden
        first = framed_post("/v1/track", body)
        mid = f"after-hidden-{time.time_ns()}"
        follow = framed_post("/v1/track", json.dumps(support.track_event(mid)).encode(),
                             ["Connection: close"])
        got, closed = support.raw_exchange(self.d.port, first + follow, timeout=8)
        self.assertTrue(closed, got[:600])
        responses = support.parse_http_responses(got)
        self.assertEqual([r[0] for r in responses], [400, 200], got[:800])
        self.assert_json_error(responses[0][0], responses[0][2], 400, "invalid_json")
        evs = self.d.wait_for_events(lambda e: mid in support.message_ids(e))
        self.assertNotIn("smuggled-hidden-in-body-inner", support.message_ids(evs))

    # Slow clients -----------------------------------------------------------------------------
    def assert_cut(self, sock, t0, max_seconds, expect_status):
        got, closed = support.read_until_eof(sock, timeout=max_seconds + 2)
        elapsed = time.time() - t0
        self.assertTrue(closed, f"slow connection still open after {elapsed:.1f}s")
        self.assertLess(elapsed, max_seconds, f"slow connection cut only after {elapsed:.1f}s")
        self.assertGreater(elapsed, 0.8, "connection cut before the 1s deadline")
        if got:
            responses = support.parse_http_responses(got)
            self.assertEqual(len(responses), 1, got[:300])
            self.assert_json_error(responses[0][0], responses[0][2], expect_status)

    def serve_others_meanwhile(self, tag, seconds=1.2):
        """Normal clients get prompt answers while slow ones hang around."""
        deadline = time.time() + seconds
        n = 0
        while time.time() < deadline:
            t = time.time()
            st, _, body = self.d.post("/v1/track", support.track_event(f"{tag}-{n}"))
            self.assertEqual(st, 200, body)
            self.assertLess(time.time() - t, 0.5)
            n += 1
        self.assertGreater(n, 3)

    def test_slow_header_client(self):
        s1 = support.raw_connect(self.d.port)
        t0 = time.time()
        s1.sendall(b"POST /v1/tr")
        # A slow-loris that keeps trickling header bytes must hit the same absolute deadline.
        s2 = support.raw_connect(self.d.port)
        t2 = time.time()
        stop = threading.Event()

        def trickle():
            line = b"POST /v1/track HTTP/1.1\r\nX-Slow: " + b"a" * 200
            for b in line:
                if stop.wait(0.1):
                    return
                try:
                    s2.send(bytes([b]))
                except OSError:
                    return

        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        try:
            self.serve_others_meanwhile("slow-header")
            self.assert_cut(s1, t0, 4, 408)
            self.assert_cut(s2, t2, 4, 408)
        finally:
            stop.set()
            th.join()
            s1.close()
            s2.close()

    def test_slow_body_client(self):
        s = support.raw_connect(self.d.port)
        try:
            body = json.dumps(support.track_event("slowbody-unfinished")).encode()
            s.sendall(raw_post("/v1/track", body[:10], [f"Content-Length: {len(body)}"]))
            t0 = time.time()
            self.serve_others_meanwhile("slow-body")
            self.assert_cut(s, t0, 4, 408)
        finally:
            s.close()
        evs = self.wait_marker("slow-body")
        self.assertNotIn("slowbody-unfinished", support.message_ids(evs))

    def test_zz_still_healthy(self):
        # Runs last (alphabetical order): after everything above, normal service.
        st, _, body = self.d.post("/v1/track", support.track_event("final-ok"))
        self.assertEqual(st, 200, body)
        st, _, body = self.d.request("GET", "/healthz", port=self.d.admin_port)
        self.assertEqual(st, 200, body)
        self.d.wait_for_events(lambda e: "final-ok" in support.message_ids(e))
        self.assertIsNone(self.d.proc.poll())


class ConnectionLimitTest(unittest.TestCase):
    def test_max_connections(self):
        with support.Daemon(server="  max_connections: 8\n  threads: 2\n") as d:
            def open_conns():
                return support.metric_value(d.metrics(), "switchyard_http_connections")

            socks = []
            try:
                for _ in range(8):
                    socks.append(support.raw_connect(d.port))
                support.wait_until(lambda: open_conns() == 8, 10, what="8 open connections")
                t0 = time.time()
                extra = support.raw_connect(d.port)
                try:
                    got, closed = support.read_until_eof(extra, timeout=5)
                finally:
                    extra.close()
                self.assertTrue(closed)
                self.assertLess(time.time() - t0, 3)
                responses = support.parse_http_responses(got)
                self.assertEqual(len(responses), 1, got)
                st, hdrs, body = responses[0]
                self.assertEqual(st, 503, got)
                self.assertIn("retry-after", hdrs)
                self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
                j = json.loads(body)
                self.assertIn("error", j)
                self.assertIn("message", j)
                # The 8 held connections are still served.
                body = json.dumps(support.track_event("held-conn")).encode()
                socks[0].sendall(framed_post("/v1/track", body, ["Connection: close"]))
                got, closed = support.read_until_eof(socks[0], timeout=5)
                self.assertEqual(support.parse_http_responses(got)[0][0], 200, got)
            finally:
                for s in socks:
                    s.close()
            support.wait_until(lambda: open_conns() == 0, 10, what="connections closed")
            st, _, body = d.post("/v1/track", support.track_event("after-limit"))
            self.assertEqual(st, 200, body)
            refused = support.metric_value(d.metrics(), "switchyard_http_connections_refused")
            self.assertGreaterEqual(refused, 1)


if __name__ == "__main__":
    unittest.main()
