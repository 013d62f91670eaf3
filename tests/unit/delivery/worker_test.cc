#include "delivery/worker.h"

#include "log/cursor_store.h"
#include "log/local/local_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

namespace switchyard::delivery {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Generous: only reached when something is broken.
constexpr auto wait_limit = 20s;

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string tmpl = (fs::path(testing::TempDir()) / "delivery_XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

struct sent_item {
    std::uint64_t offset;
    record_kind kind;
    std::string json;
    bool operator==(const sent_item&) const = default;
};

// What the test destination saw and what it answers; shared with the test because the worker
// owns the destination.
struct script {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::vector<sent_item>> attempts;  // every send() call, in order
    std::deque<send_outcome> answers;              // popped per call; empty = delivered
    bool block = false;                            // send() waits until unblocked
    bool in_send = false;
    bool closed = false;

    template <class Pred>
    bool wait(Pred pred) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, wait_limit, [&] { return pred(); });
    }
    std::vector<sent_item> delivered() {
        // Attempts answered "delivered" are the ones followed by no retry/reject for that batch;
        // tests that script answers check attempts directly.
        std::lock_guard g(mu);
        std::vector<sent_item> out;
        for (const auto& a : attempts) out.insert(out.end(), a.begin(), a.end());
        return out;
    }
    std::size_t sent_count() {
        std::size_t n = 0;
        for (const auto& a : attempts) n += a.size();
        return n;
    }
};

class test_destination final : public destination {
  public:
    explicit test_destination(std::shared_ptr<script> s) : s_(std::move(s)) {}

    send_outcome send(std::span<const delivery_item> batch) override {
        std::unique_lock lk(s_->mu);
        std::vector<sent_item> got;
        for (const auto& it : batch)
            got.push_back({it.offset, it.event.kind, std::string(it.event.json)});
        s_->attempts.push_back(std::move(got));
        s_->in_send = true;
        s_->cv.notify_all();
        s_->cv.wait(lk, [&] { return !s_->block; });
        s_->in_send = false;
        send_outcome out;
        if (!s_->answers.empty()) {
            out = std::move(s_->answers.front());
            s_->answers.pop_front();
        }
        s_->cv.notify_all();
        return out;
    }
    void close() override {
        std::lock_guard g(s_->mu);
        EXPECT_FALSE(s_->closed) << "close() called twice";
        s_->closed = true;
        s_->cv.notify_all();
    }

  private:
    std::shared_ptr<script> s_;
};

std::string json_of(std::size_t i) {
    return R"({"type":"track","event":"Clicked","messageId":"m-)" + std::to_string(i) + R"("})";
}

class DeliveryWorker : public testing::Test {
  protected:
    void SetUp() override {
        log::local_log_options lo;
        lo.dir = tmp_.path / "log";
        log_ = log::local_log::open(lo);
        cursors_ = std::make_unique<log::cursor_store>(tmp_.path / "cursors");
        cursors_->open();
    }
    void TearDown() override { log_->close(); }

    // Appends one record per entry and waits until they are durable. An entry is an event of
    // that kind, or nullopt for a payload that does not decode.
    void append(const std::vector<std::optional<record_kind>>& kinds) {
        record_batch rb;
        for (const auto& k : kinds) {
            std::size_t i = next_event_++;
            if (!k) {
                rb.add("not an event payload");
                continue;
            }
            event e;
            e.header.kind = *k;
            e.header.type = event_type::track;
            e.header.message_id = "m-" + std::to_string(i);
            e.json = json_of(i);
            std::string payload;
            encode_event(e, payload);
            rb.add(payload);
        }
        std::promise<std::error_code> done;
        auto f = done.get_future();
        ASSERT_FALSE(log_->append(std::move(rb),
                                  [&](std::error_code ec, std::uint64_t) { done.set_value(ec); }));
        ASSERT_EQ(f.wait_for(wait_limit), std::future_status::ready);
        ASSERT_FALSE(f.get());
    }
    void append_events(std::size_t n) {
        append(std::vector<std::optional<record_kind>>(n, record_kind::event));
    }

    worker_options options(std::string name = "dest") {
        worker_options o;
        o.name = std::move(name);
        o.max_wait = 20ms;
        o.backoff_base = 1ms;
        o.backoff_max = 5ms;
        o.backoff_seed = 1;
        o.dead_letter_dir = tmp_.path / "dead_letter";
        return o;
    }

