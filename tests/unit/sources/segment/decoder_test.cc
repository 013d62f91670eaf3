#include "sources/segment/decoder.h"

#include "util/time.h"

#include <gtest/gtest.h>
#include <simdjson.h>

namespace switchyard::sources::segment {
namespace {

constexpr std::int64_t received = 1'700'000'000'000;  // 2023-11-14T22:13:20.000Z

request_info single(event_type t) {
    request_info i;
    i.route_type = t;
    i.source = "web";
    i.received_at_ms = received;
    i.client_ip = "203.0.113.7";
    return i;
}

request_info batch_info() {
    request_info i = single(event_type::unknown);
    i.batch = true;
    return i;
}

// Parses a stored event's JSON for assertions.
simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& json) {
    simdjson::dom::element e;
    EXPECT_EQ(p.parse(json).get(e), simdjson::SUCCESS) << json;
    return e;
}

std::string str(simdjson::dom::element e, std::string_view pointer) {
    std::string_view s;
    if (e.at_pointer(pointer).get(s) != simdjson::SUCCESS) return "<missing>";
    return std::string(s);
}

TEST(SegmentDecoder, TrackKeepsClientFieldsAndAddsServerFields) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"userId":"u1","event":"Order Completed","messageId":"m-1",
        "properties":{"total":9.5,"items":[1,2]},"context":{"library":{"name":"x"}},
        "timestamp":"2023-11-14T22:00:00.000Z","sentAt":"2023-11-14T22:00:10.000Z",
        "writeKey":"secret"})",
                         false));
    decoded out;
    d.decode(single(event_type::track), out);
    ASSERT_EQ(out.events.size(), 1u);
    ASSERT_TRUE(out.rejected.empty());
    const auto& ev = out.events[0];
    EXPECT_EQ(ev.header.type, event_type::track);
    EXPECT_EQ(ev.header.message_id, "m-1");
    EXPECT_EQ(ev.header.user_id, "u1");
    EXPECT_EQ(ev.header.event_name, "Order Completed");
    EXPECT_EQ(ev.header.source, "web");
    simdjson::dom::parser p;
    auto e = parse(p, ev.json);
    EXPECT_EQ(str(e, "/type"), "track");
    EXPECT_EQ(str(e, "/context/library/name"), "x");
    EXPECT_EQ(str(e, "/context/ip"), "203.0.113.7");
    EXPECT_EQ(str(e, "/originalTimestamp"), "2023-11-14T22:00:00.000Z");
    EXPECT_EQ(str(e, "/sentAt"), "2023-11-14T22:00:10.000Z");
    // timestamp = receivedAt − (sentAt − originalTimestamp) = receivedAt − 10 s
    EXPECT_EQ(str(e, "/timestamp"), util::format_iso8601_ms(received - 10'000));
    EXPECT_EQ(str(e, "/receivedAt"), util::format_iso8601_ms(received));
    double total = 0;
    EXPECT_EQ(e.at_pointer("/properties/total").get(total), simdjson::SUCCESS);
    EXPECT_EQ(total, 9.5);
    simdjson::dom::element wk;
    EXPECT_NE(e.at_pointer("/writeKey").get(wk), simdjson::SUCCESS)
        << "writeKey must not be stored";
}

// The decoder records where it wrote `context`, so later stages (plan, identity) add their
// members without re-reading the whole event.
TEST(SegmentDecoder, RecordsWhereContextIs) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"batch":[
        {"type":"track","event":"E","userId":"u","properties":{"context":{"x":"}"}},
         "context":{"page":{"title":"{ }"}}},
        {"type":"identify","userId":"u"}],"context":{"locale":"en"}})",
                         true));
    decoded out;
    d.decode(batch_info(), out);
    ASSERT_EQ(out.events.size(), 2u);
    simdjson::dom::parser p;
    for (const auto& ev : out.events) {
        ASSERT_NE(ev.context_close, 0u) << ev.json;
        const std::string_view j = ev.json;
        ASSERT_EQ(j.substr(ev.context_open - 10, 11), "\"context\":{") << ev.json;
        ASSERT_EQ(j[ev.context_close], '}') << ev.json;
        // The span is exactly the stored context object.
        std::string_view ctx;
        auto e = parse(p, ev.json);
        ASSERT_EQ(e.at_key("context").get_object().error(), simdjson::SUCCESS);
        std::string minified = simdjson::minify(e.at_key("context"));
        ctx = j.substr(ev.context_open, ev.context_close - ev.context_open + 1);
        EXPECT_EQ(ctx, minified);
        EXPECT_EQ(ev.context_lacks,
                  context_lacks_tracking_plan | context_lacks_violations | context_lacks_identity);
    }

    // A client that sends one of the members admission adds: that bit is clear.
    ASSERT_FALSE(d.parse(R"({"batch":[{"type":"track","event":"E","userId":"u",
        "context":{"identity":{"person":"x"}}}],"context":{"trackingPlan":{}}})",
                         true));
    out.clear();
    d.decode(batch_info(), out);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].context_lacks, context_lacks_violations);
}

