#include "delivery/worker.h"

#include "delivery/dead_letters.h"
#include "log/cursor_store.h"
#include "log/local/local_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace switchyard::delivery {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

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
    std::string message_id;
    bool operator==(const sent_item&) const = default;
};

struct call {
    std::vector<sent_item> items;
    steady::time_point at;
    send_status answer = send_status::delivered;
};

// What the test destinations saw and what they answer; shared with the test because the worker
// owns the destinations. Every instance of a worker shares one script.
struct script {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<call> calls;           // every send() call, in order
    std::vector<sent_item> delivered;  // items answered delivered (minus rejected_items)
    std::deque<send_outcome> answers;  // popped per call first
    std::function<send_outcome(const std::vector<sent_item>&)> policy;  // then this
    bool block = false;                 // every send() waits until unblocked
    std::optional<std::uint64_t> hold;  // a send starting at this offset waits until reset
    send_outcome hold_answer;           // what the held send answers
    int in_send = 0;
    int closed = 0;

    template <class Pred>
    bool wait(Pred pred) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, wait_limit, [&] { return pred(); });
    }
    std::size_t sent_count() const {
        std::size_t n = 0;
        for (const auto& c : calls) n += c.items.size();
        return n;
    }
    std::vector<std::vector<sent_item>> attempts() {
        std::lock_guard g(mu);
        std::vector<std::vector<sent_item>> out;
        for (const auto& c : calls) out.push_back(c.items);
        return out;
    }
    std::vector<sent_item> delivered_items() {
        std::lock_guard g(mu);
        return delivered;
    }
};

class test_destination final : public destination {
  public:
    explicit test_destination(std::shared_ptr<script> s) : s_(std::move(s)) {}

    send_outcome send(std::span<const delivery_item> batch) override {
        std::unique_lock lk(s_->mu);
        std::vector<sent_item> got;
        for (const auto& it : batch) {
            got.push_back({it.offset, it.event.kind, std::string(it.event.json),
                           std::string(it.event.message_id)});
        }
        s_->calls.push_back({got, steady::now()});
        const std::size_t me = s_->calls.size() - 1;
        ++s_->in_send;
        s_->cv.notify_all();
        s_->cv.wait(lk, [&] { return !s_->block; });
        send_outcome out;
        const bool held = s_->hold && got.front().offset == *s_->hold;
        if (held) {
            s_->cv.wait(lk, [&] { return !s_->hold; });
            out = s_->hold_answer;
        } else if (!s_->answers.empty()) {
            out = std::move(s_->answers.front());
            s_->answers.pop_front();
        } else if (s_->policy) {
            out = s_->policy(got);
        }
        s_->calls[me].answer = out.status;
        if (out.status == send_status::delivered) {
            for (std::size_t i = 0; i < got.size(); ++i) {
                bool rejected = std::any_of(out.rejected_items.begin(), out.rejected_items.end(),
                                            [&](const auto& r) { return r.first == i; });
                if (!rejected) s_->delivered.push_back(got[i]);
            }
        }
        --s_->in_send;
        s_->cv.notify_all();
        return out;
    }
    void close() override {
        std::lock_guard g(s_->mu);
        ++s_->closed;
        s_->cv.notify_all();
    }

  private:
    std::shared_ptr<script> s_;
};

std::string json_of(std::size_t i) {
    return R"({"type":"track","event":"Clicked","messageId":"m-)" + std::to_string(i) + R"("})";
}

std::vector<sent_item> expected_events(std::uint64_t first, std::uint64_t n) {
    std::vector<sent_item> out;
    for (std::uint64_t i = first; i < first + n; ++i) {
        out.push_back({i, record_kind::event, json_of(i), "m-" + std::to_string(i)});
    }
    return out;
}

std::vector<std::uint64_t> offsets(const std::vector<sent_item>& items) {
    std::vector<std::uint64_t> out;
    for (const auto& it : items) out.push_back(it.offset);
    return out;
}

