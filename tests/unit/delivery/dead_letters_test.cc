#include "delivery/dead_letters.h"

#include "switchyard/result.h"
#include "unit/log/temp_dir.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

namespace switchyard::delivery {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t t0 = 1714564800000;  // 2024-05-01T12:00:00.000Z

dead_letter make(std::uint64_t offset, std::string kind = "rejected",
                 std::string reason = "rejected: HTTP 400: bad", std::int64_t time_ms = t0,
                 std::string event = R"({"n":1})") {
    dead_letter d;
    d.offset = offset;
    d.kind = std::move(kind);
    d.reason = std::move(reason);
    d.time_ms = time_ms;
    d.attempts = 1;
    d.last_response = R"(400 {"error":"bad"})";
    d.message_id = "m-" + std::to_string(offset);
    d.event_json = std::move(event);
    return d;
}

auto fields(const dead_letter& d) {
    return std::tie(d.id, d.offset, d.time_ms, d.reason, d.kind, d.attempts, d.last_response,
                    d.message_id, d.event_json, d.replaying);
}

void expect_same(const std::vector<dead_letter>& a, const std::vector<dead_letter>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_TRUE(fields(a[i]) == fields(b[i])) << "entry " << i << " id " << a[i].id;
    }
}

std::vector<dead_letter> all(const dead_letter_store& s, const dead_letter_filter& f = {}) {
    std::error_code ec;
    auto out = s.list(f, SIZE_MAX, ec);
    EXPECT_FALSE(ec) << ec.message();
    return out;
}

