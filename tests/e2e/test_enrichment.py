"""Enrichment over the real daemon: user agent (uap-core) with client hints, bots (flag, drop,
routing), geo from a .mmdb built here (and its hot reload), campaign and referrer, IP privacy per
source and the SP-Anonymous header, per-step switches and metrics, and config errors."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import BIN, Daemon, basic, metric_value, wait_until  # noqa: E402

SRC = os.environ.get("SWITCHYARD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MAKE_MMDB = os.path.join(SRC, "tests", "support", "make_mmdb.pl")

CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1")
GOOGLEBOT = ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
CURL = "curl/8.4.0"

SOURCES = """
  - name: web
    write_keys: [web-key]
    allowed_origins: ["*"]
  - name: truncated
    write_keys: [trunc-key]
    ip: truncate
  - name: removed
    write_keys: [remove-key]
    ip: remove
  - name: strict
    write_keys: [strict-key]
    bots: drop
"""


def city_spec(city="London", country="GB"):
    """A GeoIP2-City-shaped database: 81.2.69.0/24 → `city`, 2001:db8:1::/48 → Berlin, and a
    country-only network."""
    return {
        "database_type": "GeoIP2-City",
        "ip_version": 6,
        "record_size": 28,
        "networks": [
            {"network": "81.2.69.0/24", "data": {
                "country": {"iso_code": country, "names": {"en": "United Kingdom"}},
                "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
                "city": {"names": {"en": city}},
                "postal": {"code": "SW1A"},
                "location": {"latitude": 51.5142, "longitude": -0.0931,
                             "time_zone": "Europe/London"}}},
            {"network": "2001:db8:1::/48", "data": {
                "country": {"iso_code": "DE", "names": {"en": "Germany"}},
                "subdivisions": [{"iso_code": "BE", "names": {"en": "Berlin"}}],
                "city": {"names": {"en": "Berlin"}},
                "location": {"latitude": 52.52, "longitude": 13.405,
                             "time_zone": "Europe/Berlin"}}},
            {"network": "198.51.100.0/24", "data": {
                "country": {"iso_code": "FR", "names": {"en": "France"}}}},
        ],
    }


ASN_SPEC = {
    "database_type": "GeoLite2-ASN",
    "ip_version": 6,
    "record_size": 28,
    "networks": [
        {"network": "81.2.69.0/24", "data": {"autonomous_system_number": 20712,
                                             "autonomous_system_organization": "Andrews & Arnold"}},
    ],
}


def build_mmdb(spec, path):
    spec_path = path + ".json"
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    tmp = path + ".tmp"
    subprocess.run(["perl", MAKE_MMDB, spec_path, tmp], check=True, capture_output=True)
    os.rename(tmp, path)  # atomic, as geoipupdate does


def page_event(mid, ua=CHROME_WIN, ip=None, **ctx):
    c = {"userAgent": ua,
         "page": {"url": "https://shop.example/landing?utm_source=newsletter&utm_medium=email"
                         "&utm_campaign=spring&gclid=abc123",
                  "referrer": "https://www.google.com/", "path": "/landing"},
         "library": {"name": "analytics.js", "version": "next-1.70.0"}}
    if ip is not None:
        c["ip"] = ip
    c.update(ctx)
    if ua is None:
        del c["userAgent"]
    return {"type": "page", "name": "Landing", "anonymousId": "anon-1", "messageId": mid,
            "context": c}


def by_id(events):
    return {e["messageId"]: e for e in events}


class EnrichmentTest(unittest.TestCase):
    def start(self, sources=SOURCES, extra="", destinations=None):
        d = Daemon(sources=sources, extra=extra, destinations=destinations,
                   admin_extra="  token: op-token")
        self.addCleanup(d.cleanup)
        self.d = d
        return d

    def post(self, d, events, key="web-key", headers=None):
        st, _, body = d.post("/v1/batch", {"batch": events}, auth=basic(key), headers=headers)
        self.assertEqual(st, 200, body)

    def test_user_agent_client_hints_campaign_referrer_defaults(self):
        d = self.start().start()
        uad = {"brands": [{"brand": "Not_A Brand", "version": "8"},
                          {"brand": "Chromium", "version": "120"},
                          {"brand": "Google Chrome", "version": "120"}],
               "mobile": False, "platform": "Windows", "platformVersion": "15.0.0",
               "fullVersionList": [{"brand": "Google Chrome", "version": "120.0.6099.130"}]}
        self.post(d, [
            page_event("m1"),
            page_event("m2", ua=IPHONE),
            page_event("m3", userAgentData=uad),
            # A mobile SDK's own device/os and an SDK-filled campaign are kept as sent.
            page_event("m4", ua=IPHONE, os={"name": "iOS", "version": "17.1.2"},
                       device={"type": "ios", "model": "iPhone15,2"},
                       campaign={"name": "from-sdk"}),
            # Server-side event: no user agent at all.
            page_event("m5", ua=None),
        ])
        ev = by_id(d.wait_for_events(lambda e: len(e) >= 5))
        c1 = ev["m1"]["context"]
        self.assertEqual(c1["userAgent"], CHROME_WIN)
        self.assertEqual(c1["browser"], {"family": "Chrome", "version": "120.0.0.0"})
        self.assertEqual(c1["os"], {"name": "Windows", "version": "10"})
        self.assertEqual(c1["device"]["type"], "desktop")
        self.assertEqual(c1["bot"], {"is_bot": False})
        self.assertEqual(c1["campaign"], {"name": "spring", "source": "newsletter",
                                          "medium": "email", "click_ids": {"gclid": "abc123"}})
        # gclid marks a paid click, which wins over the search referrer.
        self.assertEqual(c1["referrer"]["medium"], "paid")
        self.assertEqual(c1["ip"], "127.0.0.1")

        c2 = ev["m2"]["context"]
        self.assertEqual(c2["browser"]["family"], "Mobile Safari")
        self.assertEqual(c2["os"], {"name": "iOS", "version": "17.1.2"})
        self.assertEqual(c2["device"], {"type": "mobile", "brand": "Apple", "model": "iPhone"})

        c3 = ev["m3"]["context"]
        self.assertEqual(c3["os"], {"name": "Windows", "version": "11"})
        self.assertEqual(c3["browser"], {"family": "Chrome", "version": "120.0.6099.130"})

        c4 = ev["m4"]["context"]
        self.assertEqual(c4["os"], {"name": "iOS", "version": "17.1.2"})
        self.assertEqual(c4["device"], {"type": "ios", "model": "iPhone15,2"})
        self.assertEqual(c4["campaign"], {"name": "from-sdk"})
        self.assertEqual(c4["browser"]["family"], "Mobile Safari")  # absent, so added

        c5 = ev["m5"]["context"]
        for k in ("browser", "os", "device", "bot"):
            self.assertNotIn(k, c5)

        m = d.metrics()
        self.assertGreaterEqual(
            metric_value(m, "switchyard_enrich_events_total", {"step": "user_agent", "result": "hit"}), 4)
        self.assertGreaterEqual(
            metric_value(m, "switchyard_enrich_events_total", {"step": "user_agent", "result": "skipped"}), 1)
        self.assertGreaterEqual(
            metric_value(m, "switchyard_enrich_cache_lookups_total", {"step": "user_agent", "result": "hit"}), 1)
        self.assertGreaterEqual(
            metric_value(m, "switchyard_enrich_events_total", {"step": "campaign", "result": "hit"}), 3)

    def test_referrer_without_campaign(self):
        d = self.start().start()
        e1 = page_event("r1")
        e1["context"]["page"]["url"] = "https://shop.example/p"
        e2 = page_event("r2")
        e2["context"]["page"] = {"url": "https://shop.example/p", "referrer": "https://shop.example/"}
        e3 = page_event("r3")
        e3["context"]["page"] = {"url": "https://shop.example/p",
                                 "referrer": "https://t.co/abc"}
        self.post(d, [e1, e2, e3])
        ev = by_id(d.wait_for_events(lambda e: len(e) >= 3))
        self.assertEqual(ev["r1"]["context"]["referrer"], {"medium": "search", "source": "Google"})
        self.assertEqual(ev["r2"]["context"]["referrer"], {"medium": "internal"})
        self.assertEqual(ev["r3"]["context"]["referrer"]["medium"], "social")
        self.assertNotIn("campaign", ev["r1"]["context"])

    def test_bots_flag_drop_and_route(self):
        dests = """
  - name: out
    type: file
    path: {data}/out
    batch_max_wait: 10ms
    exclude:
      - where: [{path: context.bot.is_bot, op: eq, value: true}]
  - name: bots
    type: file
    path: {data}/bots
    batch_max_wait: 10ms
    include:
      - where: [{path: context.bot.is_bot, op: eq, value: true}]
