#!/usr/bin/env python3
"""Builds a City-shaped .mmdb that covers every client IP of a benchmark event file, so the geo
step of an enrichment benchmark does real lookups (every event a hit) with records shaped like
GeoLite2-City's (names in eight languages). No real geography: each /24 of the events gets the
record of tests/fixtures/geo/city.json's first network (London), with its city renamed.

    tests/bench/geo/make_bench_mmdb.py EVENTS.ndjson OUT.mmdb
"""
import copy
import ipaddress
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    events, out = sys.argv[1], sys.argv[2]
    nets = set()
    with open(events) as f:
        for line in f:
            ip = json.loads(line).get("context", {}).get("ip")
            try:
                a = ipaddress.ip_address(ip)
            except (TypeError, ValueError):
                continue
            prefix = 24 if a.version == 4 else 48
            nets.add(str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)))
    with open(os.path.join(ROOT, "tests", "fixtures", "geo", "city.json")) as f:
        fixture = json.load(f)
    base = fixture["networks"][0]["data"]
    spec = {"database_type": "GeoLite2-City", "ip_version": 6, "record_size": 28, "networks": []}
    for i, n in enumerate(sorted(nets)):
        rec = copy.deepcopy(base)
        rec["city"]["names"]["en"] = f"City {i % 500}"
        spec["networks"].append({"network": n, "data": rec})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as t:
        json.dump(spec, t)
    try:
        subprocess.run(["perl", os.path.join(ROOT, "tests", "support", "make_mmdb.pl"), t.name, out],
                       check=True)
    finally:
        os.unlink(t.name)
    print(f"{out}: {len(nets)} networks")


if __name__ == "__main__":
    main()
