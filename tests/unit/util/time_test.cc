#include "util/time.h"

#include "switchyard/event.h"
#include "util/ids.h"
#include "util/json.h"

#include <gtest/gtest.h>

namespace switchyard::util {
namespace {

TEST(Iso8601, ParsesCommonForms) {
    EXPECT_EQ(parse_iso8601_ms("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_iso8601_ms("1970-01-01T00:00:01.5Z"), 1500);
    EXPECT_EQ(parse_iso8601_ms("1970-01-01T00:00:00.123456Z"), 123);
    EXPECT_EQ(parse_iso8601_ms("1970-01-01T01:00:00+01:00"), 0);
    EXPECT_EQ(parse_iso8601_ms("1970-01-01T00:00:00-0130"), 5'400'000);
    EXPECT_EQ(parse_iso8601_ms("2024-02-29T12:00:00"), 1'709'208'000'000);
    EXPECT_FALSE(parse_iso8601_ms("2024-13-01T00:00:00Z"));
    EXPECT_FALSE(parse_iso8601_ms("yesterday"));
    EXPECT_FALSE(parse_iso8601_ms("2024-01-01T00:00:00Zjunk"));
    EXPECT_FALSE(parse_iso8601_ms("2024-01-01"));
}

TEST(Iso8601, FormatRoundTrips) {
    for (std::int64_t ms : {0LL, 1LL, 999LL, 1'700'000'000'123LL, 4'102'444'799'999LL}) {
        auto s = format_iso8601_ms(ms);
        EXPECT_EQ(parse_iso8601_ms(s), ms) << s;
    }
    EXPECT_EQ(format_iso8601_ms(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
}

TEST(Ids, Base64RoundTripAndUrlSafe) {
    std::string out;
    EXPECT_TRUE(base64_decode(base64_encode("writeKey:"), out));
    EXPECT_EQ(out, "writeKey:");
    EXPECT_TRUE(base64_decode("d3JpdGVLZXk", out));  // no padding
    EXPECT_EQ(out, "writeKey");
    EXPECT_FALSE(base64_decode("***", out));
}

TEST(Json, EscapesControlAndQuotes) {
    std::string out;
    append_json_string(out, "a\"b\\c\n\x01");
    EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
}

TEST(EventCodec, RoundTrip) {
    event e;
    e.header.kind = record_kind::event;
    e.header.type = event_type::track;
    e.header.received_at_ms = 42;
    e.header.source = "web";
    e.header.message_id = "m";
    e.header.user_id = "u";
    e.header.event_name = "Signed Up";
    e.json = R"({"type":"track"})";
    std::string payload;
    encode_event(e, payload);
    auto v = decode_event(payload);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->type, event_type::track);
    EXPECT_EQ(v->received_at_ms, 42);
    EXPECT_EQ(v->source, "web");
    EXPECT_EQ(v->message_id, "m");
    EXPECT_EQ(v->user_id, "u");
    EXPECT_EQ(v->anonymous_id, "");
    EXPECT_EQ(v->event_name, "Signed Up");
    EXPECT_EQ(v->json, e.json);
    EXPECT_FALSE(decode_event(payload.substr(0, 10)));
    EXPECT_FALSE(decode_event(""));
}

}  // namespace
}  // namespace switchyard::util
