#include "destinations/kafka/kafka_destination.h"

#include "config/config.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <map>
#include <set>

namespace switchyard::destinations {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Kafka protocol API keys (rdkafka_protocol.h is not installed).
constexpr std::int16_t api_produce = 0;
constexpr std::int16_t api_init_producer_id = 22;

// Events with their strings kept alive while the views point at them.
struct test_event {
    event_type type = event_type::track;
    std::string source = "web";
    std::string message_id;
    std::string user_id;
    std::string anonymous_id;
    std::string event_name;
    std::string json;

    event_view view() const {
        event_view v;
        v.type = type;
        v.source = source;
        v.message_id = message_id;
        v.user_id = user_id;
        v.anonymous_id = anonymous_id;
        v.event_name = event_name;
        v.json = json;
        return v;
    }
};

test_event track(std::string id, std::string user, std::string name = "Clicked",
                 std::size_t pad = 0) {
    test_event e;
    e.message_id = std::move(id);
    e.user_id = std::move(user);
    e.event_name = std::move(name);
    e.json = R"({"type":"track","event":")" + e.event_name + R"(","messageId":")" + e.message_id +
             R"(","userId":")" + e.user_id + R"(","pad":")" + std::string(pad, 'x') + "\"}";
    return e;
}

struct batch_of {
    std::vector<test_event> events;
    std::vector<delivery_item> items;
    explicit batch_of(std::vector<test_event> evs) : events(std::move(evs)) {
        for (std::size_t i = 0; i < events.size(); ++i) {
            items.push_back({i, events[i].view()});
        }
    }
};

std::string render(std::string_view tmpl, const test_event& e) {
    kafka_topic_template t;
    std::string err, out;
    EXPECT_TRUE(kafka_topic_template::parse(tmpl, t, err)) << tmpl << ": " << err;
    t.render(e.view(), out);
    return out;
}

std::string parse_error(std::string_view tmpl) {
    kafka_topic_template t;
    std::string err;
    EXPECT_FALSE(kafka_topic_template::parse(tmpl, t, err)) << tmpl;
    return err;
}

// --- templates and keys ----------------------------------------------------------------------

TEST(KafkaTopicTemplate, RendersPlaceholders) {
    auto e = track("m1", "u1", "Order Completed");
    e.source = "web";
    EXPECT_EQ(render("events", e), "events");
    EXPECT_EQ(render("events.{type}", e), "events.track");
    EXPECT_EQ(render("events.{source}", e), "events.web");
    EXPECT_EQ(render("{event}", e), "Order_Completed");
    EXPECT_EQ(render("{source}-{type}.{event}", e), "web-track.Order_Completed");

    auto id = track("m2", "u1", "");
    id.type = event_type::identify;
    EXPECT_EQ(render("{event}", id), "identify");  // no event name: the type
    EXPECT_EQ(render("x.{event}", id), "x.identify");
}

TEST(KafkaTopicTemplate, SanitisesAndCutsNames) {
    auto e = track("m1", "u1", "Ünïcode / slash: colon\tтаб");
    std::string got = render("{event}", e);
    for (char c : got) {
        EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')
            << got;
    }
    EXPECT_EQ(got.substr(0, 1), "_");

    e.event_name = std::string(300, 'a');
    EXPECT_EQ(render("t.{event}", e), "t." + std::string(247, 'a'));
    e.event_name = ".";
    EXPECT_EQ(render("{event}", e), "_.");
    e.event_name = "..";
    EXPECT_EQ(render("{event}", e), "_..");
    e.event_name = "a.b-c_D9";
    EXPECT_EQ(render("{event}", e), "a.b-c_D9");
}

TEST(KafkaTopicTemplate, RejectsBadTemplates) {
    EXPECT_NE(parse_error("events.{user}").find("unknown placeholder {user}"), std::string::npos);
    EXPECT_NE(parse_error("events.{type").find("unterminated placeholder"), std::string::npos);
    EXPECT_NE(parse_error("events}").find("'}' without '{'"), std::string::npos);
    EXPECT_NE(parse_error("my topic").find("' ' is not allowed"), std::string::npos);
    EXPECT_NE(parse_error("a/b").find("'/' is not allowed"), std::string::npos);
    EXPECT_NE(parse_error("").find("must not be empty"), std::string::npos);
    EXPECT_NE(parse_error("..").find("not valid"), std::string::npos);
    EXPECT_NE(parse_error(std::string(250, 'a')).find("at most 249"), std::string::npos);
    kafka_topic_template t;
    std::string err;
    EXPECT_TRUE(kafka_topic_template::parse(std::string(249, 'a'), t, err));
    EXPECT_TRUE(t.fixed());
    EXPECT_TRUE(kafka_topic_template::parse("a.{type}", t, err));
    EXPECT_FALSE(t.fixed());
}