std::vector<std::uint64_t> iota(std::uint64_t first, std::uint64_t n) {
    std::vector<std::uint64_t> out;
    for (std::uint64_t i = first; i < first + n; ++i) out.push_back(i);
    return out;
}

// For conditions only visible in stats (no callback to wait on): polls them, bounded.
template <class Pred>
bool eventually(Pred pred) {
    const auto deadline = steady::now() + wait_limit;
    while (!pred()) {
        if (steady::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

class DeliveryWorker : public testing::Test {
  protected:
    void SetUp() override {
        log::local_log_options lo;
        lo.dir = tmp_.path / "log";
        log_ = log::local_log::open(lo);
        cursors_ = std::make_unique<log::cursor_store>(tmp_.path / "cursors");
        cursors_->open();
        store_ = make_store("dest");
    }
    void TearDown() override { log_->close(); }

    std::unique_ptr<dead_letter_store> make_store(const std::string& name,
                                                  std::uint64_t max_bytes = 1ULL << 30) {
        auto s = std::make_unique<dead_letter_store>(tmp_.path / "dead_letter", name, max_bytes);
        s->open();
        return s;
    }

    // Appends one record per entry and waits until they are durable. An entry is an event of
    // that kind, or nullopt for a payload that does not decode. Events were received a second
    // ago.
    void append(const std::vector<std::optional<record_kind>>& kinds) {
        record_batch rb;
        const auto received = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count() -
                              1000;
        for (const auto& k : kinds) {
            std::size_t i = next_event_++;
            if (!k) {
                rb.add("not an event payload");
                continue;
            }
            event e;
            e.header.kind = *k;
            e.header.type = event_type::track;
            e.header.received_at_ms = received;
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
        o.breaker_cooldown = 10ms;
        o.breaker_cooldown_max = 20ms;
        return o;
    }

    std::unique_ptr<worker> make_worker(worker_options o, std::shared_ptr<script> s,
                                        std::size_t instances = 1,
                                        dead_letter_store* store = nullptr) {
        auto on_commit = [this, s, name = o.name] {
            commits_.fetch_add(1);
            if (check_commits_) {
                // The committed cursor never passes an event that was neither delivered nor
                // dead-lettered.
                auto c = cursors_->load(name).value_or(0);
                std::lock_guard g(s->mu);
                std::set<std::uint64_t> got;
                for (const auto& it : s->delivered) got.insert(it.offset);
                for (std::uint64_t i = 0; i < c; ++i) {
                    if (!got.count(i)) bad_commits_.fetch_add(1);
                }
            }
            // Wakes tests waiting for a cursor value.
            { std::lock_guard g(s->mu); }
            s->cv.notify_all();
        };
        std::vector<std::unique_ptr<destination>> dests;
        for (std::size_t i = 0; i < instances; ++i) {
            dests.push_back(std::make_unique<test_destination>(s));
        }
        return std::make_unique<worker>(std::move(o), *log_, *cursors_, std::move(dests),
                                        store ? *store : *store_, on_commit);
    }

    std::vector<dead_letter> dead_letters(dead_letter_store& store) {
        std::error_code ec;
        auto out = store.list({}, 1000, ec);
        EXPECT_FALSE(ec) << ec.message();
        return out;
    }

    temp_dir tmp_;
    std::unique_ptr<log::local_log> log_;
    std::unique_ptr<log::cursor_store> cursors_;
    std::unique_ptr<dead_letter_store> store_;
    std::atomic<int> commits_{0};
    bool check_commits_ = false;
    std::atomic<int> bad_commits_{0};
    std::size_t next_event_ = 0;
};

TEST_F(DeliveryWorker, DeliversAllEventsInOrder) {
    auto s = std::make_shared<script>();
    auto o = options();
    o.max_batch_events = 64;
    auto w = make_worker(o, s);
    w->start();
    for (int i = 0; i < 10; ++i) append_events(50);
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 500u; }));
    w->stop();

    EXPECT_EQ(s->delivered_items(), expected_events(0, 500));
    for (const auto& a : s->attempts()) EXPECT_LE(a.size(), 64u);
    EXPECT_EQ(s->closed, 1);
    EXPECT_GT(commits_.load(), 0);
    auto st = w->stats();
    EXPECT_EQ(st.delivered, 500u);
    EXPECT_EQ(st.cursor, 500u);
    EXPECT_EQ(st.lag_events, 0u);
    EXPECT_EQ(st.lag_seconds, 0.0);
    EXPECT_EQ(st.retries, 0u);
    EXPECT_EQ(st.dead_lettered, 0u);
    EXPECT_EQ(st.state, "running");
    EXPECT_EQ(st.in_flight, 0u);
    EXPECT_TRUE(st.healthy);
}

TEST_F(DeliveryWorker, RespectsTheBatchByteLimit) {
    append_events(20);
    auto s = std::make_shared<script>();
    auto o = options();
    o.max_batch_bytes = 1;  // every record is larger: one record per batch
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 20u; }));
    w->stop();
    EXPECT_EQ(s->calls.size(), 20u);
    EXPECT_EQ(s->delivered_items(), expected_events(0, 20));
}

