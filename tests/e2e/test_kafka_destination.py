"""The kafka destination end to end: the real daemon produces to a mock Kafka cluster
(tests/support/mock_kafka, librdkafka's mock brokers on loopback) and kcat reads the topics back.
Topics, keys, headers and values; then faults (all brokers down, leader moves, NOT_ENOUGH_REPLICAS
and REQUEST_TIMED_OUT on Produce, 500 ms broker latency, an event over message_max_bytes). Each
fault test checks that ingest kept answering 2xx, that every acknowledged event reached Kafka
(duplicates allowed: delivery is at-least-once) and that each user's events kept their order."""
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import support  # noqa: E402
from mock_kafka import MockKafka, consume, kcat_available  # noqa: E402

TOKEN = "op-secret-token"
ADMIN_TOKEN = f"  token: {TOKEN}"
USERS = 7


def kafka_dest(bootstrap, topic="events", extra=""):
    # Short timeouts and backoffs keep the fault tests fast; the breaker must not hold delivery
    # back for long once the cluster is healthy again.
    return f"""
  - name: kafka
    type: kafka
    brokers: "{bootstrap}"
    topic: "{topic}"
    linger: 2ms
    delivery_timeout: 3s
    batch_max_events: 50
    batch_max_wait: 10ms
    retry_backoff_base: 50ms
    retry_backoff_max: 500ms
    retry_max_attempts: 1000
    breaker_cooldown: 300ms
    breaker_cooldown_max: 1s
{extra}"""


def user_of(i):
    return f"u{i % USERS}"


def events(prefix, first, n, **props):
    return [support.track_event(f"{prefix}-{i}", user_id=user_of(i), properties=dict(i=i, **props))
            for i in range(first, first + n)]


def seq_of(message_id):
    return int(message_id.rsplit("-", 1)[1])


def lag(d):
    return support.metric_value(d.metrics(), "switchyard_destination_lag_events",
                                {"destination": "kafka"})


