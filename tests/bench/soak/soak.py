#!/usr/bin/env python3
"""Soak run: steady load for a while with one destination down, sampling the daemon's RSS and
every destination's lag. A measurement, never a pass/fail test.

    python3 tests/bench/soak/soak.py [--minutes 10] [--rate 2000] [--config outage|default]
                                     [--events events_100k.ndjson]

--config outage (the default): destinations `file` (healthy), `hook` (webhook to a healthy
loopback receiver), `dead` (webhook to a closed port: connection refused for the whole run). The
dead destination keeps the default `when_lagging: block` (its backlog stays in the log, which is
sized to hold the run), or with `--dead-policy drop_oldest` skips to 200k behind the end, writing
skipped ids to its dead-letter store.

--config default: the shipped config/switchyard.yaml as it is (file destination, SQLite
warehouse, enrichment, identity, dedup), only its data dir and ports set through the
environment variables it reads.

--events FILE: post the events of FILE (NDJSON, e.g. ../shared/bench's events_100k.ndjson, the
reference traffic mix), cycled, each with a fresh messageId; without it, synthetic events.

Prints one line per sample and a summary. RSS is shown beside the messageId dedup window's own
memory (switchyard_dedup_memory_bytes), which grows with the ids seen until dedup.max_entries.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
BIN = os.environ.get("SWITCHYARD_BIN", os.path.join(ROOT, "build/switchyard"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(text, name, label):
    m = re.search(r'^%s\{destination="%s"\} ([0-9.e+]+)$' % (re.escape(name), re.escape(label)), text, re.M)
    return float(m.group(1)) if m else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=int, default=2000, help="events per second")
    ap.add_argument("--sample", type=float, default=30, help="seconds between samples")
    ap.add_argument("--dead-policy", default="block", choices=["block", "drop_oldest"],
                    help="when_lagging of the dead destination (--config outage)")
    ap.add_argument("--config", default="outage", choices=["outage", "default"])
    ap.add_argument("--events", help="NDJSON events to cycle through (fresh messageIds)")
    a = ap.parse_args()
    events = None
    if a.events:
        with open(a.events) as f:
            events = [json.loads(line) for line in f if line.strip()]

    tmp = tempfile.mkdtemp(prefix="switchyard-soak-")
    port, admin, dead_port = free_port(), free_port(), free_port()
    recv = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/webhook_receiver.py"),
                             "--max-seconds", str(int(a.minutes * 60 + 300)), "--max-events", "100"],
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    recv_port = int(recv.stdout.readline().split()[1])
    cfg = f"""
data_dir: {tmp}/data
server: {{listen: 127.0.0.1:{port}}}
admin: {{listen: 127.0.0.1:{admin}}}
logging: {{level: warn}}
sources: [{{name: soak, write_keys: [soak-key]}}]
log: {{capacity_bytes: 2GiB}}
destinations:
  - {{name: file, type: file, path: {tmp}/data/out, rotate_bytes: 64MiB}}
  - {{name: hook, type: webhook, url: "http://127.0.0.1:{recv_port}/hook"}}
  - {{name: dead, type: webhook, url: "http://127.0.0.1:{dead_port}/hook",
      when_lagging: {a.dead_policy}, max_lag_events: {200000 if a.dead_policy == "drop_oldest" else 0},
      connect_timeout: 1s}}
"""
    path = os.path.join(tmp, "soak.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    env = dict(os.environ)
    key, dests = "soak-key", ("file", "hook", "dead")
    if a.config == "default":
        path = os.path.join(ROOT, "config", "switchyard.yaml")
        env.update(SWITCHYARD_DATA_DIR=f"{tmp}/data", SWITCHYARD_LISTEN=f"127.0.0.1:{port}",
                   SWITCHYARD_ADMIN_LISTEN=f"127.0.0.1:{admin}")
        key, dests = "demo-write-key", ("ndjson", "warehouse")
    auth = "Basic " + __import__("base64").b64encode(f"{key}:".encode()).decode()
    d = subprocess.Popen([BIN, "run", "-c", path], stderr=open(os.path.join(tmp, "stderr"), "w"),
                         stdout=subprocess.DEVNULL, env=env)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)

    stop = threading.Event()
    sent = [0, 0]  # events acknowledged, non-2xx answers

    def load():
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        hdr = {"Content-Type": "application/json", "Authorization": auth}
        n = 0
        t0 = time.time()
        while not stop.is_set():
            if events:
                batch = []
                for i in range(100):
                    e = dict(events[(n + i) % len(events)])
                    e["messageId"] = f"soak-{n + i}"
                    batch.append(e)
            else:
                batch = [{"type": "track", "userId": f"u{(n + i) % 5000}", "event": "Soak",
                          "messageId": f"soak-{n + i}", "properties": {"i": n + i, "pad": "x" * 300}}
                         for i in range(100)]
            conn.request("POST", "/v1/batch", body=json.dumps({"batch": batch}), headers=hdr)
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                sent[0] += 100
            else:
                sent[1] += 1
            n += 100
            ahead = n / a.rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)

    th = threading.Thread(target=load, daemon=True)
    th.start()
    end = time.time() + a.minutes * 60
    samples = []
    print("elapsed_s  rss_MiB  dedup_MiB  rest_MiB  acked_events  " + "  ".join(f"lag_{n}" for n in dests)
          + ("  dropped_dead" if a.config == "outage" else ""))
    while time.time() < end:
        time.sleep(min(a.sample, max(0.1, end - time.time())))
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
        dm = re.search(r"^switchyard_dedup_memory_bytes(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
        s = {"t": round(a.minutes * 60 - (end - time.time())), "rss_mib": rss_kib(d.pid) / 1024,
             "dedup_mib": float(dm.group(1)) / 1048576 if dm else 0.0,
             "acked": sent[0], "non2xx": sent[1],
             "lag": {n: metric(text, "switchyard_destination_lag_events", n) for n in dests},
             "dropped_dead": metric(text, "switchyard_destination_dropped_events", "dead")}
        s["rest_mib"] = s["rss_mib"] - s["dedup_mib"]
        samples.append(s)
        print(f"{s['t']:9d}  {s['rss_mib']:7.1f}  {s['dedup_mib']:9.1f}  {s['rest_mib']:8.1f}  {s['acked']:12d}  "
              + "  ".join(f"{s['lag'][n]:{len(n) + 4}.0f}" for n in dests)
              + (f"  {s['dropped_dead']:12.0f}" if a.config == "outage" else ""), flush=True)
    stop.set()
    th.join(15)
    d.send_signal(signal.SIGTERM)
    d.wait(60)
    recv.stdin.close()
    recv.wait(10)
    rss = [s["rss_mib"] for s in samples]
    rest = [s["rest_mib"] for s in samples]
    print(json.dumps({"minutes": a.minutes, "rate": a.rate, "config": a.config, "acked": sent[0], "non2xx": sent[1],
                      "rss_first_mib": rss[0] if rss else None, "rss_last_mib": rss[-1] if rss else None,
                      "rss_max_mib": max(rss) if rss else None,
                      "dedup_last_mib": samples[-1]["dedup_mib"] if samples else None,
                      "rest_first_mib": rest[0] if rest else None, "rest_last_mib": rest[-1] if rest else None,
                      "rest_max_mib": max(rest) if rest else None, "exit_code": d.returncode}))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
