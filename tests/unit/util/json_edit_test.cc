#include "util/json_edit.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

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

}  // namespace
}  // namespace switchyard::util
