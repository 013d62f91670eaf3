#include "route/route.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace switchyard::route {
namespace {

// Owns the strings an event_view points to.
struct test_event {
    event_type type = event_type::track;
    std::string source = "web";
    std::string message_id = "m-1";
    std::string user_id = "u-1";
    std::string anonymous_id = "a-1";
    std::string event_name = "Order Completed";
    std::string json;

    event_view view() const {
        event_view v;
        v.type = type;
        v.source = source;
        v.message_id = message_id;
        v.user_id = user_id;
        v.anonymous_id = anonymous_id;
        v.event_name = event_name;
        v.json = json;
        return v;
    }
};

const char* const base_json =
    R"({"type":"track","messageId":"m-1","userId":"u-1","event":"Order Completed",)"
    R"("properties":{"plan":"pro","price":42.5,"qty":3,"big":18446744073709551615,"vip":true,)"
    R"("tags":["a"],"nothing":null,"email":"a@b.c"},)"
    R"("context":{"ip":"203.0.113.77","traits":{"email":"a@b.c"}},"integrations":{}})";

test_event make_event(std::string json = base_json) {
    test_event e;
    e.json = std::move(json);
    return e;
}

// Reads `yaml` as one destination entry, the way the core does (it also finishes the reader).
struct parsed {
    config::errors errs{"test.yaml"};
    rules r;
};

parsed read(const std::string& yaml, const std::string& name = "Webhook") {
    parsed p;
    YAML::Node n = YAML::Load(yaml);
    config::map_reader dest(n, "destinations[0]", p.errs);
    read_rules(dest, name, p.r);
    dest.finish();
    return p;
}

router make_router(const std::string& yaml, const std::string& name = "Webhook") {
    auto p = read(yaml, name);
    for (const auto& e : p.errs.list()) ADD_FAILURE() << e;
    return router(std::move(p.r));
}

verdict route_one(const std::string& yaml, const test_event& e) {
    router r = make_router(yaml);
    std::string out;
    return r.route(e.view(), out);
}

// ---------------------------------------------------------------------------------------------

TEST(RouteGlob, MatchesStarAndQuestionMark) {
    struct row {
        const char* pattern;
        const char* input;
        bool match;
    };
    const row rows[] = {
        {"Order Completed", "Order Completed", true},
        {"Order Completed", "order completed", false},
        {"Order *", "Order Completed", true},
        {"Order *", "Order ", true},
        {"Order *", "Orde", false},
        {"*", "", true},
        {"*ed", "Signed Up", false},
        {"*Up", "Signed Up", true},
        {"S?gned Up", "Signed Up", true},
        {"S?gned Up", "Sgned Up", false},
        {"*a*b*c*", "xxaxxbxxcxx", true},
        {"*a*b*c", "xxaxxbxxcxx", false},
        {"a**b", "ab", true},
        {"???", "abcd", false},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(glob(r.pattern).matches(r.input), r.match) << r.pattern << " vs " << r.input;
    }
}

TEST(RouteVerdict, NamesAreStableMetricLabels) {
    EXPECT_EQ(to_string(verdict::deliver), "deliver");
    EXPECT_EQ(to_string(verdict::excluded), "excluded");
    EXPECT_EQ(to_string(verdict::sampled_out), "sampled_out");
    EXPECT_EQ(to_string(verdict::integration_disabled), "integration_disabled");
    EXPECT_EQ(to_string(verdict::no_consent), "no_consent");
    EXPECT_EQ(to_string(verdict::malformed), "malformed");
}

TEST(RouteMatcher, EachFieldAndOp) {
    struct row {
        const char* matcher;  // one include entry, flow YAML
        bool delivered;
    };
    const row rows[] = {
        {"{}", true},
        {"{type: [track]}", true},
        {"{type: [page, screen]}", false},
        {"{event: ['Order Completed']}", true},
        {"{event: ['Order *']}", true},
        {"{event: ['Signed Up', 'Order ?ompleted']}", true},
        {"{event: ['order *']}", false},
        {"{source: [web]}", true},
        {"{source: [ios, android]}", false},
        {"{type: [track], source: [ios]}", false},  // fields AND together
        {"{where: [{path: properties.plan, op: eq, value: pro}]}", true},
        {"{where: [{path: properties.plan, op: eq, value: free}]}", false},
        {"{where: [{path: properties.qty, op: eq, value: 3}]}", true},
        {"{where: [{path: properties.qty, op: eq, value: 3.0}]}", true},
        {"{where: [{path: properties.price, op: eq, value: 42.5}]}", true},
        {"{where: [{path: properties.big, op: eq, value: 18446744073709551615}]}", true},
        {"{where: [{path: properties.vip, op: eq, value: true}]}", true},
        {"{where: [{path: properties.vip, op: eq, value: false}]}", false},
        {"{where: [{path: properties.tags, op: eq, value: a}]}", false},
        {"{where: [{path: properties.plan, op: ne, value: free}]}", true},
        {"{where: [{path: properties.plan, op: ne, value: pro}]}", false},
        {"{where: [{path: properties.missing, op: ne, value: pro}]}", true},
        {"{where: [{path: properties.plan, op: in, value: [free, pro]}]}", true},
        {"{where: [{path: properties.plan, op: in, value: [free, team]}]}", false},
        {"{where: [{path: properties.qty, op: in, value: [1, 3]}]}", true},
        {"{where: [{path: properties.plan, op: exists}]}", true},
        {"{where: [{path: properties.nothing, op: exists}]}", false},
        {"{where: [{path: properties.missing, op: exists}]}", false},
        {"{where: [{path: properties.plan.deeper, op: exists}]}", false},
        {"{where: [{path: properties.missing, op: not_exists}]}", true},
        {"{where: [{path: properties.nothing, op: not_exists}]}", true},
        {"{where: [{path: properties.plan, op: not_exists}]}", false},
        {"{where: [{path: properties.price, op: gt, value: 42}]}", true},
        {"{where: [{path: properties.price, op: gt, value: 42.5}]}", false},
        {"{where: [{path: properties.price, op: gte, value: 42.5}]}", true},
        {"{where: [{path: properties.qty, op: lt, value: 3}]}", false},
        {"{where: [{path: properties.qty, op: lte, value: 3}]}", true},
        {"{where: [{path: properties.qty, op: lt, value: -1}]}", false},
        {"{where: [{path: properties.plan, op: gt, value: 1}]}", false},  // not a number
        {"{where: [{path: properties.missing, op: lt, value: 1}]}", false},
        {"{where: [{path: properties.plan, op: matches, value: 'p*'}]}", true},
        {"{where: [{path: properties.plan, op: matches, value: 'f*'}]}", false},
        {"{where: [{path: properties.qty, op: matches, value: '*'}]}", false},
        {"{where: [{path: context.traits.email, op: matches, value: '*@b.c'}]}", true},
        {"{where: [{path: properties.plan, op: eq, value: pro}, "
         "{path: properties.qty, op: gt, value: 5}]}",
         false},  // conditions AND together
    };
    const test_event e = make_event();
    for (const auto& r : rows) {
        const std::string yaml = std::string("include: [") + r.matcher + "]";
        EXPECT_EQ(route_one(yaml, e), r.delivered ? verdict::deliver : verdict::excluded) << yaml;
    }
}

TEST(RouteMatcher, EventWithoutNameNeverMatchesAnEventList) {
    test_event e = make_event();
    e.type = event_type::identify;
    e.event_name.clear();
    EXPECT_EQ(route_one("include: [{event: ['*']}]", e), verdict::excluded);
    EXPECT_EQ(route_one("include: [{type: [identify]}]", e), verdict::deliver);
}

TEST(RouteMatcher, IncludeAndExcludePrecedence) {
    struct row {
        const char* yaml;
        verdict expected;
    };
    const row rows[] = {
        {"include: [{type: [track]}]", verdict::deliver},
        {"include: [{type: [page]}, {event: ['Order *']}]", verdict::deliver},  // any matcher
        {"include: [{type: [page]}]", verdict::excluded},
        {"exclude: [{type: [page]}]", verdict::deliver},
        {"exclude: [{event: ['Order *']}]", verdict::excluded},
        {"include: [{type: [track]}]\nexclude: [{source: [web]}]", verdict::excluded},
        {"include: [{type: [track]}]\nexclude: [{source: [ios]}]", verdict::deliver},
    };
    const test_event e = make_event();
    for (const auto& r : rows) EXPECT_EQ(route_one(r.yaml, e), r.expected) << r.yaml;
}

TEST(RouteMatcher, ParsesOnlyWhenAConditionNeedsTheJson) {
    // Header-only rules never look at the JSON, so even bytes that do not parse pass.
    test_event e = make_event("not json");
    EXPECT_EQ(route_one("include: [{type: [track], source: [web]}]\nintegration: ''", e),
              verdict::deliver);
    EXPECT_EQ(route_one("include: [{where: [{path: a, op: exists}]}]", e), verdict::malformed);
    EXPECT_EQ(route_one("fields: {drop: [a]}\nintegration: ''", e), verdict::malformed);
}

// ---------------------------------------------------------------------------------------------

TEST(RouteSample, RateZeroAndOne) {
    test_event e = make_event();
    for (int i = 0; i < 100; ++i) {
        e.user_id = "user-" + std::to_string(i);
        EXPECT_EQ(route_one("sample: {rate: 0}", e), verdict::sampled_out);
        EXPECT_EQ(route_one("sample: {rate: 1}", e), verdict::deliver);
    }
}

TEST(RouteSample, SameIdSameVerdictAndRateFraction) {
    router r = make_router("sample: {rate: 0.25}");
    router again = make_router("sample: {rate: 0.25}");  // "another node", same verdicts
    test_event e = make_event();
    std::string out;
    int in = 0;
    constexpr int n = 10000;
    for (int i = 0; i < n; ++i) {
        e.user_id = "user-" + std::to_string(i);
        e.message_id = "m-" + std::to_string(i);
        const verdict v = r.route(e.view(), out);
        EXPECT_EQ(r.route(e.view(), out), v);
        EXPECT_EQ(again.route(e.view(), out), v);
        e.message_id = "other";  // sampled by user, not by message
        EXPECT_EQ(r.route(e.view(), out), v);
        if (v == verdict::deliver) ++in;
    }
    EXPECT_NEAR(static_cast<double>(in) / n, 0.25, 0.02);
}

TEST(RouteSample, ChoosesTheConfiguredId) {
    // The hash is part of the contract (stable across releases): pin a few values.
    EXPECT_EQ(sample_hash(""), sample_hash(""));
    EXPECT_NE(sample_hash("a"), sample_hash("b"));

    // Find ids in and out of a 50% sample, then check which header field each mode reads.
    std::string in_id, out_id;
    const std::uint64_t half = std::uint64_t{1} << 63;
    for (int i = 0; in_id.empty() || out_id.empty(); ++i) {
        std::string id = "id-" + std::to_string(i);
        (sample_hash(id) < half ? in_id : out_id) = id;
    }
    struct row {
        const char* by;
        const char* user;
        const char* anon;
        const char* message;
        bool delivered;
    };
    const row rows[] = {
        {"userId", in_id.c_str(), out_id.c_str(), out_id.c_str(), true},
        {"userId", "", in_id.c_str(), out_id.c_str(), true},  // falls back to anonymousId
        {"userId", "", "", in_id.c_str(), true},              // then to messageId
        {"userId", out_id.c_str(), in_id.c_str(), in_id.c_str(), false},
        {"anonymousId", out_id.c_str(), in_id.c_str(), out_id.c_str(), true},
        {"anonymousId", in_id.c_str(), "", out_id.c_str(), false},
        {"messageId", out_id.c_str(), out_id.c_str(), in_id.c_str(), true},
        {"messageId", in_id.c_str(), in_id.c_str(), out_id.c_str(), false},
    };
    for (const auto& r : rows) {
        test_event e = make_event();
        e.user_id = r.user;
        e.anonymous_id = r.anon;
        e.message_id = r.message;
        EXPECT_EQ(route_one(std::string("sample: {rate: 0.5, by: ") + r.by + "}", e),
                  r.delivered ? verdict::deliver : verdict::sampled_out)
            << r.by << " " << r.user << "/" << r.anon << "/" << r.message;
    }
}

// ---------------------------------------------------------------------------------------------

TEST(RouteIntegrations, SegmentPrecedence) {
    struct row {
        const char* integrations;  // the event's integrations object
        verdict expected;
    };
    const row rows[] = {
        {"{}", verdict::deliver},
        {R"({"All":true})", verdict::deliver},
        {R"({"All":false})", verdict::integration_disabled},
        {R"({"All":false,"Webhook":true})", verdict::deliver},
        {R"({"All":true,"Webhook":false})", verdict::integration_disabled},
        {R"({"Webhook":false})", verdict::integration_disabled},
        {R"({"All":false,"Webhook":{"apiKey":"x"}})", verdict::deliver},
        {R"({"Webhook":{}})", verdict::deliver},
        {R"({"All":false,"webhook":true})", verdict::integration_disabled},  // case-sensitive
        {R"({"webhook":false})", verdict::deliver},
        {R"({"Other":false})", verdict::deliver},
        {R"({"Webhooks":false})", verdict::deliver},
        {R"({"Web\u0068ook":false})", verdict::integration_disabled},  // escaped key
        {R"({"\u0041ll":false})", verdict::integration_disabled},
    };
    for (const auto& r : rows) {
        // With decoy keys elsewhere the JSON is always parsed; without, the literal pre-scan
        // decides whether to parse. Both must agree.
        for (const char* decoy : {"", R"("properties":{"All":false,"Webhook":false},)"}) {
            test_event e = make_event(std::string(R"({"type":"track",)") + decoy +
                                      R"("integrations":)" + r.integrations + "}");
            EXPECT_EQ(route_one("{}", e), r.expected) << e.json;
        }
    }
    // Without an integrations object at all.
    EXPECT_EQ(route_one("{}", make_event(R"({"type":"track"})")), verdict::deliver);
}

TEST(RouteIntegrations, KeyIsTheDestinationNameUnlessConfigured) {
    const test_event e = make_event(R"({"integrations":{"All":false,"Custom Name":true}})");
    EXPECT_EQ(route_one("{}", e), verdict::integration_disabled);
    EXPECT_EQ(route_one("integration: Custom Name", e), verdict::deliver);
    EXPECT_EQ(route_one("integration: ''", e), verdict::deliver);  // ignored
    EXPECT_FALSE(make_router("{}").passthrough());
    EXPECT_TRUE(make_router("integration: ''").passthrough());
}

// ---------------------------------------------------------------------------------------------

TEST(RouteConsent, CategoryPreferences) {
    struct row {
        const char* config;
        const char* context;  // the event's context object
        verdict expected;
    };
    const char* const required = "consent: {categories: [analytics, ads]}";
    const char* const deny = "consent: {categories: [analytics], missing: deny}";
    const row rows[] = {
        {required, R"({"consent":{"categoryPreferences":{"analytics":true,"ads":true}}})",
         verdict::deliver},
        {required, R"({"consent":{"categoryPreferences":{"analytics":true,"ads":false}}})",
         verdict::no_consent},
        {required, R"({"consent":{"categoryPreferences":{"analytics":true}}})",
         verdict::no_consent},
        {required, R"({"consent":{"categoryPreferences":{"analytics":true,"ads":"yes"}}})",
         verdict::no_consent},
        {required, R"({"consent":{"categoryPreferences":{}}})", verdict::no_consent},
        {required, R"({})", verdict::deliver},  // missing object, default allow
        {required, R"({"consent":{}})", verdict::deliver},
        {deny, R"({})", verdict::no_consent},
        {deny, R"({"consent":{"categoryPreferences":null}})", verdict::no_consent},
        {deny, R"({"consent":{"categoryPreferences":{"analytics":true}}})", verdict::deliver},
        {"{}", R"({"consent":{"categoryPreferences":{"analytics":false}}})", verdict::deliver},
    };
    for (const auto& r : rows) {
        test_event e = make_event(std::string(R"({"type":"track","context":)") + r.context + "}");
        EXPECT_EQ(route_one(r.config, e), r.expected) << r.config << " / " << r.context;
    }
}

TEST(RouteOrder, FirstFailingStageDecides) {
    const test_event e =
        make_event(R"({"context":{"consent":{"categoryPreferences":{"ads":false}}},)"
                   R"("integrations":{"All":false}})");
    const std::string all = "consent: {categories: [ads]}\nexclude: [{}]\nsample: {rate: 0}\n";
    EXPECT_EQ(route_one(all, e), verdict::integration_disabled);
    EXPECT_EQ(route_one(all + "integration: ''", e), verdict::no_consent);
    EXPECT_EQ(route_one("integration: ''\nexclude: [{}]\nsample: {rate: 0}", e), verdict::excluded);
    EXPECT_EQ(route_one("integration: ''\nsample: {rate: 0}", e), verdict::sampled_out);
}

// ---------------------------------------------------------------------------------------------

std::string transform(const std::string& yaml, const std::string& json, verdict* v = nullptr) {
    router r = make_router(yaml);
    std::string out = "stale";
    const test_event e = make_event(json);
    verdict got = r.route(e.view(), out);
    if (v != nullptr) *v = got;
    return out;
}

TEST(RouteFields, Rewrites) {
    ::setenv("SY_ROUTE_TEST_KEY", "key", 1);
    struct row {
        const char* fields;
        const char* in;
        const char* out;
    };
    const row rows[] = {
        {"{drop: [context.ip, properties.email]}",
         R"({"a":1,"properties":{"email":"x","b":2},"context":{"ip":"1.2.3.4"}})",
         R"({"a":1,"properties":{"b":2},"context":{}})"},
        {"{drop: [a.b.c]}", R"({"a":{"b":{"c":1,"d":[1,{"e":null}]}},"z":false})",
         R"({"a":{"b":{"d":[1,{"e":null}]}},"z":false})"},
        {"{rename: {properties.old_name: properties.new_name}}",
         R"({"properties":{"old_name":{"x":1},"y":2}})",
         R"({"properties":{"y":2,"new_name":{"x":1}}})"},
        {"{rename: {properties.old: properties.new}}",  // overwrites, keeping the position
         R"({"properties":{"new":1,"old":2}})", R"({"properties":{"new":2}})"},
        {"{rename: {userId: context.traits.id}}",  // creates missing parents
         R"({"userId":"u","context":{}})", R"({"context":{"traits":{"id":"u"}}})"},
        {"{hash: [userId], hash_key: key}", R"({"userId":"value"})",
         R"({"userId":"90fbfcf15e74a36b89dbdb2a721d9aecffdfdddc5c83e27f7592594f71932481"})"},
        {"{hash: [traits.email], hash_key: '${SY_ROUTE_TEST_KEY}'}",
         R"({"traits":{"email":"a@b.c"}})",
         R"({"traits":{"email":"39ae49c50426b2bd08543508b376ed900cccf8729da709864ff1e0ef842c25b6"}})"},
        {"{hash: [n], hash_key: key}", R"({"n":42})",
         R"({"n":"f2991b7ce981d0b5adc5e6a0f31acaeb407bfc21354bbcc31a0c43eaffa83d65"})"},
        {"{hash: [o], hash_key: key}", R"({"o":{"a":1,"b":[true,null]}})",
         R"({"o":"275b5770c4ab6466a4b31bff9da8a8bdf55b5f24e1854ec883f51b1d47b37961"})"},
        {"{rename: {traits.email: userId}, hash: [userId], hash_key: key}",  // hash after rename
         R"({"traits":{"email":"value"}})",
         R"({"traits":{},"userId":"90fbfcf15e74a36b89dbdb2a721d9aecffdfdddc5c83e27f7592594f71932481"})"},
        {"{truncate_ip: true}", R"({"context":{"ip":"203.0.113.77","x":1}})",
         R"({"context":{"ip":"203.0.113.0","x":1}})"},
        {"{truncate_ip: true}", R"({"context":{"ip":"2001:db8:abcd:12:1:2:3:4"}})",
         R"({"context":{"ip":"2001:db8:abcd::"}})"},
        {"{truncate_ip: true}", R"({"context":{"ip":"::ffff:198.51.100.23"}})",
         R"({"context":{"ip":"198.51.100.0"}})"},
        {"{truncate_ip: true}", R"({"context":{"ip":"1.2.3.4, 5.6.7.8","x":1}})",
         R"({"context":{"x":1}})"},  // not an address: removed
        {"{truncate_ip: true}", R"({"context":{"ip":7}})", R"({"context":{}})"},
        {"{drop: [s]}", R"({"s":"q\"\\\n\u0001é","t":"\u00e9"})", R"({"t":"é"})"},
    };
    for (const auto& r : rows) {
        verdict v{};
        EXPECT_EQ(transform(std::string("fields: ") + r.fields, r.in, &v), r.out) << r.fields;
        EXPECT_EQ(v, verdict::deliver);
    }
}

