#include "warehouse/rows.h"

#include "warehouse/loader.h"

#include <gtest/gtest.h>

#include <map>

namespace switchyard::warehouse {
namespace {

event_view view(record_kind k, event_type t, std::string_view json, std::string_view event = {},
                std::string_view uid = {}, std::string_view aid = {}) {
    event_view v;
    v.kind = k;
    v.type = t;
    v.received_at_ms = 1'700'000'000'123;
    v.source = "Web App";
    v.message_id = "m1";
    v.user_id = uid;
    v.anonymous_id = aid;
    v.event_name = event;
    v.json = json;
    return v;
}

std::map<std::string, cell> fields_of(const row& r) {
    std::map<std::string, cell> m;
    for (const auto& f : r.fields) m.emplace(f.column, f.value);
    return m;
}

TEST(WarehouseRows, TrackMakesATracksRowAndAnEventTableRow) {
    const std::string json = R"({"type":"track","event":"Order Completed","messageId":"m1",
        "userId":"u1","anonymousId":"a1","timestamp":"2024-05-01T12:00:00.5Z",
        "sentAt":"2024-05-01T12:00:01Z","originalTimestamp":"not a time",
        "properties":{"orderId":"o-1","total":12.5,"items":3,"coupon":null,"paid":true,
          "tags":["a","b"],"shipping":{"method":"ground","address":{"city":"Oslo"}},
          "id":"prop-id","deliveredAt":"2024-05-03T08:00:00+02:00","birthday":"1990-01-01"},
        "context":{"ip":"10.0.0.1","library":{"name":"analytics.js","version":"2.1"},
          "campaign":{"name":"spring"}}})";
    row_builder b({});
    std::vector<row> rows;
    std::string why;
    ASSERT_TRUE(
        b.build(view(record_kind::event, event_type::track, json, "Order Completed", "u1", "a1"),
                rows, why))
        << why;
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].table, (table_ref{"web_app", "tracks"}));
    EXPECT_EQ(rows[1].table, (table_ref{"web_app", "order_completed"}));
    EXPECT_EQ(rows[1].kind, table_kind::track_event);
    for (const auto& r : rows) {
        auto f = fields_of(r);
        EXPECT_EQ(f["id"].s, "m1");
        EXPECT_EQ(f["received_at"].k, cell::kind::timestamp);
        EXPECT_EQ(f["received_at"].i, 1'700'000'000'123'000);
        EXPECT_EQ(f["timestamp"].k, cell::kind::timestamp);
        EXPECT_EQ(f["timestamp"].i, 1'714'564'800'500'000);
        EXPECT_EQ(f["original_timestamp"].k, cell::kind::text);  // kept; the loader discards it
        EXPECT_EQ(f["user_id"].s, "u1");
        EXPECT_EQ(f["anonymous_id"].s, "a1");
        EXPECT_EQ(f["event"].s, "Order Completed");
        EXPECT_EQ(f["event_text"].s, "Order Completed");
        EXPECT_EQ(f["context_ip"].s, "10.0.0.1");
        EXPECT_EQ(f["context_library_name"].s, "analytics.js");
        EXPECT_EQ(f["context_campaign_name"].s, "spring");
        EXPECT_EQ(f["order_id"].s, "o-1");
        EXPECT_EQ(f["total"].k, cell::kind::floating);
        EXPECT_EQ(f["items"].k, cell::kind::integer);
        EXPECT_EQ(f["paid"].k, cell::kind::boolean);
        EXPECT_EQ(f.count("coupon"), 0u);  // null: no column
        EXPECT_EQ(f["tags"].s, R"(["a","b"])");
        EXPECT_EQ(f["shipping_method"].s, "ground");
        EXPECT_EQ(f["shipping_address_city"].s, "Oslo");
        EXPECT_EQ(f["properties_id"].s, "prop-id");  // a property named like a standard column
        EXPECT_EQ(f["delivered_at"].k, cell::kind::timestamp);
        EXPECT_EQ(f["delivered_at"].i, 1'714'716'000'000'000);
        EXPECT_EQ(f["delivered_at"].s, "2024-05-03T08:00:00+02:00");
        EXPECT_EQ(f["birthday"].k, cell::kind::text);  // a date alone is not a timestamp
    }
}

TEST(WarehouseRows, IdentifyUpsertsUsersWithTraitsOnly) {
    const std::string json = R"({"type":"identify","userId":"u9","traits":{"email":"a@b.c",
        "plan":"pro","logins":4},"context":{"ip":"1.2.3.4"}})";
    row_builder b({});
    std::vector<row> rows;
    std::string why;
    ASSERT_TRUE(b.build(view(record_kind::event, event_type::identify, json, {}, "u9"), rows, why));
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].table.name, "identifies");
    EXPECT_EQ(rows[1].table.name, "users");
    EXPECT_EQ(rows[1].mode, write_mode::upsert);
    auto u = fields_of(rows[1]);
    EXPECT_EQ(u["id"].s, "u9");
    EXPECT_EQ(u["email"].s, "a@b.c");
    EXPECT_EQ(u["logins"].i, 4);
    EXPECT_EQ(u.count("context_ip"), 0u);
    EXPECT_EQ(fields_of(rows[0])["context_ip"].s, "1.2.3.4");

    // Without a userId there is no users row; with users_table off neither.
    rows.clear();
    ASSERT_TRUE(
        b.build(view(record_kind::event, event_type::identify, json, {}, {}, "a"), rows, why));
    EXPECT_EQ(rows.size(), 1u);
    row_builder off({.users_table = false});
    rows.clear();
    ASSERT_TRUE(
        off.build(view(record_kind::event, event_type::identify, json, {}, "u9"), rows, why));
    EXPECT_EQ(rows.size(), 1u);
}