TEST(SegmentDecoder, TimestampWithoutSentAtIsTrusted) {
    decoder d({});
    ASSERT_FALSE(d.parse(
        R"({"anonymousId":"a","event":"E","timestamp":"2020-01-01T00:00:00+02:00"})", false));
    decoded out;
    d.decode(single(event_type::track), out);
    ASSERT_EQ(out.events.size(), 1u);
    simdjson::dom::parser p;
    EXPECT_EQ(str(parse(p, out.events[0].json), "/timestamp"), "2019-12-31T22:00:00.000Z");
}

TEST(SegmentDecoder, NoClientTimeMeansReceivedAt) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"anonymousId":"a"})", false));
    decoded out;
    d.decode(single(event_type::identify), out);
    ASSERT_EQ(out.events.size(), 1u);
    simdjson::dom::parser p;
    EXPECT_EQ(str(parse(p, out.events[0].json), "/timestamp"), util::format_iso8601_ms(received));
}

TEST(SegmentDecoder, GeneratesUuidV4MessageId) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"userId":"u"})", false));
    decoded out;
    d.decode(single(event_type::identify), out);
    ASSERT_EQ(out.events.size(), 1u);
    const auto& id = out.events[0].header.message_id;
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4');
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b');
}

TEST(SegmentDecoder, RouteTypeWinsOverBodyType) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"type":"identify","userId":"u","name":"Home"})", false));
    decoded out;
    d.decode(single(event_type::page), out);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].header.type, event_type::page);
    EXPECT_EQ(out.events[0].header.event_name, "Home");
}

struct rejection_case {
    const char* body;
    event_type route;
    const char* code;
};

class SegmentDecoderRejects : public ::testing::TestWithParam<rejection_case> {};

TEST_P(SegmentDecoderRejects, WithReason) {
    const auto& c = GetParam();
    decoder d({});
    ASSERT_FALSE(d.parse(c.body, false));
    decoded out;
    d.decode(single(c.route), out);
    EXPECT_TRUE(out.events.empty());
    ASSERT_EQ(out.rejected.size(), 1u);
    EXPECT_EQ(out.rejected[0].code, c.code);
    EXPECT_FALSE(out.rejected[0].message.empty());
    EXPECT_FALSE(out.rejected[0].raw.empty());
}

INSTANTIATE_TEST_SUITE_P(
    PerSpec, SegmentDecoderRejects,
    ::testing::Values(
        rejection_case{R"({"event":"E"})", event_type::track, "missing_id"},
        rejection_case{R"({"userId":"","anonymousId":null,"event":"E"})", event_type::track,
                       "missing_id"},
        rejection_case{R"({"userId":{"a":1},"event":"E"})", event_type::track, "invalid_user_id"},
        rejection_case{R"({"anonymousId":true})", event_type::identify, "invalid_anonymous_id"},
        rejection_case{R"({"userId":"u"})", event_type::track, "missing_event"},
        rejection_case{R"({"userId":"u","event":5})", event_type::track, "invalid_event"},
        rejection_case{R"({"userId":"u"})", event_type::alias, "missing_previous_id"},
        rejection_case{R"({"userId":"u"})", event_type::group, "missing_group_id"},
        rejection_case{R"({"userId":"u","messageId":7})", event_type::identify,
                       "invalid_message_id"},
        rejection_case{R"({"userId":"u","context":"x"})", event_type::identify, "invalid_context"},
        rejection_case{R"({"userId":"u","integrations":[1]})", event_type::identify,
                       "invalid_integrations"}));