TEST(RouteFields, UntouchedEventStaysByteIdentical) {
    // Nothing to change: transformed stays empty and the worker sends the original bytes.
    const char* const in = R"({"a" : 1.50, "context":{"ip":"203.0.113.0"}, "s":"\u0041"})";
    const char* const configs[] = {
        "fields: {drop: [missing, a.b, context.nope]}",
        "fields: {rename: {missing: x}}",
        "fields: {rename: {a: s.x}}",  // s is not an object: the rename is skipped
        "fields: {hash: [missing, context.missing], hash_key: key}",
        "fields: {truncate_ip: true}",  // already truncated
        "include: [{type: [track]}]",
    };
    for (const char* c : configs) {
        verdict v{};
        EXPECT_EQ(transform(c, in, &v), "") << c;
        EXPECT_EQ(v, verdict::deliver) << c;
    }
}

TEST(RouteFields, HmacMatchesOpenssl) {
    // printf 'value' | openssl dgst -sha256 -hmac key
    EXPECT_EQ(hmac_sha256_hex("key", "value"),
              "90fbfcf15e74a36b89dbdb2a721d9aecffdfdddc5c83e27f7592594f71932481");
    hmac_sha256 keyed("key");
    for (int i = 0; i < 3; ++i) {  // the context is reused with the same key
        std::string out = "x";
        ASSERT_TRUE(keyed.append_hex("value", out));
        EXPECT_EQ(out, "x90fbfcf15e74a36b89dbdb2a721d9aecffdfdddc5c83e27f7592594f71932481");
        out.clear();
        ASSERT_TRUE(keyed.append_hex("a@b.c", out));
        EXPECT_EQ(out, hmac_sha256_hex("key", "a@b.c"));
    }
}

