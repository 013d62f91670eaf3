// Fuzz target for the Segment decoder: any bytes, as a single event or a batch, must either be
// refused with a body error or decode into events whose JSON re-parses and rejections that
// carry a reason. Built as a libFuzzer target with clang (-fsanitize=fuzzer); otherwise the
// driver below replays the corpus directory as a normal test.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>

#include <simdjson.h>

#include "sources/segment/decoder.h"

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::cerr << "invariant violated: " << what << '\n';
        std::abort();
    }
}

void run_one(std::string_view body, bool batch) {
    using namespace switchyard::sources::segment;
    thread_local decoder dec(limits{});
    thread_local simdjson::dom::parser verify;
    if (auto err = dec.parse(body, batch); err) {
        check(err->status == 400, "body errors are 400");
        check(!err->message.empty(), "body error has a message");
        return;
    }
    (void)dec.body_write_key();
    request_info info;
    info.route_type = batch ? switchyard::event_type::unknown : switchyard::event_type::track;
    info.batch = batch;
    info.source = "fuzz";
    info.received_at_ms = 1'700'000'000'000;
    info.client_ip = "127.0.0.1";
    decoded out;
    dec.decode(info, out);
    for (const auto& ev : out.events) {
        simdjson::dom::element e;
        check(verify.parse(ev.json).get(e) == simdjson::SUCCESS, "stored JSON re-parses");
        check(!ev.header.message_id.empty(), "every event has a messageId");
    }
    for (const auto& r : out.rejected) {
        check(!r.code.empty() && !r.message.empty(), "rejections carry a reason");
        simdjson::dom::element e;
        check(verify.parse(r.raw).get(e) == simdjson::SUCCESS, "quarantined raw JSON re-parses");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view body(reinterpret_cast<const char*>(data), size);
    run_one(body, false);
    run_one(body, true);
    return 0;
}

#include "replay_main.h"
