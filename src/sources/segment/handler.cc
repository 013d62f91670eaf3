#include "sources/segment/handler.h"

#include "admit/dedup.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/time.h"
#include "util/url.h"

#include <boost/beast/core/string.hpp>
#include <fmt/format.h>

namespace switchyard::sources::segment {

namespace bhttp = boost::beast::http;

namespace {

// The 1×1 transparent GIF the pixel route always answers with.
constexpr unsigned char pixel_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

http::response json_ok(std::string body) {
    http::response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, "application/json");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

http::response gif_response() {
    http::response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, "image/gif");
    res.set(bhttp::field::cache_control, "no-cache, no-store, must-revalidate");
    res.body().assign(reinterpret_cast<const char*>(pixel_gif), sizeof(pixel_gif));
    res.prepare_payload();
    return res;
}

std::string_view basic_auth_key(std::string_view auth, std::string& scratch) {
    if (auth.size() < 6 || !boost::beast::iequals(auth.substr(0, 6), "Basic ")) return {};
    auto b64 = auth.substr(6);
    while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
    if (!util::base64_decode(b64, scratch)) return {};
    // "writeKey:" with or without the trailing colon (and an ignored password).
    auto colon = scratch.find(':');
    return std::string_view(scratch).substr(0, colon);
}

std::string_view query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        auto amp = query.find('&');
        auto part = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        auto eq = part.find('=');
        if (part.substr(0, eq) == name) {
            return eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
        }
    }
    return {};
}

std::string quarantine_json(std::string_view source, std::string_view route,
                            std::int64_t received_ms, std::size_t index, std::string_view code,
                            std::string_view message, std::string_view raw_json,
                            std::string_view raw_text, std::string_view extra = {}) {
    std::string j = "{\"reason\":";
    util::append_json_string(j, code);
    j += ",\"message\":";
    util::append_json_string(j, message);
    j += ",\"source\":";
    util::append_json_string(j, source);
    j += ",\"route\":";
    util::append_json_string(j, route);
    j += fmt::format(",\"index\":{},\"receivedAt\":\"", index);
    util::append_iso8601_ms(j, received_ms);
    j += '"';
    if (!raw_json.empty()) {
        j += ",\"event\":";
        j += raw_json;
    } else {
        j += ",\"raw_base64\":";
        util::append_json_string(j, util::base64_encode(raw_text));
    }
    j += extra;
    j += '}';
    return j;
}

// The quarantine reason of an event that broke its tracking plan: the first violation, and how
// many more there are (all of them are stored under "violations").
std::string plan_message(const plan::compiled_plan& p, const std::vector<plan::violation>& v) {
    const auto& f = v.front();
    std::string m =
        fmt::format("tracking plan {} (version {}): {}{}{} (expected {}, got {})", p.name(),
                    p.version(), f.path.empty() ? "" : f.path, f.path.empty() ? "" : ": ",
                    plan::to_string(f.kind), f.expected, f.actual);
    if (v.size() > 1) m += fmt::format(" and {} more", v.size() - 1);
    return m;
}

}  // namespace

http::response json_error(unsigned status, std::string_view code, std::string_view message) {
    http::response res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::content_type, "application/json");
    std::string body = fmt::format(R"({{"success":false,"code":{},"error":)", status);
    util::append_json_string(body, code);
    body += ",\"message\":";
    util::append_json_string(body, message);
    body += '}';
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

handler::handler(handler_options opts, std::vector<source_entry> sources,
                 std::unordered_map<std::string, std::size_t> write_keys, event_appender& log,
                 telemetry::metrics& m)
    : opts_(std::move(opts)),
      sources_(std::move(sources)),
      keys_(std::move(write_keys)),
      log_(log),
      metrics_(m),
      suppressed_(&m.counters("switchyard_identity_suppressed_events_total",
                              "Events refused at admission because their person is on the "
                              "suppression list (answered 2xx, nothing stored).")),
      bots_dropped_(&m.counters("switchyard_enrich_bot_events_dropped_total",
                                "Events from bots kept out of destinations by a source's "
                                "bots: drop policy (stored in quarantine with reason bot).")) {
    std::vector<std::string> all;
    for (auto& s : sources_) {
        s.cors = http::cors_policy(s.allowed_origins);
        all.insert(all.end(), s.allowed_origins.begin(), s.allowed_origins.end());
    }
    any_source_cors_ = http::cors_policy(all);
}

