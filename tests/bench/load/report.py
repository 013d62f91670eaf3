#!/usr/bin/env python3
"""Turns the per-run records written by tests/bench/load/run.sh into tables and a JSON file.

Usage: report.py RUNS_JSONL META_JSON OUT_JSON

RUNS_JSONL has one object per wrk run:
  {"scenario","server","round","events_per_request","cpu_ticks","clk_tck","rss_kb",
   "log_bytes","log_bytes_source","wrk":{...WRKRESULT from post.lua...}}
Prints one table per scenario (every server, every round), each Switchyard variant's ratio
to nginx per round and the median of the ratios, then the issue's targets beside what was
measured. Never fails because of the numbers: flagged runs (errors, non-2xx, no requests) are
marked with '!' and listed at the end.
"""
import json
import statistics
import sys

SERVERS = ("nginx", "switchyard", "switchyard-file")
VARIANTS = ("switchyard", "switchyard-file")
RATIO_KEYS = ("rps", "p50_us", "p99_us", "cpu_us_per_req", "rss_mib")


def derive(rec, disk_bytes_per_s):
    w = rec.get("wrk") or {}
    dur_s = (w.get("duration_us") or 0) / 1e6
    reqs = w.get("requests") or 0
    lat = w.get("latency_us") or {}
    errs = w.get("errors") or {}
    rps = reqs / dur_s if dur_s > 0 else 0.0
    cpu_s = (rec.get("cpu_ticks") or 0) / float(rec.get("clk_tck") or 100)
    out = {
        "scenario": rec["scenario"],
        "server": rec["server"],
        "round": rec["round"],
        "connections": rec.get("connections"),
        "events_per_request": rec["events_per_request"],
        "requests": reqs,
        "duration_s": round(dur_s, 3),
        "rps": round(rps, 1),
        "events_per_s": round(rps * rec["events_per_request"], 1),
        "p50_us": lat.get("p50"),
        "p90_us": lat.get("p90"),
        "p99_us": lat.get("p99"),
        "p999_us": lat.get("p999"),
        "max_us": lat.get("max"),
        "cpu_s": round(cpu_s, 3),
        "cpu_us_per_req": round(cpu_s * 1e6 / reqs, 2) if reqs else None,
        "rss_mib": round((rec.get("rss_kb") or 0) / 1024.0, 1),
        "errors": errs,
        "non_2xx": errs.get("status", 0),
        "log_bytes": rec.get("log_bytes"),
        "log_bytes_source": rec.get("log_bytes_source"),
        "log_mb_per_s": None,
        "log_fraction_of_disk": None,
    }
    if rec.get("log_bytes") is not None and dur_s > 0:
        bps = rec["log_bytes"] / dur_s
        out["log_mb_per_s"] = round(bps / 1e6, 2)
        if disk_bytes_per_s:
            out["log_fraction_of_disk"] = round(bps / disk_bytes_per_s, 4)
    m0, m1, m2 = rec.get("metrics_before") or {}, rec.get("metrics_after") or {}, rec.get("metrics_settled") or {}

    def delta(name, a, b):
        return b[name] - a[name] if name in a and name in b else None

    recs_logged = delta("switchyard_log_appended_records_total", m0, m1)
    # The duplicates counter only appears with the first duplicate.
    dups = None
    if rec["server"].startswith("switchyard") and m0 and m2:
        k = "switchyard_events_duplicate_total"
        dups = m2.get(k, 0) - m0.get(k, 0)
    refusals = delta("switchyard_log_full_refusals_total", m0, m2)
    out["switchyard_metrics"] = {
        "log_records_appended": recs_logged,
        "log_records_appended_per_s": round(recs_logged / dur_s, 1) if recs_logged is not None and dur_s > 0 else None,
        "log_full_refusals": refusals,
        "duplicates": dups,
        "destination_delivered_events_until_idle": delta("switchyard_destination_delivered_events", m0, m2),
        "destination_lag_events_at_wrk_end": m1.get("switchyard_destination_lag_events"),
        "destination_lag_events_when_idle": m2.get("switchyard_destination_lag_events"),
        "log_bytes_held_when_idle": m2.get("switchyard_log_bytes"),
        # identity stage (absent with IDENTITY=off): from the start of wrk until idle
        "identity_lookups": delta("switchyard_identity_lookups_total", m0, m2),
        "identity_cache_hits": delta("switchyard_identity_cache_hits_total", m0, m2),
        "identity_store_reads": delta("switchyard_identity_store_reads_total", m0, m2),
        "identity_links": delta("switchyard_identity_links_total", m0, m2),
        "identity_links_refused": delta("switchyard_identity_links_refused_total", m0, m2),
        "identity_errors": delta("switchyard_identity_errors_total", m0, m2),
    } if rec["server"].startswith("switchyard") else None
    flags = []
    if refusals:
        flags.append(f"log full: {refusals} appends refused (503) — delivery fell behind; see LOG_CAPACITY")
    if dups:
        flags.append(f"{dups} events answered as duplicates (dedup window): messageIds repeated, "
                     "so those requests skipped the write path")
    if reqs == 0:
        flags.append("no requests completed")
    if errs.get("status"):
        flags.append(f"{errs['status']} non-2xx responses (status >= 400)")
    for k in ("connect", "read", "write", "timeout"):
        if errs.get(k):
            flags.append(f"{errs[k]} socket {k} errors")
    if rec.get("note"):
        flags.append(rec["note"])
    out["flags"] = flags
    return out


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


