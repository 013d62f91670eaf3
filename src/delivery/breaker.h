#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace switchyard::delivery {

// Circuit breaker of one destination. `failures` consecutive retry outcomes open it; while open
// nothing is sent. Once the cooldown has passed, one half-open probe may be sent (the worker sends
// a batch of one event); its success closes the breaker, its failure opens it again with the
// cooldown doubled, up to `cooldown_max`. `failures` = 0 disables the breaker.
//
// A plain state machine with the time passed in, so tests drive it without a clock. Lifecycle:
// owned by one delivery worker; not thread-safe, the worker guards it with its own mutex.
class breaker {
  public:
    using clock = std::chrono::steady_clock;
    enum class state { closed, open, half_open };

    breaker(unsigned failures, std::chrono::milliseconds cooldown,
            std::chrono::milliseconds cooldown_max);

    struct permit {
        bool allowed = true;  // a send may start now
        bool probe = false;   // it is the half-open probe: send one event, report with probe=true
        // When !allowed: when to ask again (max() while a probe is out: wait for its answer).
        clock::time_point retry_at = clock::time_point::max();
    };
    permit acquire(clock::time_point now);

    // The destination answered (delivered or rejected): it is up.
    void on_success(bool probe);
    // A retry outcome. Returns true when it opened a closed breaker.
    bool on_failure(bool probe, clock::time_point now);
    // A probe permit that was not used (stop): another probe may be sent.
    void release_probe();

    state current() const noexcept { return state_; }
    std::uint64_t opens() const noexcept { return opens_; }
    std::chrono::milliseconds cooldown() const noexcept { return cooldown_; }

  private:
    unsigned threshold_;
    std::chrono::milliseconds base_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds cooldown_;
    unsigned failures_ = 0;
    state state_ = state::closed;
    clock::time_point open_until_{};
    bool probe_out_ = false;
    std::uint64_t opens_ = 0;
};

std::string_view to_string(breaker::state s) noexcept;

}  // namespace switchyard::delivery
