"""Delivery end to end: fan-out to a webhook (tests/support/webhook_receiver.py) and a file
destination, isolation of a dead destination (breaker, lag, drain), Retry-After, dead letters
(reject, replay, discard, budget exhaustion, drop_oldest) through the operator API and the CLI,
pause/resume. Throughput numbers are printed, not asserted."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402
from support import metric_value  # noqa: E402

TOKEN = "op-secret-token"
ADMIN_TOKEN = f"  token: {TOKEN}"
BURST = 20000
BATCH = 100


def webhook(name, url, extra=""):
    return f"""
  - name: {name}
    type: webhook
    url: {url}
    batch_max_wait: 10ms
{extra}"""


def filedest(name):
    """A file destination writing to its default place, <data_dir>/out/<name>."""
    return f"""
  - name: {name}
    type: file
    batch_max_wait: 10ms
"""


def events(prefix, n, **props):
    return [support.track_event(f"{prefix}-{i}", properties=dict(i=i, **props)) for i in range(n)]


def gauge(d, name, dest):
    return metric_value(d.metrics(), name, {"destination": dest}) or 0


def wait_delivered(d, names, n, timeout):
    """Polls switchyard_destination_delivered_events until every destination in `names` has
    delivered `n`; returns {name: monotonic time it got there} (missing when it did not)."""
    done = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(names) and time.monotonic() < deadline:
        text = d.metrics()
        now = time.monotonic()
        for name in names:
            if name not in done and (metric_value(text, "switchyard_destination_delivered_events",
                                                  {"destination": name}) or 0) >= n:
                done[name] = now
        time.sleep(0.02)
    return done


def dead_letters(d, dest, query=""):
    st, doc = d.api("GET", f"/v1/destinations/{dest}/dead-letters{query}", TOKEN)
    if st != 200:
        raise AssertionError(f"dead-letters: {st} {doc!r}")
    return doc


class DeliveryTest(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c()

    def receiver(self):
        r = support.Receiver()
        self.cleanups.append(r.close)
        return r

    def daemon(self, destinations, **kw):
        d = support.Daemon(destinations=destinations, **kw)
        self.cleanups.append(d.cleanup)
        d.start()
        return d

    # ------------------------------------------------------------------------------------------
    def burst(self, d, prefix, n, names, timeout):
        """Posts n events in batches of BATCH; returns (ingest seconds, {name: events/s})."""
        evs = events(prefix, n, pad="x" * 64)
        t0 = time.monotonic()
        d.post_events(evs, batch=BATCH)
        t_ingest = time.monotonic() - t0
        done = wait_delivered(d, names, n, timeout)
        rates = {name: (n / (done[name] - t0) if name in done else None) for name in names}
        return t_ingest, rates, done, t0

    def test_fanout_to_webhook_and_file(self):
        r = self.receiver()
        d = self.daemon(webhook("hook", r.url) + filedest("out"), admin_extra=ADMIN_TOKEN)
        t_ingest, rates, done, _ = self.burst(d, "fan", BURST, ["hook", "out"], 60)
        print(f"\n[fanout] {BURST} events in batches of {BATCH}, delivered while being posted: "
              f"ingest {BURST / t_ingest:.0f} ev/s; "
              + ", ".join(f"{k} {v:.0f} ev/s" if v else f"{k} incomplete" for k, v in rates.items()),
              flush=True)
        want = {f"fan-{i}" for i in range(BURST)}
        self.assertEqual(set(done), {"hook", "out"}, "a destination did not deliver everything")
        self.assertLessEqual(want, r.received_ids())
        self.assertLessEqual(want, support.message_ids(d.read_ndjson("out/out")))

        # Delivery alone (not bounded by ingest): a backlog built while both are paused, drained
        # after resume. Delivered counts continue from the first burst.
        for name in ("hook", "out"):
            self.assertEqual(d.api("POST", f"/v1/destinations/{name}/pause", TOKEN)[0], 200)
        d.post_events(events("fan2", BURST, pad="x" * 64), batch=BATCH)
        t0 = time.monotonic()
        for name in ("hook", "out"):
            self.assertEqual(d.api("POST", f"/v1/destinations/{name}/resume", TOKEN)[0], 200)
        done = wait_delivered(d, ["hook", "out"], 2 * BURST, 60)
        print(f"[fanout] backlog of {BURST} drained after resume: "
              + ", ".join(f"{k} {BURST / (done[k] - t0):.0f} ev/s" if k in done else f"{k} incomplete"
                          for k in ("hook", "out")), flush=True)
        self.assertEqual(set(done), {"hook", "out"}, "a destination did not drain its backlog")
        want = {f"fan2-{i}" for i in range(BURST)}
        self.assertLessEqual(want, r.received_ids())
        self.assertLessEqual(want, support.message_ids(d.read_ndjson("out/out")))
        st = r.stats()
        self.assertGreaterEqual(st["events"], BURST)
        self.assertEqual(st["answered"].get("500", 0) + st["answered"].get("429", 0), 0)

    def test_dead_destination_does_not_slow_the_others(self):
        n = 10000
        # Baseline: the two healthy destinations alone.
        r = self.receiver()
        d = self.daemon(webhook("hook", r.url) + filedest("out"))
        _, base, _, _ = self.burst(d, "base", n, ["hook", "out"], 60)
        d.cleanup()

        # Same, plus a webhook whose receiver hangs every request.
        r2 = self.receiver()
        dead = self.receiver()
        dead.mode("hang")
        d = self.daemon(webhook("hook", r2.url) + filedest("out") + webhook(
            "dead", dead.url, """    request_timeout: 1s
    retry_backoff_base: 50ms
    retry_backoff_max: 200ms
    breaker_failures: 2
    breaker_cooldown: 500ms
    breaker_cooldown_max: 1s"""))
        t_ingest, rates, done, t0 = self.burst(d, "iso", n, ["hook", "out"], 60)
        print(f"\n[isolation] {n} events: healthy rates without a dead destination: "
              + ", ".join(f"{k} {v:.0f} ev/s" for k, v in base.items() if v)
              + "; with a hanging webhook destination: "
              + ", ".join(f"{k} {v:.0f} ev/s" if v else f"{k} incomplete" for k, v in rates.items())
              + f"; ingest {n / t_ingest:.0f} ev/s", flush=True)
        self.assertEqual(set(done), {"hook", "out"}, "a healthy destination was held back")
        # Generous bound: healthy destinations finish within 30 s of the first post.
        for name, t in done.items():
            self.assertLess(t - t0, 30, f"{name} took {t - t0:.1f}s")
        want = {f"iso-{i}" for i in range(n)}
        self.assertLessEqual(want, r2.received_ids())
        self.assertLessEqual(want, support.message_ids(d.read_ndjson("out/out")))
        # Ingest still answers 200 (post_events asserted every batch; one more for good measure).
        st, _, _ = d.post("/v1/track", support.track_event("iso-extra"))
        self.assertEqual(st, 200)
        # The dead one lags, its breaker opens, and it is reported unhealthy.
        support.wait_until(lambda: gauge(d, "switchyard_destination_breaker_opens", "dead") >= 1,
                           timeout=20, what="breaker of 'dead' opens")
        text = d.metrics()
        self.assertGreater(metric_value(text, "switchyard_destination_lag_events", {"destination": "dead"}),
                           n / 2)
        self.assertEqual(metric_value(text, "switchyard_destination_healthy", {"destination": "dead"}), 0)
        self.assertLess(metric_value(text, "switchyard_destination_delivered_events",
                                     {"destination": "dead"}), n)
        # The healthy one keeps up (iso-extra, just posted, may still be on its way).
        support.wait_until(lambda: (metric_value(d.metrics(), "switchyard_destination_lag_events",
                                                 {"destination": "hook"}) or 0) == 0,
                           timeout=10, what="'hook' caught up")
        # Heal it: the backlog drains.
        t_heal = time.monotonic()
        dead.mode("ok")
        want.add("iso-extra")
        support.wait_until(lambda: want <= dead.received_ids(), timeout=40, interval=0.2,
                           what="backlog of 'dead' drained")
        print(f"[isolation] backlog of {n + 1} events drained to the healed destination in "
              f"{time.monotonic() - t_heal:.1f}s", flush=True)
        support.wait_until(lambda: gauge(d, "switchyard_destination_lag_events", "dead") == 0,
                           timeout=10, what="lag of 'dead' back to 0")
        self.assertEqual(gauge(d, "switchyard_destination_dead_letters", "dead"), 0)

    def test_429_retry_after_is_honoured(self):
        r = self.receiver()
        r.mode("429", retry_after="1")
        d = self.daemon(webhook("hook", r.url, """    retry_backoff_base: 10ms
    retry_backoff_max: 20ms
    breaker_failures: 1000"""))
        d.post_events(events("ra", 50))
        t0 = time.monotonic()
        support.wait_until(lambda: r.stats()["answered"].get("429", 0) >= 1, timeout=10,
                           what="first 429")
        time.sleep(3.5)
        n429 = r.stats()["answered"].get("429", 0)
        elapsed = time.monotonic() - t0
        # With a 10 ms backoff alone there would be hundreds of tries; Retry-After: 1 allows
        # about one per second.
        self.assertGreaterEqual(n429, 2)
        self.assertLessEqual(n429, int(elapsed) + 2, f"{n429} tries in {elapsed:.1f}s")
        self.assertGreaterEqual(gauge(d, "switchyard_destination_retries", "hook"), 2)
        r.mode("ok")
        want = {f"ra-{i}" for i in range(50)}
        support.wait_until(lambda: want <= r.received_ids(), timeout=15, what="all delivered after 429s")
        self.assertEqual(gauge(d, "switchyard_destination_dead_letters", "hook"), 0)

    def test_rejected_events_dead_letter_replay_discard_cli_and_auth(self):
        r = self.receiver()
        r.mode("reject_matching", match="POISON")
        # One event per batch, so a rejection concerns exactly the event that caused it.
        d = self.daemon(webhook("hook", r.url, "    batch_max_events: 1")
                        + filedest("out"), admin_extra=ADMIN_TOKEN)
        evs = events("ok", 20)
        bad = [support.track_event(f"bad-{i}", properties={"tag": "POISON"}) for i in range(3)]
        d.post_events(evs[:10] + bad + evs[10:])
        good = {e["messageId"] for e in evs}
        support.wait_until(lambda: good <= r.received_ids(), timeout=20, what="good events delivered")
        support.wait_until(lambda: dead_letters(d, "hook")["total"] == 3, timeout=20,
                           what="3 dead letters")
        doc = dead_letters(d, "hook")
        self.assertEqual(doc["destination"], "hook")
        self.assertEqual({e["message_id"] for e in doc["entries"]}, {e["messageId"] for e in bad})
        for e in doc["entries"]:
            self.assertEqual(e["kind"], "rejected", e)
            self.assertIn("400", e["reason"], e)
            self.assertIn("POISON", e["reason"] + e["last_response"], e)
            self.assertGreaterEqual(e["attempts"], 1, e)
            self.assertIsInstance(e["event"], dict, e)
            self.assertEqual(e["event"]["messageId"], e["message_id"])
        self.assertFalse(r.received_ids() & {e["messageId"] for e in bad})
        # The file destination got everything, markers included.
        support.wait_until(lambda: len(support.message_ids(d.read_ndjson("out/out"))) == 23, timeout=10,
                           what="file destination has all 23")
        # Filters.
        self.assertEqual(dead_letters(d, "hook", "?kind=budget_exhausted")["entries"], [])
        self.assertEqual(len(dead_letters(d, "hook", "?kind=rejected&limit=2")["entries"]), 2)
        st, doc2 = d.api("GET", "/v1/destinations/hook/dead-letters?since=yesterday", TOKEN)
        self.assertEqual(st, 400, doc2)
        self.assertEqual(gauge(d, "switchyard_destination_dead_letters", "hook"), 3)

        # CLI against the running daemon.
        p = d.cli("dlq", "list", "-d", "hook")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("hook", p.stdout)
        self.assertIn("bad-0", p.stdout)
        p = d.cli("dlq", "list", "-d", "hook", "--json")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(json.loads(p.stdout)["total"], 3)
        p = d.cli("destinations")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("hook", p.stdout)
        self.assertIn("out", p.stdout)
        p = d.cli("destinations", "--json")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        names = {x["name"] for x in json.loads(p.stdout)["destinations"]}
        self.assertLessEqual({"hook", "out"}, names)
        p = d.cli("dlq", "list", "-d", "nosuch")
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)

        # Auth: wrong or missing token → 401, for every operator route.
        for path, method in [("/v1/destinations", "GET"), ("/v1/destinations/hook/dead-letters", "GET"),
                             ("/v1/destinations/hook/dead-letters/replay", "POST"),
                             ("/v1/destinations/hook/pause", "POST"), ("/v1/reload", "POST")]:
            for tok in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
                st, _ = d.api(method, path, tok)
                self.assertEqual(st, 401, (path, tok))
        st, _, _ = d.request("GET", "/v1/destinations", headers={"Authorization": "Basic " + TOKEN},
                             port=d.admin_port)
        self.assertEqual(st, 401)
        self.assertEqual(gauge(d, "switchyard_destination_paused", "hook"), 0)
        st, _ = d.api("GET", "/v1/destinations/nosuch/dead-letters", TOKEN)
        self.assertEqual(st, 404)

        # Replay once the receiver accepts them: they arrive and the store empties.
        r.mode("ok")
        st, doc = d.api("POST", "/v1/destinations/hook/dead-letters/replay", TOKEN)
        self.assertEqual((st, doc.get("marked_for_replay")), (200, 3), doc)
        support.wait_until(lambda: {e["messageId"] for e in bad} <= r.received_ids(), timeout=20,
                           what="replayed events arrive")
        support.wait_until(lambda: dead_letters(d, "hook")["total"] == 0, timeout=10,
                           what="dead-letter store empty after replay")
        self.assertEqual(gauge(d, "switchyard_destination_dead_letters", "hook"), 0)

        # Discard: new rejections, then discard them (CLI for one, API for the rest).
        r.mode("reject_matching", match="POISON")
        bad2 = [support.track_event(f"bad2-{i}", properties={"tag": "POISON"}) for i in range(3)]
        d.post_events(bad2)
        support.wait_until(lambda: dead_letters(d, "hook")["total"] == 3, timeout=20,
                           what="3 new dead letters")
        first = dead_letters(d, "hook")["entries"][0]["id"]
        p = d.cli("dlq", "discard", "-d", "hook", "--ids", str(first))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(dead_letters(d, "hook")["total"], 2)
        st, doc = d.api("POST", "/v1/destinations/hook/dead-letters/discard", TOKEN)
        self.assertEqual((st, doc.get("discarded")), (200, 2), doc)
        self.assertEqual(dead_letters(d, "hook")["total"], 0)
        # A discarded entry is gone for good: a replay finds nothing.
        r.mode("ok")
        st, doc = d.api("POST", "/v1/destinations/hook/dead-letters/replay", TOKEN)
        self.assertEqual((st, doc.get("marked_for_replay")), (200, 0), doc)
        time.sleep(0.5)
        self.assertFalse(r.received_ids() & {e["messageId"] for e in bad2})

    def test_operator_api_disabled_without_token(self):
        d = self.daemon(filedest("out"))
        for tok in (None, "anything"):
            st, doc = d.api("GET", "/v1/destinations", tok)
            self.assertEqual(st, 403, doc)
            st, doc = d.api("POST", "/v1/destinations/out/pause", tok)
            self.assertEqual(st, 403, doc)
        p = d.cli("destinations")
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        # /metrics etc. need no token.
        self.assertIn("switchyard_destination_lag_events", d.metrics())

    def test_pause_and_resume(self):
        r = self.receiver()
        d = self.daemon(webhook("hook", r.url) + filedest("out"),
                        admin_extra=ADMIN_TOKEN)
        d.post_events(events("pre", 10))
        support.wait_until(lambda: len(r.received_ids()) == 10, timeout=10, what="first 10")
        st, doc = d.api("POST", "/v1/destinations/hook/pause", TOKEN)
        self.assertEqual((st, doc.get("paused")), (200, True), doc)
        st, doc = d.api("GET", "/v1/destinations/hook/pause", TOKEN)
        self.assertEqual(st, 405, doc)
        self.assertEqual(d.destination_stats("hook", TOKEN)["state"], "paused")
        self.assertEqual(gauge(d, "switchyard_destination_paused", "hook"), 1)
        d.post_events(events("paused", 300))
        # The other destination is unaffected.
        support.wait_until(lambda: len(support.message_ids(d.read_ndjson("out/out"))) == 310,
                           timeout=10, what="file destination has all 310")
        time.sleep(1.0)
        self.assertEqual(len(r.received_ids()), 10, "a paused destination delivered")
        lag = gauge(d, "switchyard_destination_lag_events", "hook")
        self.assertEqual(lag, 300)
        d.post_events(events("paused2", 100))
        support.wait_until(lambda: gauge(d, "switchyard_destination_lag_events", "hook") == 400,
                           timeout=5, what="lag grows to 400")
        self.assertEqual(d.destination_stats("hook", TOKEN)["lag_events"], 400)
        st, doc = d.api("POST", "/v1/destinations/hook/resume", TOKEN)
        self.assertEqual((st, doc.get("paused")), (200, False), doc)
        want = {f"paused-{i}" for i in range(300)} | {f"paused2-{i}" for i in range(100)}
        support.wait_until(lambda: want <= r.received_ids(), timeout=15, what="drained after resume")
        support.wait_until(lambda: gauge(d, "switchyard_destination_lag_events", "hook") == 0,
                           timeout=5, what="lag 0 after resume")
        self.assertEqual(gauge(d, "switchyard_destination_paused", "hook"), 0)

    def test_drop_oldest_lag_policy(self):
        dead_port = support.closed_port()
        n = 1000
        # A small log: 1000 padded events (~1.6 KB each) are more than it holds, so it only
        # keeps taking them because drop_oldest lets the dead destination's cursor move on.
        d = self.daemon(filedest("out") + webhook(
            "dead", f"http://127.0.0.1:{dead_port}/hook", """    max_lag_events: 100
    batch_max_events: 50
    when_lagging: drop_oldest
    connect_timeout: 200ms
    retry_backoff_base: 10ms
    retry_backoff_max: 50ms
    breaker_cooldown: 200ms
    breaker_cooldown_max: 400ms"""), log="  segment_bytes: 64KiB\n  capacity_bytes: 1MiB",
            admin_extra=ADMIN_TOKEN)
        evs = events("drop", n, pad="p" * 1500)
        # A steady stream (not a single burst: the lag policy runs every ~100 ms, and a burst
        # larger than the whole log could fill it in between).
        for i in range(0, n, 50):
            d.post_events(evs[i:i + 50], batch=50)
            time.sleep(0.05)
        support.wait_until(lambda: len(support.message_ids(d.read_ndjson("out/out"))) == n,
                           timeout=20, what="file destination has everything")
        # Settles at most max_lag_events plus one batch behind the end: a batch stuck at the
        # breaker is dropped only when it lies wholly before end - max_lag_events (documented
        # in src/delivery/README.md).
        # Drops happen in steps while the dead worker's in-flight batches are given up, so wait
        # until one scrape shows a settled, self-consistent state before reading it.
        def settled():
            t = d.metrics()
            dr = metric_value(t, "switchyard_destination_dropped_events", {"destination": "dead"})
            lg = metric_value(t, "switchyard_destination_lag_events", {"destination": "dead"})
            dl = metric_value(t, "switchyard_destination_dead_letters", {"destination": "dead"})
            return dr >= n - 150 and dr == dl and dr + lg == n and \
                dead_letters(d, "dead", "?kind=dropped")["total"] == dr
        try:
            support.wait_until(settled, timeout=20, what="dropped entries settle")
        finally:
            text = d.metrics()
            dropped = metric_value(text, "switchyard_destination_dropped_events", {"destination": "dead"})
            lag = metric_value(text, "switchyard_destination_lag_events", {"destination": "dead"})
            print(f"\n[drop_oldest] dropped {dropped:.0f} of {n}, lag {lag:.0f}, log bytes "
                  f"{metric_value(text, 'switchyard_log_bytes'):.0f}", flush=True)
        self.assertLessEqual(dropped, n - 100)
        # At most one batch (batch_max_events: 50) above max_lag_events: a batch straddling the
        # drop point is still delivered, and a partial batch can be cut when max_wait expires.
        self.assertGreaterEqual(lag, 100)
        self.assertLessEqual(lag, 150)
        self.assertEqual(dropped + lag, n)
        # Every dropped event has its dead-letter entry (checked in one consistent read: a
        # straddling batch may still be dropped after `text` was taken).
        support.wait_until(settled, timeout=10, what="every dropped event has its dead letter")
        self.assertEqual(metric_value(text, "switchyard_log_full_refusals_total") or 0, 0)
        doc = dead_letters(d, "dead", "?kind=dropped&limit=5")
        self.assertEqual(len(doc["entries"]), 5)
        for e in doc["entries"]:
            self.assertEqual(e["kind"], "dropped")
            self.assertTrue(e["message_id"].startswith("drop-"), e)
        # The log does not fill: it stays under its capacity and keeps the retention moving.
        self.assertLess(metric_value(text, "switchyard_log_bytes"), 1024 * 1024)

    def test_poison_event_is_isolated_by_the_retry_budget(self):
        r = self.receiver()
        r.mode("fail_matching", match="POISON-PILL")
        d = self.daemon(webhook("hook", r.url, """    batch_max_wait: 200ms
    retry_max_attempts: 3
    retry_backoff_base: 10ms
    retry_backoff_max: 20ms
    breaker_failures: 1000"""), admin_extra=ADMIN_TOKEN)
        evs = events("pp", 50)
        evs[17]["properties"]["tag"] = "POISON-PILL"
        d.post_events(evs, batch=50)
        good = {e["messageId"] for e in evs} - {"pp-17"}
        support.wait_until(lambda: good <= r.received_ids(), timeout=20, what="good events delivered")
        support.wait_until(lambda: dead_letters(d, "hook")["total"] == 1, timeout=10,
                           what="the poison event dead-lettered")
        (e,) = dead_letters(d, "hook")["entries"]
        self.assertEqual(e["kind"], "budget_exhausted", e)
        self.assertEqual(e["message_id"], "pp-17")
        self.assertGreaterEqual(e["attempts"], 3, e)
        self.assertIn("500", e["reason"] + e["last_response"], e)
        self.assertNotIn("pp-17", r.received_ids())
        self.assertGreaterEqual(gauge(d, "switchyard_destination_retries", "hook"), 3)
        # The cursor moves past the poison event once every other event went out one by one.
        support.wait_until(lambda: gauge(d, "switchyard_destination_lag_events", "hook") == 0,
                           timeout=20, what="lag back to 0")
        self.assertEqual(d.destination_stats("hook", TOKEN)["budget_exhausted"], 1)


if __name__ == "__main__":
    unittest.main()
