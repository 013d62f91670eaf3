#include "plan/plan.h"
#include "plan_test_support.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace switchyard::plan {
namespace {

using plan_testing::load_errors;
using plan_testing::must_load;
using plan_testing::violations_of;
using vk = violation_kind;
using Lines = std::vector<std::string>;

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

// The same plan written as YAML (web.yaml) and as a Segment Protocols export plus the pages
// YAML (a Protocols export has no page rules) must judge every fixture event identically.
TEST(PlanJsonSchema, ProtocolsExportRoundTripsWithYaml) {
    std::vector<std::string> errors;
    auto yaml = load_plan({plan_testing::fixture("web.yaml")}, errors);
    ASSERT_NE(yaml, nullptr) << plan_testing::joined(errors);
    auto json = load_plan(
        {plan_testing::fixture("web.protocols.json"), plan_testing::fixture("web-pages.yaml")},
        errors);
    ASSERT_NE(json, nullptr) << plan_testing::joined(errors);
    EXPECT_EQ(json->name(), "web");
    EXPECT_EQ(json->version(), "2026-11-01");
    EXPECT_EQ(json->event_count(), yaml->event_count());

    std::size_t with_violations = 0;
    for (const char* file : {"good.ndjson", "bad.ndjson"}) {
        auto events = lines_of(plan_testing::fixture(file));
        ASSERT_EQ(events.size(), 10u) << file;
        for (const auto& ev : events) {
            auto from_yaml = violations_of(*yaml, ev);
            EXPECT_EQ(violations_of(*json, ev), from_yaml) << ev;
            EXPECT_EQ(from_yaml.empty(), std::string(file) == "good.ndjson") << ev;
            with_violations += !from_yaml.empty();
        }
    }
    EXPECT_EQ(with_violations, 10u);
}

TEST(PlanJsonSchema, BareDraft07SchemaOfProperties) {
    auto plan = must_load(R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Order Completed",
  "description": "Paid.",
  "type": "object",
  "properties": {
    "order_id": {"type": "string", "pattern": "^ord_"},
    "total": {"type": "number", "minimum": 0, "exclusiveMaximum": 1000},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 2}, "maxItems": 2},
    "kind": {"const": "web"},
    "note": {"type": ["string", "null"], "minLength": 1}
  },
  "required": ["order_id", "session"],
  "additionalProperties": false
})",
                          "order.json");
    ASSERT_NE(plan, nullptr);
    EXPECT_EQ(plan->name(), "order");
    EXPECT_EQ(
        violations_of(*plan,
                      R"({"type":"track","event":"Order Completed","properties":{"order_id":"x",)"
                      R"("total":1000,"tags":["a","bcd","e"],"kind":"app","note":"","z":1}})"),
        (std::vector<violation>{
            {"properties.order_id", vk::bad_value, "pattern ^ord_", R"(string "x")"},
            {"properties.total", vk::bad_value, "exclusive maximum 1000", "number 1000"},
            {"properties.tags", vk::bad_value, "max_items 2", "array of 3 items"},
            {"properties.tags[1]", vk::bad_value, "max_length 2", "string of 3 characters"},
            {"properties.kind", vk::bad_value, "one of [web]", R"(string "app")"},
            {"properties.note", vk::bad_value, "min_length 1", "string of 0 characters"},
            {"properties.z", vk::unplanned_property, "planned property", "z"},
            {"properties.session", vk::missing_required, "required", "missing"},
        }));
    EXPECT_EQ(violations_of(*plan, R"({"type":"track","event":"Other"})"),
              (std::vector<violation>{{"", vk::unplanned_event, "planned event", "Other"}}));
}

TEST(PlanJsonSchema, BareSchemaOfTheWholeCall) {
    auto plan = must_load(R"({"title": "Signed Up", "type": "object",
  "properties": {
    "context": {"type": "object"},
    "properties": {"type": "object", "properties": {"plan": {"enum": ["free", "pro"]}},
                   "required": ["plan"]}
  }})",
                          "signed_up.json");
    ASSERT_NE(plan, nullptr);
    EXPECT_EQ(
        violations_of(*plan, R"({"type":"track","event":"Signed Up","properties":{}})"),
        (std::vector<violation>{{"properties.plan", vk::missing_required, "required", "missing"}}));
}