std::vector<std::uint64_t> ids_of(const std::vector<dead_letter>& v) {
    std::vector<std::uint64_t> ids;
    ids.reserve(v.size());
    for (const auto& d : v) ids.push_back(d.id);
    return ids;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void append_raw(const fs::path& p, std::string_view bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class DeadLetterStore : public testing::Test {
  protected:
    std::unique_ptr<dead_letter_store> open_store(std::uint64_t max_bytes = 1ULL << 30) {
        auto s = std::make_unique<dead_letter_store>(tmp_.path() / "dlq", "web", max_bytes);
        s->open();
        return s;
    }
    // What a fresh process would load: must equal what the live store shows.
    void expect_reopen_same(const dead_letter_store& live) {
        auto again = open_store();
        expect_same(all(*again), all(live));
        EXPECT_EQ(again->bytes(), live.bytes());
        EXPECT_EQ(again->replay_pending(), live.replay_pending());
    }
    std::vector<std::uint64_t> append(dead_letter_store& s, std::vector<dead_letter> v) {
        EXPECT_FALSE(s.append(v));
        return ids_of(v);
    }

    test::temp_dir tmp_{"dead-letters"};
};

TEST_F(DeadLetterStore, AppendAndListRoundTrip) {
    auto s = open_store();
    EXPECT_EQ(s->file(), tmp_.path() / "dlq" / "web.dlq.ndjson");
    std::vector<dead_letter> in{
        make(
            7, "rejected", "rejected: HTTP 400: \"bad\"\nline two\ttab \\ é 中 😀", t0 + 1,
            R"({"text":"a \"q\" \\ \n \u00e9 \ud83d\ude00","raw":"é 中 😀","nested":{"a":[1,2.5,null,true]}})"),
        make(8, "budget_exhausted", "retry budget exhausted: 503", t0 + 2,
             "{\n  \"pretty\": 1\n}"),  // raw newlines between tokens are legal JSON
        make(9, "dropped", "dropped: lag over limit", t0 + 3, ""),
    };
    in[1].attempts = 12;
    in[2].message_id = "";
    ASSERT_FALSE(s->append(in));
    EXPECT_EQ(ids_of(in), (std::vector<std::uint64_t>{1, 2, 3}));

    auto out = all(*s);
    ASSERT_EQ(out.size(), 3u);
    in[1].event_json = "{   \"pretty\": 1 }";  // newlines became spaces to keep one line
    expect_same(out, in);
    EXPECT_TRUE(out[2].event_json.empty());
    EXPECT_EQ(s->size(), 3u);
    EXPECT_EQ(s->bytes(), fs::file_size(s->file()));
    expect_reopen_same(*s);

    // The file is NDJSON with the documented fields, event last and as given.
    std::istringstream lines(read_file(s->file()));
    std::string line;
    simdjson::dom::parser parser;
    std::size_t n = 0;
    while (std::getline(lines, line)) {
        simdjson::dom::object obj;
        ASSERT_EQ(parser.parse(line).get(obj), simdjson::SUCCESS) << line;
        std::vector<std::string> keys;
        for (auto f : obj) keys.emplace_back(f.key);
        EXPECT_EQ(keys, (std::vector<std::string>{"id", "offset", "time", "time_ms", "kind",
                                                  "reason", "attempts", "last_response",
                                                  "message_id", "replaying", "event"}));
        std::string_view time;
        ASSERT_EQ(obj["time"].get(time), simdjson::SUCCESS);
        EXPECT_EQ(time, "2024-05-01T12:00:00.00" + std::to_string(n + 1) + "Z");
        ++n;
    }
    EXPECT_EQ(n, 3u);
    EXPECT_NE(read_file(s->file()).find(R"("event":null})"), std::string::npos);
}

TEST_F(DeadLetterStore, IdsIncreaseAndSurviveReopen) {
    {
        auto s = open_store();
        EXPECT_EQ(append(*s, {make(1), make(2)}), (std::vector<std::uint64_t>{1, 2}));
        EXPECT_EQ(append(*s, {make(3)}), (std::vector<std::uint64_t>{3}));
        std::error_code ec;
        dead_letter_filter last;
        last.ids = {3};
        EXPECT_EQ(s->discard(last, ec), 1u);  // the highest id goes; ids still never repeat
        ASSERT_FALSE(ec);
    }
    auto s = open_store();
    EXPECT_EQ(ids_of(all(*s)), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(append(*s, {make(4), make(5)}), (std::vector<std::uint64_t>{3, 4}));
    // Ids continue after the highest id in the file, which after the discard is 2: an id is
    // unique among the entries the store holds.
    auto again = open_store();
    EXPECT_EQ(ids_of(all(*again)), (std::vector<std::uint64_t>{1, 2, 3, 4}));
    EXPECT_EQ(append(*again, {make(6)}), (std::vector<std::uint64_t>{5}));
}

TEST_F(DeadLetterStore, TimeZeroMeansNow) {
    auto s = open_store();
    std::vector<dead_letter> v{make(1, "rejected", "x", 0)};
    ASSERT_FALSE(s->append(v));
    EXPECT_GT(all(*s).at(0).time_ms, t0);
}

TEST_F(DeadLetterStore, Filters) {
    auto s = open_store();
    append(*s, {make(1, "rejected", "rejected: HTTP 400: missing userId", t0),
                make(2, "budget_exhausted", "retry budget exhausted: HTTP 503", t0 + 1000),
                make(3, "rejected", "rejected: HTTP 413: too large", t0 + 2000),
                make(4, "dropped", "dropped: lag over limit", t0 + 3000),
                make(5, "rejected", "rejected: HTTP 400: bad type", t0 + 4000)});
    auto ids = [&](const dead_letter_filter& f, std::size_t limit = SIZE_MAX) {
        std::error_code ec;
        auto v = s->list(f, limit, ec);
        EXPECT_FALSE(ec);
        for (const auto& d : v) EXPECT_TRUE(f.matches(d));
        return ids_of(v);
    };
    using v = std::vector<std::uint64_t>;

    EXPECT_EQ(ids({}), (v{1, 2, 3, 4, 5}));
    dead_letter_filter kind;
    kind.kind = "rejected";
    EXPECT_EQ(ids(kind), (v{1, 3, 5}));
    kind.kind = "reject";  // exact, not prefix
    EXPECT_EQ(ids(kind), v{});

    dead_letter_filter reason;
    reason.reason_contains = "HTTP 400";
    EXPECT_EQ(ids(reason), (v{1, 5}));
    reason.kind = "budget_exhausted";
    EXPECT_EQ(ids(reason), v{});

    dead_letter_filter range;
    range.since_ms = t0 + 1000;
    EXPECT_EQ(ids(range), (v{2, 3, 4, 5}));
    range.until_ms = t0 + 3000;  // exclusive
    EXPECT_EQ(ids(range), (v{2, 3}));

    dead_letter_filter by_id;
    by_id.ids = {5, 2, 42};
    EXPECT_EQ(ids(by_id), (v{2, 5}));
    by_id.kind = "rejected";
    EXPECT_EQ(ids(by_id), (v{5}));

    EXPECT_EQ(ids({}, 2), (v{1, 2}));
    EXPECT_EQ(ids(kind, 0), v{});
    kind.kind = "rejected";
    EXPECT_EQ(ids(kind, 2), (v{1, 3}));

    dead_letter d = make(9, "dropped", "dropped: lag over limit", t0);
    d.id = 9;
    dead_letter_filter f;
    EXPECT_TRUE(f.matches(d));
    f.ids = {8};
    EXPECT_FALSE(f.matches(d));
    f.ids = {9};
    f.since_ms = t0;
    f.until_ms = t0 + 1;
    f.reason_contains = "lag";
    f.kind = "dropped";
    EXPECT_TRUE(f.matches(d));
    f.until_ms = t0;
    EXPECT_FALSE(f.matches(d));
}

TEST_F(DeadLetterStore, ReplayCompletesExactlyTheDeliveredEntries) {
    auto s = open_store();
    append(*s, {make(1, "rejected"), make(2, "budget_exhausted"), make(3, "rejected"),
                make(4, "budget_exhausted"), make(5, "budget_exhausted")});
    std::error_code ec;
    dead_letter_filter f;
    f.kind = "budget_exhausted";
    EXPECT_EQ(s->mark_for_replay(f, ec), 3u);
    ASSERT_FALSE(ec);
    EXPECT_EQ(s->replay_pending(), 3u);
    EXPECT_EQ(s->mark_for_replay(f, ec), 0u);  // already marked
    expect_reopen_same(*s);

    auto batch = s->replay_batch(2, ec);
    ASSERT_FALSE(ec);
    ASSERT_EQ(ids_of(batch), (std::vector<std::uint64_t>{2, 4}));
    for (const auto& d : batch) {
        EXPECT_TRUE(d.replaying);
        EXPECT_EQ(d.event_json, R"({"n":1})");
    }
    EXPECT_EQ(s->replay_pending(), 3u);  // replay_batch does not remove

    ASSERT_FALSE(s->complete_replay(ids_of(batch)));
    EXPECT_EQ(ids_of(all(*s)), (std::vector<std::uint64_t>{1, 3, 5}));
    EXPECT_EQ(s->replay_pending(), 1u);
    EXPECT_EQ(ids_of(s->replay_batch(10, ec)), (std::vector<std::uint64_t>{5}));
    EXPECT_EQ(s->bytes(), fs::file_size(s->file()));
    expect_reopen_same(*s);

    ASSERT_FALSE(s->complete_replay({5, 99}));  // unknown ids are ignored
    EXPECT_EQ(ids_of(all(*s)), (std::vector<std::uint64_t>{1, 3}));
    EXPECT_EQ(s->replay_pending(), 0u);
    EXPECT_TRUE(s->replay_batch(10, ec).empty());
    expect_reopen_same(*s);
}

TEST_F(DeadLetterStore, FailedReplayIsUnmarkedWithTheNewReason) {
    auto s = open_store();
    append(*s, {make(1), make(2), make(3)});
    std::error_code ec;
    EXPECT_EQ(s->mark_for_replay({}, ec), 3u);
    ASSERT_FALSE(ec);

    ASSERT_FALSE(s->fail_replay({1, 3}, "rejected: HTTP 422: still bad", "422 nope", 2));
    auto v = all(*s);
    ASSERT_EQ(v.size(), 3u);
    EXPECT_FALSE(v[0].replaying);
    EXPECT_EQ(v[0].attempts, 3u);
    EXPECT_EQ(v[0].reason, "rejected: HTTP 422: still bad");
    EXPECT_EQ(v[0].last_response, "422 nope");
    EXPECT_EQ(v[0].event_json, R"({"n":1})");
    EXPECT_TRUE(v[1].replaying);
    EXPECT_EQ(v[1].attempts, 1u);
    EXPECT_EQ(v[1].reason, "rejected: HTTP 400: bad");
    EXPECT_FALSE(v[2].replaying);
    EXPECT_EQ(s->replay_pending(), 1u);
    EXPECT_EQ(ids_of(s->replay_batch(10, ec)), (std::vector<std::uint64_t>{2}));
    expect_reopen_same(*s);
}

TEST_F(DeadLetterStore, Discard) {
    auto s = open_store();
    append(*s, {make(1, "rejected"), make(2, "dropped", "dropped: lag", t0, ""), make(3)});
    std::error_code ec;
    dead_letter_filter f;
    f.kind = "dropped";
    EXPECT_EQ(s->discard(f, ec), 1u);
    ASSERT_FALSE(ec);
    EXPECT_EQ(ids_of(all(*s)), (std::vector<std::uint64_t>{1, 3}));
    EXPECT_EQ(s->discard(f, ec), 0u);
    expect_reopen_same(*s);

    EXPECT_EQ(s->discard({}, ec), 2u);
    EXPECT_EQ(s->size(), 0u);
    EXPECT_EQ(s->bytes(), 0u);
    EXPECT_EQ(fs::file_size(s->file()), 0u);
    expect_reopen_same(*s);
    EXPECT_FALSE(fs::exists(s->file().string() + ".tmp"));
}

TEST_F(DeadLetterStore, TornLastLineIsCutOff) {
    std::uint64_t good_size = 0;
    {
        auto s = open_store();
        append(*s, {make(1), make(2), make(3)});
        good_size = s->bytes();
    }
    const fs::path file = tmp_.path() / "dlq" / "web.dlq.ndjson";
    append_raw(file, R"({"id":4,"offset":4,"time":"2024-05-01T12:00:00.000Z","time_ms":17)");
    auto s = open_store();
    EXPECT_EQ(ids_of(all(*s)), (std::vector<std::uint64_t>{1, 2, 3}));
    EXPECT_EQ(fs::file_size(file), good_size);
    EXPECT_EQ(s->bytes(), good_size);
    EXPECT_EQ(append(*s, {make(4)}), (std::vector<std::uint64_t>{4}));
    expect_reopen_same(*s);
    EXPECT_FALSE(fs::exists(file.string() + ".corrupt"));
}

TEST_F(DeadLetterStore, CorruptMiddleLineIsMovedAsideNotDropped) {
    const fs::path file = tmp_.path() / "dlq" / "web.dlq.ndjson";
    {
        auto s = open_store();
        append(*s, {make(1)});
    }
    const std::string garbage = R"({"id":2,"offset":2,"event":{"cut":)";
    append_raw(file, garbage + "\n");
    append_raw(file, "not json at all\n");
    {
        auto s = open_store();
        append(*s, {make(3)});
    }
    // Lines after the corrupt ones are still loaded; ids continue after the highest good id.
    auto s = open_store();
    EXPECT_EQ(ids_of(all(*s)), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(read_file(file.string() + ".corrupt"), garbage + "\nnot json at all\n");
    EXPECT_EQ(read_file(file).find("not json"), std::string::npos);
    EXPECT_EQ(s->bytes(), fs::file_size(file));
    expect_reopen_same(*s);  // moved once: reopening does not copy them again
    EXPECT_EQ(read_file(file.string() + ".corrupt"), garbage + "\nnot json at all\n");
}

TEST_F(DeadLetterStore, AppendBeyondMaxBytesIsRefused) {
    std::vector<dead_letter> one{make(1)};
    std::uint64_t line = 0;
    {
        auto probe = std::make_unique<dead_letter_store>(tmp_.path() / "probe", "web");
        probe->open();
        ASSERT_FALSE(probe->append(one));
        line = probe->bytes();
    }
    auto s = open_store(3 * line);
    append(*s, {make(1), make(2)});
    std::vector<dead_letter> two{make(3), make(4)};
    EXPECT_EQ(s->append(two), make_error_code(errc::log_full));  // all or nothing
    EXPECT_EQ(s->size(), 2u);
    EXPECT_EQ(fs::file_size(s->file()), 2 * line);
    std::vector<dead_letter> fits{make(3)};
    ASSERT_FALSE(s->append(fits));
    EXPECT_EQ(fits[0].id, 3u);  // the refusal used no ids
    EXPECT_EQ(s->bytes(), 3 * line);
    std::vector<dead_letter> more{make(5)};
    EXPECT_EQ(s->append(more), make_error_code(errc::log_full));
    // Making room lets appends through again.
    std::error_code ec;
    dead_letter_filter first;
    first.ids = {1};
    EXPECT_EQ(s->discard(first, ec), 1u);
    EXPECT_FALSE(s->append(more));
}

TEST_F(DeadLetterStore, InvalidEventJsonIsRefusedWhole) {
    auto s = open_store();
    for (std::string bad : {"{\"a\":", "{\"a\":1} trailing", R"({"a":1},"x":2)", "1,\"event\":2"}) {
        std::vector<dead_letter> v{make(1), make(2, "rejected", "r", t0, bad)};
        EXPECT_EQ(s->append(v), make_error_code(errc::invalid_argument)) << bad;
    }
    EXPECT_EQ(s->size(), 0u);
    EXPECT_EQ(fs::file_size(s->file()), 0u);
}

TEST_F(DeadLetterStore, TextIsCutAtUtf8BoundariesAndMadeValid) {
    auto s = open_store();
    std::string long_reason;
    for (int i = 0; i < 400; ++i) long_reason += "é";  // 800 bytes
    dead_letter d = make(1, "rejected", long_reason);
    d.last_response = "502 \xff\xfe binary \xc3";  // not UTF-8
    std::vector<dead_letter> v{d};
    ASSERT_FALSE(s->append(v));
    auto out = all(*s);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].reason.size(), 512u);
    EXPECT_EQ(out[0].reason, long_reason.substr(0, 512));
    EXPECT_EQ(out[0].last_response, "502 \xEF\xBF\xBD\xEF\xBF\xBD binary \xEF\xBF\xBD");
    expect_reopen_same(*s);
    EXPECT_FALSE(fs::exists(s->file().string() + ".corrupt"));
}

// Memory keeps metadata and the line's place in the file, not the event body: list() reads the
// body from the file, so a change made on disk behind the store's back shows up.
TEST_F(DeadLetterStore, EventBodiesAreReadFromTheFile) {
    auto s = open_store();
    append(*s, {make(1, "rejected", "r", t0, R"({"body":"AAAA"})")});
    std::string content = read_file(s->file());
    const auto at = content.find("AAAA");
    ASSERT_NE(at, std::string::npos);
    int fd = ::open(s->file().c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "BBBB", 4, static_cast<off_t>(at)), 4);
    ::close(fd);
    EXPECT_EQ(all(*s).at(0).event_json, R"({"body":"BBBB"})");
}

