#pragma once

#include "plan/plan.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::plan {

// Readable failures: gtest prints violations as {path, kind, expected, actual}.
inline void PrintTo(const violation& v, std::ostream* os) {
    *os << "{\"" << v.path << "\", " << to_string(v.kind) << ", \"" << v.expected << "\", \""
        << v.actual << "\"}";
}

namespace plan_testing {

inline std::string joined(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
}

// Loads `text`, failing the test on any error.
inline std::shared_ptr<const compiled_plan> must_load(std::string_view text,
                                                      std::string_view file = "plan.yaml") {
    std::vector<std::string> errors;
    auto plan = load_plan_text(text, file, errors);
    EXPECT_TRUE(errors.empty()) << joined(errors);
    EXPECT_NE(plan, nullptr);
    return plan;
}

// The errors loading `text` reports (the plan must not load).
inline std::vector<std::string> load_errors(std::string_view text,
                                            std::string_view file = "plan.yaml") {
    std::vector<std::string> errors;
    auto plan = load_plan_text(text, file, errors);
    EXPECT_EQ(plan, nullptr);
    return errors;
}

inline std::vector<violation> violations_of(const compiled_plan& plan, std::string_view json) {
    std::vector<violation> out;
    EXPECT_TRUE(plan.validate(json, out)) << json;
    return out;
}

inline std::filesystem::path fixtures_dir() {
    if (const char* src = std::getenv("SWITCHYARD_SOURCE_DIR"); src != nullptr && *src != '\0') {
        return std::filesystem::path(src) / "tests" / "fixtures" / "plans";
    }
    return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "fixtures" /
           "plans";
}

inline std::string fixture(std::string_view name) { return (fixtures_dir() / name).string(); }

}  // namespace plan_testing
}  // namespace switchyard::plan
