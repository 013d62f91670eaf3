#include "destinations/kafka/kafka_destination.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <librdkafka/rdkafka.h>

namespace switchyard::destinations {

namespace {

using clock = std::chrono::steady_clock;

// librdkafka checks for timed-out messages about once a second (and when a broker thread wakes
// from its reconnect backoff); a send() waits this much past delivery_timeout for the last
// reports before it gives up on them.
constexpr std::chrono::milliseconds report_grace{5000};
// Longest single rd_kafka_poll() wait, and the wait before producing again into a full queue.
constexpr int poll_slice_ms = 100;
constexpr int queue_full_wait_ms = 50;

constexpr const char* header_source = "switchyard-source";
constexpr const char* header_type = "switchyard-type";
constexpr const char* header_event = "switchyard-event";
constexpr const char* header_message_id = "switchyard-message-id";

bool is_topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

struct conf_deleter {
    void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;

bool conf_set(rd_kafka_conf_t* c, const std::string& name, const std::string& value,
              std::string& err) {
    char buf[512];
    if (rd_kafka_conf_set(c, name.c_str(), value.c_str(), buf, sizeof buf) == RD_KAFKA_CONF_OK) {
        return true;
    }
    err = buf;
    return false;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

// librdkafka's log lines, through spdlog. Syslog levels: 0-3 error, 4 warning, 5 notice,
// 6 info, 7 debug. The validation producer has no opaque and stays silent.
void log_line(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
    const auto* name = static_cast<const std::string*>(nullptr);
    if (const void* op = rd_kafka_opaque(rk); op != nullptr) {
        name = &static_cast<const kafka_destination*>(op)->options().name;
    }
    if (name == nullptr) return;
    const auto lvl = level <= 3   ? spdlog::level::err
                     : level == 4 ? spdlog::level::warn
                     : level == 5 ? spdlog::level::info
                                  : spdlog::level::debug;
    spdlog::log(lvl, "Kafka destination {}: librdkafka {}: {}", *name, fac, buf);
}

// Per-message errors Kafka will give for this message whatever we do: the message is
// dead-lettered with the reason and the rest of the batch still counts.
bool permanent(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
        // librdkafka retries a Produce answered UNKNOWN_TOPIC_OR_PART until the message times
        // out; a report with it means the metadata said the topic does not exist for longer
        // than topic.metadata.propagation.max.ms.
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR__INVALID_TYPE:
            return true;
        default:
            return false;
    }
}

// Sets the producer properties of `o` on a new conf; null with `err` set when one is refused.
conf_ptr build_conf(const kafka_destination_options& o, bool with_brokers, std::string& err) {
    conf_ptr c(rd_kafka_conf_new());
    // Defaults the passthrough may change. Java-compatible partitioning (murmur2 of the key), so
    // Kafka Streams and Java producers agree on a key's partition.
    // Reconnect to a broker that went away within a second (librdkafka backs off up to 10 s):
    // message timeouts are only checked by a broker's thread when it wakes up, so a long
    // reconnect backoff also delays the end of a send() after an outage.
    // A topic the cluster does not have fails its messages with _UNKNOWN_TOPIC (dead-lettered)
    // after this long, well within delivery_timeout (librdkafka waits 30 s, past which the
    // message would time out and hold the whole batch in retries instead).
    const auto propagation = std::min<std::int64_t>(10'000, o.delivery_timeout.count() / 2);
    if (!conf_set(c.get(), "partitioner", "murmur2_random", err) ||
        !conf_set(c.get(), "reconnect.backoff.max.ms", "1000", err) ||
        !conf_set(c.get(), "topic.metadata.propagation.max.ms",
                  std::to_string(std::max<std::int64_t>(propagation, 1)), err)) {
        return nullptr;
    }
    for (const auto& [name, value] : o.librdkafka) {
        if (std::string why = kafka_reserved_property(name); !why.empty()) {
            err = fmt::format("librdkafka.{}: {}", name, why);
            return nullptr;
        }
        if (!conf_set(c.get(), name, value, err)) {
            err = fmt::format("librdkafka.{}: {}", name, err);
            return nullptr;
        }
    }
    const std::pair<const char*, std::string> own[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"client.id", o.client_id},
        {"compression.codec", o.compression},
        {"linger.ms", std::to_string(o.linger.count())},
        {"batch.size", std::to_string(o.batch_size)},
        {"message.max.bytes", std::to_string(o.message_max_bytes)},
        {"message.timeout.ms", std::to_string(o.delivery_timeout.count())},
    };
    for (const auto& [name, value] : own) {
        if (!conf_set(c.get(), name, value, err)) return nullptr;
    }
    if (with_brokers && !conf_set(c.get(), "bootstrap.servers", join(o.brokers, ","), err)) {
        return nullptr;
    }
    rd_kafka_conf_set_log_cb(c.get(), &log_line);
    return c;
}

std::size_t header_bytes(const event_view& e) {
    std::size_t n = std::char_traits<char>::length(header_source) + e.source.size() +
                    std::char_traits<char>::length(header_type) + type_label(e).size() +
                    std::char_traits<char>::length(header_message_id) + e.message_id.size();
    if (!e.event_name.empty()) {
        n += std::char_traits<char>::length(header_event) + e.event_name.size();
    }
    return n;
}

std::string err_text(rd_kafka_resp_err_t err) {
    return fmt::format("{} ({})", rd_kafka_err2str(err), rd_kafka_err2name(err));
}

}  // namespace

void append_kafka_topic_chars(std::string_view s, std::string& out) {
    for (char c : s) out.push_back(is_topic_char(c) ? c : '_');
}

void finish_kafka_topic(std::string& name) {
    if (name.size() > kafka_max_topic_chars) name.resize(kafka_max_topic_chars);
    if (name.empty() || name == "." || name == "..") name.insert(name.begin(), '_');
}

bool kafka_topic_template::parse(std::string_view text, kafka_topic_template& out,
                                 std::string& err) {
    out = {};
    out.text_ = std::string(text);
    if (text.empty()) {
        err = "must not be empty";
        return false;
    }
    std::size_t literal_chars = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        if (c == '{') {
            const auto close = text.find('}', i + 1);
            if (close == std::string_view::npos) {
                err = fmt::format("unterminated placeholder at character {}", i + 1);
                return false;
            }
            const std::string_view name = text.substr(i + 1, close - i - 1);
            part p;
            if (name == "type") {
                p = part::type;
            } else if (name == "source") {
                p = part::source;
            } else if (name == "event") {
                p = part::event;
            } else {
                err = fmt::format(
                    "unknown placeholder {{{}}} (known: {{type}}, {{source}}, {{event}})", name);
                return false;
            }
            out.parts_.emplace_back(p, std::string());
            i = close + 1;
            continue;
        }
        if (c == '}') {
            err = fmt::format("'}}' without '{{' at character {}", i + 1);
            return false;
        }
        if (!is_topic_char(c)) {
            err = fmt::format(
                "'{}' is not allowed in a Kafka topic name (letters, digits, '.', '_' and '-' "
                "only)",
                c);
            return false;
        }
        if (out.parts_.empty() || out.parts_.back().first != part::literal) {
            out.parts_.emplace_back(part::literal, std::string());
        }
        out.parts_.back().second.push_back(c);
        ++literal_chars;
        ++i;
    }
    if (literal_chars > kafka_max_topic_chars) {
        err = fmt::format("has {} fixed characters; Kafka topic names have at most {}",
                          literal_chars, kafka_max_topic_chars);
        return false;
    }
    if (out.fixed() && (text == "." || text == "..")) {
        err = "'.' and '..' are not valid Kafka topic names";
        return false;
    }
    return true;
}

void kafka_topic_template::render(const event_view& e, std::string& out) const {
    out.clear();
    for (const auto& [p, literal] : parts_) {
        switch (p) {
            case part::literal:
                out += literal;
                break;
            case part::type:
                append_kafka_topic_chars(type_label(e), out);
                break;
            case part::source:
                append_kafka_topic_chars(e.source, out);
                break;
            case part::event:
                append_kafka_topic_chars(e.event_name.empty() ? type_label(e) : e.event_name, out);
                break;
        }
    }
    finish_kafka_topic(out);
}

namespace {
constexpr std::pair<std::string_view, kafka_key> key_names[] = {
    {"user_id_or_anonymous_id", kafka_key::user_id_or_anonymous_id},
    {"anonymous_id_or_user_id", kafka_key::anonymous_id_or_user_id},
    {"user_id", kafka_key::user_id},
    {"anonymous_id", kafka_key::anonymous_id},
    {"message_id", kafka_key::message_id},
    {"none", kafka_key::none},
};
}  // namespace

std::string_view kafka_key_name(kafka_key k) {
    for (const auto& [name, v] : key_names) {
        if (v == k) return name;
    }
    return "?";
}

bool parse_kafka_key(std::string_view s, kafka_key& out) {
    for (const auto& [name, k] : key_names) {
        if (s == name) {
            out = k;
            return true;
        }
    }
    return false;
}

std::string_view kafka_message_key(kafka_key mode, const event_view& e) {
    switch (mode) {
        case kafka_key::user_id_or_anonymous_id:
            return e.user_id.empty() ? e.anonymous_id : e.user_id;
        case kafka_key::anonymous_id_or_user_id:
            return e.anonymous_id.empty() ? e.user_id : e.anonymous_id;
        case kafka_key::user_id:
            return e.user_id;
        case kafka_key::anonymous_id:
            return e.anonymous_id;
        case kafka_key::message_id:
            return e.message_id;
        case kafka_key::none:
            return {};
    }
    return {};
}

std::string kafka_reserved_property(std::string_view name) {
    if (name == "enable.idempotence" || name == "acks" || name == "request.required.acks") {
        return "always enable.idempotence=true and acks=all (the destination's delivery "
               "guarantees depend on them); it cannot be changed";
    }
    static constexpr std::pair<std::string_view, std::string_view> own[] = {
        {"bootstrap.servers", "brokers"},
        {"metadata.broker.list", "brokers"},
        {"client.id", "client_id"},
        {"compression.codec", "compression"},
        {"compression.type", "compression"},
        {"linger.ms", "linger"},
        {"queue.buffering.max.ms", "linger"},
        {"batch.size", "batch_size"},
        {"message.max.bytes", "message_max_bytes"},
        {"message.timeout.ms", "delivery_timeout"},
        {"delivery.timeout.ms", "delivery_timeout"},
    };
    for (const auto& [prop, key] : own) {
        if (name == prop) return fmt::format("set it with the destination's `{}` key", key);
    }
    if (name == "transactional.id") return "transactions are not supported";
    if (name == "queuing.strategy") return "would break the order of messages; not supported";
    if (name == "log.queue" || name == "enabled_events") {
        return "the destination serves librdkafka's events and logs itself; not supported";
    }
    return {};
}

std::string validate_kafka_options(const kafka_destination_options& o) {
    std::string err;
    conf_ptr c = build_conf(o, false, err);
    if (!c) return err;
    // No bootstrap.servers: the producer checks its whole configuration (and loads SSL files)
    // without opening any connection.
    char buf[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, c.get(), buf, sizeof buf);
    if (rk == nullptr) return buf;
    c.release();  // owned by rk now
    rd_kafka_destroy(rk);
    return {};
}

std::unique_ptr<kafka_destination> kafka_destination::create(kafka_destination_options options,
                                                             std::string& err) {
    if (options.brokers.empty()) {
        err = "brokers must list at least one host:port";
        return nullptr;
    }
    if (err = validate_kafka_options(options); !err.empty()) return nullptr;
    return std::unique_ptr<kafka_destination>(new kafka_destination(std::move(options)));
}

kafka_destination::kafka_destination(kafka_destination_options options)
    : opts_(std::move(options)) {}

kafka_destination::~kafka_destination() { close(); }

void kafka_destination::topic_for(const event_view& e, std::string& out) const {
    if (!opts_.topics_by_event.empty() && !e.event_name.empty()) {
        if (auto it = opts_.topics_by_event.find(e.event_name); it != opts_.topics_by_event.end()) {
            it->second.render(e, out);
            return;
        }
    }
    opts_.topic.render(e, out);
}

bool kafka_destination::start(std::string& err) {
    conf_ptr c = build_conf(opts_, true, err);
    if (!c) return false;
    rd_kafka_conf_set_opaque(c.get(), this);
    rd_kafka_conf_set_dr_msg_cb(c.get(), &on_delivery);
    rd_kafka_conf_set_error_cb(c.get(), &on_error);
    char buf[512];
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, c.get(), buf, sizeof buf);
    if (rk_ == nullptr) {
        err = buf;
        return false;
    }
    c.release();
    fatal_ = false;
    spdlog::info("Kafka destination {} produces to {} (topic {}{}, key {}, compression {}).",
                 opts_.name, join(opts_.brokers, ","), opts_.topic.text(),
                 opts_.topics_by_event.empty() ? "" : " and topics_by_event",
                 kafka_key_name(opts_.key), opts_.compression);
    return true;
}