TEST(RouteFields, NotAppliedToEventsThatAreNotDelivered) {
    verdict v{};
    EXPECT_EQ(transform("exclude: [{}]\nfields: {drop: [a]}", R"({"a":1})", &v), "");
    EXPECT_EQ(v, verdict::excluded);
}

// ---------------------------------------------------------------------------------------------

TEST(RouteConfig, ReadsEveryKey) {
    auto p = read(R"(include:
  - type: [track, page]
    event: ["Order *", "Signed Up"]
    source: [web]
    where:
      - {path: properties.plan, op: eq, value: pro}
      - {path: properties.plan, op: in, value: [pro, team]}
exclude: [{event: [Test]}]
sample: {rate: 0.25, by: anonymousId}
integration: My Hook
consent: {categories: [analytics], missing: deny}
fields:
  drop: [context.ip]
  rename: {properties.a: properties.b}
  hash: [userId]
  hash_key: k
  truncate_ip: true
)");
    EXPECT_TRUE(p.errs.empty()) << (p.errs.empty() ? "" : p.errs.list().front());
    const rules& r = p.r;
    ASSERT_EQ(r.include.size(), 1u);
    EXPECT_TRUE(r.has_include);
    EXPECT_EQ(r.include[0].events.size(), 2u);
    EXPECT_EQ(r.include[0].where.size(), 2u);
    EXPECT_EQ(r.include[0].where[1].values.size(), 2u);
    EXPECT_EQ(r.exclude.size(), 1u);
    EXPECT_DOUBLE_EQ(r.sample_rate, 0.25);
    EXPECT_EQ(r.sample_by, sample_key::anonymous_id);
    EXPECT_EQ(r.integration, "My Hook");
    EXPECT_EQ(r.consent_categories, std::vector<std::string>{"analytics"});
    EXPECT_FALSE(r.consent_missing_allow);
    EXPECT_EQ(r.fields.rename.size(), 1u);
    EXPECT_EQ(r.fields.rename[0].second, (field_path{"properties", "b"}));
    EXPECT_TRUE(r.fields.truncate_ip);
    EXPECT_FALSE(r.empty());

    auto defaults = read("{}", "Dest");
    EXPECT_TRUE(defaults.errs.empty());
    EXPECT_EQ(defaults.r.integration, "Dest");
    EXPECT_FALSE(defaults.r.has_include);
}