"""
        d = Daemon(sources=SOURCES, destinations=dests.replace("{data}", "DATA"),
                   admin_extra="  token: op-token")
        self.addCleanup(d.cleanup)
        d.rewrite_config(text=d.config_text.replace("DATA", d.data))
        d.start()
        self.post(d, [page_event("b1", ua=GOOGLEBOT), page_event("b2", ua=CURL),
                      page_event("h1"), page_event("b3", ua="")])
        bots = by_id(d.wait_for_events(lambda e: len(e) >= 3, subdir="bots"))
        self.assertEqual(bots["b1"]["context"]["bot"],
                         {"is_bot": True, "reason": "crawler", "name": "Googlebot"})
        self.assertEqual(bots["b2"]["context"]["bot"]["reason"], "tool")
        self.assertEqual(bots["b3"]["context"]["bot"]["reason"], "empty_user_agent")
        humans = by_id(d.wait_for_events(lambda e: len(e) >= 1))
        self.assertEqual(set(humans), {"h1"})

        # bots: drop → quarantined with the reason, never delivered, counted.
        self.post(d, [page_event("s1", ua=GOOGLEBOT), page_event("s2")], key="strict-key")
        wait_until(lambda: "s2" in by_id(d.read_ndjson()), what="human event delivered")
        q = wait_until(lambda: [r for r in d.quarantine() if r.get("messageId") == "s1"],
                       what="bot quarantined")
        self.assertEqual(q[0]["reason"], "bot")
        self.assertEqual(q[0]["event"]["context"]["bot"]["name"], "Googlebot")
        self.assertNotIn("s1", by_id(d.read_ndjson("bots")))
        self.assertEqual(metric_value(d.metrics(), "switchyard_enrich_bot_events_dropped_total",
                                      {"source": "strict"}), 1)
        self.assertGreaterEqual(metric_value(d.metrics(), "switchyard_enrich_bots_total",
                                             {"reason": "crawler"}), 2)

        # Replay: nothing while the source still drops bots; once it flags them, the event
        # comes back (routed like any bot event) exactly once.
        st, doc = d.api("POST", "/v1/quarantine/replay?reason=bot", "op-token")
        self.assertEqual((st, doc["replayed"], doc["still_failing"]), (200, 0, 1), doc)
        d.stop()
        d.rewrite_config(text=d.config_text.replace("    bots: drop\n", "    bots: flag\n"))
        d.start()
        st, doc = d.api("POST", "/v1/quarantine/replay?reason=bot", "op-token")
        self.assertEqual((st, doc["replayed"]), (200, 1), doc)
        bots = by_id(d.wait_for_events(lambda e: "s1" in by_id(e), subdir="bots"))
        self.assertEqual(bots["s1"]["context"]["bot"]["name"], "Googlebot")
        st, doc = d.api("POST", "/v1/quarantine/replay?reason=bot", "op-token")
        self.assertEqual((st, doc["replayed"], doc["already_replayed"]), (200, 0, 1), doc)

    def test_geo_privacy_anonymous_and_hot_reload(self):
        tmp = tempfile.mkdtemp(prefix="switchyard-geo-")
        self.addCleanup(shutil.rmtree, tmp, True)
        city, asn = os.path.join(tmp, "city.mmdb"), os.path.join(tmp, "asn.mmdb")
        build_mmdb(city_spec(), city)
        build_mmdb(ASN_SPEC, asn)
        d = self.start(extra=f"""