TEST(WarehouseRows, EachCallTypeHasItsTable) {
    row_builder b({});
    std::string why;
    struct tc {
        event_type t;
        const char* json;
        const char* table;
        const char* column;
        const char* value;
    } cases[] = {
        {event_type::page, R"({"name":"Home","properties":{"path":"/"}})", "pages", "path", "/"},
        {event_type::screen, R"({"name":"Cart","properties":{"n":1}})", "screens", "name", "Cart"},
        {event_type::group, R"({"groupId":"g1","traits":{"size":"big"}})", "groups", "group_id",
         "g1"},
        {event_type::alias, R"({"previousId":"old"})", "aliases", "previous_id", "old"},
    };
    for (const auto& c : cases) {
        std::vector<row> rows;
        const std::string_view name =
            c.t == event_type::page ? "Home" : (c.t == event_type::screen ? "Cart" : "");
        ASSERT_TRUE(b.build(view(record_kind::event, c.t, c.json, name, "u"), rows, why));
        ASSERT_EQ(rows.size(), 1u) << c.table;
        EXPECT_EQ(rows[0].table.name, c.table);
        EXPECT_EQ(fields_of(rows[0])[c.column].s, c.value) << c.table;
    }
}

TEST(WarehouseRows, EventNamedLikeAStandardTableGetsItsOwnName) {
    row_builder b({});
    std::vector<row> rows;
    std::string why;
    ASSERT_TRUE(b.build(
        view(record_kind::event, event_type::track, R"({"properties":{}})", "Users"), rows, why));
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[1].table.name, "users_event");
}

TEST(WarehouseRows, KeysWithTheSameColumnNameKeepTheSecondInExtra) {
    row_builder b({});
    std::vector<row> rows;
    std::string why;
    ASSERT_TRUE(b.build(view(record_kind::event, event_type::track,
                             R"({"properties":{"productId":"a","product_id":"b"}})", "E"),
                        rows, why));
    auto f = fields_of(rows[0]);
    EXPECT_EQ(f["product_id"].s, "a");
    ASSERT_EQ(rows[0].extra.size(), 1u);
    EXPECT_EQ(rows[0].extra[0].first, "product_id");
    EXPECT_EQ(rows[0].extra[0].second, "\"b\"");
}

