#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace switchyard::delivery {

// Capped exponential backoff with full jitter: the n-th wait (n from 0) is uniform in
// [0, min(max, base * 2^n)] milliseconds, and never shorter than the target's retry-after hint.
// Full jitter spreads the retries of many workers that failed together (AWS Architecture Blog,
// "Exponential Backoff And Jitter"). The seed is injectable so tests are deterministic.
//
// Lifecycle: owned by one delivery worker and used only by its thread; reset after a success.
class backoff {
  public:
    backoff(std::chrono::milliseconds base, std::chrono::milliseconds max, std::uint64_t seed);

    // The wait before the next attempt; advances the attempt count.
    std::chrono::milliseconds next(std::chrono::milliseconds at_least = {});
    // Starts again from `base` (after a success).
    void reset() noexcept { attempt_ = 0; }

    unsigned attempt() const noexcept { return attempt_; }
    // The upper bound of the wait for `attempt`: min(max, base * 2^attempt), without overflow.
    std::chrono::milliseconds ceiling(unsigned attempt) const noexcept;

  private:
    std::chrono::milliseconds base_;
    std::chrono::milliseconds max_;
    unsigned attempt_ = 0;
    std::mt19937_64 rng_;
};

}  // namespace switchyard::delivery
