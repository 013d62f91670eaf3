#include "plan/plan.h"
#include "plan_test_support.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchyard::plan {
namespace {

using plan_testing::must_load;
using plan_testing::violations_of;
using vk = violation_kind;

// One rule: a property `p` declared as `decl` (a YAML flow mapping), an event whose `p` is
// `value` (JSON; empty: `p` absent), and the exact violations expected.
struct rule_case {
    const char* name;
    const char* decl;
    const char* value;
    std::vector<violation> want;
};

violation at_p(vk k, std::string expected, std::string actual) {
    return {"properties.p", k, std::move(expected), std::move(actual)};
}

std::vector<violation> run(const rule_case& c) {
    auto plan =
        must_load(std::string("track:\n  - name: E\n    properties:\n      p: ") + c.decl + "\n");
    if (!plan) return {};
    std::string ev = R"({"type":"track","event":"E","properties":{)";
    if (*c.value != '\0') ev += std::string(R"("p":)") + c.value;
    ev += "}}";
    return violations_of(*plan, ev);
}

class PlanRules : public testing::TestWithParam<rule_case> {};

TEST_P(PlanRules, ExactViolations) {
    const rule_case& c = GetParam();
    EXPECT_EQ(run(c), c.want) << c.decl << " with " << c.value;
}

std::string case_name(const testing::TestParamInfo<rule_case>& info) { return info.param.name; }

const rule_case type_cases[] = {
    {"string_ok", "{type: string}", R"("x")", {}},
    {"string_got_number", "{type: string}", "12", {at_p(vk::wrong_type, "string", "number 12")}},
    {"number_int_ok", "{type: number}", "12", {}},
    {"number_double_ok", "{type: number}", "1.5", {}},
    {"number_got_string",
     "{type: number}",
     R"("12")",
     {at_p(vk::wrong_type, "number", R"(string "12")")}},
    {"integer_ok", "{type: integer}", "3", {}},
    {"integer_big_ok", "{type: integer}", "18446744073709551615", {}},
    {"integer_integral_double_ok", "{type: integer}", "3.0", {}},
    {"integer_got_fraction",
     "{type: integer}",
     "3.5",
     {at_p(vk::wrong_type, "integer", "number 3.5")}},
    {"boolean_ok", "{type: boolean}", "false", {}},
    {"boolean_got_string",
     "{type: boolean}",
     R"("true")",
     {at_p(vk::wrong_type, "boolean", R"(string "true")")}},
    {"object_ok", "{type: object}", R"({"a":1})", {}},
    {"object_got_array", "{type: object}", "[]", {at_p(vk::wrong_type, "object", "array")}},
    {"array_ok", "{type: array}", "[1]", {}},
    {"array_got_object", "{type: array}", "{}", {at_p(vk::wrong_type, "array", "object")}},
    {"null_ok", "{type: \"null\"}", "null", {}},
    {"null_got_zero", "{type: \"null\"}", "0", {at_p(vk::wrong_type, "null", "number 0")}},
    {"union_null", "{type: [string, \"null\"]}", "null", {}},
    {"union_string", "{type: [string, \"null\"]}", R"("x")", {}},
    {"union_plain_null_in_list", "{type: [string, null]}", "null", {}},
    {"union_wrong",
     "{type: [string, \"null\"]}",
     "1",
     {at_p(vk::wrong_type, "string or null", "number 1")}},
    {"union_three",
     "{type: [integer, boolean, \"null\"]}",
     R"("x")",
     {at_p(vk::wrong_type, "integer, boolean or null", R"(string "x")")}},
    {"shorthand_type", "number", R"("x")", {at_p(vk::wrong_type, "number", R"(string "x")")}},
    {"any_type", "{description: anything}", R"([1,{"a":null}])", {}},
    {"string_escaped_in_actual",
     "{type: number}",
     R"("a\"b\n")",
     {at_p(vk::wrong_type, "number", R"(string "a\"b\n")")}},
    {"long_string_cut",
     "{type: number}",
     R"("0123456789012345678901234567890123456789012345678901234567890123456789")",
     {at_p(vk::wrong_type, "number",
           R"(string "0123456789012345678901234567890123456789012345678901234567890123"...)")}},
    {"cut_keeps_utf8_whole",
     "{type: number}",
     R"("012345678901234567890123456789012345678901234567890123456789012é")",
     {at_p(vk::wrong_type, "number",
           R"(string "012345678901234567890123456789012345678901234567890123456789012"...)")}},
};
INSTANTIATE_TEST_SUITE_P(PlanTypes, PlanRules, testing::ValuesIn(type_cases), case_name);

const rule_case constraint_cases[] = {
    {"required_present", "{type: string, required: true}", R"("x")", {}},
    {"required_missing",
     "{type: string, required: true}",
     "",
     {at_p(vk::missing_required, "required", "missing")}},
    {"required_null_is_present_but_wrong",
     "{type: string, required: true}",
     "null",
     {at_p(vk::wrong_type, "string", "null")}},
    {"optional_absent", "{type: string}", "", {}},
    {"enum_ok", "{type: string, enum: [USD, EUR]}", R"("EUR")", {}},
    {"enum_bad",
     "{type: string, enum: [USD, EUR]}",
     R"("GBP")",
     {at_p(vk::bad_value, "one of [USD, EUR]", R"(string "GBP")")}},
    {"enum_is_case_sensitive",
     "{type: string, enum: [USD]}",
     R"("usd")",
     {at_p(vk::bad_value, "one of [USD]", R"(string "usd")")}},
    {"enum_numbers_ok", "{type: integer, enum: [1, 2]}", "2.0", {}},
    {"enum_numbers_bad",
     "{type: integer, enum: [1, 2]}",
     "3",
     {at_p(vk::bad_value, "one of [1, 2]", "number 3")}},
    {"enum_plain_numbers_of_string_are_strings", "{type: string, enum: [1, 2]}", R"("1")", {}},
    {"enum_plain_numbers_of_string_refuse_numbers",
     "{type: string, enum: [1, 2]}",
     "1",
     {at_p(vk::wrong_type, "string", "number 1")}},
    {"enum_booleans_and_null", "{type: [boolean, \"null\"], enum: [true, null]}", "null", {}},
    {"enum_booleans_bad",
     "{type: [boolean, \"null\"], enum: [true, null]}",
     "false",
     {at_p(vk::bad_value, "one of [true, null]", "boolean false")}},
    {"enum_untyped_mixed",
     "{enum: [a, 1]}",
     R"("1")",
     {at_p(vk::bad_value, "one of [a, 1]", R"(string "1")")}},
    {"pattern_ok", "{type: string, pattern: \"^[A-Z]\"}", R"("Abc")", {}},
    {"pattern_bad",
     "{type: string, pattern: \"^[A-Z]\"}",
     R"("abc")",
     {at_p(vk::bad_value, "pattern ^[A-Z]", R"(string "abc")")}},
    {"pattern_is_a_search", "{type: string, pattern: \"[0-9]\"}", R"("a1b")", {}},
    {"pattern_utf8", "{type: string, pattern: \"^.{2}$\"}", R"("éé")", {}},
    {"min_ok", "{type: number, min: 0, max: 10}", "0", {}},
    {"max_ok", "{type: number, min: 0, max: 10}", "10", {}},
    {"min_bad",
     "{type: number, min: 0, max: 10}",
     "-0.5",
     {at_p(vk::bad_value, "minimum 0", "number -0.5")}},
    {"max_bad",
     "{type: number, min: 0, max: 10}",
     "11",
     {at_p(vk::bad_value, "maximum 10", "number 11")}},
    {"exclusive_min_bad",
     "{type: number, exclusive_min: 0}",
     "0",
     {at_p(vk::bad_value, "exclusive minimum 0", "number 0")}},
    {"exclusive_max_bad",
     "{type: number, exclusive_max: 2.5}",
     "2.5",
     {at_p(vk::bad_value, "exclusive maximum 2.5", "number 2.5")}},
    {"exclusive_ok", "{type: number, exclusive_min: 0, exclusive_max: 1}", "0.5", {}},
    {"length_counts_code_points", "{type: string, min_length: 2, max_length: 3}", R"("héé")", {}},
    {"min_length_bad",
     "{type: string, min_length: 2}",
     R"("é")",
     {at_p(vk::bad_value, "min_length 2", "string of 1 character")}},
    {"max_length_bad",
     "{type: string, max_length: 3}",
     R"("abcd")",
     {at_p(vk::bad_value, "max_length 3", "string of 4 characters")}},
    {"min_items_bad",
     "{type: array, min_items: 1}",
     "[]",
     {at_p(vk::bad_value, "min_items 1", "array of 0 items")}},
    {"max_items_bad",
     "{type: array, max_items: 1}",
     "[1,2]",
     {at_p(vk::bad_value, "max_items 1", "array of 2 items")}},
    {"items_ok", "{type: array, items: {type: integer}}", "[1,2]", {}},
    {"items_bad",
     "{type: array, items: {type: integer}}",
     R"([1,"2",3.5])",
     {{"properties.p[1]", vk::wrong_type, "integer", R"(string "2")"},
      {"properties.p[2]", vk::wrong_type, "integer", "number 3.5"}}},
    {"every_failing_constraint_is_reported",
     "{type: string, pattern: \"^a\", min_length: 3, format: email}",
     R"("b")",
     {at_p(vk::bad_value, "pattern ^a", R"(string "b")"),
      at_p(vk::bad_value, "format email", R"(string "b")"),
      at_p(vk::bad_value, "min_length 3", "string of 1 character")}},
    {"constraints_skip_other_types", "{type: [string, number], min_length: 3, min: 5}", "7", {}},
    {"nested_ok",
     "{type: object, properties: {a: {type: string, required: true}}}",
     R"({"a":"x","b":1})",
     {}},
    {"nested_wrong_and_missing",
     "{type: object, properties: {a: {type: string, required: true}, b: {type: integer}}}",
     R"({"b":"1"})",
     {{"properties.p.b", vk::wrong_type, "integer", R"(string "1")"},
      {"properties.p.a", vk::missing_required, "required", "missing"}}},
    {"array_of_objects",
     "{type: array, items: {type: object, properties: {sku: {type: string, required: true}, qty: "
     "{type: integer, min: 1}}}}",
     R"([{"sku":"a","qty":1},{"qty":0},{"sku":"c"}])",
     {{"properties.p[1].qty", vk::bad_value, "minimum 1", "number 0"},
      {"properties.p[1].sku", vk::missing_required, "required", "missing"}}},
    {"array_of_arrays",
     "{type: array, items: {type: array, items: {type: string}}}",
     R"([["a"],["b",2]])",
     {{"properties.p[1][1]", vk::wrong_type, "string", "number 2"}}},
};
INSTANTIATE_TEST_SUITE_P(PlanConstraints, PlanRules, testing::ValuesIn(constraint_cases),
                         case_name);

struct format_case {
    const char* name;
    const char* format;
    const char* value;
    bool ok;
};

class PlanFormats : public testing::TestWithParam<format_case> {};

TEST_P(PlanFormats, Checks) {
    const format_case& c = GetParam();
    std::string decl = std::string("{type: string, format: ") + c.format + "}";
    std::string value = std::string("\"") + c.value + "\"";
    std::vector<violation> want;
    if (!c.ok) {
        want.push_back(
            at_p(vk::bad_value, std::string("format ") + c.format, std::string("string ") + value));
    }
    EXPECT_EQ(run({c.name, decl.c_str(), value.c_str(), {}}), want) << c.value;
}

const format_case format_cases[] = {
    {"dt_utc", "date-time", "2026-11-22T10:25:47Z", true},
    {"dt_fraction_offset", "date-time", "2026-11-22T10:25:47.657+01:00", true},
    {"dt_lowercase", "date-time", "2026-11-22t10:25:47z", true},
    {"dt_leap_day", "date-time", "2024-02-29T00:00:00Z", true},
    {"dt_leap_second", "date-time", "2016-12-31T23:59:60Z", true},
    {"dt_no_offset", "date-time", "2026-11-22T10:25:47", false},
    {"dt_date_only", "date-time", "2026-11-22", false},
    {"dt_space", "date-time", "2026-11-22 10:25:47Z", false},
    {"dt_bad_day", "date-time", "2026-02-29T00:00:00Z", false},
    {"dt_bad_month", "date-time", "2026-13-01T00:00:00Z", false},
    {"dt_bad_hour", "date-time", "2026-11-22T24:00:00Z", false},
    {"dt_bad_offset", "date-time", "2026-11-22T10:25:47+0100", false},
    {"dt_empty_fraction", "date-time", "2026-11-22T10:25:47.Z", false},
    {"email_ok", "email", "ana.maria+tag@mail.example.com", true},
    {"email_utf8", "email", "jörg@bücher.de", true},
    {"email_no_at", "email", "ana.example.com", false},
    {"email_two_at", "email", "a@b@example.com", false},
    {"email_no_dot_in_domain", "email", "ana@localhost", false},
    {"email_space", "email", "ana maria@example.com", false},
    {"email_double_dot", "email", "ana..m@example.com", false},
    {"email_hyphen_label", "email", "ana@-example.com", false},
    {"uri_ok", "uri", "https://shop.example.com/a?b=c&d=%20#frag", true},
    {"uri_mailto", "uri", "mailto:ana@example.com", true},
    {"uri_relative", "uri", "/checkout", false},
    {"uri_no_scheme", "uri", "news.ycombinator.com", false},
    {"uri_space", "uri", "https://example.com/a b", false},
    {"uri_bad_escape", "uri", "https://example.com/%2", false},
    {"uuid_ok", "uuid", "0f8b4c1e-5d6a-4b7c-9e2f-1a3b5c7d9e0f", true},
    {"uuid_upper", "uuid", "0F8B4C1E-5D6A-4B7C-9E2F-1A3B5C7D9E0F", true},
    {"uuid_no_dashes", "uuid", "0f8b4c1e5d6a4b7c9e2f1a3b5c7d9e0f", false},
    {"uuid_bad_hex", "uuid", "0f8b4c1e-5d6a-4b7c-9e2f-1a3b5c7d9e0g", false},
};
INSTANTIATE_TEST_SUITE_P(Plan, PlanFormats, testing::ValuesIn(format_cases),
                         [](const testing::TestParamInfo<format_case>& i) { return i.param.name; });

// --- additional properties -------------------------------------------------------------------

struct additional_case {
    const char* name;
    const char* plan;
    const char* properties;  // JSON object
    std::vector<violation> want;
};

class PlanAdditional : public testing::TestWithParam<additional_case> {};

TEST_P(PlanAdditional, ExactViolations) {
    const additional_case& c = GetParam();
    auto plan = must_load(c.plan);
    ASSERT_NE(plan, nullptr);
    std::string ev =
        std::string(R"({"type":"track","event":"E","properties":)") + c.properties + "}";
    EXPECT_EQ(violations_of(*plan, ev), c.want);
}

violation unplanned(std::string path, std::string key) {
    return {std::move(path), vk::unplanned_property, "planned property", std::move(key)};
}

const additional_case additional_cases[] = {
    {"plan_allow_default",
     "track:\n  - name: E\n    properties: {a: {type: string}}\n",
     R"({"a":"x","b":1})",
     {}},
    {"plan_deny",
     "defaults: {additional_properties: deny}\n"
     "track:\n  - name: E\n    properties: {a: {type: string}}\n",
     R"({"a":"x","b":1,"c":2})",
     {unplanned("properties.b", "b"), unplanned("properties.c", "c")}},
    {"event_allow_overrides_plan_deny",
     "defaults: {additional_properties: deny}\n"
     "track:\n  - name: E\n    additional_properties: allow\n    properties: {a: {}}\n",
     R"({"b":1})",
     {}},
    {"event_deny_overrides_plan_allow",
     "track:\n  - name: E\n    additional_properties: deny\n    properties: {a: {}}\n",
     R"({"a":1,"b":1})",
     {unplanned("properties.b", "b")}},
    {"deny_without_properties_refuses_every_key",
     "track:\n  - name: E\n    additional_properties: deny\n",
     R"({"a":1})",
     {unplanned("properties.a", "a")}},
    {"nested_object_inherits_event_deny",
     "track:\n  - name: E\n    additional_properties: deny\n"
     "    properties: {o: {type: object, properties: {x: {}}}}\n",
     R"({"o":{"x":1,"y":2}})",
     {unplanned("properties.o.y", "y")}},
    {"free_form_object_stays_open_under_deny",
     "track:\n  - name: E\n    additional_properties: deny\n    properties: {o: {type: object}}\n",
     R"({"o":{"anything":1}})",
     {}},
    {"object_level_deny_under_allow",
     "track:\n  - name: E\n"
     "    properties: {o: {type: object, additional_properties: deny, properties: {x: {}}}}\n",
     R"({"o":{"x":1,"y":2},"z":3})",
     {unplanned("properties.o.y", "y")}},
    {"object_level_allow_under_deny",
     "defaults: {additional_properties: deny}\n"
     "track:\n  - name: E\n"
     "    properties: {o: {type: object, additional_properties: allow, properties: {x: {}}}}\n",
     R"({"o":{"y":2}})",
     {}},
    {"array_items_inherit",
     "track:\n  - name: E\n    additional_properties: deny\n"
     "    properties: {l: {type: array, items: {type: object, properties: {x: {}}}}}\n",
     R"({"l":[{"x":1},{"x":1,"y":2}]})",
     {unplanned("properties.l[1].y", "y")}},
    {"odd_keys_are_bracketed",
     "track:\n  - name: E\n    additional_properties: deny\n",
     R"({"a.b":1,"":2,"q\"":3,"with space":4})",
     {unplanned(R"(properties["a.b"])", "a.b"), unplanned(R"(properties[""])", ""),
      unplanned(R"(properties["q\""])", "q\""), unplanned("properties.with space", "with space")}},
};
INSTANTIATE_TEST_SUITE_P(Plan, PlanAdditional, testing::ValuesIn(additional_cases),
                         [](const testing::TestParamInfo<additional_case>& i) {
                             return i.param.name;
                         });

