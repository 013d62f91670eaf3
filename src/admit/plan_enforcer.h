#pragma once

#include "plan/plan.h"
#include "switchyard/event.h"
#include "telemetry/metrics.h"

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::admit {

enum class plan_action : std::uint8_t { allow, omit, quarantine, block };
std::string_view to_string(plan_action a) noexcept;
plan_action plan_action_from_string(std::string_view s) noexcept;  // unknown → allow

struct plan_policy {
    bool shadow = false;  // evaluate and count, change nothing
    // Indexed by plan::violation_kind.
    std::array<plan_action, 5> actions{plan_action::allow, plan_action::allow, plan_action::allow,
                                       plan_action::allow, plan_action::allow};
};

// What the enforcer decided for one event.
enum class plan_result : std::uint8_t {
    valid,        // no violation
    tagged,       // kept with context.violations (allow, or any violation in shadow mode)
    omitted,      // kept without the offending properties, with context.violations
    quarantined,  // kept out of destinations, stored with the reasons
    blocked,      // as quarantined, counted as blocked
};
std::string_view to_string(plan_result r) noexcept;

// Applies one source's tracking plan at admission. Validation runs against the plan compiled at
// load; the plan can be swapped by a reload while requests run (readers hold a shared_ptr).
// Thread-safe: one instance per source, used by every I/O thread.
class plan_enforcer {
  public:
    plan_enforcer(std::string source, plan_policy policy,
                  std::shared_ptr<const plan::compiled_plan> plan, telemetry::metrics* m);

    // Validates `ev` and applies the policy. For valid, tagged and omitted events `ev.json` is
    // rewritten as the destinations should see it (context.trackingPlan {name, version}, and
    // context.violations when there are any); for quarantined and blocked ones it is left as
    // sent and the violations are in `out`.
    plan_result apply(event& ev, std::vector<plan::violation>& out) const;

    void set_plan(std::shared_ptr<const plan::compiled_plan> p);
    std::shared_ptr<const plan::compiled_plan> plan() const;
    const std::string& source() const noexcept { return source_; }
    const plan_policy& policy() const noexcept { return policy_; }

  private:
    void count(const event& ev, plan_result r, const std::vector<plan::violation>& v) const;

    std::string source_;
    plan_policy policy_;
    // Swapped by reload while I/O threads read it, without a lock shared between them.
    std::atomic<std::shared_ptr<const plan::compiled_plan>> plan_;
    telemetry::metrics* metrics_;
    std::array<prometheus::Counter*, 5> results_{};
    prometheus::Family<prometheus::Counter>* violations_ = nullptr;
};

}  // namespace switchyard::admit