handler::route handler::match(std::string_view path) {
    static constexpr std::pair<std::string_view, route> table[] = {
        {"/v1/track", {route_id::track, event_type::track, "/v1/track", {}}},
        {"/v1/t", {route_id::track, event_type::track, "/v1/track", {}}},
        {"/v1/identify", {route_id::identify, event_type::identify, "/v1/identify", {}}},
        {"/v1/i", {route_id::identify, event_type::identify, "/v1/identify", {}}},
        {"/v1/page", {route_id::page, event_type::page, "/v1/page", {}}},
        {"/v1/p", {route_id::page, event_type::page, "/v1/page", {}}},
        {"/v1/screen", {route_id::screen, event_type::screen, "/v1/screen", {}}},
        {"/v1/s", {route_id::screen, event_type::screen, "/v1/screen", {}}},
        {"/v1/group", {route_id::group, event_type::group, "/v1/group", {}}},
        {"/v1/g", {route_id::group, event_type::group, "/v1/group", {}}},
        {"/v1/alias", {route_id::alias, event_type::alias, "/v1/alias", {}}},
        {"/v1/a", {route_id::alias, event_type::alias, "/v1/alias", {}}},
        {"/v1/batch", {route_id::batch, event_type::unknown, "/v1/batch", {}}},
        {"/v1/import", {route_id::batch, event_type::unknown, "/v1/batch", {}}},
        {"/v1/b", {route_id::batch, event_type::unknown, "/v1/batch", {}}},
        {"/v1/m", {route_id::sdk_metrics, event_type::unknown, "/v1/m", {}}},
    };
    if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    for (const auto& [p, r] : table) {
        if (p == path) return r;
    }
    constexpr std::string_view pixel_prefix = "/v1/pixel/";
    if (path.substr(0, pixel_prefix.size()) == pixel_prefix) {
        auto t = path.substr(pixel_prefix.size());
        return {route_id::pixel, event_type_from_string(t), "/v1/pixel", t};
    }
    constexpr std::string_view proj_prefix = "/v1/projects/";
    constexpr std::string_view settings_suffix = "/settings";
    if (path.substr(0, proj_prefix.size()) == proj_prefix &&
        path.size() > proj_prefix.size() + settings_suffix.size() &&
        path.substr(path.size() - settings_suffix.size()) == settings_suffix) {
        return {route_id::settings, event_type::unknown, "/v1/projects/settings",
                path.substr(proj_prefix.size(),
                            path.size() - proj_prefix.size() - settings_suffix.size())};
    }
    return {};
}

const source_entry* handler::authenticate(const http::request& req, std::string_view body_key,
                                          std::string* used_key) const {
    std::string scratch;
    std::string_view key = basic_auth_key(req[bhttp::field::authorization], scratch);
    if (key.empty()) key = body_key;
    if (key.empty()) return nullptr;
    auto it = keys_.find(std::string(key));
    if (it == keys_.end()) return nullptr;
    if (used_key) *used_key = it->first;
    return &sources_[it->second];
}

