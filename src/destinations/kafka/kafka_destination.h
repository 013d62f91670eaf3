#pragma once

#include "config/reader.h"
#include "destinations/registry.h"
#include "switchyard/destination.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// librdkafka handles; kept opaque so users of the destination don't see <librdkafka/rdkafka.h>.
struct rd_kafka_s;
struct rd_kafka_message_s;

namespace switchyard::destinations {

// Kafka's limit on a topic name's length.
inline constexpr std::size_t kafka_max_topic_chars = 249;

// Appends `s` to `out` with every character outside Kafka's topic alphabet [a-zA-Z0-9._-]
// replaced by '_'.
void append_kafka_topic_chars(std::string_view s, std::string& out);

// Makes `name` a legal Kafka topic name: illegal characters become '_', at most 249 characters,
// and "", "." and ".." (refused by Kafka) become "_", "_." and "_..".
void finish_kafka_topic(std::string& name);

// A topic name template: literal text with the placeholders {type} (track, page, ...),
// {source} (the configured source name) and {event} (the event name of track/page/screen
// events; the type for identify, group and alias, which have none). Placeholder values are
// sanitised to Kafka's topic alphabet, and the whole name is cut to 249 characters.
class kafka_topic_template {
  public:
    // Parses `text`. False, with `err` set, for unknown placeholders, unbalanced braces, literal
    // characters Kafka does not allow in topic names, or an empty template.
    static bool parse(std::string_view text, kafka_topic_template& out, std::string& err);

    // The topic for `e`, written into `out` (cleared first).
    void render(const event_view& e, std::string& out) const;

    const std::string& text() const noexcept { return text_; }
    // True when the template has no placeholder (one fixed topic).
    bool fixed() const noexcept { return parts_.size() == 1 && parts_[0].first == part::literal; }

  private:
    enum class part { literal, type, source, event };
    std::string text_;
    std::vector<std::pair<part, std::string>> parts_;
};

// Which id becomes the message key (and so decides the partition).
enum class kafka_key {
    user_id_or_anonymous_id,  // userId when present, else anonymousId (default)
    anonymous_id_or_user_id,  // anonymousId when present, else userId
    user_id,                  // userId; no key when absent
    anonymous_id,             // anonymousId; no key when absent
    message_id,               // messageId: spreads events evenly, no per-user order
    none,                     // no key: librdkafka's partitioner spreads the messages
};

// Parses a `key` setting; false for an unknown name.
bool parse_kafka_key(std::string_view s, kafka_key& out);
std::string_view kafka_key_name(kafka_key k);

// The key `mode` picks for `e`; empty means the message has no key.
std::string_view kafka_message_key(kafka_key mode, const event_view& e);

struct kafka_destination_options {
    std::vector<std::string> brokers;  // bootstrap servers, host:port
    kafka_topic_template topic;        // every event's topic, or the fallback of topics_by_event
    // Event name (exact match) -> topic template; events not listed use `topic`.
    std::map<std::string, kafka_topic_template, std::less<>> topics_by_event;
    kafka_key key = kafka_key::user_id_or_anonymous_id;
    std::string compression = "lz4";                    // none | gzip | snappy | lz4 | zstd
    std::chrono::milliseconds linger{5};                // linger.ms
    std::uint64_t batch_size = 1000000;                 // batch.size: bytes of one produce batch
    std::uint64_t message_max_bytes = 1000000;          // message.max.bytes: one message's limit
    std::chrono::milliseconds delivery_timeout{30000};  // message.timeout.ms; bounds one send()
    std::chrono::milliseconds close_timeout{10000};     // flush limit at close()
    std::string client_id = "switchyard";
    std::string name;  // the destination's configured name, for log lines
    // Extra librdkafka properties, in order (SASL, SSL, ...). Never acks or enable.idempotence.
    std::vector<std::pair<std::string, std::string>> librdkafka;
};

// Properties the destination sets itself (or through one of its own keys); a `librdkafka:`
// entry naming one of them is a config error whose message this returns (empty when allowed).
std::string kafka_reserved_property(std::string_view name);

// Checks `o` the way the producer will use it: every property through rd_kafka_conf_set, then a
// producer created and destroyed without brokers (which catches inconsistent combinations and
// unusable SSL files without connecting anywhere). Empty when usable, else the first problem.
std::string validate_kafka_options(const kafka_destination_options& o);

// Produces each event of a batch to Kafka with librdkafka, one message per event: topic from
// the template, key from `key`, value the canonical event JSON, switchyard-* headers. The
// producer is idempotent with acks=all, so librdkafka's own retries neither duplicate nor
// reorder messages of a partition.
//
// send() produces every item in order, then serves delivery reports until each message has one
// (librdkafka gives up on a message after delivery_timeout, so a send() lasts at most about that
// long). All delivered: delivered. Messages Kafka will never take (too large, invalid record,
// invalid topic, topic authorization) become rejected_items with the error and sizes; the rest
// still counts. Anything else (timeouts, brokers down, not enough replicas, a full local queue)
// retries the whole batch. Producing stops at the first transient failure, so a retry never
// follows a later message of the same key. A fatal idempotent-producer error destroys the
// producer; the next send() builds a new one.
//
// The producer is created at the first send(), so a destination built only to validate a config
// opens no connection. Lifecycle: send() and close() are called only by its delivery worker
// thread; healthy() may be called from any thread.
class kafka_destination final : public destination {
  public:
    // Builds the destination; null with `err` set when validate_kafka_options fails.
    static std::unique_ptr<kafka_destination> create(kafka_destination_options options,
                                                     std::string& err);
    ~kafka_destination() override;

