#pragma once

#include "admit/dedup.h"
#include "admit/plan_enforcer.h"
#include "http/cors.h"
#include "http/net.h"
#include "http/server.h"
#include "identity/service.h"
#include "sources/segment/decoder.h"
#include "switchyard/log.h"
#include "telemetry/metrics.h"

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

namespace switchyard::sources::segment {

struct source_entry {
    std::string name;
    std::vector<std::string> allowed_origins;
    std::string settings_api_host;
    http::cors_policy cors;                      // built from allowed_origins by the handler
    std::shared_ptr<admit::plan_enforcer> plan;  // null: no tracking plan
    enrich::source_policy enrich;                // sources[].ip, sources[].bots
};

struct handler_options {
    limits event_limits;
    std::vector<http::cidr> trusted_proxies;
    std::chrono::seconds retry_after{5};
    admit::dedup_window* dedup = nullptr;      // null: no dedup
    const enrich::pipeline* enrich = nullptr;  // null: events are stored as received
    identity::service* identity = nullptr;     // null: no stitching, no suppression
};

// The Segment HTTP Tracking API (and analytics.js short routes, pixel, settings) on top of the
// event log: authenticate, decode, append, and answer only once the events are durable.
// One instance serves every I/O thread; per-thread state (the simdjson parser) is thread_local.
class handler final : public http::handler {
  public:
    handler(handler_options opts, std::vector<source_entry> sources,
            std::unordered_map<std::string, std::size_t> write_keys, event_appender& log,
            telemetry::metrics& m);

    void handle(http::request& req, const boost::asio::ip::address& peer,
                responder respond) override;

  private:
    enum class route_id {
        track,
        identify,
        page,
        screen,
        group,
        alias,
        batch,
        sdk_metrics,
        pixel,
        settings,
        unknown
    };
    struct route {
        route_id id = route_id::unknown;
        event_type type = event_type::unknown;
        std::string_view label;  // metrics label: the canonical route
        std::string_view arg;    // pixel type or settings write key
    };
    static route match(std::string_view path);

    void handle_events(http::request& req, const route& r, const std::string& ip,
                       responder& respond);
    void handle_pixel(http::request& req, const route& r, const std::string& ip,
                      responder& respond);
    // Fills the enrichment fields of `info` for this request and source.
    void set_enrichment(const http::request& req, const source_entry& src, bool pixel,
                        request_info& info) const;
    void handle_settings(http::request& req, const route& r, responder& respond);
    void handle_preflight(http::request& req, const route& r, responder& respond);

    // Appends accepted events and quarantined rejections, then answers via `finish`.
    void append_and_answer(const source_entry* src, std::string_view route_label,
                           std::string_view origin, decoded& d, bool single, bool pixel,
                           responder& respond);

    // The source of the request's write key (Basic auth first, then the body's); null when
    // missing or unknown. `used_key` receives the key that matched.
    const source_entry* authenticate(const http::request& req, std::string_view body_key,
                                     std::string* used_key = nullptr) const;

    handler_options opts_;
    std::vector<source_entry> sources_;
    std::unordered_map<std::string, std::size_t> keys_;
    http::cors_policy any_source_cors_;  // union of allowlists, for preflights (no key yet)
    event_appender& log_;
    telemetry::metrics& metrics_;
    prometheus::Family<prometheus::Counter>* suppressed_ = nullptr;
    prometheus::Family<prometheus::Counter>* bots_dropped_;
};

// Builds the JSON error body every error answer uses:
// {"success":false,"code":N,"error":..,"message":..}.
http::response json_error(unsigned status, std::string_view code, std::string_view message);

}  // namespace switchyard::sources::segment
