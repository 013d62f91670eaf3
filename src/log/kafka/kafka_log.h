#pragma once

#include "log/kafka/kafka_conf.h"
#include "switchyard/log.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <librdkafka/rdkafka.h>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::log::kafka {

// Which id keys a record in the log topic (and so picks its partition). Records with the same
// key keep their order.
enum class key_policy {
    anonymous_id_or_user_id,  // anonymousId when present, else userId (one visitor, one partition)
    user_id_or_anonymous_id,  // userId when present, else anonymousId
    message_id,               // spread evenly; no per-visitor order
};

struct kafka_log_options {
    std::string brokers;  // bootstrap list host:port,…
    std::string topic;
    key_policy key = key_policy::anonymous_id_or_user_id;
    // How long a record may wait for the brokers' acknowledgement (acks=all) before its append
    // fails (ingest then answers 503 and the client retries).
    std::chrono::milliseconds ack_timeout{10000};
    // Bytes appended but not yet acknowledged; beyond it appends are refused with log_full.
    std::uint64_t max_pending_bytes = 256ull << 20;
    // While the brokers do not acknowledge, appends are refused at once with errc::unavailable
    // (instead of every request waiting for ack_timeout), except one probe per interval whose
    // success ends the outage.
    std::chrono::milliseconds probe_interval{1000};
    std::string compression = "lz4";
    std::chrono::milliseconds linger{5};
    property_list properties;  // pass-through librdkafka properties (SASL/SSL, tuning)
};

struct kafka_log_stats {
    std::uint64_t appended_records = 0;  // acknowledged by the brokers since start
    std::uint64_t appended_bytes = 0;
    std::uint64_t failed_records = 0;   // appends whose records were not acknowledged
    std::uint64_t refused_appends = 0;  // refused at once (full, unavailable or closed)
    std::uint64_t pending_bytes = 0;
    bool available = true;  // the brokers acknowledged the latest records
};

// Kafka as the event log, collector side: an idempotent producer (acks=all) appending each
// record to one topic, keyed by visitor. An append's handler runs once every record of the batch
// is acknowledged by the brokers (or failed), so a 2xx means the events are replicated in Kafka.
//
// Record value = the log record payload (the same bytes the local log stores: routing header
// + canonical JSON), so delivery workers decode it exactly like a local record. Kafka messages
// also carry headers `switchyard-source`, `switchyard-type` and `switchyard-message-id` for
// tools such as kcat.
//
// Lifecycle: open() connects lazily (librdkafka) and starts the poller thread; close() waits up
// to ack_timeout for outstanding records, fails the rest, and joins. Threads: append() from any
// thread; handlers run on the poller thread.
class kafka_log final : public event_appender {
  public:
    // Throws std::runtime_error when librdkafka refuses the configuration.
    static std::unique_ptr<kafka_log> open(kafka_log_options options);
    ~kafka_log() override;
    kafka_log(const kafka_log&) = delete;
    kafka_log& operator=(const kafka_log&) = delete;

    std::error_code append(record_batch batch, append_handler done) override;
    void close() override;

    kafka_log_stats stats() const;

  private:
    struct inflight;
    explicit kafka_log(kafka_log_options options);
    static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque);
    static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
    void finish_record(inflight* f, rd_kafka_resp_err_t err, std::int64_t offset,
                       std::size_t bytes);
    void poll_loop();

    const kafka_log_options options_;
    rd_kafka_t* rk_ = nullptr;
    rd_kafka_topic_t* rkt_ = nullptr;

    std::mutex mu_;  // guards closing_ and the capacity check with pending_bytes_
    bool closing_ = false;
    std::atomic<std::uint64_t> pending_bytes_{0};
    std::atomic<std::uint64_t> outstanding_{0};  // batches not yet completed
    std::atomic<bool> available_{true};
    std::atomic<bool> stop_poller_{false};
    std::chrono::steady_clock::time_point stop_deadline_{};

    std::atomic<std::uint64_t> appended_records_{0};
    std::atomic<std::uint64_t> appended_bytes_{0};
    std::atomic<std::uint64_t> failed_records_{0};
    std::atomic<std::uint64_t> refused_{0};
    std::atomic<std::int64_t> last_error_log_ms_{0};
    std::int64_t last_probe_ms_ = 0;  // guarded by mu_
    void mark_unavailable();

    std::mutex close_mu_;
    std::thread poller_;
};

}  // namespace switchyard::log::kafka