TEST_F(DeliveryWorker, ResumesFromTheCommittedCursor) {
    append_events(10);
    auto first = std::make_shared<script>();
    {
        auto w = make_worker(options(), first);
        w->start();
        ASSERT_TRUE(first->wait([&] { return cursors_->load("dest") == 10u; }));
        w->stop();
    }
    append_events(5);
    auto second = std::make_shared<script>();
    auto w = make_worker(options(), second);
    w->start();
    ASSERT_TRUE(second->wait([&] { return cursors_->load("dest") == 15u; }));
    w->stop();
    EXPECT_EQ(second->delivered_items(), expected_events(10, 5));
}

TEST_F(DeliveryWorker, RetrySendsTheSameBatchAgain) {
    append_events(5);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::retry_later("busy"), send_outcome::retry_later("still busy"),
                  send_outcome::ok()};
    auto o = options();
    std::mutex obs_mu;
    std::vector<std::pair<std::size_t, send_status>> observed;
    o.on_send = [&](std::size_t n, double seconds, send_status st) {
        EXPECT_GE(seconds, 0.0);
        std::lock_guard g(obs_mu);
        observed.emplace_back(n, st);
    };
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 5u; }));
    w->stop();

    auto a = s->attempts();
    ASSERT_EQ(a.size(), 3u);
    EXPECT_EQ(a[0], expected_events(0, 5));
    EXPECT_EQ(a[1], a[0]);
    EXPECT_EQ(a[2], a[0]);
    std::lock_guard g(obs_mu);
    EXPECT_EQ(observed,
              (std::vector<std::pair<std::size_t, send_status>>{
                  {5, send_status::retry}, {5, send_status::retry}, {5, send_status::delivered}}));
    auto st = w->stats();
    EXPECT_EQ(st.retries, 2u);
    EXPECT_EQ(st.delivered, 5u);
    EXPECT_EQ(st.last_error, "still busy");
    EXPECT_EQ(st.breaker_opens, 0u);  // 2 failures < breaker_failures (5)
    EXPECT_TRUE(st.healthy);
}

TEST_F(DeliveryWorker, RejectGoesToTheDeadLetterStoreAndAdvances) {
    append_events(3);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::rejected("HTTP 400: bad \"schema\"")};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 3u; }));
    append_events(2);
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 5u; }));
    w->stop();

    auto a = s->attempts();
    ASSERT_EQ(a.size(), 2u);
    EXPECT_EQ(a[0], expected_events(0, 3));  // sent once, not retried
    EXPECT_EQ(a[1], expected_events(3, 2));
    auto dl = dead_letters(*store_);
    ASSERT_EQ(dl.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(dl[i].offset, i);
        EXPECT_EQ(dl[i].kind, "rejected");
        EXPECT_EQ(dl[i].reason, "rejected: HTTP 400: bad \"schema\"");
        EXPECT_EQ(dl[i].last_response, "HTTP 400: bad \"schema\"");
        EXPECT_EQ(dl[i].attempts, 1u);
        EXPECT_EQ(dl[i].message_id, "m-" + std::to_string(i));
        EXPECT_EQ(dl[i].event_json, json_of(i));
    }
    auto st = w->stats();
    EXPECT_EQ(st.rejected, 3u);
    EXPECT_EQ(st.dead_lettered, 3u);
    EXPECT_EQ(st.delivered, 2u);
}

