#include "admit/dedup.h"

#include "log/local/local_log.h"
#include "switchyard/event.h"
#include "switchyard/log.h"
#include "unit/log/temp_dir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace switchyard::admit {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t t0 = 1'700'000'000'000;  // an arbitrary epoch ms
constexpr std::int64_t window_ms = 60'000;

dedup_options options(std::size_t max_entries = 1'000'000, std::size_t shards = 64) {
    dedup_options o;
    o.max_entries = max_entries;
    o.window = std::chrono::milliseconds(window_ms);
    o.shards = shards;
    o.hash_seed = 0x5eed;
    return o;
}

std::string id(std::size_t n) { return "msg-" + std::to_string(n); }

TEST(DedupHash, MatchesReferenceXxh64) {
    // Values from libxxhash 0.8.1 (XXH64).
    EXPECT_EQ(xxh64("", 0), 0xEF46DB3751D8E999ull);
    EXPECT_EQ(xxh64("a", 0), 0xD24EC4F1A98C6E5Bull);
    EXPECT_EQ(xxh64("abc", 0), 0x44BC2CF5AD770999ull);
    EXPECT_EQ(xxh64(std::string_view("web\0msg-1", 9), 0), 0x34A1A9DB417EDFB5ull);
    EXPECT_EQ(xxh64("abcdefg", 42), 0x3434EB61B9CC5EA5ull);
    const std::string long_key = "0123456789abcdef0123456789abcdef0123456789abc";
    EXPECT_EQ(xxh64(long_key, 0), 0xFC9BC401C0E4CFF3ull);
    EXPECT_EQ(xxh64(long_key, 0x9E3779B97F4A7C15ull), 0xA578778C62C30881ull);
}

TEST(DedupWindow, RepeatWithinWindowIsDuplicate) {
    dedup_window w(options());
    EXPECT_FALSE(w.check_and_insert("web", "m1", t0));
    EXPECT_TRUE(w.check_and_insert("web", "m1", t0 + 1));
    EXPECT_TRUE(w.check_and_insert("web", "m1", t0 + window_ms - 1));
    EXPECT_FALSE(w.check_and_insert("web", "m2", t0 + 2));

    const auto s = w.stats();
    EXPECT_EQ(s.entries, 2u);
    EXPECT_EQ(s.inserted, 2u);
    EXPECT_EQ(s.duplicates, 2u);
    EXPECT_EQ(s.expired, 0u);
}

TEST(DedupWindow, SameMessageIdFromAnotherSourceIsNotDuplicate) {
    dedup_window w(options());
    EXPECT_FALSE(w.check_and_insert("web", "m1", t0));
    EXPECT_FALSE(w.check_and_insert("app", "m1", t0));
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    EXPECT_FALSE(w.check_and_insert("ab", "c", t0));
    EXPECT_FALSE(w.check_and_insert("a", "bc", t0));
    EXPECT_TRUE(w.check_and_insert("app", "m1", t0));
    EXPECT_EQ(w.stats().entries, 4u);
}

TEST(DedupWindow, EmptyMessageIdIsNeverDuplicate) {
    dedup_window w(options());
    EXPECT_FALSE(w.check_and_insert("web", "", t0));
    EXPECT_FALSE(w.check_and_insert("web", "", t0));
    EXPECT_EQ(w.stats().entries, 0u);
}

TEST(DedupWindow, ExpiresOnceWindowHasPassedSinceFirstSighting) {
    dedup_window w(options());
    EXPECT_FALSE(w.check_and_insert("web", "m1", t0));
    // A duplicate does not refresh the pair: the window runs from the first sighting.
    EXPECT_TRUE(w.check_and_insert("web", "m1", t0 + window_ms - 1));
    EXPECT_FALSE(w.check_and_insert("web", "m1", t0 + window_ms));
    EXPECT_EQ(w.stats().expired, 1u);
    // Recorded afresh at t0 + window.
    EXPECT_TRUE(w.check_and_insert("web", "m1", t0 + 2 * window_ms - 1));
    EXPECT_EQ(w.stats().entries, 1u);
}

TEST(DedupWindow, ExpiryIsLazyAndEmptiesTheShard) {
    dedup_window w(options(1000, 1));
    for (std::size_t i = 0; i < 100; ++i) ASSERT_FALSE(w.check_and_insert("web", id(i), t0));
    EXPECT_EQ(w.stats().entries, 100u);
    // The next insert into the shard forgets everything older than the window.
    EXPECT_FALSE(w.check_and_insert("web", "late", t0 + window_ms));
    const auto s = w.stats();
    EXPECT_EQ(s.entries, 1u);
    EXPECT_EQ(s.expired, 100u);
}

