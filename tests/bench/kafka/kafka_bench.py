#!/usr/bin/env python3
"""Kafka throughput on the mock cluster (tests/support/mock_kafka): measurement only, never a
pass/fail test. Three scenarios, each with the reference payloads (batch100.json, every event
given a fresh messageId and one of 500 visitors):

  destination   local log (fsync) → kafka destination. The destination is paused while N events
                are ingested, then resumed: events/s = N / time until the destination delivered
                all of them (librdkafka producer: idempotent, acks=all, lz4, linger 5 ms).
  log-ingest    role collect, log.type kafka: requests/s and events/s of POST /v1/batch while
                every 2xx waits for acks=all; p50/p99 request latency.
  log-deliver   role deliver on the topic filled by log-ingest → file destination:
                events/s = N / time until delivered.

    tests/bench/kafka/kafka_bench.py [--events 200000] [--clients 8] [--partitions 12]

Binaries: SWITCHYARD_BIN and MOCK_KAFKA_BIN (default build-release/, built when missing).
Payloads: PAYLOAD_DIR (default /work/shared/bench)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
REL = os.path.join(ROOT, "build-release")


def ensure_binaries():
    sy = os.environ.get("SWITCHYARD_BIN")
    mk = os.environ.get("MOCK_KAFKA_BIN")
    if not sy or not mk:
        subprocess.run(["cmake", "-S", ROOT, "-B", REL, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        "-DSWITCHYARD_BUILD_TESTS=ON"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", REL, "-j", str(os.cpu_count() or 2), "--target",
                        "switchyard", "mock_kafka"], check=True, stdout=subprocess.DEVNULL)
        sy = sy or os.path.join(REL, "switchyard")
        mk = mk or os.path.join(REL, "tests", "mock_kafka")
    os.environ["SWITCHYARD_BIN"] = sy
    os.environ["MOCK_KAFKA_BIN"] = mk


ensure_binaries()
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from support import Daemon, basic, wait_until  # noqa: E402
from mock_kafka import MockKafka  # noqa: E402

TOKEN = "bench-token"


def bodies(payload_dir, requests):
    with open(os.path.join(payload_dir, "batch100.json")) as f:
        template = json.load(f)
    out = []
    for i in range(requests):
        batch = []
        for j, ev in enumerate(template["batch"]):
            e = dict(ev)
            e["messageId"] = str(uuid.uuid4())
            e["anonymousId"] = f"visitor-{(i * 100 + j) % 500}"
            batch.append(e)
        out.append(json.dumps({"batch": batch}).encode())
    return out, len(template["batch"])


def post_all(port, payloads, clients):
    """POSTs every payload over `clients` keep-alive connections; returns (seconds, latencies,
    statuses)."""
    import http.client
    lat, statuses, lock = [], {}, threading.Lock()
    idx = iter(range(len(payloads)))

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        h = {"Content-Type": "application/json", "Authorization": basic()}
        mine, st = [], {}
        while True:
            with lock:
                i = next(idx, None)
            if i is None:
                break
            t = time.perf_counter()
            conn.request("POST", "/v1/batch", body=payloads[i], headers=h)
            r = conn.getresponse()
            r.read()
            mine.append(time.perf_counter() - t)
            st[r.status] = st.get(r.status, 0) + 1
        conn.close()
        with lock:
            lat.extend(mine)
            for k, v in st.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, lat, statuses


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0.0


def wait_delivered(d, name, n, timeout=600):
    """Seconds from the first delivered event to the n-th (start-up and group joins excluded)."""
    first = [None]

    def progress():
        got = (d.destination_stats(name, TOKEN) or {}).get("delivered", 0)
        if got > 0 and first[0] is None:
            first[0] = time.perf_counter()
        return got >= n
    wait_until(progress, timeout=timeout, interval=0.02, what=f"{n} events delivered")
    return time.perf_counter() - first[0]


def log_yaml(bootstrap, topic):
    return f"""  type: kafka
  kafka:
    brokers: {bootstrap}
    topic: {topic}
    linger: 5ms
    compression: lz4
    buffer_events: 100000
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--scenarios", default="destination,log-ingest,log-deliver")
    args = ap.parse_args()
    payload_dir = os.environ.get("PAYLOAD_DIR", "/work/shared/bench")
    per = 100
    requests = max(1, args.events // per)
    payloads, per = bodies(payload_dir, requests)
    n = requests * per
    want = set(args.scenarios.split(","))
    report = {"events": n, "clients": args.clients, "partitions": args.partitions,
              "cpus": os.cpu_count(), "results": {}}
    with MockKafka(brokers=3, topics=(f"bench.dest:{args.partitions}",
                                      f"bench.log:{args.partitions}")) as k:
        if "destination" in want:
            dest = f"""
  - name: kafka
    type: kafka
    brokers: {k.bootstrap}
    topic: bench.dest
    compression: lz4
    linger: 5ms
    batch_max_events: 2000
    batch_max_wait: 20ms
"""
            d = Daemon(destinations=dest, admin_extra=f"  token: {TOKEN}")
            try:
                d.start()
                st, _ = d.api("POST", "/v1/destinations/kafka/pause", TOKEN)
                assert st == 200, st
                secs, lat, statuses = post_all(d.port, payloads, args.clients)
                assert statuses == {200: requests}, statuses
                d.api("POST", "/v1/destinations/kafka/resume", TOKEN)
                dt = wait_delivered(d, "kafka", n)
                report["results"]["destination"] = {
                    "delivered_events_per_s": round(n / dt), "seconds": round(dt, 2),
                    "producer": "idempotent, acks=all, lz4, linger 5ms, batch_max_events 2000, "
                                "concurrency 1"}
            finally:
                d.cleanup()
        if "log-ingest" in want or "log-deliver" in want:
            c = Daemon(log=log_yaml(k.bootstrap, "bench.log"), run_args=["--role", "collect"],
                       admin_extra=f"  token: {TOKEN}")
            try:
                c.start()
                cpu0, kcpu0 = cpu_seconds(c.proc.pid), cpu_seconds(k.proc.pid)
                secs, lat, statuses = post_all(c.port, payloads, args.clients)
                cpu1, kcpu1 = cpu_seconds(c.proc.pid), cpu_seconds(k.proc.pid)
                ok = statuses.get(200, 0)
                report["results"]["log-ingest"] = {
                    "requests_per_s": round(ok / secs), "events_per_s": round(ok * per / secs),
                    "p50_ms": round(pct(lat, 0.5) * 1000, 2),
                    "p99_ms": round(pct(lat, 0.99) * 1000, 2), "statuses": statuses,
                    "collector_cpu_us_per_event": round((cpu1 - cpu0) / (ok * per) * 1e6, 2),
                    "mock_cluster_cpu_us_per_event": round((kcpu1 - kcpu0) / (ok * per) * 1e6, 2),
                    "wall_s": round(secs, 2),
                    "producer": "idempotent, acks=all, lz4, linger 5ms"}
            finally:
                c.cleanup()
            if "log-deliver" in want:
                d = Daemon(log=log_yaml(k.bootstrap, "bench.log"), run_args=["--role", "deliver"],
                           admin_extra=f"  token: {TOKEN}",
                           destinations="""
  - name: out
    type: file
    path: out
    batch_max_events: 2000
    batch_max_wait: 20ms
""")
                try:
                    d.start()
                    dt = wait_delivered(d, "out", ok * per)
                    report["results"]["log-deliver"] = {
                        "delivered_events_per_s": round(ok * per / dt), "seconds": round(dt, 2),
                        "note": "from the first delivered event (after joining the group)"}
                finally:
                    d.cleanup()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