void kafka_destination::stop_producer(std::chrono::milliseconds flush_timeout) {
    if (rk_ == nullptr) return;
    if (flush_timeout.count() > 0) {
        rd_kafka_flush(rk_, static_cast<int>(flush_timeout.count()));
    }
    if (const int left = rd_kafka_outq_len(rk_); left > 0) {
        spdlog::warn(
            "Kafka destination {}: {} messages or requests still queued at shutdown are dropped "
            "from the producer; their events stay in the log and are sent again.",
            opts_.name, left);
        rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        ++generation_;  // their reports are not ours any more
        rd_kafka_poll(rk_, 0);
    }
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
}

void kafka_destination::close() { stop_producer(opts_.close_timeout); }

send_outcome kafka_destination::fail(send_outcome out) {
    healthy_.store(false, std::memory_order_relaxed);
    return out;
}

void kafka_destination::on_error(rd_kafka_t* rk, int e, const char* reason, void* opaque) {
    auto* d = static_cast<kafka_destination*>(opaque);
    const auto err = static_cast<rd_kafka_resp_err_t>(e);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        const auto orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
        d->fatal_ = true;
        d->first_transient_ =
            fmt::format("fatal producer error {}: {}", rd_kafka_err2name(orig), buf);
        spdlog::error("Kafka destination {}: {}; the producer is rebuilt and the batch retried.",
                      d->opts_.name, d->first_transient_);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        if (d->brokers_up_.exchange(false, std::memory_order_relaxed)) {
            spdlog::warn("Kafka destination {}: no broker is reachable ({}).", d->opts_.name,
                         reason);
        }
    } else {
        // librdkafka has logged it already (log_cb); keep it for the reason of a failed send.
        spdlog::debug("Kafka destination {}: {}: {}", d->opts_.name, rd_kafka_err2name(err),
                      reason);
    }
    if (d->first_transient_.empty()) {
        d->first_transient_ = fmt::format("{}: {}", rd_kafka_err2name(err), reason);
    }
}