TEST(DedupWindow, StaleEntryBehindAFresherFrontIsNotDuplicate) {
    // I/O threads pass their own clock readings, so inserts are not quite in time order.
    dedup_window w(options(1000, 1));
    EXPECT_FALSE(w.check_and_insert("web", "front", t0 + 10));
    EXPECT_FALSE(w.check_and_insert("web", "older", t0));
    EXPECT_FALSE(w.check_and_insert("web", "older", t0 + window_ms + 5));
    EXPECT_TRUE(w.check_and_insert("web", "front", t0 + window_ms + 5));
    EXPECT_EQ(w.stats().entries, 2u);
    EXPECT_EQ(w.stats().expired, 1u);
}

TEST(DedupWindow, SizeBoundEvictsOldestFirst) {
    dedup_window w(options(100, 1));
    for (std::size_t i = 0; i < 150; ++i) ASSERT_FALSE(w.check_and_insert("web", id(i), t0));
    auto s = w.stats();
    EXPECT_EQ(s.entries, 100u);
    EXPECT_EQ(s.evicted_by_size, 50u);
    for (std::size_t i = 50; i < 150; ++i) EXPECT_TRUE(w.check_and_insert("web", id(i), t0));
    for (std::size_t i = 0; i < 50; ++i) EXPECT_FALSE(w.check_and_insert("web", id(i), t0));
    s = w.stats();
    EXPECT_EQ(s.entries, 100u);
    EXPECT_EQ(s.evicted_by_size, 100u);
}

TEST(DedupWindow, MemoryStaysBoundedUnderSustainedNewIds) {
    constexpr std::size_t max_entries = 20'000;
    dedup_window w(options(max_entries, 8));
    const auto empty = w.stats().memory_bytes;
    for (std::size_t i = 0; i < 2 * max_entries; ++i) w.check_and_insert("web", id(i), t0);
    const auto full = w.stats();
    EXPECT_LE(full.entries, max_entries);
    EXPECT_GT(full.memory_bytes, empty);
    // 16 bytes of ring plus at most 8/3 slots of 8 bytes per entry, plus fixed overhead.
    EXPECT_LE(full.memory_bytes, max_entries * 38 + 8 * 1024);

    for (std::size_t i = 2 * max_entries; i < 20 * max_entries; ++i) {
        w.check_and_insert("web", id(i), t0);
    }
    const auto later = w.stats();
    EXPECT_LE(later.entries, max_entries);
    EXPECT_GE(later.entries, max_entries * 9 / 10);
    EXPECT_EQ(later.memory_bytes, full.memory_bytes);
    EXPECT_EQ(later.inserted, 20 * max_entries);
    EXPECT_EQ(later.evicted_by_size, later.inserted - later.entries);
}

TEST(DedupWindow, EraseForgetsThePair) {
    dedup_window w(options());
    EXPECT_FALSE(w.check_and_insert("web", "m1", t0));
    w.erase("web", "m1");
    EXPECT_EQ(w.stats().entries, 0u);
    EXPECT_FALSE(w.check_and_insert("web", "m1", t0 + 1));  // the client's retry is admitted
    EXPECT_TRUE(w.check_and_insert("web", "m1", t0 + 2));
    w.erase("web", "unknown");  // no effect
    w.erase("app", "m1");
    EXPECT_TRUE(w.check_and_insert("web", "m1", t0 + 3));
    EXPECT_EQ(w.stats().entries, 1u);
}

TEST(DedupWindow, ErasedEntryLeavingTheRingDoesNotDropItsReinsertedPair) {
    dedup_window w(options(4, 1));
    EXPECT_FALSE(w.check_and_insert("web", "x", t0));
    EXPECT_FALSE(w.check_and_insert("web", "a", t0));
    w.erase("web", "a");                               // ring: x, erased a
    EXPECT_FALSE(w.check_and_insert("web", "a", t0));  // ring: x, erased a, a
    EXPECT_FALSE(w.check_and_insert("web", "b", t0));
    EXPECT_FALSE(w.check_and_insert("web", "c", t0));  // evicts x
    EXPECT_FALSE(w.check_and_insert("web", "d", t0));  // pushes the erased a out
    EXPECT_EQ(w.stats().evicted_by_size, 1u);
    EXPECT_TRUE(w.check_and_insert("web", "a", t0));
    EXPECT_FALSE(w.check_and_insert("web", "e", t0));  // evicts the live a
    EXPECT_FALSE(w.check_and_insert("web", "a", t0));
    EXPECT_EQ(w.stats().evicted_by_size, 3u);
    EXPECT_EQ(w.stats().entries, 4u);
}