    std::unique_ptr<worker> make_worker(worker_options o, std::shared_ptr<script> s) {
        auto on_commit = [this, s] {
            commits_.fetch_add(1);
            // Wakes tests waiting for a cursor value.
            { std::lock_guard g(s->mu); }
            s->cv.notify_all();
        };
        return std::make_unique<worker>(std::move(o), *log_, *cursors_,
                                        std::make_unique<test_destination>(s), on_commit);
    }

    temp_dir tmp_;
    std::unique_ptr<log::local_log> log_;
    std::unique_ptr<log::cursor_store> cursors_;
    std::atomic<int> commits_{0};
    std::size_t next_event_ = 0;
};

std::vector<sent_item> expected_events(std::uint64_t first, std::uint64_t n) {
    std::vector<sent_item> out;
    for (std::uint64_t i = first; i < first + n; ++i) {
        out.push_back({i, record_kind::event, json_of(i)});
    }
    return out;
}

TEST_F(DeliveryWorker, DeliversAllEventsInOrder) {
    auto s = std::make_shared<script>();
    auto o = options();
    o.max_batch_events = 64;
    auto w = make_worker(o, s);
    w->start();
    for (int i = 0; i < 10; ++i) append_events(50);
    ASSERT_TRUE(s->wait([&] { return s->sent_count() == 500; }));
    w->stop();

    EXPECT_EQ(s->delivered(), expected_events(0, 500));
    for (const auto& a : s->attempts) EXPECT_LE(a.size(), 64u);
    EXPECT_TRUE(s->closed);
    EXPECT_EQ(cursors_->load("dest"), 500u);
    EXPECT_GT(commits_.load(), 0);
    auto st = w->stats();
    EXPECT_EQ(st.delivered_events, 500u);
    EXPECT_EQ(st.cursor, 500u);
    EXPECT_EQ(st.lag, 0u);
    EXPECT_EQ(st.retries, 0u);
    EXPECT_TRUE(st.healthy);
}

TEST_F(DeliveryWorker, RespectsTheBatchByteLimit) {
    append_events(20);
    auto s = std::make_shared<script>();
    auto o = options();
    o.max_batch_bytes = 1;  // every record is larger: one record per batch
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return s->sent_count() == 20; }));
    w->stop();
    EXPECT_EQ(s->attempts.size(), 20u);
    EXPECT_EQ(s->delivered(), expected_events(0, 20));
}

TEST_F(DeliveryWorker, ResumesFromTheCommittedCursor) {
    append_events(10);
    auto first = std::make_shared<script>();
    {
        auto w = make_worker(options(), first);
        w->start();
        ASSERT_TRUE(first->wait([&] { return first->sent_count() == 10; }));
        w->stop();
    }
    EXPECT_EQ(cursors_->load("dest"), 10u);

    append_events(5);
    auto second = std::make_shared<script>();
    auto w = make_worker(options(), second);
    w->start();
    ASSERT_TRUE(second->wait([&] { return second->sent_count() == 5; }));
    w->stop();
    EXPECT_EQ(second->delivered(), expected_events(10, 5));
    EXPECT_EQ(cursors_->load("dest"), 15u);
}

TEST_F(DeliveryWorker, RetrySendsTheSameBatchAgain) {
    append_events(5);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::retry_later("busy"), send_outcome::retry_later("still busy"),
                  send_outcome::ok()};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return s->attempts.size() == 3 && !s->in_send; }));
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 5u; }));
    w->stop();

    ASSERT_EQ(s->attempts.size(), 3u);
    EXPECT_EQ(s->attempts[0], expected_events(0, 5));
    EXPECT_EQ(s->attempts[1], s->attempts[0]);
    EXPECT_EQ(s->attempts[2], s->attempts[0]);
    auto st = w->stats();
    EXPECT_EQ(st.retries, 2u);
    EXPECT_EQ(st.delivered_events, 5u);
    EXPECT_EQ(st.last_error, "still busy");
    EXPECT_TRUE(st.healthy);
}

