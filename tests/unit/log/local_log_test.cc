#include "log/local/local_log.h"

#include "switchyard/result.h"
#include "unit/log/temp_dir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace switchyard::log {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::size_t payload_size = 40;  // frame = 48 bytes
constexpr std::uint64_t frame_size = payload_size + record_frame_overhead;

std::string payload(std::uint64_t n) {
    std::string s = "event-" + std::to_string(n) + "-";
    s.resize(payload_size, 'x');
    return s;
}

record_batch batch_of(std::uint64_t first, std::size_t count) {
    record_batch b;
    for (std::size_t i = 0; i < count; ++i) b.add(payload(first + i));
    return b;
}

struct append_result {
    std::error_code ec;
    std::uint64_t first = 0;
};

// Appends and waits for the handler; returns the refusal when append() refuses at once.
append_result append_wait(event_log& log, record_batch batch) {
    std::promise<append_result> done;
    auto future = done.get_future();
    const std::error_code refused =
        log.append(std::move(batch), [&done](std::error_code ec, std::uint64_t first) {
            done.set_value({ec, first});
        });
    if (refused) return {refused, 0};
    return future.get();
}

std::vector<log_record> read_all(event_log& log, std::uint64_t from = 0,
                                 std::size_t max_records = 7) {
    std::vector<log_record> out;
    std::uint64_t next = from;
    while (next < log.end_offset()) {
        auto r = log.read(next, max_records, 1 << 20, out);
        EXPECT_TRUE(r.has_value()) << r.error().message();
        if (!r || r.value() == next) break;
        next = r.value();
    }
    return out;
}

std::vector<std::uint64_t> segment_bases(const fs::path& dir) {
    std::vector<std::uint64_t> bases;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() == ".seg") bases.push_back(std::stoull(e.path().stem()));
    }
    std::sort(bases.begin(), bases.end());
    return bases;
}

fs::path segment_path(const fs::path& dir, std::uint64_t base) {
    std::string name = std::to_string(base);
    name.insert(0, 20 - name.size(), '0');
    return dir / (name + ".seg");
}

void flip_byte(const fs::path& file, std::uint64_t pos) {
    const int fd = ::open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c = 0;
    ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(pos)), 1);
    c = static_cast<char>(c ^ 0x5A);
    ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(pos)), 1);
    ::close(fd);
}

local_log_options small_options(const fs::path& dir) {
    local_log_options o;
    o.dir = dir;
    o.segment_bytes = 5 * frame_size - 1;  // five one-record batches per segment
    o.capacity_bytes = 1 << 20;
    return o;
}

// Appends `count` one-record batches and checks their offsets.
void append_records(event_log& log, std::uint64_t first, std::uint64_t count) {
    for (std::uint64_t i = first; i < first + count; ++i) {
        const auto r = append_wait(log, batch_of(i, 1));
        ASSERT_FALSE(r.ec) << r.ec.message();
        ASSERT_EQ(r.first, i);
    }
}

void expect_records(const std::vector<log_record>& got, std::uint64_t first, std::uint64_t end) {
    ASSERT_EQ(got.size(), end - first);
    for (std::uint64_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].offset, first + i);
        EXPECT_EQ(got[i].payload, payload(first + i));
    }
}

