"""Per-destination routing end to end (src/route/README.md): include/exclude by type, event glob
and source, `where` conditions, `integrations` flags, consent, sampling and field rules, each
observed in a file destination's output; filtered counts in /metrics."""
import hashlib
import hmac
import ipaddress
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import support  # noqa: E402
from support import metric_value  # noqa: E402

HASH_KEY = "route-hmac-key-0123"
N_SAMPLE = 400


def dest(name, rules=""):
    return f"""
  - name: {name}
    type: file
    batch_max_wait: 10ms
{rules}"""


DESTINATIONS = (
    dest("all")
    + dest("inc_type", """    include:
      - type: [track]""")
    + dest("inc_glob", """    include:
      - event: ["Order *", "Sign?d Up"]""")
    + dest("inc_source", """    include:
      - source: [other]""")
    + dest("exc", """    exclude:
      - type: [page, identify]
      - event: ["Signed*"]""")
    + dest("exc_wins", """    include:
      - type: [track]
    exclude:
      - where:
          - {path: properties.plan, op: eq, value: free}""")
    + dest("where", """    include:
      - type: [track]
        where:
          - {path: properties.plan, op: eq, value: pro}
          - {path: properties.amount, op: gte, value: "10"}
      - where:
          - {path: properties.tier, op: in, value: [gold, silver]}
      - where:
          - {path: properties.coupon, op: exists}
          - {path: properties.flagged, op: not_exists}""")
    + dest("only_yes")
    + dest("renamed_key", """    integration: Custom Hook""")
    + dest("no_integrations", """    integration: \"\"""")
    + dest("consent_ads", """    consent:
      categories: [ads]
      missing: deny""")
    + dest("consent_analytics", """    consent:
      categories: [analytics]
      missing: allow""")
    + dest("sample0", """    sample: {rate: 0}""")
    + dest("sample1", """    sample: {rate: 1}""")
    + dest("sample_half", """    sample: {rate: 0.5, by: messageId}""")
    + dest("fields", f"""    fields:
      drop: [properties.secret, context.userAgent]
      rename:
        properties.old_name: properties.new_name
        properties.moved: meta.moved_here
      hash: [userId, traits.email, properties.amount, properties.obj]
      hash_key: {HASH_KEY}
      truncate_ip: true""")
)

NAMES = ["all", "inc_type", "inc_glob", "inc_source", "exc", "exc_wins", "where", "only_yes",
         "renamed_key", "no_integrations", "consent_ads", "consent_analytics", "sample0", "sample1",
         "sample_half", "fields"]


def track(mid, event, **kw):
    return support.track_event(mid, event=event, **kw)


# The main set of events, by messageId.
EVENTS = [
    track("t-order", "Order Completed", properties={"plan": "pro", "amount": 50}),
    track("t-refund", "Order Refunded", properties={"plan": "free", "amount": 5}),
    track("t-signup", "Signed Up", properties={"plan": "pro"}),
    track("t-gold", "Upgraded", properties={"tier": "gold", "amount": 9.5}),
    track("t-coupon", "Coupon Used", properties={"coupon": "X1"}),
    track("t-coupon-flagged", "Coupon Used", properties={"coupon": "X2", "flagged": True}),
    track("t-amount-str", "Order Placed", properties={"plan": "pro", "amount": "50"}),
    {"type": "page", "userId": "u1", "name": "Home", "messageId": "p-home"},
    {"type": "page", "userId": "u1", "name": "Order History", "messageId": "p-orders"},
    {"type": "screen", "userId": "u1", "name": "Order Screen", "messageId": "s-order"},
    {"type": "identify", "userId": "u1", "traits": {"email": "a@b.example"}, "messageId": "i-1"},
    {"type": "group", "userId": "u1", "groupId": "g1", "messageId": "g-1"},
    # integrations
    track("int-all-false-yes", "X", integrations={"All": False, "only_yes": True}),
    track("int-all-false-obj", "X", integrations={"All": False, "only_yes": {"opt": 1}}),
    track("int-no", "X", integrations={"only_yes": False}),
    track("int-all-false", "X", integrations={"All": False}),
    track("int-all-true-no", "X", integrations={"All": True, "only_yes": False}),
    track("int-case", "X", integrations={"All": False, "Only_Yes": True}),
    track("int-custom", "X", integrations={"All": False, "Custom Hook": True}),
    # consent
    track("c-analytics", "X", context={"consent": {"categoryPreferences": {"analytics": True, "ads": False}}}),
    track("c-both", "X", context={"consent": {"categoryPreferences": {"analytics": True, "ads": True}}}),
    track("c-ads-string", "X", context={"consent": {"categoryPreferences": {"ads": "true"}}}),
    track("c-empty", "X", context={"consent": {"categoryPreferences": {}}}),
    track("c-not-object", "X", context={"consent": {"categoryPreferences": "all"}}),
]
OTHER_SOURCE = [track("o-1", "From Other"),
                {"type": "page", "anonymousId": "a-9", "name": "Other Page", "messageId": "o-2"}]