TEST(PlanJsonSchema, Draft04ExclusiveBooleans) {
    auto plan = must_load(
        R"({"title":"E","properties":{"n":{"type":"number","minimum":0,"exclusiveMinimum":true}}})",
        "e.json");
    EXPECT_EQ(violations_of(*plan, R"({"type":"track","event":"E","properties":{"n":0}})"),
              (std::vector<violation>{
                  {"properties.n", vk::bad_value, "exclusive minimum 0", "number 0"}}));
}

TEST(PlanJsonSchema, SchemaInsideYamlPlan) {
    auto plan = must_load(R"(
defaults: {additional_properties: deny}
track:
  - name: E
    schema:
      type: object
      properties:
        a: {type: integer, maximum: 3}
      required: [a]
identify:
  schema:
    properties:
      email: {type: string, format: email}
    additionalProperties: false
)");
    // JSON Schema keeps its own default (additionalProperties: true), whatever `defaults` say.
    EXPECT_EQ(violations_of(*plan, R"({"type":"track","event":"E","properties":{"a":4,"b":1}})"),
              (std::vector<violation>{{"properties.a", vk::bad_value, "maximum 3", "number 4"}}));
    EXPECT_EQ(
        violations_of(*plan, R"({"type":"identify","traits":{"x":1}})"),
        (std::vector<violation>{{"traits.x", vk::unplanned_property, "planned property", "x"}}));
}

struct error_case {
    const char* name;
    const char* file;
    const char* text;
    Lines want;
};

class PlanJsonSchemaErrors : public testing::TestWithParam<error_case> {};

TEST_P(PlanJsonSchemaErrors, NameTheKeywordWithPosition) {
    const error_case& c = GetParam();
    EXPECT_EQ(load_errors(c.text, c.file), c.want) << c.text;
}

const error_case json_error_cases[] = {
    {"any_of",
     "e.json",
     "{\"title\": \"E\",\n \"properties\": {\n  \"a\": {\"anyOf\": [{\"type\": \"string\"}]}\n "
     "}\n}",
     {"e.json:3:9: track \"E\" properties.a: unsupported JSON Schema keyword 'anyOf'"}},
    {"ref_and_pattern_properties",
     "e.json",
     "{\"title\": \"E\", \"properties\": {\"a\": {\"$ref\": \"#/definitions/a\"}},\n"
     " \"patternProperties\": {}}",
     {"e.json:2:2: track \"E\" properties: unsupported JSON Schema keyword 'patternProperties'",
      "e.json:1:37: track \"E\" properties.a: unsupported JSON Schema keyword '$ref'"}},
    {"additional_properties_schema",
     "e.json",
     "{\"title\": \"E\", \"additionalProperties\": {\"type\": \"string\"}}",
     {"e.json:1:40: track \"E\" properties.additionalProperties: only true or false is supported "
      "(not a schema)"}},
    {"tuple_items",
     "e.json",
     "{\"title\": \"E\", \"properties\": {\"t\": {\"items\": [{}, {}]}}}",
     {"e.json:1:46: track \"E\" properties.t.items: only a single schema is supported for items "
      "(not a list of schemas)"}},
    {"no_title",
     "e.json",
     "{\"type\": \"object\"}",
     {"e.json:1:1: a JSON Schema file needs a title (the event name) or a Segment Protocols "
      "export's 'rules'"}},
    {"protocols_context_rules",
     "p.json",
     "{\"rules\": {\"events\": [{\"name\": \"E\", \"rules\": {\"properties\": {\n"
     "  \"context\": {\"properties\": {\"ip\": {\"type\": \"string\"}}}}}}]}}",
     {"p.json:2:14: track \"E\" rules.properties.context: rules here are not supported (only the "
      "call's properties or traits are checked)"}},
    {"protocols_unknown_rules_key",
     "p.json",
     "{\"rules\": {\"events\": [], \"alias\": {}}}",
     {"p.json:1:26: rules: unknown key 'alias'"}},
    {"json_syntax",
     "p.json",
     "{\"rules\": {\"events\": [}",
     {"p.json:1:23: YAML syntax error: illegal flow end"}},
};
INSTANTIATE_TEST_SUITE_P(Plan, PlanJsonSchemaErrors, testing::ValuesIn(json_error_cases),
                         [](const testing::TestParamInfo<error_case>& i) { return i.param.name; });

}  // namespace
}  // namespace switchyard::plan
