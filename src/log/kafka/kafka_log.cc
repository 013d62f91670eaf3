#include "log/kafka/kafka_log.h"

#include "switchyard/event.h"
#include "util/time.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <stdexcept>

namespace switchyard::log::kafka {
namespace {

std::uint32_t get_le32(const char* p) noexcept {
    std::uint32_t v = 0;
    std::memcpy(&v, p, 4);  // x86-64 and every target we build for are little endian
    return v;
}

// librdkafka errors after which the brokers are worth asking again soon.
bool is_outage(rd_kafka_resp_err_t e) {
    switch (e) {
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
            return true;
        default:
            return false;
    }
}

}  // namespace

// One append: the batch's bytes stay here until every record is acknowledged, because records
// are produced without copying their payload.
struct kafka_log::inflight {
    record_batch batch;
    append_handler done;
    std::atomic<std::uint32_t> remaining{0};
    std::atomic<int> first_error{0};
    std::atomic<std::int64_t> first_offset{-1};
    std::uint64_t bytes = 0;
};

kafka_log::kafka_log(kafka_log_options options) : options_(std::move(options)) {}

std::unique_ptr<kafka_log> kafka_log::open(kafka_log_options options) {
    std::unique_ptr<kafka_log> l(new kafka_log(std::move(options)));
    const auto& o = l->options_;
    property_list props = {
        {"client.id", "switchyard-collector"},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.codec", o.compression},
        {"linger.ms", std::to_string(o.linger.count())},
        {"message.timeout.ms", std::to_string(o.ack_timeout.count())},
        // Our own byte limit refuses appends first; librdkafka's queue must never be the limit.
        {"queue.buffering.max.messages", "2147483647"},
        {"queue.buffering.max.kbytes", "2147483647"},
        // The Java client's partitioner, so other producers keyed alike agree on partitions.
        {"partitioner", "murmur2_random"},
    };
    for (const auto& p : o.properties) props.push_back(p);
    props.emplace_back("bootstrap.servers", o.brokers);
    std::string err;
    auto conf = make_conf(props, err);
    if (!conf) throw std::runtime_error("log.kafka: " + err);
    rd_kafka_conf_set_opaque(conf.get(), l.get());
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &kafka_log::on_delivery);
    rd_kafka_conf_set_error_cb(conf.get(), &kafka_log::on_error);
    char buf[512];
    l->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), buf, sizeof buf);
    if (l->rk_ == nullptr) throw std::runtime_error(fmt::format("log.kafka: {}", buf));
    conf.release();  // owned by rk_ now
    l->rkt_ = rd_kafka_topic_new(l->rk_, o.topic.c_str(), nullptr);
    if (l->rkt_ == nullptr) {
        throw std::runtime_error(fmt::format("log.kafka: topic '{}': {}", o.topic,
                                             rd_kafka_err2str(rd_kafka_last_error())));
    }
    l->poller_ = std::thread([p = l.get()] { p->poll_loop(); });
    spdlog::info("Event log: Kafka topic {} on {} (acks=all, idempotent, {} compression).", o.topic,
                 o.brokers, o.compression);
    return l;
}

