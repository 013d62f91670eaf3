#!/usr/bin/env python3
"""A loopback webhook receiver for tests of the webhook destination. Standard library only.

Listens on 127.0.0.1 (port 0 = a free one), prints `PORT <n>` on stdout when ready, and keeps
every batch it receives. Everything else is controlled over HTTP on the same port:

  POST /_control   {"mode": "ok"|"fail500"|"hang"|"429"|"reset"|"reject_matching"|"fail_matching"|
                    "status",
                    "retry_after": "2", "match": "<substring>", "status": 302, "body": "..."}
  GET  /_received  JSON list of the events received (parsed from the bodies)
  GET  /_batches   JSON list of {path, headers, body_b64, events} per accepted request
  GET  /_stats     JSON counters, including `connections` (connections that carried a webhook)

Modes, for every request that is not /_control etc.:
  ok               200 and the batch is stored
  fail500          500 "receiver told to fail"
  hang             no answer until the mode changes (or 60 s)
  429              429 with Retry-After: <retry_after> (seconds or an HTTP-date string)
  reset            closes the connection with an RST, without answering
  reject_matching  400 "rejected: contains <match>" when the raw body contains `match`, else ok
  fail_matching    500 "failed: contains <match>" when the raw body contains `match`, else ok
  status           answers `status` with `body` (e.g. 302 with a Location header)

With --secret S, X-Switchyard-Signature is checked (HMAC-SHA256 over "<t>.<raw body>") and a
wrong or missing one gets 401. With --tls-dir D, it serves HTTPS with a self-signed certificate
made by `openssl req` (D/cert.pem, D/key.pem) for --tls-names (subjectAltName syntax, default
IP:127.0.0.1,DNS:localhost), and prints `CERT <path>` before `PORT`.

Bounded: at most --max-events events are kept (later ones are counted, not stored), request
bodies over --max-body bytes get 413, and the process exits after --max-seconds or when its
stdin closes (so a crashed test cannot leave it behind).
"""

import argparse
import base64
import gzip
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_LIMIT_SECONDS = 60


class State:
    def __init__(self, max_events):
        self.cond = threading.Condition()
        self.mode = {"mode": "ok"}
        self.mode_version = 0
        self.events = []
        self.batches = []
        self.max_events = max_events
        self.stats = {
            "connections": 0,
            "requests": 0,
            "accepted": 0,
            "events": 0,
            "dropped_events": 0,
            "bad_signature": 0,
            "answered": {},
        }

    def count_answer(self, status):
        key = str(status)
        self.stats["answered"][key] = self.stats["answered"].get(key, 0) + 1


def parse_events(body, content_type):
    if "ndjson" in content_type:
        return [json.loads(line) for line in body.split(b"\n") if line.strip()]
    doc = json.loads(body)
    if isinstance(doc, dict):
        return doc.get("batch", [])
    if isinstance(doc, list):
        return doc
    raise ValueError("body is neither an object nor an array")