TEST_F(DeadLetterStore, HundredThousandEntries) {
    auto s = open_store();
    const std::string event = R"({"type":"track","event":"Order Completed","properties":{"total":)"
                              R"(42.5,"currency":"EUR"},"messageId":"abc"})";
    for (std::uint64_t batch = 0; batch < 100; ++batch) {
        std::vector<dead_letter> v;
        for (std::uint64_t i = 0; i < 1000; ++i) {
            const std::uint64_t off = batch * 1000 + i;
            v.push_back(make(off, off % 2 ? "rejected" : "budget_exhausted", "r",
                             t0 + static_cast<std::int64_t>(off), event));
        }
        ASSERT_FALSE(s->append(v));
    }
    EXPECT_EQ(s->size(), 100000u);
    auto again = open_store();
    EXPECT_EQ(again->size(), 100000u);
    dead_letter_filter f;
    f.ids = {1, 50000, 100000};
    auto v = all(*again, f);
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ(v[2].offset, 99999u);
    EXPECT_EQ(v[2].event_json, event);
    std::error_code ec;
    f.ids = {77777};
    EXPECT_EQ(again->mark_for_replay(f, ec), 1u);
    ASSERT_FALSE(ec);
    EXPECT_EQ(ids_of(again->replay_batch(10, ec)), (std::vector<std::uint64_t>{77777}));
    ASSERT_FALSE(again->complete_replay({77777}));
    EXPECT_EQ(again->size(), 99999u);
    EXPECT_EQ(again->bytes(), fs::file_size(again->file()));
}