kafka_log::~kafka_log() {
    close();
    if (rkt_ != nullptr) rd_kafka_topic_destroy(rkt_);
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

std::error_code kafka_log::append(record_batch batch, append_handler done) {
    const std::uint64_t bytes = batch.bytes();
    {
        std::lock_guard g(mu_);
        if (closing_) {
            refused_.fetch_add(1, std::memory_order_relaxed);
            return make_error_code(errc::log_closed);
        }
        const std::uint64_t pending = pending_bytes_.load(std::memory_order_relaxed);
        if (!available_.load(std::memory_order_relaxed)) {
            const std::int64_t now = util::now_ms();
            if (now - last_probe_ms_ < options_.probe_interval.count()) {
                refused_.fetch_add(1, std::memory_order_relaxed);
                return make_error_code(errc::unavailable);
            }
            last_probe_ms_ = now;  // this append probes whether the brokers are back
        } else if (pending > 0 && pending + bytes > options_.max_pending_bytes) {
            // One batch is always let through when nothing waits, so a large one is not refused
            // forever.
            refused_.fetch_add(1, std::memory_order_relaxed);
            return make_error_code(errc::log_full);
        }
        pending_bytes_.fetch_add(bytes, std::memory_order_relaxed);
        outstanding_.fetch_add(1, std::memory_order_relaxed);
    }

    auto* f = new inflight;
    f->batch = std::move(batch);
    f->done = std::move(done);
    f->bytes = bytes;
    f->remaining.store(static_cast<std::uint32_t>(f->batch.count()) + 1,
                       std::memory_order_relaxed);  // +1: released after the produce loop

    const std::string& data = f->batch.data();
    std::size_t pos = 0;
    while (pos + record_frame_overhead <= data.size()) {
        const std::uint32_t len = get_le32(data.data() + pos);
        const char* payload = data.data() + pos + record_frame_overhead;
        pos += record_frame_overhead + len;
        std::string_view key;
        std::string_view source, type, message_id;
        if (auto v = decode_event(std::string_view(payload, len))) {
            switch (options_.key) {
                case key_policy::anonymous_id_or_user_id:
                    key = !v->anonymous_id.empty() ? v->anonymous_id : v->user_id;
                    break;
                case key_policy::user_id_or_anonymous_id:
                    key = !v->user_id.empty() ? v->user_id : v->anonymous_id;
                    break;
                case key_policy::message_id:
                    key = v->message_id;
                    break;
            }
            if (key.empty()) key = v->message_id;
            source = v->source;
            type = to_string(v->type);
            message_id = v->message_id;
        }
        const rd_kafka_resp_err_t err = rd_kafka_producev(
            rk_, RD_KAFKA_V_RKT(rkt_), RD_KAFKA_V_VALUE(const_cast<char*>(payload), len),
            RD_KAFKA_V_KEY(key.data(), key.size()),
            RD_KAFKA_V_HEADER("switchyard-source", source.data(),
                              static_cast<ssize_t>(source.size())),
            RD_KAFKA_V_HEADER("switchyard-type", type.data(), static_cast<ssize_t>(type.size())),
            RD_KAFKA_V_HEADER("switchyard-message-id", message_id.data(),
                              static_cast<ssize_t>(message_id.size())),
            RD_KAFKA_V_OPAQUE(f), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) finish_record(f, err, -1, 0);
    }
    finish_record(f, RD_KAFKA_RESP_ERR_NO_ERROR, -1, 0);  // the +1 guard
    return {};
}

void kafka_log::finish_record(inflight* f, rd_kafka_resp_err_t err, std::int64_t offset,
                              std::size_t bytes) {
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        int expected = 0;
        f->first_error.compare_exchange_strong(expected, static_cast<int>(err));
        failed_records_.fetch_add(1, std::memory_order_relaxed);
        if (is_outage(err)) mark_unavailable();
        const std::int64_t now = util::now_ms();
        std::int64_t last = last_error_log_ms_.load(std::memory_order_relaxed);
        if (now - last >= 5000 &&
            last_error_log_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
            spdlog::error(
                "Kafka log: a record was not acknowledged by the brokers ({}); its request "
                "answers 503.",
                rd_kafka_err2str(err));
        }
    } else if (offset >= 0) {
        std::int64_t expected = -1;
        f->first_offset.compare_exchange_strong(expected, offset);
        appended_records_.fetch_add(1, std::memory_order_relaxed);
        appended_bytes_.fetch_add(bytes, std::memory_order_relaxed);
        if (!available_.load(std::memory_order_relaxed)) {
            available_.store(true, std::memory_order_relaxed);
            spdlog::info("Kafka log: the brokers acknowledge records again.");
        }
    }
    if (f->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    const int e = f->first_error.load(std::memory_order_relaxed);
    std::error_code ec;
    if (e != 0) {
        ec = make_error_code(e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? errc::log_full
                                                                : errc::unavailable);
    }
    const auto first = static_cast<std::uint64_t>(std::max<std::int64_t>(0, f->first_offset));
    pending_bytes_.fetch_sub(f->bytes, std::memory_order_relaxed);
    auto done = std::move(f->done);
    delete f;
    outstanding_.fetch_sub(1, std::memory_order_release);
    if (done) done(ec, first);
}

void kafka_log::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<kafka_log*>(opaque);
    self->finish_record(static_cast<inflight*>(m->_private), m->err, m->offset, m->len);
}

void kafka_log::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<kafka_log*>(opaque);
    const auto e = static_cast<rd_kafka_resp_err_t>(err);
    if (e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        self->mark_unavailable();
        spdlog::error("Kafka log: all brokers are down ({}); ingest answers 503 until they return.",
                      reason);
        return;
    }
    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk, buf, sizeof buf);
        spdlog::critical("Kafka log: fatal producer error: {}; appends fail until restart.", buf);
        self->mark_unavailable();
        return;
    }
    spdlog::warn("Kafka log: {} ({}).", reason, rd_kafka_err2name(e));
}

void kafka_log::mark_unavailable() {
    std::lock_guard g(mu_);
    if (available_.exchange(false, std::memory_order_relaxed)) last_probe_ms_ = util::now_ms();
}

void kafka_log::poll_loop() {
    for (;;) {
        rd_kafka_poll(rk_, 50);
        if (!stop_poller_.load(std::memory_order_acquire)) continue;
        if (outstanding_.load(std::memory_order_acquire) == 0) break;
        if (std::chrono::steady_clock::now() >= stop_deadline_) {
            // Whatever the brokers did not acknowledge in time fails its append (its request
            // answers 503; the client retries elsewhere).
            rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            while (outstanding_.load(std::memory_order_acquire) > 0) rd_kafka_poll(rk_, 50);
            break;
        }
    }
}

void kafka_log::close() {
    std::lock_guard c(close_mu_);
    {
        std::lock_guard g(mu_);
        if (closing_ && !poller_.joinable()) return;
        closing_ = true;
    }
    if (!poller_.joinable()) return;
    stop_deadline_ = std::chrono::steady_clock::now() + options_.ack_timeout;
    stop_poller_.store(true, std::memory_order_release);
    poller_.join();
    spdlog::info("Kafka log closed: {} records acknowledged, {} failed since start.",
                 appended_records_.load(), failed_records_.load());
}

kafka_log_stats kafka_log::stats() const {
    kafka_log_stats s;
    s.appended_records = appended_records_.load(std::memory_order_relaxed);
    s.appended_bytes = appended_bytes_.load(std::memory_order_relaxed);
    s.failed_records = failed_records_.load(std::memory_order_relaxed);
    s.refused_appends = refused_.load(std::memory_order_relaxed);
    s.pending_bytes = pending_bytes_.load(std::memory_order_relaxed);
    s.available = available_.load(std::memory_order_relaxed);
    return s;
}

}  // namespace switchyard::log::kafka