def make_handler(state, secret, max_body):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the destination expects

        def log_message(self, fmt, *args):  # quiet: the test output is the log
            pass

        def setup(self):
            super().setup()
            self.counted = False
            # The head and the body of an answer are written separately; without TCP_NODELAY
            # Nagle holds the body back until the client's delayed ACK (~40 ms per request).
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

        def reply(self, status, body=b"", headers=None, content_type="text/plain"):
            if isinstance(body, str):
                body = body.encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with state.cond:
                state.count_answer(status)

        def reply_json(self, doc):
            self.reply(200, json.dumps(doc), content_type="application/json")

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > max_body:
                return None
            return self.rfile.read(n)

        def do_GET(self):
            with state.cond:
                if self.path == "/_received":
                    doc = list(state.events)
                elif self.path == "/_batches":
                    doc = list(state.batches)
                elif self.path == "/_stats":
                    doc = dict(state.stats, mode=state.mode.get("mode"))
                else:
                    doc = None
            if doc is None:
                self.reply(404, "not found")
            else:
                self.reply_json(doc)

        def do_POST(self):
            if self.path == "/_control":
                body = self.read_body() or b"{}"
                with state.cond:
                    state.mode = json.loads(body)
                    state.mode_version += 1
                    state.cond.notify_all()
                self.reply_json({"ok": True})
                return
            self.webhook()

        def webhook(self):
            raw = self.read_body()
            with state.cond:
                state.stats["requests"] += 1
                if not self.counted:
                    self.counted = True
                    state.stats["connections"] += 1
                mode = dict(state.mode)
                version = state.mode_version
            if raw is None:
                self.close_connection = True
                self.reply(413, "too large")
                return
            name = mode.get("mode", "ok")
            if name == "hang":
                deadline = time.monotonic() + HANG_LIMIT_SECONDS
                with state.cond:
                    while state.mode_version == version and time.monotonic() < deadline:
                        state.cond.wait(deadline - time.monotonic())
                    name = state.mode.get("mode", "ok")
                    mode = dict(state.mode)
                if name == "hang":
                    name = "ok"
            if name == "reset":
                # SO_LINGER 0: close() sends an RST instead of a FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return
            if name == "fail500":
                self.reply(500, "receiver told to fail")
                return
            if name == "429":
                ra = str(mode.get("retry_after", "1"))
                self.reply(429, "slow down", {"Retry-After": ra})
                return
            if name == "status":
                status = int(mode.get("status", 200))
                headers = {}
                if 300 <= status < 400:
                    headers["Location"] = mode.get("location", "http://127.0.0.1:1/elsewhere")
                self.reply(status, mode.get("body", ""), headers)  # the batch is not stored
                return
            if secret is not None:
                sig = self.headers.get("X-Switchyard-Signature", "")
                parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
                want = hmac.new(
                    secret.encode(), parts.get("t", "").encode() + b"." + raw, hashlib.sha256
                ).hexdigest()
                if not hmac.compare_digest(want, parts.get("v1", "")):
                    with state.cond:
                        state.stats["bad_signature"] += 1
                    self.reply(401, "bad signature")
                    return
            if name == "fail_matching" and mode.get("match", "").encode() in raw:
                self.reply(500, "failed: contains " + mode.get("match", ""))
                return
            if name == "reject_matching" and mode.get("match", "").encode() in raw:
                self.reply(400, "rejected: contains " + mode.get("match", ""))
                return
            body = raw
            if self.headers.get("Content-Encoding", "") == "gzip":
                try:
                    body = gzip.decompress(raw)
                except OSError as e:
                    self.reply(400, "bad gzip: %s" % e)
                    return
            try:
                events = parse_events(body, self.headers.get("Content-Type", ""))
            except ValueError as e:
                self.reply(400, "bad JSON: %s" % e)
                return
            with state.cond:
                room = max(0, state.max_events - len(state.events))
                state.events.extend(events[:room])
                state.stats["dropped_events"] += len(events) - min(room, len(events))
                state.stats["events"] += len(events)
                state.stats["accepted"] += 1
                if len(state.batches) < state.max_events:
                    state.batches.append(
                        {
                            "path": self.path,
                            "headers": {k: v for k, v in self.headers.items()},
                            "body_b64": base64.b64encode(raw).decode(),
                            "events": len(events),
                        }
                    )
            self.reply(200, '{"ok":true}', content_type="application/json")

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls_context = None

    def handle_error(self, request, client_address):
        pass  # a client that went away (timeouts, resets) is what these tests are about

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, on the connection's own thread, so a client that fails
        # it (as the verification tests do) cannot stall the accept loop.
        request.settimeout(HANG_LIMIT_SECONDS + 5)
        if self.tls_context is not None:
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


def make_cert(directory, names):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                "-addext", "subjectAltName=" + names,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return cert, key


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", default=None)
    ap.add_argument("--tls-dir", default=None)
    ap.add_argument("--tls-names", default="IP:127.0.0.1,DNS:localhost")
    ap.add_argument("--max-events", type=int, default=1_000_000)
    ap.add_argument("--max-body", type=int, default=64 << 20)
    ap.add_argument("--max-seconds", type=float, default=900)
    args = ap.parse_args()

    state = State(args.max_events)
    server = Server(("127.0.0.1", args.port), make_handler(state, args.secret, args.max_body))
    if args.tls_dir:
        cert, key = make_cert(args.tls_dir, args.tls_names)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.tls_context = ctx
        print("CERT", cert, flush=True)
    print("PORT", server.server_address[1], flush=True)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Timer(args.max_seconds, lambda: os._exit(0)).start()
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
