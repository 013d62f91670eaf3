// Geo lookup cost per event: one lookup per iteration (time per iteration = ns/lookup) over a
// fixed mix of addresses, hits and misses, IPv4, IPv6 and IPv4-mapped, against the test
// databases built from tests/fixtures/geo/*.json by tests/support/make_mmdb.pl (perl with
// MaxMind::DB::Writer). The databases are built into $TMPDIR/switchyard-geo-bench-<uid>/ when
// missing. The source tree is $SWITCHYARD_SOURCE_DIR, else found from this file's path.
//
// The fixture databases are tiny (a few hundred nodes); a real GeoLite2-City has millions, so
// the search tree walk is deeper there (at most 128 steps for IPv6 either way) and cache misses
// dominate. These numbers track the cost of our code around libmaxminddb, not of a real file.
#include "enrich/geo/geo.h"
#include "enrich/privacy/ip.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
namespace geo = switchyard::enrich::geo;

fs::path source_dir() {
    if (const char* s = std::getenv("SWITCHYARD_SOURCE_DIR"); s && *s) return s;
    return fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path();
}

// Path of the built database for tests/fixtures/geo/<name>.json, or "" with err set.
std::string built(const std::string& name, std::string& err) {
    fs::path dir = fs::temp_directory_path() / ("switchyard-geo-bench-" + std::to_string(getuid()));
    fs::path out = dir / (name + ".mmdb");
    std::error_code ec;
    if (fs::exists(out, ec)) return out.string();
    fs::create_directories(dir, ec);
    fs::path spec = source_dir() / "tests/fixtures/geo" / (name + ".json");
    fs::path script = source_dir() / "tests/support/make_mmdb.pl";
    std::string cmd =
        "perl '" + script.string() + "' '" + spec.string() + "' '" + out.string() + "'";
    if (std::system(cmd.c_str()) != 0) {
        err = "building " + out.string() + " failed: " + cmd;
        return {};
    }
    return out.string();
}

std::shared_ptr<const geo::database> open(const std::string& name, std::string& err) {
    std::string path = built(name, err);
    if (path.empty()) return nullptr;
    return geo::database::open(path, err);
}

// Ten hits and six misses (private, unknown, unparsable).
constexpr std::string_view mix[] = {
    "203.0.113.77",     "81.2.69.142",   "81.2.69.170",   "198.51.100.23",      "192.0.2.200",
    "2001:db8:1::abcd", "2001:db8:2::1", "2001:db8:3::1", "::ffff:203.0.113.9", "::ffff:81.2.69.1",
    "10.0.0.1",         "192.168.1.1",   "8.8.8.8",       "2001:db8:ffff::1",   "fe80::1",
    "unknown",
};

void lookup_mix(benchmark::State& state, const std::string& name, std::uint32_t fields) {
    std::string err;
    auto db = open(name, err);
    if (!db) {
        state.SkipWithError(err.c_str());
        return;
    }
    geo::location l;
    std::size_t i = 0, hits = 0;
    for (auto _ : state) {
        hits += db->lookup(mix[i], fields, l);
        benchmark::DoNotOptimize(l);
        i = (i + 1) % std::size(mix);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.counters["hit_ratio"] =
        static_cast<double>(hits) /
        static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
}

void BM_GeoLookupCityAllFields(benchmark::State& state) {
    lookup_mix(state, "city", geo::all_location_fields);
}
BENCHMARK(BM_GeoLookupCityAllFields);

void BM_GeoLookupCountryOnly(benchmark::State& state) { lookup_mix(state, "city", geo::country); }
BENCHMARK(BM_GeoLookupCountryOnly);

void BM_GeoLookupAsn(benchmark::State& state) {
    lookup_mix(state, "asn", geo::asn | geo::as_organization);
}
BENCHMARK(BM_GeoLookupAsn);

// Lookup plus the JSON members the enrichment stage writes.
void BM_GeoLookupCityAllFieldsJson(benchmark::State& state) {
    std::string err;
    auto db = open("city", err);
    if (!db) {
        state.SkipWithError(err.c_str());
        return;
    }
    geo::location l;
    std::string out;
    std::size_t i = 0;
    for (auto _ : state) {
        out.clear();
        if (db->lookup(mix[i], geo::all_location_fields, l)) {
            geo::append_location_members(l, geo::all_location_fields, out);
        }
        benchmark::DoNotOptimize(out.data());
        i = (i + 1) % std::size(mix);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_GeoLookupCityAllFieldsJson);

// The per-event cost of taking the database in service from a reloading_database.
void BM_GeoReloadingCurrent(benchmark::State& state) {
    // One instance shared by the benchmark's threads, as the I/O threads share it.
    static std::string err;
    static const auto r = [] {
        std::string path = built("city", err);
        return path.empty() ? nullptr
                            : geo::reloading_database::open(path, std::chrono::seconds(60), err);
    }();
    if (!r) {
        state.SkipWithError(err.c_str());
        return;
    }
    for (auto _ : state) {
        auto db = r->current();
        benchmark::DoNotOptimize(db.get());
    }
}
BENCHMARK(BM_GeoReloadingCurrent)->Threads(1)->Threads(2);

void BM_TruncateIp(benchmark::State& state) {
    std::size_t i = 0;
    for (auto _ : state) {
        auto t = switchyard::enrich::privacy::truncate_ip(mix[i]);
        benchmark::DoNotOptimize(t.data());
        i = (i + 1) % std::size(mix);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_TruncateIp);

}  // namespace
