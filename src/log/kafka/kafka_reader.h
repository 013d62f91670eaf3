#pragma once

#include "log/cursor_store.h"
#include "log/kafka/kafka_conf.h"
#include "switchyard/log.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <librdkafka/rdkafka.h>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::log::kafka {

struct kafka_reader_options {
    std::string name;  // the destination, for logs
    std::string brokers;
    std::string topic;
    std::string group;  // one consumer group per destination
    property_list properties;
    // Records fetched but not yet committed; beyond either limit fetching pauses.
    std::size_t buffer_events = 50000;
    std::uint64_t buffer_bytes = 64ull << 20;
    // On a rebalance, how long to let the worker deliver what it already fetched from the
    // partitions being taken away before giving them up (what is left is delivered again by the
    // new owner: at-least-once).
    std::chrono::milliseconds drain_timeout{10000};
};

struct kafka_reader_stats {
    std::uint64_t fetched = 0;  // records received since start
    std::uint64_t committed_commits = 0;
    std::uint64_t failed_commits = 0;
    std::uint64_t rebalances = 0;
    std::uint64_t assigned_partitions = 0;
    std::int64_t consumer_lag = -1;  // high watermark minus position over assigned partitions
    std::uint64_t buffered = 0;
};

// Kafka as the event log, delivery side: one consumer (group `group`) feeding one delivery
// worker. The worker sees an ordinary event_log with local offsets (0, 1, 2… in fetch order,
// so each partition's order is kept) and commits through cursor_backend; a commit up to a local
// offset commits, per partition, the Kafka offset after the last record before it. Kafka offsets
// only move past what the destination took, so a crash or rebalance redelivers, never skips.
//
// Partitions taken away by a rebalance: records of theirs still buffered are delivered within
// drain_timeout before the partitions are released; records left after that are skipped here and
// delivered by the new owner. A partition's records are tagged with its assignment epoch so a
// partition that comes back is read afresh from its committed offset.
//
// Lifecycle: open() subscribes and starts the poller thread (which also runs the rebalance
// callback); stop the worker, then close() (leaves the group promptly). Threads: read(),
// wait_for() and commit() from the worker's threads; stats() from anywhere.
class kafka_reader final : public event_log, public cursor_backend {
  public:
    // Throws std::runtime_error when librdkafka refuses the configuration.
    static std::unique_ptr<kafka_reader> open(kafka_reader_options options);
    ~kafka_reader() override;
    kafka_reader(const kafka_reader&) = delete;
    kafka_reader& operator=(const kafka_reader&) = delete;

    // event_log (read side only; appends go to the Kafka producer log).
    std::error_code append(record_batch batch, append_handler done) override;
    std::uint64_t end_offset() const override;
    std::uint64_t start_offset() const override;
    std::uint64_t wait_for(std::uint64_t offset,
                           std::chrono::steady_clock::time_point deadline) override;
    result<std::uint64_t> read(std::uint64_t from, std::size_t max_records, std::size_t max_bytes,
                               std::vector<log_record>& out) override;
    void release_before(std::uint64_t offset) override {}
    log_stats stats() const override;
    void close() override;

    // cursor_backend: a fresh reader has no local position; Kafka keeps the real one.
    std::optional<std::uint64_t> load(const std::string& name) const override {
        return std::nullopt;
    }
    std::error_code commit(const std::string& name, std::uint64_t offset) override;

    kafka_reader_stats reader_stats() const;

  private:
    struct record {
        std::uint64_t local = 0;
        std::int32_t partition = 0;
        std::int64_t offset = 0;
        std::uint32_t epoch = 0;
        std::string payload;
    };

    explicit kafka_reader(kafka_reader_options options);
    static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* parts, void* opaque);
    void assign(rd_kafka_topic_partition_list_t* parts);
    void revoke(rd_kafka_topic_partition_list_t* parts, bool lost);
    bool owned(std::int32_t partition, std::uint32_t epoch) const;  // with mu_ held
    void poll_loop();
    void set_paused(bool pause);
    void refresh_lag();

    const kafka_reader_options options_;
    rd_kafka_t* rk_ = nullptr;

    mutable std::mutex mu_;
    std::condition_variable cv_;  // new records, commits, closing
    std::deque<record> buf_;
    std::uint64_t buf_bytes_ = 0;
    std::uint64_t start_ = 0;  // local offset of buf_.front() (or end_ when empty)
    std::atomic<std::uint64_t> end_{0};
    std::map<std::int32_t, std::uint32_t> owned_;          // partition → assignment epoch
    std::map<std::int32_t, std::size_t> buffered_;         // partition → owned records buffered
    std::map<std::int32_t, std::int64_t> pending_commit_;  // partition → next offset to commit
    std::uint32_t epoch_ = 0;
    bool closing_ = false;

    std::mutex commit_mu_;  // one commit at a time; a revoke holds it while releasing partitions

    std::atomic<bool> stop_{false};
    bool paused_ = false;  // poller thread only
    std::atomic<std::uint64_t> fetched_{0};
    std::atomic<std::uint64_t> commits_{0};
    std::atomic<std::uint64_t> failed_commits_{0};
    std::atomic<std::uint64_t> rebalances_{0};
    std::atomic<std::uint64_t> assigned_{0};
    std::atomic<std::int64_t> lag_{-1};
    std::chrono::steady_clock::time_point next_lag_refresh_{};

    std::mutex close_mu_;
    bool closed_ = false;
    std::thread poller_;
};

}  // namespace switchyard::log::kafka
