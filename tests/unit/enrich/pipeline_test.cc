#include "enrich/pipeline.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <thread>

namespace switchyard::enrich {
namespace {

constexpr std::string_view chrome =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36";
constexpr std::string_view googlebot =
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

bool have_uap() { return std::filesystem::exists("/usr/share/uap-core/regexes.yaml"); }

std::unique_ptr<pipeline> make(config::enrich_config c = {}) {
    std::vector<std::string> errs;
    auto p = pipeline::build(c, ".", errs);
    EXPECT_TRUE(errs.empty()) << (errs.empty() ? "" : errs.front());
    return p;
}

event_input browser_event(std::string_view ua = chrome) {
    event_input in;
    in.user_agent = ua;
    in.has_user_agent = true;
    in.ip = "203.0.113.77";
    in.page_url = "https://shop.example/?utm_source=news&utm_medium=email&utm_campaign=spring";
    in.page_referrer = "https://www.bing.com/search?q=x";
    return in;
}

// The members as a JSON object, for assertions.
simdjson::dom::element parse(simdjson::dom::parser& p, const event_output& out) {
    static std::string text;
    text = "{" + (out.members.empty() ? std::string() : out.members.substr(1)) + "}";
    return p.parse(text);
}

TEST(EnrichPipeline, AddsEveryStepAndCountsThem) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    auto p = make();
    event_output out;
    request_input req;
    p->run(browser_event(), req, out);
    simdjson::dom::parser jp;
    auto doc = parse(jp, out);
    EXPECT_EQ(std::string_view(doc["browser"]["family"]), "Chrome");
    EXPECT_EQ(std::string_view(doc["os"]["name"]), "Windows");
    EXPECT_EQ(std::string_view(doc["device"]["type"]), "desktop");
    EXPECT_FALSE(bool(doc["bot"]["is_bot"]));
    EXPECT_EQ(std::string_view(doc["campaign"]["source"]), "news");
    EXPECT_EQ(std::string_view(doc["referrer"]["medium"]), "email");
    EXPECT_FALSE(out.rewrite_ip);
    EXPECT_FALSE(out.is_bot);

    // The same user agent again is a cache hit and gives the same members.
    std::string first = out.members;
    out.clear();
    p->run(browser_event(), req, out);
    EXPECT_EQ(out.members, first);
    auto ua = p->totals(step::user_agent);
    EXPECT_EQ(ua.hits, 2u);
    EXPECT_EQ(ua.cache_misses, 1u);
    EXPECT_EQ(ua.cache_hits, 1u);
    EXPECT_EQ(p->totals(step::campaign).hits, 2u);
    EXPECT_EQ(p->totals(step::geo).hits + p->totals(step::geo).skipped, 0u);  // no database
    EXPECT_FALSE(p->enabled(step::geo));
}

TEST(EnrichPipeline, NeverOverwritesWhatTheSdkSent) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    auto p = make();
    auto in = browser_event();
    in.has_browser = in.has_os = in.has_device = in.has_campaign = in.has_referrer = true;
    in.has_bot = true;
    event_output out;
    p->run(in, {}, out);
    EXPECT_EQ(out.members, "");
    EXPECT_EQ(p->totals(step::user_agent).skipped, 1u);
    EXPECT_EQ(p->totals(step::bots).skipped, 1u);
    EXPECT_EQ(p->totals(step::campaign).skipped, 1u);
    EXPECT_EQ(p->totals(step::referrer).skipped, 1u);

    in.has_os = false;  // only the missing one is added
    out.clear();
    p->run(in, {}, out);
    EXPECT_EQ(out.members.find(",\"os\":{\"name\":\"Windows\""), 0u) << out.members;
    EXPECT_EQ(out.members.find("browser"), std::string::npos);
}

TEST(EnrichPipeline, BotsAreFlaggedFromTheSameCacheEntry) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    auto p = make();
    event_output out;
    p->run(browser_event(googlebot), {}, out);
    EXPECT_TRUE(out.is_bot);
    EXPECT_NE(out.members.find(R"("bot":{"is_bot":true,"reason":"crawler","name":"Googlebot"})"),
              std::string::npos)
        << out.members;
    EXPECT_EQ(p->bots(3), 1u);  // bots::reason::crawler
    EXPECT_EQ(p->totals(step::bots).hits, 1u);

    // Empty user agent: a bot signal, and nothing for the parser to say.
    out.clear();
    auto in = browser_event("");
    p->run(in, {}, out);
    EXPECT_TRUE(out.is_bot);
    EXPECT_NE(out.members.find(R"("reason":"empty_user_agent")"), std::string::npos);

    // No user agent at all (server-side SDK): neither step looks.
    out.clear();
    in = browser_event();
    in.has_user_agent = false;
    in.user_agent = {};
    p->run(in, {}, out);
    EXPECT_FALSE(out.is_bot);
    EXPECT_EQ(out.members.find("\"bot\""), std::string::npos);
    EXPECT_EQ(out.members.find("\"browser\""), std::string::npos);
}

