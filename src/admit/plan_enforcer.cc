#include "admit/plan_enforcer.h"

#include "util/json.h"
#include "util/json_edit.h"

#include <algorithm>

namespace switchyard::admit {

std::string_view to_string(plan_action a) noexcept {
    switch (a) {
        case plan_action::allow:
            return "allow";
        case plan_action::omit:
            return "omit";
        case plan_action::quarantine:
            return "quarantine";
        case plan_action::block:
            return "block";
    }
    return "allow";
}

plan_action plan_action_from_string(std::string_view s) noexcept {
    if (s == "omit") return plan_action::omit;
    if (s == "quarantine") return plan_action::quarantine;
    if (s == "block") return plan_action::block;
    return plan_action::allow;
}

std::string_view to_string(plan_result r) noexcept {
    switch (r) {
        case plan_result::valid:
            return "valid";
        case plan_result::tagged:
            return "tagged";
        case plan_result::omitted:
            return "omitted";
        case plan_result::quarantined:
            return "quarantined";
        case plan_result::blocked:
            return "blocked";
    }
    return "valid";
}

plan_enforcer::plan_enforcer(std::string source, plan_policy policy,
                             std::shared_ptr<const plan::compiled_plan> plan, telemetry::metrics* m)
    : source_(std::move(source)), policy_(policy), plan_(std::move(plan)), metrics_(m) {
    if (metrics_ == nullptr) return;
    auto& fam = metrics_->counters("switchyard_plan_events_total",
                                   "Events checked against a tracking plan, by source and result "
                                   "(valid, tagged, omitted, quarantined, blocked).");
    for (auto r : {plan_result::valid, plan_result::tagged, plan_result::omitted,
                   plan_result::quarantined, plan_result::blocked}) {
        results_[static_cast<std::size_t>(r)] =
            &fam.Add({{"source", source_}, {"result", std::string(to_string(r))}});
    }
    violations_ = &metrics_->counters(
        "switchyard_plan_violations_total",
        "Tracking-plan violations by source, event and kind (event \"(unplanned)\" for events "
        "the plan lacks; page/screen/identify/group by type).");
}

void plan_enforcer::set_plan(std::shared_ptr<const plan::compiled_plan> p) {
    plan_.store(std::move(p));
}

std::shared_ptr<const plan::compiled_plan> plan_enforcer::plan() const { return plan_.load(); }

plan_result plan_enforcer::apply(event& ev, std::vector<plan::violation>& out) const {
    out.clear();
    auto p = plan();
    if (!p) return plan_result::valid;
    p->validate(ev.json, out);

    plan_result r = plan_result::valid;
    if (!out.empty()) {
        r = plan_result::tagged;
        if (!policy_.shadow) {
            plan_action worst = plan_action::allow;
            for (const auto& v : out) {
                worst = std::max(worst, policy_.actions[static_cast<std::size_t>(v.kind)]);
            }
            if (worst == plan_action::block) r = plan_result::blocked;
            if (worst == plan_action::quarantine) r = plan_result::quarantined;
            if (worst == plan_action::omit) r = plan_result::omitted;
        }
    }
    count(ev, r, out);
    if (r == plan_result::quarantined || r == plan_result::blocked) return r;
    if (policy_.shadow) return r;  // shadow: the event goes on exactly as sent

    if (r == plan_result::omitted) {
        ev.json = p->omit(ev.json, out);
        ev.context_open = ev.context_close = 0;
        ev.context_lacks = 0;
    }
    std::string tp = "{\"name\":";
    util::append_json_string(tp, p->name());
    tp += ",\"version\":";
    util::append_json_string(tp, p->version());
    tp += '}';
    util::set_context_member(ev.json, ev.context_open, ev.context_close,
                             (ev.context_lacks & context_lacks_tracking_plan) != 0, "trackingPlan",
                             tp);
    ev.context_lacks &= static_cast<std::uint8_t>(~context_lacks_tracking_plan);
    if (!out.empty()) {
        std::string v;
        plan::append_violations_json(out, v);
        util::set_context_member(ev.json, ev.context_open, ev.context_close,
                                 (ev.context_lacks & context_lacks_violations) != 0, "violations",
                                 v);
        ev.context_lacks &= static_cast<std::uint8_t>(~context_lacks_violations);
    }
    return r;
}

void plan_enforcer::count(const event& ev, plan_result r,
                          const std::vector<plan::violation>& v) const {
    if (auto* c = results_[static_cast<std::size_t>(r)]) c->Increment();
    if (violations_ == nullptr || v.empty()) return;
    // Label values must stay bounded: an event name is used only when the plan knows it.
    const bool unplanned = std::any_of(v.begin(), v.end(), [](const plan::violation& x) {
        return x.kind == plan::violation_kind::unplanned_event;
    });
    std::string name = unplanned ? std::string("(unplanned)")
                       : ev.header.type == event_type::track
                           ? ev.header.event_name
                           : std::string(to_string(ev.header.type));
    std::array<std::size_t, 5> per{};
    for (const auto& x : v) ++per[static_cast<std::size_t>(x.kind)];
    for (std::size_t k = 0; k < per.size(); ++k) {
        if (per[k] == 0) continue;
        violations_
            ->Add({{"source", source_},
                   {"event", name},
                   {"kind", std::string(plan::to_string(static_cast<plan::violation_kind>(k)))}})
            .Increment(static_cast<double>(per[k]));
    }
}

}  // namespace switchyard::admit
