// The ingest path's own steps, one at a time, over the reference payloads: decode (Segment body →
// canonical events, no enrichment), serialize (events → framed log records), log append (the
// local log's writer, group commit with and without fdatasync), log read (what every delivery
// worker does per record) and route fan-out (four destinations' rules per event). Enrichment,
// validation and identity have their own benchmarks (enrich_bench, plan_bench, identity_bench).
// Reads $SWITCHYARD_BENCH_PAYLOADS (default /work/shared/bench): track.json, batch100.json.
#include "log/local/local_log.h"
#include "route/route.h"
#include "sources/segment/decoder.h"
#include "switchyard/event.h"
#include "switchyard/log.h"

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace switchyard;

std::string payload(const char* name) {
    const char* dir = std::getenv("SWITCHYARD_BENCH_PAYLOADS");
    std::ifstream in(fs::path(dir ? dir : "/work/shared/bench") / name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

sources::segment::request_info info_for(bool batch) {
    sources::segment::request_info i;
    i.route_type = batch ? event_type::unknown : event_type::track;
    i.batch = batch;
    i.source = "bench";
    i.received_at_ms = 1'700'000'000'000;
    i.client_ip = "203.0.113.7";
    i.write_key = "bench-key";
    return i;
}

// Decodes one reference body; false (and a benchmark error) when it does not give `want` events.
bool decode_body(const std::string& body, bool batch, std::size_t want,
                 sources::segment::decoded& out, benchmark::State& state) {
    sources::segment::decoder d({});
    if (body.empty() || d.parse(body, batch)) {
        state.SkipWithError("reference payload missing or unparsable");
        return false;
    }
    d.decode(info_for(batch), out);
    if (out.events.size() != want) {
        state.SkipWithError("reference payload did not decode to the expected events");
        return false;
    }
    return true;
}

// Segment body → canonical events (parse, per-spec checks, re-serialization), no enrichment.
void BM_Decode(benchmark::State& state) {
    const bool batch = state.range(0) != 0;
    const std::string body = payload(batch ? "batch100.json" : "track.json");
    const std::size_t want = batch ? 100 : 1;
    sources::segment::decoded out;
    if (!decode_body(body, batch, want, out, state)) return;
    sources::segment::decoder d({});
    const auto info = info_for(batch);
    for (auto _ : state) {
        out.clear();
        if (d.parse(body, batch)) state.SkipWithError("parse failed");
        d.decode(info, out);
        benchmark::DoNotOptimize(out.events.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * want));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_Decode)->ArgName("batch100")->Arg(0)->Arg(1);

// Canonical events → framed log records (header + JSON, CRC32C), as the handler builds a batch.
void BM_Serialize(benchmark::State& state) {
    sources::segment::decoded out;
    if (!decode_body(payload("batch100.json"), true, 100, out, state)) return;
    std::string buf;
    std::size_t bytes = 0;
    for (auto _ : state) {
        record_batch b;
        for (const event& e : out.events) {
            buf.clear();
            encode_event(e, buf);
            b.add(buf);
        }
        bytes += b.bytes();
        benchmark::DoNotOptimize(b.data().data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * out.events.size()));
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_Serialize);

struct temp_dir {
    fs::path path;
    temp_dir() {
        spdlog::set_level(spdlog::level::warn);  // the log's open/close lines would fill the table
        std::string t = (fs::temp_directory_path() / "switchyard-bench-XXXXXX").string();
        if (::mkdtemp(t.data()) != nullptr) path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        if (!path.empty()) fs::remove_all(path, ec);
    }
};

record_batch reference_batch(std::size_t events, benchmark::State& state) {
    sources::segment::decoded out;
    record_batch b;
    if (!decode_body(payload("batch100.json"), true, 100, out, state)) return b;
    std::string buf;
    for (std::size_t i = 0; i < events; ++i) {
        buf.clear();
        encode_event(out.events[i % out.events.size()], buf);
        b.add(buf);
    }
    return b;
}

// The local log: `inflight` appends of `events` records each are queued together (as that many
// connections would) and the iteration waits for all their handlers, so a group commit covers
// them. Arg no_fsync: 0 = durability fsync (the default: one fdatasync per group), 1 = none.
void BM_LogAppend(benchmark::State& state) {
    const bool fsync = state.range(0) == 0;
    const auto events = static_cast<std::size_t>(state.range(1));
    const auto inflight = static_cast<std::size_t>(state.range(2));
    temp_dir tmp;
    if (tmp.path.empty()) {
        state.SkipWithError("no temp dir");
        return;
    }
    const record_batch batch = reference_batch(events, state);
    if (batch.empty()) return;
    log::local_log_options o;
    o.dir = tmp.path / "log";
    o.capacity_bytes = std::uint64_t{64} << 30;
    o.segment_bytes = std::uint64_t{256} << 20;
    o.durability = fsync ? durability_policy::fsync : durability_policy::none;
    auto lg = log::local_log::open(o);
    std::mutex mu;
    std::condition_variable cv;
    std::size_t done = 0;
    bool failed = false;
    for (auto _ : state) {
        {
            std::lock_guard lock(mu);
            done = 0;
        }
        for (std::size_t i = 0; i < inflight; ++i) {
            auto ec = lg->append(batch, [&](std::error_code e, std::uint64_t) {
                std::lock_guard lock(mu);
                failed = failed || static_cast<bool>(e);
                ++done;
                cv.notify_one();
            });
            if (ec) {
                state.SkipWithError(ec.message().c_str());
                break;
            }
        }
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return done == inflight; });
    }
    if (failed) state.SkipWithError("an append failed");
    const auto st = lg->stats();
    lg->close();
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * inflight * events));
    state.SetBytesProcessed(
        static_cast<std::int64_t>(state.iterations() * inflight * batch.bytes()));
    state.counters["fsyncs_per_append"] =
        static_cast<double>(st.fsyncs) / static_cast<double>(state.iterations() * inflight);
}
BENCHMARK(BM_LogAppend)
    ->ArgNames({"no_fsync", "events", "inflight"})
    ->Args({0, 1, 1})
    ->Args({0, 1, 64})
    ->Args({0, 100, 64})
    ->Args({1, 1, 64})
    ->Args({1, 100, 64})
    ->UseRealTime();

