// Warehouse loading throughput over the reference traffic mix (../shared/bench/make_payloads.py:
// 100,000 Segment events), through the real loader (rows, schema evolution, type fitting) into
// a real database, one thread, in delivery batches of the given size:
//
//   python3 /work/shared/bench/make_payloads.py /tmp/bp
//   export SWITCHYARD_BENCH_EVENTS=/tmp/bp/events_100k.ndjson
//   build-release/tests/switchyard_bench --benchmark_filter=Warehouse
//
// BM_WarehouseRows: building rows only (no database). BM_WarehouseSqlite: into a fresh SQLite
// file in SWITCHYARD_BENCH_TMPDIR (default /tmp). BM_WarehousePostgres: into the server named by
// SWITCHYARD_BENCH_PG_DSN (skipped without it); each iteration loads into a fresh schema
// namespace, so tables are created in the first batches as in a first deployment.
// tests/bench/warehouse/run.py starts a PostgreSQL server and runs both.
//
// Counters: events_per_s (delivery items), rows_per_s (rows written: tracks + per-event table
// + identifies/users/pages/...). Measurement only: nothing here asserts on a time.
#include "switchyard/destination.h"
#include "warehouse/loader.h"
#include "warehouse/postgres_backend.h"
#include "warehouse/sqlite_backend.h"

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace switchyard;

struct bench_event {
    event_header h;
    std::string json;
};

const std::vector<bench_event>* events() {
    static const std::vector<bench_event>* evs = []() -> const std::vector<bench_event>* {
        const char* path = std::getenv("SWITCHYARD_BENCH_EVENTS");
        if (path == nullptr || *path == '\0') return nullptr;
        std::ifstream f(path);
        if (!f) return nullptr;
        auto* out = new std::vector<bench_event>;
        std::string line;
        simdjson::dom::parser parser;
        std::int64_t t = 1'700'000'000'000;
        while (std::getline(f, line)) {
            auto doc = parser.parse(line);
            if (doc.error()) continue;
            bench_event e;
            std::string_view s;
            if (doc["type"].get(s) == simdjson::SUCCESS) e.h.type = event_type_from_string(s);
            if (doc["messageId"].get(s) == simdjson::SUCCESS) e.h.message_id = s;
            if (doc["userId"].get(s) == simdjson::SUCCESS) e.h.user_id = s;
            if (doc["anonymousId"].get(s) == simdjson::SUCCESS) e.h.anonymous_id = s;
            if (e.h.type == event_type::track) {
                if (doc["event"].get(s) == simdjson::SUCCESS) e.h.event_name = s;
            } else if (doc["name"].get(s) == simdjson::SUCCESS) {
                e.h.event_name = s;
            }
            e.h.source = "bench";
            e.h.received_at_ms = t++;
            e.json = std::move(line);
            out->push_back(std::move(e));
        }
        if (out->empty()) {
            delete out;
            return nullptr;
        }
        return out;
    }();
    return evs;
}

std::vector<delivery_item> items_of(const std::vector<bench_event>& evs, const std::string& ns) {
    std::vector<delivery_item> items;
    items.reserve(evs.size());
    std::uint64_t off = 0;
    for (const auto& e : evs) {
        event_view v;
        v.kind = record_kind::event;
        v.type = e.h.type;
        v.received_at_ms = e.h.received_at_ms;
        v.source = ns;
        v.message_id = e.h.message_id;
        v.user_id = e.h.user_id;
        v.anonymous_id = e.h.anonymous_id;
        v.event_name = e.h.event_name;
        v.json = e.json;
        items.push_back({off++, v});
    }
    return items;
}

void run(benchmark::State& state,
         const std::function<std::unique_ptr<warehouse::backend>(std::size_t iteration)>& make) {
    const auto* evs = events();
    if (evs == nullptr) {
        state.SkipWithError("set SWITCHYARD_BENCH_EVENTS to events_100k.ndjson");
        return;
    }
    const auto batch = static_cast<std::size_t>(state.range(0));
    std::uint64_t rows = 0, events_done = 0;
    // Every pass (across benchmarks and runs against one server) loads into a new namespace.
    static std::size_t iteration = 0;
    for (auto _ : state) {
        state.PauseTiming();
        const std::string ns =
            "bench_" + std::to_string(::getpid()) + "_" + std::to_string(iteration);
        auto items = items_of(*evs, ns);
        auto backend = make(iteration++);
        if (!backend) {
            state.SkipWithError("no backend");
            return;
        }
        warehouse::loader l(std::move(backend), {});
        state.ResumeTiming();
        for (std::size_t i = 0; i < items.size(); i += batch) {
            const std::size_t n = std::min(batch, items.size() - i);
            auto out = l.send(std::span<const delivery_item>(items.data() + i, n));
            if (out.status != send_status::delivered) {
                state.SkipWithError(out.reason.c_str());
                return;
            }
        }
        state.PauseTiming();
        rows += l.stats().rows.load();
        events_done += items.size();
        l.close();
        state.ResumeTiming();
    }
    state.counters["events_per_s"] =
        benchmark::Counter(static_cast<double>(events_done), benchmark::Counter::kIsRate);
    state.counters["rows_per_s"] =
        benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsRate);
    state.counters["rows_per_event"] =
        events_done ? static_cast<double>(rows) / static_cast<double>(events_done) : 0;
}

void BM_WarehouseRows(benchmark::State& state) {
    const auto* evs = events();
    if (evs == nullptr) {
        state.SkipWithError("set SWITCHYARD_BENCH_EVENTS to events_100k.ndjson");
        return;
    }
    auto items = items_of(*evs, "bench");
    warehouse::row_builder b({});
    std::vector<warehouse::row> rows;
    std::string why;
    std::uint64_t n = 0;
    for (auto _ : state) {
        for (const auto& it : items) {
            rows.clear();
            b.build(it.event, rows, why);
            n += rows.size();
        }
    }
    state.counters["events_per_s"] = benchmark::Counter(
        static_cast<double>(items.size() * state.iterations()), benchmark::Counter::kIsRate);
    state.counters["rows_per_s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_WarehouseRows)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_WarehouseSqlite(benchmark::State& state) {
    std::string parent = "/tmp";
    if (const char* p = std::getenv("SWITCHYARD_BENCH_TMPDIR"); p && *p) parent = p;
    const auto dir = std::filesystem::path(parent) / "switchyard-whbench";
    std::filesystem::remove_all(dir);
    run(state, [&](std::size_t i) -> std::unique_ptr<warehouse::backend> {
        warehouse::sqlite_options o;
        o.path = dir / ("wh" + std::to_string(i) + ".db");
        return std::make_unique<warehouse::sqlite_backend>(o);
    });
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_WarehouseSqlite)
    ->Arg(500)
    ->Arg(5000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2)
    ->UseRealTime();

void BM_WarehousePostgres(benchmark::State& state) {
    const char* dsn = std::getenv("SWITCHYARD_BENCH_PG_DSN");
    if (dsn == nullptr || *dsn == '\0') {
        state.SkipWithError("set SWITCHYARD_BENCH_PG_DSN (tests/bench/warehouse/run.py does)");
        return;
    }
    run(state, [&](std::size_t) -> std::unique_ptr<warehouse::backend> {
        warehouse::postgres_options o;
        o.dsn = dsn;
        return std::make_unique<warehouse::postgres_backend>(o);
    });
}
BENCHMARK(BM_WarehousePostgres)
    ->Arg(500)
    ->Arg(5000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2)
    ->UseRealTime();

}  // namespace
