"""A Kafka cluster for tests, without a broker or a container: tests/support/mock_kafka (a
librdkafka mock cluster speaking the real protocol on loopback, see mock_kafka/README.md) in a
subprocess, plus kcat helpers to produce and consume. Standard library only.

    with MockKafka(brokers=3, topics=("events:4",)) as k:
        produce(k.bootstrap, "events", ["a", "b"], key="u1")
        k.cmd("errors Produce NOT_ENOUGH_REPLICAS 3")
        msgs = consume(k.bootstrap, "events", expect=2)
"""
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time


def _find_bin():
    env = os.environ.get("MOCK_KAFKA_BIN")
    if env:
        return env
    switchyard = os.environ.get("SWITCHYARD_BIN",
                                os.path.join(os.path.dirname(__file__), "../../build/switchyard"))
    candidate = os.path.join(os.path.dirname(switchyard), "tests", "mock_kafka")
    if os.path.exists(candidate):
        return candidate
    raise RuntimeError("mock_kafka binary not found: set MOCK_KAFKA_BIN (or SWITCHYARD_BIN next "
                       "to a build dir containing tests/mock_kafka)")


def kcat_available():
    return shutil.which("kcat") is not None


class MockKafka:
    """A mock_kafka process. `topics` are "NAME:PARTITIONS[:REPLICATION]" strings created before
    `bootstrap` is known. `cmd(line)` sends one command (see mock_kafka/README.md) and returns the
    text after "ok" (RuntimeError on "error ..."). The program's stderr (librdkafka logs) goes to
    `stderr_path`. Use as a context manager or call close()."""

    def __init__(self, brokers=3, topics=("events:4",), timeout=20, binary=None):
        self.binary = binary or _find_bin()
        self.tmp = tempfile.mkdtemp(prefix="switchyard-mock-kafka-")
        self.stderr_path = os.path.join(self.tmp, "stderr.txt")
        self._stderr = open(self.stderr_path, "wb")
        args = [self.binary, "--brokers", str(brokers)]
        for t in topics:
            args += ["--topic", t]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, bufsize=1)
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._lock = threading.Lock()
        self.bootstrap = None
        try:
            first = self._next_line(timeout)
            if not first.startswith("bootstrap "):
                raise RuntimeError(f"mock_kafka: unexpected first line {first!r}")
            self.bootstrap = first.split(" ", 1)[1].strip()
            ready = self._next_line(timeout)
            if ready != "ready":
                raise RuntimeError(f"mock_kafka: expected 'ready', got {ready!r}")
        except Exception:
            self.close()
            raise

    def _read_stdout(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # EOF

    def _next_line(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"mock_kafka: no answer within {timeout}s; stderr: "
                               f"{self.stderr_text()[-2000:]}") from None
        if line is None:
            self._lines.put(None)
            raise RuntimeError(f"mock_kafka exited (rc={self.proc.poll()}); stderr: "
                               f"{self.stderr_text()[-2000:]}")
        return line

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def cmd(self, line, timeout=20):
        """Sends one command line; returns the text after "ok" ("" for a bare "ok")."""
        if "\n" in line:
            raise ValueError("one command per call")
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self._next_line(timeout)
        if answer == "ok" or answer.startswith("ok "):
            return answer[3:]
        if answer.startswith("error"):
            raise RuntimeError(f"mock_kafka {line!r}: {answer}")
        raise RuntimeError(f"mock_kafka {line!r}: unexpected answer {answer!r}")

    def close(self, timeout=10):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _decode(v):
    if v is None:
        return None
    if isinstance(v, str):
        return v
    return bytes(v).decode(errors="replace")


def _headers(h):
    """kcat -J prints headers as a flat list ["k1", "v1", "k2", "v2", ...] (absent when none)."""
    if not h:
        return {}
    if isinstance(h, dict):
        return {str(k): _decode(v) for k, v in h.items()}
    return {_decode(h[i]): _decode(h[i + 1]) for i in range(0, len(h) - 1, 2)}


def _consume_once(bootstrap, topic, timeout):
    p = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J",
                        "-q"], capture_output=True, timeout=timeout)
    out = []
    for raw in p.stdout.decode("utf-8", errors="replace").splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        m = json.loads(raw)
        out.append({
            "topic": m.get("topic"),
            "partition": m.get("partition"),
            "offset": m.get("offset"),
            "key": _decode(m.get("key")),
            "headers": _headers(m.get("headers")),
            "value": _decode(m.get("payload")) or "",
        })
    return out, p


def consume(bootstrap, topic, timeout=30, expect=None):
    """Every message of `topic` from the beginning of each partition (kcat -C -e -J). With
    `expect`, reads again until at least that many are seen or `timeout` passes (then returns
    what it has). Dicts: topic, partition, offset, key (str|None), headers (dict), value (str)."""
    deadline = time.time() + timeout
    msgs = []
    while True:
        left = max(1.0, deadline - time.time())
        try:
            msgs, _ = _consume_once(bootstrap, topic, left)
        except subprocess.TimeoutExpired:
            pass
        if expect is None or len(msgs) >= expect or time.time() >= deadline:
            return msgs
        time.sleep(0.2)


def produce(bootstrap, topic, lines, key=None, timeout=30, extra=()):
    """Produces one message per item of `lines` with kcat -P (values must not contain newlines
    or tabs). An item may be a (key, value) tuple; otherwise `key` (if not None) is the key of
    every message. `extra` are more kcat arguments (e.g. ("-X", "enable.idempotence=true")).
    Returns the CompletedProcess; raises RuntimeError when kcat exits non-zero (its stderr names
    the delivery errors)."""
    items = [v if isinstance(v, tuple) else (key, v) for v in lines]
    keyed = any(k is not None for k, _ in items)
    args = ["kcat", "-P", "-b", bootstrap, "-t", topic, *extra]
    if keyed:
        args += ["-K", "\t"]
        data = "".join(f"{'' if k is None else k}\t{v}\n" for k, v in items)
    else:
        data = "".join(f"{v}\n" for _, v in items)
    p = subprocess.run(args, input=data.encode(), capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"kcat -P exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p