TEST(KafkaKey, Modes) {
    test_event both = track("m1", "u1");
    both.anonymous_id = "a1";
    test_event anon = track("m2", "");
    anon.anonymous_id = "a2";
    test_event user = track("m3", "u3");

    auto key = [](kafka_key k, const test_event& e) {
        return std::string(kafka_message_key(k, e.view()));
    };
    EXPECT_EQ(key(kafka_key::user_id_or_anonymous_id, both), "u1");
    EXPECT_EQ(key(kafka_key::user_id_or_anonymous_id, anon), "a2");
    EXPECT_EQ(key(kafka_key::anonymous_id_or_user_id, both), "a1");
    EXPECT_EQ(key(kafka_key::anonymous_id_or_user_id, user), "u3");
    EXPECT_EQ(key(kafka_key::user_id, anon), "");
    EXPECT_EQ(key(kafka_key::anonymous_id, both), "a1");
    EXPECT_EQ(key(kafka_key::anonymous_id, user), "");
    EXPECT_EQ(key(kafka_key::message_id, both), "m1");
    EXPECT_EQ(key(kafka_key::none, both), "");

    kafka_key k;
    for (auto name : {"user_id_or_anonymous_id", "anonymous_id_or_user_id", "user_id",
                      "anonymous_id", "message_id", "none"}) {
        ASSERT_TRUE(parse_kafka_key(name, k)) << name;
        EXPECT_EQ(kafka_key_name(k), name);
    }
    EXPECT_FALSE(parse_kafka_key("userId", k));
}

// --- config ----------------------------------------------------------------------------------

std::unique_ptr<destination> from_yaml(const std::string& yaml, config::errors& errs) {
    YAML::Node n = YAML::Load(yaml);
    config::map_reader r(n, "destinations[0]", errs);
    return make_kafka_destination(r, destination_context{"kafka", "/tmp"});
}

std::string joined(const config::errors& errs) {
    std::string all;
    for (const auto& e : errs.list()) all += e + "\n";
    return all;
}

TEST(KafkaConfig, ReadsEverySetting) {
    ::setenv("KAFKA_TEST_PASSWORD", "s3cret", 1);
    config::errors errs;
    auto d = from_yaml(R"(
brokers: ["127.0.0.1:9092", "127.0.0.2:9092,127.0.0.3:9092"]
topic: "events.{type}"
topics_by_event:
  Order Completed: orders
  Signed Up: "signups.{source}"
key: anonymous_id_or_user_id
compression: zstd
linger: 20ms
batch_size: 512KiB
message_max_bytes: 2MiB
delivery_timeout: 45s
client_id: collector-1
librdkafka:
  security.protocol: sasl_ssl
  sasl.mechanisms: SCRAM-SHA-512
  sasl.username: switchyard
  sasl.password: "${KAFKA_TEST_PASSWORD}"
  socket.keepalive.enable: true
)",
                       errs);
    ASSERT_TRUE(errs.empty()) << joined(errs);
    ASSERT_NE(d, nullptr);
    auto* k = dynamic_cast<kafka_destination*>(d.get());
    ASSERT_NE(k, nullptr);
    const auto& o = k->options();
    EXPECT_EQ(o.brokers.size(), 2u);
    EXPECT_EQ(o.topic.text(), "events.{type}");
    EXPECT_EQ(o.topics_by_event.size(), 2u);
    EXPECT_EQ(o.key, kafka_key::anonymous_id_or_user_id);
    EXPECT_EQ(o.compression, "zstd");
    EXPECT_EQ(o.linger, 20ms);
    EXPECT_EQ(o.batch_size, 512u * 1024);
    EXPECT_EQ(o.message_max_bytes, 2u * 1024 * 1024);
    EXPECT_EQ(o.delivery_timeout, 45s);
    EXPECT_EQ(o.client_id, "collector-1");
    EXPECT_EQ(o.name, "kafka");
    std::map<std::string, std::string> props(o.librdkafka.begin(), o.librdkafka.end());
    EXPECT_EQ(props["sasl.password"], "s3cret");
    EXPECT_EQ(props["security.protocol"], "sasl_ssl");

    // Topic selection.
    std::string topic;
    auto oc = track("m", "u", "Order Completed");
    k->topic_for(oc.view(), topic);
    EXPECT_EQ(topic, "orders");
    auto su = track("m", "u", "Signed Up");
    su.source = "backend";
    k->topic_for(su.view(), topic);
    EXPECT_EQ(topic, "signups.backend");
    auto other = track("m", "u", "Clicked");
    k->topic_for(other.view(), topic);
    EXPECT_EQ(topic, "events.track");
    auto page = track("m", "u", "Order Completed");
    page.type = event_type::page;  // matched by name whatever the type
    k->topic_for(page.view(), topic);
    EXPECT_EQ(topic, "orders");
}

