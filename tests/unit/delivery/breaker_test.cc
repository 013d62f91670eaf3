#include "delivery/breaker.h"

#include <gtest/gtest.h>

namespace switchyard::delivery {
namespace {

using namespace std::chrono_literals;
using state = breaker::state;

const breaker::clock::time_point t0{};

TEST(Breaker, OpensAfterConsecutiveFailures) {
    breaker b(3, 100ms, 1000ms);
    EXPECT_TRUE(b.acquire(t0).allowed);
    EXPECT_FALSE(b.on_failure(false, t0));
    EXPECT_FALSE(b.on_failure(false, t0));
    b.on_success(false);  // a success in between starts the count again
    EXPECT_FALSE(b.on_failure(false, t0));
    EXPECT_FALSE(b.on_failure(false, t0));
    EXPECT_EQ(b.current(), state::closed);
    EXPECT_TRUE(b.on_failure(false, t0));
    EXPECT_EQ(b.current(), state::open);
    EXPECT_EQ(b.opens(), 1u);

    auto p = b.acquire(t0 + 99ms);
    EXPECT_FALSE(p.allowed);
    EXPECT_EQ(p.retry_at, t0 + 100ms);
    // Answers of sends that started before it opened change nothing.
    b.on_success(false);
    EXPECT_FALSE(b.on_failure(false, t0 + 50ms));
    EXPECT_EQ(b.current(), state::open);
    EXPECT_EQ(b.opens(), 1u);
}

TEST(Breaker, OneProbeAfterTheCooldownAndItsSuccessCloses) {
    breaker b(1, 100ms, 1000ms);
    b.on_failure(false, t0);
    auto p = b.acquire(t0 + 100ms);
    EXPECT_TRUE(p.allowed);
    EXPECT_TRUE(p.probe);
    EXPECT_EQ(b.current(), state::half_open);
    auto second = b.acquire(t0 + 200ms);  // only one probe at a time
    EXPECT_FALSE(second.allowed);
    EXPECT_EQ(second.retry_at, breaker::clock::time_point::max());
    b.on_success(true);
    EXPECT_EQ(b.current(), state::closed);
    EXPECT_TRUE(b.acquire(t0 + 200ms).allowed);
    EXPECT_FALSE(b.acquire(t0 + 200ms).probe);
}

TEST(Breaker, FailedProbesDoubleTheCooldownUpToTheMax) {
    breaker b(1, 100ms, 300ms);
    b.on_failure(false, t0);
    auto now = t0;
    std::vector<long> cooldowns;
    for (int i = 0; i < 4; ++i) {
        now += b.cooldown();
        ASSERT_TRUE(b.acquire(now).probe);
        b.on_failure(true, now);
        cooldowns.push_back(static_cast<long>(b.cooldown().count()));
        EXPECT_FALSE(b.acquire(now + b.cooldown() - 1ms).allowed);
    }
    EXPECT_EQ(cooldowns, (std::vector<long>{200, 300, 300, 300}));
    EXPECT_EQ(b.opens(), 1u);  // re-opening after a probe is not a new opening
    now += b.cooldown();
    ASSERT_TRUE(b.acquire(now).probe);
    b.on_success(true);
    EXPECT_EQ(b.cooldown(), 100ms);  // the next opening starts from the base again
}

TEST(Breaker, AnUnusedProbeCanBeTakenAgain) {
    breaker b(1, 10ms, 10ms);
    b.on_failure(false, t0);
    ASSERT_TRUE(b.acquire(t0 + 10ms).probe);
    b.release_probe();
    EXPECT_TRUE(b.acquire(t0 + 10ms).probe);
}

TEST(Breaker, ZeroFailuresDisablesIt) {
    breaker b(0, 10ms, 10ms);
    for (int i = 0; i < 100; ++i) EXPECT_FALSE(b.on_failure(false, t0));
    EXPECT_EQ(b.current(), state::closed);
    EXPECT_TRUE(b.acquire(t0).allowed);
}

}  // namespace
}  // namespace switchyard::delivery