// --- event types ---------------------------------------------------------------------------

const char* const sections_plan = R"(
track:
  - name: Order Completed
    properties: {order_id: {type: string, required: true}}
identify:
  traits:
    email: {type: string, format: email, required: true}
group:
  traits:
    employees: {type: integer}
page:
  - name: Pricing
    properties: {plan_shown: {type: string, required: true}}
  - name: "*"
    properties: {path: {type: string}}
)";

TEST(PlanEvents, UnplannedTrackEvent) {
    auto plan = must_load(sections_plan);
    EXPECT_EQ(violations_of(*plan, R"({"type":"track","event":"Foo","properties":{}})"),
              (std::vector<violation>{{"", vk::unplanned_event, "planned event", "Foo"}}));
}

TEST(PlanEvents, TrackWithoutPropertiesObjectChecksRequired) {
    auto plan = must_load(sections_plan);
    std::vector<violation> want{
        {"properties.order_id", vk::missing_required, "required", "missing"}};
    EXPECT_EQ(violations_of(*plan, R"({"type":"track","event":"Order Completed"})"), want);
    EXPECT_EQ(
        violations_of(*plan, R"({"type":"track","event":"Order Completed","properties":null})"),
        want);
}

TEST(PlanEvents, PropertiesNotAnObject) {
    auto plan = must_load(sections_plan);
    EXPECT_EQ(
        violations_of(*plan, R"({"type":"track","event":"Order Completed","properties":[1]})"),
        (std::vector<violation>{{"properties", vk::wrong_type, "object", "array"}}));
}