TEST_F(DeadLetterStore, ConcurrentAppendsAndLists) {
    auto s = open_store();
    constexpr int per_thread = 300;
    std::atomic<int> appenders_done{0};
    auto appender = [&](std::uint64_t base) {
        for (int i = 0; i < per_thread; i += 3) {
            std::vector<dead_letter> v;
            for (int k = 0; k < 3; ++k) {
                const std::uint64_t off = base + static_cast<std::uint64_t>(i + k);
                v.push_back(
                    make(off, "rejected", "r", t0, R"({"offset":)" + std::to_string(off) + "}"));
            }
            EXPECT_FALSE(s->append(v));
        }
        appenders_done.fetch_add(1);
    };
    std::thread a(appender, 0);
    std::thread b(appender, 100000);
    std::size_t lists = 0;
    std::size_t last_size = 0;
    while (appenders_done.load() < 2 || lists == 0) {
        std::error_code ec;
        auto v = s->list({}, SIZE_MAX, ec);
        ASSERT_FALSE(ec);
        EXPECT_GE(v.size(), last_size);
        last_size = v.size();
        for (const auto& d : v) {
            ASSERT_EQ(d.event_json, R"({"offset":)" + std::to_string(d.offset) + "}");
        }
        ++lists;
    }
    a.join();
    b.join();
    auto v = all(*s);
    ASSERT_EQ(v.size(), 2u * per_thread);
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i].id, i + 1);
    expect_reopen_same(*s);
}

