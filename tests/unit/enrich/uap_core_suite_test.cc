// uap-core's own test suites (tests/test_ua.yaml, test_os.yaml, test_device.yaml from the Debian
// package uap-core) run against our parser. Compared as uap-core's test.js does: null, ~, a
// missing key and '' all mean absent. Prints one summary line per suite, writes every failing
// case with its reason to uap-core-failures.txt in the working directory, and fails when a
// suite's pass rate drops below its floor (the measured rate, rounded down to 0.1%).
#include "enrich/ua/ua_parser.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace switchyard::enrich::ua {
namespace {

const std::string uap_dir = "/usr/share/uap-core";

// The suites' UAs are all far below this; the default cap (1024) is checked separately.
constexpr std::size_t suite_max_length = 8192;

struct suite_case {
    std::string ua;
    std::vector<std::string> want;  // one per field, "" for absent
    int line = 0;
};

struct suite_def {
    const char* file;
    const char* section;  // regexes.yaml section deciding these fields
    std::vector<const char*> fields;
    double floor_percent;  // measured pass rate, rounded down to 0.1%
};

const std::array<suite_def, 3> suites{{
    {"test_ua.yaml", "user_agent_parsers", {"family", "major", "minor", "patch"}, 100.0},
    {"test_os.yaml", "os_parsers", {"family", "major", "minor", "patch", "patch_minor"}, 100.0},
    {"test_device.yaml", "device_parsers", {"family", "brand", "model"}, 100.0},
}};

std::vector<std::string> got_fields(const suite_def& s, const result& r) {
    const std::string_view f = s.file;
    if (f == "test_ua.yaml") {
        return {r.browser_family, r.browser_major, r.browser_minor, r.browser_patch};
    }
    if (f == "test_os.yaml") {
        return {r.os_family, r.os_major, r.os_minor, r.os_patch, r.os_patch_minor};
    }
    return {r.device_family, r.device_brand, r.device_model};
}

std::string scalar_or_empty(const YAML::Node& n) {
    if (!n || n.IsNull() || !n.IsScalar()) return {};
    return n.Scalar();
}

std::vector<suite_case> load_cases(const suite_def& s) {
    const YAML::Node root = YAML::LoadFile(uap_dir + "/tests/" + s.file);
    std::vector<suite_case> out;
    for (const YAML::Node& c : root["test_cases"]) {
        suite_case sc;
        sc.ua = scalar_or_empty(c["user_agent_string"]);
        sc.line = c.Mark().line + 1;
        for (const char* f : s.fields) sc.want.push_back(scalar_or_empty(c[f]));
        out.push_back(std::move(sc));
    }
    return out;
}

std::string quoted(const std::string& s) { return s.empty() ? "(absent)" : "\"" + s + "\""; }

class UapCoreSuite : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        if (!std::filesystem::exists(uap_dir + "/regexes.yaml") ||
            !std::filesystem::exists(uap_dir + "/tests/test_ua.yaml")) {
            return;
        }
        std::string err;
        parser_ = parser::load(uap_dir + "/regexes.yaml", {suite_max_length, true}, err);
        ASSERT_NE(parser_, nullptr) << err;
        linear_ = parser::load(uap_dir + "/regexes.yaml", {suite_max_length, false}, err);
        ASSERT_NE(linear_, nullptr) << err;
        // Patterns RE2 rejected, by section and file index, for the failure reasons.
        regexes_ = YAML::LoadFile(uap_dir + "/regexes.yaml");
        cases_ = std::make_unique<std::array<std::vector<suite_case>, 3>>();
        for (std::size_t i = 0; i < suites.size(); ++i) (*cases_)[i] = load_cases(suites[i]);
        std::ofstream(failures_path, std::ios::trunc)
            << "# uap-core suite cases our parser answers differently (see "
               "uap_core_suite_test.cc)\n";
    }
    static void TearDownTestSuite() {
        parser_.reset();
        linear_.reset();
        cases_.reset();
        regexes_ = YAML::Node();
    }
    void SetUp() override {
        if (parser_ == nullptr) {
            GTEST_SKIP() << "uap-core is not installed (" << uap_dir
                         << "/regexes.yaml and tests/*.yaml): apt-get install uap-core";
        }
    }

    // Whether an unsupported regex listed before the one that matched (or anywhere, if none
    // did) would have matched this UA: then the expected answer came from a regex RE2 could
    // not compile. Checked with std::regex (ECMAScript, like uap-core's reference parser).
    static std::string unsupported_reason(const suite_def& s, const std::string& ua, int matched) {
        const YAML::Node list = regexes_[s.section];
        std::string found;
        for (std::size_t i = 0; i < list.size(); ++i) {
            if (matched >= 0 && i >= static_cast<std::size_t>(matched)) break;
            if (!parser_->is_unsupported(s.section, i)) continue;
            const std::string pattern = list[i]["regex"].Scalar();
            auto flags = std::regex::ECMAScript;
            if (scalar_or_empty(list[i]["regex_flag"]) == "i") flags |= std::regex::icase;
            try {
                if (std::regex_search(ua, std::regex(pattern, flags))) {
                    found = std::string(s.section) + "[" + std::to_string(i) + "]";
                    break;
                }
            } catch (const std::regex_error&) {
                // std::regex cannot tell either; not counted as the cause.
            }
        }
        return found.empty() ? "expected regex supported by RE2"
                             : "expected regex unsupported by RE2: " + found;
    }

    void run_suite(std::size_t k) {
        const suite_def& s = suites[k];
        const auto& cases = (*cases_)[k];
        std::size_t passed = 0, over_cap = 0;
        std::vector<std::string> failures;
        for (const suite_case& c : cases) {
            if (c.ua.size() > options{}.max_length) ++over_cap;
            const result r = parser_->parse(c.ua);
            const std::vector<std::string> got = got_fields(s, r);
            std::string diff;
            for (std::size_t f = 0; f < s.fields.size(); ++f) {
                if (got[f] == c.want[f]) continue;
                diff += std::string(diff.empty() ? "" : "; ") + s.fields[f] + ": expected " +
                        quoted(c.want[f]) + " got " + quoted(got[f]);
            }
            if (diff.empty()) {
                ++passed;
                continue;
            }
            const auto which = parser_->explain(c.ua);
            const int matched = which[k];
            failures.push_back(
                std::string(s.file) + ":" + std::to_string(c.line) + ": " + diff + " [matched " +
                (matched < 0 ? std::string("no regex")
                             : std::string(s.section) + "[" + std::to_string(matched) + "]") +
                "; " + unsupported_reason(s, c.ua, matched) + "] UA: " + c.ua);
        }
        const double rate = cases.empty() ? 0 : 100.0 * passed / cases.size();
        std::printf("uap-core %s: %zu/%zu passed (%.2f%%); %zu cases longer than %zu bytes\n",
                    s.file, passed, cases.size(), rate, over_cap, options{}.max_length);
        for (std::size_t i = 0; i < failures.size() && i < 20; ++i) {
            std::printf("  %s\n", failures[i].c_str());
        }
        std::ofstream out(failures_path, std::ios::app);
        for (const std::string& f : failures) out << f << '\n';

        EXPECT_FALSE(cases.empty());
        EXPECT_GE(rate, s.floor_percent)
            << s.file << ": pass rate fell below its floor; see " << failures_path;
    }

    static constexpr const char* failures_path = "uap-core-failures.txt";
    static inline std::shared_ptr<const parser> parser_, linear_;
    static inline std::unique_ptr<std::array<std::vector<suite_case>, 3>> cases_;
    static inline YAML::Node regexes_;
};

