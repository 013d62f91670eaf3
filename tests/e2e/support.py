"""Helpers for end-to-end tests: start the real daemon on free loopback ports, talk HTTP to it,
read what it wrote. Standard library only."""
import base64
import glob
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

BIN = os.environ.get("SWITCHYARD_BIN", os.path.join(os.path.dirname(__file__), "../../build/switchyard"))
SOURCE_DIR = os.environ.get("SWITCHYARD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
WRITE_KEY = "test-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(key=WRITE_KEY, colon=True):
    raw = (key + ":") if colon else key
    return "Basic " + base64.b64encode(raw.encode()).decode()


class _PortTaken(Exception):
    pass


class Daemon:
    """A switchyard process with its own temp data dir. `extra` is YAML appended to the config;
    `server`/`log`/`sources`/`destinations` override the default sections (YAML text);
    `admin_extra` is YAML added inside the `admin:` section (e.g. "  token: secret"); `run_args` are
    more arguments to `switchyard run` (e.g. ["--role", "deliver"])."""

    def __init__(self, server="", log="", sources=None, destinations=None, extra="", data_dir=None,
                 admin_extra="", run_args=()):
        self.run_args = list(run_args)
        self.tmp = tempfile.mkdtemp(prefix="switchyard-e2e-")
        self.data = data_dir or os.path.join(self.tmp, "data")
        self.port = free_port()
        self.admin_port = free_port()
        if sources is None:
            sources = f"""
  - name: web
    write_keys: [{WRITE_KEY}]
    allowed_origins: ["https://shop.example"]
  - name: other
    write_keys: [other-key]
    allowed_origins: ["*"]
"""
        if destinations is None:
            destinations = f"""
  - name: out
    type: file
    path: {self.data}/out
    batch_max_wait: 10ms
"""
        self.config_text = f"""
data_dir: {self.data}
server:
  listen: 127.0.0.1:{self.port}
{server}
admin:
  listen: 127.0.0.1:{self.admin_port}
{admin_extra}
logging:
  level: warn
sources:{sources}
log:
  durability: fsync
{log}
destinations:{destinations}
{extra}
"""
        self.destinations_text = destinations
        self.config_path = os.path.join(self.tmp, "switchyard.yaml")
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.proc = None
        self.stderr_path = os.path.join(self.tmp, "stderr.txt")

    def start(self, timeout=20):
        # free_port() can race with other tests running in parallel: if our listener's port was
        # taken in between, the daemon exits with "Cannot listen"; pick new ports and retry.
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                self._new_ports()
        return self._start_once(timeout)

    def _new_ports(self):
        old = (self.port, self.admin_port)
        self.port, self.admin_port = free_port(), free_port()
        self.config_text = self.config_text.replace(f"127.0.0.1:{old[0]}", f"127.0.0.1:{self.port}")
        self.config_text = self.config_text.replace(f"127.0.0.1:{old[1]}",
                                                    f"127.0.0.1:{self.admin_port}")
        with open(self.config_path, "w") as f:
            f.write(self.config_text)

    def _start_once(self, timeout):
        if getattr(self, "stderr", None):
            self.stderr.close()  # restarted: the previous run's handle
        log_start = len(self.log_text())
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([BIN, "run", "-c", self.config_path, *self.run_args], stdout=self.stderr,
                                     stderr=self.stderr, cwd=self.tmp)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                if "Cannot listen" in self.log_text()[log_start:]:
                    raise _PortTaken()
                raise RuntimeError("daemon exited early: " + self.log_text())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as r:
                    # Our process must still be the one answering (not a neighbour on the port).
                    if r.status == 200 and self.proc.poll() is None:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon did not become ready: " + self.log_text())

    def log_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def cleanup(self):
        self.stop()
        if getattr(self, "stderr", None):
            self.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # HTTP -----------------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, port=None, timeout=10):
        """Returns (status, headers dict (lower-case keys), body bytes)."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        return r.status, hdrs, data

    def post(self, path, body, auth=True, headers=None, **kw):
        h = {"Content-Type": "application/json"}
        if auth is True:
            h["Authorization"] = basic()
        elif isinstance(auth, str):
            h["Authorization"] = auth
        h.update(headers or {})
        return self.request("POST", path, body, h, **kw)

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as r:
            return r.read().decode()

    # Output ---------------------------------------------------------------------------------
    def read_ndjson(self, subdir="out"):
        events = []
        for path in sorted(glob.glob(os.path.join(self.data, subdir, "*"))):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                lines = [line.strip() for line in f]
            lines = [line for line in lines if line]
            for k, line in enumerate(lines):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    # A kill -9 can leave a file's last line truncated (documented; the events
                    # after the committed cursor are written again to a new file). Anywhere
                    # else an unparsable line is an error.
                    if k != len(lines) - 1:
                        raise
        return events

    def wait_for_events(self, predicate, subdir="out", timeout=20):
        """Polls the output until predicate(events) is true; returns the events."""
        deadline = time.time() + timeout
        events = []
        while time.time() < deadline:
            try:
                events = self.read_ndjson(subdir)
            except (OSError, ValueError, EOFError):
                events = []
            if predicate(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout}s; have {len(events)} events in {subdir}")

    def quarantine(self):
        return self.read_ndjson("quarantine")

    # Operator API, CLI and config (added for the delivery / reload tests) -------------------
    def api(self, method, path, token=None, body=None, timeout=30):
        """Calls the operator API on the admin port with `Authorization: Bearer <token>` (no header
        when token is None). Returns (status, parsed JSON or raw bytes)."""
        h = {} if token is None else {"Authorization": "Bearer " + token}
        st, _, data = self.request(method, path, body, h, port=self.admin_port, timeout=timeout)
        try:
            return st, json.loads(data)
        except ValueError:
            return st, data

    def destination_stats(self, name, token):
        st, doc = self.api("GET", "/v1/destinations", token)
        if st != 200:
            raise AssertionError(f"GET /v1/destinations: {st} {doc!r}")
        for d in doc["destinations"]:
            if d["name"] == name:
                return d
        return None

    def cli(self, *args, timeout=30):
        """Runs `switchyard <args> -c <this config>`; returns CompletedProcess (text)."""
        return subprocess.run([BIN, *args, "-c", self.config_path], capture_output=True, text=True,
                              timeout=timeout)

    def rewrite_config(self, destinations=None, text=None):
        """Replaces the config file: the whole text, or only the `destinations:` section."""
        if text is None:
            old = "\ndestinations:" + self.destinations_text + "\n"
            assert self.config_text.count(old) == 1, "cannot find the destinations section"
            text = self.config_text.replace(old, "\ndestinations:" + destinations + "\n")
            self.destinations_text = destinations
        self.config_text = text
        with open(self.config_path, "w") as f:
            f.write(text)

    def post_events(self, events, batch=100, auth=True):
        """Posts `events` to /v1/batch in batches; asserts every answer is 200."""
        for i in range(0, len(events), batch):
            st, _, body = self.post("/v1/batch", {"batch": events[i:i + batch]}, auth=auth)
            if st != 200:
                raise AssertionError(f"/v1/batch answered {st}: {body[:300]!r}")


RECEIVER = os.path.join(SOURCE_DIR, "tests", "support", "webhook_receiver.py")


class Receiver:
    """tests/support/webhook_receiver.py in a subprocess (it exits when our end of its stdin
    closes). Use as a context manager or call close()."""

    def __init__(self, *args, max_seconds=600):
        self.proc = subprocess.Popen(
            ["python3", RECEIVER, "--max-seconds", str(max_seconds), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                break
        if self.port is None:
            self.close()
            raise RuntimeError("webhook receiver did not start")
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def _call(self, method, path, doc=None, timeout=30):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        body = None if doc is None else json.dumps(doc).encode()
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        if r.status != 200:
            raise AssertionError(f"receiver {method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data)

    def mode(self, mode, **kw):
        doc = {"mode": mode}
        doc.update(kw)
        return self._call("POST", "/_control", doc)

    def received(self):
        return self._call("GET", "/_received")

    def received_ids(self):
        return {e.get("messageId") for e in self.received()}

    def stats(self):
        return self._call("GET", "/_stats")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


# Raw sockets, polling and process helpers (added for the bad-input / crash / shutdown tests) ----

def wait_until(cond, timeout=10, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value, which is returned; AssertionError on timeout."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


def raw_connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_eof(sock, timeout=10):
    """Reads until the peer closes (EOF or reset) or `timeout` passes.
    Returns (data, closed): closed is False when the deadline passed with the connection open."""
    deadline = time.time() + timeout
    chunks = []
    while True:
        left = deadline - time.time()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), False
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), True
        if not b:
            return b"".join(chunks), True
        chunks.append(b)


def raw_exchange(port, data, timeout=10, send_timeout=None):
    """Sends `data` (bytes) on a new connection, then reads until the server closes.
    Errors while sending (the server may answer and close early) are ignored.
    Returns (bytes received, closed by server)."""
    s = raw_connect(port, timeout=send_timeout or timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_eof(s, timeout)
    finally:
        s.close()


def parse_http_responses(data):
    """Splits raw bytes into HTTP/1.1 responses framed by Content-Length (1xx have no body).
    Returns a list of (status, headers dict with lower-case keys, body bytes); a trailing partial
    response is returned with the bytes that were there."""
    out = []
    rest = data
    while rest:
        head, sep, after = rest.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError(f"incomplete response head: {rest[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = 0 if 100 <= status < 200 else int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, after[:n]))
        rest = after[n:]
    return out


def proc_status_kib(pid, field="VmRSS"):
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def metric_value(text, name, labels=None):
    """Sum of the samples of metric `name` in Prometheus text; `labels` (dict) must all match.
    Returns None when no sample matches."""
    total = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, lab = key.partition("{")
        if metric != name:
            continue
        if labels:
            have = dict(p.split("=", 1) for p in lab.rstrip("}").split(",") if "=" in p)
            have = {k: v.strip('"') for k, v in have.items()}
            if any(have.get(k) != str(v) for k, v in labels.items()):
                continue
        total = (total or 0.0) + float(value)
    return total


def track_event(message_id, user_id="u1", event="Test Event", **extra):
    ev = {"type": "track", "userId": user_id, "event": event, "messageId": message_id}
    ev.update(extra)
    return ev


def message_ids(events):
    return {e.get("messageId") for e in events}
