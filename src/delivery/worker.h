#pragma once

#include "delivery/backoff.h"
#include "delivery/breaker.h"
#include "delivery/dead_letters.h"
#include "log/cursor_store.h"
#include "switchyard/destination.h"
#include "switchyard/event.h"
#include "switchyard/log.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace switchyard::delivery {

// What a worker does when its destination falls more than `max_lag_events` behind the log end.
enum class lag_policy {
    block,        // nothing: the log fills up and ingest answers 503 (back-pressure)
    drop_oldest,  // skip the oldest events, one `dropped` dead-letter entry (ids only) per event
};

// Decides per event: nullopt = deliver (with `transformed` as the event JSON when the hook
// filled it), or the reason to skip it (counted in worker_stats::filtered; the cursor moves on).
// Called on the worker's reader thread; must not throw.
using route_fn =
    std::function<std::optional<std::string_view>(const event_view& e, std::string& transformed)>;

// Called after every send attempt, on the sender thread that made it (so it must be
// thread-safe, and must not throw): the batch size, how long send() took, and its answer.
using send_observer = std::function<void(std::size_t events, double seconds, send_status status)>;

struct worker_options {
    std::string name;  // destination name = cursor name
    std::size_t max_batch_events = 500;
    std::size_t max_batch_bytes = 4 << 20;  // payload bytes read from the log per batch
    // How long to wait for more events before sending a partial batch.
    std::chrono::milliseconds max_wait{200};
    std::chrono::milliseconds backoff_base{100};
    std::chrono::milliseconds backoff_max{30000};
    // Retry budget of a batch: it is exhausted after this many attempts (0 = unlimited) or
    // this long after its first attempt (0 = unlimited), not counting time the breaker was open
    // or the worker paused. An exhausted batch of several events is split into single-event
    // batches with fresh budgets; an exhausted single event is dead-lettered (budget_exhausted).
    std::uint32_t retry_max_attempts = 10;
    std::chrono::milliseconds retry_max_age{std::chrono::hours(24)};
    // Consecutive retry outcomes that open the circuit breaker (0 = no breaker). While open
    // nothing is sent; after the cooldown one single-event probe is sent; the cooldown doubles
    // per failed probe up to breaker_cooldown_max. Probes do not count against budgets.
    std::uint32_t breaker_failures = 5;
    std::chrono::milliseconds breaker_cooldown{10000};
    std::chrono::milliseconds breaker_cooldown_max{300000};
    // Lag policy: 0 = unlimited. See lag_policy.
    std::uint64_t max_lag_events = 0;
    lag_policy when_lagging = lag_policy::block;
    // Which record kinds this destination receives; others are skipped (the cursor still moves).
    std::vector<record_kind> kinds{record_kind::event};
    route_fn route;         // empty = deliver everything unchanged
    send_observer on_send;  // optional
    // Called on a sender thread for each deletion record the destination took (the deletion
    // audit trail's confirmation). Optional; must be thread-safe.
    std::function<void(const event_view&)> on_delivered;
    // How long stop() waits for sends in flight before it warns that it is still waiting.
    std::chrono::milliseconds stop_timeout{10000};
    // Seed of the backoff jitter; tests fix it, production leaves it to std::random_device.
    std::optional<std::uint64_t> backoff_seed;
};

struct worker_stats {
    std::uint64_t delivered = 0;         // events the destination took
    std::uint64_t retries = 0;           // send attempts answered with retry
    std::uint64_t rejected = 0;          // events the destination rejected (whole batch or item)
    std::uint64_t budget_exhausted = 0;  // events dead-lettered because their budget ran out
    std::uint64_t dead_lettered = 0;     // entries written to the dead-letter store (all kinds)
    std::uint64_t dropped = 0;           // events skipped by the drop_oldest lag policy
    std::uint64_t replayed = 0;          // dead letters delivered by a replay
    std::map<std::string, std::uint64_t, std::less<>> filtered;  // route hook: reason → events
    std::uint64_t skipped_events = 0;  // records of a kind this destination does not receive
    std::uint64_t undecodable = 0;     // records whose payload failed to decode (corrupt)
    std::uint64_t cursor = 0;          // committed: next offset to deliver
    std::uint64_t lag_events = 0;      // log end offset minus cursor
    double lag_seconds = 0;            // now minus received_at of the event at the cursor
    std::string state;                 // running | paused | breaker_open | backing_off
    std::uint64_t breaker_opens = 0;
    std::uint32_t in_flight = 0;  // send() calls in progress
    bool healthy = true;          // last send delivered and every instance says healthy
    std::string last_error;
};