TEST_F(DeadLetterStore, RepeatedTextsAreKeptOnce) {
    // A dead destination under drop_oldest: one entry per dropped event, all with the same kind
    // and reason and no response.
    auto s = open_store();
    constexpr std::size_t n = 100000;
    for (std::uint64_t batch = 0; batch < n / 1000; ++batch) {
        std::vector<dead_letter> v;
        for (std::uint64_t i = 0; i < 1000; ++i) {
            const std::uint64_t off = batch * 1000 + i;
            dead_letter d;
            d.offset = off;
            d.time_ms = t0;
            d.kind = "dropped";
            d.reason = "dropped: lag over limit";
            d.message_id = "m-" + std::to_string(off);
            v.push_back(std::move(d));
        }
        ASSERT_FALSE(s->append(v));
    }
    ASSERT_EQ(s->size(), n);
    EXPECT_LT(s->memory_bytes(), 120 * n) << s->memory_bytes() / n << " bytes per entry";
    dead_letter_filter f;
    f.ids = {1, n};
    auto v = all(*s, f);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[1].kind, "dropped");
    EXPECT_EQ(v[1].reason, "dropped: lag over limit");
    EXPECT_EQ(v[1].last_response, "");
    EXPECT_EQ(v[1].message_id, "m-99999");

    // Texts no entry uses any more are let go when the file is rewritten.
    f.ids = {n};
    std::error_code ec;
    ASSERT_EQ(s->mark_for_replay(f, ec), 1u);
    ASSERT_FALSE(ec);
    ASSERT_FALSE(s->fail_replay({n}, "rejected: HTTP 400: bad", R"(400 {"error":"bad"})", 1));
    EXPECT_EQ(all(*s, f).at(0).reason, "rejected: HTTP 400: bad");
    f.ids = {};
    f.kind = "dropped";
    EXPECT_EQ(s->discard(f, ec), n);
    ASSERT_FALSE(ec);
    EXPECT_LT(s->memory_bytes(), 1000u);
    expect_reopen_same(*s);
}

}  // namespace
}  // namespace switchyard::delivery
