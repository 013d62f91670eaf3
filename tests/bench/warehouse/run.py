#!/usr/bin/env python3
"""Warehouse loading benchmark: rows/s into SQLite and PostgreSQL, and the time from ingest to
row visible (p50/p99), through the real daemon at the default batch settings.

Usage (from the repository root, after a Release build):
    python3 /work/shared/bench/make_payloads.py /tmp/bp
    python3 tests/bench/warehouse/run.py --bin build-release/switchyard \
        --events /tmp/bp/events_100k.ndjson [--engines sqlite,postgres] [--rate 1000] \
        [--seconds 20] [--bulk 100000]

For each engine it starts a PostgreSQL server of its own (initdb + pg_ctl on a free port, as the
tests do) when needed, and a daemon whose only destination is that warehouse, then:

1. Latency: posts single-event batches at --rate events/s for --seconds (ids recorded with the
   time each POST was answered), while a poller reads new ids from the tracks table every 5 ms;
   ingest -> visible is first-seen minus answered. Also reported from the database itself:
   uuid_ts - received_at (load time minus receipt time, without the poll interval).
2. Throughput: posts --bulk events from the reference mix in /v1/batch bodies of 100 as fast as
   it can, and times from the first POST to the last row visible. rows/s counts every row the
   loader wrote (tracks + the per-event table + identifies/users/pages/screens ...).

Measurement only: prints a report, asserts nothing about time.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
from postgres_server import PostgresServer  # noqa: E402

KEY = "bench-write-key"


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Daemon:
    def __init__(self, binary, dest_yaml):
        self.tmp = tempfile.mkdtemp(prefix="switchyard-whbench-")
        self.data = os.path.join(self.tmp, "data")
        self.port, self.admin = free_port(), free_port()
        cfg = f"""
data_dir: {self.data}
server:
  listen: 127.0.0.1:{self.port}
admin:
  listen: 127.0.0.1:{self.admin}
logging:
  level: warn
sources:
  - name: bench
    write_keys: [{KEY}]
log:
  durability: fsync
  capacity_bytes: 4GiB
destinations:
{dest_yaml.replace('{data}', self.data)}
"""
        self.cfg = os.path.join(self.tmp, "switchyard.yaml")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.proc = subprocess.Popen([binary, "run", "-c", self.cfg], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.tmp, "stderr"), "w"))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daemon did not start: " + open(os.path.join(self.tmp, "stderr")).read())

    def post(self, body):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/batch", data=body,
            headers={"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode(),
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status

    def delivered(self):
        """Events the warehouse destination has loaded (its delivered-events gauge)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics",
                                      timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith('switchyard_destination_delivered_events{') and \
                    'destination="wh"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


class SqliteReader:
    def __init__(self, path):
        self.path = path

    def query(self, sql):
        if not os.path.exists(self.path):
            return []
        db = sqlite3.connect(self.path, timeout=30)
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def table(self, name):
        return f"bench_{name}"

    def rows_written(self):
        total = 0
        for (t,) in self.query("SELECT physical FROM _switchyard_tables"):
            total += self.query(f'SELECT count(*) FROM "{t}"')[0][0]
        return total

    def load_delays(self):
        return [r[0] for r in self.query(
            "SELECT (julianday(uuid_ts) - julianday(received_at)) * 86400000.0 FROM bench_tracks")]


class PostgresReader:
    def __init__(self, pg):
        self.pg = pg

    def query(self, sql):
        try:
            return [tuple(r) for r in self.pg.query(sql)]
        except Exception:
            return []

    def table(self, name):
        return f'"bench"."{name}"'

    def rows_written(self):
        total = 0
        for (t,) in self.query("SELECT table_name FROM information_schema.tables "
                               "WHERE table_schema = 'bench'"):
            total += int(self.query(f'SELECT count(*) FROM "bench"."{t}"')[0][0])
        return total

    def load_delays(self):
        return [float(r[0]) for r in self.query(
            'SELECT extract(epoch FROM uuid_ts - received_at) * 1000 FROM "bench"."tracks"')]