TEST(WarehouseRows, DeepObjectsBecomeJsonText) {
    row_builder b({.max_depth = 2});
    std::vector<row> rows;
    std::string why;
    ASSERT_TRUE(b.build(view(record_kind::event, event_type::track,
                             R"({"properties":{"a":{"b":{"c":{"d":1}}}}})", "E"),
                        rows, why));
    auto f = fields_of(rows[0]);
    EXPECT_EQ(f["a_b"].s, R"({"c":{"d":1}})");
}

TEST(WarehouseRows, IdentityLinksAndQuarantineRecords) {
    row_builder b({});
    std::string why;
    std::vector<row> rows;
    const std::string link = R"({"type":"identity_link","messageId":"link-1",
        "from":{"type":"anonymousId","id":"a1"},"to":{"type":"userId","id":"u1"},
        "personId":"u1","personIdType":"userId","previousPersonIds":[{"type":"anonymousId","id":"a1"}],
        "source":"web","eventMessageId":"m1","receivedAt":"2024-05-01T00:00:00.000Z"})";
    ASSERT_TRUE(b.build(
        view(record_kind::identity_link, event_type::unknown, link, "identity_link", "u1", "a1"),
        rows, why));
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].table.name, "identity_links");
    auto f = fields_of(rows[0]);
    EXPECT_EQ(f["id"].s, "link-1");
    EXPECT_EQ(f["from_id"].s, "a1");
    EXPECT_EQ(f["to_type"].s, "userId");
    EXPECT_EQ(f["person_id"].s, "u1");
    EXPECT_EQ(f["previous_person_ids"].s, R"([{"type":"anonymousId","id":"a1"}])");
    EXPECT_EQ(f["user_id"].s, "u1");

    rows.clear();
    const std::string q =
        R"({"reason":"invalid_type","message":"bad","source":"web","route":"/v1/t",
        "index":2,"receivedAt":"2024-05-01T00:00:00.000Z",
        "event":{"messageId":"mq","userId":"uq","properties":{"x":1}},"violations":[{"k":1}]})";
    ASSERT_TRUE(b.build(view(record_kind::quarantine, event_type::unknown, q), rows, why));
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].table.name, "quarantine");
    f = fields_of(rows[0]);
    EXPECT_EQ(f["reason"].s, "invalid_type");
    EXPECT_EQ(f["message_id"].s, "mq");
    EXPECT_EQ(f["user_id"].s, "uq");
    EXPECT_EQ(f["event"].s, R"({"messageId":"mq","userId":"uq","properties":{"x":1}})");
    EXPECT_EQ(f["violations"].s, R"([{"k":1}])");
    EXPECT_EQ(f["index_"].i, 2);
    EXPECT_EQ(f.count("event_properties_x"), 0u);  // no column per quarantined key
}

TEST(WarehouseRows, UnreadableJsonIsReported) {
    row_builder b({});
    std::vector<row> rows;
    std::string why;
    EXPECT_FALSE(b.build(view(record_kind::event, event_type::track, "{nope", "E"), rows, why));
    EXPECT_FALSE(why.empty());
    EXPECT_TRUE(rows.empty());
}

TEST(WarehouseRows, DeletionIds) {
    row_builder b({});
    deletion_ids ids;
    std::string why;
    ASSERT_TRUE(b.deletion(view(record_kind::deletion, event_type::unknown,
                                R"({"userIds":["u1","u2"],"anonymousIds":["a"],"deviceIds":[]})"),
                           ids, why));
    EXPECT_EQ(ids.user_ids, (std::vector<std::string>{"u1", "u2"}));
    EXPECT_EQ(ids.anonymous_ids, (std::vector<std::string>{"a"}));
    EXPECT_TRUE(ids.device_ids.empty());
}

