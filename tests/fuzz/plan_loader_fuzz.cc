// Fuzz target for the tracking-plan loader: any bytes, read as a YAML plan and as a JSON Schema
// file, must either load or produce errors that carry a position, never crash. A plan that
// loads is exercised: validation of a fixed event, omit() of its violations, and its docs.
// Built as a libFuzzer target with clang (-fsanitize=fuzzer); otherwise the driver below
// replays the corpus directory as a normal test.
#include "plan/plan.h"

#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::cerr << "invariant violated: " << what << '\n';
        std::abort();
    }
}

constexpr std::string_view sample_events[] = {
    R"({"type":"track","event":"Order Completed","properties":{"order_id":"ord_1","revenue":"x",)"
    R"("items":[{"sku":1},{"qty":0}],"extra":{"a":[1,2]}}})",
    R"({"type":"identify","traits":{"email":"a@b","plan":"team"}})",
    R"({"type":"page","name":"Pricing","properties":null})",
    R"({"type":"track","event":"","properties":{"":1,"a.b":[null]}})",
};

void run_one(std::string_view text, std::string_view file) {
    using namespace switchyard::plan;
    std::vector<std::string> errors;
    auto plan = load_plan_text(text, file, errors);
    check((plan == nullptr) != errors.empty(), "a plan loads exactly when there are no errors");
    for (const auto& e : errors) {
        check(e.compare(0, file.size(), file) == 0 && e.size() > file.size() + 2,
              "errors name the file and say something");
    }
    if (!plan) return;
    thread_local simdjson::dom::parser verify;
    for (auto ev : sample_events) {
        std::vector<violation> v;
        check(plan->validate(ev, v), "sample events are objects");
        std::string rewritten = plan->omit(ev, v);
        simdjson::dom::element e;
        check(verify.parse(rewritten).get(e) == simdjson::SUCCESS, "omit() output re-parses");
        std::string json;
        append_violations_json(v, json);
        check(verify.parse(json).get(e) == simdjson::SUCCESS, "violations JSON parses");
    }
    (void)plan->markdown();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    run_one(text, "fuzz.yaml");
    run_one(text, "fuzz.json");
    return 0;
}

#include "replay_main.h"