def latency(d, reader, rate, seconds):
    answered = {}
    seen = {}
    stop = threading.Event()

    def poll():
        last = ""
        while not stop.is_set():
            now = time.time()
            rows = reader.query(f"SELECT id FROM {reader.table('tracks')} "
                                f"WHERE id > '{last}' ORDER BY id")
            for (i,) in rows:
                seen.setdefault(i, now)
            if rows:
                last = rows[-1][0]
            time.sleep(0.005)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    n = int(rate * seconds)
    start = time.time()
    for k in range(n):
        due = start + k / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        mid = f"lat-{k:08d}"
        body = json.dumps({"batch": [{"type": "track", "event": "Latency Probe",
                                      "messageId": mid, "anonymousId": f"a{k % 500}",
                                      "properties": {"k": k}}]}).encode()
        d.post(body)
        answered[mid] = time.time()
    deadline = time.time() + 60
    while len(seen) < n and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join()
    lat = [(seen[m] - answered[m]) * 1000 for m in answered if m in seen]
    return lat, n - len(lat)


def throughput(d, reader, events, bulk):
    bodies = []
    for i in range(0, bulk, 100):
        bodies.append(json.dumps({"batch": events[i:i + 100]}).encode())
    before = reader.rows_written()
    delivered_before = d.delivered()
    t0 = time.time()
    threads = []
    chunks = [bodies[i::4] for i in range(4)]

    def sender(part):
        for b in part:
            d.post(b)
    for part in chunks:
        th = threading.Thread(target=sender, args=(part,))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    t_ingested = time.time()
    deadline = time.time() + 600
    # Every event of the mix (track, page, identify, ...) loaded: the destination's delivered
    # gauge moves only after a batch's transaction committed.
    while time.time() < deadline and d.delivered() < delivered_before + bulk:
        time.sleep(0.02)
    t_done = time.time()
    rows = reader.rows_written() - before
    return {"ingest_s": t_ingested - t0, "total_s": t_done - t0,
            "events_per_s": bulk / (t_done - t0), "rows": rows,
            "rows_per_s": rows / (t_done - t0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build-release/switchyard")
    ap.add_argument("--events", default="/tmp/bp/events_100k.ndjson")
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--bulk", type=int, default=100000)
    ap.add_argument("--dest-extra", default="", help="YAML lines added to the destination")
    a = ap.parse_args()
    with open(a.events) as f:
        events = [json.loads(line) for line in f][:a.bulk]
    for e in events:
        e.pop("writeKey", None)
    report = {}
    for engine in a.engines.split(","):
        pg = None
        if engine == "postgres":
            pg = PostgresServer()
            pg.start()
            dest = f"""  - name: wh
    type: postgres
    dsn: "{pg.dsn}"
{a.dest_extra}"""
            reader = PostgresReader(pg)
        else:
            dest = f"""  - name: wh
    type: sqlite
    path: {{data}}/warehouse.db
{a.dest_extra}"""
            reader = None
        d = Daemon(a.bin, dest)
        if reader is None:
            reader = SqliteReader(os.path.join(d.data, "warehouse.db"))
        try:
            lat, missing = latency(d, reader, a.rate, a.seconds)
            loads = reader.load_delays()
            thr = throughput(d, reader, events, len(events))
        finally:
            d.stop()
            if pg:
                pg.stop()
        report[engine] = {
            "ingest_to_visible_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99),
                                     "max": max(lat) if lat else None, "n": len(lat),
                                     "missing": missing},
            "received_to_loaded_ms (uuid_ts - received_at)": {
                "p50": pct(loads, 50), "p99": pct(loads, 99), "n": len(loads)},
            "bulk": thr,
        }
        print(json.dumps({engine: report[engine]}, indent=2), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