TEST(SegmentDecoder, MessageIdOver100CharsIsRejected) {
    decoder d({});
    std::string body = R"({"userId":"u","messageId":")" + std::string(101, 'x') + R"("})";
    ASSERT_FALSE(d.parse(body, false));
    decoded out;
    d.decode(single(event_type::identify), out);
    ASSERT_EQ(out.rejected.size(), 1u);
    EXPECT_EQ(out.rejected[0].code, "message_id_too_long");
}

TEST(SegmentDecoder, BatchAcceptsValidAndRejectsInvalidWithIndexes) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"batch":[
        {"type":"track","userId":"u","event":"A"},
        {"type":"track","event":"B"},
        {"type":"bogus","userId":"u"},
        7,
        {"type":"alias","userId":"u","previousId":"p"}],
        "context":{"library":{"name":"lib"},"ip":"198.51.100.1"},"integrations":{"All":false},
        "sentAt":"2023-11-14T22:13:30.000Z"})",
                         true));
    decoded out;
    d.decode(batch_info(), out);
    ASSERT_EQ(out.events.size(), 2u);
    ASSERT_EQ(out.rejected.size(), 3u);
    EXPECT_EQ(out.rejected[0].index, 1u);
    EXPECT_EQ(out.rejected[0].code, "missing_id");
    EXPECT_EQ(out.rejected[1].index, 2u);
    EXPECT_EQ(out.rejected[1].code, "invalid_type");
    EXPECT_EQ(out.rejected[2].index, 3u);
    EXPECT_EQ(out.rejected[2].code, "not_an_object");
    simdjson::dom::parser p;
    auto e = parse(p, out.events[0].json);
    EXPECT_EQ(str(e, "/context/library/name"), "lib");
    // A batch-level context.ip wins over the peer address: the client said where it was.
    EXPECT_EQ(str(e, "/context/ip"), "198.51.100.1");
    bool all = true;
    EXPECT_EQ(e.at_pointer("/integrations/All").get(all), simdjson::SUCCESS);
    EXPECT_FALSE(all);
    EXPECT_EQ(str(e, "/sentAt"), "2023-11-14T22:13:30.000Z");
}

TEST(SegmentDecoder, EventContextWinsOverBatchContext) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"batch":[{"type":"identify","userId":"u","context":{"locale":"fr"}}],
        "context":{"locale":"en","timezone":"UTC"}})",
                         true));
    decoded out;
    d.decode(batch_info(), out);
    ASSERT_EQ(out.events.size(), 1u);
    simdjson::dom::parser p;
    auto e = parse(p, out.events[0].json);
    EXPECT_EQ(str(e, "/context/locale"), "fr");
    EXPECT_EQ(str(e, "/context/timezone"), "UTC");
}

TEST(SegmentDecoder, BodyLevelErrors) {
    decoder d({});
    EXPECT_EQ(d.parse("{not json", false)->code, "invalid_json");
    EXPECT_EQ(d.parse("[1,2]", false)->code, "invalid_body");
    EXPECT_EQ(d.parse(R"({"batch":{}})", true)->code, "invalid_batch");
    EXPECT_EQ(d.parse(R"({"batch":[]})", true)->code, "empty_batch");
    EXPECT_EQ(d.parse("\"\xff\xfe\"", false)->code, "invalid_json");  // invalid UTF-8
    std::string deep(10000, '[');
    deep += std::string(10000, ']');
    EXPECT_EQ(d.parse(deep, true)->code, "invalid_json");
}

