#pragma once

#include "switchyard/log.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <sys/uio.h>
#include <system_error>
#include <thread>
#include <vector>

namespace switchyard::log {

struct local_log_options {
    // Directory holding the segment files; created if missing. One log per directory.
    std::filesystem::path dir;
    // A new segment starts once the active one reaches this size (it may overflow by one batch).
    std::uint64_t segment_bytes = 64ull << 20;
    // Appends are refused with errc::log_full when stored + queued bytes would exceed this.
    std::uint64_t capacity_bytes = 1ull << 30;
    durability_policy durability = durability_policy::fsync;
    // How often the writer fdatasyncs under durability_policy::interval.
    std::chrono::milliseconds fsync_interval{100};
    // Optional; called from the writer thread after every fdatasync with its latency.
    std::function<void(double seconds)> on_fsync;
};

// The embedded event log: append-only segment files of CRC32C-framed records in one directory.
//
// Lifecycle: created by open(), which recovers the directory and starts the writer thread;
// close() (or the destructor) drains the queue, makes it durable and joins the writer. Owned by
// the application wiring; shared by reference with the HTTP I/O threads (append) and the
// delivery workers (read, wait_for, release_before).
//
// Threads: append() runs on any thread and only queues. One writer thread owned by this object
// writes, fdatasyncs and calls the append handlers; handlers must not call close(). read() and
// wait_for() run concurrently on delivery threads. See local_log.cc for the on-disk invariants.
class local_log final : public event_log {
  public:
    // Recovers `options.dir` (truncating a torn tail) and starts the writer. Throws
    // std::system_error when the directory cannot be used; this is start-up only.
    static std::unique_ptr<local_log> open(local_log_options options);

    ~local_log() override;
    local_log(const local_log&) = delete;
    local_log& operator=(const local_log&) = delete;

    std::error_code append(record_batch batch, append_handler done) override;
    std::uint64_t end_offset() const override;
    std::uint64_t start_offset() const override;
    std::uint64_t wait_for(std::uint64_t offset,
                           std::chrono::steady_clock::time_point deadline) override;
    result<std::uint64_t> read(std::uint64_t from, std::size_t max_records, std::size_t max_bytes,
                               std::vector<log_record>& out) override;
    void release_before(std::uint64_t offset) override;
    log_stats stats() const override;
    void close() override;

    // Records between two sparse index entries of a segment.
    static constexpr std::uint64_t index_interval = 256;

  private:
    struct file;  // an open file descriptor, closed when the last reader drops it
    struct segment;
    struct pending {
        record_batch batch;
        append_handler done;
    };

    explicit local_log(local_log_options options);
    void recover();
    void writer_loop();
    void commit_group(std::vector<pending>& group);
    void commit_run(std::vector<pending>& group, std::size_t first, std::size_t last,
                    std::uint64_t run_bytes);
    bool roll();
    bool sync_active();
    void fail(std::vector<pending>& group, std::size_t first, std::size_t last,
              std::uint64_t run_bytes, std::error_code ec);
    void note_corrupt_in_reader(std::uint64_t base, std::uint64_t offset, const char* why);

    const local_log_options options_;

    // Queue and byte accounting, shared by appenders, the writer and release_before.
    mutable std::mutex mu_;
    std::condition_variable writer_cv_;  // queue non-empty or closing
    std::condition_variable reader_cv_;  // end_offset advanced or closing
    std::vector<pending> queue_;
    std::uint64_t queued_bytes_ = 0;  // queued plus being written
    std::uint64_t stored_bytes_ = 0;  // segment file bytes on disk
    bool closing_ = false;
    bool failed_ = false;  // an fdatasync failed: the log refuses appends (see local_log.cc)

    // Segments, oldest first; the last one is the active segment the writer appends to.
    mutable std::shared_mutex segments_mu_;
    std::deque<segment> segments_;

    std::atomic<std::uint64_t> start_offset_{0};
    std::atomic<std::uint64_t> end_offset_{0};
    std::atomic<bool> roll_requested_{false};  // a reader found damage in the active segment

    std::atomic<std::uint64_t> appended_records_{0};
    std::atomic<std::uint64_t> appended_bytes_{0};
    std::atomic<std::uint64_t> fsyncs_{0};
    std::atomic<std::uint64_t> corrupt_records_{0};
    std::atomic<std::uint64_t> full_refusals_{0};

    // Writer-thread state: only the writer reads or writes these once it has started.
    std::shared_ptr<file> active_file_;
    std::uint64_t active_base_ = 0;
    std::uint64_t active_bytes_ = 0;
    std::uint64_t active_records_ = 0;
    std::uint64_t next_offset_ = 0;
    bool unsynced_ = false;  // bytes written since the last fdatasync
    std::chrono::steady_clock::time_point next_sync_{};
    std::vector<iovec> iov_;
    std::vector<std::uint64_t> new_index_;

    std::mutex close_mu_;  // serialises joining the writer
    std::thread writer_;
    std::thread::id writer_id_;  // set once in open(), for the close-from-handler assertion
};

}  // namespace switchyard::log
