#pragma once

#include "switchyard/log.h"
#include "switchyard/result.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace switchyard::admit {

struct dedup_options {
    // Most (source, messageId) pairs remembered; the oldest are forgotten first beyond it. Split
    // evenly across shards (each holds max_entries / shards, rounded down, at least 1). Memory is
    // allocated as the window fills: about 29 bytes per entry once full (see dedup.cc).
    std::size_t max_entries = 10'000'000;
    // How long after its first sighting a pair is still a duplicate.
    std::chrono::milliseconds window{std::chrono::hours(24)};
    // Independent locks; more shards, less contention between I/O threads. Clamped to
    // [1, max_entries].
    std::size_t shards = 64;
    // Seed of the 64-bit hash. 0 picks a random seed per process, so nobody outside can aim
    // messageIds at one probe chain; tests pass a fixed one.
    std::uint64_t hash_seed = 0;
};

struct dedup_stats {
    std::uint64_t entries = 0;          // pairs remembered now
    std::uint64_t duplicates = 0;       // check_and_insert calls answered "already seen"
    std::uint64_t inserted = 0;         // check_and_insert calls that recorded a new pair
    std::uint64_t evicted_by_size = 0;  // pairs forgotten inside the window to stay in bounds
    std::uint64_t expired = 0;          // pairs forgotten because the window passed
    std::uint64_t rebuilt = 0;          // pairs restored from the log by rebuild()
    std::uint64_t memory_bytes = 0;     // allocated by the window (estimate, excludes malloc slack)
};

// Remembers the (source, messageId) pairs admitted in the last `window`, so that a batch an SDK
// resends (retry, page-unload flush) is answered 2xx without being stored twice.
//
// A pair is kept as a 64-bit hash of `source '\0' messageId` (XXH64) with its first-sighting
// time; two different pairs sharing a hash make the second a false duplicate. With n pairs in
// the window that has probability about n^2 / 2^65 over the whole window (10M pairs: ~3e-6).
//
// Bounds: at most max_entries pairs (the oldest are evicted first, counted as evicted_by_size);
// pairs older than `window` are forgotten lazily when their shard next takes an insert. A
// duplicate does not refresh its pair: the window runs from the first sighting.
//
// Lifecycle: built at start-up from config, filled by rebuild() from the event log before the
// HTTP listeners open, then used by admission until shutdown. Owned by the application wiring,
// shared by reference with the I/O threads.
//
// Threads: every method is thread-safe. Pairs are spread over `shards` independently locked
// shards by hash, so I/O threads rarely contend; no method blocks on I/O except rebuild().
class dedup_window {
  public:
    // Throws std::invalid_argument when `window` is not positive (start-up only).
    explicit dedup_window(dedup_options o);
    ~dedup_window();
    dedup_window(const dedup_window&) = delete;
    dedup_window& operator=(const dedup_window&) = delete;

    // True when the pair was first seen less than `window` before now_ms (a duplicate);
    // otherwise records it with time now_ms and returns false. now_ms is Unix epoch ms.
    bool check_and_insert(std::string_view source, std::string_view message_id,
                          std::int64_t now_ms);

    // Forgets a pair, e.g. when the append that followed its insert failed, so the client's
    // retry is not mistaken for a duplicate. No effect when the pair is not remembered.
    void erase(std::string_view source, std::string_view message_id);

    // Restores the window from the log: every `event` record from start_offset() to the
    // end_offset() at the call whose received_at_ms lies within `window` of now_ms is
    // remembered with its received_at_ms. Quarantine records are skipped (they were answered
    // but not admitted as events), and so are undecodable ones. Only covers what the log still
    // retains. Returns the number of records scanned, or the log's read error. Call once at
    // start-up, before admission begins.
    result<std::size_t> rebuild(event_log& log, std::int64_t now_ms);

    dedup_stats stats() const;

    // The hash a pair is remembered by (exposed for tests and tools).
    std::uint64_t hash(std::string_view source, std::string_view message_id) const;

  private:
    struct shard;

    // Requires s.mu held.
    bool insert_locked(shard& s, std::uint64_t h, std::int64_t now_ms, bool from_rebuild);
    std::size_t shard_index(std::uint64_t h) const noexcept;

    const std::int64_t window_ms_;
    const std::uint64_t seed_;
    const std::size_t shard_count_;
    const std::size_t shard_capacity_;
    std::unique_ptr<shard[]> shards_;
};

// XXH64 (https://github.com/Cyan4973/xxHash, the 64-bit variant, spec v0.1.1) of `data`.
std::uint64_t xxh64(std::string_view data, std::uint64_t seed) noexcept;

}  // namespace switchyard::admit
