#include "enrich/cache.h"

#include <gtest/gtest.h>

#include <list>
#include <random>
#include <string>
#include <unordered_map>

namespace switchyard::enrich {
namespace {

std::string key(int i) { return "key-" + std::to_string(i); }

TEST(S3FifoCache, HitsMissesAndValues) {
    s3fifo_cache<int> c(10);
    EXPECT_EQ(c.find("a"), nullptr);
    EXPECT_EQ(c.insert("a", 1), 1);
    ASSERT_NE(c.find("a"), nullptr);
    EXPECT_EQ(*c.find("a"), 1);
    c.insert("a", 2);  // replaces
    EXPECT_EQ(*c.find("a"), 2);
    EXPECT_EQ(c.size(), 1u);
    c.clear();
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(c.find("a"), nullptr);
}

TEST(S3FifoCache, ZeroCapacityStoresNothing) {
    s3fifo_cache<std::string> c(0);
    const auto& v = c.insert("a", "value");
    EXPECT_EQ(v, "value");  // usable until the next insert
    EXPECT_EQ(c.find("a"), nullptr);
    EXPECT_EQ(c.size(), 0u);
}

TEST(S3FifoCache, OneTimeKeysLeaveFirst) {
    // Keys read again move to main; keys never read again are evicted from small first.
    s3fifo_cache<int> c(10);
    for (int i = 0; i < 10; ++i) c.insert(key(i), i);
    for (int i = 0; i < 5; ++i) ASSERT_NE(c.find(key(i)), nullptr);
    for (int i = 10; i < 15; ++i) c.insert(key(i), i);
    for (int i = 0; i < 5; ++i) EXPECT_NE(c.find(key(i)), nullptr) << key(i);
    EXPECT_LE(c.size(), 10u);
}

TEST(S3FifoCache, NeverExceedsItsCapacity) {
    s3fifo_cache<std::string> c(1000);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> d(0, 50'000);
    std::size_t hits = 0;
    for (int i = 0; i < 100'000; ++i) {
        auto k = key(d(rng));
        if (const auto* v = c.find(k)) {
            EXPECT_EQ(*v, k);  // a hit returns the value stored under that key
            ++hits;
        } else {
            c.insert(k, k);
        }
        ASSERT_LE(c.size(), 1000u);
    }
    EXPECT_GT(hits, 0u);
}

// The property the cache is chosen for: a hot set survives a scan of one-time keys that would
// flush an LRU of the same size.
TEST(S3FifoCache, ScanResistance) {
    constexpr int cap = 1000, hot = 300;
    s3fifo_cache<int> c(cap);
    // A minimal LRU to compare with.
    std::list<std::string> lru;
    std::unordered_map<std::string, std::list<std::string>::iterator> lru_index;
    auto lru_access = [&](const std::string& k) {
        auto it = lru_index.find(k);
        bool hit = it != lru_index.end();
        if (hit) lru.erase(it->second);
        lru.push_front(k);
        lru_index[k] = lru.begin();
        if (lru.size() > static_cast<std::size_t>(cap)) {
            lru_index.erase(lru.back());
            lru.pop_back();
        }
        return hit;
    };
    auto access = [&](const std::string& k) {
        if (c.find(k) != nullptr) return true;
        c.insert(k, 0);
        return false;
    };
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < hot; ++i) {
            access(key(i));
            lru_access(key(i));
        }
    }
    for (int i = 0; i < 5 * cap; ++i) {  // the scan: one-time keys
        access("scan-" + std::to_string(i));
        lru_access("scan-" + std::to_string(i));
    }
    int s3_hits = 0, lru_hits = 0;
    for (int i = 0; i < hot; ++i) {
        s3_hits += c.find(key(i)) != nullptr;
        lru_hits += lru_index.count(key(i)) != 0;
    }
    EXPECT_EQ(lru_hits, 0);
    EXPECT_GE(s3_hits, hot * 9 / 10) << "hot keys kept after the scan: " << s3_hits << "/" << hot;
}

TEST(S3FifoCache, KeysAreCopied) {
    s3fifo_cache<int> c(4);
    {
        std::string k = "transient";
        c.insert(k, 7);
        k.assign("overwritten");
    }
    ASSERT_NE(c.find("transient"), nullptr);
    EXPECT_EQ(*c.find("transient"), 7);
}

}  // namespace
}  // namespace switchyard::enrich