class KafkaDestinationTest(unittest.TestCase):
    def setUp(self):
        if not kcat_available():
            self.skipTest("kcat not installed")
        self.cleanups = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c()

    def cluster(self, topics=("events:4",)):
        k = MockKafka(brokers=3, topics=topics)
        self.cleanups.append(k.close)
        return k

    def daemon(self, destinations, **kw):
        d = support.Daemon(destinations=destinations, **kw)
        self.cleanups.append(d.cleanup)
        d.start()
        return d

    def delivered(self, d, k, topic, ids, timeout=30):
        """Waits until the destination has no lag, then reads `topic` until every id in `ids` is
        there; returns the messages (in partition, offset order)."""
        support.wait_until(lambda: lag(d) == 0, timeout=timeout, interval=0.1,
                           what="kafka destination lag back to 0")
        deadline = time.time() + timeout
        while True:
            msgs = consume(k.bootstrap, topic, timeout=10)
            have = {m["headers"].get("switchyard-message-id") for m in msgs}
            if ids <= have or time.time() > deadline:
                break
            time.sleep(0.2)
        missing = ids - have
        self.assertFalse(missing, f"{len(missing)} acknowledged events never reached Kafka: "
                                  f"{sorted(missing)[:10]}")
        return sorted(msgs, key=lambda m: (m["partition"], m["offset"]))

    def assert_key_order(self, msgs):
        """Per key, the first copy of each event comes in the order the events were sent; every
        key stays in one partition."""
        seen = set()
        last, parts = {}, {}
        for m in msgs:
            mid = m["headers"]["switchyard-message-id"]
            parts.setdefault(m["key"], set()).add(m["partition"])
            if mid in seen:
                continue  # a duplicate from a retry
            seen.add(mid)
            s = seq_of(mid)
            if m["key"] in last:
                self.assertGreater(s, last[m["key"]], f"key {m['key']}: {mid} out of order")
            last[m["key"]] = s
        for key, p in parts.items():
            self.assertEqual(len(p), 1, f"key {key} in partitions {p}")

    def post_while(self, d, prefix, during, n=200, batch=20):
        """Posts batches of events (each answer must be 2xx) while `during()` runs in another
        thread, and at least n events; returns the acknowledged ids."""
        t = threading.Thread(target=during)
        t.start()
        ids, i = set(), 0
        try:
            while t.is_alive() or i < n:
                evs = events(prefix, i, batch)
                d.post_events(evs, batch=batch)
                ids |= support.message_ids(evs)
                i += batch
                time.sleep(0.03)
        finally:
            t.join()
        return ids

    def retries(self, d):
        return support.metric_value(d.metrics(), "switchyard_destination_retries",
                                    {"destination": "kafka"}) or 0

    # ------------------------------------------------------------------------------------------
    def test_topics_keys_headers_and_values(self):
        k = self.cluster(("events.track:4", "events.identify:2", "events.page:2", "orders:2"))
        d = self.daemon(kafka_dest(k.bootstrap, "events.{type}", """    topics_by_event:
      Order Completed: orders"""))
        evs = events("t", 0, 60)
        for i, e in enumerate(evs):
            if i % 10 == 3:
                e["event"] = "Order Completed"
            if i % 10 == 7:  # anonymous: keyed by anonymousId
                del e["userId"]
                e["anonymousId"] = f"anon-{i % USERS}"
        evs.append({"type": "identify", "userId": "u-id", "messageId": "t-60",
                    "traits": {"plan": "pro"}})
        evs.append({"type": "page", "anonymousId": "anon-p", "name": "Home", "messageId": "t-61"})
        d.post_events(evs, batch=25)
        want = {e["messageId"]: e for e in evs}
        got = []
        for topic in ("events.track", "events.identify", "events.page", "orders"):
            got += self.delivered(d, k, topic, {m for m, e in want.items()
                                                if self.topic_of(e) == topic})
        self.assertEqual({m["headers"]["switchyard-message-id"] for m in got}, set(want))
        for m in got:
            mid = m["headers"]["switchyard-message-id"]
            e = want[mid]
            self.assertEqual(m["topic"], self.topic_of(e), mid)
            self.assertEqual(m["key"], e.get("userId") or e.get("anonymousId"), mid)
            self.assertEqual(m["headers"]["switchyard-source"], "web", mid)
            self.assertEqual(m["headers"]["switchyard-type"], e["type"], mid)
            name = e.get("event") or e.get("name")
            self.assertEqual(m["headers"].get("switchyard-event"), name, mid)
            value = json.loads(m["value"])
            self.assertEqual(value["messageId"], mid)
            self.assertEqual(value["type"], e["type"])
            self.assertIn("receivedAt", value)
        self.assert_key_order([m for m in got if m["topic"] == "events.track"])

    def test_deletion_and_identity_link_records(self):
        k = self.cluster(("events.track:2", "events.identify:2", "events.identity_link:2",
                          "events.deletion:2"))
        d = self.daemon(kafka_dest(k.bootstrap, "events.{type}", "    identity_links: true\n"),
                        admin_extra=ADMIN_TOKEN)
        st, _, _ = d.post("/v1/identify", {"userId": "del-user", "anonymousId": "del-anon",
                                            "messageId": "del-1"})
        self.assertEqual(st, 200)
        st, req = d.api("POST", "/v1/identity/deletions", TOKEN,
                        {"userId": "del-user", "requestedBy": "dpo@example.com"})
        self.assertEqual(st, 202, req)
        mid = "deletion-" + req["id"]
        [dele] = [m for m in self.delivered(d, k, "events.deletion", {mid})
                  if m["headers"]["switchyard-message-id"] == mid]
        self.assertEqual(dele["key"], "del-user")
        self.assertEqual(dele["headers"]["switchyard-type"], "deletion")
        value = json.loads(dele["value"])
        self.assertEqual(value["type"], "deletion")
        self.assertEqual(sorted(value["anonymousIds"]), ["del-anon"])
        links = consume(k.bootstrap, "events.identity_link", timeout=10)
        self.assertEqual(len(links), 1, links)
        self.assertEqual(json.loads(links[0]["value"])["eventMessageId"], "del-1")

        def confirmed():
            st, doc = d.api("GET", "/v1/identity/deletions/" + req["id"], TOKEN)
            return st == 200 and doc["status"] == "complete"
        support.wait_until(confirmed, timeout=20, what="kafka destination confirmed the deletion")

    @staticmethod
    def topic_of(e):
        if e.get("event") == "Order Completed":
            return "orders"
        return "events." + e["type"]

    def test_all_brokers_down_then_back(self):
        k = self.cluster()
        d = self.daemon(kafka_dest(k.bootstrap))

        def outage():
            time.sleep(0.3)
            for b in (1, 2, 3):
                k.cmd(f"down {b}")
            time.sleep(4)
            for b in (1, 2, 3):
                k.cmd(f"up {b}")

        ids = self.post_while(d, "down", outage)
        msgs = self.delivered(d, k, "events", ids, timeout=40)
        self.assert_key_order(msgs)
        self.assertGreater(self.retries(d), 0)  # the outage was seen, not slept through

    def test_leader_changes_while_sending(self):
        k = self.cluster()
        d = self.daemon(kafka_dest(k.bootstrap))

        def moves():
            for p, b in ((0, 2), (1, 3), (2, 1), (0, 3), (3, 2), (0, 1)):
                time.sleep(0.25)
                k.cmd(f"leader events {p} {b}")

        ids = self.post_while(d, "leader", moves)
        self.assert_key_order(self.delivered(d, k, "events", ids))

    def test_not_enough_replicas_and_request_timed_out(self):
        k = self.cluster()
        d = self.daemon(kafka_dest(k.bootstrap))

        def faults():
            k.cmd("errors Produce NOT_ENOUGH_REPLICAS 8")
            time.sleep(1)
            k.cmd("errors Produce REQUEST_TIMED_OUT 8")
            time.sleep(1)
            k.cmd("broker-errors 1 Produce NOT_ENOUGH_REPLICAS 4 200")

        ids = self.post_while(d, "ner", faults)
        self.assert_key_order(self.delivered(d, k, "events", ids))

    def test_high_broker_latency(self):
        k = self.cluster()
        for b in (1, 2, 3):
            k.cmd(f"rtt {b} 500")
        d = self.daemon(kafka_dest(k.bootstrap))
        evs = events("rtt", 0, 200)
        d.post_events(evs, batch=20)  # answered from the local log, whatever Kafka's latency
        self.assert_key_order(self.delivered(d, k, "events", support.message_ids(evs)))

    def test_event_over_message_max_bytes_is_dead_lettered(self):
        k = self.cluster()
        d = self.daemon(kafka_dest(k.bootstrap, extra="    message_max_bytes: 4KB"),
                        admin_extra=ADMIN_TOKEN)
        evs = events("big", 0, 30)
        evs[12]["properties"]["blob"] = "x" * 8000
        d.post_events(evs, batch=30)
        ok = support.message_ids(evs) - {"big-12"}
        msgs = self.delivered(d, k, "events", ok)
        self.assertNotIn("big-12", {m["headers"]["switchyard-message-id"] for m in msgs})

        def dead():
            st, doc = d.api("GET", "/v1/destinations/kafka/dead-letters", TOKEN)
            self.assertEqual(st, 200, doc)
            return doc if doc["total"] >= 1 else None

        doc = support.wait_until(dead, timeout=10, what="the large event dead-lettered")
        self.assertEqual(doc["total"], 1, doc)
        (e,) = doc["entries"]
        self.assertEqual(e["kind"], "rejected", e)
        self.assertEqual(e["message_id"], "big-12")
        self.assertIn("MSG_SIZE_TOO_LARGE", e["reason"], e)
        self.assertIn("message_max_bytes is 4000", e["reason"], e)
        self.assertRegex(e["reason"], r"the message is \d{4,} bytes", e)
        self.assertEqual(e["event"]["messageId"], "big-12")
        self.assertEqual(d.destination_stats("kafka", TOKEN)["healthy"], True)


if __name__ == "__main__":
    unittest.main()