TEST(RouteConfig, ReportsErrorsWithLineAndColumn) {
    ::unsetenv("SY_ROUTE_UNSET");
    struct row {
        const char* yaml;
        const char* error;
    };
    const row rows[] = {
        {"include:\n  - where:\n      - {path: a, op: like, value: x}\n",
         "test.yaml:3:23: destinations[0].include[0].where[0].op: unknown op 'like'"},
        {"include:\n  - type: [track, purchase]\n",
         "test.yaml:2:19: destinations[0].include[0].type[1]: unknown event type 'purchase'"},
        {"sample:\n  rate: 1.5\n",
         "test.yaml:2:9: destinations[0].sample.rate: must be between 0 and 1"},
        {"sample:\n  rate: lots\n",
         "test.yaml:2:9: destinations[0].sample.rate: expected a number"},
        {"sample: {by: email}\n", "test.yaml:1:14: destinations[0].sample.by: unknown id 'email'"},
        {"fields:\n  hash: [userId]\n",
         "test.yaml:2:9: destinations[0].fields.hash_key: required (and non-empty) when"},
        {"fields:\n  hash: [userId]\n  hash_key: ${SY_ROUTE_UNSET}\n",
         "test.yaml:3:13: destinations[0].fields.hash_key: environment variable SY_ROUTE_UNSET"},
        {"consent: {missing: maybe}\n",
         "test.yaml:1:20: destinations[0].consent.missing: expected allow or deny"},
        {"include:\n  - where: [{path: a, op: gt, value: ten}]\n",
         "test.yaml:2:38: destinations[0].include[0].where[0].value: op gt needs a number"},
        {"include:\n  - where: [{path: a, op: in, value: x}]\n",
         "test.yaml:2:38: destinations[0].include[0].where[0].value: expected a list"},
        {"include:\n  - where: [{path: a, op: exists, value: x}]\n",
         "test.yaml:2:42: destinations[0].include[0].where[0].value: not used with op exists"},
        {"include:\n  - where: [{op: eq, value: x}]\n",
         "test.yaml:2:13: destinations[0].include[0].where[0].path: required key is missing"},
        {"include:\n  - where: [{path: a..b, op: exists}]\n",
         "test.yaml:2:20: destinations[0].include[0].where[0].path: 'a..b' is not a dotted path"},
        {"include:\n  - {typo: [track]}\n",
         "test.yaml:2:6: destinations[0].include[0]: unknown key 'typo'"},
        {"include: []\n", "test.yaml:1:10: destinations[0].include: must list at least one"},
        {"fields: {drop: [a., b]}\n", "test.yaml:1:17: destinations[0].fields.drop[0]: 'a.'"},
        {"fields: {rename: {a: a.b}}\n",
         "test.yaml:1:22: destinations[0].fields.rename.a: source and target may not contain"},
        {"fields: {bogus: 1}\n", "test.yaml:1:10: destinations[0].fields: unknown key 'bogus'"},
    };
    for (const auto& r : rows) {
        auto p = read(r.yaml);
        bool found = false;
        for (const auto& e : p.errs.list()) found = found || e.rfind(r.error, 0) == 0;
        EXPECT_TRUE(found) << r.yaml << "expected: " << r.error << "\ngot: "
                           << (p.errs.empty() ? std::string("(no errors)") : p.errs.list()[0]);
    }
}

