// Per-step cost of the enrichment stage over the reference traffic mix
// (../shared/bench/make_payloads.py: 100,000 events, ~25,000 distinct user agents, a quarter of
// them rare), each step alone and all together, as the I/O thread runs them: one event at a
// time, in traffic order, with the per-thread user-agent cache warming up as it goes.
//
//   SWITCHYARD_BENCH_EVENTS=/path/events_100k.ndjson build/tests/switchyard_bench \
//       --benchmark_filter=Enrich
//
// Without the variable the events are generated into /tmp. Geo is included when
// SWITCHYARD_BENCH_MMDB names a City database (the geo library's own bench covers lookups).
#include "enrich/pipeline.h"
#include "enrich/ua/ua_parser.h"

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

using namespace switchyard;

struct owned_event {
    std::string ua, ip, url, referrer;
    bool has_ua = false;
};

const std::vector<owned_event>& events() {
    static std::vector<owned_event> evs = [] {
        std::string path;
        if (const char* p = std::getenv("SWITCHYARD_BENCH_EVENTS")) {
            path = p;
        } else {
            path = "/tmp/switchyard-bench/events_100k.ndjson";
            if (!std::filesystem::exists(path)) {
                std::string script = std::filesystem::path(__FILE__)
                                         .parent_path()
                                         .append("../../../../shared/bench/make_payloads.py")
                                         .lexically_normal()
                                         .string();
                std::string cmd = "python3 " + script + " /tmp/switchyard-bench >/dev/null";
                if (std::system(cmd.c_str()) != 0) std::abort();
            }
        }
        std::vector<owned_event> out;
        std::ifstream f(path);
        std::string line;
        simdjson::dom::parser parser;
        while (std::getline(f, line)) {
            auto doc = parser.parse(line);
            if (doc.error()) continue;
            owned_event e;
            auto ctx = doc["context"];
            std::string_view s;
            if (ctx["userAgent"].get(s) == simdjson::SUCCESS) {
                e.ua = s;
                e.has_ua = true;
            }
            if (ctx["ip"].get(s) == simdjson::SUCCESS) e.ip = s;
            if (ctx["page"]["url"].get(s) == simdjson::SUCCESS) e.url = s;
            if (ctx["page"]["referrer"].get(s) == simdjson::SUCCESS) e.referrer = s;
            out.push_back(std::move(e));
        }
        return out;
    }();
    return evs;
}

// client_hints: user_agent, with the low-entropy context.userAgentData analytics.js sends from
// Chromium browsers added to every event whose user agent says Chrome.
enum which { all, user_agent, bots, geo, ip, campaign, referrer, client_hints };

void BM_Enrich(benchmark::State& state) {
    const auto w = static_cast<which>(state.range(0));
    config::enrich_config c;
    c.user_agent.enabled = w == all || w == user_agent || w == client_hints;
    c.bots.enabled = w == all || w == bots;
    c.campaign.enabled = w == all || w == campaign;
    c.referrer.enabled = w == all || w == referrer;
    if ((w == all || w == geo) && std::getenv("SWITCHYARD_BENCH_MMDB"))
        c.geo.database = std::getenv("SWITCHYARD_BENCH_MMDB");
    if (w == geo && c.geo.database.empty()) {
        state.SkipWithError("set SWITCHYARD_BENCH_MMDB to a City .mmdb");
        return;
    }
    std::vector<std::string> errs;
    auto p = enrich::pipeline::build(c, ".", errs);
    if (!p) {
        state.SkipWithError(errs.front().c_str());
        return;
    }
    enrich::source_policy pol;
    pol.ip =
        (w == all || w == ip) ? enrich::privacy::ip_mode::truncate : enrich::privacy::ip_mode::keep;
    const auto& evs = events();
    std::vector<enrich::event_input> ins(evs.size());
    for (std::size_t i = 0; i < evs.size(); ++i) {
        auto& in = ins[i];
        in.user_agent = evs[i].ua;
        in.has_user_agent = evs[i].has_ua;
        in.ip = evs[i].ip;
        in.page_url = evs[i].url;
        in.page_referrer = evs[i].referrer;
    }
    simdjson::dom::parser hints_doc;
    simdjson::dom::element hints;
    if (w == client_hints) {
        hints = hints_doc.parse(std::string_view(
            R"({"brands":[{"brand":"Not_A Brand","version":"8"},{"brand":"Chromium","version":"120"},)"
            R"({"brand":"Google Chrome","version":"120"}],"mobile":false,"platform":"Windows"})"));
        for (std::size_t k = 0; k < evs.size(); ++k) {
            if (evs[k].ua.find("Chrome/") == std::string::npos) continue;
            ins[k].user_agent_data = hints;
            ins[k].has_user_agent_data = true;
        }
    }
    enrich::event_output out;
    std::size_t i = 0;
    for (auto _ : state) {
        out.clear();
        p->run(ins[i], {&pol, false}, out);
        benchmark::DoNotOptimize(out.members.data());
        if (++i == ins.size()) i = 0;
    }
    auto rate = [&](enrich::step s, const char* name) {
        auto t = p->totals(s);
        if (t.cache_hits + t.cache_misses == 0) return;
        state.counters[name] =
            static_cast<double>(t.cache_hits) / static_cast<double>(t.cache_hits + t.cache_misses);
    };
    rate(w == bots ? enrich::step::bots : enrich::step::user_agent, "ua_cache_hit_rate");
    rate(enrich::step::geo, "geo_cache_hit_rate");
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Enrich)
    ->ArgName("step")
    ->Arg(all)
    ->Arg(user_agent)
    ->Arg(bots)
    ->Arg(geo)
    ->Arg(ip)
    ->Arg(campaign)
    ->Arg(referrer)
    ->Arg(client_hints)
    ->Iterations(300'000);

// The uap-core parse alone, uncached, over the mix's distinct user agents.
void BM_UaParseUncached(benchmark::State& state) {
    std::string err;
    auto p = enrich::ua::parser::load("/usr/share/uap-core/regexes.yaml", {}, err);
    if (!p) {
        state.SkipWithError(err.c_str());
        return;
    }
    std::vector<std::string_view> uas;
    {
        std::unordered_set<std::string_view> seen;
        for (const auto& e : events())
            if (e.has_ua && seen.insert(e.ua).second) uas.push_back(e.ua);
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto r = p->parse(uas[i]);
        benchmark::DoNotOptimize(r.browser_family.data());
        if (++i == uas.size()) i = 0;
    }
    state.counters["distinct_uas"] = static_cast<double>(uas.size());
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_UaParseUncached)->Iterations(50'000);

}  // namespace
