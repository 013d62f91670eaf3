#include "identity/store.h"

#include "support/redis_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace switchyard::identity {
namespace {

// The same behaviour checked on both backends: LMDB in a temp dir, Redis on a real
// redis-server started for the test.
class IdentityStore : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        std::string err;
        if (GetParam() == "lmdb") {
            dir_ = std::filesystem::temp_directory_path() /
                   ("sy-store-" + std::to_string(::getpid()) + "-" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
            std::filesystem::remove_all(dir_);
            lmdb_options o;
            o.dir = dir_;
            o.max_bytes = 16ull << 20;
            o.sync = false;
            store_ = open_lmdb(o, err);
        } else {
            if (!switchyard::testing::redis_server::available()) {
                GTEST_SKIP() << "redis-server is not installed";
            }
            redis_ = std::make_unique<switchyard::testing::redis_server>();
            redis_options o;
            o.port = redis_->port();
            o.key_prefix = "t:";
            store_ = open_redis(o, err);
        }
        ASSERT_TRUE(store_) << err;
    }
    void TearDown() override {
        store_.reset();
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }

    std::optional<std::string> get(std::string_view k) {
        auto v = store_->get(k);
        EXPECT_TRUE(v) << v.error().message();
        return v ? *v : std::nullopt;
    }

    std::filesystem::path dir_;
    std::unique_ptr<switchyard::testing::redis_server> redis_;
    std::unique_ptr<store> store_;
};

TEST_P(IdentityStore, PutGetDeleteInTransactions) {
    EXPECT_EQ(get("a"), std::nullopt);
    ASSERT_FALSE(store_->transact([](store::txn& t) {
        t.put("a", "1");
        t.put("b", "2");
        return true;
    }));
    EXPECT_EQ(get("a"), "1");
    EXPECT_EQ(get("b"), "2");
    ASSERT_FALSE(store_->transact([](store::txn& t) {
        t.del("a");
        t.del("never-there");
        return true;
    }));
    EXPECT_EQ(get("a"), std::nullopt);
    EXPECT_EQ(get("b"), "2");
}

TEST_P(IdentityStore, AbortedTransactionWritesNothing) {
    ASSERT_FALSE(store_->transact([](store::txn& t) {
        t.put("x", "1");
        return false;
    }));
    EXPECT_EQ(get("x"), std::nullopt);
}

TEST_P(IdentityStore, ReadsItsOwnWrites) {
    std::optional<std::string> seen, gone;
    ASSERT_FALSE(store_->transact([&](store::txn& t) {
        t.put("k", "v");
        seen = t.get("k").value();
        t.del("k");
        gone = t.get("k").value();
        t.put("k", "w");
        return true;
    }));
    EXPECT_EQ(seen, "v");
    EXPECT_EQ(gone, std::nullopt);
    EXPECT_EQ(get("k"), "w");
}

TEST_P(IdentityStore, ScanVisitsOnlyThePrefixAndStops) {
    ASSERT_FALSE(store_->transact([](store::txn& t) {
        for (int i = 0; i < 50; ++i) t.put("n" + std::to_string(i), std::to_string(i));
        t.put("m:other", "x");
        t.put("s1", "y");
        return true;
    }));
    std::set<std::string> keys;
    ASSERT_FALSE(store_->scan("n", [&](std::string_view k, std::string_view v) {
        EXPECT_EQ("n" + std::string(v), k);
        keys.emplace(k);
        return true;
    }));
    EXPECT_EQ(keys.size(), 50u);
    int visited = 0;
    ASSERT_FALSE(
        store_->scan("n", [&](std::string_view, std::string_view) { return ++visited < 3; }));
    EXPECT_EQ(visited, 3);
}

TEST_P(IdentityStore, BinaryKeysAndValues) {
    const std::string k("a\0b*?[x]", 8), v("\0\1\2\xff", 4);
    ASSERT_FALSE(store_->transact([&](store::txn& t) {
        t.put(k, v);
        return true;
    }));
    EXPECT_EQ(get(k), v);
    EXPECT_EQ(get(std::string("a\0c", 3)), std::nullopt);
    int n = 0;
    ASSERT_FALSE(store_->scan(std::string("a\0b*", 4), [&](std::string_view key, std::string_view) {
        EXPECT_EQ(key, k);
        ++n;
        return true;
    }));
    EXPECT_EQ(n, 1);
}

