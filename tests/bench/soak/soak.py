#!/usr/bin/env python3
"""Soak run: steady load for a while with one destination down, sampling the daemon's RSS and
every destination's lag. A measurement, never a pass/fail test.

    python3 tests/bench/soak/soak.py [--minutes 10] [--rate 2000]

Destinations: `file` (healthy), `hook` (webhook to a healthy loopback receiver), `dead`
(webhook to a closed port: connection refused for the whole run). The dead destination keeps
the default `when_lagging: block` (its backlog stays in the log, which is sized to hold the run),
or with `--dead-policy drop_oldest` skips to 200k behind the end, writing skipped ids to its
dead-letter store. Prints one line per sample and a summary.
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
                    help="when_lagging of the dead destination")
    a = ap.parse_args()

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
    d = subprocess.Popen([BIN, "run", "-c", path], stderr=open(os.path.join(tmp, "stderr"), "w"))
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
        hdr = {"Content-Type": "application/json", "Authorization": "Basic c29hay1rZXk6"}
        n = 0
        t0 = time.time()
        while not stop.is_set():
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
    print("elapsed_s  rss_MiB  acked_events  lag_file  lag_hook  lag_dead  dropped_dead")
    while time.time() < end:
        time.sleep(min(a.sample, max(0.1, end - time.time())))
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
        s = {"t": round(a.minutes * 60 - (end - time.time())), "rss_mib": rss_kib(d.pid) / 1024,
             "acked": sent[0], "non2xx": sent[1],
             "lag": {n: metric(text, "switchyard_destination_lag_events", n) for n in ("file", "hook", "dead")},
             "dropped_dead": metric(text, "switchyard_destination_dropped_events", "dead")}
        samples.append(s)
        print(f"{s['t']:9d}  {s['rss_mib']:7.1f}  {s['acked']:12d}  {s['lag']['file']:8.0f}  "
              f"{s['lag']['hook']:8.0f}  {s['lag']['dead']:8.0f}  {s['dropped_dead']:12.0f}", flush=True)
    stop.set()
    th.join(15)
    d.send_signal(signal.SIGTERM)
    d.wait(60)
    recv.stdin.close()
    recv.wait(10)
    rss = [s["rss_mib"] for s in samples]
    print(json.dumps({"minutes": a.minutes, "rate": a.rate, "acked": sent[0], "non2xx": sent[1],
                      "rss_first_mib": rss[0] if rss else None, "rss_last_mib": rss[-1] if rss else None,
                      "rss_max_mib": max(rss) if rss else None, "exit_code": d.returncode}))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