TEST_F(DeliveryWorker, DeliversOnlyConfiguredKindsAndSkipsCorruptRecords) {
    using k = record_kind;
    append({k::event, k::quarantine, std::nullopt, k::event, k::quarantine});

    auto events = std::make_shared<script>();
    auto quarantine = std::make_shared<script>();
    auto q = options("quarantine");
    q.kinds = {record_kind::quarantine};
    auto qstore = make_store("quarantine");
    auto we = make_worker(options("events"), events);
    auto wq = make_worker(q, quarantine, 1, qstore.get());
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

    EXPECT_EQ(offsets(events->delivered_items()), (std::vector<std::uint64_t>{0, 3}));
    EXPECT_EQ(offsets(quarantine->delivered_items()), (std::vector<std::uint64_t>{1, 4, 5, 6}));
    auto st = we->stats();
    EXPECT_EQ(st.undecodable, 1u);
    EXPECT_EQ(st.skipped_events, 4u);
    EXPECT_EQ(st.delivered, 2u);
    EXPECT_EQ(wq->stats().undecodable, 1u);
}

TEST_F(DeliveryWorker, AttemptBudgetIsolatesThePoisonEvent) {
    append_events(5);
    auto s = std::make_shared<script>();
    s->policy = [](const std::vector<sent_item>& b) {
        for (const auto& it : b) {
            if (it.offset == 2) return send_outcome::retry_later("HTTP 503: poison");
        }
        return send_outcome::ok();
    };
    auto o = options();
    o.retry_max_attempts = 3;
    o.breaker_failures = 0;
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 5u; }));
    w->stop();

    std::vector<std::size_t> sizes;
    for (const auto& a : s->attempts()) sizes.push_back(a.size());
    // The whole batch three times, then one event at a time; the poison event three times.
    EXPECT_EQ(sizes, (std::vector<std::size_t>{5, 5, 5, 1, 1, 1, 1, 1, 1, 1}));
    EXPECT_EQ(offsets(s->delivered_items()), (std::vector<std::uint64_t>{0, 1, 3, 4}));
    auto dl = dead_letters(*store_);
    ASSERT_EQ(dl.size(), 1u);
    EXPECT_EQ(dl[0].offset, 2u);
    EXPECT_EQ(dl[0].kind, "budget_exhausted");
    EXPECT_EQ(dl[0].attempts, 3u);
    EXPECT_EQ(dl[0].last_response, "HTTP 503: poison");
    EXPECT_NE(dl[0].reason.find("retry budget exhausted"), std::string::npos) << dl[0].reason;
    EXPECT_EQ(dl[0].event_json, json_of(2));
    auto st = w->stats();
    EXPECT_EQ(st.budget_exhausted, 1u);
    EXPECT_EQ(st.dead_lettered, 1u);
    EXPECT_EQ(st.retries, 6u);
    EXPECT_EQ(st.delivered, 4u);
}

TEST_F(DeliveryWorker, AgeBudgetIsolatesThePoisonEvent) {
    append_events(4);
    auto s = std::make_shared<script>();
    s->policy = [](const std::vector<sent_item>& b) {
        for (const auto& it : b) {
            if (it.offset == 1) return send_outcome::retry_later("timeout");
        }
        return send_outcome::ok();
    };
    auto o = options();
    o.retry_max_attempts = 0;  // unlimited: only the age ends it
    o.retry_max_age = 3ms;
    o.breaker_failures = 0;
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 4u; }));
    w->stop();

    EXPECT_EQ(offsets(s->delivered_items()), (std::vector<std::uint64_t>{0, 2, 3}));
    auto dl = dead_letters(*store_);
    ASSERT_EQ(dl.size(), 1u);
    EXPECT_EQ(dl[0].offset, 1u);
    EXPECT_EQ(dl[0].kind, "budget_exhausted");
    EXPECT_GE(dl[0].attempts, 1u);
    EXPECT_EQ(w->stats().budget_exhausted, 1u);
}