// A plain model of the window's contract, to compare against under random operations.
class model_window {
  public:
    model_window(std::size_t capacity, std::int64_t window)
        : capacity_(capacity), window_(window) {}

    bool check_and_insert(const std::string& key, std::int64_t now) {
        const std::int64_t cutoff = now - window_;
        while (!ring_.empty() && (ring_.front().dead || ring_.front().time <= cutoff)) pop();
        if (auto it = index_.find(key); it != index_.end()) {
            item& e = ring_[it->second - head_];
            if (e.time > cutoff) return true;
            e.dead = true;
            index_.erase(it);
        }
        if (ring_.size() == capacity_) pop();
        index_[key] = head_ + ring_.size();
        ring_.push_back({key, now, false});
        return false;
    }

    void erase(const std::string& key) {
        if (auto it = index_.find(key); it != index_.end()) {
            ring_[it->second - head_].dead = true;
            index_.erase(it);
        }
    }

    std::size_t size() const { return index_.size(); }

  private:
    struct item {
        std::string key;
        std::int64_t time;
        bool dead;
    };

    void pop() {
        if (!ring_.front().dead) index_.erase(ring_.front().key);
        ring_.pop_front();
        ++head_;
    }

    std::size_t capacity_;
    std::int64_t window_;
    std::deque<item> ring_;
    std::unordered_map<std::string, std::size_t> index_;
    std::size_t head_ = 0;
};

void compare_with_model(std::size_t capacity, std::size_t ids, std::size_t ops, unsigned seed) {
    dedup_window w(options(capacity, 1));
    model_window m(capacity, window_ms);
    std::mt19937_64 rng(seed);
    std::int64_t now = t0;
    for (std::size_t op = 0; op < ops; ++op) {
        now += static_cast<std::int64_t>(rng() % 40);
        const std::string key = id(rng() % ids);
        if (rng() % 10 == 0) {
            w.erase("web", key);
            m.erase(key);
            continue;
        }
        // Up to 30 ms of jitter, as between I/O threads reading the clock.
        const std::int64_t t = now - static_cast<std::int64_t>(rng() % 30);
        ASSERT_EQ(w.check_and_insert("web", key, t), m.check_and_insert(key, t))
            << "op " << op << " key " << key;
        ASSERT_EQ(w.stats().entries, m.size()) << "op " << op;
    }
}