IDS = {e["messageId"] for e in EVENTS} | {e["messageId"] for e in OTHER_SOURCE}
INTEGRATION_IDS = {e["messageId"] for e in EVENTS if "integrations" in e}
# Integrations are evaluated first for every destination (key = its name by default), so
# events with `All: false` reach only destinations whose own key is true, or that ignore them.
ALL_FALSE = {e["messageId"] for e in EVENTS if e.get("integrations", {}).get("All") is False}

# Field rules, on their own events.
FIELD_EVENTS = [
    {"type": "track", "event": "F", "userId": "user-42", "messageId": "f-1",
     "properties": {"secret": "s3cr3t", "old_name": "v", "new_name": "overwritten", "keep": 1,
                    "amount": 42, "obj": {"a": 1, "b": [1, 2, "x"]}, "moved": {"deep": True}},
     "context": {"ip": "203.0.113.77", "userAgent": "UA/1.0", "locale": "en"}},
    {"type": "identify", "userId": "user-43", "messageId": "f-2", "traits": {"email": "x@y.example"},
     "context": {"ip": "2001:db8:1234:5678:9abc::1"}},
    {"type": "track", "event": "F", "userId": "user-44", "messageId": "f-3",
     "context": {"ip": "::ffff:198.51.100.23"}},
    {"type": "track", "event": "F", "anonymousId": "anon-1", "messageId": "f-4",
     "context": {"ip": "not-an-ip"}},
    {"type": "track", "event": "F", "userId": "user-45", "messageId": "f-5",
     "properties": {"amount": 1.5e300, "obj": None}},
]
SAMPLE_EVENTS = [track(f"smp-{i}", "Sampled", userId=f"su-{i}") for i in range(N_SAMPLE)]
ALL_IDS = IDS | {e["messageId"] for e in FIELD_EVENTS} | {e["messageId"] for e in SAMPLE_EVENTS}
BASE = ALL_IDS - ALL_FALSE  # what a destination without rules receives
BASE_IDS = IDS - ALL_FALSE


def hmac_hex(value):
    if isinstance(value, str):
        data = value.encode()
    else:
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(HASH_KEY.encode(), data, hashlib.sha256).hexdigest()


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fmix64(k):
    m = 0xFFFFFFFFFFFFFFFF
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & m
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & m
    k ^= k >> 33
    return k


def in_sample(id_, rate):
    return fmix64(fnv1a64(id_.encode())) < rate * 2.0 ** 64


class RoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = support.Daemon(destinations=DESTINATIONS)
        cls.d.start()
        d = cls.d
        d.post_events(EVENTS)
        st, _, body = d.post("/v1/batch", {"batch": OTHER_SOURCE}, auth=support.basic("other-key"))
        assert st == 200, body
        d.post_events(FIELD_EVENTS)
        d.post_events(SAMPLE_EVENTS)
        # Every destination has read everything: its lag is 0 (filtered events move the cursor).
        total = len(ALL_IDS)

        def caught_up():
            text = d.metrics()
            return all(metric_value(text, "switchyard_destination_lag_events", {"destination": n}) == 0
                       and metric_value(text, "switchyard_log_end_offset") >= total for n in NAMES)
        support.wait_until(caught_up, timeout=30, what="every destination caught up")
        cls.out = {n: d.read_ndjson(f"out/{n}") for n in NAMES}
        cls.ids = {n: support.message_ids(evs) for n, evs in cls.out.items()}
        cls.metrics_text = d.metrics()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def got(self, name, universe=BASE_IDS):
        return self.ids[name] & universe

    def filtered(self, name, reason):
        return metric_value(self.metrics_text, "switchyard_destination_filtered_events",
                            {"destination": name, "reason": reason}) or 0

    def test_destination_without_rules(self):
        # Everything except `All: false` (Segment's default for an unnamed destination).
        self.assertEqual(len(ALL_FALSE), 5)
        self.assertEqual(self.ids["all"], BASE)
        self.assertEqual(len(self.out["all"]), len(BASE))
        self.assertEqual(self.filtered("all", "integration_disabled"), len(ALL_FALSE))
        # integration: "" ignores the integrations object: everything, once.
        self.assertEqual(self.ids["no_integrations"], ALL_IDS)
        self.assertEqual(len(self.out["no_integrations"]), len(ALL_IDS))

    def test_include_by_type(self):
        want = {e["messageId"] for e in EVENTS + OTHER_SOURCE if e["type"] == "track"} - ALL_FALSE
        self.assertEqual(self.got("inc_type"), want)
        self.assertEqual(self.filtered("inc_type", "excluded"), len(BASE) - len(self.ids["inc_type"]))

    def test_include_by_event_glob(self):
        # track `event` and page/screen `name`; ? matches one character; no name never matches.
        self.assertEqual(self.got("inc_glob"), {"t-order", "t-refund", "t-signup", "t-amount-str",
                                                "p-orders", "s-order"})

    def test_include_by_source(self):
        self.assertEqual(self.ids["inc_source"], {"o-1", "o-2"})

    def test_exclude(self):
        self.assertEqual(self.got("exc"), BASE_IDS - {"p-home", "p-orders", "i-1", "t-signup", "o-2"})
        self.assertEqual(self.filtered("exc", "excluded"), len(BASE) - len(self.ids["exc"]))

    def test_exclude_wins_over_include(self):
        want = {e["messageId"] for e in EVENTS + OTHER_SOURCE if e["type"] == "track"}
        want -= ALL_FALSE | {"t-refund"}
        self.assertEqual(self.got("exc_wins"), want)

    def test_where(self):
        # eq + gte (numeric; a string "50" is not a number), in, exists + not_exists.
        self.assertEqual(self.ids["where"], {"t-order", "t-gold", "t-coupon"})
        self.assertEqual(self.filtered("where", "excluded"), len(BASE) - 3)

    def test_integrations_flags(self):
        # The destination's own key decides (true or an object: yes; false: no, even with
        # All: true); otherwise All: false means no. Keys are case-sensitive.
        got = self.got("only_yes", INTEGRATION_IDS)
        self.assertEqual(got, {"int-all-false-yes", "int-all-false-obj"})
        # Events without integrations are delivered.
        self.assertEqual(self.got("only_yes", IDS) - INTEGRATION_IDS, IDS - INTEGRATION_IDS)
        self.assertEqual(self.filtered("only_yes", "integration_disabled"), len(INTEGRATION_IDS) - 2)
        # `integration:` renames the key; "" ignores integrations entirely.
        self.assertEqual(self.got("renamed_key", INTEGRATION_IDS | BASE_IDS),
                         BASE_IDS | {"int-custom"})
        self.assertEqual(self.got("no_integrations", IDS), IDS)

    def test_consent(self):
        self.assertEqual(self.got("consent_ads"), {"c-both"})
        self.assertEqual(self.filtered("consent_ads", "no_consent"), len(BASE) - 1)
        # missing: allow lets events without categoryPreferences through (also when it is not an
        # object); a present object without analytics=true does not.
        self.assertEqual(self.got("consent_analytics"), BASE_IDS - {"c-ads-string", "c-empty"})
        self.assertEqual(self.filtered("consent_analytics", "no_consent"), 2)

    def test_sampling(self):
        self.assertEqual(self.ids["sample0"], set())
        self.assertEqual(self.filtered("sample0", "sampled_out"), len(BASE))
        self.assertEqual(self.ids["sample1"], BASE)
        self.assertEqual(self.filtered("sample1", "sampled_out"), 0)
        # rate 0.5 by messageId: exactly the documented hash, fmix64(FNV-1a-64(id)) < rate * 2^64.
        want = {i for i in BASE if in_sample(i, 0.5)}
        self.assertEqual(self.ids["sample_half"], want)
        self.assertTrue(0.35 * len(BASE) < len(want) < 0.65 * len(BASE), len(want))
        self.assertEqual(self.filtered("sample_half", "sampled_out"), len(BASE) - len(want))

    def test_field_rules(self):
        by_id = {e["messageId"]: e for e in self.out["fields"]}
        self.assertEqual(set(by_id), BASE)
        f1 = by_id["f-1"]
        p = f1["properties"]
        self.assertNotIn("secret", p)
        self.assertNotIn("old_name", p)
        self.assertEqual(p["new_name"], "v")  # rename overwrites the target
        self.assertEqual(p["keep"], 1)
        self.assertNotIn("moved", p)
        self.assertEqual(f1["meta"], {"moved_here": {"deep": True}})  # parent created
        self.assertNotIn("userAgent", f1["context"])
        self.assertEqual(f1["context"]["locale"], "en")
        self.assertEqual(f1["context"]["ip"], "203.0.113.0")
        self.assertEqual(f1["userId"], hmac_hex("user-42"))
        self.assertEqual(p["amount"], hmac_hex(42))
        self.assertEqual(p["obj"], hmac_hex({"a": 1, "b": [1, 2, "x"]}))
        # The original (unrouted) copy is untouched.
        orig = next(e for e in self.out["all"] if e["messageId"] == "f-1")
        self.assertEqual(orig["properties"]["secret"], "s3cr3t")
        self.assertEqual(orig["userId"], "user-42")
        self.assertEqual(orig["context"]["ip"], "203.0.113.77")

        f2 = by_id["f-2"]
        self.assertEqual(f2["traits"]["email"], hmac_hex("x@y.example"))
        self.assertEqual(f2["userId"], hmac_hex("user-43"))
        v6 = ipaddress.ip_network("2001:db8:1234:5678:9abc::1/48", strict=False).network_address
        self.assertEqual(ipaddress.ip_address(f2["context"]["ip"]), v6)
        self.assertEqual(f2["context"]["ip"], "2001:db8:1234::")
        self.assertEqual(by_id["f-3"]["context"]["ip"], "198.51.100.0")
        self.assertNotIn("ip", by_id["f-4"]["context"])  # not an address: removed
        self.assertEqual(by_id["f-4"]["anonymousId"], "anon-1")  # not in `hash`
        f5 = by_id["f-5"]["properties"]
        self.assertEqual(f5["obj"], hmac_hex(None))
        self.assertEqual(len(f5["amount"]), 64)
        # Events without those fields are passed through (apart from context.ip).
        t = by_id["t-order"]
        self.assertEqual(t["properties"], {"plan": "pro", "amount": hmac_hex(50)})
        self.assertEqual(t["userId"], hmac_hex("u1"))

    def test_filtered_metrics_move_only_where_rules_filter(self):
        for name in ("all", "sample1", "fields", "no_integrations"):
            got = metric_value(self.metrics_text, "switchyard_destination_filtered_events",
                               {"destination": name}) or 0
            self.assertEqual(got, 0 if name == "no_integrations" else len(ALL_FALSE), name)
        for name in NAMES:
            delivered = metric_value(self.metrics_text, "switchyard_destination_delivered_events",
                                     {"destination": name})
            filtered = metric_value(self.metrics_text, "switchyard_destination_filtered_events",
                                    {"destination": name}) or 0
            self.assertEqual(delivered + filtered, len(ALL_IDS), name)
            self.assertEqual(delivered, len(self.out[name]), name)


if __name__ == "__main__":
    unittest.main()