TEST(LocalLog, AppendThenReadAcrossSegmentRolls) {
    test::temp_dir dir;
    auto o = small_options(dir.path());
    o.segment_bytes = 512;
    auto log = local_log::open(o);
    std::uint64_t expected_first = 0;
    for (int i = 0; i < 50; ++i) {
        const auto r = append_wait(*log, batch_of(expected_first, 3));
        ASSERT_FALSE(r.ec);
        EXPECT_EQ(r.first, expected_first);
        expected_first += 3;
    }
    EXPECT_EQ(log->end_offset(), 150u);
    EXPECT_EQ(log->start_offset(), 0u);
    const auto stats = log->stats();
    EXPECT_GT(stats.segments, 3u);
    EXPECT_EQ(stats.appended_records, 150u);
    EXPECT_EQ(stats.appended_bytes, 150 * frame_size);
    EXPECT_EQ(stats.bytes, 150 * frame_size);

    expect_records(read_all(*log), 0, 150);
    expect_records(read_all(*log, 77, 1), 77, 150);

    // Segment names are the offsets of their first records, continuous across segments.
    const auto bases = segment_bases(dir.path());
    ASSERT_EQ(bases.size(), stats.segments);
    EXPECT_EQ(bases.front(), 0u);
    for (std::size_t i = 1; i < bases.size(); ++i) {
        std::vector<log_record> one;
        ASSERT_TRUE(log->read(bases[i], 1, 1, one).has_value());
        ASSERT_EQ(one.size(), 1u);
        EXPECT_EQ(one[0].payload, payload(bases[i]));
        EXPECT_EQ(fs::file_size(segment_path(dir.path(), bases[i - 1])),
                  (bases[i] - bases[i - 1]) * frame_size);
    }

    log->close();
    auto reopened = local_log::open(o);
    EXPECT_EQ(reopened->end_offset(), 150u);
    expect_records(read_all(*reopened), 0, 150);
    EXPECT_EQ(append_wait(*reopened, batch_of(150, 1)).first, 150u);
}

TEST(LocalLog, SparseIndexReadsFromAnyOffset) {
    test::temp_dir dir;
    local_log_options o;
    o.dir = dir.path();
    auto log = local_log::open(o);
    for (std::uint64_t i = 0; i < 1000; i += 100) {
        ASSERT_FALSE(append_wait(*log, batch_of(i, 100)).ec);
    }
    for (std::uint64_t from : {0u, 1u, 255u, 256u, 257u, 511u, 700u, 999u}) {
        std::vector<log_record> out;
        const auto next = log->read(from, 3, 1 << 20, out);
        ASSERT_TRUE(next.has_value());
        ASSERT_FALSE(out.empty());
        EXPECT_EQ(out.front().offset, from);
        EXPECT_EQ(out.front().payload, payload(from));
        EXPECT_EQ(next.value(), std::min<std::uint64_t>(from + 3, 1000));
    }
    log->close();
    auto reopened = local_log::open(o);  // index rebuilt by the recovery scan
    expect_records(read_all(*reopened, 700, 50), 700, 1000);
}

TEST(LocalLog, ReadRespectsLimits) {
    test::temp_dir dir;
    auto log = local_log::open(small_options(dir.path()));
    append_records(*log, 0, 10);
    std::vector<log_record> out;
    auto next = log->read(0, 100, 2 * payload_size + 10, out);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(out.size(), 2u);
    EXPECT_EQ(next.value(), 2u);
    out.clear();
    next = log->read(2, 100, 1, out);  // always at least one record
    EXPECT_EQ(out.size(), 1u);
    EXPECT_EQ(next.value(), 3u);
    out.clear();
    next = log->read(3, 4, 1 << 20, out);
    EXPECT_EQ(out.size(), 4u);
    EXPECT_EQ(next.value(), 7u);
    out.clear();
    next = log->read(10, 4, 1 << 20, out);  // at the end: nothing, same position
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(next.value(), 10u);
}