void handler::handle(http::request& req, const boost::asio::ip::address& peer, responder respond) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    route r = match(path);
    if (r.id == route_id::unknown) {
        metrics_.count_request("unknown", 404);
        respond(json_error(404, "not_found", fmt::format("no route for {}", path.substr(0, 200))));
        return;
    }
    std::string ip = http::client_ip(peer, req["X-Forwarded-For"], opts_.trusted_proxies);
    if (req.method() == bhttp::verb::options) {
        handle_preflight(req, r, respond);
        return;
    }
    if (r.id == route_id::pixel) {
        if (req.method() != bhttp::verb::get) {
            metrics_.count_request(r.label, 405);
            auto res = json_error(405, "method_not_allowed", "use GET for the pixel route");
            res.set(bhttp::field::allow, "GET");
            respond(std::move(res));
            return;
        }
        handle_pixel(req, r, ip, respond);
        return;
    }
    if (r.id == route_id::settings) {
        if (req.method() != bhttp::verb::get) {
            metrics_.count_request(r.label, 405);
            auto res = json_error(405, "method_not_allowed", "use GET for the settings route");
            res.set(bhttp::field::allow, "GET");
            respond(std::move(res));
            return;
        }
        handle_settings(req, r, respond);
        return;
    }
    if (req.method() != bhttp::verb::post) {
        metrics_.count_request(r.label, 405);
        auto res = json_error(405, "method_not_allowed", "use POST");
        res.set(bhttp::field::allow, "POST, OPTIONS");
        respond(std::move(res));
        return;
    }
    if (r.id == route_id::sdk_metrics) {
        // analytics.js posts its own delivery telemetry here: not events, nothing to store.
        metrics_.count_request(r.label, 200);
        auto res = json_ok(R"({"success":true,"code":200})");
        any_source_cors_.apply(res, req[bhttp::field::origin]);
        respond(std::move(res));
        return;
    }
    handle_events(req, r, ip, respond);
}

void handler::handle_preflight(http::request& req, const route& r, responder& respond) {
    std::string_view origin = req[bhttp::field::origin];
    bool allowed = false;
    for (const auto& s : sources_) {
        if (s.cors.allows(origin)) {
            allowed = true;
            break;
        }
    }
    if (!allowed) {
        metrics_.count_request(r.label, 403);
        auto res = json_error(
            403, "origin_not_allowed",
            fmt::format("origin '{}' is not allowed by any source", origin.substr(0, 200)));
        res.set(bhttp::field::vary, "Origin");
        respond(std::move(res));
        return;
    }
    http::response res{bhttp::status::no_content, 11};
    // Echo the exact origin only when some source lists it exactly (credentials allowed);
    // otherwise a "*" allowlist answers "*" without credentials.
    bool exact = false;
    for (const auto& s : sources_) {
        if (s.cors.allows(origin) && !s.cors.any()) exact = true;
        if (exact) break;
    }
    res.set(bhttp::field::vary, "Origin");
    if (exact) {
        res.set(bhttp::field::access_control_allow_origin, origin);
        res.set(bhttp::field::access_control_allow_credentials, "true");
    } else {
        res.set(bhttp::field::access_control_allow_origin, "*");
    }
    res.set(bhttp::field::access_control_allow_methods, "POST, GET, OPTIONS");
    res.set(bhttp::field::access_control_allow_headers, http::cors_allowed_headers);
    res.set(bhttp::field::access_control_max_age, "86400");
    res.prepare_payload();
    metrics_.count_request(r.label, 204);
    respond(std::move(res));
}

void handler::handle_events(http::request& req, const route& r, const std::string& ip,
                            responder& respond) {
    thread_local decoder dec(opts_.event_limits);
    thread_local decoded out;
    std::string_view origin = req[bhttp::field::origin];
    bool batch = r.id == route_id::batch;

    auto err = dec.parse(req.body(), batch);
    // Authenticate before answering anything about the body's contents.
    std::string used_key;
    const source_entry* src =
        authenticate(req, err ? std::string_view{} : dec.body_write_key(), &used_key);
    if (src == nullptr) {
        metrics_.count_request(r.label, 401);
        auto res = json_error(401, "unauthorized",
                              "missing or unknown write key (send Authorization: Basic "
                              "base64(writeKey:) or writeKey in the body)");
        res.set(bhttp::field::www_authenticate, "Basic realm=\"switchyard\"");
        any_source_cors_.apply(res, origin);
        respond(std::move(res));
        return;
    }
    if (err) {
        metrics_.count_request(r.label, static_cast<unsigned>(err->status));
        metrics_.count_rejected(err->code, 1);
        auto res = json_error(static_cast<unsigned>(err->status), err->code, err->message);
        src->cors.apply(res, origin);
        respond(std::move(res));
        return;
    }
    request_info info;
    info.route_type = r.type;
    info.batch = batch;
    info.source = src->name;
    info.received_at_ms = util::now_ms();
    info.client_ip = ip;
    info.write_key = used_key;
    set_enrichment(req, *src, false, info);
    out.clear();
    dec.decode(info, out);
    append_and_answer(src, r.label, origin, out, !batch, false, respond);
}