    kafka_destination(const kafka_destination&) = delete;
    kafka_destination& operator=(const kafka_destination&) = delete;

    send_outcome send(std::span<const delivery_item> batch) override;
    bool healthy() const override {
        return healthy_.load(std::memory_order_relaxed) &&
               brokers_up_.load(std::memory_order_relaxed);
    }
    void close() override;

    // The topic and key an event goes to (exposed for tests).
    void topic_for(const event_view& e, std::string& out) const;
    const kafka_destination_options& options() const noexcept { return opts_; }

  private:
    // What became of one message of the batch in flight.
    enum class state : std::uint8_t { unsent, pending, delivered, rejected, failed };
    struct slot {
        state st = state::unsent;
        std::string reason;
    };

    explicit kafka_destination(kafka_destination_options options);
    bool start(std::string& err);
    void stop_producer(std::chrono::milliseconds flush_timeout);
    void settle(std::size_t index, int err, std::string_view topic, std::int32_t partition);
    send_outcome fail(send_outcome out);

    static void on_delivery(rd_kafka_s* rk, const rd_kafka_message_s* m, void* opaque);
    static void on_error(rd_kafka_s* rk, int err, const char* reason, void* opaque);

    kafka_destination_options opts_;
    rd_kafka_s* rk_ = nullptr;
    // The batch in flight: delivery reports carry (generation << 32 | index), so a report for a
    // message of an earlier send() (given up after its deadline) is recognised and ignored.
    std::uint32_t generation_ = 0;
    std::vector<slot> slots_;
    // Bytes of each message (value + key + headers) and of its value, for reasons.
    std::vector<std::pair<std::size_t, std::size_t>> sizes_;
    std::size_t pending_ = 0;
    bool fatal_ = false;           // the producer raised a fatal error: rebuild it
    std::string first_transient_;  // the first broker/client error seen while this send ran
    std::string topic_, key_;      // scratch
    std::atomic<bool> healthy_{true};
    std::atomic<bool> brokers_up_{true};
};

// The `kafka` destination factory. In describe mode it only documents its keys and returns null.
std::unique_ptr<destination> make_kafka_destination(config::map_reader& settings,
                                                    const destination_context& ctx);

}  // namespace switchyard::destinations