TEST_F(DeliveryWorker, BreakerStopsSendingProbesWithOneEventAndCloses) {
    append_events(10);
    auto s = std::make_shared<script>();
    bool down = true;  // guarded by s->mu
    s->policy = [&](const std::vector<sent_item>&) {
        return down ? send_outcome::retry_later("connection refused") : send_outcome::ok();
    };
    auto o = options();
    o.breaker_failures = 3;
    o.breaker_cooldown = 10ms;
    o.breaker_cooldown_max = 20ms;
    o.retry_max_attempts = 4;  // probes do not count: the outage must not exhaust it
    auto w = make_worker(o, s);
    w->start();
    // Three failures open it; then two failed probes.
    ASSERT_TRUE(s->wait([&] { return s->calls.size() >= 5 && s->in_send == 0; }));
    auto st = w->stats();
    EXPECT_EQ(st.state, "breaker_open");
    EXPECT_EQ(st.breaker_opens, 1u);
    {
        std::lock_guard g(s->mu);
        down = false;
    }
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 10u; }));
    w->stop();

    std::lock_guard g(s->mu);
    const auto& c = s->calls;
    ASSERT_GE(c.size(), 6u);
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(c[i].items.size(), 10u);
    // While open: only probes of one event, at least a cooldown apart (no send in between).
    std::size_t i = 3;
    for (; c[i].answer == send_status::retry; ++i) {
        EXPECT_EQ(c[i].items.size(), 1u);
        EXPECT_EQ(c[i].items[0].offset, 0u);
        EXPECT_GE(c[i].at - c[i - 1].at, 10ms);
    }
    // The successful probe, then the rest of the batch with the budget left.
    EXPECT_EQ(c[i].items, expected_events(0, 1));
    ASSERT_EQ(c.size(), i + 2);
    EXPECT_EQ(c[i + 1].items, expected_events(1, 9));
    EXPECT_EQ(s->delivered, expected_events(0, 10));
    EXPECT_EQ(dead_letters(*store_).size(), 0u);
    st = w->stats();
    EXPECT_EQ(st.state, "running");
    EXPECT_EQ(st.breaker_opens, 1u);
    EXPECT_EQ(st.delivered, 10u);
}

TEST_F(DeliveryWorker, RetryAfterIsAMinimumWait) {
    append_events(2);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::retry_later("HTTP 429", 30ms)};
    auto o = options();
    o.backoff_max = 1ms;
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 2u; }));
    w->stop();
    std::lock_guard g(s->mu);
    ASSERT_EQ(s->calls.size(), 2u);
    EXPECT_GE(s->calls[1].at - s->calls[0].at, 30ms);
}

TEST_F(DeliveryWorker, RejectedItemsAreDeadLetteredAndTheRestDelivered) {
    append_events(4);
    auto s = std::make_shared<script>();
    send_outcome partial = send_outcome::ok();
    partial.reason = "HTTP 207";
    partial.rejected_items = {{1, "bad email"}, {3, "too big"}, {9, "out of range: ignored"}};
    s->answers = {partial};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 4u; }));
    w->stop();

    EXPECT_EQ(s->calls.size(), 1u);
    EXPECT_EQ(offsets(s->delivered_items()), (std::vector<std::uint64_t>{0, 2}));
    auto dl = dead_letters(*store_);
    ASSERT_EQ(dl.size(), 2u);
    EXPECT_EQ(dl[0].offset, 1u);
    EXPECT_EQ(dl[0].reason, "rejected: bad email");
    EXPECT_EQ(dl[0].kind, "rejected");
    EXPECT_EQ(dl[0].last_response, "HTTP 207");
    EXPECT_EQ(dl[1].offset, 3u);
    EXPECT_EQ(dl[1].reason, "rejected: too big");
    auto st = w->stats();
    EXPECT_EQ(st.delivered, 2u);
    EXPECT_EQ(st.rejected, 2u);
    EXPECT_EQ(st.dead_lettered, 2u);
}