TEST(LocalLog, GroupCommitManyConcurrentAppenders) {
    test::temp_dir dir;
    local_log_options o;
    o.dir = dir.path();
    o.segment_bytes = 16 << 10;  // several rolls while appending
    std::atomic<std::uint64_t> fsync_calls{0};
    o.on_fsync = [&](double seconds) {
        EXPECT_GE(seconds, 0.0);
        ++fsync_calls;
    };
    auto log = local_log::open(o);

    constexpr int threads = 8;
    constexpr int per_thread = 150;
    struct slot {
        std::atomic<int> calls{0};
        std::uint64_t first = 0;
        std::size_t count = 0;
        int thread = 0;
        int index = 0;
    };
    std::vector<slot> slots(threads * per_thread);
    std::atomic<int> remaining{threads * per_thread};
    std::promise<void> all_done;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                slot& s = slots[t * per_thread + i];
                s.thread = t;
                s.index = i;
                s.count = 1 + (i % 3);
                record_batch b;
                for (std::size_t k = 0; k < s.count; ++k) {
                    b.add("t" + std::to_string(t) + "-" + std::to_string(i) + "-" +
                          std::to_string(k));
                }
                const auto ec =
                    log->append(std::move(b), [&](std::error_code e, std::uint64_t first) {
                        EXPECT_FALSE(e) << e.message();
                        s.first = first;
                        if (++s.calls == 1 && --remaining == 0) all_done.set_value();
                    });
                ASSERT_FALSE(ec) << ec.message();
            }
        });
    }
    for (auto& w : workers) w.join();
    ASSERT_EQ(all_done.get_future().wait_for(60s), std::future_status::ready);

    std::uint64_t total = 0;
    std::vector<const slot*> by_offset;
    for (const auto& s : slots) {
        EXPECT_EQ(s.calls.load(), 1);
        total += s.count;
        by_offset.push_back(&s);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const slot* a, const slot* b) { return a->first < b->first; });
    std::uint64_t expected = 0;
    for (const slot* s : by_offset) {
        ASSERT_EQ(s->first, expected) << "offsets must be unique and contiguous";
        expected += s->count;
    }
    EXPECT_EQ(log->end_offset(), total);

    const auto records = read_all(*log, 0, 64);
    ASSERT_EQ(records.size(), total);
    for (const slot* s : by_offset) {
        for (std::size_t k = 0; k < s->count; ++k) {
            EXPECT_EQ(records[s->first + k].payload, "t" + std::to_string(s->thread) + "-" +
                                                         std::to_string(s->index) + "-" +
                                                         std::to_string(k));
        }
    }
    const auto stats = log->stats();
    EXPECT_GE(stats.fsyncs, 1u);
    EXPECT_LE(stats.fsyncs, static_cast<std::uint64_t>(threads * per_thread) + stats.segments);
    EXPECT_EQ(fsync_calls.load(), stats.fsyncs);
}

TEST(LocalLog, CapacityRefusesThenAcceptsAfterRelease) {
    test::temp_dir dir;
    auto o = small_options(dir.path());
    o.capacity_bytes = 12 * frame_size;
    auto log = local_log::open(o);
    std::uint64_t n = 0;
    append_result r;
    while (n < 100) {
        r = append_wait(*log, batch_of(n, 1));
        if (r.ec) break;
        ++n;
    }
    EXPECT_EQ(r.ec, make_error_code(errc::log_full));
    EXPECT_EQ(n, 12u);
    auto stats = log->stats();
    EXPECT_EQ(stats.full_refusals, 1u);
    EXPECT_LE(stats.bytes, o.capacity_bytes);

    // Every reader is past offset 12: the two sealed segments go, the active one stays.
    log->release_before(n);
    stats = log->stats();
    EXPECT_EQ(stats.segments, 1u);
    EXPECT_EQ(stats.start_offset, 10u);
    EXPECT_EQ(stats.bytes, 2 * frame_size);
    append_records(*log, n, 5);
    EXPECT_EQ(log->end_offset(), n + 5);
}

TEST(LocalLog, ReleaseBeforeDeletesOnlyConsumedNonActiveSegments) {
    test::temp_dir dir;
    auto log = local_log::open(small_options(dir.path()));
    append_records(*log, 0, 20);
    ASSERT_EQ(segment_bases(dir.path()), (std::vector<std::uint64_t>{0, 5, 10, 15}));

    log->release_before(9);  // segment 5 still holds offset 9
    EXPECT_EQ(segment_bases(dir.path()), (std::vector<std::uint64_t>{5, 10, 15}));
    EXPECT_EQ(log->start_offset(), 5u);
    EXPECT_EQ(log->stats().bytes, 15 * frame_size);

    log->release_before(10);
    EXPECT_EQ(segment_bases(dir.path()), (std::vector<std::uint64_t>{10, 15}));

    log->release_before(1000);  // never the active segment
    EXPECT_EQ(segment_bases(dir.path()), (std::vector<std::uint64_t>{15}));
    EXPECT_EQ(log->start_offset(), 15u);

    expect_records(read_all(*log, 0), 15, 20);  // clamped up to start_offset
    append_records(*log, 20, 1);

    log->close();
    auto reopened = local_log::open(small_options(dir.path()));
    EXPECT_EQ(reopened->start_offset(), 15u);
    EXPECT_EQ(reopened->end_offset(), 21u);
}

enum class damage { truncate_mid_record, truncate_mid_header, garbage_tail, flipped_byte };