TEST_F(DeliveryWorker, RejectWritesDeadLettersAndAdvances) {
    append_events(3);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::rejected("bad \"schema\"\n")};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return s->attempts.size() == 1; }));
    append_events(2);
    ASSERT_TRUE(s->wait([&] { return s->sent_count() == 5; }));
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 5u; }));
    w->stop();

    EXPECT_EQ(s->attempts[0], expected_events(0, 3));  // sent once, not retried
    EXPECT_EQ(s->attempts[1], expected_events(3, 2));
    std::ifstream in(tmp_.path / "dead_letter" / "dest.ndjson");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    ASSERT_EQ(lines.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(lines[i], "{\"offset\":" + std::to_string(i) +
                                R"(,"reason":"bad \"schema\"\n","event":)" + json_of(i) + "}");
    }
    auto st = w->stats();
    EXPECT_EQ(st.rejected_events, 3u);
    EXPECT_EQ(st.delivered_events, 2u);
}

TEST_F(DeliveryWorker, DeliversOnlyConfiguredKindsAndSkipsCorruptRecords) {
    using k = record_kind;
    append({k::event, k::quarantine, std::nullopt, k::event, k::quarantine});

    auto events = std::make_shared<script>();
    auto quarantine = std::make_shared<script>();
    auto o = options("events");
    auto q = options("quarantine");
    q.kinds = {record_kind::quarantine};
    auto we = make_worker(o, events);
    auto wq = make_worker(q, quarantine);
    we->start();
    wq->start();
    ASSERT_TRUE(events->wait([&] { return cursors_->load("events") == 5u; }));
    ASSERT_TRUE(quarantine->wait([&] { return cursors_->load("quarantine") == 5u; }));

    // A batch with nothing for this destination still moves its cursor, without a send().
    append({k::quarantine, k::quarantine});
    ASSERT_TRUE(events->wait([&] { return cursors_->load("events") == 7u; }));
    ASSERT_TRUE(quarantine->wait([&] { return cursors_->load("quarantine") == 7u; }));
    we->stop();
    wq->stop();

    EXPECT_EQ(events->delivered(),
              (std::vector<sent_item>{{0, k::event, json_of(0)}, {3, k::event, json_of(3)}}));
    EXPECT_EQ(quarantine->delivered(), (std::vector<sent_item>{{1, k::quarantine, json_of(1)},
                                                               {4, k::quarantine, json_of(4)},
                                                               {5, k::quarantine, json_of(5)},
                                                               {6, k::quarantine, json_of(6)}}));
    auto st = we->stats();
    EXPECT_EQ(st.undecodable, 1u);
    EXPECT_EQ(st.skipped_events, 4u);
    EXPECT_EQ(st.delivered_events, 2u);
    EXPECT_EQ(wq->stats().undecodable, 1u);
}

TEST_F(DeliveryWorker, StopDuringBackoffReturnsPromptly) {
    append_events(3);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::retry_later("rate limited", std::chrono::hours(1))};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return s->attempts.size() == 1 && !s->in_send; }));

    auto t0 = std::chrono::steady_clock::now();
    w->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_TRUE(s->closed);
    EXPECT_EQ(s->attempts.size(), 1u);
    EXPECT_FALSE(cursors_->load("dest").has_value());  // not delivered: not committed
    auto st = w->stats();
    EXPECT_EQ(st.retries, 1u);
    EXPECT_FALSE(st.healthy);
    EXPECT_EQ(st.last_error, "rate limited");
}

TEST_F(DeliveryWorker, StopLetsTheSendInFlightFinishAndCommits) {
    append_events(4);
    auto s = std::make_shared<script>();
    s->block = true;
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return s->in_send; }));

    auto stopped = std::async(std::launch::async, [&] { w->stop(); });
    EXPECT_EQ(stopped.wait_for(50ms), std::future_status::timeout);  // waits for the send
    {
        std::lock_guard g(s->mu);
        s->block = false;
    }
    s->cv.notify_all();
    ASSERT_EQ(stopped.wait_for(wait_limit), std::future_status::ready);
    EXPECT_EQ(cursors_->load("dest"), 4u);
    EXPECT_TRUE(s->closed);
}

TEST_F(DeliveryWorker, StopWithoutStartClosesTheDestination) {
    auto s = std::make_shared<script>();
    auto w = make_worker(options(), s);
    w->stop();
    EXPECT_TRUE(s->closed);
    w->stop();  // idempotent
}

}  // namespace
}  // namespace switchyard::delivery