// A delivery worker's read: records from the page cache, CRC-checked, then decoded into views.
void BM_LogRead(benchmark::State& state) {
    temp_dir tmp;
    const record_batch batch = reference_batch(100, state);
    if (batch.empty() || tmp.path.empty()) return;
    log::local_log_options o;
    o.dir = tmp.path / "log";
    o.durability = durability_policy::none;
    auto lg = log::local_log::open(o);
    std::mutex mu;
    std::condition_variable cv;
    std::size_t done = 0;
    constexpr std::size_t batches = 100;  // 10,000 records
    for (std::size_t i = 0; i < batches; ++i) {
        lg->append(batch, [&](std::error_code, std::uint64_t) {
            std::lock_guard lock(mu);
            ++done;
            cv.notify_one();
        });
    }
    {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return done == batches; });
    }
    std::vector<log_record> recs;
    std::size_t records = 0;
    for (auto _ : state) {
        std::uint64_t from = lg->start_offset();
        while (from < lg->end_offset()) {
            recs.clear();
            auto next = lg->read(from, 500, 4 << 20, recs);
            if (!next) {
                state.SkipWithError("read failed");
                break;
            }
            for (const auto& r : recs) {
                auto v = decode_event(r.payload);
                benchmark::DoNotOptimize(v.has_value());
            }
            records += recs.size();
            from = next.value();
        }
    }
    lg->close();
    state.SetItemsProcessed(static_cast<std::int64_t>(records));
}
BENCHMARK(BM_LogRead);

// Four destinations' routing rules evaluated for each event of batch100.json (as the delivery
// workers do, each for its own destination): a warehouse taking everything but bots, a webhook
// for two event names with a condition, a sampled analytics copy and a type filter.
void BM_RouteFanout(benchmark::State& state) {
    sources::segment::decoded out;
    if (!decode_body(payload("batch100.json"), true, 100, out, state)) return;
    std::vector<std::string> records;
    for (const event& e : out.events) {
        records.emplace_back();
        encode_event(e, records.back());
    }
    std::vector<event_view> views;
    for (const auto& r : records) {
        auto v = decode_event(r);
        if (!v) {
            state.SkipWithError("decode_event failed");
            return;
        }
        views.push_back(v.value());
    }
    const char* const configs[] = {
        "exclude: [{where: [{path: context.bot.is_bot, op: eq, value: true}]}]\n",
        "include: [{type: [track], event: [Order Completed, 'Checkout*'],\n"
        "           where: [{path: properties.revenue, op: gt, value: 0}]}]\n",
        "sample: {rate: 0.5}\nintegration: Amplitude\n",
        "include: [{type: [identify, page, screen]}]\n",
    };
    std::vector<route::router> routers;
    for (const char* c : configs) {
        config::errors errs{"bench"};
        YAML::Node n = YAML::Load(c);
        config::map_reader dest(n, "destinations[0]", errs);
        route::rules r;
        route::read_rules(dest, "bench", r);
        dest.finish();
        if (!errs.empty()) {
            state.SkipWithError(errs.list().front().c_str());
            return;
        }
        routers.emplace_back(std::move(r));
    }
    std::string transformed;
    std::size_t delivered = 0;
    for (auto _ : state) {
        for (auto& rt : routers) {
            for (const event_view& v : views) {
                delivered += rt.route(v, transformed) == route::verdict::deliver;
            }
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * views.size()));
    state.counters["deliveries_per_event"] =
        static_cast<double>(delivered) / static_cast<double>(state.iterations() * views.size());
}
BENCHMARK(BM_RouteFanout);

}  // namespace