// Writes 18 records in 4 segments, damages the last segment's tail, and reopens.
void check_recovery(damage kind, std::uint64_t expected_end) {
    test::temp_dir dir;
    const auto o = small_options(dir.path());
    {
        auto log = local_log::open(o);
        append_records(*log, 0, 18);
    }
    const fs::path last = segment_path(dir.path(), 15);
    ASSERT_EQ(fs::file_size(last), 3 * frame_size);
    switch (kind) {
        case damage::truncate_mid_record:
            fs::resize_file(last, 3 * frame_size - 7);
            break;
        case damage::truncate_mid_header:
            fs::resize_file(last, 2 * frame_size + 3);
            break;
        case damage::garbage_tail: {
            std::ofstream out(last, std::ios::binary | std::ios::app);
            out.write("\x10\x00\x00\x00garbage!!", 13);
            break;
        }
        case damage::flipped_byte:
            flip_byte(last, 3 * frame_size - 1);
            break;
    }

    auto log = local_log::open(o);
    EXPECT_EQ(log->end_offset(), expected_end);
    EXPECT_EQ(log->stats().corrupt_records, 1u);
    EXPECT_EQ(fs::file_size(last), (expected_end - 15) * frame_size);
    expect_records(read_all(*log), 0, expected_end);

    append_records(*log, expected_end, 3);
    log->close();
    auto again = local_log::open(o);
    EXPECT_EQ(again->stats().corrupt_records, 0u);
    expect_records(read_all(*again), 0, expected_end + 3);
}

TEST(LocalLog, RecoveryTruncatesTornRecord) { check_recovery(damage::truncate_mid_record, 17); }
TEST(LocalLog, RecoveryTruncatesTornHeader) { check_recovery(damage::truncate_mid_header, 17); }
TEST(LocalLog, RecoveryDropsGarbageTail) { check_recovery(damage::garbage_tail, 18); }
TEST(LocalLog, RecoveryDropsRecordWithBadCrc) { check_recovery(damage::flipped_byte, 17); }

TEST(LocalLog, RecoveryOfEmptyDirectoryStartsAtZero) {
    test::temp_dir dir;
    const auto o = small_options(dir.path() / "nested" / "log");
    auto log = local_log::open(o);
    EXPECT_EQ(log->end_offset(), 0u);
    EXPECT_EQ(segment_bases(o.dir), (std::vector<std::uint64_t>{0}));
    std::vector<log_record> out;
    EXPECT_EQ(log->read(0, 10, 100, out).value(), 0u);
    EXPECT_TRUE(out.empty());
}

TEST(LocalLog, ReaderSkipsCorruptRecordInMiddleSegment) {
    test::temp_dir dir;
    const auto o = small_options(dir.path());
    auto log = local_log::open(o);
    append_records(*log, 0, 20);
    // Damage record 6 (the second in segment 5) behind the open log's back.
    flip_byte(segment_path(dir.path(), 5), frame_size + record_frame_overhead + 2);

    std::vector<log_record> out;
    auto next = log->read(0, 100, 1 << 20, out);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next.value(), 20u);
    std::vector<std::uint64_t> offsets;
    for (const auto& r : out) offsets.push_back(r.offset);
    std::vector<std::uint64_t> expected = {0, 1, 2, 3, 4, 5};
    for (std::uint64_t i = 10; i < 20; ++i) expected.push_back(i);
    EXPECT_EQ(offsets, expected);
    EXPECT_EQ(log->stats().corrupt_records, 1u);

    out.clear();
    next = log->read(7, 1, 1 << 20, out);  // known damage: jump without counting again
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].offset, 10u);
    EXPECT_EQ(log->stats().corrupt_records, 1u);

    // Recovery finds the same damage, keeps the segment and the records after it.
    log->close();
    auto reopened = local_log::open(o);
    EXPECT_EQ(reopened->stats().corrupt_records, 1u);
    EXPECT_EQ(reopened->end_offset(), 20u);
    out.clear();
    ASSERT_TRUE(reopened->read(0, 100, 1 << 20, out).has_value());
    offsets.clear();
    for (const auto& r : out) offsets.push_back(r.offset);
    EXPECT_EQ(offsets, expected);
    EXPECT_EQ(append_wait(*reopened, batch_of(20, 1)).first, 20u);
}

