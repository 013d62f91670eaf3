// Bot detection cost per event: detector::check() with the shipped crawlers.tsv over the
// reference user agent mix (user_agents.txt from make_payloads.py: common browsers plus a long
// tail, and a few bots and tools), over one browser user agent, and over one crawler.
// The mix is read from $SWITCHYARD_BENCH_UAS; without it, it is generated into
// /tmp/switchyard-bench-uas with $SWITCHYARD_BENCH_PAYLOADS/make_payloads.py (default
// /work/shared/bench). The data file is found through $SWITCHYARD_SOURCE_DIR, else relative to
// this source file.
#include "enrich/bots/bots.h"

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using switchyard::enrich::bots::detector;
using switchyard::enrich::bots::reason;

std::string data_file() {
    std::filesystem::path root = std::getenv("SWITCHYARD_SOURCE_DIR")
                                     ? std::filesystem::path(std::getenv("SWITCHYARD_SOURCE_DIR"))
                                     : std::filesystem::path(__FILE__).parent_path() / "../../..";
    return (root / "src/enrich/bots/crawlers.tsv").string();
}

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

const detector& shipped() {
    static const std::unique_ptr<detector> d = [] {
        std::string err;
        auto loaded = detector::load(data_file(), {}, err);
        if (!loaded) {
            fmt::print(stderr, "bots_bench: {}\n", err);
            std::exit(1);
        }
        return loaded;
    }();
    return *d;
}

std::vector<std::string> load_mix() {
    std::string path;
    if (const char* env = std::getenv("SWITCHYARD_BENCH_UAS")) {
        path = env;
    } else {
        const char* payloads = std::getenv("SWITCHYARD_BENCH_PAYLOADS");
        std::string script =
            fmt::format("{}/make_payloads.py", payloads ? payloads : "/work/shared/bench");
        std::string dir = "/tmp/switchyard-bench-uas";
        path = dir + "/user_agents.txt";
        if (!std::filesystem::exists(path)) {
            std::string cmd = fmt::format("python3 '{}' '{}' >/dev/null", script, dir);
            if (std::system(cmd.c_str()) != 0) {
                fmt::print(stderr, "bots_bench: '{}' failed; set SWITCHYARD_BENCH_UAS\n", cmd);
                std::exit(1);
            }
        }
    }
    std::vector<std::string> uas;
    std::istringstream lines(read_all(path));
    for (std::string line; std::getline(lines, line);) uas.push_back(line);
    if (uas.empty()) {
        fmt::print(stderr, "bots_bench: no user agents in {}\n", path);
        std::exit(1);
    }
    return uas;
}

const std::vector<std::string>& mix() {
    static const std::vector<std::string> uas = load_mix();
    return uas;
}

void BM_BotCheckMix(benchmark::State& state) {
    const auto& d = shipped();
    const auto& uas = mix();
    // One pass up front for the counters: how much of the mix is flagged, and why.
    std::map<std::string, int> flagged;
    for (const auto& ua : uas) {
        auto v = d.check(ua, false);
        if (v.is_bot) ++flagged[fmt::format("{}:{}", to_string(v.why), v.name)];
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto v = d.check(uas[i], false);
        benchmark::DoNotOptimize(v);
        if (++i == uas.size()) i = 0;
    }
    state.SetItemsProcessed(state.iterations());
    int total = 0;
    for (const auto& [k, n] : flagged) total += n;
    state.counters["uas"] = static_cast<double>(uas.size());
    state.counters["flagged"] = total;
    std::string label;
    for (const auto& [k, n] : flagged)
        label += fmt::format("{}{}={}", label.empty() ? "" : " ", k, n);
    state.SetLabel(label);
}
BENCHMARK(BM_BotCheckMix);

void BM_BotCheckBrowser(benchmark::State& state) {
    const auto& d = shipped();
    const std::string ua =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36";
    for (auto _ : state) {
        auto v = d.check(ua, false);
        benchmark::DoNotOptimize(v);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BotCheckBrowser);

// A match takes a second pass to list the matches, and copies the name.
void BM_BotCheckCrawler(benchmark::State& state) {
    const auto& d = shipped();
    const std::string ua =
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
        "+http://www.google.com/bot.html)";
    for (auto _ : state) {
        auto v = d.check(ua, false);
        benchmark::DoNotOptimize(v);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BotCheckCrawler);

// Start-up and config reload cost: parse the file, compile each pattern and the set.
void BM_BotLoad(benchmark::State& state) {
    std::string text = read_all(data_file());
    for (auto _ : state) {
        std::string err;
        auto d = detector::from_text(text, {}, err);
        benchmark::DoNotOptimize(d);
    }
}
BENCHMARK(BM_BotLoad)->Unit(benchmark::kMillisecond);

}  // namespace