TEST(DedupWindow, MatchesModelWhenFull) { compare_with_model(64, 200, 200'000, 1); }

TEST(DedupWindow, MatchesModelWhileGrowing) {
    // Far below capacity, so no eviction; the ring and table double several times.
    compare_with_model(1'000'000, 20'000, 100'000, 2);
}

TEST(DedupWindow, ConcurrentInsertsReportEachIdNewExactlyOnce) {
    constexpr std::size_t threads = 8;
    constexpr std::size_t ids = 50'000;
    dedup_window w(options());
    std::vector<std::atomic<int>> fresh(ids);
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t) {
        pool.emplace_back([&w, &fresh, t] {
            // Each thread walks all ids from a different starting point, so they overlap.
            for (std::size_t k = 0; k < ids; ++k) {
                const std::size_t i = (k + t * ids / threads) % ids;
                if (!w.check_and_insert("web", id(i), t0)) fresh[i].fetch_add(1);
            }
        });
    }
    for (auto& th : pool) th.join();
    for (std::size_t i = 0; i < ids; ++i) ASSERT_EQ(fresh[i].load(), 1) << id(i);
    const auto s = w.stats();
    EXPECT_EQ(s.entries, ids);
    EXPECT_EQ(s.inserted, ids);
    EXPECT_EQ(s.duplicates, (threads - 1) * ids);
}

std::string record(record_kind kind, std::string_view source, std::string_view message_id,
                   std::int64_t received_at_ms) {
    event_header h;
    h.kind = kind;
    h.type = event_type::track;
    h.received_at_ms = received_at_ms;
    h.source = std::string(source);
    h.message_id = std::string(message_id);
    h.event_name = "Clicked";
    std::string out;
    encode_event(h, R"({"type":"track"})", out);
    return out;
}

// Appends `batch` and waits for its handler.
std::error_code append_wait(event_log& log, record_batch batch) {
    std::promise<std::error_code> done;
    auto future = done.get_future();
    const std::error_code refused = log.append(
        std::move(batch), [&done](std::error_code ec, std::uint64_t) { done.set_value(ec); });
    if (refused) return refused;
    return future.get();
}

TEST(DedupRebuild, RestoresRecentEventsFromTheLog) {
    test::temp_dir dir;
    log::local_log_options lo;
    lo.dir = dir.path();
    auto log = log::local_log::open(lo);

    const std::int64_t now = t0 + 10 * window_ms;
    record_batch b;
    b.add(record(record_kind::event, "web", "old", now - window_ms));  // just outside
    b.add(record(record_kind::event, "web", "m1", now - window_ms + 1));
    b.add(record(record_kind::quarantine, "web", "q1", now - 10));
    b.add("not an event record");
    b.add(record(record_kind::event, "app", "m2", now - 5));
    b.add(record(record_kind::event, "web", "m1", now - 4));  // a copy already in the log
    ASSERT_FALSE(append_wait(*log, std::move(b)));

    dedup_window w(options());
    const auto scanned = w.rebuild(*log, now);
    ASSERT_TRUE(scanned.has_value()) << scanned.error().message();
    EXPECT_EQ(scanned.value(), 6u);
    auto s = w.stats();
    EXPECT_EQ(s.entries, 2u);
    EXPECT_EQ(s.rebuilt, 2u);
    EXPECT_EQ(s.inserted, 0u);
    EXPECT_EQ(s.duplicates, 0u);

    EXPECT_TRUE(w.check_and_insert("web", "m1", now));
    EXPECT_TRUE(w.check_and_insert("app", "m2", now));
    EXPECT_FALSE(w.check_and_insert("web", "q1", now));   // quarantined: never admitted
    EXPECT_FALSE(w.check_and_insert("web", "old", now));  // outside the window
    EXPECT_FALSE(w.check_and_insert("app", "m1", now));
    // Restored pairs keep their first-sighting time.
    EXPECT_FALSE(w.check_and_insert("web", "m1", now + 1));
}

TEST(DedupRebuild, KeepsTheNewestPairsWhenTheLogHoldsMoreThanTheBound) {
    test::temp_dir dir;
    log::local_log_options lo;
    lo.dir = dir.path();
    auto log = log::local_log::open(lo);
    constexpr std::size_t total = 4000;
    for (std::size_t first = 0; first < total; first += 500) {
        record_batch b;
        for (std::size_t i = first; i < first + 500; ++i) {
            b.add(record(record_kind::event, "web", id(i), t0 + static_cast<std::int64_t>(i)));
        }
        ASSERT_FALSE(append_wait(*log, std::move(b)));
    }

    dedup_window w(options(1000, 4));  // 250 per shard; each shard sees about 1000
    const auto scanned = w.rebuild(*log, t0 + total);
    ASSERT_TRUE(scanned.has_value());
    EXPECT_EQ(scanned.value(), total);
    const auto s = w.stats();
    EXPECT_EQ(s.entries, 1000u);
    EXPECT_EQ(s.rebuilt, total);
    EXPECT_EQ(s.evicted_by_size, total - 1000);
    for (std::size_t i = total - 100; i < total; ++i) {
        EXPECT_TRUE(w.check_and_insert("web", id(i), t0 + total)) << id(i);
    }
    for (std::size_t i = 0; i < 100; ++i) {
        EXPECT_FALSE(w.check_and_insert("web", id(i), t0 + total)) << id(i);
    }
}

TEST(DedupRebuild, CoversOnlyWhatTheLogRetains) {
    test::temp_dir dir;
    log::local_log_options lo;
    lo.dir = dir.path();
    lo.segment_bytes = 1;  // every batch after the first starts a new segment
    auto log = log::local_log::open(lo);

    record_batch first;
    first.add(record(record_kind::event, "web", "released", t0));
    ASSERT_FALSE(append_wait(*log, std::move(first)));
    const std::uint64_t second_offset = log->end_offset();
    record_batch second;
    second.add(record(record_kind::event, "web", "kept", t0 + 1));
    ASSERT_FALSE(append_wait(*log, std::move(second)));
    log->release_before(second_offset);  // every destination consumed the first segment
    ASSERT_EQ(log->start_offset(), second_offset);

    dedup_window w(options());
    const auto scanned = w.rebuild(*log, t0 + 2);
    ASSERT_TRUE(scanned.has_value());
    EXPECT_EQ(scanned.value(), 1u);
    EXPECT_TRUE(w.check_and_insert("web", "kept", t0 + 2));
    EXPECT_FALSE(w.check_and_insert("web", "released", t0 + 2));
}

TEST(DedupRebuild, EmptyLogScansNothing) {
    test::temp_dir dir;
    log::local_log_options lo;
    lo.dir = dir.path();
    auto log = log::local_log::open(lo);
    dedup_window w(options());
    const auto scanned = w.rebuild(*log, t0);
    ASSERT_TRUE(scanned.has_value());
    EXPECT_EQ(scanned.value(), 0u);
    EXPECT_EQ(w.stats().entries, 0u);
}

}  // namespace
}  // namespace switchyard::admit
