#include "admit/plan_enforcer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

namespace switchyard::admit {
namespace {

using plan::violation_kind;

std::shared_ptr<const plan::compiled_plan> small_plan() {
    std::vector<std::string> errs;
    auto p = plan::load_plan_text(R"(name: shop
version: "7"
track:
  - name: Paid
    additional_properties: deny
    properties:
      amount: { type: number, required: true, min: 0 }
      currency: { type: string, enum: [USD, EUR] }
)",
                                  "shop.yaml", errs);
    EXPECT_TRUE(errs.empty()) << (errs.empty() ? "" : errs.front());
    return p;
}

event track(std::string props, std::string name = "Paid") {
    event e;
    e.header.type = event_type::track;
    e.header.event_name = name;
    e.header.message_id = "m1";
    e.json = R"({"type":"track","event":")" + name + R"(","messageId":"m1","properties":)" + props +
             R"(,"context":{"ip":"1.2.3.4"}})";
    return e;
}

plan_policy policy(violation_kind k, plan_action a, bool shadow = false) {
    plan_policy p;
    p.shadow = shadow;
    p.actions[static_cast<std::size_t>(k)] = a;
    return p;
}

struct policy_case {
    const char* what;
    std::string props;
    std::string name;
    violation_kind kind;  // the violation the event has
    plan_action action;   // the policy for that kind
    bool shadow;
    plan_result want;
};

TEST(PlanEnforcer, EachPolicyForEachKind) {
    const std::vector<policy_case> cases = {
        {"valid", R"({"amount":1})", "Paid", violation_kind::bad_value, plan_action::block, false,
         plan_result::valid},
        {"bad value allowed", R"({"amount":-1})", "Paid", violation_kind::bad_value,
         plan_action::allow, false, plan_result::tagged},
        {"bad value omitted", R"({"amount":1,"currency":"GBP"})", "Paid", violation_kind::bad_value,
         plan_action::omit, false, plan_result::omitted},
        {"bad value quarantined", R"({"amount":-1})", "Paid", violation_kind::bad_value,
         plan_action::quarantine, false, plan_result::quarantined},
        {"wrong type blocked", R"({"amount":"1"})", "Paid", violation_kind::wrong_type,
         plan_action::block, false, plan_result::blocked},
        {"missing required quarantined", R"({})", "Paid", violation_kind::missing_required,
         plan_action::quarantine, false, plan_result::quarantined},
        {"unplanned property omitted", R"({"amount":1,"x":2})", "Paid",
         violation_kind::unplanned_property, plan_action::omit, false, plan_result::omitted},
        {"unplanned event blocked", R"({})", "Refunded", violation_kind::unplanned_event,
         plan_action::block, false, plan_result::blocked},
        {"shadow never acts", R"({})", "Refunded", violation_kind::unplanned_event,
         plan_action::block, true, plan_result::tagged},
    };
    auto p = small_plan();
    ASSERT_TRUE(p);
    simdjson::dom::parser parser;
    for (const auto& c : cases) {
        plan_enforcer enf("web", policy(c.kind, c.action, c.shadow), p, nullptr);
        event e = track(c.props, c.name);
        const std::string before = e.json;
        std::vector<plan::violation> v;
        EXPECT_EQ(enf.apply(e, v), c.want) << c.what;
        if (c.want != plan_result::valid) {
            ASSERT_FALSE(v.empty()) << c.what;
            EXPECT_EQ(v.front().kind, c.kind) << c.what;
        }
        simdjson::dom::element doc;
        ASSERT_FALSE(parser.parse(e.json).get(doc)) << c.what << ": " << e.json;
        const bool changed_expected =
            !c.shadow && c.want != plan_result::quarantined && c.want != plan_result::blocked;
        if (!changed_expected) {
            EXPECT_EQ(e.json, before) << c.what;
            continue;
        }
        std::string_view name;
        EXPECT_FALSE(doc["context"]["trackingPlan"]["name"].get(name)) << c.what;
        EXPECT_EQ(name, "shop");
        EXPECT_EQ(doc["context"]["ip"].get_string().value(), "1.2.3.4") << c.what;
        simdjson::dom::array arr;
        const bool has_violations = !doc["context"]["violations"].get(arr);
        EXPECT_EQ(has_violations, c.want != plan_result::valid) << c.what;
        if (c.want == plan_result::omitted) {
            simdjson::dom::object props;
            ASSERT_FALSE(doc["properties"].get(props));
            for (const auto& x : v) {
                const std::string key = x.path.substr(std::string("properties.").size());
                EXPECT_TRUE(props[key].error()) << c.what << ": " << key << " still there";
            }
            EXPECT_FALSE(props["amount"].error()) << c.what << ": a valid property was dropped";
        }
    }
}

TEST(PlanEnforcer, TheWorstActionWins) {
    auto p = small_plan();
    plan_policy pol;
    pol.actions[static_cast<std::size_t>(violation_kind::bad_value)] = plan_action::omit;
    pol.actions[static_cast<std::size_t>(violation_kind::unplanned_property)] =
        plan_action::quarantine;
    plan_enforcer enf("web", pol, p, nullptr);
    event e = track(R"({"amount":1,"currency":"GBP","x":1})");
    std::vector<plan::violation> v;
    EXPECT_EQ(enf.apply(e, v), plan_result::quarantined);
    EXPECT_EQ(v.size(), 2u);
}

TEST(PlanEnforcer, ASwappedPlanAppliesToTheNextEvent) {
    auto p = small_plan();
    plan_enforcer enf("web", policy(violation_kind::unplanned_event, plan_action::block), p,
                      nullptr);
    std::vector<plan::violation> v;
    event e = track("{}", "Refunded");
    EXPECT_EQ(enf.apply(e, v), plan_result::blocked);
    std::vector<std::string> errs;
    enf.set_plan(plan::load_plan_text("name: shop\ntrack:\n  - name: Refunded\n", "b.yaml", errs));
    ASSERT_TRUE(errs.empty());
    e = track("{}", "Refunded");
    EXPECT_EQ(enf.apply(e, v), plan_result::valid);
}

}  // namespace
}  // namespace switchyard::admit