TEST_P(IdentityStore, ThrowingTransactionWritesNothingAndFreesTheStore) {
    // LMDB must release its writer lock and Redis must not pool a connection with live WATCHes.
    EXPECT_THROW(store_->transact([](store::txn& t) -> bool {
        EXPECT_TRUE(t.get("w"));
        t.put("w", "1");
        throw std::runtime_error("fn failed");
    }),
                 std::runtime_error);
    EXPECT_EQ(get("w"), std::nullopt);
    ASSERT_FALSE(store_->transact([](store::txn& t) {
        t.put("w", "2");
        return true;
    }));
    EXPECT_EQ(get("w"), "2");
}

TEST_P(IdentityStore, ConcurrentIncrementsAreExact) {
    constexpr int threads = 8, each = 500;
    std::vector<std::thread> ts;
    std::atomic<int> failures{0};
    for (int i = 0; i < threads; ++i) {
        ts.emplace_back([&] {
            for (int j = 0; j < each; ++j) {
                auto ec = store_->transact([](store::txn& t) {
                    auto v = t.get("counter");
                    if (!v) return false;
                    const int n = *v ? std::stoi(**v) : 0;
                    t.put("counter", std::to_string(n + 1));
                    return true;
                });
                if (ec) failures.fetch_add(1);
            }
        });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(get("counter"), std::to_string(threads * each));
}

// Named so that --gtest_filter='IdentityStore*' selects these too.
INSTANTIATE_TEST_SUITE_P(IdentityStoreBackends, IdentityStore, ::testing::Values("lmdb", "redis"),
                         [](const auto& info) { return info.param; });

TEST(IdentityStoreLmdb, SurvivesReopenAndLongKeys) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("sy-store-reopen-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    lmdb_options o;
    o.dir = dir;
    o.max_bytes = 16ull << 20;
    const std::string long_key(2048, 'k'), other(2048, 'k');
    std::string err;
    {
        auto s = open_lmdb(o, err);
        ASSERT_TRUE(s) << err;
        ASSERT_FALSE(s->transact([&](store::txn& t) {
            t.put("durable", "yes");
            t.put(long_key, "long");
            return true;
        }));
        EXPECT_EQ(s->stats().keys, 2u);
        EXPECT_GT(s->stats().bytes_used, 0u);
    }
    {
        auto s = open_lmdb(o, err);
        ASSERT_TRUE(s) << err;
        EXPECT_EQ(*s->get("durable").value(), "yes");
        EXPECT_EQ(*s->get(long_key).value(), "long");
        EXPECT_EQ(s->get(std::string(2047, 'k') + "x").value(), std::nullopt);
        int n = 0;  // a prefix longer than LMDB's key limit matches nothing, and is no error
        EXPECT_FALSE(s->scan(long_key, [&](std::string_view, std::string_view) { return ++n; }));
        EXPECT_EQ(n, 0);
        EXPECT_EQ(s->describe(), "lmdb:" + dir.string());
    }
    std::filesystem::remove_all(dir);
}

TEST(IdentityStoreLmdb, FullMapFailsWritesAndStaysReadable) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("sy-store-full-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    lmdb_options o;
    o.dir = dir;
    o.max_bytes = 256 * 1024;
    o.sync = false;
    std::string err;
    auto s = open_lmdb(o, err);
    ASSERT_TRUE(s) << err;
    ASSERT_FALSE(s->transact([](store::txn& t) {
        t.put("first", "kept");
        return true;
    }));
    std::error_code ec;
    const std::string big(4000, 'v');
    for (int i = 0; i < 1000 && !ec; ++i) {
        ec = s->transact([&](store::txn& t) {
            t.put("k" + std::to_string(i), big);
            return true;
        });
    }
    EXPECT_EQ(ec, std::make_error_code(std::errc::no_space_on_device));
    EXPECT_GT(s->stats().errors, 0u);
    EXPECT_EQ(*s->get("first").value(), "kept");
    std::filesystem::remove_all(dir);
}

TEST(IdentityStoreLmdb, UnusableDirectoryIsAClearError) {
    lmdb_options o;
    o.dir = "/proc/self/not-a-place/identity";
    std::string err;
    EXPECT_FALSE(open_lmdb(o, err));
    EXPECT_NE(err.find("/proc/self/not-a-place/identity"), std::string::npos) << err;
}

TEST(IdentityStoreRedis, ServerDownFailsThenRecovers) {
    if (!switchyard::testing::redis_server::available()) GTEST_SKIP() << "no redis-server";
    switchyard::testing::redis_server redis;
    redis_options o;
    o.port = redis.port();
    o.timeout = std::chrono::milliseconds(300);
    std::string err;
    auto s = open_redis(o, err);
    ASSERT_TRUE(s) << err;
    ASSERT_FALSE(s->transact([](store::txn& t) {
        t.put("a", "1");
        return true;
    }));
    redis.stop();
    EXPECT_FALSE(s->get("a"));
    EXPECT_TRUE(s->transact([](store::txn& t) {
        t.put("b", "2");
        return true;
    }));
    EXPECT_TRUE(s->scan("", [](std::string_view, std::string_view) { return true; }));
    EXPECT_GT(s->stats().errors, 0u);
    redis.start();  // same port, empty (no persistence)
    // After a failed connect the store fails fast for a second, then reconnects.
    auto v = s->get("a");
    for (int i = 0; i < 100 && !v; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        v = s->get("a");
    }
    ASSERT_TRUE(v) << v.error().message();
    EXPECT_EQ(*v, std::nullopt);
    EXPECT_FALSE(s->transact([](store::txn& t) {
        t.put("b", "2");
        return true;
    }));
    EXPECT_EQ(*s->get("b").value(), "2");
}

TEST(IdentityStoreRedis, IdleConnectionsToARestartedServerAreReplaced) {
    if (!switchyard::testing::redis_server::available()) GTEST_SKIP() << "no redis-server";
    switchyard::testing::redis_server redis;
    redis_options o;
    o.port = redis.port();
    std::string err;
    auto s = open_redis(o, err);
    ASSERT_TRUE(s) << err;
    ASSERT_FALSE(s->transact([](store::txn& t) {
        t.put("a", "1");
        return true;
    }));
    redis.stop();
    ASSERT_TRUE(redis.start());
    // No call saw the outage: the pooled connection is dead, and the very next calls succeed.
    auto v = s->get("a");
    ASSERT_TRUE(v) << v.error().message();
    EXPECT_EQ(*v, std::nullopt);
    redis.stop();
    ASSERT_TRUE(redis.start());
    EXPECT_FALSE(s->transact([](store::txn& t) {
        t.put("b", "2");
        return true;
    }));
    EXPECT_EQ(s->stats().errors, 0u);
}

TEST(IdentityStoreRedis, HungServerTimesOutThenRecovers) {
    if (!switchyard::testing::redis_server::available()) GTEST_SKIP() << "no redis-server";
    switchyard::testing::redis_server redis;
    redis_options o;
    o.port = redis.port();
    o.timeout = std::chrono::milliseconds(200);
    std::string err;
    auto s = open_redis(o, err);
    ASSERT_TRUE(s) << err;
    ASSERT_FALSE(s->transact([](store::txn& t) {
        t.put("a", "1");
        return true;
    }));
    redis.pause();  // accepts connections (the kernel does) but never answers
    EXPECT_FALSE(s->get("a"));
    EXPECT_TRUE(s->transact([](store::txn& t) {
        auto v = t.get("a");
        if (!v) return false;
        t.put("a", "2");
        return true;
    }));
    EXPECT_TRUE(s->scan("", [](std::string_view, std::string_view) { return true; }));
    EXPECT_GE(s->stats().errors, 3u);
    redis.resume();
    // The timed-out connections were dropped (a late reply must not answer a later command).
    EXPECT_EQ(*s->get("a").value(), "1");
    EXPECT_FALSE(s->transact([](store::txn& t) {
        t.put("a", "3");
        return true;
    }));
    EXPECT_EQ(*s->get("a").value(), "3");
}

TEST(IdentityStoreRedis, PrefixesIsolateStoresAndRefusedConnectionIsClear) {
    if (!switchyard::testing::redis_server::available()) GTEST_SKIP() << "no redis-server";
    switchyard::testing::redis_server redis;
    redis_options o;
    o.port = redis.port();
    std::string err;
    o.key_prefix = "one:";
    auto one = open_redis(o, err);
    o.key_prefix = "two:";
    auto two = open_redis(o, err);
    ASSERT_TRUE(one && two) << err;
    ASSERT_FALSE(one->transact([](store::txn& t) {
        t.put("k", "1");
        return true;
    }));
    EXPECT_EQ(two->get("k").value(), std::nullopt);
    int n = 0;
    ASSERT_FALSE(two->scan("", [&](std::string_view, std::string_view) { return ++n, true; }));
    EXPECT_EQ(n, 0);
    redis.stop();
    redis_options bad;
    bad.port = redis.port();
    bad.timeout = std::chrono::milliseconds(200);
    EXPECT_FALSE(open_redis(bad, err));
    EXPECT_NE(err.find("cannot connect"), std::string::npos) << err;
}

}  // namespace
}  // namespace switchyard::identity