void handler::set_enrichment(const http::request& req, const source_entry& src, bool pixel,
                             request_info& info) const {
    if (opts_.enrich == nullptr) return;
    info.enrich = opts_.enrich;
    info.enrich_request.policy = &src.enrich;
    const auto& h = opts_.enrich->anonymous_header();
    info.enrich_request.anonymous = !h.empty() && req.find(h) != req.end();
    if (pixel) info.fallback_user_agent = req[bhttp::field::user_agent];
}

void handler::append_and_answer(const source_entry* src, std::string_view route_label,
                                std::string_view origin, decoded& d, bool single, bool pixel,
                                responder& respond) {
    record_batch batch;
    std::string payload;
    std::int64_t now = util::now_ms();
    std::string src_name = src ? src->name : std::string();
    // messageId dedup: a repeat inside the window is answered like the original and not stored
    // again. Ids inserted here are forgotten if the append fails, so the retry is not a "repeat".
    std::vector<std::string> inserted;
    std::size_t duplicates = 0, bots_dropped = 0, suppressed = 0;
    thread_local std::vector<plan::violation> violations;
    thread_local identity::resolution resolution;
    std::vector<std::string> links;  // identity_link record payloads, for a retry on failure
    identity::service* ids = opts_.identity;
    if (ids != nullptr && ids->has_pending()) ids->take_pending(links);
    for (std::size_t i = 0; i < d.events.size(); ++i) {
        auto& ev = d.events[i];
        identity::observation ob;
        if (ids != nullptr) {
            ob.user_id = ev.header.user_id;
            ob.anonymous_id = ev.header.anonymous_id;
            if (i < d.ids.size()) {
                ob.device_id = d.ids[i].device_id;
                ob.previous_id = d.ids[i].previous_id;
            }
            if (ids->suppressed(ob)) {
                // Refused at admission: the SDK gets its 2xx, nothing is stored, only counted.
                ++suppressed;
                continue;
            }
        }
        if (opts_.dedup != nullptr) {
            if (opts_.dedup->check_and_insert(ev.header.source, ev.header.message_id, now)) {
                ++duplicates;
                continue;
            }
            inserted.push_back(ev.header.message_id);
        }
        if (src != nullptr && src->enrich.drop_bots && (ev.header.flags & event_flag_bot)) {
            // Kept (quarantine, with context.bot saying why), counted, never delivered.
            event_header h = ev.header;
            h.kind = record_kind::quarantine;
            std::string extra = ",\"messageId\":";
            util::append_json_string(extra, ev.header.message_id);
            payload.clear();
            encode_event(h,
                         quarantine_json(src_name, route_label, now, i, "bot",
                                         "event from a bot (source policy bots: drop); "
                                         "context.bot says why",
                                         ev.json, {}, extra),
                         payload);
            batch.add(payload);
            ++bots_dropped;
            continue;
        }
        if (src != nullptr && src->plan) {
            const auto r = src->plan->apply(ev, violations);
            if (r == admit::plan_result::quarantined || r == admit::plan_result::blocked) {
                // Kept out of destinations, stored with every violation; the client gets 2xx
                // (the event is safe, and resending it would not change the verdict).
                auto p = src->plan->plan();
                std::string extra = ",\"violations\":";
                plan::append_violations_json(violations, extra);
                extra += ",\"plan\":{\"name\":";
                util::append_json_string(extra, p->name());
                extra += ",\"version\":";
                util::append_json_string(extra, p->version());
                extra += "},\"messageId\":";
                util::append_json_string(extra, ev.header.message_id);
                event_header h = ev.header;
                h.kind = record_kind::quarantine;
                payload.clear();
                encode_event(h,
                             quarantine_json(src_name, route_label, now, i,
                                             r == admit::plan_result::blocked ? "plan_blocked"
                                                                              : "plan_violation",
                                             plan_message(*p, violations), ev.json, {}, extra),
                             payload);
                batch.add(payload);
                continue;
            }
        }
        if (ids != nullptr) ids->apply(ev, ob, resolution, links);
        payload.clear();
        encode_event(ev, payload);
        batch.add(payload);
    }
    for (const auto& l : links) batch.add(l);
    if (duplicates) metrics_.count_duplicate(src_name, static_cast<double>(duplicates));
    if (suppressed)
        suppressed_->Add({{"source", src_name}}).Increment(static_cast<double>(suppressed));

    for (const auto& rj : d.rejected) {
        event_header h;
        h.kind = record_kind::quarantine;
        h.source = src_name;
        h.received_at_ms = now;
        payload.clear();
        encode_event(
            h,
            quarantine_json(src_name, route_label, now, rj.index, rj.code, rj.message, rj.raw, {}),
            payload);
        batch.add(payload);
    }

    // Build the answer now (on the I/O thread); the log's writer thread only sends it.
    http::response ok;
    std::size_t accepted = d.events.size() - duplicates - suppressed;
    if (pixel) {
        ok = gif_response();
    } else if (single && !d.rejected.empty()) {
        const auto& rj = d.rejected.front();
        ok = json_error(400, rj.code, rj.message);
    } else if (d.rejected.empty()) {
        ok = json_ok(R"({"success":true,"code":200})");
    } else {
        std::string body =
            fmt::format(R"({{"success":true,"code":200,"accepted":{},"rejected":[)", accepted);
        for (std::size_t i = 0; i < d.rejected.size(); ++i) {
            if (i) body += ',';
            body += fmt::format(R"({{"index":{},"reason":)", d.rejected[i].index);
            util::append_json_string(body, d.rejected[i].code);
            body += ",\"message\":";
            util::append_json_string(body, d.rejected[i].message);
            body += '}';
        }
        body += "]}";
        ok = json_ok(std::move(body));
    }
    if (src) src->cors.apply(ok, origin);
    for (const auto& rj : d.rejected) metrics_.count_rejected(rj.code, 1);

    if (batch.empty()) {
        metrics_.count_request(route_label, ok.result_int());
        respond(std::move(ok));
        return;
    }
    auto fail = [&](std::error_code ec) {
        auto res = json_error(503, ec == errc::log_full ? "log_full" : "unavailable",
                              ec == errc::log_full ? "the event log is full; retry later"
                                                   : "events could not be stored; retry later");
        res.set(bhttp::field::retry_after, std::to_string(opts_.retry_after.count()));
        if (src) src->cors.apply(res, origin);
        return res;
    };
    auto shared_ok = std::make_shared<http::response>(std::move(ok));
    std::string label(route_label);
    auto forget = [dedup = opts_.dedup, src_name, ids](
                      const std::vector<std::string>& mids,
                      const std::shared_ptr<std::vector<std::string>>& links) {
        if (ids != nullptr && links) ids->requeue(std::move(*links));
        if (dedup == nullptr) return;
        for (const auto& id : mids) dedup->erase(src_name, id);
    };
    std::shared_ptr<std::vector<std::string>> link_records;
    if (!links.empty()) link_records = std::make_shared<std::vector<std::string>>(std::move(links));
    auto ec = log_.append(std::move(batch), [this, shared_ok, respond, label, accepted, src_name,
                                             fail_res = fail(make_error_code(errc::io_error)),
                                             pixel, inserted, bots_dropped, forget, link_records](
                                                std::error_code ec, std::uint64_t) mutable {
        if (ec) forget(inserted, link_records);
        if (ec && !pixel) {
            metrics_.count_request(label, 503);
            respond(std::move(fail_res));
            return;
        }
        metrics_.count_request(label, shared_ok->result_int());
        if (!ec) {
            metrics_.count_accepted(src_name, static_cast<double>(accepted));
            if (bots_dropped) {
                bots_dropped_->Add({{"source", src_name}})
                    .Increment(static_cast<double>(bots_dropped));
            }
        }
        respond(std::move(*shared_ok));
    });
    if (ec) {
        forget(inserted, link_records);
        if (pixel) {
            // The pixel always answers the GIF; the loss is counted, never silent.
            metrics_.count_rejected("log_full",
                                    static_cast<double>(d.events.size() + d.rejected.size()));
            metrics_.count_request(route_label, 200);
            respond(gif_response());
            return;
        }
        metrics_.count_request(route_label, 503);
        respond(fail(ec));
    }
}

