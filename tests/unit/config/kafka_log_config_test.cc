#include "config/config.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace switchyard::config {
namespace {

bool has(const errors& errs, std::string_view needle) {
    for (const auto& e : errs.list()) {
        if (e.find(needle) != std::string::npos) return true;
    }
    return false;
}

std::string all(const errors& errs) {
    std::string s;
    for (const auto& e : errs.list()) s += e + "\n";
    return s;
}

TEST(KafkaLogConfig, ReadsEveryKeyAndJoinsBrokers) {
    errors errs;
    auto c = load_string(R"(sources: [{name: s, write_keys: [k]}]
role: deliver
log:
  type: kafka
  kafka:
    brokers: [a:9092, "b:9092,c:9092"]
    topic: t
    key: message_id
    ack_timeout: 3s
    compression: zstd
    librdkafka:
      security.protocol: sasl_ssl
      session.timeout.ms: "6000"
)",
                         errs);
    ASSERT_TRUE(errs.empty()) << all(errs);
    EXPECT_EQ(c.role, "deliver");
    EXPECT_EQ(c.log.type, "kafka");
    EXPECT_EQ(c.log.kafka.bootstrap(), "a:9092,b:9092,c:9092");
    EXPECT_EQ(c.log.kafka.topic, "t");
    EXPECT_EQ(c.log.kafka.key, "message_id");
    EXPECT_EQ(c.log.kafka.ack_timeout.count(), 3000);
    ASSERT_EQ(c.log.kafka.librdkafka.size(), 2u);
    EXPECT_EQ(c.log.kafka.librdkafka[1].first, "session.timeout.ms");
    EXPECT_EQ(c.log.kafka.librdkafka[1].second, "6000");
}

TEST(KafkaLogConfig, AcceptsOneCommaSeparatedString) {
    errors errs;
    auto c = load_string(R"(sources: [{name: s, write_keys: [k]}]
log: {type: kafka, kafka: {brokers: "x:1,y:2"}}
)",
                         errs);
    ASSERT_TRUE(errs.empty()) << all(errs);
    EXPECT_EQ(c.log.kafka.bootstrap(), "x:1,y:2");
}

TEST(KafkaLogConfig, RefusesWhatWouldBreakItsGuarantees) {
    errors errs("k.yaml");
    load_string(R"(sources: [{name: s, write_keys: [k]}]
log:
  type: kafka
  kafka:
    compression: brotli
    key: session
    librdkafka:
      acks: "1"
      enable.idempotence: "false"
      no.such.property: x
      linger.ms: soon
destinations:
  - name: d
    type: file
    path: /tmp/x
    when_lagging: drop_oldest
    max_lag_events: 10
)",
                errs);
    EXPECT_TRUE(has(errs, "log.kafka.brokers: required")) << all(errs);
    EXPECT_TRUE(has(errs, "log.kafka.compression: 'brotli'")) << all(errs);
    EXPECT_TRUE(has(errs, "log.kafka.key: 'session'")) << all(errs);
    EXPECT_TRUE(has(errs, "k.yaml:8:13: log.kafka.librdkafka.acks: 'acks' is set by Switchyard"))
        << all(errs);
    EXPECT_TRUE(has(errs, "log.kafka.librdkafka.enable.idempotence")) << all(errs);
    EXPECT_TRUE(has(errs, "log.kafka.librdkafka.no.such.property: No such configuration property"))
        << all(errs);
    EXPECT_TRUE(has(errs, "log.kafka.librdkafka.linger.ms")) << all(errs);
    EXPECT_TRUE(has(errs, "drop_oldest is not available with log.type: kafka")) << all(errs);
}

TEST(KafkaLogConfig, RecordsMustFitInOneMessage) {
    errors errs;
    load_string(R"(sources: [{name: s, write_keys: [k]}]
log: {type: kafka, kafka: {brokers: "b:1", librdkafka: {message.max.bytes: "20000"}}}
)",
                errs);
    EXPECT_TRUE(has(errs, "message.max.bytes: 20000 is below the largest record")) << all(errs);
}

TEST(KafkaLogConfig, RolesNeedTheKafkaLog) {
    errors errs;
    auto c = load_string("sources: [{name: s, write_keys: [k]}]\nrole: collect\n", errs);
    EXPECT_TRUE(has(errs, "role: 'collect' needs log.type: kafka")) << all(errs);
    c.role = "everything";
    EXPECT_NE(check_role(c).find("is not all, collect or deliver"), std::string::npos);
    c.role = "all";
    EXPECT_EQ(check_role(c), "");
    errors e2;
    load_string("sources: [{name: s, write_keys: [k]}]\nlog: {type: remote}\n", e2);
    EXPECT_TRUE(has(e2, "log.type: 'remote' is not local or kafka")) << all(e2);
}

}  // namespace
}  // namespace switchyard::config