TEST(PlanEvents, IdentifyAndGroupTraits) {
    auto plan = must_load(sections_plan);
    EXPECT_EQ(violations_of(*plan, R"({"type":"identify","traits":{"email":"nope"}})"),
              (std::vector<violation>{
                  {"traits.email", vk::bad_value, "format email", R"(string "nope")"}}));
    EXPECT_EQ(
        violations_of(*plan, R"({"type":"identify","userId":"u"})"),
        (std::vector<violation>{{"traits.email", vk::missing_required, "required", "missing"}}));
    EXPECT_EQ(violations_of(*plan, R"({"type":"group","traits":{"employees":"12"}})"),
              (std::vector<violation>{
                  {"traits.employees", vk::wrong_type, "integer", R"(string "12")"}}));
}

TEST(PlanEvents, PageByNameThenWildcard) {
    auto plan = must_load(sections_plan);
    // A named entry replaces "*": its own properties only.
    EXPECT_EQ(violations_of(*plan, R"({"type":"page","name":"Pricing","properties":{"path":1}})"),
              (std::vector<violation>{
                  {"properties.plan_shown", vk::missing_required, "required", "missing"}}));
    EXPECT_EQ(violations_of(*plan, R"({"type":"page","name":"Home","properties":{"path":1}})"),
              (std::vector<violation>{{"properties.path", vk::wrong_type, "string", "number 1"}}));
    EXPECT_TRUE(violations_of(*plan, R"({"type":"page","properties":{"path":"/"}})").empty());
}