void handler::handle_pixel(http::request& req, const route& r, const std::string& ip,
                           responder& respond) {
    thread_local decoder dec(opts_.event_limits);
    thread_local decoded out;
    std::string_view target = req.target();
    auto q = target.find('?');
    std::string_view query =
        q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    std::string data_text, json;
    out.clear();
    const source_entry* src = nullptr;
    std::int64_t now = util::now_ms();
    auto quarantine = [&](std::string_view code, std::string message) {
        // Unauthenticated garbage cannot be attributed to a source; it is still kept, bounded
        // by the header size limit and the log's capacity.
        out.rejected.push_back({0, code, std::move(message), {}});
    };
    if (r.type == event_type::unknown) {
        quarantine("invalid_type", fmt::format("unknown pixel type '{}'", r.arg.substr(0, 100)));
    } else if (!util::percent_decode(query_param(query, "data"), data_text) ||
               !util::base64_decode(data_text, json) || json.empty()) {
        quarantine("invalid_pixel_data", "'data' is not base64-encoded JSON");
    } else if (auto err = dec.parse(json, false); err) {
        quarantine(err->code, err->message);
    } else {
        src = authenticate(req, dec.body_write_key());
        if (src == nullptr) {
            quarantine("unauthorized", "missing or unknown write key in pixel data");
        } else {
            request_info info;
            info.route_type = r.type;
            info.source = src->name;
            info.received_at_ms = now;
            info.client_ip = ip;
            set_enrichment(req, *src, true, info);
            dec.decode(info, out);
        }
    }
    if (!out.rejected.empty() && out.rejected.front().raw.empty() && src == nullptr) {
        // Keep what was sent, as text, so the quarantine shows it.
        record_batch batch;
        std::string payload;
        for (const auto& rj : out.rejected) {
            event_header h;
            h.kind = record_kind::quarantine;
            h.received_at_ms = now;
            encode_event(h, quarantine_json("", r.label, now, 0, rj.code, rj.message, {}, target),
                         payload);
            batch.add(payload);
            metrics_.count_rejected(rj.code, 1);
        }
        auto ec =
            log_.append(std::move(batch), [respond, this](std::error_code, std::uint64_t) mutable {
                metrics_.count_request("/v1/pixel", 200);
                respond(gif_response());
            });
        if (ec) {
            metrics_.count_rejected("log_full", 1);
            metrics_.count_request(r.label, 200);
            respond(gif_response());
        }
        return;
    }
    append_and_answer(src, r.label, {}, out, true, true, respond);
}

