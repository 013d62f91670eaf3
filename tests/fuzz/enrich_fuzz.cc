// Fuzz target for the enrichment stage: any bytes, used as a user agent, an IP address, a page
// URL and a referrer, must be enriched without crashing, and whatever the stage adds must keep
// the context valid JSON. The pipeline is built once with the default data (uap-core regexes
// from /usr/share/uap-core, the built-in bot and referrer lists).
// Built as a libFuzzer target with clang (-fsanitize=fuzzer); otherwise the driver below
// replays the corpus directory as a normal test.
#include "enrich/pipeline.h"

#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::cerr << "invariant violated: " << what << '\n';
        std::abort();
    }
}

const switchyard::enrich::pipeline& stage() {
    static auto p = [] {
        std::vector<std::string> errs;
        auto built = switchyard::enrich::pipeline::build({}, ".", errs);
        for (const auto& e : errs) std::cerr << e << '\n';
        check(built != nullptr, "the default enrichment loads");
        return built;
    }();
    return *p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace switchyard::enrich;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    // simdjson only hands the stage valid UTF-8; keep to that contract.
    if (!simdjson::validate_utf8(text.data(), text.size())) return 0;
    source_policy truncate;
    truncate.ip = privacy::ip_mode::truncate;
    thread_local simdjson::dom::parser parser;
    for (int variant = 0; variant < 3; ++variant) {
        event_input in;
        in.user_agent = text;
        in.has_user_agent = true;
        in.ip = text;
        in.page_url = variant == 0 ? text : std::string_view("https://shop.example/?utm_source=x");
        in.page_search = text;
        in.page_referrer = variant == 1 ? std::string_view("https://www.google.com/") : text;
        event_output out;
        stage().run(in, {variant == 2 ? nullptr : &truncate, variant == 2}, out);
        std::string obj = "{" + (out.members.empty() ? std::string() : out.members.substr(1)) + "}";
        simdjson::dom::element e;
        check(parser.parse(obj).get(e) == simdjson::SUCCESS, "added members form valid JSON");
        check(out.ip.size() <= 45, "a rewritten IP is an address");
    }
    return 0;
}

#include "replay_main.h"