TEST(PlanEvents, PageWithoutWildcardIsUnplanned) {
    auto plan = must_load("page:\n  - name: Pricing\n");
    EXPECT_TRUE(violations_of(*plan, R"({"type":"page","name":"Pricing"})").empty());
    EXPECT_EQ(violations_of(*plan, R"({"type":"page","name":"Home"})"),
              (std::vector<violation>{{"", vk::unplanned_event, "planned event", "Home"}}));
}

TEST(PlanEvents, TypesWithoutSectionAreNotChecked) {
    auto plan = must_load(sections_plan);
    EXPECT_TRUE(
        violations_of(*plan, R"({"type":"screen","name":"Anything","properties":{}})").empty());
    EXPECT_TRUE(violations_of(*plan, R"({"type":"alias","previousId":"a"})").empty());
    EXPECT_TRUE(violations_of(*plan, R"({"type":"bogus"})").empty());
    EXPECT_TRUE(violations_of(*plan, R"({"event":"no type"})").empty());
    auto only_pages = must_load("page:\n  - name: \"*\"\n");
    EXPECT_TRUE(violations_of(*only_pages, R"({"type":"track","event":"Any"})").empty());
}

TEST(PlanEvents, EmptyTrackSectionMakesEveryEventUnplanned) {
    auto plan = must_load("track: []\n");
    EXPECT_EQ(violations_of(*plan, R"({"type":"track","event":"X"})"),
              (std::vector<violation>{{"", vk::unplanned_event, "planned event", "X"}}));
}