TEST(SegmentDecoder, SizeLimits) {
    limits l;
    l.max_event_bytes = 100;
    l.max_batch_bytes = 300;
    l.max_batch_events = 2;
    decoder d(l);
    std::string big = R"({"userId":"u","traits":{"x":")" + std::string(200, 'a') + R"("}})";
    EXPECT_EQ(d.parse(big, false)->code, "event_too_large");
    std::string bigbatch =
        R"({"batch":[{"type":"identify","userId":")" + std::string(400, 'a') + R"("}]})";
    EXPECT_EQ(d.parse(bigbatch, true)->code, "batch_too_large");
    EXPECT_EQ(d.parse(R"({"batch":[{},{},{}]})", true)->code, "too_many_events");
    // An event inside a batch over the per-event limit is rejected alone.
    ASSERT_FALSE(d.parse(R"({"batch":[{"type":"identify","userId":"u","traits":{"x":")" +
                             std::string(120, 'a') + R"("}},{"type":"identify","userId":"v"}]})",
                         true));
    decoded out;
    d.decode(batch_info(), out);
    ASSERT_EQ(out.rejected.size(), 1u);
    EXPECT_EQ(out.rejected[0].code, "event_too_large");
    EXPECT_EQ(out.events.size(), 1u);
}

TEST(SegmentDecoder, WriteKeyFromBodyOrFirstEvent) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"writeKey":"k1","userId":"u"})", false));
    EXPECT_EQ(d.body_write_key(), "k1");
    ASSERT_FALSE(d.parse(R"({"batch":[{"type":"identify","userId":"u","writeKey":"k2"}]})", true));
    EXPECT_EQ(d.body_write_key(), "k2");
    ASSERT_FALSE(d.parse(R"({"batch":[{"type":"identify","userId":"u"}]})", true));
    EXPECT_EQ(d.body_write_key(), "");
}

TEST(SegmentDecoder, NumericUserIdIsAccepted) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"userId":12345})", false));
    decoded out;
    d.decode(single(event_type::identify), out);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].header.user_id, "12345");
}

TEST(SegmentDecoder, EscapesKeysWhenReserializing) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"userId":"u","we\"ird\n":"v\u0001"})", false));
    decoded out;
    d.decode(single(event_type::identify), out);
    ASSERT_EQ(out.events.size(), 1u);
    simdjson::dom::parser p;
    auto e = parse(p, out.events[0].json);
    std::string_view v;
    ASSERT_EQ(e["we\"ird\n"].get(v), simdjson::SUCCESS);
    EXPECT_EQ(v, "v\x01");
}

}  // namespace
}  // namespace switchyard::sources::segment

namespace switchyard::sources::segment {
namespace {

TEST(SegmentDecoder, ExplicitTimestampBesideOriginalTimestampIsKept) {
    // RudderStack SDKs send originalTimestamp (call time) and, when the caller passes one,
    // timestamp.
    decoder d({});
    ASSERT_FALSE(
        d.parse(R"({"userId":"u","event":"E","originalTimestamp":"2023-11-14T22:13:00.000Z",
        "timestamp":"2023-05-06T07:08:09.010Z","sentAt":"2023-11-14T22:13:05.000Z"})",
                false));
    decoded out;
    d.decode(single(event_type::track), out);
    ASSERT_EQ(out.events.size(), 1u);
    simdjson::dom::parser p;
    auto e = parse(p, out.events[0].json);
    EXPECT_EQ(str(e, "/timestamp"), "2023-05-06T07:08:09.010Z");
    EXPECT_EQ(str(e, "/originalTimestamp"), "2023-11-14T22:13:00.000Z");
}

}  // namespace
}  // namespace switchyard::sources::segment

namespace switchyard::sources::segment {
namespace {

TEST(SegmentDecoder, BatchEventWithAnotherWriteKeyIsRejected) {
    decoder d({});
    ASSERT_FALSE(d.parse(R"({"batch":[{"type":"identify","userId":"u","writeKey":"k1"},
        {"type":"identify","userId":"v","writeKey":"k2"},{"type":"identify","userId":"w"}]})",
                         true));
    decoded out;
    request_info info = batch_info();
    info.write_key = "k1";
    d.decode(info, out);
    ASSERT_EQ(out.events.size(), 2u);
    ASSERT_EQ(out.rejected.size(), 1u);
    EXPECT_EQ(out.rejected[0].index, 1u);
    EXPECT_EQ(out.rejected[0].code, "write_key_mismatch");
}

}  // namespace
}  // namespace switchyard::sources::segment
