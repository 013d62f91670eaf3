#pragma once

#include "enrich/pipeline.h"
#include "switchyard/event.h"

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::sources::segment {

// Limits as the Segment HTTP API documents them.
struct limits {
    std::size_t max_event_bytes = 32 * 1024;
    std::size_t max_batch_bytes = 500 * 1024;
    std::size_t max_batch_events = 2500;
};

struct request_info {
    event_type route_type = event_type::unknown;  // set for single-event routes
    bool batch = false;                           // /v1/batch, /v1/import, /v1/b
    std::string_view source;
    std::int64_t received_at_ms = 0;
    std::string_view client_ip;  // empty: do not set context.ip
    // The key the request authenticated with. An event in a batch carrying a different
    // `writeKey` is rejected (write_key_mismatch) rather than attributed to the wrong source.
    std::string_view write_key;
    // Enrichment (null: events are stored as received) and the request's settings for it.
    const enrich::pipeline* enrich = nullptr;
    enrich::request_input enrich_request;
    // The request's User-Agent header, used as context.userAgent when an event lacks one (the
    // pixel route: the browser itself is the client). Empty: not used.
    std::string_view fallback_user_agent;
};

// One event that failed the per-spec checks. `code` is a stable, low-cardinality reason (for
// metrics); `message` says what was wrong; `raw` is the event as received (minified JSON).
struct rejected_event {
    std::size_t index = 0;
    std::string_view code;
    std::string message;
    std::string raw;
};

// A failure of the whole body: the request is answered with `status` and nothing is stored.
struct body_error {
    int status = 400;
    std::string_view code;
    std::string message;
};

// The identifiers of a decoded event that its header does not carry (for identity stitching).
struct event_ids {
    std::string device_id;    // context.device.id (or the batch context's), when a string
    std::string previous_id;  // alias previousId
};

struct decoded {
    std::vector<event> events;
    std::vector<event_ids> ids;  // parallel to events
    std::vector<rejected_event> rejected;
    void clear() {
        events.clear();
        ids.clear();
        rejected.clear();
    }
};

// Turns Segment HTTP API bodies into canonical events. Owns a simdjson parser, so one decoder
// per thread (the HTTP layer keeps one per I/O thread); never shared.
class decoder {
  public:
    explicit decoder(limits l) : limits_(l) {}

    // Parses and checks the body's shape and size limits. On success the parsed document stays
    // valid until the next parse().
    std::optional<body_error> parse(std::string_view body, bool batch);

    // The write key carried in the body: top-level `writeKey`, else the first event's (analytics.js
    // batches carry it per event). Empty when absent.
    std::string_view body_write_key() const;

    // Checks each event against the spec and serializes the accepted ones as canonical JSON.
    void decode(const request_info& info, decoded& out);

    const limits& get_limits() const noexcept { return limits_; }

  private:
    bool decode_one(simdjson::dom::object obj, std::size_t index, const request_info& info,
                    decoded& out);

    limits limits_;
    simdjson::dom::parser parser_;
    simdjson::dom::element root_;
    bool batch_ = false;
    std::string_view batch_sent_at_;
    simdjson::dom::object batch_context_;
    simdjson::dom::object batch_integrations_;
    bool has_batch_context_ = false;
    bool has_batch_integrations_ = false;
    simdjson::internal::string_builder<> sb_;
    enrich::event_output enriched_;
};

}  // namespace switchyard::sources::segment