TEST_F(DeliveryWorker, RefusingDeadLetterStoreHoldsTheCursor) {
    append_events(3);
    auto tiny = make_store("tiny", 1);  // refuses every append: full
    auto s = std::make_shared<script>();
    s->policy = [](const std::vector<sent_item>&) { return send_outcome::rejected("HTTP 400"); };
    auto o = options("tiny");
    auto w = make_worker(o, s, 1, tiny.get());
    w->start();
    ASSERT_TRUE(eventually([&] {
        return w->stats().last_error.find("cannot write dead letters") != std::string::npos;
    }));
    EXPECT_EQ(w->stats().state, "backing_off");
    w->stop();
    EXPECT_FALSE(cursors_->load("tiny").has_value());  // nothing dropped silently
    EXPECT_EQ(w->stats().dead_lettered, 0u);
    tiny.reset();

    // With room in the store the same events are dead-lettered and the cursor moves.
    auto roomy = make_store("tiny");
    auto again = make_worker(o, s, 1, roomy.get());
    again->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("tiny") == 3u; }));
    again->stop();
    EXPECT_EQ(dead_letters(*roomy).size(), 3u);
}

TEST_F(DeliveryWorker, DropOldestSkipsToTheLagLimitAndRecordsIds) {
    append_events(20);
    auto s = std::make_shared<script>();
    auto o = options();
    o.max_lag_events = 5;
    o.when_lagging = lag_policy::drop_oldest;
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 20u; }));
    w->stop();

    EXPECT_EQ(offsets(s->delivered_items()), iota(15, 5));
    auto dl = dead_letters(*store_);
    ASSERT_EQ(dl.size(), 15u);
    for (std::size_t i = 0; i < dl.size(); ++i) {
        EXPECT_EQ(dl[i].offset, i);
        EXPECT_EQ(dl[i].kind, "dropped");
        EXPECT_EQ(dl[i].message_id, "m-" + std::to_string(i));
        EXPECT_TRUE(dl[i].event_json.empty());
    }
    auto st = w->stats();
    EXPECT_EQ(st.dropped, 15u);
    EXPECT_EQ(st.dead_lettered, 15u);
    EXPECT_EQ(st.delivered, 5u);
}

TEST_F(DeliveryWorker, DropOldestAlsoDropsBatchesStuckInAnOutage) {
    append_events(10);
    auto s = std::make_shared<script>();
    bool down = true;  // guarded by s->mu
    s->policy = [&](const std::vector<sent_item>&) {
        return down ? send_outcome::retry_later("HTTP 503") : send_outcome::ok();
    };
    auto o = options();
    o.max_batch_events = 5;
    o.max_lag_events = 20;
    o.when_lagging = lag_policy::drop_oldest;
    o.breaker_failures = 3;
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return s->calls.size() >= 3; }));  // the breaker is open
    append_events(30);                                           // lag 40 > 20: drop to 20
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 20u; }));
    {
        std::lock_guard g(s->mu);
        down = false;
    }
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 40u; }));
    w->stop();

    EXPECT_EQ(offsets(s->delivered_items()), iota(20, 20));
    auto dl = dead_letters(*store_);
    std::vector<std::uint64_t> dropped;
    for (const auto& d : dl) {
        EXPECT_EQ(d.kind, "dropped");
        dropped.push_back(d.offset);
    }
    // Stuck batches are dropped by their senders, unread events by the reader: any order.
    std::sort(dropped.begin(), dropped.end());
    EXPECT_EQ(dropped, iota(0, 20));
    EXPECT_EQ(w->stats().dropped, 20u);
}

