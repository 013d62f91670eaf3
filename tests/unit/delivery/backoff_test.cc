#include "delivery/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace switchyard::delivery {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, CeilingDoublesUpToTheCap) {
    backoff b(milliseconds(100), milliseconds(30000), 1);
    std::vector<long> got;
    for (unsigned a = 0; a < 11; ++a) got.push_back(b.ceiling(a).count());
    EXPECT_EQ(
        got, (std::vector<long>{100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000}));
    EXPECT_EQ(b.ceiling(1000).count(), 30000);  // no overflow for absurd attempt counts
}

TEST(Backoff, BaseAboveMaxIsCapped) {
    backoff b(milliseconds(500), milliseconds(200), 1);
    EXPECT_EQ(b.ceiling(0).count(), 200);
}

TEST(Backoff, FullJitterStaysWithinTheCeiling) {
    backoff b(milliseconds(100), milliseconds(1000), 42);
    for (int round = 0; round < 50; ++round) {
        b.reset();
        for (unsigned a = 0; a < 8; ++a) {
            auto ceiling = b.ceiling(b.attempt());
            auto d = b.next();
            EXPECT_GE(d.count(), 0);
            EXPECT_LE(d, ceiling);
        }
    }
}

TEST(Backoff, JitterCoversTheWholeRange) {
    backoff b(milliseconds(1000), milliseconds(1000), 7);
    long lo = 1000, hi = 0;
    for (int i = 0; i < 2000; ++i) {
        b.reset();
        long v = b.next().count();
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    EXPECT_LT(lo, 50);
    EXPECT_GT(hi, 950);
}

TEST(Backoff, SameSeedSameSequence) {
    backoff a(milliseconds(100), milliseconds(30000), 1234);
    backoff b(milliseconds(100), milliseconds(30000), 1234);
    backoff c(milliseconds(100), milliseconds(30000), 4321);
    bool differs = false;
    for (int i = 0; i < 20; ++i) {
        auto x = a.next();
        EXPECT_EQ(x, b.next());
        differs |= x != c.next();
    }
    EXPECT_TRUE(differs);
}

TEST(Backoff, RetryAfterIsAMinimum) {
    backoff b(milliseconds(10), milliseconds(100), 5);
    for (int i = 0; i < 10; ++i) EXPECT_GE(b.next(milliseconds(5000)).count(), 5000);
}

TEST(Backoff, ResetStartsAgainFromBase) {
    backoff b(milliseconds(10), milliseconds(100000), 5);
    for (int i = 0; i < 6; ++i) b.next();
    EXPECT_EQ(b.attempt(), 6u);
    b.reset();
    EXPECT_EQ(b.attempt(), 0u);
    EXPECT_LE(b.next().count(), 10);
}

}  // namespace
}  // namespace switchyard::delivery