TEST(KafkaConfig, DefaultsAreSafe) {
    config::errors errs;
    // brokers may also be one comma-separated string.
    auto d = from_yaml("brokers: \"127.0.0.1:9092,127.0.0.2:9092\"\ntopic: events\n", errs);
    ASSERT_TRUE(errs.empty()) << joined(errs);
    auto* k = dynamic_cast<kafka_destination*>(d.get());
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->options().brokers, std::vector<std::string>{"127.0.0.1:9092,127.0.0.2:9092"});
    EXPECT_EQ(k->options().key, kafka_key::user_id_or_anonymous_id);
    EXPECT_EQ(k->options().compression, "lz4");
    EXPECT_EQ(k->options().linger, 5ms);
    EXPECT_EQ(k->options().message_max_bytes, 1000000u);
    EXPECT_EQ(k->options().delivery_timeout, 30s);
    EXPECT_TRUE(k->healthy());
}

TEST(KafkaConfig, ReportsAllErrorsWithPositions) {
    config::errors errs;
    auto d = from_yaml(R"(brokers: ["bad host:1"]
topic: "events.{user}"
topics_by_event:
  Clicked: "a b"
key: userId
compression: brotli
linger: 0s
delivery_timeout: 0s
librdkafka:
  acks: "1"
  enable.idempotence: false
  linger.ms: 5
  no.such.property: x
  socket.timeout.ms: lots
bogus: 1
)",
                       errs);
    EXPECT_EQ(d, nullptr);
    std::string all = joined(errs);
    for (const char* want : {
             "destinations[0].brokers[0]: 'bad host:1' is not a host:port list",
             "<config>:2:8: destinations[0].topic: unknown placeholder {user} (known: {type}, "
             "{source}, {event})",
             "<config>:4:12: destinations[0].topics_by_event.Clicked: ' ' is not allowed",
             "<config>:5:6: destinations[0].key: must be user_id_or_anonymous_id",
             "<config>:6:14: destinations[0].compression: must be none, gzip, snappy, lz4 or zstd",
             "destinations[0].delivery_timeout: must be positive",
             "<config>:10:3: destinations[0].librdkafka.acks: always enable.idempotence=true and "
             "acks=all",
             "<config>:11:3: destinations[0].librdkafka.enable.idempotence: always",
             "destinations[0].librdkafka.linger.ms: set it with the destination's `linger` key",
             "<config>:13:3: destinations[0].librdkafka.no.such.property: unknown librdkafka "
             "property",
             "<config>:14:22: destinations[0].librdkafka.socket.timeout.ms: Invalid value",
             "destinations[0]: unknown key 'bogus'",
         }) {
        EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << all;
    }
    EXPECT_EQ(errs.list().size(), 12u) << all;
}

TEST(KafkaConfig, BrokersAndTopicAreRequired) {
    config::errors errs;
    EXPECT_EQ(from_yaml("key: none\n", errs), nullptr);
    std::string all = joined(errs);
    EXPECT_NE(all.find("destinations[0].brokers: required key is missing"), std::string::npos)
        << all;
    EXPECT_NE(all.find("destinations[0].topic: required key is missing"), std::string::npos) << all;
    EXPECT_EQ(errs.list().size(), 2u) << all;
}

