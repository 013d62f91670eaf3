#include "destinations/null/null_destination.h"

#include "config/config.h"
#include "destinations/registry.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace switchyard::destinations {
namespace {

std::vector<delivery_item> items(std::size_t n, std::uint64_t first_offset) {
    std::vector<delivery_item> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i].offset = first_offset + i;
    return out;
}

TEST(NullDestination, AcknowledgesAndCountsEveryBatch) {
    null_destination d;
    auto a = items(3, 0);
    auto b = items(500, 3);
    EXPECT_EQ(d.send(a).status, send_status::delivered);
    const send_outcome out = d.send(b);
    EXPECT_EQ(out.status, send_status::delivered);
    EXPECT_TRUE(out.rejected_items.empty());
    EXPECT_EQ(d.batches(), 2u);
    EXPECT_EQ(d.events(), 503u);
    EXPECT_TRUE(d.healthy());
}

TEST(NullDestinationConfig, IsRegisteredAndHasNoSettings) {
    registry r;
    register_builtin(r);
    const factory* f = r.find("null");
    ASSERT_NE(f, nullptr);

    config::errors errs;
    config::map_reader ok(YAML::Load("{}"), "destinations[0]", errs);
    EXPECT_NE((*f)(ok, destination_context{"sink", "/tmp"}), nullptr);
    EXPECT_TRUE(errs.empty());

    config::map_reader bad(YAML::Load("path: /tmp/x\n"), "destinations[1]", errs);
    EXPECT_EQ((*f)(bad, destination_context{"sink", "/tmp"}), nullptr);
    ASSERT_EQ(errs.list().size(), 1u);
    EXPECT_NE(errs.list().front().find("path"), std::string::npos) << errs.list().front();
}

// YAML reads a bare `null` as no value; the config names the fix instead of "missing".
TEST(NullDestinationConfig, BareNullTypeGetsAHint) {
    config::errors errs;
    config::load_string(
        "sources: [{name: s, write_keys: [k]}]\n"
        "destinations: [{name: sink, type: null}]\n",
        errs);
    ASSERT_FALSE(errs.empty());
    EXPECT_NE(errs.list().front().find("type: \"null\""), std::string::npos) << errs.list().front();

    config::errors ok;
    auto c = config::load_string(
        "sources: [{name: s, write_keys: [k]}]\n"
        "destinations: [{name: sink, type: \"null\"}]\n",
        ok);
    EXPECT_TRUE(ok.empty()) << (ok.empty() ? "" : ok.list().front());
    ASSERT_EQ(c.destinations.size(), 1u);
    EXPECT_EQ(c.destinations[0].type, "null");
}

}  // namespace
}  // namespace switchyard::destinations