// Moves events from the log to one destination (the delivery engine of the README).
//
// One reader thread cuts batches in log order from the destination's cursor (count, bytes,
// max_wait), decodes and routes them, applies the lag policy and queues the batches; one sender
// thread per destination instance (the concurrency limit) sends them, retries with capped
// full-jitter backoff within the retry budget, isolates poison events, and writes rejected,
// exhausted and dropped events to the dead-letter store. The cursor is committed only up to the
// end of the last batch before which every batch is delivered or dead-lettered: at-least-once.
// Dead letters marked for replay are sent before new batches.
//
// Lifecycle: built and start()ed by the app after the log, cursor store and dead-letter store
// are open; stop()ped before they close. Owns its threads; each sender thread is the only caller
// of its instance's send() and close(). stats(), pause(), resume() may be called from any thread.
// on_commit runs on one of this worker's threads after each successful cursor commit (calls
// are serialised per worker). Nothing in the worker takes a lock shared with other workers,
// except what on_commit, on_send and route do and the dead-letter store's own mutex.
class worker {
  public:
    worker(worker_options options, event_log& log, log::cursor_backend& cursors,
           std::vector<std::unique_ptr<destination>> instances, dead_letter_store& dead_letters,
           std::function<void()> on_commit);
    ~worker();

    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // Starts the threads. Throws std::invalid_argument at start-up when options are unusable.
    void start();
    // Interrupts waits and backoff, lets the sends in flight finish (a retry answer is then not
    // retried), commits what was delivered, closes every instance, and joins. Idempotent.
    void stop();

    // A paused worker starts no send (lag grows, the lag policy does not drop); resume() wakes it.
    void pause();
    void resume();
    bool paused() const;

    worker_stats stats() const;

  private:
    struct job;
    struct unit;
    struct sender;

    void run_reader(std::stop_token st);
    void run_sender(std::size_t index, std::stop_token st);
    std::uint64_t initial_cursor();

    // Reader side.
    std::shared_ptr<job> collect(std::stop_token& st);
    void prepare(job& j);
    void enqueue(std::shared_ptr<job> j);
    void dispatch_replay();
    bool apply_lag_policy(std::stop_token& st);
    void refresh_head_time();

    // Sender side.
    bool process(sender& s, job& j, std::stop_token& st);
    bool settle_delivered(job& j, std::size_t begin, std::size_t n, const send_outcome& out,
                          std::uint32_t attempts, std::stop_token& st);
    struct failure {
        std::size_t index;
        std::string kind;
        std::string reason;
        std::uint32_t attempts;
        std::string last_response;
    };
    bool settle_failed(job& j, std::vector<failure> failed, std::stop_token& st);
    // Appends to the dead-letter store; entries stored are removed from `entries`.
    std::error_code append_dead_letters(std::vector<dead_letter>& entries);
    bool drop_rest(job& j, std::deque<unit>& units, std::stop_token& st);
    // Runs `op` until it succeeds (back-pressure: nothing advances meanwhile) or stop.
    bool persist(std::stop_token& st, std::string_view what,
                 const std::function<std::error_code()>& op);
    void complete(job& j);
    void commit(std::uint64_t next);

    bool wait_until(std::stop_token& st, std::chrono::steady_clock::time_point deadline);
    void set_error(std::string e);

    worker_options opts_;
    event_log& log_;
    log::cursor_backend& cursors_;
    std::vector<std::unique_ptr<destination>> instances_;
    dead_letter_store* dead_letters_;
    std::function<void()> on_commit_;
    std::uint64_t seed_;

    // Guards the queues, the breaker, pause and finished_; cv_ waits use it. Local to this worker.
    mutable std::mutex mu_;
    std::condition_variable_any cv_;
    std::deque<std::shared_ptr<job>> window_;  // log batches not yet committed, in log order
    std::deque<std::shared_ptr<job>> ready_;   // batches waiting for a sender
    std::size_t window_batches_ = 0;           // batches in window_ that hold records
    bool replay_in_flight_ = false;
    bool paused_ = false;
    std::uint64_t generation_ = 0;  // bumped when pause or the breaker changes: wakes the gates
    breaker breaker_;
    std::size_t finished_ = 0;  // threads that left their loop
    std::string last_error_;
    std::map<std::string, std::uint64_t, std::less<>> filtered_;

    std::mutex commit_mu_;         // serialises cursor commits and on_commit
    std::uint64_t committed_ = 0;  // guarded by commit_mu_
    std::uint64_t read_pos_ = 0;   // reader thread only: next offset to cut

    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> retries_{0};
    std::atomic<std::uint64_t> rejected_{0};
    std::atomic<std::uint64_t> exhausted_{0};
    std::atomic<std::uint64_t> dead_lettered_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> replayed_{0};
    std::atomic<std::uint64_t> skipped_{0};
    std::atomic<std::uint64_t> undecodable_{0};
    std::atomic<std::uint64_t> cursor_{0};
    std::atomic<std::int64_t> head_received_ms_{0};
    std::atomic<std::uint32_t> in_flight_{0};
    std::atomic<std::uint32_t> backing_off_{0};
    std::atomic<bool> healthy_{true};

    std::mutex stop_mu_;  // serialises start() and stop()
    bool started_ = false;
    bool closed_ = false;
    std::stop_source stop_;
    std::vector<std::unique_ptr<sender>> senders_;
    std::vector<std::thread> threads_;
};

}  // namespace switchyard::delivery