// Combinations librdkafka only refuses when a client is created are still config errors.
TEST(KafkaConfig, InconsistentPropertiesFailAtConfigTime) {
    {
        config::errors errs;
        EXPECT_EQ(from_yaml(R"(brokers: ["127.0.0.1:9092"]
topic: events
librdkafka: {max.in.flight.requests.per.connection: 10}
)",
                            errs),
                  nullptr);
        ASSERT_EQ(errs.list().size(), 1u) << joined(errs);
        EXPECT_NE(errs.list()[0].find("max.in.flight"), std::string::npos) << joined(errs);
    }
    {
        config::errors errs;
        EXPECT_EQ(from_yaml(R"(brokers: ["127.0.0.1:9092"]
topic: events
librdkafka:
  security.protocol: ssl
  ssl.ca.location: /nonexistent/ca.pem
)",
                            errs),
                  nullptr);
        ASSERT_EQ(errs.list().size(), 1u) << joined(errs);
        EXPECT_NE(errs.list()[0].find("ssl.ca.location"), std::string::npos) << joined(errs);
    }
}

fs::path source_dir() {
    if (const char* src = std::getenv("SWITCHYARD_SOURCE_DIR"); src != nullptr && *src != '\0') {
        return src;
    }
    // tests/unit/destinations/this_file.cc -> the repository
    return fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path();
}

// What `switchyard check -c config/examples/kafka.yaml` does for this destination.
TEST(KafkaConfig, ExampleConfigIsValid) {
    ::setenv("WEBSITE_WRITE_KEY", "wk-website", 0);
    ::setenv("BACKEND_WRITE_KEY", "wk-backend", 0);
    const fs::path file = source_dir() / "config" / "examples" / "kafka.yaml";
    config::errors errs(file.string());
    auto cfg = config::load_file(file.string(), errs);
    ASSERT_TRUE(errs.empty()) << joined(errs);
    std::size_t kafkas = 0;
    for (std::size_t i = 0; i < cfg.destinations.size(); ++i) {
        const auto& d = cfg.destinations[i];
        if (d.type != "kafka") continue;
        config::map_reader settings(d.settings, "destinations[" + std::to_string(i) + "]", errs);
        for (const auto& k : d.core_keys) settings.consume(k);
        EXPECT_NE(make_kafka_destination(settings, {d.name, "/tmp"}), nullptr);
        ++kafkas;
    }
    EXPECT_TRUE(errs.empty()) << joined(errs);
    EXPECT_GE(kafkas, 1u);
}

TEST(KafkaConfig, DescribeModeDocumentsKeys) {
    config::errors errs;
    config::key_catalog catalog;
    config::map_reader r(YAML::Node(), "d", errs, &catalog);
    EXPECT_EQ(make_kafka_destination(r, {}), nullptr);
    std::vector<std::string> keys;
    for (const auto& k : catalog.keys()) keys.push_back(k.path);
    EXPECT_EQ(keys, (std::vector<std::string>{"d.brokers", "d.topic", "d.topics_by_event", "d.key",
                                              "d.compression", "d.linger", "d.batch_size",
                                              "d.message_max_bytes", "d.delivery_timeout",
                                              "d.client_id", "d.librdkafka"}));
    EXPECT_TRUE(errs.empty()) << joined(errs);
}

TEST(KafkaConfig, ReservedProperties) {
    for (auto p : {"acks", "request.required.acks", "enable.idempotence", "bootstrap.servers",
                   "compression.type", "message.timeout.ms", "transactional.id", "log.queue"}) {
        EXPECT_FALSE(kafka_reserved_property(p).empty()) << p;
    }
    for (auto p : {"security.protocol", "sasl.username", "ssl.ca.location", "partitioner",
                   "max.in.flight.requests.per.connection"}) {
        EXPECT_TRUE(kafka_reserved_property(p).empty()) << p;
    }
}

// --- against librdkafka's mock cluster ----------------------------------------------------------