enrich:
  geo:
    database: {city}
    asn_database: {asn}
    check_interval: 200ms
""").start()
        self.post(d, [page_event("g1", ip="81.2.69.160"),
                      page_event("g2", ip="2001:db8:1:2::7"),
                      page_event("g3", ip="10.1.2.3"),
                      page_event("g4", ip="198.51.100.9")])
        self.post(d, [page_event("t1", ip="81.2.69.160")], key="trunc-key")
        self.post(d, [page_event("x1", ip="81.2.69.160")], key="remove-key")
        self.post(d, [page_event("a1", ip="81.2.69.160")], headers={"SP-Anonymous": "*"})
        ev = by_id(d.wait_for_events(lambda e: len(e) >= 7))
        g1 = ev["g1"]["context"]
        self.assertEqual(g1["ip"], "81.2.69.160")
        self.assertEqual(g1["location"], {
            "country": "GB", "region": "ENG", "region_name": "England", "city": "London",
            "postal_code": "SW1A", "latitude": 51.5142, "longitude": -0.0931,
            "timezone": "Europe/London"})
        self.assertEqual(g1["network"], {"asn": 20712, "organization": "Andrews & Arnold"})
        self.assertEqual(ev["g2"]["context"]["location"]["city"], "Berlin")
        self.assertNotIn("location", ev["g3"]["context"])  # private address: not in the database
        self.assertEqual(ev["g4"]["context"]["location"], {"country": "FR"})
        # Privacy applies after the lookup.
        self.assertEqual(ev["t1"]["context"]["ip"], "81.2.69.0")
        self.assertEqual(ev["t1"]["context"]["location"]["city"], "London")
        self.assertNotIn("ip", ev["x1"]["context"])
        self.assertEqual(ev["x1"]["context"]["location"]["city"], "London")
        # Anonymous mode: no IP, no ASN, country only.
        self.assertNotIn("ip", ev["a1"]["context"])
        self.assertEqual(ev["a1"]["context"]["location"], {"country": "GB"})
        self.assertNotIn("network", ev["a1"]["context"])

        # geoipupdate-style replacement: picked up without a restart.
        build_mmdb(city_spec(city="Manchester"), city)
        n = [0]

        def moved():
            n[0] += 1
            mid = f"reload-{n[0]}"
            self.post(d, [page_event(mid, ip="81.2.69.160")])
            got = by_id(d.wait_for_events(lambda e: mid in by_id(e)))
            return got[mid]["context"]["location"]["city"] == "Manchester"

        wait_until(moved, timeout=20, interval=0.3, what="new geo database in use")
        self.assertGreaterEqual(metric_value(d.metrics(), "switchyard_enrich_geo_reloads_total",
                                             {"database": "city", "result": "ok"}), 1)

        # A broken replacement keeps the working database.
        with open(city + ".tmp", "wb") as f:
            f.write(b"not an mmdb")
        os.rename(city + ".tmp", city)
        wait_until(lambda: (metric_value(d.metrics(), "switchyard_enrich_geo_reloads_total",
                                         {"database": "city", "result": "failed"}) or 0) >= 1,
                   timeout=20, what="failed reload counted")
        self.post(d, [page_event("after-bad", ip="81.2.69.160")])
        ev = by_id(d.wait_for_events(lambda e: "after-bad" in by_id(e)))
        self.assertEqual(ev["after-bad"]["context"]["location"]["city"], "Manchester")

    def test_steps_switch_off(self):
        d = self.start(extra="""