TEST(LocalLog, CloseCompletesPendingAppends) {
    test::temp_dir dir;
    auto log = local_log::open(small_options(dir.path()));

    auto waiter = std::async(std::launch::async, [&] {
        return log->wait_for(1'000'000, std::chrono::steady_clock::now() + 1h);
    });

    constexpr int appends = 200;
    std::vector<std::promise<append_result>> done(appends);
    std::vector<std::future<append_result>> futures;
    for (int i = 0; i < appends; ++i) {
        futures.push_back(done[i].get_future());
        const auto ec =
            log->append(batch_of(i, 1), [&done, i](std::error_code e, std::uint64_t first) {
                done[i].set_value({e, first});
            });
        ASSERT_FALSE(ec);
    }
    log->close();
    for (int i = 0; i < appends; ++i) {
        ASSERT_EQ(futures[i].wait_for(0s), std::future_status::ready);
        const auto r = futures[i].get();
        EXPECT_FALSE(r.ec);
        EXPECT_EQ(r.first, static_cast<std::uint64_t>(i));
    }
    EXPECT_LE(waiter.get(), static_cast<std::uint64_t>(appends));  // close wakes waiters

    EXPECT_EQ(log->append(batch_of(0, 1), [](std::error_code, std::uint64_t) {}),
              make_error_code(errc::log_closed));
    log->close();  // idempotent
    EXPECT_EQ(log->end_offset(), static_cast<std::uint64_t>(appends));
    expect_records(read_all(*log), 0, appends);  // reads still work after close
}

TEST(LocalLog, WaitForWakesWhenRecordsArrive) {
    test::temp_dir dir;
    auto log = local_log::open(small_options(dir.path()));
    auto waiter = std::async(std::launch::async, [&] {
        return log->wait_for(0, std::chrono::steady_clock::now() + 1h);
    });
    append_records(*log, 0, 1);
    EXPECT_GE(waiter.get(), 1u);
    // Already past: returns at once; deadline in the past: returns at once.
    EXPECT_EQ(log->wait_for(0, std::chrono::steady_clock::now() + 1h), 1u);
    EXPECT_EQ(log->wait_for(5, std::chrono::steady_clock::now() - 1s), 1u);
}

TEST(LocalLog, RejectsEmptyBatch) {
    test::temp_dir dir;
    auto log = local_log::open(small_options(dir.path()));
    EXPECT_EQ(log->append(record_batch{}, [](std::error_code, std::uint64_t) {}),
              make_error_code(errc::invalid_argument));
}

TEST(LocalLog, IntervalPolicyAcksThenSyncsOnTimer) {
    test::temp_dir dir;
    auto o = small_options(dir.path());
    o.durability = durability_policy::interval;
    o.fsync_interval = 5ms;
    std::promise<void> synced;
    std::once_flag once;
    o.on_fsync = [&](double) { std::call_once(once, [&] { synced.set_value(); }); };
    auto log = local_log::open(o);
    append_records(*log, 0, 12);  // rolls twice too
    ASSERT_EQ(synced.get_future().wait_for(60s), std::future_status::ready);
    expect_records(read_all(*log), 0, 12);
    log->close();
    auto reopened = local_log::open(o);
    expect_records(read_all(*reopened), 0, 12);
}

TEST(LocalLog, NonePolicyNeverSyncsUntilClose) {
    test::temp_dir dir;
    auto o = small_options(dir.path());
    o.durability = durability_policy::none;
    auto log = local_log::open(o);
    append_records(*log, 0, 12);
    EXPECT_EQ(log->stats().fsyncs, 0u);
    expect_records(read_all(*log), 0, 12);
    log->close();
    EXPECT_EQ(log->stats().fsyncs, 1u);
}

TEST(LocalLog, OpenRejectsOverlappingSegments) {
    test::temp_dir dir;
    const auto o = small_options(dir.path());
    {
        auto log = local_log::open(o);
        append_records(*log, 0, 7);  // segments 0 (5 records) and 5
    }
    fs::copy_file(segment_path(dir.path(), 0), segment_path(dir.path(), 3));
    EXPECT_THROW(local_log::open(o), std::system_error);
}

}  // namespace
}  // namespace switchyard::log