// A mock cluster of `brokers` brokers in this process, with a consumer to read topics back.
class mock_cluster {
  public:
    explicit mock_cluster(int brokers = 3) {
        char err[512];
        rd_kafka_conf_t* c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
        handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
        mc_ = rd_kafka_mock_cluster_new(handle_, brokers);
        bootstrap_ = rd_kafka_mock_cluster_bootstraps(mc_);
    }
    ~mock_cluster() {
        rd_kafka_mock_cluster_destroy(mc_);
        rd_kafka_destroy(handle_);
    }
    mock_cluster(const mock_cluster&) = delete;
    mock_cluster& operator=(const mock_cluster&) = delete;

    rd_kafka_mock_cluster_t* get() { return mc_; }
    const std::string& bootstrap() const { return bootstrap_; }
    void topic(const std::string& name, int partitions) {
        ASSERT_EQ(rd_kafka_mock_topic_create(mc_, name.c_str(), partitions, 3),
                  RD_KAFKA_RESP_ERR_NO_ERROR);
        partitions_[name] = partitions;
    }

    struct message {
        std::string topic;
        int partition = 0;
        std::int64_t offset = 0;
        std::string key;
        bool has_key = false;
        std::map<std::string, std::string> headers;
        std::string value;
    };

    // Reads every message of `topics` from the beginning until `want` distinct message ids
    // arrived (or 20 s passed); duplicates are returned too.
    std::vector<message> consume(const std::vector<std::string>& topics, std::size_t want) {
        char err[512];
        rd_kafka_conf_t* c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
        rd_kafka_conf_set(c, "group.id", "test-reader", err, sizeof err);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
        rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
        rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
        rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(8);
        for (const auto& t : topics) {
            for (int p = 0; p < partitions_[t]; ++p) {
                rd_kafka_topic_partition_list_add(parts, t.c_str(), p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
            }
        }
        rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        std::vector<message> out;
        std::set<std::string> ids;
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (ids.size() < want && std::chrono::steady_clock::now() < deadline) {
            rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
            if (m == nullptr) continue;
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                message msg;
                msg.topic = rd_kafka_topic_name(m->rkt);
                msg.partition = m->partition;
                msg.offset = m->offset;
                msg.has_key = m->key != nullptr;
                if (m->key) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
                msg.value.assign(static_cast<const char*>(m->payload), m->len);
                rd_kafka_headers_t* h = nullptr;
                if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                    const char* name;
                    const void* val;
                    size_t size;
                    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &size) ==
                                       RD_KAFKA_RESP_ERR_NO_ERROR;
                         ++i) {
                        msg.headers[name] = std::string(static_cast<const char*>(val), size);
                    }
                }
                if (auto it = msg.headers.find("switchyard-message-id"); it != msg.headers.end()) {
                    ids.insert(it->second);
                }
                out.push_back(std::move(msg));
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return out;
    }

  private:
    rd_kafka_t* handle_ = nullptr;
    rd_kafka_mock_cluster_t* mc_ = nullptr;
    std::string bootstrap_;
    std::map<std::string, int> partitions_;
};

kafka_destination_options mock_options(const mock_cluster& mc, std::string topic = "events") {
    kafka_destination_options o;
    o.name = "test";
    o.brokers = {mc.bootstrap()};
    std::string err;
    EXPECT_TRUE(kafka_topic_template::parse(topic, o.topic, err)) << err;
    o.linger = 1ms;
    o.delivery_timeout = 10s;
    return o;
}

std::unique_ptr<kafka_destination> make(kafka_destination_options o) {
    std::string err;
    auto d = kafka_destination::create(std::move(o), err);
    EXPECT_NE(d, nullptr) << err;
    return d;
}

// Events of `users` users, interleaved: e-0 (u0), e-1 (u1), ...
std::vector<test_event> interleaved(std::size_t n, std::size_t users, std::size_t first = 0) {
    std::vector<test_event> out;
    for (std::size_t i = first; i < first + n; ++i) {
        auto e = track("e-" + std::to_string(i), "u" + std::to_string(i % users),
                       i % 2 ? "Signed Up" : "Clicked");
        e.source = i % 3 ? "web" : "backend";
        if (i % 5 == 0) {
            e.user_id.clear();
            e.anonymous_id = "anon" + std::to_string(i % users);
        }
        out.push_back(std::move(e));
    }
    return out;
}

std::size_t index_of(const std::string& message_id) {
    return std::stoul(message_id.substr(message_id.find('-') + 1));
}