def fmt(v, spec="{:,.0f}"):
    return "-" if v is None else spec.format(v)


def onoff(v):
    return "-" if v is None else ("on" if v else "off")


def targets(result, runs, meta):
    """The performance issue's targets beside the measured values (`switchyard`, the null-destination
    variant, unless noted). Informative only: nothing here changes the exit status."""
    rows = []

    def med(sc, srv, key):
        return ((result["scenarios"].get(sc) or {}).get(f"median_{srv}") or {}).get(key)

    def mratio(sc, srv="switchyard"):
        return (((result["scenarios"].get(sc) or {}).get("median_ratio") or {}).get(srv) or {}).get("rps")

    r = mratio("track")
    rows.append(("track, 64 connections: req/s vs nginx", ">= 0.50 (aim 0.70)",
                 fmt(r, "{:.3f}"), None if r is None else r >= 0.5))
    ev = med("batch100", "switchyard", "events_per_s")
    frac = None
    clean = [x for x in runs if x["scenario"] == "batch100" and x["server"] == "switchyard" and not x["flags"]]
    fr = [x["log_fraction_of_disk"] for x in clean if x["log_fraction_of_disk"] is not None]
    if fr:
        frac = statistics.median(fr)
    ok = None
    if ev is not None:
        ok = ev >= 300000 or (frac is not None and frac >= 0.6)
    rows.append(("batch100: events/s durable (or log share of disk)", ">= 300,000 (or >= 60%)",
                 f"{fmt(ev)} ({fmt(None if frac is None else frac * 100, '{:.1f}')}%)", ok))
    p99 = med("track-c16", "switchyard", "p99_us")
    rows.append(("track, 16 connections: p99 latency", "<= 5,000 µs", fmt(p99) + " µs" if p99 is not None else "-",
                 None if p99 is None else p99 <= 5000))
    rss = [x["rss_mib"] for x in runs if x["server"] == "switchyard" and x["scenario"] == "track-c16"]
    rows.append(("track, 16 connections: peak RSS", "<= 150 MiB",
                 fmt(max(rss), "{:.1f}") + " MiB" if rss else "-", (max(rss) <= 150) if rss else None))
    st = [x for x in (meta.get("startup_ms") or []) if x is not None]
    stm = statistics.median(st) if st else None
    rows.append(("start-up to ready (median)", "<= 300 ms", fmt(stm, "{:.1f}") + " ms" if stm is not None else "-",
                 None if stm is None else stm <= 300))
    print()
    print("== targets (switchyard = full pipeline, null destination; the 30-minute soak is tests/bench/soak/soak.py)")
    print(f"   {'target':<52} {'wanted':<24} {'measured':<22} result")
    out = []
    for name, want, got, ok in rows:
        res = "n/a" if ok is None else ("met" if ok else "NOT MET")
        print(f"   {name:<52} {want:<24} {got:<22} {res}")
        out.append({"target": name, "wanted": want, "measured": got, "met": ok})
    return out


