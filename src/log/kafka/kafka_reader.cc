#include "log/kafka/kafka_reader.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace switchyard::log::kafka {
namespace {

struct list_deleter {
    void operator()(rd_kafka_topic_partition_list_t* l) const noexcept {
        rd_kafka_topic_partition_list_destroy(l);
    }
};
using list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, list_deleter>;

std::string describe(const rd_kafka_topic_partition_list_t* parts) {
    std::string s;
    for (int i = 0; parts != nullptr && i < parts->cnt; ++i) {
        s += fmt::format("{}{}", s.empty() ? "" : ",", parts->elems[i].partition);
    }
    return s.empty() ? "none" : s;
}

bool cooperative(rd_kafka_t* rk) {
    const char* p = rd_kafka_rebalance_protocol(rk);
    return p != nullptr && std::strcmp(p, "COOPERATIVE") == 0;
}

}  // namespace

kafka_reader::kafka_reader(kafka_reader_options options) : options_(std::move(options)) {}

std::unique_ptr<kafka_reader> kafka_reader::open(kafka_reader_options options) {
    std::unique_ptr<kafka_reader> r(new kafka_reader(std::move(options)));
    const auto& o = r->options_;
    property_list props = {
        {"client.id", "switchyard-delivery-" + o.name},
        // A new destination starts at the oldest record Kafka still holds, as it does on the
        // local log; Kafka's retention is then the limit on how far back that reaches.
        {"auto.offset.reset", "earliest"},
        // Prefetch is bounded; the reader's own buffer pauses fetching beyond its limits.
        {"queued.max.messages.kbytes", "16384"},
    };
    for (const auto& p : o.properties) props.push_back(p);
    props.emplace_back("bootstrap.servers", o.brokers);
    props.emplace_back("group.id", o.group);
    props.emplace_back("enable.auto.commit", "false");
    props.emplace_back("enable.auto.offset.store", "false");
    props.emplace_back("enable.partition.eof", "false");
    std::string err;
    auto conf = make_conf(props, err);
    if (!conf) throw std::runtime_error("log.kafka: " + err);
    rd_kafka_conf_set_opaque(conf.get(), r.get());
    rd_kafka_conf_set_rebalance_cb(conf.get(), &kafka_reader::on_rebalance);
    char buf[512];
    r->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), buf, sizeof buf);
    if (r->rk_ == nullptr) throw std::runtime_error(fmt::format("log.kafka: {}", buf));
    conf.release();
    rd_kafka_poll_set_consumer(r->rk_);
    list_ptr topics(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(topics.get(), o.topic.c_str(), RD_KAFKA_PARTITION_UA);
    if (auto e = rd_kafka_subscribe(r->rk_, topics.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error(
            fmt::format("log.kafka: cannot subscribe to {}: {}", o.topic, rd_kafka_err2str(e)));
    }
    r->poller_ = std::thread([p = r.get()] { p->poll_loop(); });
    spdlog::info("Destination {} consumes Kafka topic {} as consumer group {}.", o.name, o.topic,
                 o.group);
    return r;
}

kafka_reader::~kafka_reader() {
    close();
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

std::error_code kafka_reader::append(record_batch, append_handler) {
    return make_error_code(errc::invalid_argument);
}

std::uint64_t kafka_reader::end_offset() const { return end_.load(std::memory_order_acquire); }

std::uint64_t kafka_reader::start_offset() const {
    std::lock_guard g(mu_);
    return start_;
}

std::uint64_t kafka_reader::wait_for(std::uint64_t offset,
                                     std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lk(mu_);
    cv_.wait_until(lk, deadline, [&] { return closing_ || end_.load() > offset; });
    return end_.load();
}

bool kafka_reader::owned(std::int32_t partition, std::uint32_t epoch) const {
    auto it = owned_.find(partition);
    return it != owned_.end() && it->second == epoch;
}

result<std::uint64_t> kafka_reader::read(std::uint64_t from, std::size_t max_records,
                                         std::size_t max_bytes, std::vector<log_record>& out) {
    std::lock_guard g(mu_);
    if (from < start_) from = start_;
    std::uint64_t next = from;
    std::size_t n = 0, bytes = 0;
    for (std::size_t i = from - start_; i < buf_.size(); ++i) {
        const record& r = buf_[i];
        if (n > 0 && (n >= max_records || bytes + r.payload.size() > max_bytes)) break;
        next = r.local + 1;
        if (!owned(r.partition, r.epoch)) continue;  // its partition was taken away
        out.push_back({r.local, r.payload});
        ++n;
        bytes += r.payload.size();
    }
    return next;
}

std::error_code kafka_reader::commit(const std::string&, std::uint64_t offset) {
    std::lock_guard c(commit_mu_);
    list_ptr list(rd_kafka_topic_partition_list_new(8));
    std::map<std::int32_t, std::int64_t> sent;
    {
        std::lock_guard g(mu_);
        while (!buf_.empty() && buf_.front().local < offset) {
            record& r = buf_.front();
            if (owned(r.partition, r.epoch)) {
                auto& p = pending_commit_[r.partition];
                p = std::max(p, r.offset + 1);
                if (auto it = buffered_.find(r.partition); it != buffered_.end() && it->second > 0)
                    --it->second;
            }
            buf_bytes_ -= r.payload.size();
            buf_.pop_front();
        }
        start_ = buf_.empty() ? end_.load() : buf_.front().local;
        for (auto it = pending_commit_.begin(); it != pending_commit_.end();) {
            if (owned_.count(it->first) == 0) {
                it = pending_commit_.erase(it);  // released: the new owner commits it now
                continue;
            }
            rd_kafka_topic_partition_list_add(list.get(), options_.topic.c_str(), it->first)
                ->offset = it->second;
            sent[it->first] = it->second;
            ++it;
        }
    }
    cv_.notify_all();
    if (sent.empty()) return {};
    const rd_kafka_resp_err_t e = rd_kafka_commit(rk_, list.get(), 0);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failed_commits_.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn(
            "Destination {}: committing Kafka offsets failed ({}); the next commit "
            "retries them.",
            options_.name, rd_kafka_err2str(e));
        return make_error_code(errc::unavailable);
    }
    commits_.fetch_add(1, std::memory_order_relaxed);
    {
        std::lock_guard g(mu_);
        for (const auto& [p, off] : sent) {
            auto it = pending_commit_.find(p);
            if (it != pending_commit_.end() && it->second <= off) pending_commit_.erase(it);
        }
    }
    cv_.notify_all();
    return {};
}

void kafka_reader::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<kafka_reader*>(opaque);
    self->rebalances_.fetch_add(1, std::memory_order_relaxed);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        self->assign(parts);
    } else {
        self->revoke(parts, rd_kafka_assignment_lost(rk) != 0);
    }
}