// Every message id of `events` arrived; for each key, the first arrivals are in send order.
void expect_all_in_key_order(const std::vector<mock_cluster::message>& got,
                             const std::vector<test_event>& events) {
    std::set<std::string> seen;
    std::map<std::string, std::size_t> last_by_key;
    std::map<std::string, std::vector<std::size_t>> positions;  // (topic, partition) -> indexes
    for (const auto& m : got) {
        const std::string id = m.headers.at("switchyard-message-id");
        if (!seen.insert(id).second) continue;  // a duplicate from a retry
        const std::size_t idx = index_of(id);
        auto [it, fresh] = last_by_key.emplace(m.key, idx);
        if (!fresh) {
            EXPECT_GT(idx, it->second) << "key " << m.key << " out of order at " << id;
            it->second = idx;
        }
    }
    for (const auto& e : events) EXPECT_TRUE(seen.contains(e.message_id)) << e.message_id;
}

TEST(KafkaDestination, DeliversTopicsKeysHeadersAndValues) {
    mock_cluster mc;
    mc.topic("events.track", 4);
    mc.topic("events.identify", 2);
    auto o = mock_options(mc, "events.{type}");
    auto d = make(std::move(o));
    ASSERT_NE(d, nullptr);

    auto evs = interleaved(40, 7);
    test_event id;
    id.type = event_type::identify;
    id.message_id = "e-40";
    id.user_id = "u-identify";
    id.json = R"({"type":"identify","userId":"u-identify","messageId":"e-40"})";
    evs.push_back(id);
    batch_of b(evs);
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    EXPECT_TRUE(out.rejected_items.empty());
    EXPECT_TRUE(d->healthy());

    auto got = mc.consume({"events.track", "events.identify"}, evs.size());
    ASSERT_EQ(got.size(), evs.size());
    std::map<std::string, const mock_cluster::message*> by_id;
    std::map<std::string, std::set<int>> partitions_of_key;
    for (const auto& m : got) {
        by_id[m.headers.at("switchyard-message-id")] = &m;
        partitions_of_key[m.key].insert(m.partition);
    }
    for (const auto& e : evs) {
        ASSERT_TRUE(by_id.contains(e.message_id)) << e.message_id;
        const auto& m = *by_id[e.message_id];
        EXPECT_EQ(m.topic, e.type == event_type::track ? "events.track" : "events.identify");
        EXPECT_EQ(m.value, e.json);
        EXPECT_TRUE(m.has_key);
        EXPECT_EQ(m.key, e.user_id.empty() ? e.anonymous_id : e.user_id);
        EXPECT_EQ(m.headers.at("switchyard-source"), e.source);
        EXPECT_EQ(m.headers.at("switchyard-type"), std::string(to_string(e.type)));
        if (e.event_name.empty()) {
            EXPECT_FALSE(m.headers.contains("switchyard-event"));
        } else {
            EXPECT_EQ(m.headers.at("switchyard-event"), e.event_name);
        }
    }
    for (const auto& [key, parts] : partitions_of_key) {
        EXPECT_EQ(parts.size(), 1u) << "key " << key << " spread over partitions";
    }
    expect_all_in_key_order(got, evs);
    d->close();
}

TEST(KafkaDestination, TopicsByEventAndKeyModes) {
    mock_cluster mc;
    mc.topic("clicks", 1);
    mc.topic("Signed_Up", 1);
    auto o = mock_options(mc, "{event}");
    std::string err;
    ASSERT_TRUE(kafka_topic_template::parse("clicks", o.topics_by_event["Clicked"], err));
    o.key = kafka_key::none;
    auto d = make(std::move(o));
    batch_of b(interleaved(6, 2));
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    auto got = mc.consume({"clicks", "Signed_Up"}, 6);
    ASSERT_EQ(got.size(), 6u);
    for (const auto& m : got) {
        EXPECT_FALSE(m.has_key);
        EXPECT_EQ(m.topic, m.headers.at("switchyard-event") == "Clicked" ? "clicks" : "Signed_Up");
    }
}