TEST(EnrichPipeline, IpPolicyAndAnonymousMode) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    auto p = make();
    source_policy keep, trunc, remove;
    trunc.ip = privacy::ip_mode::truncate;
    remove.ip = privacy::ip_mode::remove;
    event_output out;

    p->run(browser_event(), {&keep, false}, out);
    EXPECT_FALSE(out.rewrite_ip);
    out.clear();
    p->run(browser_event(), {&trunc, false}, out);
    EXPECT_TRUE(out.rewrite_ip);
    EXPECT_EQ(out.ip, "203.0.113.0");
    out.clear();
    auto bad = browser_event();
    bad.ip = "not-an-ip";
    p->run(bad, {&trunc, false}, out);
    EXPECT_TRUE(out.rewrite_ip);
    EXPECT_EQ(out.ip, "");  // removed rather than stored as sent
    out.clear();
    p->run(browser_event(), {&remove, false}, out);
    EXPECT_TRUE(out.rewrite_ip);
    EXPECT_EQ(out.ip, "");
    out.clear();
    p->run(browser_event(), {&keep, true}, out);  // anonymous overrides keep
    EXPECT_TRUE(out.rewrite_ip);
    EXPECT_EQ(out.ip, "");
}

TEST(EnrichPipeline, ClientHintsRefineTheCachedResult) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    auto p = make();
    simdjson::dom::parser jp;
    auto uad = jp.parse(std::string_view(
        R"({"brands":[{"brand":"Google Chrome","version":"120"}],"mobile":false,"platform":"Windows","platformVersion":"15.0.0"})"));
    auto in = browser_event();
    in.user_agent_data = uad.value();
    in.has_user_agent_data = true;
    event_output out;
    p->run(in, {}, out);
    EXPECT_NE(out.members.find(R"("os":{"name":"Windows","version":"11"})"), std::string::npos)
        << out.members;
    // The cached entry is untouched: the same UA without hints still says Windows 10.
    out.clear();
    p->run(browser_event(), {}, out);
    EXPECT_NE(out.members.find(R"("os":{"name":"Windows","version":"10"})"), std::string::npos)
        << out.members;

    config::enrich_config c;
    c.user_agent.client_hints = false;
    auto q = make(c);
    out.clear();
    q->run(in, {}, out);
    EXPECT_NE(out.members.find(R"("version":"10")"), std::string::npos);
}

TEST(EnrichPipeline, SwitchesAndCachelessOperation) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    config::enrich_config c;
    c.enabled = false;
    auto off = make(c);
    event_output out;
    off->run(browser_event(), {}, out);
    EXPECT_EQ(out.members, "");
    EXPECT_FALSE(out.rewrite_ip);

    c = {};
    c.user_agent.cache_size = 0;
    c.campaign.enabled = false;
    c.referrer.enabled = false;
    c.bots.enabled = false;
    auto p = make(c);
    for (int i = 0; i < 3; ++i) {
        out.clear();
        p->run(browser_event(), {}, out);
        EXPECT_EQ(out.members.find(",\"browser\":{\"family\":\"Chrome\""), 0u) << out.members;
        EXPECT_EQ(out.members.find("campaign"), std::string::npos);
        EXPECT_EQ(out.members.find("\"bot\""), std::string::npos);
    }
    EXPECT_EQ(p->totals(step::user_agent).cache_hits, 0u);
    EXPECT_EQ(p->totals(step::user_agent).cache_misses, 3u);
}

TEST(EnrichPipeline, CountersAddUpAcrossThreads) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    auto p = make();
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&] {
            event_output out;
            for (int i = 0; i < 1000; ++i) {
                out.clear();
                p->run(browser_event(), {}, out);
            }
        });
    }
    for (auto& t : ts) t.join();
    auto ua = p->totals(step::user_agent);
    EXPECT_EQ(ua.hits, 4000u);
    EXPECT_EQ(ua.cache_misses, 4u);  // one per thread: caches are per thread
    EXPECT_EQ(ua.cache_hits, 3996u);
    EXPECT_EQ(ua.timed, 4000u / pipeline::cost_sample_every);
}

TEST(EnrichPipeline, LoadErrorsNameTheStep) {
    config::enrich_config c;
    c.user_agent.regexes = "/nonexistent/regexes.yaml";
    c.geo.database = "/nonexistent/city.mmdb";
    c.geo.fields = {"country", "asn", "planet"};
    c.bots.extra_patterns = {"broken=("};
    std::vector<std::string> errs;
    EXPECT_EQ(pipeline::build(c, ".", errs), nullptr);
    auto has = [&](std::string_view s) {
        for (const auto& e : errs)
            if (e.find(s) != std::string::npos) return true;
        return false;
    };
    EXPECT_TRUE(has("enrich.user_agent.regexes")) << testing::PrintToString(errs);
    EXPECT_TRUE(has("enrich.geo.database")) << testing::PrintToString(errs);
    EXPECT_TRUE(has("enrich.geo.fields: unknown field 'asn'")) << testing::PrintToString(errs);
    EXPECT_TRUE(has("enrich.geo.fields: unknown field 'planet'")) << testing::PrintToString(errs);
    EXPECT_TRUE(has("enrich.bots")) << testing::PrintToString(errs);
}

}  // namespace
}  // namespace switchyard::enrich
