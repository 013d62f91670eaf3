#pragma once

#include "switchyard/result.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace switchyard {

// Records framed by the producing thread, so CRCs are computed on the I/O threads and the log's
// writer only copies bytes. Frame layout (little endian):
//   u32 payload_length | u32 crc32c(payload) | payload
class record_batch {
  public:
    void add(std::string_view payload);
    std::size_t count() const noexcept { return count_; }
    std::size_t bytes() const noexcept { return data_.size(); }
    const std::string& data() const noexcept { return data_; }
    bool empty() const noexcept { return count_ == 0; }
    void clear() noexcept {
        data_.clear();
        count_ = 0;
    }

  private:
    std::string data_;
    std::size_t count_ = 0;
};

inline constexpr std::size_t record_frame_overhead = 8;

struct log_record {
    std::uint64_t offset = 0;
    std::string payload;
};

struct log_stats {
    std::uint64_t start_offset = 0;  // oldest offset still stored
    std::uint64_t end_offset = 0;    // one past the newest offset readers may see
    std::uint64_t bytes = 0;         // bytes on disk plus bytes queued for append
    std::uint64_t capacity_bytes = 0;
    std::uint64_t segments = 0;
    std::uint64_t appended_records = 0;  // since start
    std::uint64_t appended_bytes = 0;    // since start
    std::uint64_t fsyncs = 0;            // since start
    std::uint64_t corrupt_records = 0;   // found by recovery or readers since start
    std::uint64_t full_refusals = 0;     // appends refused with log_full since start
};

// Where ingest appends accepted records. Appends come from many I/O threads.
// Implementations: every event_log, and log/kafka's producer (Kafka as the log).
class event_appender {
  public:
    // Called exactly once per accepted append, from the log's own thread: ec is empty when the
    // batch is durable under the configured policy; first_offset is its first record's offset.
    using append_handler = std::function<void(std::error_code ec, std::uint64_t first_offset)>;

    virtual ~event_appender() = default;

    // Queues `batch`. Returns an error at once, without calling `done`, when the batch cannot be
    // taken (errc::log_full when capacity would be exceeded, errc::log_closed after close()).
    virtual std::error_code append(record_batch batch, append_handler done) = 0;

    // Makes every queued append durable (or fails it), completes its handler, and stops.
    // Later appends fail with errc::log_closed. Idempotent.
    virtual void close() = 0;
};

// The durable event log. Reads come from delivery workers, each reading its own position.
// Implementations: log/local (segment files); log/kafka's per-destination consumer view.
class event_log : public event_appender {
  public:
    // One past the newest record readers may see (durable under the policy).
    virtual std::uint64_t end_offset() const = 0;
    // The oldest offset still stored.
    virtual std::uint64_t start_offset() const = 0;

    // Blocks the calling thread until end_offset() > offset, the deadline passes, or the log is
    // closed. Returns end_offset().
    virtual std::uint64_t wait_for(std::uint64_t offset,
                                   std::chrono::steady_clock::time_point deadline) = 0;

    // Appends to `out` records starting at `from` (clamped up to start_offset()), at most
    // `max_records` and about `max_bytes` (always at least one record when one exists). Returns
    // the offset to read from next. Corrupt records are skipped, counted and logged.
    virtual result<std::uint64_t> read(std::uint64_t from, std::size_t max_records,
                                       std::size_t max_bytes, std::vector<log_record>& out) = 0;

    // Deletes whole segments whose records all precede `offset` (the slowest cursor).
    virtual void release_before(std::uint64_t offset) = 0;

    virtual log_stats stats() const = 0;
};

// Durability policy of the local log.
enum class durability_policy {
    fsync,     // one fdatasync per group of appends before any of them is acknowledged (default)
    interval,  // acknowledged once written to the OS; fdatasync every `fsync_interval`
    none,      // acknowledged once written to the OS; never fsynced by us
};

}  // namespace switchyard
