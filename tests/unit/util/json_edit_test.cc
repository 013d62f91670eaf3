#include "util/json_edit.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <string>
#include <utility>

namespace switchyard::util {
namespace {

struct edit_case {
    const char* in;
    const char* out;  // nullptr: refused, unchanged
};

TEST(JsonEdit, SetsNestedMember) {
    const edit_case cases[] = {
        {R"({"a":1})", R"({"a":1,"context":{"v":[1]}})"},
        {R"({})", R"({"context":{"v":[1]}})"},
        {R"({"context":{}})", R"({"context":{"v":[1]}})"},
        {R"({"context":{"ip":"1.2.3.4"},"x":2})", R"({"context":{"ip":"1.2.3.4","v":[1]},"x":2})"},
        // An existing member is replaced, whatever its type or size.
        {R"({"context":{"v":{"deep":["}",{"q":"\"{"}]},"w":0}})", R"({"context":{"v":[1],"w":0}})"},
        // Keys named like the target deeper down are not the target.
        {R"({"properties":{"context":{"v":0}},"context":{"a":"v"}})",
         R"({"properties":{"context":{"v":0}},"context":{"a":"v","v":[1]}})"},
        // Strings holding braces, quotes and escapes do not confuse the scan.
        {R"({"s":"}\\\"{","context":{"t":"\"}"}})",
         R"({"s":"}\\\"{","context":{"t":"\"}","v":[1]}})"},
        // A string ending in an escaped backslash, and escaped quotes after backslash runs.
        {R"({"s":"a\\\\","context":{"t":"x\\\\\\\"}y"}})",
         R"({"s":"a\\\\","context":{"t":"x\\\\\\\"}y","v":[1]}})"},
        {R"( { "context" : { "k" : true } } )", R"( { "context" : { "k" : true ,"v":[1]} } )"},
        {R"({"context":[1]})", nullptr},
        {R"({"context":"x"})", nullptr},
        {R"([1,2])", nullptr},
    };
    simdjson::dom::parser p;
    for (const auto& c : cases) {
        std::string j = c.in;
        const bool ok = set_nested_member(j, "context", "v", "[1]");
        if (c.out == nullptr) {
            EXPECT_FALSE(ok) << c.in;
            EXPECT_EQ(j, c.in);
            continue;
        }
        EXPECT_TRUE(ok) << c.in;
        EXPECT_EQ(j, c.out) << c.in;
        EXPECT_FALSE(p.parse(j).error()) << j;
    }
}

// The offsets of the object that is the value of the last "context" key, found by a plain
// scan that skips strings (good enough for the hand-written inputs below).
std::pair<std::uint32_t, std::uint32_t> context_span(const std::string& j) {
    const auto open = j.rfind("\"context\":{") + 10;
    int depth = 0;
    for (std::size_t i = open; i < j.size(); ++i) {
        if (j[i] == '"') {
            for (++i; j[i] != '"'; ++i) {
                if (j[i] == '\\') ++i;
            }
            continue;
        }
        if (j[i] == '{') ++depth;
        if (j[i] == '}' && --depth == 0) return {open, i};
    }
    return {0, 0};
}

TEST(JsonEdit, ContextMemberWithAHintMatchesTheFullWalk) {
    const char* inputs[] = {
        R"({"properties":{"x":{"v":0}},"context":{"a":"v"},"integrations":{}})",
        R"({"context":{},"x":1})",
        R"({"context":{"v":{"deep":["}"]},"w":0},"y":"}"})",
        R"({"s":"}\\\"{","context":{"t":"\"}"}})",
    };
    for (const char* in : inputs) {
        std::string expected = in;
        ASSERT_TRUE(set_nested_member(expected, "context", "v", "[1]"));
        ASSERT_TRUE(set_nested_member(expected, "context", "w", "{\"n\":2}"));

        std::string j = in;
        auto [open, close] = context_span(j);
        ASSERT_NE(close, 0u) << in;
        ASSERT_TRUE(set_context_member(j, open, close, false, "v", "[1]"));
        // The hint still points at the context object after the first edit.
        EXPECT_EQ(std::make_pair(open, close), context_span(j)) << j;
        ASSERT_TRUE(set_context_member(j, open, close, false, "w", "{\"n\":2}"));
        EXPECT_EQ(j, expected) << in;
        EXPECT_EQ(std::make_pair(open, close), context_span(j)) << j;
    }
}

// Known absent: appended at the hint without reading the object, same text as the full walk.
TEST(JsonEdit, ContextMemberKnownAbsentIsAppendedAtTheHint) {
    for (const char* in : {R"({"a":1,"context":{},"z":2})",
                           R"({"context":{"ip":"x","page":{"t":"}"}},"integrations":{}})"}) {
        std::string expected = in;
        ASSERT_TRUE(set_nested_member(expected, "context", "trackingPlan", "{\"name\":\"p\"}"));
        ASSERT_TRUE(set_nested_member(expected, "context", "identity", "{\"id\":1}"));
        std::string j = in;
        auto [open, close] = context_span(j);
        ASSERT_TRUE(set_context_member(j, open, close, true, "trackingPlan", "{\"name\":\"p\"}"));
        ASSERT_TRUE(set_context_member(j, open, close, true, "identity", "{\"id\":1}"));
        EXPECT_EQ(j, expected);
        EXPECT_EQ(std::make_pair(open, close), context_span(j)) << j;
    }
}

TEST(JsonEdit, ContextMemberIgnoresAStaleOrMissingHint) {
    const std::string in = R"({"a":{"b":1},"context":{"ip":"x"},"z":{}})";
    std::string expected = in;
    ASSERT_TRUE(set_nested_member(expected, "context", "v", "1"));
    const std::pair<std::uint32_t, std::uint32_t> wrong[] = {
        {0, 0},                                      // unknown
        {5, 11},                                     // another object ({"b":1})
        {21, 31},                                    // off by one
        {5, 40},                                     // '{' there, but its object ends elsewhere
        {22, 500},                                   // past the end
        {static_cast<std::uint32_t>(in.size()), 3},  // open after close
    };
    for (auto [o, c] : wrong) {
        std::string j = in;
        std::uint32_t open = o, close = c;
        ASSERT_TRUE(set_context_member(j, open, close, true, "v", "1")) << o << "," << c;
        EXPECT_EQ(j, expected) << o << "," << c;
        EXPECT_EQ(open, 0u);
        EXPECT_EQ(close, 0u);
    }
    // Without a context object, one is created as set_nested_member does.
    std::string j = R"({"a":1})";
    std::uint32_t open = 0, close = 0;
    ASSERT_TRUE(set_context_member(j, open, close, true, "v", "1"));
    EXPECT_EQ(j, R"({"a":1,"context":{"v":1}})");
}

}  // namespace
}  // namespace switchyard::util
