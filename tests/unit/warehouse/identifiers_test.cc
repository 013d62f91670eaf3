#include "warehouse/identifiers.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace switchyard::warehouse {
namespace {

bool clean(const std::string& n) {
    if (n.empty() || n.size() > max_identifier_bytes) return false;
    for (char c : n) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return !(n[0] >= '0' && n[0] <= '9');
}

TEST(WarehouseIdentifiers, SnakeCasesTheWaySegmentWarehousesDo) {
    struct tc {
        const char* in;
        const char* want;
    } cases[] = {
        {"productId", "product_id"},
        {"ProductID", "product_id"},
        {"HTTPStatus", "http_status"},
        {"utm_source", "utm_source"},
        {"Order Completed", "order_completed"},
        {"order-completed", "order_completed"},
        {"  Spaces  around ", "spaces_around"},
        {"a..b__c", "a_b_c"},
        {"price$", "price"},
        {"item2Price", "item2_price"},
        {"1st_visit", "_1st_visit"},
        {"_private", "private"},
        {"__typename", "typename"},
        {"select", "select_"},
        {"User", "user_"},
        {"group", "group_"},
        {"order", "order_"},
        {"timestamp", "timestamp"},  // not reserved: Segment's own column name
        {"événement", "v_nement"},
    };
    for (const auto& c : cases) EXPECT_EQ(sanitize_identifier(c.in), c.want) << c.in;
}

TEST(WarehouseIdentifiers, EmptyAndPunctuationOnlyNamesGetAStableHash) {
    const std::string a = sanitize_identifier("!!!");
    const std::string b = sanitize_identifier("???");
    EXPECT_TRUE(clean(a)) << a;
    EXPECT_EQ(a[0], '_');
    EXPECT_NE(a, b);
    EXPECT_EQ(a, sanitize_identifier("!!!"));
    EXPECT_TRUE(clean(sanitize_identifier(""))) << sanitize_identifier("");
    EXPECT_TRUE(clean(sanitize_identifier("日本語")));
}

TEST(WarehouseIdentifiers, LongNamesAreCutWithADistinguishingHash) {
    const std::string base(80, 'a');
    const std::string x = sanitize_identifier(base + "_one");
    const std::string y = sanitize_identifier(base + "_two");
    EXPECT_EQ(x.size(), max_identifier_bytes);
    EXPECT_EQ(y.size(), max_identifier_bytes);
    EXPECT_NE(x, y);
    EXPECT_EQ(x.substr(0, 54), base.substr(0, 54));
    EXPECT_EQ(x, sanitize_identifier(base + "_one"));  // stable
    EXPECT_TRUE(clean(x));
    // A name of exactly 63 bytes is kept as it is.
    EXPECT_EQ(sanitize_identifier(std::string(63, 'b')), std::string(63, 'b'));
}

TEST(WarehouseIdentifiers, SanitizingIsIdempotent) {
    for (const char* s : {"productId", "select", "1st", "x", "a_b", "user", "HTTPStatus"}) {
        const std::string once = sanitize_identifier(s);
        EXPECT_EQ(sanitize_identifier(once), once) << s;
    }
}

TEST(WarehouseIdentifiers, RandomBytesAlwaysYieldCleanNames) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255), len(0, 120);
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) {
        std::string raw(static_cast<std::size_t>(len(rng)), '\0');
        for (auto& c : raw) c = static_cast<char>(byte(rng));
        const std::string n = sanitize_identifier(raw);
        ASSERT_TRUE(clean(n)) << n;
        ASSERT_FALSE(is_reserved_word(n)) << n;
        // Quoting a clean name only adds the quotes.
        ASSERT_EQ(quote_identifier(n), "\"" + n + "\"");
    }
}

TEST(WarehouseIdentifiers, QuotingDoublesEmbeddedQuotes) {
    EXPECT_EQ(quote_identifier("a\"b"), "\"a\"\"b\"");
    EXPECT_EQ(quote_identifier("x\"; DROP TABLE t; --"), "\"x\"\"; DROP TABLE t; --\"");
    EXPECT_EQ(quote_identifier(""), "\"\"");
}

TEST(WarehouseIdentifiers, ReservedWordsAreRecognised) {
    for (const char* w : {"all", "with", "select", "user", "table", "values", "between"}) {
        EXPECT_TRUE(is_reserved_word(w)) << w;
    }
    EXPECT_FALSE(is_reserved_word("name"));
    EXPECT_FALSE(is_reserved_word("event"));
}

}  // namespace
}  // namespace switchyard::warehouse