TEST_F(UapCoreSuite, UserAgents) { run_suite(0); }

TEST_F(UapCoreSuite, OperatingSystems) { run_suite(1); }

TEST_F(UapCoreSuite, Devices) { run_suite(2); }

TEST_F(UapCoreSuite, AllRegexesCompileOrAreListed) {
    const std::size_t total = regexes_["user_agent_parsers"].size() +
                              regexes_["os_parsers"].size() + regexes_["device_parsers"].size();
    EXPECT_EQ(parser_->regex_count() + parser_->unsupported().size(), total);
    for (const std::string& u : parser_->unsupported()) std::printf("unsupported: %s\n", u.c_str());
}

// The RE2::Set path and the one-regex-at-a-time path must agree on every field, for every UA of
// the three suites.
TEST_F(UapCoreSuite, SetAndLinearScanAgree) {
    std::size_t compared = 0;
    for (const auto& list : *cases_) {
        for (const suite_case& c : list) {
            const result a = parser_->parse(c.ua);
            const result b = linear_->parse(c.ua);
            ASSERT_EQ(a, b) << c.ua;
            ++compared;
        }
    }
    EXPECT_GT(compared, 10000u);
}

// Loading on several threads (the default: one per CPU) and on one gives the same parser: the
// same answers for every UA of the suites and the same unsupported regexes.
TEST_F(UapCoreSuite, ParallelLoadEqualsOneThreadLoad) {
    std::string err;
    options one{suite_max_length, true};
    one.load_threads = 1;
    options four{suite_max_length, true};
    four.load_threads = 4;
    auto a = parser::load(uap_dir + "/regexes.yaml", one, err);
    ASSERT_NE(a, nullptr) << err;
    auto b = parser::load(uap_dir + "/regexes.yaml", four, err);
    ASSERT_NE(b, nullptr) << err;
    EXPECT_EQ(a->regex_count(), b->regex_count());
    EXPECT_EQ(a->unsupported(), b->unsupported());
    std::size_t compared = 0;
    for (const auto& list : *cases_) {
        for (const suite_case& c : list) {
            ASSERT_EQ(a->parse(c.ua), b->parse(c.ua)) << c.ua;
            ++compared;
        }
    }
    EXPECT_GT(compared, 10000u);
}

}  // namespace
}  // namespace switchyard::enrich::ua