void kafka_reader::assign(rd_kafka_topic_partition_list_t* parts) {
    {
        std::lock_guard g(mu_);
        for (int i = 0; i < parts->cnt; ++i) {
            owned_[parts->elems[i].partition] = ++epoch_;
            buffered_[parts->elems[i].partition] = 0;
        }
        assigned_.store(owned_.size(), std::memory_order_relaxed);
    }
    rd_kafka_error_t* e = nullptr;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cooperative(rk_)) {
        e = rd_kafka_incremental_assign(rk_, parts);
    } else {
        err = rd_kafka_assign(rk_, parts);
    }
    if (e != nullptr) {
        spdlog::error("Destination {}: assigning partitions failed: {}.", options_.name,
                      rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::error("Destination {}: assigning partitions failed: {}.", options_.name,
                      rd_kafka_err2str(err));
    }
    if (paused_) rd_kafka_pause_partitions(rk_, parts);
    spdlog::info("Destination {}: assigned partitions {} of {}.", options_.name, describe(parts),
                 options_.topic);
}

void kafka_reader::revoke(rd_kafka_topic_partition_list_t* parts, bool lost) {
    std::vector<std::int32_t> ps;
    for (int i = 0; i < parts->cnt; ++i) ps.push_back(parts->elems[i].partition);
    std::size_t left = 0;
    {
        // Let the worker deliver and commit what it already has of these partitions.
        std::unique_lock lk(mu_);
        auto drained = [&] {
            left = 0;
            for (auto p : ps) {
                if (auto it = buffered_.find(p); it != buffered_.end()) left += it->second;
                left += pending_commit_.count(p);
            }
            return left == 0 || closing_;
        };
        if (!lost) {
            cv_.wait_for(lk, options_.drain_timeout, drained);
        } else {
            drained();
        }
    }
    {
        std::lock_guard c(commit_mu_);
        list_ptr list(rd_kafka_topic_partition_list_new(parts->cnt));
        {
            std::lock_guard g(mu_);
            for (auto p : ps) {
                auto it = pending_commit_.find(p);
                if (it != pending_commit_.end() && !lost) {
                    rd_kafka_topic_partition_list_add(list.get(), options_.topic.c_str(), p)
                        ->offset = it->second;
                }
                if (it != pending_commit_.end()) pending_commit_.erase(it);
                owned_.erase(p);
                buffered_.erase(p);
            }
            assigned_.store(owned_.size(), std::memory_order_relaxed);
        }
        if (list->cnt > 0) {
            if (auto e = rd_kafka_commit(rk_, list.get(), 0); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
                spdlog::warn("Destination {}: final commit of revoked partitions failed: {}.",
                             options_.name, rd_kafka_err2str(e));
            }
        }
    }
    if (cooperative(rk_)) {
        if (auto* e = rd_kafka_incremental_unassign(rk_, parts)) rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk_, nullptr);
    }
    if (lost) {
        spdlog::warn(
            "Destination {}: partitions {} were lost (session expired); their "
            "uncommitted records are delivered again by their new owner.",
            options_.name, describe(parts));
    } else if (left > 0) {
        spdlog::warn(
            "Destination {}: released partitions {} with {} records not yet delivered "
            "after {} ms; their new owner delivers them again.",
            options_.name, describe(parts), left, options_.drain_timeout.count());
    } else {
        spdlog::info("Destination {}: released partitions {}.", options_.name, describe(parts));
    }
}