TEST_F(DeliveryWorker, BlockPolicyDropsNothing) {
    append_events(20);
    auto s = std::make_shared<script>();
    auto o = options();
    o.max_lag_events = 5;
    o.when_lagging = lag_policy::block;
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 20u; }));
    w->stop();
    EXPECT_EQ(s->delivered_items(), expected_events(0, 20));
    EXPECT_EQ(w->stats().dropped, 0u);
    EXPECT_TRUE(dead_letters(*store_).empty());
}

TEST_F(DeliveryWorker, PausedWorkerSendsNothingUntilResumed) {
    auto s = std::make_shared<script>();
    auto w = make_worker(options(), s);
    w->pause();
    w->start();
    append_events(5);
    // The paused worker still watches its lag (the events were received a second ago).
    ASSERT_TRUE(eventually([&] { return w->stats().lag_seconds >= 1.0; }));
    auto st = w->stats();
    EXPECT_TRUE(w->paused());
    EXPECT_EQ(st.state, "paused");
    EXPECT_EQ(st.lag_events, 5u);
    {
        std::lock_guard g(s->mu);
        EXPECT_TRUE(s->calls.empty());
    }
    w->resume();
    EXPECT_FALSE(w->paused());
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 5u; }));
    w->stop();
    EXPECT_EQ(s->delivered_items(), expected_events(0, 5));
    EXPECT_EQ(w->stats().state, "running");
    EXPECT_EQ(w->stats().lag_seconds, 0.0);
}

TEST_F(DeliveryWorker, ReplayDeliversMarkedDeadLettersAndRemovesThem) {
    append_events(3);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::rejected("HTTP 400")};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 3u; }));
    auto dl = dead_letters(*store_);
    ASSERT_EQ(dl.size(), 3u);

    dead_letter_filter f;
    f.ids = {dl[0].id, dl[2].id};
    std::error_code ec;
    ASSERT_EQ(store_->mark_for_replay(f, ec), 2u);
    ASSERT_FALSE(ec);
    ASSERT_TRUE(eventually([&] { return store_->size() == 1; }));
    w->stop();

    auto a = s->attempts();
    ASSERT_EQ(a.size(), 2u);
    EXPECT_EQ(a[1], (std::vector<sent_item>{expected_events(0, 1)[0], expected_events(2, 1)[0]}));
    auto left = dead_letters(*store_);
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].offset, 1u);
    EXPECT_FALSE(left[0].replaying);
    auto st = w->stats();
    EXPECT_EQ(st.replayed, 2u);
    EXPECT_EQ(st.cursor, 3u);
}

TEST_F(DeliveryWorker, FailedReplayUnmarksTheDeadLetter) {
    append_events(1);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::rejected("HTTP 400"), send_outcome::rejected("HTTP 422")};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 1u; }));
    std::error_code ec;
    ASSERT_EQ(store_->mark_for_replay({}, ec), 1u);
    ASSERT_TRUE(eventually([&] { return store_->replay_pending() == 0; }));
    w->stop();

    EXPECT_EQ(s->calls.size(), 2u);
    auto dl = dead_letters(*store_);
    ASSERT_EQ(dl.size(), 1u);
    EXPECT_FALSE(dl[0].replaying);
    EXPECT_EQ(dl[0].attempts, 2u);
    EXPECT_EQ(dl[0].reason, "rejected: HTTP 422");
    EXPECT_EQ(dl[0].last_response, "HTTP 422");
    EXPECT_EQ(w->stats().replayed, 0u);
}

TEST_F(DeliveryWorker, RouteHookSkipsAndTransforms) {
    append_events(5);
    auto s = std::make_shared<script>();
    auto o = options();
    o.route = [](const event_view& e, std::string& transformed) -> std::optional<std::string_view> {
        if (e.message_id == "m-1" || e.message_id == "m-3") return "no consent";
        if (e.message_id == "m-2") return "test traffic";
        if (e.message_id == "m-0") transformed = R"({"transformed":true})";
        return std::nullopt;
    };
    auto w = make_worker(o, s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 5u; }));
    w->stop();

    auto got = s->delivered_items();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].offset, 0u);
    EXPECT_EQ(got[0].json, R"({"transformed":true})");
    EXPECT_EQ(got[1], expected_events(4, 1)[0]);
    auto st = w->stats();
    EXPECT_EQ(st.filtered, (std::map<std::string, std::uint64_t, std::less<>>{
                               {"no consent", 2}, {"test traffic", 1}}));
    EXPECT_EQ(st.delivered, 2u);
}

