#include "delivery/backoff.h"

#include <algorithm>

namespace switchyard::delivery {

backoff::backoff(std::chrono::milliseconds base, std::chrono::milliseconds max, std::uint64_t seed)
    : base_(std::max(base, std::chrono::milliseconds(0))),
      max_(std::max(max, std::chrono::milliseconds(0))),
      rng_(seed) {}

std::chrono::milliseconds backoff::ceiling(unsigned attempt) const noexcept {
    std::int64_t cap = max_.count();
    std::int64_t v = base_.count();
    // Double until the cap is reached; stops long before overflow because cap bounds v.
    for (unsigned i = 0; i < attempt && v < cap; ++i) v = v > cap / 2 ? cap : v * 2;
    return std::chrono::milliseconds(std::min(v, cap));
}

std::chrono::milliseconds backoff::next(std::chrono::milliseconds at_least) {
    std::int64_t hi = ceiling(attempt_).count();
    if (attempt_ < 64) ++attempt_;  // past this the ceiling is long capped; keep the count bounded
    std::uniform_int_distribution<std::int64_t> dist(0, hi);
    return std::max(std::chrono::milliseconds(dist(rng_)), at_least);
}

}  // namespace switchyard::delivery