void kafka_reader::set_paused(bool pause) {
    if (pause == paused_) return;
    rd_kafka_topic_partition_list_t* parts = nullptr;
    if (rd_kafka_assignment(rk_, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || parts == nullptr) return;
    list_ptr owned_parts(parts);
    if (pause) {
        rd_kafka_pause_partitions(rk_, parts);
    } else {
        rd_kafka_resume_partitions(rk_, parts);
    }
    paused_ = pause;
}

void kafka_reader::refresh_lag() {
    auto now = std::chrono::steady_clock::now();
    if (now < next_lag_refresh_) return;
    next_lag_refresh_ = now + std::chrono::seconds(1);
    rd_kafka_topic_partition_list_t* parts = nullptr;
    if (rd_kafka_assignment(rk_, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || parts == nullptr) return;
    list_ptr owned_parts(parts);
    rd_kafka_position(rk_, parts);
    std::int64_t lag = 0;
    for (int i = 0; i < parts->cnt; ++i) {
        std::int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets(rk_, parts->elems[i].topic, parts->elems[i].partition,
                                           &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0 || parts->elems[i].offset < 0) {
            continue;
        }
        lag += std::max<std::int64_t>(0, hi - parts->elems[i].offset);
    }
    std::lock_guard g(mu_);
    lag_.store(lag + static_cast<std::int64_t>(buf_.size()), std::memory_order_relaxed);
}

void kafka_reader::poll_loop() {
    std::int64_t last_warn = 0;
    while (!stop_.load(std::memory_order_acquire)) {
        bool over = false, under = false;
        {
            std::lock_guard g(mu_);
            over = buf_.size() >= options_.buffer_events || buf_bytes_ >= options_.buffer_bytes;
            under = buf_.size() <= options_.buffer_events / 2 &&
                    buf_bytes_ <= options_.buffer_bytes / 2;
        }
        if (over) set_paused(true);
        if (under) set_paused(false);
        refresh_lag();
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 100);
        if (m == nullptr) continue;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now().time_since_epoch())
                           .count();
            if (now - last_warn >= 5) {
                last_warn = now;
                spdlog::warn("Destination {}: consumer error: {}.", options_.name,
                             rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        {
            std::lock_guard g(mu_);
            auto it = owned_.find(m->partition);
            if (it != owned_.end()) {
                record r;
                r.local = end_.load(std::memory_order_relaxed);
                r.partition = m->partition;
                r.offset = m->offset;
                r.epoch = it->second;
                r.payload.assign(static_cast<const char*>(m->payload), m->len);
                buf_bytes_ += r.payload.size();
                if (buf_.empty()) start_ = r.local;
                buf_.push_back(std::move(r));
                ++buffered_[m->partition];
                end_.store(buf_.back().local + 1, std::memory_order_release);
                fetched_.fetch_add(1, std::memory_order_relaxed);
            }
        }
        rd_kafka_message_destroy(m);
        cv_.notify_all();
    }
}

void kafka_reader::close() {
    std::lock_guard c(close_mu_);
    if (closed_) return;
    closed_ = true;
    {
        std::lock_guard g(mu_);
        closing_ = true;
    }
    cv_.notify_all();
    stop_.store(true, std::memory_order_release);
    if (poller_.joinable()) poller_.join();
    // Leaves the group now (the revoke runs here, without waiting: the worker has stopped and
    // committed what it delivered), so the partitions move to another instance at once.
    rd_kafka_consumer_close(rk_);
    spdlog::info("Destination {}: left consumer group {}.", options_.name, options_.group);
}

log_stats kafka_reader::stats() const {
    log_stats s;
    std::lock_guard g(mu_);
    s.start_offset = start_;
    s.end_offset = end_.load();
    s.bytes = buf_bytes_;
    s.appended_records = fetched_.load(std::memory_order_relaxed);
    return s;
}

kafka_reader_stats kafka_reader::reader_stats() const {
    kafka_reader_stats s;
    s.fetched = fetched_.load(std::memory_order_relaxed);
    s.committed_commits = commits_.load(std::memory_order_relaxed);
    s.failed_commits = failed_commits_.load(std::memory_order_relaxed);
    s.rebalances = rebalances_.load(std::memory_order_relaxed);
    s.assigned_partitions = assigned_.load(std::memory_order_relaxed);
    s.consumer_lag = lag_.load(std::memory_order_relaxed);
    std::lock_guard g(mu_);
    s.buffered = buf_.size();
    return s;
}

}  // namespace switchyard::log::kafka