TEST(PlanEvents, NotAnObjectReturnsFalse) {
    auto plan = must_load(sections_plan);
    std::vector<violation> v;
    EXPECT_FALSE(plan->validate("[1,2]", v));
    EXPECT_FALSE(plan->validate("{not json", v));
    EXPECT_FALSE(plan->validate("", v));
    EXPECT_TRUE(v.empty());
}

TEST(PlanEvents, AppendsToExistingViolations) {
    auto plan = must_load(sections_plan);
    std::vector<violation> v{{"x", vk::bad_value, "e", "a"}};
    ASSERT_TRUE(plan->validate(R"({"type":"track","event":"Foo"})", v));
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[1].kind, vk::unplanned_event);
}

TEST(PlanEvents, NameVersionAndCount) {
    auto plan = must_load("name: web\nversion: \"2026-11-01\"\n" + std::string(sections_plan));
    EXPECT_EQ(plan->name(), "web");
    EXPECT_EQ(plan->version(), "2026-11-01");
    EXPECT_EQ(plan->event_count(), 5u);  // 1 track, identify, group, 2 pages
    auto unnamed = must_load("track: []\n", "checkout.yaml");
    EXPECT_EQ(unnamed->name(), "checkout");
}

// --- kinds and JSON --------------------------------------------------------------------------