void kafka_destination::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* d = static_cast<kafka_destination*>(opaque);
    const auto tag = reinterpret_cast<std::uintptr_t>(m->_private);
    if (static_cast<std::uint32_t>(tag >> 32) != d->generation_) return;  // an abandoned send's
    const std::size_t index = tag & 0xffffffffu;
    if (index >= d->slots_.size() || d->slots_[index].st != state::pending) return;
    --d->pending_;
    const char* topic = m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "";
    d->settle(index, m->err, topic, m->partition);
}

void kafka_destination::settle(std::size_t index, int e, std::string_view topic,
                               std::int32_t partition) {
    auto& s = slots_[index];
    const auto err = static_cast<rd_kafka_resp_err_t>(e);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s.st = state::delivered;
        if (!brokers_up_.exchange(true, std::memory_order_relaxed)) {
            spdlog::info("Kafka destination {}: brokers are reachable again.", opts_.name);
        }
        return;
    }
    const std::string where = partition >= 0
                                  ? fmt::format("topic {} partition {}", topic, partition)
                                  : fmt::format("topic {}", topic);
    if (permanent(err)) {
        s.st = state::rejected;
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
            err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE) {
            s.reason = fmt::format(
                "Kafka refused the message: {}: the message is {} bytes (event JSON {} bytes, "
                "key and headers {}), message_max_bytes is {}; {}",
                err_text(err), sizes_[index].first, sizes_[index].second,
                sizes_[index].first - sizes_[index].second, opts_.message_max_bytes, where);
        } else {
            s.reason = fmt::format("Kafka refused the message: {}; {}", err_text(err), where);
        }
        return;
    }
    s.st = state::failed;
    s.reason = fmt::format("{}; {}", err_text(err), where);
}