TEST(WarehouseTimestamps, ParsesIso8601DateTimesOnly) {
    std::int64_t us = 0;
    ASSERT_TRUE(parse_timestamp_us("1970-01-01T00:00:00Z", us));
    EXPECT_EQ(us, 0);
    ASSERT_TRUE(parse_timestamp_us("1970-01-01T00:00:01.000001Z", us));
    EXPECT_EQ(us, 1'000'001);
    ASSERT_TRUE(parse_timestamp_us("1970-01-01 01:00:00+01:00", us));
    EXPECT_EQ(us, 0);
    ASSERT_TRUE(parse_timestamp_us("1970-01-01T00:00:00-0130", us));
    EXPECT_EQ(us, 5'400'000'000);
    ASSERT_TRUE(parse_timestamp_us("2024-02-29T23:59", us));  // no seconds, no offset = UTC
    ASSERT_TRUE(parse_timestamp_us("0001-01-01T00:00:00Z", us));
    ASSERT_TRUE(parse_timestamp_us("9999-12-31T23:59:59.999999999Z", us));
    for (const char* bad :
         {"2024-05-01", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-05-01T24:00:00Z",
          "2024-05-01T12:00:00X", "0000-12-31T00:00:00Z", "0001-01-01T00:00:00+01:00",
          "9999-12-31T23:00:00-01:00", "2024-05-01T12:00:00.Z", "12:00", "tomorrow",
          "2024-05-01T12:00:00Z trailing", "2024-05-01T12:00:00.1234567890Z"}) {
        EXPECT_FALSE(parse_timestamp_us(bad, us)) << bad;
    }
}

TEST(WarehouseTypes, JoinFollowsTheLattice) {
    using ct = column_type;
    EXPECT_EQ(join_types(ct::boolean, ct::integer), ct::integer);
    EXPECT_EQ(join_types(ct::integer, ct::floating), ct::floating);
    EXPECT_EQ(join_types(ct::boolean, ct::floating), ct::floating);
    EXPECT_EQ(join_types(ct::floating, ct::text), ct::text);
    EXPECT_EQ(join_types(ct::timestamp, ct::timestamp), ct::timestamp);
    EXPECT_EQ(join_types(ct::timestamp, ct::integer), ct::text);
    EXPECT_EQ(join_types(ct::boolean, ct::timestamp), ct::text);
}

TEST(WarehouseTypes, ValuesFitColumnsAtOrAboveTheirType) {
    using ct = column_type;
    cell out;
    std::string why;
    EXPECT_TRUE(fit_value(cell::of_bool(true), ct::integer, true, out, why));
    EXPECT_EQ(out.i, 1);
    EXPECT_TRUE(fit_value(cell::of_int(3), ct::floating, true, out, why));
    EXPECT_EQ(out.f, 3.0);
    EXPECT_TRUE(fit_value(cell::of_float(4.0), ct::integer, true, out, why));  // integral
    EXPECT_EQ(out.i, 4);
    EXPECT_FALSE(fit_value(cell::of_float(4.5), ct::integer, true, out, why));
    EXPECT_NE(why.find("float value does not fit the integer column"), std::string::npos) << why;
    EXPECT_FALSE(fit_value(cell::of_float(1e300), ct::integer, true, out, why));
    EXPECT_FALSE(fit_value(cell::of_text("x"), ct::floating, true, out, why));
    EXPECT_FALSE(fit_value(cell::of_int(1), ct::boolean, true, out, why));
    EXPECT_FALSE(fit_value(cell::of_text("2024"), ct::timestamp, true, out, why));
    cell ts = cell::of_timestamp_us(0);
    ts.s = "1970-01-01T00:00:00+00:00";
    EXPECT_TRUE(fit_value(ts, ct::text, true, out, why));
    EXPECT_EQ(out.s, "1970-01-01T00:00:00+00:00");  // text keeps what was sent
    EXPECT_TRUE(fit_value(cell::of_float(0.1), ct::text, true, out, why));
    EXPECT_EQ(out.s, "0.1");
    EXPECT_TRUE(fit_value(cell::of_bool(false), ct::text, true, out, why));
    EXPECT_EQ(out.s, "false");
    const std::string nul("a\0b", 3);
    EXPECT_TRUE(fit_value(cell::of_text(nul), ct::text, true, out, why));
    EXPECT_FALSE(fit_value(cell::of_text(nul), ct::text, false, out, why));
    EXPECT_NE(why.find("U+0000"), std::string::npos);
}

}  // namespace
}  // namespace switchyard::warehouse