TEST(PlanKinds, RoundTripNames) {
    for (auto k : {vk::unplanned_event, vk::missing_required, vk::wrong_type,
                   vk::unplanned_property, vk::bad_value}) {
        EXPECT_EQ(violation_kind_from_string(to_string(k)), k);
    }
    EXPECT_EQ(to_string(vk::unplanned_property), "unplanned_property");
    EXPECT_EQ(violation_kind_from_string("nope"), std::nullopt);
}

TEST(PlanKinds, ViolationsJson) {
    std::string out = "x";
    append_violations_json({{"properties.price", vk::wrong_type, "number", R"(string "12")"},
                            {"", vk::unplanned_event, "planned event", "Foo"}},
                           out);
    EXPECT_EQ(out, R"(x[{"path":"properties.price","kind":"wrong_type","expected":"number",)"
                   R"("actual":"string \"12\""},{"path":"","kind":"unplanned_event",)"
                   R"("expected":"planned event","actual":"Foo"}])");
    out.clear();
    append_violations_json({}, out);
    EXPECT_EQ(out, "[]");
}

// --- omit ------------------------------------------------------------------------------------

const char* const omit_plan = R"(
track:
  - name: E
    additional_properties: deny
    properties:
      id: {type: string, required: true}
      price: {type: number}
      tags: {type: array, items: {type: string}}
      items:
        type: array
        items: {type: object, properties: {sku: {type: string}, qty: {type: integer}}}
      "a.b": {type: string}
