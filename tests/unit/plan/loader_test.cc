#include "plan/plan.h"
#include "plan_test_support.h"
#include "unit/log/temp_dir.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace switchyard::plan {
namespace {

using plan_testing::load_errors;
using plan_testing::must_load;
using Lines = std::vector<std::string>;

struct error_case {
    const char* name;
    const char* text;
    Lines want;
};

class PlanLoaderErrors : public testing::TestWithParam<error_case> {};

TEST_P(PlanLoaderErrors, ExactPositions) {
    const error_case& c = GetParam();
    EXPECT_EQ(load_errors(c.text, "web.yaml"), c.want) << c.text;
}

const error_case error_cases[] = {
    {"bad_type",
     "track:\n  - name: E\n    properties:\n      revenue: { type: num }\n",
     {"web.yaml:4:24: track \"E\" properties.revenue.type: unknown type 'num' (expected string, "
      "number, integer, boolean, object, array or null)"}},
    {"bad_type_in_union",
     "track:\n  - name: E\n    properties:\n      c: { type: [string, nul] }\n",
     {"web.yaml:4:27: track \"E\" properties.c.type: unknown type 'nul' (expected string, number, "
      "integer, boolean, object, array or null)"}},
    {"unknown_top_level_key",
     "name: web\ntrakc: []\n",
     {"web.yaml:2:1: plan: unknown key 'trakc'"}},
    {"unknown_event_key",
     "track:\n  - name: E\n    descripton: x\n",
     {"web.yaml:3:5: track \"E\": unknown key 'descripton'"}},
    {"unknown_property_key",
     "track:\n  - name: E\n    properties:\n      p: { type: string, maxLength: 3 }\n",
     {"web.yaml:4:26: track \"E\" properties.p: unknown key 'maxLength'"}},
    {"unknown_defaults_key",
     "defaults: { additional: deny }\n",
     {"web.yaml:1:13: defaults: unknown key 'additional'"}},
    {"bad_regex",
     "track:\n  - name: E\n    properties:\n      p: { type: string, pattern: \"^[a-z\" }\n",
     {"web.yaml:4:35: track \"E\" properties.p.pattern: invalid pattern '^[a-z': missing ]: [a-z"}},
    {"regex_lookahead_unsupported_by_re2",
     "track:\n  - name: E\n    properties:\n      p: { pattern: \"(?=a)\" }\n",
     {"web.yaml:4:21: track \"E\" properties.p.pattern: invalid pattern '(?=a)': invalid perl "
      "operator: (?="}},
    {"unknown_format",
     "track:\n  - name: E\n    properties:\n      p: { type: string, format: hostname }\n",
     {"web.yaml:4:34: track \"E\" properties.p.format: unsupported format 'hostname' (supported: "
      "date-time, email, uri, uuid)"}},
    {"constraint_for_other_type",
     "track:\n  - name: E\n    properties:\n      p: { type: number, pattern: \"^a\" }\n",
     {"web.yaml:4:10: track \"E\" properties.p: pattern applies to strings, but the type is "
      "number"}},
    {"enum_value_of_other_type",
     "track:\n  - name: E\n    properties:\n      p: { type: integer, enum: [1, x] }\n",
     {"web.yaml:4:10: track \"E\" properties.p: enum has strings, but the type is integer"}},
    {"min_above_max",
     "track:\n  - name: E\n    properties:\n      p: { type: number, min: 5, max: 1 }\n",
     {"web.yaml:4:10: track \"E\" properties.p: the minimum 5 is greater than the maximum 1"}},
    {"bad_number_and_count",
     "track:\n  - name: E\n    properties:\n"
     "      p: { type: number, min: low }\n      s: { type: string, max_length: -1 }\n",
     {"web.yaml:4:31: track \"E\" properties.p.min: expected a number",
      "web.yaml:5:38: track \"E\" properties.s.max_length: expected a non-negative integer"}},
    {"required_must_be_boolean",
     "track:\n  - name: E\n    properties:\n      p: { required: maybe }\n",
     {"web.yaml:4:22: track \"E\" properties.p.required: expected true or false"}},
    {"required_on_items",
     "track:\n  - name: E\n    properties:\n      p: { type: array, items: { required: true } }\n",
     {"web.yaml:4:34: track \"E\" properties.p[]: required applies only to object properties"}},
    {"bad_additional_properties",
     "track:\n  - name: E\n    additional_properties: no\n",
     {"web.yaml:3:28: track \"E\".additional_properties: expected allow or deny"}},
    {"event_without_name",
     "track:\n  - description: x\n",
     {"web.yaml:2:5: track[0]: 'name' is required"}},
    {"duplicate_event_in_file",
     "track:\n  - name: A\n  - name: A\n",
     {"web.yaml:3:11: track event 'A' is already defined at web.yaml:2:11"}},
    {"duplicate_key",
     "track:\n  - name: A\n    properties:\n      p: {}\n      p: {}\n",
     {"web.yaml:5:7: track \"A\" properties: duplicate key 'p'"}},
    {"properties_and_schema",
     "track:\n  - name: A\n    properties: {}\n    schema: {}\n",
     {"web.yaml:4:13: track \"A\": set either 'properties' or 'schema', not both"}},
    {"yaml_syntax",
     "track:\n  - name: [A\n",
     {"web.yaml:3:1: YAML syntax error: end of sequence flow not found"}},
    {"not_a_mapping", "- a\n- b\n", {"web.yaml:1:1: a plan file must be a mapping"}},
    {"empty", "", {"web.yaml: plan file is empty"}},
    {"too_deep",
     "track:\n  - name: A\n    properties:\n      p: {items: {items: {items: {items: {items: "
     "{items: {items: {items: {items: {items: {items: {items: {items: {items: {items: {items: "
     "{items: {items: {items: {items: {items: {items: {items: {items: {items: {items: {items: "
     "{items: {items: {items: {items: {items: {items: {}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}\n",
     {"web.yaml:4:266: track \"A\" "
      "properties.p[][][][][][][][][][][][][][][][][][][][][][][][][][][][][][][][]: nested "
      "deeper than 32 levels"}},
};
INSTANTIATE_TEST_SUITE_P(Plan, PlanLoaderErrors, testing::ValuesIn(error_cases),
                         [](const testing::TestParamInfo<error_case>& i) { return i.param.name; });

TEST(PlanLoader, ReportsEveryErrorNotJustTheFirst) {
    auto errors = load_errors(
        "name: web\nbogus: 1\ntrack:\n  - name: E\n    properties:\n"
        "      a: { type: strin }\n      b: { type: string, pattern: \"(\" }\n");
    EXPECT_EQ(errors.size(), 3u) << plan_testing::joined(errors);
}

TEST(PlanLoader, AliasExpansionIsBounded) {
    // Each level references the previous one twice: 2^20 declarations from a few lines.
    std::string text = "track:\n  - name: E\n    properties:\n      l0: &l0 {type: string}\n";
    for (int i = 1; i <= 20; ++i) {
        text += "      l" + std::to_string(i) + ": &l" + std::to_string(i) +
                " {type: object, properties: {x: *l" + std::to_string(i - 1) + ", y: *l" +
                std::to_string(i - 1) + "}}\n";
    }
    auto errors = load_errors(text);
    ASSERT_EQ(errors.size(), 1u) << plan_testing::joined(errors);
    EXPECT_NE(errors[0].find("the plan declares more than 100000 properties"), std::string::npos)
        << errors[0];
}

TEST(PlanLoader, InvalidUtf8IsRefused) {
    EXPECT_EQ(load_errors("name: \xff\n", "web.yaml"),
              (Lines{"web.yaml: file is not valid UTF-8"}));
}

TEST(PlanLoader, FilesAddEventsAndDuplicatesNameBothPositions) {
    switchyard::test::temp_dir dir;
    auto write = [&](const char* name, const char* text) {
        auto p = dir.path() / name;
        std::ofstream(p) << text;
        return p.string();
    };
    std::string a = write("a.yaml", "name: web\nversion: \"1\"\ntrack:\n  - name: A\n");
    std::string b = write("b.yaml", "track:\n  - name: B\n");
    std::string c = write("c.yaml", "track:\n  - name: X\n  - name: A\n");
    std::string d = write("d.yaml", "name: mobile\nidentify: {}\n");
    std::string e = write("e.yaml", "identify:\n  traits: {}\n");

    std::vector<std::string> errors;
    auto plan = load_plan({a, b}, errors);
    ASSERT_NE(plan, nullptr) << plan_testing::joined(errors);
    EXPECT_EQ(plan->event_count(), 2u);
    EXPECT_EQ(plan->name(), "web");
    EXPECT_EQ(plan->version(), "1");

    errors.clear();
    EXPECT_EQ(load_plan({a, b, c}, errors), nullptr);
    EXPECT_EQ(errors, (Lines{c + ":3:11: track event 'A' is already defined at " + a + ":4:11"}));

    errors.clear();
    EXPECT_EQ(load_plan({a, d, e}, errors), nullptr);
    EXPECT_EQ(errors, (Lines{d + ":1:7: plan name 'mobile' differs from 'web' set at " + a + ":1:7",
                             e + ":1:1: identify is already defined at " + d + ":2:1"}));

    errors.clear();
    EXPECT_EQ(load_plan({(dir.path() / "missing.yaml").string()}, errors), nullptr);
    EXPECT_EQ(errors,
              (Lines{(dir.path() / "missing.yaml").string() + ": cannot read: No such file or "
                                                              "directory"}));

    errors.clear();
    auto named = load_plan({b}, errors, "given");
    ASSERT_NE(named, nullptr);
    EXPECT_EQ(named->name(), "given");
}

TEST(PlanLoader, ExampleFixturesLoad) {
    std::vector<std::string> errors;
    auto plan = load_plan({plan_testing::fixture("web.yaml")}, errors);
    ASSERT_NE(plan, nullptr) << plan_testing::joined(errors);
    EXPECT_EQ(plan->name(), "web");
    EXPECT_EQ(plan->version(), "2026-11-01");
    EXPECT_EQ(plan->event_count(), 7u);
}

TEST(PlanMarkdown, DocumentsEventsAndConstraints) {
    std::vector<std::string> errors;
    auto plan = load_plan({plan_testing::fixture("web.yaml")}, errors);
    ASSERT_NE(plan, nullptr) << plan_testing::joined(errors);
    std::string md = plan->markdown();
    EXPECT_EQ(md.rfind("# Tracking plan: web\n\nVersion: 2026-11-01\n", 0), 0u) << md;
    EXPECT_NE(md.find("## Track events\n\n### Order Completed\n\nThe customer paid; sent once per "
                      "order from the confirmation page.\n\nOwner: growth-team\n\nUnplanned "
                      "properties: not allowed\n\n"
                      "| Property | Type | Required | Constraints | Description |\n"
                      "| --- | --- | --- | --- | --- |\n"
                      "| `order_id` | string | yes | pattern `^ord_[0-9]+$` |  |\n"
                      "| `revenue` | number |  | >= 0 |  |\n"
                      "| `currency` | string |  | one of `USD`, `EUR` |  |\n"
                      "| `coupon` | string or null |  |  |  |\n"
                      "| `email` | string |  | format email |  |\n"
                      "| `items` | array |  | min items 1 |  |\n"
                      "| `items[]` | object |  | no unplanned keys |  |\n"
                      "| `items[].sku` | string | yes |  |  |\n"
                      "| `items[].qty` | integer |  | >= 1 |  |\n"),
              std::string::npos)
        << md;
    EXPECT_NE(md.find("## Identify\n\nTraits of a known user.\n"), std::string::npos) << md;
    EXPECT_NE(md.find("## Pages\n\n### Pricing\n"), std::string::npos) << md;
    EXPECT_NE(md.find("### * (any other name)\n"), std::string::npos) << md;
    EXPECT_EQ(md.back(), '\n');
    EXPECT_NE(md[md.size() - 2], '\n');
}

TEST(PlanMarkdown, EscapesTableCells) {
    auto plan = must_load(
        "track:\n  - name: E\n    properties:\n"
        "      p: { type: string, pattern: \"a|b\", description: \"one | two\" }\n");
    EXPECT_NE(plan->markdown().find("| `p` | string |  | pattern `a\\|b` | one \\| two |"),
              std::string::npos)
        << plan->markdown();
}

}  // namespace
}  // namespace switchyard::plan