TEST_F(DeliveryWorker, ConcurrentSendersNeverCommitPastAnUndeliveredBatch) {
    check_commits_ = true;
    append_events(100);
    auto s = std::make_shared<script>();
    s->hold = 10;  // the batch at offsets 10..14 is slow
    s->hold_answer = send_outcome::retry_later("timeout");
    auto o = options();
    o.max_batch_events = 5;
    auto w = make_worker(o, s, 4);
    w->start();
    // Other senders deliver later batches while 10..14 hangs (out of order)...
    ASSERT_TRUE(s->wait([&] {
        return cursors_->load("dest") == 10u &&
               std::count_if(s->delivered.begin(), s->delivered.end(),
                             [](const auto& it) { return it.offset >= 15; }) >= 25;
    }));
    // ...but the cursor waits for it (on_commit also checks every commit on the way).
    EXPECT_EQ(w->stats().cursor, 10u);
    EXPECT_GE(w->stats().in_flight, 1u);

    // Stop while it hangs; its answer (retry) is not retried.
    auto stopped = std::async(std::launch::async, [&] { w->stop(); });
    EXPECT_EQ(stopped.wait_for(20ms), std::future_status::timeout);
    {
        std::lock_guard g(s->mu);
        s->hold.reset();
    }
    s->cv.notify_all();
    ASSERT_EQ(stopped.wait_for(wait_limit), std::future_status::ready);
    EXPECT_EQ(cursors_->load("dest"), 10u);
    EXPECT_EQ(s->closed, 4);

    // After a restart nothing is lost.
    auto again = make_worker(o, s, 4);
    again->start();
    ASSERT_TRUE(s->wait([&] { return cursors_->load("dest") == 100u; }));
    again->stop();
    EXPECT_EQ(bad_commits_.load(), 0);
    std::set<std::uint64_t> got;
    for (const auto& it : s->delivered_items()) got.insert(it.offset);
    EXPECT_EQ(got.size(), 100u);
    EXPECT_EQ(s->closed, 8);
}

TEST_F(DeliveryWorker, StopDuringBackoffReturnsPromptly) {
    append_events(3);
    auto s = std::make_shared<script>();
    s->answers = {send_outcome::retry_later("rate limited", std::chrono::hours(1))};
    auto w = make_worker(options(), s);
    w->start();
    ASSERT_TRUE(s->wait([&] { return s->calls.size() == 1 && s->in_send == 0; }));

    auto t0 = steady::now();
    w->stop();
    EXPECT_LT(steady::now() - t0, 5s);
    EXPECT_EQ(s->closed, 1);
    EXPECT_EQ(s->calls.size(), 1u);
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
    ASSERT_TRUE(s->wait([&] { return s->in_send == 1; }));
    EXPECT_EQ(w->stats().in_flight, 1u);

    auto stopped = std::async(std::launch::async, [&] { w->stop(); });
    EXPECT_EQ(stopped.wait_for(50ms), std::future_status::timeout);  // waits for the send
    {
        std::lock_guard g(s->mu);
        s->block = false;
    }
    s->cv.notify_all();
    ASSERT_EQ(stopped.wait_for(wait_limit), std::future_status::ready);
    EXPECT_EQ(cursors_->load("dest"), 4u);
    EXPECT_EQ(s->closed, 1);
}

TEST_F(DeliveryWorker, StopWithoutStartClosesEveryInstance) {
    auto s = std::make_shared<script>();
    auto w = make_worker(options(), s, 3);
    w->stop();
    EXPECT_EQ(s->closed, 3);
    w->stop();  // idempotent
    EXPECT_EQ(s->closed, 3);
}

}  // namespace
}  // namespace switchyard::delivery