def main():
    runs_path, meta_path, out_path = sys.argv[1:4]
    with open(meta_path) as f:
        meta = json.load(f)
    recs = []
    with open(runs_path) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    disk_bps = (meta.get("disk_mb_per_s") or 0) * 1e6
    runs = [derive(r, disk_bps) for r in recs]

    scenarios = []
    for r in runs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])

    result = {"meta": meta, "runs": runs, "scenarios": {}}
    print()
    print(f"disk baseline (dd 256 MiB, fdatasync): {fmt(meta.get('disk_mb_per_s'), '{:,.1f}')} MB/s"
          f"   wrk -t{meta.get('threads')} -c{meta.get('connections')} -d{meta.get('duration')}"
          f"   bodies={meta.get('bodies')}   durability={meta.get('durability') or '-'}")
    print(f"switchyard pipeline: enrich={meta.get('enrich') or '-'}   geo={onoff(meta.get('geo'))}"
          f"   plan={onoff(meta.get('plan'))}   identity={meta.get('identity') or '-'}"
          f"   destinations: switchyard=null, switchyard-file=null+file")
    startup = [x for x in (meta.get("startup_ms") or []) if x is not None]
    if meta.get("startup_ms"):
        print(f"startup to ready (exec -> /readyz 200, empty data dir), ms: "
              f"{', '.join(fmt(x, '{:.1f}') for x in meta['startup_ms'])}"
              f"   median {fmt(statistics.median(startup) if startup else None, '{:.1f}')}")
    hdr = (f"{'round':>5} {'server':<15} {'req/s':>10} {'events/s':>11} {'p50 µs':>9} {'p99 µs':>9}"
           f" {'CPU µs/req':>10} {'RSS MiB':>8} {'non2xx':>7} {'log MB/s':>9} {'%disk':>6}")
    for sc in scenarios:
        sruns = [r for r in runs if r["scenario"] == sc]
        epr = sruns[0]["events_per_request"]
        print()
        print(f"== {sc}  ({epr} event{'s' if epr != 1 else ''}/request, {sruns[0].get('connections') or meta.get('connections')} connections)")
        print(hdr)
        rounds = sorted({r["round"] for r in sruns})
        ratios = {v: [] for v in VARIANTS}
        for rnd in rounds:
            by = {r["server"]: r for r in sruns if r["round"] == rnd}
            for srv in SERVERS:
                r = by.get(srv)
                if not r:
                    continue
                frac = r["log_fraction_of_disk"]
                print(f"{rnd:>5} {srv:<15} {fmt(r['rps']):>10} {fmt(r['events_per_s']):>11}"
                      f" {fmt(r['p50_us']):>9} {fmt(r['p99_us']):>9}"
                      f" {fmt(r['cpu_us_per_req'], '{:,.1f}'):>10} {fmt(r['rss_mib'], '{:,.1f}'):>8}"
                      f" {r['non_2xx']:>7} {fmt(r['log_mb_per_s'], '{:,.1f}'):>9}"
                      f" {fmt(None if frac is None else frac * 100, '{:.1f}'):>6}"
                      f"{'  !' if r['flags'] else ''}")
            for v in VARIANTS:
                if "nginx" in by and v in by:
                    a, b = by[v], by["nginx"]
                    ratios[v].append({"round": rnd, "flagged": bool(a["flags"] or b["flags"]),
                                      **{k: ratio(a[k], b[k]) for k in RATIO_KEYS}})
        summary = {"events_per_request": epr, "connections": sruns[0].get("connections"),
                   "ratios_over_nginx": ratios, "median_ratio": {}}
        for srv in SERVERS:
            xs = [r for r in sruns if r["server"] == srv]
            xs = [r for r in xs if not r["flags"]] or xs  # clean runs, unless none is
            if xs:
                summary[f"median_{srv}"] = {
                    k: statistics.median([r[k] for r in xs if r[k] is not None] or [0])
                    for k in ("rps", "events_per_s", "p50_us", "p99_us", "cpu_us_per_req", "rss_mib")}
        for v in VARIANTS:
            vr = ratios[v]
            if not vr:
                continue
            print(f"      {'ratio ' + v + '/nginx':<34} {'req/s':>7} {'p50':>7} {'p99':>7} {'CPU/req':>8} {'RSS':>7}")
            for rr in vr:
                print(f"      {'round ' + str(rr['round']) + (' (flagged)' if rr['flagged'] else ''):<34} {fmt(rr['rps'], '{:.3f}'):>7} {fmt(rr['p50_us'], '{:.2f}'):>7}"
                      f" {fmt(rr['p99_us'], '{:.2f}'):>7} {fmt(rr['cpu_us_per_req'], '{:.2f}'):>8} {fmt(rr['rss_mib'], '{:.2f}'):>7}")
            # Flagged rounds (errors, non-2xx, no requests) are left out of the median unless
            # every round is flagged.
            used = [rr for rr in vr if not rr["flagged"]] or vr
            med = {}
            for k in RATIO_KEYS:
                vals = [rr[k] for rr in used if rr[k] is not None]
                med[k] = round(statistics.median(vals), 3) if vals else None
            summary["median_ratio"][v] = med
            summary.setdefault("median_ratio_rounds", {})[v] = [rr["round"] for rr in used]
            if all(rr["flagged"] for rr in used):
                label = "median (ALL FLAGGED)"
            else:
                label = "median, rounds " + ",".join(str(rr["round"]) for rr in used)
            print(f"      {label:<34} {fmt(med['rps'], '{:.3f}'):>7} {fmt(med['p50_us'], '{:.2f}'):>7}"
                  f" {fmt(med['p99_us'], '{:.2f}'):>7} {fmt(med['cpu_us_per_req'], '{:.2f}'):>8} {fmt(med['rss_mib'], '{:.2f}'):>7}")
        result["scenarios"][sc] = summary

    result["targets"] = targets(result, runs, meta)

    flagged = [r for r in runs if r["flags"]]
    result["flagged"] = [{"scenario": r["scenario"], "server": r["server"], "round": r["round"],
                          "flags": r["flags"]} for r in flagged]
    print()
    if flagged:
        print(f"!! {len(flagged)} run(s) flagged — their numbers are not comparable:")
        for r in flagged:
            print(f"!!   {r['scenario']} round {r['round']} {r['server']}: {'; '.join(r['flags'])}")
    else:
        print("no run flagged (every response 2xx, no socket errors)")
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"JSON written to {out_path}")


if __name__ == "__main__":
    main()