send_outcome kafka_destination::send(std::span<const delivery_item> batch) {
    if (batch.empty()) return send_outcome::ok();
    if (fatal_) stop_producer(std::chrono::milliseconds(0));
    if (rk_ == nullptr) {
        std::string err;
        if (!start(err)) {
            return fail(send_outcome::retry_later("cannot create the Kafka producer: " + err));
        }
    }

    const std::size_t n = batch.size();
    ++generation_;
    slots_.assign(n, slot{});
    sizes_.assign(n, {0, 0});
    pending_ = 0;
    first_transient_.clear();

    const auto started = clock::now();
    auto last_produced = started;
    for (std::size_t i = 0; i < n; ++i) {
        const event_view& e = batch[i].event;
        topic_for(e, topic_);
        const std::string_view key = kafka_message_key(opts_.key, e);
        const std::string_view type = type_label(e);
        sizes_[i] = {e.json.size() + key.size() + header_bytes(e), e.json.size()};
        const auto tag = (static_cast<std::uintptr_t>(generation_) << 32) | i;
        rd_kafka_resp_err_t err;
        for (;;) {
            rd_kafka_headers_t* h = rd_kafka_headers_new(4);
            rd_kafka_header_add(h, header_source, -1, e.source.data(),
                                static_cast<ssize_t>(e.source.size()));
            rd_kafka_header_add(h, header_type, -1, type.data(), static_cast<ssize_t>(type.size()));
            if (!e.event_name.empty()) {
                rd_kafka_header_add(h, header_event, -1, e.event_name.data(),
                                    static_cast<ssize_t>(e.event_name.size()));
            }
            rd_kafka_header_add(h, header_message_id, -1, e.message_id.data(),
                                static_cast<ssize_t>(e.message_id.size()));
            err = rd_kafka_producev(
                rk_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_VALUE(const_cast<char*>(e.json.data()), e.json.size()),
                RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(tag)),
                RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;  // h belongs to the message now
            rd_kafka_headers_destroy(h);
            // A full local queue drains as reports are served: wait a little, within the
            // batch's delivery timeout.
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
                clock::now() - started >= opts_.delivery_timeout) {
                break;
            }
            rd_kafka_poll(rk_, queue_full_wait_ms);
        }
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            slots_[i].st = state::pending;
            ++pending_;
            last_produced = clock::now();
            continue;
        }
        settle(i, err, topic_, -1);
        if (slots_[i].st != state::rejected) {
            // Stop here: producing later events (maybe of the same key) before this one is
            // retried would reorder them.
            if (err == RD_KAFKA_RESP_ERR__FATAL) fatal_ = true;
            break;
        }
    }

    // Serve delivery reports until every produced message has one. librdkafka fails a message
    // delivery_timeout after it was produced, so this ends by itself; the deadline is a guard.
    const auto deadline = last_produced + opts_.delivery_timeout + report_grace;
    while (pending_ > 0) {
        const auto now = clock::now();
        if (now >= deadline) break;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        rd_kafka_poll(rk_,
                      static_cast<int>(std::min<std::int64_t>(left.count() + 1, poll_slice_ms)));
    }
    if (pending_ > 0) {
        spdlog::warn(
            "Kafka destination {}: {} messages had no delivery report {} ms after they were "
            "produced; the batch is retried.",
            opts_.name, pending_, (opts_.delivery_timeout + report_grace).count());
    }
    if (!fatal_) {
        char buf[256];
        if (rd_kafka_fatal_error(rk_, buf, sizeof buf) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fatal_ = true;
        }
    }

    send_outcome out;
    std::size_t not_delivered = 0;
    const std::string* first = nullptr;
    for (std::size_t i = 0; i < n; ++i) {
        const auto& s = slots_[i];
        if (s.st == state::rejected) {
            out.rejected_items.emplace_back(i, s.reason);
        } else if (s.st != state::delivered) {
            ++not_delivered;
            if (first == nullptr && !s.reason.empty()) first = &s.reason;
        }
    }
    if (not_delivered == 0) {
        healthy_.store(true, std::memory_order_relaxed);
        if (!out.rejected_items.empty()) {
            spdlog::debug("Kafka destination {}: {} of {} messages refused by Kafka.", opts_.name,
                          out.rejected_items.size(), n);
        }
        return out;
    }
    std::string reason = fmt::format(
        "{} of {} messages not delivered: {}", not_delivered, n,
        first != nullptr ? *first
                         : fmt::format("no delivery report within {} ms",
                                       (opts_.delivery_timeout + report_grace).count()));
    if (!first_transient_.empty() &&
        (first == nullptr || first->find(first_transient_) == std::string::npos)) {
        reason += " (last client error: " + first_transient_ + ")";
    }
    ++generation_;  // reports still to come belong to a batch that is retried as a whole
    return fail(send_outcome::retry_later(std::move(reason)));
}

}  // namespace switchyard::destinations