TEST(KafkaDestination, OrderIsKeptPerKeyAcrossBatches) {
    mock_cluster mc;
    mc.topic("events", 4);
    auto d = make(mock_options(mc));
    std::vector<test_event> all;
    for (std::size_t first = 0; first < 2000; first += 500) {
        batch_of b(interleaved(500, 13, first));
        auto out = d->send(b.items);
        ASSERT_EQ(out.status, send_status::delivered) << out.reason;
        all.insert(all.end(), b.events.begin(), b.events.end());
    }
    auto got = mc.consume({"events"}, all.size());
    EXPECT_EQ(got.size(), all.size());
    expect_all_in_key_order(got, all);
}

TEST(KafkaDestination, MessageTooLargeIsRejectedWithTheSize) {
    mock_cluster mc;
    mc.topic("events", 2);
    auto o = mock_options(mc);
    o.message_max_bytes = 2000;
    auto d = make(std::move(o));
    std::vector<test_event> evs = interleaved(5, 2);
    evs[2] = track("e-2", "u0", "Clicked", 5000);
    batch_of b(evs);
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    ASSERT_EQ(out.rejected_items.size(), 1u);
    EXPECT_EQ(out.rejected_items[0].first, 2u);
    const std::string& why = out.rejected_items[0].second;
    EXPECT_NE(why.find("MSG_SIZE_TOO_LARGE"), std::string::npos) << why;
    EXPECT_NE(why.find("message_max_bytes is 2000"), std::string::npos) << why;
    EXPECT_NE(why.find(fmt::format("event JSON {} bytes", evs[2].json.size())), std::string::npos)
        << why;
    EXPECT_TRUE(d->healthy());
    auto got = mc.consume({"events"}, 4);
    EXPECT_EQ(got.size(), 4u);
    for (const auto& m : got) EXPECT_NE(m.headers.at("switchyard-message-id"), "e-2");
}

TEST(KafkaDestination, PushedProduceErrorsAreRetriedWithoutLoss) {
    for (auto code : {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT}) {
        SCOPED_TRACE(rd_kafka_err2name(code));
        mock_cluster mc;
        mc.topic("events", 3);
        auto o = mock_options(mc);
        o.delivery_timeout = 5s;
        auto d = make(std::move(o));
        // Warm up (producer id, metadata) so the errors hit Produce requests.
        batch_of warm({track("e-0", "u0")});
        ASSERT_EQ(d->send(warm.items).status, send_status::delivered);
        rd_kafka_mock_push_request_errors(mc.get(), api_produce, 4, code, code, code, code);
        std::vector<test_event> all = warm.events;
        for (std::size_t first = 1; first < 301; first += 100) {
            batch_of b(interleaved(100, 5, first));
            send_outcome out;
            int attempts = 0;
            do {  // what the delivery engine does: the same batch again until delivered
                out = d->send(b.items);
                ASSERT_NE(out.status, send_status::reject) << out.reason;
            } while (out.status == send_status::retry && ++attempts < 5);
            ASSERT_EQ(out.status, send_status::delivered) << out.reason;
            EXPECT_TRUE(out.rejected_items.empty());
            all.insert(all.end(), b.events.begin(), b.events.end());
        }
        auto got = mc.consume({"events"}, all.size());
        expect_all_in_key_order(got, all);
    }
}

TEST(KafkaDestination, BrokersDownRetriesThenDeliversWhenBack) {
    mock_cluster mc;
    mc.topic("events", 4);
    auto o = mock_options(mc);
    o.delivery_timeout = 2s;
    auto d = make(std::move(o));
    batch_of first(interleaved(20, 4));
    ASSERT_EQ(d->send(first.items).status, send_status::delivered);

    for (int b = 1; b <= 3; ++b) rd_kafka_mock_broker_set_down(mc.get(), b);
    batch_of second(interleaved(20, 4, 20));
    const auto t0 = std::chrono::steady_clock::now();
    auto out = d->send(second.items);
    EXPECT_EQ(out.status, send_status::retry) << out.reason;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s + 6s);  // delivery_timeout + grace
    EXPECT_FALSE(d->healthy());
    EXPECT_NE(out.reason.find("of 20 messages not delivered"), std::string::npos) << out.reason;

    for (int b = 1; b <= 3; ++b) rd_kafka_mock_broker_set_up(mc.get(), b);
    int attempts = 0;
    do {
        out = d->send(second.items);
    } while (out.status == send_status::retry && ++attempts < 5);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    EXPECT_TRUE(d->healthy());

    std::vector<test_event> all = first.events;
    all.insert(all.end(), second.events.begin(), second.events.end());
    auto got = mc.consume({"events"}, all.size());
    expect_all_in_key_order(got, all);
}

