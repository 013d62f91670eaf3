#!/usr/bin/env python3
"""Builds the rotating request bodies for tests/bench/load/run.sh (Python 3 stdlib only).

Usage: make_bodies.py EVENTS_NDJSON OUT_DIR [EVENT_BUDGET]

Reads events_100k.ndjson (from /work/shared/bench/make_payloads.py, or any file with one
Segment event per line) and writes, one body per line:
  track.bodies     single `track` events (for POST /v1/track)
  batch20.bodies   {"batch":[20 consecutive mixed events],"sentAt":...}
  batch100.bodies  {"batch":[100 consecutive mixed events],"sentAt":...}
Each scenario uses at most EVENT_BUDGET events (default 20000) so a wrk thread holds ~15 MB.
The last 12 hex digits of every messageId become the marker "@@@@@@@@@@@@", which post.lua
replaces with a per-request tag: messageIds stay UUID-shaped and never repeat during a run.
"""
import json
import os
import sys

MARKER = "@" * 12
SENT_AT = "2026-11-22T10:59:59.900Z"


def mark(event):
    mid = str(event.get("messageId", ""))
    if len(mid) == 36 and mid[23] == "-":
        event["messageId"] = mid[:24] + MARKER
    return event


def dump(obj):
    return json.dumps(obj, separators=(",", ":"))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    budget = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    os.makedirs(out, exist_ok=True)
    with open(src) as f:
        events = [json.loads(line) for _, line in zip(range(max(budget * 2, budget + 1000)), f)]
    tracks = [e for e in events if e.get("type") == "track"][:budget]
    with open(os.path.join(out, "track.bodies"), "w") as f:
        for e in tracks:
            e = dict(mark(dict(e)), sentAt=SENT_AT)
            f.write(dump(e) + "\n")
    mixed = [mark(dict(e)) for e in events[:budget]]
    for n in (20, 100):
        with open(os.path.join(out, f"batch{n}.bodies"), "w") as f:
            for i in range(0, len(mixed) - n + 1, n):
                f.write(dump({"batch": mixed[i:i + n], "sentAt": SENT_AT}) + "\n")


if __name__ == "__main__":
    main()
