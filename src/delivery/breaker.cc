#include "delivery/breaker.h"

#include <algorithm>

namespace switchyard::delivery {

breaker::breaker(unsigned failures, std::chrono::milliseconds cooldown,
                 std::chrono::milliseconds cooldown_max)
    : threshold_(failures),
      base_(std::max(cooldown, std::chrono::milliseconds(0))),
      max_(std::max(cooldown_max, base_)),
      cooldown_(base_) {}

breaker::permit breaker::acquire(clock::time_point now) {
    switch (state_) {
        case state::closed:
            return {};
        case state::half_open:
            return {false, false, clock::time_point::max()};
        case state::open:
            if (now < open_until_) return {false, false, open_until_};
            state_ = state::half_open;
            probe_out_ = true;
            return {true, true, {}};
    }
    return {};
}

void breaker::on_success(bool probe) {
    if (probe) {
        state_ = state::closed;
        probe_out_ = false;
        cooldown_ = base_;
        failures_ = 0;
    } else if (state_ == state::closed) {
        failures_ = 0;
    }
    // A send that started before the breaker opened says little about now: only the probe
    // closes an open breaker.
}

bool breaker::on_failure(bool probe, clock::time_point now) {
    if (probe) {
        cooldown_ = std::min(max_, cooldown_ > max_ / 2 ? max_ : cooldown_ * 2);
        state_ = state::open;
        probe_out_ = false;
        open_until_ = now + cooldown_;
        return false;
    }
    if (state_ != state::closed || threshold_ == 0) return false;
    if (++failures_ < threshold_) return false;
    state_ = state::open;
    cooldown_ = base_;
    open_until_ = now + cooldown_;
    ++opens_;
    return true;
}

void breaker::release_probe() {
    if (state_ == state::half_open && probe_out_) {
        probe_out_ = false;
        state_ = state::open;  // open_until_ has passed: the next acquire probes at once
    }
}

std::string_view to_string(breaker::state s) noexcept {
    switch (s) {
        case breaker::state::closed:
            return "closed";
        case breaker::state::open:
            return "open";
        case breaker::state::half_open:
            return "half_open";
    }
    return "closed";
}

}  // namespace switchyard::delivery
