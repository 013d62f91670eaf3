#pragma once

#include "delivery/backoff.h"
#include "log/cursor_store.h"
#include "switchyard/destination.h"
#include "switchyard/event.h"
#include "switchyard/log.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::delivery {

struct worker_options {
    std::string name;  // destination name = cursor name = dead-letter file name
    std::size_t max_batch_events = 500;
    std::size_t max_batch_bytes = 4 << 20;  // payload bytes read from the log per batch
    // How long to wait for more events before sending a partial batch.
    std::chrono::milliseconds max_wait{200};
    std::chrono::milliseconds backoff_base{100};
    std::chrono::milliseconds backoff_max{30000};
    // Which record kinds this destination receives; others are skipped (the cursor still moves).
    std::vector<record_kind> kinds{record_kind::event};
    // Rejected batches are appended to `<dead_letter_dir>/<name>.ndjson`. Required.
    std::filesystem::path dead_letter_dir;
    // How long stop() waits for a send in flight before it warns that it is still waiting.
    std::chrono::milliseconds stop_timeout{10000};
    // Seed of the backoff jitter; tests fix it, production leaves it to std::random_device.
    std::optional<std::uint64_t> backoff_seed;
};

struct worker_stats {
    std::uint64_t delivered_events = 0;
    std::uint64_t retries = 0;          // send attempts answered with retry
    std::uint64_t rejected_events = 0;  // written to the dead-letter file
    std::uint64_t skipped_events = 0;   // records of a kind this destination does not receive
    std::uint64_t undecodable = 0;      // records whose payload failed to decode (corrupt)
    std::uint64_t cursor = 0;           // next offset to deliver
    std::uint64_t lag = 0;              // log end offset minus cursor
    bool healthy = true;                // last send delivered and the destination says healthy
    std::string last_error;
};

// Moves events from the log to one destination: reads from the destination's cursor, batches
// by count, bytes and time, calls send(), retries with capped full-jitter backoff, writes
// rejected batches to a dead-letter file, and commits the cursor only after the batch is
// delivered or dead-lettered. At-least-once: a crash or stop between send() and the commit
// sends that batch again on the next start.
//
// Lifecycle: built and start()ed by the delivery engine after the log and cursor store are
// open; stop()ped before they close. Owns one std::jthread that is the only caller of the
// destination's send() and close(). stats() may be called from any thread. on_commit runs on
// the worker thread after each successful cursor commit.
class worker {
  public:
    worker(worker_options options, event_log& log, log::cursor_store& cursors,
           std::unique_ptr<destination> dest, std::function<void()> on_commit);
    ~worker();

    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // Starts the thread. Throws std::invalid_argument at start-up when options are unusable.
    void start();
    // Interrupts waits and backoff, lets a send in flight finish (a retry answer is then not
    // retried), commits what was delivered, closes the destination, and joins. Idempotent.
    void stop();

    worker_stats stats() const;

  private:
    struct batch;

    void run(std::stop_token st);
    std::uint64_t initial_cursor();
    // Fills `b` with records from the cursor; false when none arrived (stop or idle timeout).
    bool collect(std::stop_token& st, batch& b);
    void decode(batch& b);
    // Sends `b` until it is delivered or dead-lettered (true), or stop is requested (false).
    bool deliver(std::stop_token& st, batch& b);
    std::error_code write_dead_letters(const batch& b, const std::string& reason);
    void advance(std::uint64_t next);
    // Waits until `deadline` or stop; false when stop was requested.
    bool wait_until(std::stop_token& st, std::chrono::steady_clock::time_point deadline);
    void set_error(std::string e);

    worker_options opts_;
    event_log& log_;
    log::cursor_store& cursors_;
    std::unique_ptr<destination> dest_;
    std::function<void()> on_commit_;
    backoff backoff_;

    mutable std::mutex mu_;  // guards last_error_ and finished_; cv_ waits use it
    std::condition_variable_any cv_;
    std::string last_error_;

    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> retries_{0};
    std::atomic<std::uint64_t> rejected_{0};
    std::atomic<std::uint64_t> skipped_{0};
    std::atomic<std::uint64_t> undecodable_{0};
    std::atomic<std::uint64_t> cursor_{0};
    std::atomic<bool> healthy_{true};
    bool finished_ = false;  // the thread left run(); guarded by mu_

    std::mutex stop_mu_;  // serialises start() and stop()
    bool started_ = false;
    bool closed_ = false;
    std::jthread thread_;
};

}  // namespace switchyard::delivery
