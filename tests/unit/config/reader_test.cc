#include "config/reader.h"

#include "config/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace switchyard::config {
namespace {

TEST(ConfigReader, ParsesSizesAndDurations) {
    std::uint64_t b = 0;
    EXPECT_TRUE(parse_byte_size("64MiB", b));
    EXPECT_EQ(b, 64u << 20);
    EXPECT_TRUE(parse_byte_size("500KB", b));
    EXPECT_EQ(b, 500000u);
    EXPECT_TRUE(parse_byte_size("123", b));
    EXPECT_EQ(b, 123u);
    EXPECT_FALSE(parse_byte_size("12 parsecs", b));
    EXPECT_FALSE(parse_byte_size("", b));
    duration d{};
    EXPECT_TRUE(parse_duration("250ms", d));
    EXPECT_EQ(d.count(), 250);
    EXPECT_TRUE(parse_duration("2m", d));
    EXPECT_EQ(d.count(), 120000);
    EXPECT_TRUE(parse_duration("400d", d));
    EXPECT_EQ(d.count(), 400LL * 86400000);
    EXPECT_EQ(format_value(d), "400d");
    EXPECT_EQ(format_value(duration(90 * 60000)), "90m");
    EXPECT_FALSE(parse_duration("10", d));
    EXPECT_FALSE(parse_duration("ten s", d));
}

TEST(ConfigReader, ExpandsEnvironment) {
    ::setenv("SY_TEST_VAR", "hello", 1);
    ::unsetenv("SY_TEST_UNSET");
    std::string out, err;
    EXPECT_TRUE(expand_env("a-${SY_TEST_VAR}-b", out, err));
    EXPECT_EQ(out, "a-hello-b");
    EXPECT_TRUE(expand_env("${SY_TEST_UNSET:-fallback}", out, err));
    EXPECT_EQ(out, "fallback");
    EXPECT_FALSE(expand_env("${SY_TEST_UNSET}", out, err));
    EXPECT_NE(err.find("SY_TEST_UNSET"), std::string::npos);
    EXPECT_FALSE(expand_env("${SY_TEST_VAR", out, err));
}

TEST(ConfigLoad, ReportsEveryErrorWithLineAndColumn) {
    errors errs("test.yaml");
    load_string(R"(data_dir: /tmp/x
bogus: 1
server:
  listen: nowhere
  threads: many
  header_timeout: soon
sources:
  - name: a
    write_keys: [k]
  - name: a
    write_keys: [k]
log:
  durability: sometimes
)",
                errs);
    const auto& l = errs.list();
    auto has = [&](std::string_view needle) {
        for (const auto& e : l) {
            if (e.find(needle) != std::string::npos) return true;
        }
        return false;
    };
    EXPECT_TRUE(has("test.yaml:2:1: config: unknown key 'bogus'"));
    EXPECT_TRUE(has("server.listen"));
    EXPECT_TRUE(has("test.yaml:5:12: server.threads"));
    EXPECT_TRUE(has("test.yaml:6:19: server.header_timeout"));
    EXPECT_TRUE(has("duplicate source name 'a'"));
    EXPECT_TRUE(has("used twice"));
    EXPECT_TRUE(has("log.durability"));
    EXPECT_GE(l.size(), 7u);
}

TEST(ConfigLoad, DefaultsAreValid) {
    errors errs;
    auto c = load_string("sources: [{name: s, write_keys: [k]}]", errs);
    EXPECT_TRUE(errs.empty()) << (errs.empty() ? "" : errs.list()[0]);
    EXPECT_EQ(c.server.listen, "0.0.0.0:8080");
    EXPECT_EQ(c.log.policy, durability_policy::fsync);
    EXPECT_EQ(c.limits.max_event_bytes.bytes, 32u * 1024);
}

TEST(ConfigLoad, SyntaxErrorHasPosition) {
    errors errs("bad.yaml");
    load_string("a: [1, 2\nb: c", errs);
    ASSERT_EQ(errs.list().size(), 1u);
    EXPECT_EQ(errs.list()[0].rfind("bad.yaml:", 0), 0u);
}

TEST(ConfigLoad, RedactsWriteKeys) {
    errors errs;
    auto c = load_string("sources: [{name: s, write_keys: [supersecretkey]}]", errs);
    ASSERT_TRUE(errs.empty());
    auto dump = dump_redacted(c);
    EXPECT_EQ(dump.find("supersecretkey"), std::string::npos);
    EXPECT_NE(dump.find("redacted"), std::string::npos);
}

}  // namespace
}  // namespace switchyard::config
