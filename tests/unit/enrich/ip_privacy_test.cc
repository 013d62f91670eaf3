#include "enrich/privacy/ip.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace switchyard::enrich::privacy {
namespace {

using namespace std::string_literals;

TEST(IpPrivacyMode, ParseAndName) {
    for (auto m : {ip_mode::keep, ip_mode::truncate, ip_mode::remove}) {
        auto parsed = ip_mode_from_string(to_string(m));
        ASSERT_TRUE(parsed) << to_string(m);
        EXPECT_EQ(*parsed, m);
    }
    EXPECT_EQ(to_string(ip_mode::truncate), "truncate");
    for (std::string_view bad : {"", "Keep", "TRUNCATE", " remove", "anonymize", "drop"}) {
        EXPECT_FALSE(ip_mode_from_string(bad)) << bad;
    }
}

struct truncate_case {
    std::string in;
    std::string want;  // "" = not an address
};

TEST(IpPrivacyTruncate, Table) {
    const truncate_case cases[] = {
        // IPv4 keeps its /24.
        {"203.0.113.77", "203.0.113.0"},
        {"203.0.113.0", "203.0.113.0"},
        {"10.1.2.3", "10.1.2.0"},
        {"0.0.0.0", "0.0.0.0"},
        {"255.255.255.255", "255.255.255.0"},
        // IPv6 keeps its /48, written canonically.
        {"2001:db8:abcd:12::1", "2001:db8:abcd::"},
        {"2001:DB8:ABCD:0012:0000:0000:0000:0001", "2001:db8:abcd::"},
        {"2001:db8:abcd:ffff:ffff:ffff:ffff:ffff", "2001:db8:abcd::"},
        {"2001:db8::1", "2001:db8::"},
        {"fe80::1", "fe80::"},
        {"::1", "::"},
        {"::", "::"},
        // IPv4-mapped IPv6 is IPv4: truncated to /24, returned as plain IPv4.
        {"::ffff:203.0.113.77", "203.0.113.0"},
        {"::FFFF:cb00:714d", "203.0.113.0"},
        {"0:0:0:0:0:ffff:10.20.30.40", "10.20.30.0"},
        // 6to4 embeds the whole IPv4 address in bits 16-47: only its /24 survives.
        {"2002:cb00:714d::1", "2002:cb00:7100::"},
        {"2002:cb00:714d:1234:5678::9", "2002:cb00:7100::"},
        // Other embeddings are plain IPv6 (/48 drops the IPv4 part).
        {"64:ff9b::203.0.113.77", "64:ff9b::"},
        {"::203.0.113.77", "::"},
        // The longest accepted text (max_ip_text bytes).
        {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffff:ffff:ffff::"},
        {"0000:0000:0000:0000:0000:ffff:255.255.255.255", "255.255.255.0"},
        // Not exactly one address.
        {"", ""},
        {" 203.0.113.77", ""},
        {"203.0.113.77 ", ""},
        {"203.0.113.77\n", ""},
        {"\t2001:db8::1", ""},
        {"fe80::1%eth0", ""},  // zone ids are not accepted: the address is dropped
        {"fe80::1%1", ""},
        {"[2001:db8::1]", ""},
        {"[2001:db8::1]:443", ""},
        {"203.0.113.77:443", ""},
        {"203.0.113.0/24", ""},
        {"2001:db8::/32", ""},
        {"203.0.113", ""},
        {"203.0.113.256", ""},
        {"1.2.3.4.5", ""},
        {"01.2.3.4", ""},  // leading zeros (octal in some parsers) are refused
        {"0x7f.0.0.1", ""},
        {"2130706433", ""},
        {"unknown", ""},
        {"2001:db8::g", ""},
        {":::", ""},
        {"1:2:3:4:5:6:7:8:9", ""},
        {"203.0.113.77, 198.51.100.1", ""},
        {"203.0.113.77\0junk"s, ""},
        {"\0"s, ""},
        {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555", ""},  // max_ip_text + 1 bytes
        {std::string(1 << 20, '1'), ""},
        {std::string(4096, ':'), ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(testing::Message()
                     << "input (" << c.in.size() << " bytes): " << c.in.substr(0, 64));
        EXPECT_EQ(truncate_ip(c.in), c.want);
    }
}

TEST(IpPrivacyTruncate, ResultIsATruncatedAddressItself) {
    // Truncating twice changes nothing: a stored address can be re-checked.
    for (std::string_view ip :
         {"203.0.113.77", "2001:db8:abcd:12::1", "::ffff:203.0.113.77", "2002:cb00:714d::1"}) {
        std::string once = truncate_ip(ip);
        ASSERT_FALSE(once.empty()) << ip;
        EXPECT_EQ(truncate_ip(once), once) << ip;
    }
}

TEST(IpPrivacyParse, FamiliesAndBytes) {
    ip_address a;
    ASSERT_TRUE(parse_ip("203.0.113.77", a));
    EXPECT_FALSE(a.v6);
    EXPECT_EQ(a.bytes[0], 203);
    EXPECT_EQ(a.bytes[3], 77);

    ASSERT_TRUE(parse_ip("::ffff:203.0.113.77", a));
    EXPECT_FALSE(a.v6);
    EXPECT_EQ(a.bytes[0], 203);
    EXPECT_EQ(a.bytes[3], 77);
    EXPECT_EQ(a.bytes[4], 0);

    ASSERT_TRUE(parse_ip("2001:db8::1", a));
    EXPECT_TRUE(a.v6);
    EXPECT_EQ(a.bytes[0], 0x20);
    EXPECT_EQ(a.bytes[1], 0x01);
    EXPECT_EQ(a.bytes[15], 1);

    EXPECT_FALSE(parse_ip("fe80::1%eth0", a));
    EXPECT_FALSE(parse_ip("", a));
    EXPECT_FALSE(parse_ip(std::string(100, 'a'), a));
}

}  // namespace
}  // namespace switchyard::enrich::privacy