TEST(RouteConfig, DescribeModeDocumentsEveryKey) {
    config::errors errs;
    config::key_catalog catalog;
    config::map_reader dest(YAML::Node(), "destinations[]", errs, &catalog);
    rules r;
    read_rules(dest, "", r);
    EXPECT_TRUE(errs.empty());
    std::set<std::string> paths;
    for (const auto& k : catalog.keys()) {
        paths.insert(k.path);
        EXPECT_FALSE(k.description.empty()) << k.path;
    }
    for (const char* want : {
             "destinations[].include",
             "destinations[].include[].type",
             "destinations[].include[].event",
             "destinations[].include[].source",
             "destinations[].include[].where",
             "destinations[].include[].where[].path",
             "destinations[].include[].where[].op",
             "destinations[].include[].where[].value",
             "destinations[].exclude",
             "destinations[].sample.rate",
             "destinations[].sample.by",
             "destinations[].integration",
             "destinations[].consent.categories",
             "destinations[].consent.missing",
             "destinations[].fields.drop",
             "destinations[].fields.rename",
             "destinations[].fields.hash",
             "destinations[].fields.hash_key",
             "destinations[].fields.truncate_ip",
         }) {
        EXPECT_TRUE(paths.count(want)) << want;
    }
}

}  // namespace
}  // namespace switchyard::route
