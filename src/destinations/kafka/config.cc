#include "destinations/kafka/kafka_destination.h"

#include <fmt/format.h>

#include <algorithm>
#include <librdkafka/rdkafka.h>

namespace switchyard::destinations {
namespace {

bool has_space(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

}  // namespace

std::unique_ptr<destination> make_kafka_destination(config::map_reader& settings,
                                                    const destination_context& ctx) {
    const std::size_t errors_before = settings.errs().list().size();
    auto& errs = settings.errs();
    const bool check = !settings.describing();
    kafka_destination_options o;
    o.name = ctx.name;

    const char* brokers_doc =
        "Bootstrap brokers, host:port (required): a list, or one comma-separated string (e.g. "
        "\"${KAFKA_BROKERS}\"); a list entry may also hold several, comma-separated.";
    settings.get_strings_or_string("brokers", o.brokers, brokers_doc);
    if (check && !settings.has("brokers")) {
        errs.add(settings.mark(), settings.key_path("brokers") + ": required key is missing");
    }
    std::string topic;
    settings.require("topic", topic,
                     "Topic of every event (the fallback of topics_by_event): a fixed name or a "
                     "template with {type}, {source} and {event} (the event name, or the type for "
                     "identify/group/alias), e.g. \"events.{type}\". Placeholder values are "
                     "sanitised to [a-zA-Z0-9._-] and the name is cut to 249 characters.");
    auto by_event = settings.child(
        "topics_by_event",
        "Event name (exact) -> topic (a name or a template, as for topic); events not listed go "
        "to topic.");
    if (const YAML::Node n = by_event.node(); n && !n.IsNull() && !n.IsMap()) {
        errs.add(n.Mark(), settings.key_path("topics_by_event") +
                               ": expected a mapping of event name to topic");
    } else if (n && n.IsMap()) {
        for (const auto& kv : n) {
            const std::string name = kv.first.as<std::string>("");
            by_event.consume(name);
            const std::string where = by_event.key_path(name);
            std::string value, err;
            if (!config::parse_scalar(kv.second, value, err)) {
                errs.add(kv.second.Mark(), where + ": " + err);
                continue;
            }
            kafka_topic_template t;
            if (!kafka_topic_template::parse(value, t, err)) {
                errs.add(kv.second.Mark(), where + ": " + err);
                continue;
            }
            o.topics_by_event.emplace(name, std::move(t));
        }
    }
    by_event.finish();

    std::string key = "user_id_or_anonymous_id";
    settings.get("key", key,
                 "Message key, which picks the partition: user_id_or_anonymous_id (userId, else "
                 "anonymousId), anonymous_id_or_user_id, user_id, anonymous_id, message_id or "
                 "none. Events without the chosen id have no key and are spread over partitions.");
    settings.get("compression", o.compression,
                 "Compression of produce batches: none, gzip, snappy, lz4 or zstd.");
    config::duration linger = o.linger;
    settings.get("linger", linger,
                 "How long the producer waits to fill a batch (linger.ms); 0 sends at once.");
    config::byte_size batch_size{o.batch_size};
    settings.get("batch_size", batch_size,
                 "Largest produce batch per partition, in bytes (batch.size).");
    config::byte_size message_max_bytes{o.message_max_bytes};
    settings.get("message_max_bytes", message_max_bytes,
                 "Largest message (event JSON, key and headers; message.max.bytes). A larger "
                 "event is dead-lettered with its size. Keep it at or below the topic's "
                 "max.message.bytes.");
    config::duration delivery_timeout = o.delivery_timeout;
    settings.get("delivery_timeout", delivery_timeout,
                 "How long librdkafka keeps trying to deliver a message (message.timeout.ms); a "
                 "batch not delivered by then is retried by the delivery engine. Bounds one send "
                 "and so how long a shutdown can wait.");
    settings.get("client_id", o.client_id, "client.id reported to the brokers.");

    auto extra = settings.child(
        "librdkafka",
        "Extra librdkafka producer properties, name: value (values may use ${VAR}), e.g. "
        "security.protocol, sasl.mechanisms, sasl.username, sasl.password, ssl.ca.location. "
        "Each is checked by librdkafka at config time. enable.idempotence and acks are always "
        "true and all and cannot be set; properties with a key of their own (bootstrap.servers, "
        "compression.codec, linger.ms, batch.size, message.max.bytes, message.timeout.ms, "
        "client.id) must use that key.");
    if (const YAML::Node n = extra.node(); n && !n.IsNull() && !n.IsMap()) {
        errs.add(n.Mark(), settings.key_path("librdkafka") +
                               ": expected a mapping of librdkafka property to value");
    } else if (n && n.IsMap()) {
        for (const auto& kv : n) {
            const std::string name = kv.first.as<std::string>("");
            extra.consume(name);
            const std::string where = extra.key_path(name);
            std::string value, err;
            if (!config::parse_scalar(kv.second, value, err)) {
                errs.add(kv.second.Mark(), where + ": " + err);
                continue;
            }
            if (std::string why = kafka_reserved_property(name); !why.empty()) {
                errs.add(kv.first.Mark(), where + ": " + why);
                continue;
            }
            // Each property alone, so the error points at its own line.
            char buf[512];
            rd_kafka_conf_t* c = rd_kafka_conf_new();
            const auto res = rd_kafka_conf_set(c, name.c_str(), value.c_str(), buf, sizeof buf);
            rd_kafka_conf_destroy(c);
            if (res == RD_KAFKA_CONF_UNKNOWN) {
                errs.add(kv.first.Mark(), where + ": unknown librdkafka property");
                continue;
            }
            if (res != RD_KAFKA_CONF_OK) {
                errs.add(kv.second.Mark(), where + ": " + buf);
                continue;
            }
            o.librdkafka.emplace_back(name, std::move(value));
        }
    }
    extra.finish();

    if (check) {
        for (std::size_t i = 0; i < o.brokers.size(); ++i) {
            const std::string& b = o.brokers[i];
            if (b.empty() || has_space(b) || b.front() == ',' || b.back() == ',' ||
                b.find(",,") != std::string::npos) {
                errs.add(settings.mark_of("brokers"),
                         fmt::format("{}[{}]: '{}' is not a host:port list",
                                     settings.key_path("brokers"), i, b));
            }
        }
        if (settings.has("brokers") && o.brokers.empty()) {
            errs.add(settings.mark_of("brokers"),
                     settings.key_path("brokers") + ": must list at least one broker");
        }
        if (!topic.empty() || settings.has("topic")) {
            std::string err;
            if (!kafka_topic_template::parse(topic, o.topic, err)) {
                errs.add(settings.mark_of("topic"), settings.key_path("topic") + ": " + err);
            }
        }
        if (!parse_kafka_key(key, o.key)) {
            errs.add(settings.mark_of("key"),
                     fmt::format("{}: must be user_id_or_anonymous_id, anonymous_id_or_user_id, "
                                 "user_id, anonymous_id, message_id or none, got '{}'",
                                 settings.key_path("key"), key));
        }
        static constexpr std::string_view codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
        if (std::find(std::begin(codecs), std::end(codecs), o.compression) == std::end(codecs)) {
            errs.add(settings.mark_of("compression"),
                     fmt::format("{}: must be none, gzip, snappy, lz4 or zstd, got '{}'",
                                 settings.key_path("compression"), o.compression));
        }
        if (linger.count() < 0 || linger.count() > 900'000) {
            errs.add(settings.mark_of("linger"),
                     settings.key_path("linger") + ": must be between 0 and 15m");
        }
        if (batch_size.bytes == 0 || batch_size.bytes > 2'147'483'647) {
            errs.add(settings.mark_of("batch_size"),
                     settings.key_path("batch_size") + ": must be between 1 and 2147483647 bytes");
        }
        if (message_max_bytes.bytes < 1000 || message_max_bytes.bytes > 1'000'000'000) {
            errs.add(settings.mark_of("message_max_bytes"),
                     settings.key_path("message_max_bytes") +
                         ": must be between 1000 and 1000000000 bytes");
        }
        if (delivery_timeout.count() <= 0 || delivery_timeout.count() > 2'147'483'647) {
            errs.add(settings.mark_of("delivery_timeout"),
                     settings.key_path("delivery_timeout") + ": must be positive (and < 24d)");
        } else if (delivery_timeout <= linger) {
            errs.add(settings.mark_of("delivery_timeout"),
                     settings.key_path("delivery_timeout") + ": must be longer than linger");
        }
        if (o.client_id.empty()) {
            errs.add(settings.mark_of("client_id"),
                     settings.key_path("client_id") + ": must not be empty");
        }
    }
    settings.finish();
    if (settings.describing() || errs.list().size() != errors_before) return nullptr;

    o.linger = linger;
    o.batch_size = batch_size.bytes;
    o.message_max_bytes = message_max_bytes.bytes;
    o.delivery_timeout = delivery_timeout;
    o.close_timeout = std::min(o.close_timeout, delivery_timeout);
    std::string err;
    auto d = kafka_destination::create(std::move(o), err);
    if (!d) {
        errs.add(settings.mark(), fmt::format("{} ({}): {}", settings.path(), ctx.name, err));
        return nullptr;
    }
    return d;
}

}  // namespace switchyard::destinations
