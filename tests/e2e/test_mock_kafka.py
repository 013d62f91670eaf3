"""The mock Kafka cluster used by Kafka tests (tests/support/mock_kafka, a librdkafka mock cluster
driven over stdin) works end to end with a real client (kcat): produce/consume with keys, broker
down/up, command errors, and injected Produce errors as a producer sees them. No daemon needed."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from mock_kafka import MockKafka, consume, kcat_available, produce  # noqa: E402

TOPIC = "events"


@unittest.skipUnless(kcat_available(), "kcat not installed")
class MockKafkaTest(unittest.TestCase):
    def setUp(self):
        self.k = MockKafka(brokers=3, topics=(f"{TOPIC}:4",))
        self.addCleanup(self.k.close)

    def kcat_produce(self, values, key="k", extra=()):
        """kcat -P without raising: (returncode, stderr text)."""
        args = ["kcat", "-P", "-b", self.k.bootstrap, "-t", TOPIC, "-k", key, *extra]
        p = subprocess.run(args, input="".join(v + "\n" for v in values).encode(),
                           capture_output=True, timeout=60)
        return p.returncode, p.stderr.decode(errors="replace")

    def test_bootstrap_lists_every_broker(self):
        hosts = self.k.bootstrap.split(",")
        self.assertEqual(len(hosts), 3)
        for h in hosts:
            self.assertRegex(h, r"^127\.0\.0\.1:\d+$")
        self.assertEqual(self.k.cmd("bootstrap"), self.k.bootstrap)

    def test_keyed_messages_round_trip_in_order_per_key(self):
        keys = [f"user-{i}" for i in range(10)]
        items = [(keys[i % 10], f"{keys[i % 10]}#{i // 10}") for i in range(100)]
        produce(self.k.bootstrap, TOPIC, items)
        msgs = consume(self.k.bootstrap, TOPIC, expect=100)
        self.assertEqual(len(msgs), 100, msgs[:5])
        self.assertEqual({m["topic"] for m in msgs}, {TOPIC})
        self.assertEqual(sorted(m["value"] for m in msgs), sorted(v for _, v in items))
        partitions = {}
        for m in msgs:
            self.assertTrue(m["value"].startswith(m["key"] + "#"), m)
            self.assertEqual(m["headers"], {})
            partitions.setdefault(m["key"], set()).add(m["partition"])
        for key, parts in partitions.items():
            self.assertEqual(len(parts), 1, f"{key} spread over partitions {parts}")
        self.assertGreater(len({p for s in partitions.values() for p in s}), 1)
        for key in keys:
            seq = [int(m["value"].split("#")[1])
                   for m in sorted((m for m in msgs if m["key"] == key), key=lambda m: m["offset"])]
            self.assertEqual(seq, list(range(10)), key)

    def test_broker_down_up_round_trip(self):
        self.assertEqual(self.k.cmd("down 1"), "")
        self.assertEqual(self.k.cmd("up 1"), "")
        self.assertEqual(self.k.cmd("rtt 2 0"), "")
        with self.assertRaisesRegex(RuntimeError, "bad broker id"):
            self.k.cmd("down 7")
        produce(self.k.bootstrap, TOPIC, ["after-up"], key="a")
        self.assertEqual([m["value"] for m in consume(self.k.bootstrap, TOPIC, expect=1)],
                         ["after-up"])

    def test_bad_commands_answer_error_and_keep_serving(self):
        for bad in ("frobnicate", "errors Produce NO_SUCH_ERROR 1", "errors NoSuchApi 7 1",
                    "topic", "leader events x 1", "coordinator cluster g 1"):
            with self.assertRaisesRegex(RuntimeError, "error"):
                self.k.cmd(bad)
        self.assertEqual(self.k.cmd("bootstrap"), self.k.bootstrap)
        self.assertEqual(self.k.cmd("errors 0 10 1"), "")  # numbers work for api and error
        self.assertEqual(self.k.cmd("clear Produce"), "")
        self.assertIsNone(self.k.proc.poll())

    def test_pushed_produce_error_fails_delivery_once(self):
        # MSG_SIZE_TOO_LARGE is not retriable: the one Produce request it hits fails its messages.
        self.k.cmd("errors Produce MSG_SIZE_TOO_LARGE 1")
        rc, err = self.kcat_produce(["doomed"])
        self.assertNotEqual(rc, 0)
        self.assertIn("Delivery failed", err)
        self.assertIn("Message size too large", err)
        # The error was used up: the next request goes through.
        rc, err = self.kcat_produce(["fine"])
        self.assertEqual(rc, 0, err)
        self.assertEqual([m["value"] for m in consume(self.k.bootstrap, TOPIC, expect=1)], ["fine"])

    def test_retriable_produce_errors_are_retried_without_duplicates(self):
        self.k.cmd("errors Produce NOT_ENOUGH_REPLICAS 2")
        rc, err = self.kcat_produce(["retried"])
        self.assertEqual(rc, 0, err)
        self.assertEqual([m["value"] for m in consume(self.k.bootstrap, TOPIC, expect=1)],
                         ["retried"])
        # With retries off, the same error is a delivery failure.
        self.k.cmd("errors Produce NOT_ENOUGH_REPLICAS 1")
        rc, err = self.kcat_produce(["once"], extra=("-X", "message.send.max.retries=0"))
        self.assertNotEqual(rc, 0)
        self.assertIn("Not enough in-sync replicas", err)

    def test_quit_exits_zero(self):
        self.assertEqual(self.k.cmd("quit"), "")
        self.assertEqual(self.k.proc.wait(10), 0)


if __name__ == "__main__":
    unittest.main()
