"""Graceful stop: SIGTERM/SIGINT let in-flight requests finish, exit 0 and leave every acknowledged
event durable; a second signal forces a prompt non-zero exit. Log full: 503 + Retry-After with
error log_full, and nothing acknowledged is lost."""
import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402


def expect_continue_request(port, body, path="/v1/batch"):
    """Opens a connection, sends headers with Expect: 100-continue and waits for the 100: at that
    point the server has read the headers and the request is in flight."""
    s = support.raw_connect(port)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {support.basic()}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Expect: 100-continue\r\n\r\n").encode()
    s.sendall(head)
    buf = b""
    s.settimeout(10)
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            raise AssertionError(f"closed before 100 Continue: {buf!r}")
        buf += b
    assert buf.startswith(b"HTTP/1.1 100"), buf
    return s


def slow_send(sock, body, seconds, result, key):
    """Sends `body` in pieces spread over `seconds`, then reads the response until EOF."""
    try:
        pieces = 10
        step = max(1, len(body) // pieces)
        for i in range(0, len(body), step):
            sock.sendall(body[i:i + step])
            time.sleep(seconds / pieces)  # client pacing, not synchronisation
        got, closed = support.read_until_eof(sock, timeout=20)
        result[key] = support.parse_http_responses(got) if got else []
    except OSError as e:
        result[key] = e
    finally:
        sock.close()


def batch_body(ids):
    return json.dumps({"batch": [support.track_event(m) for m in ids]}).encode()


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.settimeout(1)
            try:
                return s.recv(1) == b""  # accepted then closed counts as not accepting
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except OSError:
        return False


class ShutdownTest(unittest.TestCase):
    def graceful(self, sig):
        d = support.Daemon(server="  shutdown_grace: 15s\n  threads: 2\n")
        try:
            d.start()
            acked = set()
            for i in range(20):
                mid = f"before-{i}"
                st, _, body = d.post("/v1/track", support.track_event(mid))
                self.assertEqual(st, 200, body)
                acked.add(mid)
            slow = {}
            threads = []
            ids_by_key = {}
            for k in range(3):
                ids = [f"slow-{k}-{j}" for j in range(5)]
                ids_by_key[k] = ids
                body = batch_body(ids)
                sock = expect_continue_request(d.port, body)
                threads.append(threading.Thread(target=slow_send, args=(sock, body, 2.0, slow, k)))
            # An idle keep-alive connection must not hold the shutdown up.
            idle = support.raw_connect(d.port)
            t0 = time.time()
            d.proc.send_signal(sig)
            for t in threads:
                t.start()
            # No new connections while stopping.
            support.wait_until(lambda: refused(d.port), 5, what="listener closed")
            got, closed = support.read_until_eof(idle, timeout=5)
            idle.close()
            self.assertTrue(closed, "idle keep-alive connection not closed on shutdown")
            for t in threads:
                t.join(30)
            for k, ids in ids_by_key.items():
                r = slow[k]
                self.assertIsInstance(r, list, f"slow client {k} failed: {r!r}")
                self.assertEqual(len(r), 1, r)
                self.assertEqual(r[0][0], 200, r)
                acked.update(ids)
            rc = d.proc.wait(20)
            self.assertEqual(rc, 0, d.log_text())
            self.assertLess(time.time() - t0, 12)
            # Everything acknowledged is durable: a restart delivers it all.
            d.start()
            d.wait_for_events(lambda evs: acked <= support.message_ids(evs), timeout=20)
            self.assertEqual(d.stop(), 0)
        finally:
            d.cleanup()

    def test_sigterm_finishes_in_flight_requests(self):
        self.graceful(signal.SIGTERM)

    def test_sigint_finishes_in_flight_requests(self):
        self.graceful(signal.SIGINT)

    def test_second_signal_forces_exit(self):
        d = support.Daemon(server="  shutdown_grace: 60s\n  body_timeout: 120s\n")
        try:
            d.start()
            body = batch_body(["never-finished"])
            s = expect_continue_request(d.port, body)
            s.sendall(body[:5])  # and never the rest: the request stays in flight
            d.proc.send_signal(signal.SIGTERM)

            def not_ready():
                try:
                    st, _, _ = d.request("GET", "/readyz", port=d.admin_port, timeout=1)
                    return st == 503
                except OSError:
                    return False

            support.wait_until(not_ready, 5, what="readyz reports stopping")
            self.assertIsNone(d.proc.poll(), "exited before the grace period although a request is in flight")
            t0 = time.time()
            d.proc.send_signal(signal.SIGTERM)
            rc = d.proc.wait(5)
            self.assertNotEqual(rc, 0)
            self.assertLess(time.time() - t0, 3)
            s.close()
        finally:
            d.cleanup()


class LogFullTest(unittest.TestCase):
    def test_log_full_refuses_and_keeps_acknowledged(self):
        log = "  capacity_bytes: 1MiB\n  segment_bytes: 256KiB\n  retry_after: 7s\n"
        blocked = support.Daemon(log=log, destinations="")
        # The destination directory lies below a regular file: every write fails and is retried.
        blocker = os.path.join(blocked.tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        d = support.Daemon(log=log, data_dir=blocked.data, destinations=f"""
  - name: out
    type: file
    path: {blocker}/out
    batch_max_wait: 10ms
    retry_backoff_base: 10ms
    retry_backoff_max: 100ms
""")
        ok = None
        try:
            d.start()
            acked = set()
            full = None
            pad = "x" * 1000
            for n in range(400):
                ids = [f"full-{n}-{i}" for i in range(20)]
                body = {"batch": [support.track_event(m, properties={"pad": pad}) for m in ids]}
                st, hdrs, data = d.post("/v1/batch", body)
                if st == 200:
                    acked.update(ids)
                    continue
                full = (st, hdrs, data)
                break
            self.assertIsNotNone(full, "the log never filled up")
            st, hdrs, data = full
            self.assertEqual(st, 503, data)
            self.assertEqual(hdrs.get("retry-after"), "7", hdrs)
            j = json.loads(data)
            self.assertEqual(j.get("error"), "log_full", data)
            self.assertIn("message", j)
            self.assertGreater(len(acked), 0)
            # Smaller single events may still fit in what is left; keep going until they do not.
            refused_ids = set()
            for n in range(200):
                mid = f"single-{n}"
                st, hdrs, data = d.post("/v1/track", support.track_event(mid, properties={"pad": pad}))
                if st == 200:
                    acked.add(mid)
                    continue
                refused_ids.add(mid)
                self.assertEqual(st, 503, data)
                self.assertEqual(json.loads(data)["error"], "log_full", data)
                self.assertEqual(hdrs.get("retry-after"), "7", hdrs)
                break
            self.assertTrue(refused_ids, "single events were never refused")
            # Once full, it stays full while nothing is delivered.
            st, hdrs, data = d.post("/v1/track", support.track_event("refused-again", properties={"pad": pad}))
            self.assertEqual(st, 503, data)
            refused_ids.add("refused-again")
            # The process still serves health and exits cleanly although the destination is stuck.
            st, _, _ = d.request("GET", "/healthz", port=d.admin_port)
            self.assertEqual(st, 200)
            t0 = time.time()
            self.assertEqual(d.stop(), 0, d.log_text())
            self.assertLess(time.time() - t0, 15)

            # Restart on the same data dir with a working destination of the same name.
            ok = support.Daemon(log=log, data_dir=blocked.data)
            ok.start()
            evs = ok.wait_for_events(lambda e: acked <= support.message_ids(e), timeout=30)
            self.assertFalse(refused_ids & support.message_ids(evs), "refused events were stored")
            # Once delivered, space is released and ingest works again.
            def accepts():
                st, _, _ = ok.post("/v1/track", support.track_event("after-full"))
                return st == 200
            support.wait_until(accepts, 20, interval=0.2, what="log accepts again")
        finally:
            if ok:
                ok.cleanup()
            d.cleanup()
            blocked.cleanup()


if __name__ == "__main__":
    unittest.main()