TEST(KafkaDestination, FatalProducerErrorRebuildsTheProducer) {
    mock_cluster mc;
    mc.topic("events", 2);
    auto o = mock_options(mc);
    o.delivery_timeout = 3s;
    auto d = make(std::move(o));
    // The idempotent producer cannot get its producer id: a fatal error.
    rd_kafka_mock_push_request_errors(mc.get(), api_init_producer_id, 1,
                                      RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
    batch_of b(interleaved(10, 3));
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry) << out.reason;
    int attempts = 0;
    while (out.status == send_status::retry && ++attempts < 5) out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    auto got = mc.consume({"events"}, 10);
    expect_all_in_key_order(got, b.events);
}

TEST(KafkaDestination, UnreachableBrokersRetryAndCloseIsBounded) {
    kafka_destination_options o;
    o.name = "test";
    o.brokers = {"127.0.0.1:1"};  // nothing listens there
    std::string err;
    ASSERT_TRUE(kafka_topic_template::parse("events", o.topic, err));
    o.delivery_timeout = 1s;
    auto d = make(std::move(o));
    batch_of b(interleaved(3, 1));
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_NE(out.reason.find("3 of 3 messages not delivered"), std::string::npos) << out.reason;
    EXPECT_FALSE(d->healthy());
    const auto t0 = std::chrono::steady_clock::now();
    d->close();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(KafkaDestination, MissingTopicIsRejected) {
    mock_cluster mc;
    mc.topic("events", 2);
    rd_kafka_mock_topic_set_error(mc.get(), "missing", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    auto o = mock_options(mc, "events");
    o.delivery_timeout = 3s;  // the topic is given up on after half of it
    std::string err;
    ASSERT_TRUE(kafka_topic_template::parse("missing", o.topics_by_event["Signed Up"], err));
    auto d = make(std::move(o));
    batch_of b(interleaved(4, 2));  // e-1 and e-3 are "Signed Up"
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    ASSERT_EQ(out.rejected_items.size(), 2u);
    EXPECT_EQ(out.rejected_items[0].first, 1u);
    EXPECT_EQ(out.rejected_items[1].first, 3u);
    EXPECT_NE(out.rejected_items[0].second.find("UNKNOWN_TOPIC"), std::string::npos)
        << out.rejected_items[0].second;
    EXPECT_NE(out.rejected_items[0].second.find("topic missing"), std::string::npos)
        << out.rejected_items[0].second;
    EXPECT_EQ(mc.consume({"events"}, 2).size(), 2u);
}

TEST(KafkaDestination, TopicAuthorizationFailureIsRejected) {
    mock_cluster mc;
    mc.topic("events", 1);
    auto d = make(mock_options(mc));
    batch_of warm({track("e-0", "u0")});
    ASSERT_EQ(d->send(warm.items).status, send_status::delivered);
    rd_kafka_mock_push_request_errors(mc.get(), api_produce, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    batch_of b(interleaved(3, 1, 1));
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    ASSERT_EQ(out.rejected_items.size(), 3u);  // one produce request held them all
    EXPECT_NE(out.rejected_items[0].second.find("TOPIC_AUTHORIZATION_FAILED"), std::string::npos)
        << out.rejected_items[0].second;
}

// Not a benchmark: prints what send() manages against the in-process mock, for the report.
TEST(KafkaDestination, ThroughputAgainstTheMock) {
    mock_cluster mc;
    mc.topic("events", 4);
    auto d = make(mock_options(mc));
    const std::size_t batches = 40, per = 500;
    std::vector<batch_of> bs;
    for (std::size_t i = 0; i < batches; ++i) bs.emplace_back(interleaved(per, 97, i * per));
    batch_of warm({track("w-0", "u0")});  // connections, producer id and metadata first
    ASSERT_EQ(d->send(warm.items).status, send_status::delivered);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& b : bs) ASSERT_EQ(d->send(b.items).status, send_status::delivered);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[kafka] %zu events in batches of %zu: %.0f events/s\n", batches * per, per,
                static_cast<double>(batches * per) / secs);
}

}  // namespace
}  // namespace switchyard::destinations