enrich:
  user_agent: {enabled: false}
  campaign: {enabled: false}
""").start()
        self.post(d, [page_event("o1", ua=GOOGLEBOT)])
        ev = by_id(d.wait_for_events(lambda e: len(e) >= 1))
        c = ev["o1"]["context"]
        self.assertNotIn("browser", c)
        self.assertNotIn("campaign", c)
        self.assertEqual(c["bot"]["name"], "Googlebot")  # bots run without the UA parser
        self.assertIn("referrer", c)
        d.stop()

        d2 = self.start(extra="enrich:\n  enabled: false\n").start()
        self.post(d2, [page_event("o2")])
        c = by_id(d2.wait_for_events(lambda e: len(e) >= 1))["o2"]["context"]
        for k in ("browser", "os", "device", "bot", "campaign", "referrer"):
            self.assertNotIn(k, c)
        self.assertEqual(c["ip"], "127.0.0.1")

    def test_pixel_uses_the_request_user_agent(self):
        import base64
        import urllib.parse
        d = self.start().start()
        data = {"writeKey": "web-key", "anonymousId": "p1", "messageId": "px1", "event": "Opened",
                "context": {"page": {"url": "https://shop.example/?utm_source=mail"}}}
        q = urllib.parse.quote(base64.b64encode(json.dumps(data).encode()).decode())
        st, _, _ = d.request("GET", f"/v1/pixel/track?data={q}", headers={"User-Agent": IPHONE})
        self.assertEqual(st, 200)
        ev = by_id(d.wait_for_events(lambda e: len(e) >= 1))
        self.assertEqual(ev["px1"]["context"]["os"]["name"], "iOS")

    def test_hostile_user_agents(self):
        d = self.start().start()
        long_ua = "Mozilla/5.0 (" + "a(" * 6000 + ")" * 10
        evil = "Mozilla/5.0 " + "\u00e9" * 5000
        self.post(d, [page_event("l1", ua=long_ua), page_event("l2", ua=evil),
                      page_event("l3", ua="\u0000\u0001 bad")])
        ev = by_id(d.wait_for_events(lambda e: len(e) >= 3))
        self.assertEqual(ev["l1"]["context"]["userAgent"], long_ua)  # stored whole
        self.assertIn("browser", ev["l1"]["context"])
        self.assertIn("browser", ev["l2"]["context"])

    def test_config_errors(self):
        d = Daemon(sources=SOURCES, extra="""
enrich:
  geo:
    database: /nonexistent/city.mmdb
    fields: [country, planet]
""")
        self.addCleanup(d.cleanup)
        r = d.cli("check")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("enrich.geo.fields: unknown field 'planet'", r.stderr)
        self.assertIn("/nonexistent/city.mmdb", r.stderr)
        d2 = Daemon(sources=SOURCES.replace("ip: truncate", "ip: scramble"))
        self.addCleanup(d2.cleanup)
        r = d2.cli("check")
        self.assertEqual(r.returncode, 2)
        self.assertIn("ip 'scramble' is not keep, truncate or remove", r.stderr)
        d3 = Daemon(sources=SOURCES, extra="enrich:\n  user_agent:\n    regexes: missing.yaml\n")
        self.addCleanup(d3.cleanup)
        r = d3.cli("check")
        self.assertEqual(r.returncode, 2)
        self.assertIn("enrich.user_agent.regexes", r.stderr)
        # run refuses to start the same way.
        p = subprocess.run([BIN, "run", "-c", d3.config_path], capture_output=True, text=True,
                           timeout=30, cwd=d3.tmp)
        self.assertEqual(p.returncode, 2)
        self.assertIn("enrich.user_agent.regexes", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