void handler::handle_settings(http::request& req, const route& r, responder& respond) {
    auto it = keys_.find(std::string(r.arg));
    if (it == keys_.end()) {
        metrics_.count_request(r.label, 404);
        respond(json_error(404, "unknown_write_key", "no source has this write key"));
        return;
    }
    const source_entry& src = sources_[it->second];
    std::string host = src.settings_api_host;
    if (host.empty()) {
        host = std::string(req[bhttp::field::host].substr(0, 255)) + "/v1";
    }
    std::string body = R"({"integrations":{"Segment.io":{"apiKey":)";
    util::append_json_string(body, r.arg);
    body += R"(,"apiHost":)";
    util::append_json_string(body, host);
    body +=
        R"(,"unbundledIntegrations":[],"addBundledMetadata":true,"maybeBundledConfigIds":{},"versionSettings":{"version":"4.4.7","componentTypes":["browser"]}}},)"
        R"("plan":{"track":{"__default":{"enabled":true,"integrations":{}}},"identify":{"__default":{"enabled":true}},"group":{"__default":{"enabled":true}}},)"
        R"("edgeFunction":{},"analyticsNextEnabled":true,"middlewareSettings":{},"enabledMiddleware":{},)"
        R"("metrics":{"sampleRate":0},"legacyVideoPluginsEnabled":false,"remotePlugins":[]})";
    auto res = json_ok(std::move(body));
    res.set(bhttp::field::access_control_allow_origin, "*");
    res.set(bhttp::field::cache_control, "public, max-age=60");
    metrics_.count_request(r.label, 200);
    respond(std::move(res));
}

}  // namespace switchyard::sources::segment