identify:
  traits: {email: {type: string, format: email}}
)";

std::string omitted(const compiled_plan& plan, std::string_view json) {
    std::vector<violation> v;
    EXPECT_TRUE(plan.validate(json, v));
    return plan.omit(json, v);
}

TEST(PlanOmit, RemovesOffendingPropertiesOnly) {
    auto plan = must_load(omit_plan);
    EXPECT_EQ(
        omitted(
            *plan,
            R"({"type":"track","event":"E","properties":{"price":"12","x":1,"tags":["a",2,"b",3]},)"
            R"("context":{"price":"kept"}})"),
        R"({"type":"track","event":"E","properties":{"tags":["a","b"]},"context":{"price":"kept"}})");
}

TEST(PlanOmit, NestedAndBracketedPaths) {
    auto plan = must_load(omit_plan);
    EXPECT_EQ(
        omitted(*plan, R"({"type":"track","event":"E","properties":{"id":"1","a.b":5,)"
                       R"("items":[{"sku":"s","qty":1},{"sku":1,"qty":"2","zz":0},{"qty":3}]}})"),
        R"({"type":"track","event":"E","properties":{"id":"1","items":[{"sku":"s","qty":1},{},{"qty":3}]}})");
}

TEST(PlanOmit, TraitsToo) {
    auto plan = must_load(omit_plan);
    EXPECT_EQ(omitted(*plan, R"({"type":"identify","traits":{"email":"x","name":"N"}})"),
              R"({"type":"identify","traits":{"name":"N"}})");
}

TEST(PlanOmit, LeavesMissingAndUnplannedEventsAlone) {
    auto plan = must_load(omit_plan);
    // Byte for byte: nothing to remove means the input comes back as it was.
    const std::string missing = R"({"type":"track", "event":"E", "properties":{}})";
    EXPECT_EQ(omitted(*plan, missing), missing);
    const std::string unplanned = R"({"type":"track","event":"Other","properties":{"x":1}})";
    EXPECT_EQ(omitted(*plan, unplanned), unplanned);
}

TEST(PlanOmit, IgnoresPathsOutsidePropertiesAndTraits) {
    auto plan = must_load(omit_plan);
    const std::string ev =
        R"({"type":"track","event":"E","properties":{"id":"1"},"context":{"a":1}})";
    std::vector<violation> v{{"context.a", vk::bad_value, "x", "y"},
                             {"properties", vk::wrong_type, "object", "array"},
                             {"properties.id", vk::missing_required, "required", "missing"},
                             {"properties[", vk::bad_value, "x", "y"}};
    EXPECT_EQ(plan->omit(ev, v), ev);
}

TEST(PlanOmit, ResultValidatesWithoutTheRemovedViolations) {
    auto plan = must_load(omit_plan);
    std::string ev = omitted(*plan, R"({"type":"track","event":"E","properties":{"id":7,"q":1}})");
    EXPECT_EQ(
        violations_of(*plan, ev),
        (std::vector<violation>{{"properties.id", vk::missing_required, "required", "missing"}}));
}

}  // namespace
}  // namespace switchyard::plan
