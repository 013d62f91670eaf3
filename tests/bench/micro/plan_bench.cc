// Tracking-plan validation cost per event: a generated 50-event plan (the track events of the
// reference batch plus synthetic ones, with a mixture of constraints) validating every event of
// batch100.json. Reads $SWITCHYARD_BENCH_PAYLOADS (default /work/shared/bench).
#include "plan/plan.h"

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using switchyard::plan::compiled_plan;
using switchyard::plan::violation;

// The plan: every track event the reference batch sends, then synthetic events up to 50 so the
// event lookup works on a realistically sized table.
std::string generated_plan() {
    std::string y = R"(name: bench
version: "1"
defaults: { additional_properties: deny }
track:
)";
    const char* product = R"(    properties:
      product_id: { type: string, required: true, pattern: "^sku_[0-9]+$", max_length: 32 }
      price: { type: number, min: 0, max: 100000 }
      currency: { type: string, enum: [USD, EUR, GBP, JPY] }
)";
    for (const char* name : {"Product Viewed", "Product Added", "Button Clicked", "Video Played",
                             "Checkout Started", "Signed Up"}) {
        y += fmt::format("  - name: {}\n    owner: web-team\n{}", name, product);
    }
    y += R"(  - name: Search Performed
    properties:
      query: { type: string, required: true, min_length: 1, max_length: 200 }
      results: { type: integer, min: 0 }
  - name: Order Completed
    properties:
      order_id: { type: string, required: true, pattern: "^o_[0-9]+$" }
      revenue: { type: number, min: 0 }
      currency: { type: string, enum: [USD, EUR, GBP, JPY] }
      coupon: { type: [string, "null"] }
      products:
        type: array
        min_items: 1
        items:
          type: object
          properties:
            product_id: { type: string, required: true }
            price: { type: number, min: 0 }
            quantity: { type: integer, min: 1 }
)";
    for (int i = 8; i < 50; ++i) {
        y += fmt::format(R"(  - name: Synthetic Event {}
    properties:
      id_{}: {{ type: string, required: true, format: uuid }}
      amount: {{ type: number, exclusive_min: 0 }}
      kind: {{ type: string, enum: [a, b, c] }}
      at: {{ type: string, format: date-time }}
      tags: {{ type: array, max_items: 10, items: {{ type: string }} }}
)",
                         i, i);
    }
    y += R"(identify:
  traits:
    email: { type: string, format: email }
    plan: { type: string, enum: [free, pro, enterprise] }
    created_at: { type: string, format: date-time }
page:
  - name: "*"
    properties:
      path: { type: string, required: true }
      url: { type: string, format: uri }
      title: { type: string }
      referrer: { type: string }
      search: { type: string }
screen:
  - name: "*"
    properties:
      path: { type: string, required: true }
      url: { type: string, format: uri }
      title: { type: string }
      referrer: { type: string }
)";
    return y;
}

struct fixture {
    std::shared_ptr<const compiled_plan> plan;
    std::vector<std::string> events;
    std::string error;
};

const fixture& load() {
    static fixture f = [] {
        fixture r;
        const char* dir = std::getenv("SWITCHYARD_BENCH_PAYLOADS");
        std::string path = std::string(dir && *dir ? dir : "/work/shared/bench") + "/batch100.json";
        std::ifstream in(path, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        simdjson::dom::parser parser;
        simdjson::dom::array batch;
        if (parser.parse(ss.str()).get_object()["batch"].get(batch) != simdjson::SUCCESS) {
            r.error = "cannot read the batch array of " + path;
            return r;
        }
        for (simdjson::dom::element e : batch) r.events.push_back(simdjson::minify(e));
        std::vector<std::string> errors;
        r.plan = switchyard::plan::load_plan_text(generated_plan(), "bench.yaml", errors);
        if (!r.plan) r.error = errors.empty() ? "plan did not load" : errors.front();
        return r;
    }();
    return f;
}

void BM_PlanValidateBatch100(benchmark::State& state) {
    const fixture& f = load();
    if (!f.error.empty()) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    std::vector<violation> out;
    std::size_t violations = 0;
    for (auto _ : state) {
        for (const auto& ev : f.events) {
            out.clear();
            benchmark::DoNotOptimize(f.plan->validate(ev, out));
            violations += out.size();
        }
    }
    const auto n = static_cast<double>(f.events.size());
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * f.events.size()));
    // An inverted rate is seconds per event, printed with an SI prefix ("985ns").
    state.counters["time_per_event"] = benchmark::Counter(
        n, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    state.counters["violations_per_batch"] =
        static_cast<double>(violations) / static_cast<double>(state.iterations());
    state.SetLabel(
        fmt::format("{} events, plan of {} events", f.events.size(), f.plan->event_count()));
}
BENCHMARK(BM_PlanValidateBatch100);

// The floor under BM_PlanValidateBatch100: parsing the same events with a reused simdjson
// parser (validate() does this first), so the difference is the plan walk itself.
void BM_PlanParseOnlyBatch100(benchmark::State& state) {
    const fixture& f = load();
    if (!f.error.empty()) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    simdjson::dom::parser parser;
    for (auto _ : state) {
        for (const auto& ev : f.events) {
            simdjson::dom::element doc;
            benchmark::DoNotOptimize(parser.parse(ev.data(), ev.size(), true).get(doc));
        }
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * f.events.size()));
    state.counters["time_per_event"] = benchmark::Counter(
        static_cast<double>(f.events.size()),
        benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_PlanParseOnlyBatch100);

void BM_PlanLoad(benchmark::State& state) {
    std::string text = generated_plan();
    for (auto _ : state) {
        std::vector<std::string> errors;
        benchmark::DoNotOptimize(switchyard::plan::load_plan_text(text, "bench.yaml", errors));
    }
}
BENCHMARK(BM_PlanLoad)->Unit(benchmark::kMicrosecond);

}  // namespace
